"""Novelty and diversity of poems: `print(format_table({"onehot": summarize(poems, hashes, grams)}))`.

The metrics of docs EVALUATION.md, items 3–5. Line 1 is given to the generator, so copy rate,
novel n-grams and distinct-n look only at lines 2–4; repetition is a property of the whole poem.
Lines are what lies between punctuation marks, so a malformed poem still yields its lines.
Every share is a float in [0, 1]; an empty list of poems is a caller's bug and raises ValueError.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from .errors import PoetryError

_PUNCTUATION = re.compile(r"[，。？！；、,.?!;]")
_SHA1_HEX = re.compile(r"[0-9a-f]{40}")


def poem_lines(poem: str) -> list[str]:
    """The lines of a poem: "白日依山尽，黄河入海流。…" → ["白日依山尽", "黄河入海流", …]."""
    return [line for line in _PUNCTUATION.split(poem) if line]


def generated_lines(poem: str) -> list[str]:
    """Lines 2–4: what the model wrote after the given first line."""
    return poem_lines(poem)[1:4]


def line_hash(line: str) -> str:
    """SHA-1 hex of the UTF-8 line, as in a model's `train_lines.sha1`."""
    return hashlib.sha1(line.encode("utf-8")).hexdigest()


def load_line_hashes(path: str | os.PathLike) -> set[str]:
    """Read a `train_lines.sha1` file: one lower-case SHA-1 hex a line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PoetryError(f"The training line hashes {path} are missing; retrain the model.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PoetryError(f"Cannot read the training line hashes {path} ({exc}).") from None
    hashes = set()
    for number, raw in enumerate(text.splitlines(), 1):
        entry = raw.strip().lower()
        if not entry:
            continue
        if not _SHA1_HEX.fullmatch(entry):
            raise PoetryError(f"{path} line {number} is not a SHA-1 hex ({raw[:50]!r}); rebuild the file.")
        hashes.add(entry)
    return hashes


def _require(poems: Sequence[str]) -> None:
    if not poems:
        raise ValueError("no poems to measure")


def _ngrams(line: str, n: int) -> list[str]:
    return [line[i:i + n] for i in range(len(line) - n + 1)]


def copy_rate(poems: Sequence[str], train_line_hashes: set[str]) -> float:
    """Share of generated lines (2–4) found verbatim among the training lines."""
    _require(poems)
    lines = [line for poem in poems for line in generated_lines(poem)]
    if not lines:
        return 0.0
    return sum(line_hash(line) in train_line_hashes for line in lines) / len(lines)


def train_ngrams(train_poems: Iterable[str], n: int = 4) -> set[str]:
    """Every character n-gram inside a line of the training poems (all four lines)."""
    return {gram for poem in train_poems for line in poem_lines(poem) for gram in _ngrams(line, n)}


def novel_ngrams(poems: Sequence[str], train: set[str] | Sequence[str], n: int = 4) -> float:
    """Share of n-gram occurrences in lines 2–4 that never occur in a training line.

    `train` is either the set from `train_ngrams(train_poems, n)` (build it once, reuse it) or
    the training poems themselves.
    """
    _require(poems)
    if isinstance(train, (set, frozenset)):
        wrong = next((gram for gram in train if len(gram) != n), None)
        if wrong is not None:
            raise ValueError(f"the training set holds {wrong!r}, not a {n}-gram")
        known = train
    else:
        known = train_ngrams(train, n)
    grams = [gram for poem in poems for line in generated_lines(poem) for gram in _ngrams(line, n)]
    if not grams:
        return 0.0
    return sum(gram not in known for gram in grams) / len(grams)


def distinct_n(poems: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams, pooled over lines 2–4 of all poems, within lines."""
    _require(poems)
    grams = [gram for poem in poems for line in generated_lines(poem) for gram in _ngrams(line, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition(poems: Sequence[str]) -> dict[str, float]:
    """Shares of poems with a character ≥ 3 times, a character twice in one line, a repeated line.

    Returns {"char_three_times", "char_repeat_in_line", "line_repeated"}; 叠字 such as 年年
    count as a repeat within the line, as the real-poem figures in EVALUATION.md do.
    """
    _require(poems)
    thrice = in_line = line_twice = 0
    for poem in poems:
        lines = poem_lines(poem)
        chars = Counter("".join(lines))
        thrice += max(chars.values(), default=0) >= 3
        in_line += any(len(set(line)) < len(line) for line in lines)
        line_twice += len(set(lines)) < len(lines)
    return {
        "char_three_times": thrice / len(poems),
        "char_repeat_in_line": in_line / len(poems),
        "line_repeated": line_twice / len(poems),
    }


def summarize(poems: Sequence[str], train_line_hashes: set[str] | None = None,
              train_4grams: set[str] | None = None) -> dict:
    """All metrics of this module for one system; those whose training data is absent are None.

    Keys: poems, copy_rate, novel_4grams, distinct_1, distinct_2, char_three_times,
    char_repeat_in_line, line_repeated.
    """
    poems = list(poems)
    return {
        "poems": len(poems),
        "copy_rate": None if train_line_hashes is None else copy_rate(poems, train_line_hashes),
        "novel_4grams": None if train_4grams is None else novel_ngrams(poems, train_4grams, 4),
        "distinct_1": distinct_n(poems, 1),
        "distinct_2": distinct_n(poems, 2),
        **repetition(poems),
    }


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def _width(text: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def format_table(rows: dict[str, dict]) -> str:
    """Metrics down, systems across: `format_table({"word2vec": {...}, "real": {...}})`.

    A metric a system lacks (or holds None for) shows as "-"; floats show three decimals.
    """
    systems = list(rows)
    metrics: list[str] = []
    for values in rows.values():
        metrics += [key for key in values if key not in metrics]
    table = [["metric"] + systems]
    table += [[m] + [_cell(rows[s].get(m)) for s in systems] for m in metrics]
    widths = [max(_width(row[col]) for row in table) for col in range(len(table[0]))]
    lines = []
    for number, row in enumerate(table):
        cells = [_pad(cell, widths[col], right=col > 0) for col, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
