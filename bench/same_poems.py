"""Do two checkouts write the same poems? `python bench/same_poems.py OLD_DIR [NEW_DIR] [--lines 811]`.

For a change that should not change what the decoder writes (a refactor), or only some poems on purpose:
runs `poetry-lstm generate --file` with each checkout's own code and models on the first lines of the valid
poems (`--n 1`, then `--beam 8`), the first 100 of them at `--n 3 --mode onehot`, four acrostics and four
themes, all at their seeds, and prints how many poems are byte-identical, then every pair that differs.
An old checkout is made with `git worktree add /tmp/old <commit>`. `--python-prelude` runs a line of Python
in the new checkout before its CLI, and `--config` gives its CLI a TOML (to hold a table or a default at its
old value while comparing).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACROSTICS = ("春夏秋冬", "明月清风", "山水田园", "江南好景")
THEMES = ("思念故乡的秋夜", "边塞将士", "春天的花", "送别友人")


def first_lines(count: int) -> list[str]:
    rows = (json.loads(line) for line in open(ROOT / "corpus" / "quatrains.jsonl", encoding="utf-8"))
    return [r["lines"][0] for r in rows if r["split"] == "valid"][:count]


def poems(checkout: Path, lines_file: Path, prelude: str = "", config: str | None = None) -> dict[str, list[str]]:
    """Setting name → the poems' texts, in order."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    code = f"{prelude}\nimport sys\nfrom poetry_lstm.cli import cli\nsys.argv[0] = 'poetry-lstm'\ncli(obj={{}})"
    first = ["--config", str(Path(config).resolve())] if config else []

    def run(*args: str) -> list[dict]:
        done = subprocess.run([sys.executable, "-c", code, *first, *args, "--json"], cwd=checkout, env=env,
                              capture_output=True, text=True, check=True)
        decoder, text, out, i = json.JSONDecoder(), done.stdout, [], 0
        while (i := len(text) - len(text[i:].lstrip())) < len(text):
            obj, i = decoder.raw_decode(text, i)
            out.append(obj)
        return out

    texts = lambda results: [p["text"] for r in results for p in r["poems"]]  # noqa: E731
    return {"n 1": texts(run("generate", "--file", str(lines_file), "--n", "1")),
            "beam 8": texts(run("generate", "--file", str(lines_file), "--n", "1", "--beam", "8")),
            "onehot n 3": texts(run("generate", "--file", str(lines_file.with_suffix(".100")), "--n", "3",
                                    "--mode", "onehot")),
            "acrostic": texts([r for h in ACROSTICS for r in run("generate", "--acrostic", h, "--seed", "3")]),
            "theme": texts([r for t in THEMES for r in run("generate", "--theme", t, "--seed", "3")])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old")
    parser.add_argument("new", nargs="?", default=str(ROOT))
    parser.add_argument("--lines", type=int, default=811)
    parser.add_argument("--python-prelude", default="", help="Python run in the new checkout before its CLI")
    parser.add_argument("--config", default=None, help="a TOML the new checkout's CLI reads (--config)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines_file = Path(tmp) / "lines.txt"
        lines = first_lines(args.lines)
        lines_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        lines_file.with_suffix(".100").write_text("\n".join(lines[:100]) + "\n", encoding="utf-8")
        old = poems(Path(args.old), lines_file)
        new = poems(Path(args.new), lines_file, args.python_prelude, args.config)
    same = total = 0
    for name in old:
        pairs = list(zip(old[name], new[name]))
        equal = sum(a == b for a, b in pairs)
        same, total = same + equal, total + len(pairs)
        print(f"{name}: {equal} of {len(pairs)} identical")
        for a, b in pairs:
            if a != b:
                print(f"  {a}  →  {b}")
    print(f"in all: {same} of {total} poems identical")


if __name__ == "__main__":
    main()
