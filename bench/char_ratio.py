"""How often the decoder writes one character against real poems: `python bench/char_ratio.py [--char 不]`.

Completes the first line of every held-out (test) 五绝 at the defaults and at beam 8, as `poetry-lstm evaluate
--generate` does, and prints the character's count in lines 2–4 of ours and of the real poems, and their ratio:
the README table's 不 row (round 3's decoder wrote 不 2.9× as often as real poets).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--char", default="不")
    parser.add_argument("--mode", default="word2vec")
    parser.add_argument("--config", default=None, help="a config file (its [paths] name the corpus and models)")
    args = parser.parse_args()

    from poetry_lstm.clean import load_corpus, texts_by_split
    from poetry_lstm.config import load_config
    from poetry_lstm.evaluate import generation_settings
    from poetry_lstm.generate import complete_all
    from poetry_lstm.loading import load_model
    from poetry_lstm.metrics import poem_lines
    from poetry_lstm.reading import char_counts

    cfg = load_config(args.config)
    real = texts_by_split(load_corpus(cfg), False)["test"]
    trained = load_model(Path(cfg.paths.models_dir) / args.mode)
    settings = generation_settings(cfg.generate, args.mode)  # evaluate's: the defaults and beam 8 are two of them
    theirs = char_counts(real)[args.char]
    for name in ("defaults", "beam 8"):
        poems, _ = complete_all(trained, [poem_lines(p)[0] for p in real], settings[name])
        ours = char_counts(poems)[args.char]
        print(f"{args.mode}, {name}: {args.char} {ours} times in {len(poems)} poems, real {theirs}: "
              f"{ours / max(theirs, 1):.2f}×")


if __name__ == "__main__":
    main()
