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

import numpy as np

from .errors import PoetryError

_PUNCTUATION = re.compile(r"[，。？！；、,.?!;]")


def poem_lines(poem: str) -> list[str]:
    """The lines of a poem: "白日依山尽，黄河入海流。…" → ["白日依山尽", "黄河入海流", …]."""
    return [line for line in _PUNCTUATION.split(poem) if line]


def generated_lines(poem: str) -> list[str]:
    """Lines 2–4: what the model wrote after the given first line."""
    return poem_lines(poem)[1:4]


HASH_FILE = "train_lines.u64"  # beside the model folders in models/: one file both models share


def line_hash(line: str) -> int:
    """The first 8 bytes of the line's SHA-1, as an unsigned integer: what `train_lines.u64` stores."""
    return int.from_bytes(hashlib.sha1(line.encode("utf-8")).digest()[:8], "big")


class LineHashes:
    """The copy check: `line in hashes`, without shipping the lines.

    Sorted unique 8-byte hashes, little-endian, in one file. With n ≈ 1.1 million lines stored, a
    new line is taken for a training line with odds n / 2**64 ≈ 6e-14, and the chance that any two
    stored lines share a hash is about n**2 / 2**65 ≈ 3e-8.
    """

    def __init__(self, values: np.ndarray, digest: str | None = None):
        self.values = values  # (n,) uint64, sorted, unique
        self._digest = digest  # the file's SHA-1, when read from one

    @classmethod
    def of_lines(cls, lines: Iterable[str]) -> "LineHashes":
        return cls(np.unique(np.fromiter((line_hash(line) for line in lines), dtype=np.uint64)))

    @classmethod
    def of_poems(cls, texts: Iterable[str]) -> "LineHashes":
        """Every five-character line of the poems: what training writes to `train_lines.u64`."""
        return cls.of_lines({line for text in texts for line in poem_lines(text)})

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, line: str) -> bool:
        h = np.uint64(line_hash(line))
        i = int(np.searchsorted(self.values, h))
        return i < len(self.values) and self.values[i] == h

    def to_bytes(self) -> bytes:
        return self.values.astype("<u8").tobytes()

    def digest(self) -> str:
        if self._digest is None:
            self._digest = hashlib.sha1(self.to_bytes()).hexdigest()
        return self._digest

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LineHashes":
        """Read a `train_lines.u64`; a missing, empty or malformed file is an error naming it, since
        an empty check would silently pass every copied line."""
        path = Path(path)
        retrain = ("train a model again (`poetry-lstm train`) to rebuild it, "
                   "or pass --no-novelty to generate without the copy check")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PoetryError(f"The training line hashes {path} are missing; {retrain}.", kind="hashes_missing",
                              path=str(path)) from None
        except OSError as exc:
            raise PoetryError(f"Cannot read the training line hashes {path} ({exc.strerror or exc}); {retrain}.",
                              kind="hashes_corrupt", path=str(path)) from None
        if not data or len(data) % 8:
            raise PoetryError(f"The training line hashes {path} are {'empty' if not data else 'truncated'}; {retrain}.",
                              kind="hashes_corrupt", path=str(path))
        values = np.frombuffer(data, dtype="<u8").astype(np.uint64)
        if len(values) > 1 and not (values[1:] > values[:-1]).all():
            raise PoetryError(f"The training line hashes {path} are not sorted, so the file is corrupt; {retrain}.",
                              kind="hashes_corrupt", path=str(path))
        return cls(values, hashlib.sha1(data).hexdigest())  # the bytes as read: no second serialisation


def require(poems: Sequence[str], what: str = "poems") -> None:
    """An empty list of poems is a caller's bug: say so instead of dividing by zero."""
    if not poems:
        raise ValueError(f"no {what} to measure")


def _ngrams(line: str, n: int) -> list[str]:
    return [line[i:i + n] for i in range(len(line) - n + 1)]


def copy_rate(poems: Sequence[str], train_line_hashes: LineHashes | set[str]) -> float:
    """Share of generated lines (2–4) found verbatim among the training lines."""
    require(poems)
    lines = [line for poem in poems for line in generated_lines(poem)]
    if not lines:
        return 0.0
    return sum(line in train_line_hashes for line in lines) / len(lines)


def train_ngrams(train_poems: Iterable[str], n: int = 4) -> set[str]:
    """Every character n-gram inside a line of the training poems (all four lines)."""
    return {gram for poem in train_poems for line in poem_lines(poem) for gram in _ngrams(line, n)}


def novel_ngrams(poems: Sequence[str], train: set[str] | Sequence[str], n: int = 4) -> float:
    """Share of n-gram occurrences in lines 2–4 that never occur in a training line.

    `train` is either the set from `train_ngrams(train_poems, n)` (build it once, reuse it) or
    the training poems themselves.
    """
    require(poems)
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
    require(poems)
    grams = [gram for poem in poems for line in generated_lines(poem) for gram in _ngrams(line, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition(poems: Sequence[str]) -> dict[str, float]:
    """Shares of poems with a character ≥ 3 times, a character twice in one line, a repeated line.

    Returns {"char_three_times", "char_repeat_in_line", "line_repeated"}; 叠字 such as 年年
    count as a repeat within the line, as the real-poem figures in EVALUATION.md do.
    """
    require(poems)
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


def summarize(poems: Sequence[str], train_line_hashes: LineHashes | None = None,
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
