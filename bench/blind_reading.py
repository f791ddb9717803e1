"""Blind readings, the measure of record for what the poems say (shared/EVALUATION.md, "Blind reading").

    python bench/blind_reading.py pairs   --split valid --seed 20261206 --out docs/readings/NAME
    python bench/blind_reading.py singles --split valid --seed 20261207 --out docs/readings/NAME
    python bench/blind_reading.py versus  --split valid --seed 20261222 --set line_search=true --out docs/readings/NAME
    python bench/blind_reading.py pairs   --form qijue --split valid --seed 20261230 --out docs/readings/NAME
    python bench/blind_reading.py score docs/readings/NAME

`pairs` draws 30 real held-out 五绝 with a fresh seed, completes each first line once with the settings
under test (the [generate] defaults, changed by `--set key=value`), and writes `sheet.md` (what the
reader sees: each pair with A/B shuffled, nothing else) and `key.json` (which is real, the settings, the
seeds, the code's commit). `singles` writes 40 poems in random order, 20 real and 20 ours from 20 other
first lines. The reader's answers go into `answers.json` beside them (the sheet says how); `score`
prints the share of pairs where the real poem was picked, or the accuracy, the mean ratings and how many
of ours were taken for real. `versus` is for choosing between two settings once readers find the real poem
every time: pairs of ours from the same 30 first lines (those that differ), one at the baseline
(`--base-set`, `--base-models`; the defaults) and one at the challenger (`--set`, `--models`), A/B shuffled;
the reader says which reads more like a real poem, and `score` prints the share that prefer the challenger
with Wilson's 95% interval. `--form qijue` does the same for the 七绝: held-out real 七绝 of corpus/qijue/ and the
models in the models folder's `qijue/` (the sheets then say 七言绝句).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PAIRS_HEAD = """# Blind reading: pairs

Each item shows two 五言绝句 that share their first line. One is a real Tang or Song poem; the other was
written by a program from the first line alone. For each item, say which one is real (A or B), how sure you
are (1 = a guess, 3 = certain), a 1–5 rating of the poem you take for the program's (5 = reads like a good
real poem), and a short reason.

Answer in `answers.json` as a list: `[{"item": 1, "real": "A", "confidence": 2, "rating": 2, "reason": "..."}, ...]`.

"""

VERSUS_HEAD = """# Blind reading: two poems from one first line

Each item shows two 五言绝句 that share their first line. Both were written by a program from that line. For
each item, say which one reads more like a good real poem (A or B), how sure you are (1 = a guess, 3 = certain),
a 1–5 rating of each (5 = reads like a good real poem), and a short reason.

Answer in `answers.json` as a list:
`[{"item": 1, "better": "A", "confidence": 2, "rating_a": 2, "rating_b": 1, "reason": "..."}, ...]`.

"""

SINGLES_HEAD = """# Blind reading: single poems

Each item is one 五言绝句. Some are real Tang or Song poems; the others were written by a program from a first
line. For each, say whether it is real or generated, how sure you are (1 = a guess, 3 = certain), a 1–5 rating
of the poem (5 = reads like a good real poem), and a short reason.

Answer in `answers.json` as a list: `[{"item": 1, "real": true, "confidence": 2, "rating": 3, "reason": "..."}, ...]`.

