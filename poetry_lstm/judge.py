"""The judge, a language model independent of ours: `judge_perplexity(fit_judge(training_lines(records)), poems)`.

An interpolated Kneser–Ney character 4-gram (`baseline.KneserNey`) fitted on every five-character
line of the corpus's train split: all Tang and Song five-character verse cut into four-line
windows, about 1.1 million lines. The cleaner keeps every line of a valid or test poem out of that
split, so the judge has never read the real poems it is compared against. Fitting takes about
10 s (NumPy, one core), so the fitted model is not cached on disk.

Each line is read as its own sequence, from three `<s>`: a line of 五言 is a unit of syntax, the
judge's training lines come in windows cut at arbitrary places of longer poems, and keeping it
blind to the previous line makes it measure fluency alone; how lines 2–4 stay with line 1 is
measured apart (`reading.coherence`). Characters the judge never saw are scored as `<unk>`, with
the small uniform share Kneser–Ney leaves them, and counted.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Sequence

from . import layout
from .baseline import KneserNey
from .metrics import generated_lines

JUDGE_ORDER = 4
LINE_LENGTH = layout.CHARS


def training_lines(records: Iterable[dict], chars: int = LINE_LENGTH) -> list[str]:
    """Every line of `chars` characters (five; a 七绝 corpus's seven) of the train split's records, as often as
    it occurs there."""
    return [line for r in records if r.get("split") == "train" for line in r["lines"] if len(line) == chars]


def fit_judge(lines: Sequence[str], order: int = JUDGE_ORDER) -> KneserNey:
    """The judge fitted on `lines`; its vocabulary is every character they hold."""
    if not lines:
        raise ValueError("the judge needs training lines, and got none")
    return KneserNey(order).fit(lines)


def judge_perplexity(judge: KneserNey, poems: Sequence[str]) -> dict:
    """Per-character perplexity of lines 2–4 of `poems`, each line scored alone.

    Returns {"perplexity", "chars", "unknown"}; a line that is not as long as most (five characters, a
    七绝's seven: a malformed poem's) is left out rather than scored against the wrong history.
    """
    lengths = Counter(len(line) for poem in poems for line in generated_lines(poem))
    size = lengths.most_common(1)[0][0] if lengths else LINE_LENGTH
    lines = [line for poem in poems for line in generated_lines(poem) if len(line) == size]
    if not lines:
        raise ValueError("no five-character lines 2–4 (or seven-character ones) to judge")
    log_probs = judge.text_log_probs(lines)
    unknown = sum(ch not in judge.index for line in lines for ch in line)
    return {"perplexity": math.exp(-float(log_probs.mean())), "chars": int(log_probs.size), "unknown": unknown}
