"""Choose the decoder's knobs by the reading measures: `python bench/decode_tuning.py --mode word2vec`.

Completes the first lines of the *valid* poems (the test split stays for `poetry-lstm evaluate`)
under each setting below and prints, beside the real valid poems, the measures of issue 10 §1:
discriminator accuracy (0.5 = no linear model of characters tells ours from real), judge perplexity
÷ real (≫ 1 word salad, ≪ 1 stock phrases), formula rate (lines in 3+ poems), coherence lift with
line 1, distinct characters, the most over-used character's ratio, stutters and echoes, and the
milliseconds per poem. The baseline of each table is the first row, measured in the same run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SAMPLING = {
    "T 0.9, best of 1, no penalty (the old way)": dict(temperature=0.9, candidates=1, frequency_penalty=0.0,
                                                       coherence=0.0),
    "T 0.9, best of 8, no penalty": dict(temperature=0.9, candidates=8, frequency_penalty=0.0, coherence=1.0),
    "T 0.9, best of 8, penalty 0.3": dict(temperature=0.9, candidates=8, frequency_penalty=0.3, coherence=1.0),
    "T 0.8, best of 8, penalty 0.3": dict(temperature=0.8, candidates=8, frequency_penalty=0.3, coherence=1.0),
    "T 0.7, best of 8, penalty 0.3": dict(temperature=0.7, candidates=8, frequency_penalty=0.3, coherence=1.0),
    "T 0.8, best of 8, penalty 0.2": dict(temperature=0.8, candidates=8, frequency_penalty=0.2, coherence=1.0),
    "T 0.8, best of 8, penalty 0.3, coherence 3": dict(temperature=0.8, candidates=8, frequency_penalty=0.3,
                                                       coherence=3.0),
    "T 0.8, best of 4, penalty 0.3": dict(temperature=0.8, candidates=4, frequency_penalty=0.3, coherence=1.0),
}
BEAM = {
    "beam 8, plain (the old way)": dict(beam=8, frequency_penalty=0.0, sibling_penalty=0.0, beam_noise=0.0),
    "beam 8, penalty 0.3, sibling 0.5": dict(beam=8, frequency_penalty=0.3, sibling_penalty=0.5, beam_noise=0.0),
    "beam 8, penalty 0.3, noise 0.5": dict(beam=8, frequency_penalty=0.3, sibling_penalty=0.5, beam_noise=0.5),
    "beam 8, penalty 0.3, noise 1": dict(beam=8, frequency_penalty=0.3, sibling_penalty=0.5, beam_noise=1.0),
    "beam 8, penalty 0.6, noise 1": dict(beam=8, frequency_penalty=0.6, sibling_penalty=0.5, beam_noise=1.0),
    "beam 8, penalty 0.6, noise 1.5": dict(beam=8, frequency_penalty=0.6, sibling_penalty=0.5, beam_noise=1.5),
    "beam 8, penalty 0.3, noise 1.5": dict(beam=8, frequency_penalty=0.3, sibling_penalty=0.5, beam_noise=1.5),
}
# The last round, on every valid poem: the discriminator sharpens with more poems to learn from.
FINAL = {
    "T 0.8, best of 8, penalty 0.3": dict(temperature=0.8, candidates=8, frequency_penalty=0.3),
    "T 0.85, best of 8, penalty 0.3": dict(temperature=0.85, candidates=8, frequency_penalty=0.3),
    "T 0.8, best of 8, penalty 0.4": dict(temperature=0.8, candidates=8, frequency_penalty=0.4),
    "T 0.85, best of 8, penalty 0.4": dict(temperature=0.85, candidates=8, frequency_penalty=0.4),
}
# Holding back what the decoder over-uses (overuse.json, measured on training first lines by `poetry-lstm calibrate`).
OVERUSE = {
    # The first four at round 4's temperature, where the measure was taken; the defaults are T 0.8 since.
    "T 0.85, best of 8, penalty 0.3, no over-use penalty": dict(temperature=0.85, overuse_penalty=0.0),
    "over-use penalty 0.5": dict(temperature=0.85, overuse_penalty=0.5),
    "over-use penalty 1": dict(temperature=0.85, overuse_penalty=1.0),
    "over-use penalty 1.5": dict(temperature=0.85, overuse_penalty=1.5),
    "T 0.8, over-use penalty 0.5": dict(temperature=0.8, overuse_penalty=0.5),
    "T 0.8, over-use penalty 1": dict(temperature=0.8, overuse_penalty=1.0),
    "beam 8, no over-use penalty": dict(beam=8, overuse_penalty=0.0),
    "beam 8, over-use penalty 1": dict(beam=8, overuse_penalty=1.0),
}
# The temperature for each model: onehot, a weaker model, reads wilder than word2vec at the same T (round 6).
TEMPERATURE = {
    "T 0.9, over-use penalty 1": dict(temperature=0.9),
    "T 0.85, over-use penalty 1": dict(temperature=0.85),
    "T 0.8, over-use penalty 1": dict(temperature=0.8),
    "T 0.75, over-use penalty 1": dict(temperature=0.75),
    "T 0.7, over-use penalty 1": dict(temperature=0.7),
}
# Beam search's noise for the sharper 384-unit word2vec model (round 6), with the over-use penalty on.
NOISE = {
    "beam 8, noise 1.5": dict(beam=8, beam_noise=1.5),
    "beam 8, noise 2": dict(beam=8, beam_noise=2.0),
    "beam 8, noise 2.5": dict(beam=8, beam_noise=2.5),
}
# 重字: a character at most twice (the rule until round 7) or once, a 叠字 in place counting once (round 7).
REPEATS = {
    "each character at most twice": dict(max_char_uses=2),
    "each character once": dict(max_char_uses=1),
    "beam 8, at most twice": dict(beam=8, max_char_uses=2),
    "beam 8, once": dict(beam=8, max_char_uses=1),
}
# The ranking critic (models/critic, trained on other first lines than the measuring one) in the choice.
CRITIC = {
    "defaults (critic 0)": dict(critic=0.0),
    "critic 0.5": dict(critic=0.5),
    "critic 1": dict(critic=1.0),
    "critic 2": dict(critic=2.0),
    "critic 1, 16 candidates": dict(critic=1.0, candidates=16),
}
# Round 15: how far the cooler, truncated sampling readers preferred in round 14 can go, and what the choice
# among candidates favours (the frequency penalty prefers rarer characters).
COOLER = {
    "defaults (T 0.7, top-p 0.9)": {},
    "T 0.65": dict(temperature=0.65),
    "T 0.6": dict(temperature=0.6),
    "top-p 0.8": dict(top_p=0.8),
    "top-p 0.7": dict(top_p=0.7),
    "penalty 0.15": dict(frequency_penalty=0.15),
    "penalty 0": dict(frequency_penalty=0.0),
}
# The defaults alone, as config/default.toml sets them: the reference for a decoder change.
DEFAULTS = {"defaults": {}, "beam 8": dict(beam=8)}
GROUPS = {"sampling": SAMPLING, "beam": BEAM, "final": FINAL, "defaults": DEFAULTS, "overuse": OVERUSE,
          "temperature": TEMPERATURE, "noise": NOISE, "repeats": REPEATS,
          "critic": CRITIC, "cooler": COOLER}
ROUND_4 = ("sampling", "beam", "final")  # measured before overuse.json existed: they run without its penalty
SHOWN = ("discriminator_accuracy", "judge_ratio_to_real", "formula_rate", "coherence_lift", "distinct_chars",
         "overused_ratio", "stutter", "echo", "repeated_char", "line_1_char_back", "lines_2_4_regulated", "rhyme",
         "copy_rate", "ms_per_poem")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default="word2vec")
    parser.add_argument("--config", default=None,
                        help="a TOML overriding config/default.toml (e.g. another models_dir)")
    parser.add_argument("--limit", type=int, default=400, help="valid poems to complete per setting (default 400)")
    parser.add_argument("--only", choices=list(GROUPS), default=None,
                        help="one group of settings (default: sampling and beam)")
    parser.add_argument("--json", default=None, help="also write every row to this JSON file")
    parser.add_argument("--settings", nargs="*",
                        help="only these settings of the chosen group (names as in the tables)")
    args = parser.parse_args()

    from poetry_lstm.clean import load_corpus, texts_by_split
    from poetry_lstm.config import load_config
    from poetry_lstm.evaluate import generation_rows, generation_settings, yardsticks
    from poetry_lstm.loading import load_model
    from poetry_lstm.metrics import format_table
    from poetry_lstm.stepper import limit_blas_threads

    limit_blas_threads(1)
    cfg = load_config(args.config)
    records = load_corpus(cfg)
    real = texts_by_split(records, False)["valid"][: args.limit]
    started = time.perf_counter()
    sticks = yardsticks(cfg, real, records, log=lambda m: print(m, file=sys.stderr))
    trained = load_model(Path(cfg.paths.models_dir) / args.mode)
    base = generation_settings(cfg.generate, args.mode)["defaults"]
    rows = {}
    for name in [args.only] if args.only else ["sampling", "beam"]:
        chosen = {k: v for k, v in GROUPS[name].items() if not args.settings or k in args.settings}
        off = {"overuse_penalty": 0.0} if name in ROUND_4 else {}
        settings = {args.mode: {k: dataclasses.replace(base, **off, **v) for k, v in chosen.items()}}
        table = generation_rows({args.mode: trained}, settings, sticks, trained.line_hashes(), None,
                                log=lambda m: print(m, file=sys.stderr))
        rows.update(table)
        print(f"\n{name}, {len(real)} valid first lines, {args.mode}:")
        print(format_table({k: {m: v.get(m) for m in SHOWN} for k, v in table.items()}))
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, ensure_ascii=False, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
