"""What fine-tuning on 五绝 adds: `python bench/fine_tune_gain.py --mode word2vec`.

Training pretrains on every five-character poem's four-line windows, then fine-tunes on real 五绝
(`[train] fine_tune_epochs`), and keeps a copy of the best pretrained weights in its checkpoint
folder (`models/.train-<mode>/pretrained.weights.h5`). This scores both sets of weights on the
held-out test 五绝, lines 2–4 given line 1, and prints the ratio (the pretrained model is the baseline
of the same run): below 1 means fine-tuning helped.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default="word2vec")
    parser.add_argument("--config", default=None)
    args = parser.parse_args()

    from poetry_lstm.config import load_config
    from poetry_lstm.evaluate import model_scores
    from poetry_lstm.loading import load_model
    from poetry_lstm.network import build_model
    from poetry_lstm.train import split_texts

    cfg = load_config(args.config)
    folder = Path(cfg.paths.models_dir) / args.mode
    pretrained = Path(cfg.paths.models_dir) / f".train-{args.mode}" / "pretrained.weights.h5"
    if not pretrained.exists():
        raise SystemExit(f"No {pretrained}: it is written when fine-tuning starts; "
                         f"train with `poetry-lstm train --mode {args.mode}`.")
    test = split_texts(cfg, False)["test"]
    shipped = load_model(folder, keras=True)
    before = build_model(**shipped.config["model_args"])
    before.load_weights(pretrained)
    rows = {}
    for name, model in (("pretrained (all windows)", before), ("shipped", shipped.keras_model)):
        rows[name] = model_scores(dataclasses.replace(shipped, keras_model=model), test)  # perplexity reads keras_model
    base = rows["pretrained (all windows)"]["perplexity"]
    for name, r in rows.items():
        print(f"{name:28s} test perplexity {r['perplexity']:7.1f}  ({r['perplexity'] / base:.3f} × pretrained)  "
              f"accuracy {r['accuracy']:.3f}  rhyme mass {r.get('rhyme_mass', float('nan')):.3f}")
    history = json.loads((folder / "history.json").read_text(encoding="utf-8"))
    tuned = [r for r in history if r.get("phase") == "finetune"]
    print(f"fine-tuning epochs: {len(tuned)}; valid perplexity per epoch: {[r['val_perplexity'] for r in tuned]}")


if __name__ == "__main__":
    main()