"""


FORM_NAMES = {"wujue": "五言绝句", "qijue": "七言绝句"}


def held_out(split: str, form: str = "wujue") -> list[str]:
    from poetry_lstm.clean import load_corpus, texts_by_split
    from poetry_lstm.config import load_config

    return texts_by_split(load_corpus(load_config().for_form(form)), False)[split]


def model_of(models: str, args):
    """The model `args.mode` of the form `args.form` in the models folder `models` (a 七绝's under its qijue/)."""
    from poetry_lstm.loading import load_model

    return load_model(Path(models) / ("qijue" if args.form == "qijue" else "") / args.mode)


def head(text: str, form: str) -> str:
    return text.replace("五言绝句", FORM_NAMES[form])


def settings_from(model, changes: list[str]):
    from poetry_lstm.config import DecodeSettings

    settings = DecodeSettings.defaults(model.settings_key)
    values = {}
    for change in changes:
        key, _, value = change.partition("=")
        kind = type(getattr(settings, key))
        values[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    return dataclasses.replace(settings, **values)


def ours(model, settings, first_lines: list[str], seed: int) -> list[str]:
    from poetry_lstm.generate import complete_poem

    return [complete_poem(model, line, settings, n=1, seed=seed + i).poems[0].text
            for i, line in enumerate(first_lines)]


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def show(poem: str) -> str:
    return poem.replace("，", "，\n").replace("。", "。\n").strip()


def models_name(folder: str) -> str:
    """The models folder as the key records it: relative to the checkout when it lies inside it."""
    path = Path(folder).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(folder)


def make(kind: str, args) -> None:
    model = model_of(args.models, args)
    settings = settings_from(model, args.set or [])
    real, chars = held_out(args.split, args.form), model.shape.chars
    rng = random.Random(args.seed)
    count = 30 if kind == "pairs" else 40
    picked = rng.sample(real, count)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = {"kind": kind, "form": args.form, "split": args.split, "seed": args.seed, "model": args.mode,
           "commit": commit(),
           "models": models_name(args.models),
           "settings": dataclasses.asdict(settings),
           "command": "python bench/blind_reading.py " + " ".join(sys.argv[1:])}
    lines = [head(PAIRS_HEAD if kind == "pairs" else SINGLES_HEAD, args.form)]
    if kind == "pairs":
        generated = ours(model, settings, [p[:chars] for p in picked], args.seed)
        items = []
        for i, (r, g) in enumerate(zip(picked, generated), 1):
            a, b = (r, g) if rng.random() < 0.5 else (g, r)
            items.append({"item": i, "A": a, "B": b, "real": "A" if a == r else "B"})
            lines.append(f"## {i}\n\nA\n\n{show(a)}\n\nB\n\n{show(b)}\n")
    else:
        reals, firsts = picked[:20], picked[20:]
        generated = ours(model, settings, [p[:chars] for p in firsts], args.seed)
        pool = [(p, True) for p in reals] + [(p, False) for p in generated]
        rng.shuffle(pool)
        items = [{"item": i, "poem": p, "real": is_real} for i, (p, is_real) in enumerate(pool, 1)]
        lines += [f"## {it['item']}\n\n{show(it['poem'])}\n" for it in items]
    (out / "sheet.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "key.json").write_text(json.dumps({**key, "items": items}, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {out / 'sheet.md'} (for the reader) and {out / 'key.json'} (keep it from the reader)")


def make_versus(args) -> None:
    """30 first lines, each completed at the baseline and at the challenger settings, A/B shuffled."""
    base_model, model = model_of(args.base_models, args), model_of(args.models, args)
    base, challenger = settings_from(base_model, args.base_set or []), settings_from(model, args.set or [])
    rng = random.Random(args.seed)
    firsts = [p[:model.shape.chars] for p in rng.sample(held_out(args.split, args.form), 30)]
    olds, news = ours(base_model, base, firsts, args.seed), ours(model, challenger, firsts, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines, items = [head(VERSUS_HEAD, args.form)], []
    for old, new in zip(olds, news):
        if old == new:  # the same poem either way: nothing to choose, not shown
            continue
        a, b = (old, new) if rng.random() < 0.5 else (new, old)
        items.append({"item": len(items) + 1, "A": a, "B": b, "challenger": "A" if a == new else "B"})
        lines.append(f"## {len(items)}\n\nA\n\n{show(a)}\n\nB\n\n{show(b)}\n")
    key = {"kind": "versus", "form": args.form, "split": args.split, "seed": args.seed, "model": args.mode,
           "commit": commit(),
           "base_models": models_name(args.base_models), "models": models_name(args.models),
           "base_settings": dataclasses.asdict(base), "settings": dataclasses.asdict(challenger),
           "command": "python bench/blind_reading.py " + " ".join(sys.argv[1:]), "same_poem": 30 - len(items),
           "items": items}
    (out / "sheet.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "key.json").write_text(json.dumps(key, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {out / 'sheet.md'} (for the reader) and {out / 'key.json'}: {len(items)} pairs "
          f"({30 - len(items)} first lines gave the same poem either way and are left out)")


def score_versus(items: list[dict], answers: dict) -> dict:
    from poetry_lstm.critic import binomial_interval

    judged = items
    wins = sum(answers[it["item"]]["better"] == it["challenger"] for it in judged)
    rating = lambda it, side: answers[it["item"]][f"rating_{side.lower()}"]  # noqa: E731
    other = {"A": "B", "B": "A"}
    mean = lambda side_of: round(sum(rating(it, side_of(it)) for it in judged) / max(len(judged), 1), 2)  # noqa: E731
    return {"kind": "versus", "pairs": len(judged), "challenger_preferred": wins,
            "challenger_preferred_95": binomial_interval(wins, len(judged)),
            "mean_rating_challenger": mean(lambda it: it["challenger"]),
            "mean_rating_baseline": mean(lambda it: other[it["challenger"]])}


def score(folder: Path) -> dict:
    key = json.loads((folder / "key.json").read_text(encoding="utf-8"))
    answers = {a["item"]: a for a in json.loads((folder / "answers.json").read_text(encoding="utf-8"))}
    items = key["items"]
    if key["kind"] == "versus":
        return score_versus(items, answers)
    if key["kind"] == "pairs":
        right = [answers[it["item"]]["real"] == it["real"] for it in items]
        ratings = [answers[it["item"]]["rating"] for it in items]
        return {"kind": "pairs", "pairs": len(items), "real_picked": sum(right),
                "mean_rating_of_the_one_taken_for_ours": round(sum(ratings) / len(ratings), 2)}
    ours_taken_real = sum(answers[it["item"]]["real"] for it in items if not it["real"])
    mean = lambda flag: round(sum(answers[it["item"]]["rating"] for it in items if it["real"] == flag)
                              / max(1, sum(it["real"] == flag for it in items)), 2)
    correct = sum(answers[it["item"]]["real"] == it["real"] for it in items)
    return {"kind": "singles", "poems": len(items), "correct": correct, "mean_rating_real": mean(True),
            "mean_rating_ours": mean(False), "ours_taken_for_real": ours_taken_real}


def main() -> None:
    from poetry_lstm.stepper import limit_blas_threads

    limit_blas_threads(1)  # the decoder's tiny matrix products: extra BLAS threads only spin
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("pairs", "singles", "versus"):
        p = sub.add_parser(name)
        p.add_argument("--split", choices=["valid", "test"], default="valid")
        p.add_argument("--seed", type=int, required=True, help="a fresh seed for every reading")
        p.add_argument("--mode", default="word2vec")
        p.add_argument("--form", choices=list(FORM_NAMES), default="wujue", help="五绝 (wujue) or 七绝 (qijue)")
        p.add_argument("--models", default=str(ROOT / "models"), help="the models folder (a candidate model's)")
        p.add_argument("--set", action="append", help="a decoder setting other than the default, key=value")
        p.add_argument("--out", required=True)
        if name == "versus":  # the baseline the challenger (--models, --set) is read against
            p.add_argument("--base-models", default=str(ROOT / "models"), help="the baseline's models folder")
            p.add_argument("--base-set", action="append", help="a baseline setting other than the default")
    s = sub.add_parser("score")
    s.add_argument("folder")
    args = parser.parse_args()
    if args.command == "score":
        print(json.dumps(score(Path(args.folder)), ensure_ascii=False, indent=1))
    elif args.command == "versus":
        make_versus(args)
    else:
        make(args.command, args)


if __name__ == "__main__":
    main()
