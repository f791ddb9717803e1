"""Whether completed poems read like real ones: `discriminator_accuracy(real_poems, our_poems)` and the rest.

The measures of issue 10 beside the rule checks of `prosody` and `metrics`. Line 1 is given, so
every measure looks at lines 2–4 only (coherence compares them with line 1):

- `discriminator_accuracy`: can a linear model of characters tell our lines from real ones?
  0.5 = no, 1.0 = always.
- `formula_rate`: the share of our lines that recur in 3 or more different poems (stock closings).
- `coherence`: how close lines 2–4 stay to line 1 in skip-gram space, and how much closer than
  to the first lines of other poems (the lift, which cancels what every poem shares).
- `char_frequency_gap`: the characters we over-use against real poems, and how many we use.
- `stutter_rate` and `echo_rate`: a character doubled where real poems never double it, and a
  two-character word of an earlier line said again.
The judge's perplexity lives in `judge.py`.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable, Sequence

import numpy as np

from .metrics import generated_lines, poem_lines, require

DISCRIMINATOR_FOLDS = 5
FORMULA_POEMS = 3        # a line in this many different poems is a formula
ATTESTED_DOUBLE = 3      # a 叠字 real poems use at least this often at one position is real
OVERUSED_TOP = 10


def line_ngrams(poem: str) -> list[str]:
    """Characters and two-character sequences within each of lines 2–4: the discriminator's features."""
    grams = []
    for line in generated_lines(poem):
        grams += list(line) + [line[i:i + 2] for i in range(len(line) - 1)]
    return grams


def discriminator_accuracy(real: Sequence[str], generated: Sequence[str], folds: int = DISCRIMINATOR_FOLDS,
                           seed: int = 0) -> float:
    """Mean `folds`-fold cross-validated accuracy of a logistic regression on `line_ngrams` counts
    telling `real` from `generated` (stratified folds, shuffled with `seed`)."""
    # scikit-learn comes with the `train` extra, which evaluation needs anyway; the page does not.
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    if min(len(real), len(generated)) < folds:
        raise ValueError(f"the discriminator needs at least {folds} poems of each kind, "
                         f"not {len(real)} and {len(generated)}")
    features = CountVectorizer(analyzer=line_ngrams).fit_transform(list(real) + list(generated))
    labels = np.array([0] * len(real) + [1] * len(generated))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(LogisticRegression(max_iter=2000), features, labels, cv=splits, scoring="accuracy")
    return float(scores.mean())


def formula_rate(poems: Sequence[str], min_poems: int = FORMULA_POEMS) -> float:
    """Share of lines 2–4 (each occurrence) whose text occurs in at least `min_poems` different poems."""
    require(poems)
    poems_with: dict[str, set[int]] = defaultdict(set)
    lines = []
    for number, poem in enumerate(poems):
        for line in generated_lines(poem):
            poems_with[line].add(number)
            lines.append(line)
    return sum(len(poems_with[line]) >= min_poems for line in lines) / len(lines) if lines else 0.0


def _centroids(texts: Sequence[str], vectors) -> np.ndarray:
    """(texts, dim) unit-length mean of the unit vectors of each text's characters the vectors know
    (a zero row when they know none)."""
    index = vectors.key_to_index
    unit = vectors.vectors / np.maximum(np.linalg.norm(vectors.vectors, axis=1, keepdims=True), 1e-12)
    out = np.zeros((len(texts), unit.shape[1]))
    for row, text in enumerate(texts):
        known = [index[ch] for ch in text if ch in index]
        if known:
            mean = unit[known].mean(axis=0)
            out[row] = mean / max(np.linalg.norm(mean), 1e-12)
    return out


def coherence(poems: Sequence[str], vectors) -> dict:
    """{"coherence": mean cosine between line 1 and lines 2–4 of the same poem, "coherence_lift":
    that minus the mean cosine between lines 2–4 and the first lines of the other poems}.

    Each side is the mean of its characters' unit skip-gram vectors. Frequent characters make
    every pair of texts look somewhat alike; the lift subtracts that, and is None for one poem.
    """
    require(poems)
    firsts = _centroids([poem_lines(p)[0] if poem_lines(p) else "" for p in poems], vectors)
    rests = _centroids(["".join(generated_lines(p)) for p in poems], vectors)
    similarity = firsts @ rests.T  # [i, j]: first line of poem i against lines 2–4 of poem j
    own = float(np.trace(similarity)) / len(poems)
    if len(poems) < 2:
        return {"coherence": own, "coherence_lift": None}
    others = (float(similarity.sum()) - own * len(poems)) / (len(poems) * (len(poems) - 1))
    return {"coherence": own, "coherence_lift": own - others}


