"""The 七绝 model's decoder settings on valid first lines: `python bench/qijue_temperature.py --poems 400`.

Completes the first `--poems` valid 七绝 of corpus/qijue/ once per setting (the [generate] defaults with the
temperature and over-use penalty below changed) and prints the discriminator, the judge's ratio to real poems
(the judge of `poetry-lstm evaluate --form qijue`), distinct characters and 重字 per setting; `--json FILE` keeps them.
How [generate] model_temperature's `qijue/word2vec` (round 11) and `qijue/onehot` (round 12) were chosen
(docs/tuning.md); `--model models/qijue/onehot --only T0.75,T0.7,T0.65` for the onehot model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"T0.85": {}, "T0.8": {"temperature": 0.8}, "T0.75": {"temperature": 0.75}, "T0.7": {"temperature": 0.7},
            "T0.65": {"temperature": 0.65},
            "T0.85 overuse0": {"overuse_penalty": 0.0},
            "T0.75 overuse0.5": {"temperature": 0.75, "overuse_penalty": 0.5}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--poems", type=int, default=400, help="valid first lines (default 400)")
    parser.add_argument("--model", default=str(ROOT / "models" / "qijue" / "word2vec"))
    parser.add_argument("--json", default=None, help="write the figures here too")
    parser.add_argument("--only", default=None, help="comma-separated setting names (default: all)")
    args = parser.parse_args()

    from poetry_lstm.clean import load_corpus, texts_by_split
    from poetry_lstm.config import load_config
    from poetry_lstm.evaluate import reading_measures, yardsticks
    from poetry_lstm.generate import complete_all
    from poetry_lstm.loading import load_model
    from poetry_lstm.stepper import limit_blas_threads

    limit_blas_threads(1)  # the decoder's tiny matrix products: extra BLAS threads only spin
    cfg = load_config().for_form("qijue")
    records = load_corpus(cfg)
    real = texts_by_split(records, False)["valid"][:args.poems]
    sticks = yardsticks(cfg, real, records, print)
    model = load_model(args.model)
    base = dataclasses.replace(cfg.generate.settings("word2vec"), n=1)  # the 五绝 word2vec model's temperature
    out = {}
    for name, changes in SETTINGS.items():
        if args.only and name not in args.only.split(","):
            continue
        poems, seconds = complete_all(model, [p[:7] for p in real], dataclasses.replace(base, **changes))
        measured = reading_measures(poems, sticks)
        out[name] = {k: measured[k] for k in ("discriminator_accuracy", "judge_ratio_to_real", "distinct_chars",
                                              "repeated_char")} | {"ms": round(1000 * seconds)}
        print(name, out[name], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
