"""What real 七绝 reach under the rules: `python bench/qijue_rules.py [--json FILE]`.

Reads the cleaned corpora (`corpus/qijue/quatrains.jsonl`, made by `poetry-lstm crawl` or `clean` with qijue
among the forms, and `corpus/quatrains.jsonl` for the 五绝 beside them, measured by the same code) and prints,
for the real quatrains of each dynasty, the shares shared/EVALUATION.md gives for 五绝: tone (the accepted
variants of one of the four forms), tone at the even places and the last only, rhyme, both; then what the
generator will need: the first line fitting a form, lines 2–4 regulated (EVALUATION.md's variants, and the
strict rules of meter.py), line 1 rhyming with lines 2 and 4 (入韵), line 3 ending 仄; and the share that
`poetry-lstm check` passes, at strict and lenient rules. docs/qijue.md holds the figures.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poetry_lstm import checker, meter, prosody  # noqa: E402
from poetry_lstm.files import read_jsonl  # noqa: E402


def strict_after_first(lines: list[str]) -> bool:
    """Lines 2–4 keep one form's types under the strict rules, licences allowed (what `check` accepts)."""
    fits = lambda line, t: any(prosody._fits(line, v)  # noqa: E731
                               for v in meter.variants(t, "strict", licences=True, chars=len(line)))
    return any(all(fits(line, t) for line, t in zip(lines[1:], types[1:])) for types in prosody.FORMS.values())


def first_rhymes(lines: list[str]) -> bool:
    """Line 1's end shares a 平声 group with lines 2 and 4 (入韵)."""
    shared = prosody.rhyme_groups(lines[1][-1]) & prosody.rhyme_groups(lines[3][-1])
    return bool(shared & prosody.rhyme_groups(lines[0][-1]))


def measure(texts: list[str]) -> dict:
    counts = Counter()
    for text in texts:
        lines = prosody.quatrain_lines(text)
        result = prosody.check_poem(text)
        counts["tone"] += result["tone"]
        counts["tone_even_places"] += result["tone_245"]
        counts["rhyme"] += result["rhyme"]
        counts["tone_and_rhyme"] += result["tone"] and result["rhyme"]
        counts["first_line_fits_a_form"] += any(prosody.line_fits(lines[0], t[0]) for t in prosody.FORMS.values())
        counts["lines_2_4_regulated"] += prosody.check_after_first(text)
        counts["lines_2_4_strict"] += strict_after_first(lines)
        counts["line_1_rhymes"] += result["rhyme"] and first_rhymes(lines)
        counts["line_3_ends_ze"] += prosody.ZE in prosody.reading(lines[2][-1])[0]
        counts["unknown_char"] += bool(result["unknown"])
        counts["check_ok_strict"] += checker.check(text).ok
        counts["check_ok_lenient"] += checker.check(text, "lenient").ok
    n = max(len(texts), 1)  # a dynasty with no poems gives zeros, not a division by zero
    return {"poems": len(texts), **{k: round(v / n, 4) for k, v in sorted(counts.items())},
            "line_1_rhymes_of_rhyming": round(counts["line_1_rhymes"] / max(counts["rhyme"], 1), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=str(ROOT / "corpus"), help="the corpus folder (its qijue/ beside)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    out = {}
    for name, path, real in (("七绝", Path(args.corpus) / "qijue" / "quatrains.jsonl", "qijue"),
                             ("五绝", Path(args.corpus) / "quatrains.jsonl", "wujue")):
        rows = read_jsonl(path, "corpus file")
        quatrains = [r for r in rows if r["form"] == real]
        for dynasty in ("唐", "宋", None):
            texts = [r["text"] for r in quatrains if dynasty is None or r["dynasty"] == dynasty]
            out[f"{name} {dynasty or 'all'}"] = measure(texts)
        lines = {line for r in rows for line in r["lines"]}
        out[f"{name} corpus"] = {"texts": len(rows), "real_quatrains": len(quatrains), "distinct_lines": len(lines),
                                 "per_form": dict(Counter(r["form"] for r in rows))}
    keys = [k for k in out["七绝 all"] if k != "poems"]
    print(f"{'':12s}" + "".join(f"{k[:16]:>18s}" for k in ["poems", *keys]))
    for name, row in out.items():
        if "poems" in row:
            print(f"{name:12s}" + "".join(f"{row[k]:>18}" for k in ["poems", *keys]))
        else:
            print(name, json.dumps(row, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