def char_counts(poems: Iterable[str]) -> Counter:
    """How often each character occurs in the poems' lines 2–4."""
    return Counter(ch for poem in poems for line in generated_lines(poem) for ch in line)


def char_frequency_gap(real: Sequence[str], generated: Sequence[str], top: int = OVERUSED_TOP) -> dict:
    """How our characters differ from real poems' in lines 2–4.

    "overused": the `top` characters we use most in excess of the real count (scaled to as many
    characters), each [character, our count, real count, add-one ratio of the two];
    "overused_ratio": their summed count over the real one; "distinct_chars" and
    "distinct_chars_real": characters used; "char_distribution_gap": half the L1 distance between
    the two character distributions (0 = the same, 1 = no character in common).
    """
    require(real, "real poems")
    require(generated)
    ours, theirs = char_counts(generated), char_counts(real)
    scale = sum(theirs.values()) / max(sum(ours.values()), 1)
    excess = sorted(ours, key=lambda ch: (-(ours[ch] * scale - theirs[ch]), ch))[:top]
    chars = sorted(set(ours) | set(theirs))
    p_ours, p_theirs = (np.array([c[ch] for ch in chars], dtype=float) for c in (ours, theirs))
    return {
        "overused": [[ch, ours[ch], theirs[ch], round((ours[ch] * scale + 1) / (theirs[ch] + 1), 2)] for ch in excess],
        "overused_ratio": sum(ours[ch] for ch in excess) * scale / max(sum(theirs[ch] for ch in excess), 1),
        "distinct_chars": len(ours),
        "distinct_chars_real": len(theirs),
        "char_distribution_gap": 0.5 * float(np.abs(p_ours / p_ours.sum() - p_theirs / p_theirs.sum()).sum()),
    }


def doubled_counts(lines: Iterable[str]) -> Counter:
    """(character, position) → how many of `lines` double that character there (依依 opening a line: ("依", 0))."""
    return Counter((line[i], i) for line in lines for i in range(len(line) - 1) if line[i] == line[i + 1])


def attested_doubles(lines: Iterable[str], min_count: int = ATTESTED_DOUBLE) -> frozenset[tuple[str, int]]:
    """(character, position) of every 叠字 (依依, 年年) found at that position of at least `min_count` lines."""
    return frozenset(key for key, n in doubled_counts(lines).items() if n >= min_count)


def _doubles(poem: str) -> list[tuple[str, int]]:
    return [(line[i], i) for line in generated_lines(poem) for i in range(len(line) - 1) if line[i] == line[i + 1]]


def doubled_rate(poems: Sequence[str]) -> float:
    """Share of poems whose lines 2–4 hold a character twice in a row, 叠字 included."""
    require(poems)
    return sum(bool(_doubles(p)) for p in poems) / len(poems)


def stutter_rate(poems: Sequence[str], attested: frozenset[tuple[str, int]]) -> float:
    """Share of poems whose lines 2–4 double a character where real poems do not (`attested_doubles`): 是是, 水水."""
    require(poems)
    return sum(any(d not in attested for d in _doubles(p)) for p in poems) / len(poems)


def echo_rate(poems: Sequence[str]) -> float:
    """Share of poems in which a two-character sequence of one line occurs again in a later line (春风 … 春风)."""
    require(poems)
    echoed = 0
    for poem in poems:
        seen: set[str] = set()
        for line in poem_lines(poem)[:4]:
            pairs = {line[i:i + 2] for i in range(len(line) - 1)}
            if pairs & seen:
                echoed += 1
                break
            seen |= pairs
    return echoed / len(poems)


def _uses(line_chars: list[str]) -> Counter:
    """How often each character is used in these lines, a 叠字 in place (青青) counting as one use."""
    uses: Counter = Counter()
    for line in line_chars:
        uses.update(ch for i, ch in enumerate(line) if i == 0 or line[i - 1] != ch)
    return uses


def repeated_char_rates(poems: Sequence[str]) -> dict:
    """重字, as readers count it: the share of poems using some character twice or more anywhere in the four
    lines, and the share in which a character of line 1 comes back in lines 2–4; a 叠字 in place (青青) is
    one use. Real held-out 五绝: about 17% and 11% (shared/EVALUATION.md)."""
    require(poems)
    anywhere = back = 0
    for poem in poems:
        lines = poem_lines(poem)[:4]
        anywhere += any(n >= 2 for n in _uses(lines).values())
        back += bool(set(lines[0]) & set("".join(lines[1:])))
    return {"repeated_char": anywhere / len(poems), "line_1_char_back": back / len(poems)}
