"""Character trigram baseline: `score(TrigramKN().fit(train_poems, vocab), test_poems)["perplexity"]`.

Interpolated Kneser–Ney (Chen & Goodman 1998) with one discount per order, estimated as
D = n1 / (n1 + 2 n2) from that order's count-of-counts. The unigram level is interpolated with a
uniform distribution over the vocabulary plus `<unk>`, so no character ever gets probability 0.

Each poem is one sequence padded with two `<s>`; punctuation is an ordinary token. Scoring covers
the 15 characters of lines 2–4 (`SCORED_POSITIONS`), the same positions the LSTM evaluation scores.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable, NamedTuple

import numpy as np

BOS = "<s>"
UNK = "<unk>"
POEM_LENGTH = 24
# Lines 2–4 of `XXXXX，XXXXX。XXXXX，XXXXX。` without their punctuation: 6..10, 12..16, 18..22.
SCORED_POSITIONS: tuple[int, ...] = tuple(i for start in (6, 12, 18) for i in range(start, start + 5))
FALLBACK_DISCOUNT = 0.75


def estimate_discount(counts: Iterable[int]) -> float:
    """n1 / (n1 + 2 n2); 0.75 when either is missing, as the formula then gives 0 or 1."""
    count_of_counts = Counter(counts)
    n1, n2 = count_of_counts[1], count_of_counts[2]
    if n1 == 0 or n2 == 0:
        return FALLBACK_DISCOUNT
    return n1 / (n1 + 2 * n2)


class _History(NamedTuple):
    """What follows one history: counts per next token, their sum, and how many distinct ones."""
    counts: dict[int, int]
    total: int
    types: int


def _group_by_history(ngram_counts: dict[tuple, int]) -> dict:
    grouped: dict = defaultdict(dict)
    for (*history, token), count in ngram_counts.items():
        key = tuple(history) if len(history) > 1 else history[0]
        grouped[key][token] = count
    return {h: _History(c, sum(c.values()), len(c)) for h, c in grouped.items()}


class TrigramKN:
    """Interpolated Kneser–Ney character trigram model; `discount` fixes D for every order."""

    def __init__(self, discount: float | None = None):
        if discount is not None and not 0 < discount <= 1:
            raise ValueError(f"discount must lie in (0, 1], not {discount}")
        self.fixed_discount = discount

    # ---- fitting -------------------------------------------------------------------------
    def fit(self, poems: Iterable[str], vocab: set[str] | None = None) -> TrigramKN:
        """Fit on texts (24-character poems, or any short strings); chars outside `vocab` → `<unk>`."""
        return self.fit_sequences([list(poem) for poem in poems], vocab)

    def fit_sequences(self, sequences: Iterable[list[str]], vocab: set[str] | None = None) -> TrigramKN:
        sequences = [list(seq) for seq in sequences]
        if not any(sequences):
            raise ValueError("cannot fit a trigram model on no text")
        if vocab is None:
            vocab = {tok for seq in sequences for tok in seq}
        # Sorted ids make fitting and argmax ties deterministic.
        self.tokens: list[str] = sorted(set(vocab) - {BOS, UNK}) + [UNK]
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        self.unk_id = len(self.tokens) - 1
        self.bos_id = len(self.tokens)  # a history-only token: never predicted

        trigrams: Counter = Counter()
        for seq in sequences:
            ids = [self.bos_id, self.bos_id] + [self.index.get(tok, self.unk_id) for tok in seq]
            trigrams.update(zip(ids, ids[1:], ids[2:]))
        # Lower orders count distinct left contexts (continuation counts), the heart of KN.
        bigram_continuations = Counter((v, w) for (_u, v, w) in trigrams)
        unigram_continuations = Counter(w for (_v, w) in bigram_continuations)

        self.discounts = tuple(
            self.fixed_discount if self.fixed_discount is not None else estimate_discount(c.values())
            for c in (unigram_continuations, bigram_continuations, trigrams))
        self._trigram = _group_by_history(trigrams)
        self._bigram = _group_by_history(bigram_continuations)
        self._unigram = self._unigram_distribution(unigram_continuations)
        self._top1_cache: dict[tuple[int, int], int] = {}
        return self

    def _unigram_distribution(self, continuations: Counter) -> np.ndarray:
        d1 = self.discounts[0]
        counts = np.zeros(len(self.tokens))
        for token, count in continuations.items():
            counts[token] = count
        total, types = counts.sum(), np.count_nonzero(counts)
        uniform = 1.0 / len(self.tokens)
        return np.maximum(counts - d1, 0) / total + d1 * types / total * uniform

    # ---- probabilities -------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Predictable tokens: the vocabulary plus `<unk>`."""
        return len(self.tokens)

    def token_id(self, ch: str) -> int:
        return self.bos_id if ch == BOS else self.index.get(ch, self.unk_id)

    def prob(self, ch: str, h2: str, h1: str) -> float:
        """P(ch | h2 h1); h2 is the older character, `<s>` before the start."""
        u, v, w = self.token_id(h2), self.token_id(h1), self.token_id(ch)
        if w == self.bos_id:
            raise ValueError("<s> is never predicted")
        p = float(self._unigram[w])
        p = _interpolate(self._bigram.get(v), w, p, self.discounts[1])
        return _interpolate(self._trigram.get((u, v)), w, p, self.discounts[2])

    def log_prob(self, ch: str, h2: str, h1: str) -> float:
        """Natural log of `prob`."""
        return math.log(self.prob(ch, h2, h1))

    def distribution(self, h2: str, h1: str) -> np.ndarray:
        """P(· | h2 h1) over `self.tokens` (vocabulary order, `<unk>` last); sums to 1."""
        return self._distribution(self.token_id(h2), self.token_id(h1))

    def _distribution(self, u: int, v: int) -> np.ndarray:
        p = _interpolate_vector(self._bigram.get(v), self._unigram, self.discounts[1])
        return _interpolate_vector(self._trigram.get((u, v)), p, self.discounts[2])

    def top1(self, h2: str, h1: str) -> str:
        """The likeliest next token (possibly `<unk>`); cached per history."""
        return self.tokens[self._top1_id(self.token_id(h2), self.token_id(h1))]

    def _top1_id(self, u: int, v: int) -> int:
        best = self._top1_cache.get((u, v))
        if best is None:
            best = self._top1_cache[(u, v)] = int(np.argmax(self._distribution(u, v)))
        return best


def _interpolate(history: _History | None, token: int, lower: float, discount: float) -> float:
    if history is None:  # unseen history: all mass goes to the lower order
        return lower
    direct = max(history.counts.get(token, 0) - discount, 0) / history.total
    return direct + discount * history.types / history.total * lower


def _interpolate_vector(history: _History | None, lower: np.ndarray, discount: float) -> np.ndarray:
    if history is None:
        return lower
    out = lower * (discount * history.types / history.total)
    ids = np.fromiter(history.counts.keys(), dtype=np.int64, count=history.types)
    counts = np.fromiter(history.counts.values(), dtype=np.float64, count=history.types)
    out[ids] += np.maximum(counts - discount, 0) / history.total
    return out


# ---- scoring ---------------------------------------------------------------------------------
class PoemScore(NamedTuple):
    log_prob: float  # natural log, summed over the scored characters
    chars: int
    correct: int     # top-1 predictions equal to the true token (`<unk>` matches `<unk>`)
    unknown: int     # scored characters outside the vocabulary


def score_poem(model: TrigramKN, poem: str) -> PoemScore:
    """Score lines 2–4 of one 24-character poem given everything before each character."""
    if len(poem) != POEM_LENGTH:
        raise ValueError(f"expected a {POEM_LENGTH}-character poem, got {len(poem)}: {poem!r}")
    ids = [model.token_id(ch) for ch in poem]
    log_prob, correct, unknown = 0.0, 0, 0
    for i in SCORED_POSITIONS:  # all ≥ 6, so both history characters lie inside the poem
        u, v, w = ids[i - 2], ids[i - 1], ids[i]
        log_prob += math.log(model.prob(poem[i], poem[i - 2], poem[i - 1]))
        correct += model._top1_id(u, v) == w
        unknown += w == model.unk_id
    return PoemScore(log_prob, len(SCORED_POSITIONS), correct, unknown)


def score(model: TrigramKN, poems: Iterable[str]) -> dict:
    """Per-character perplexity and top-1 accuracy over lines 2–4 of `poems`.

    Returns {"perplexity", "accuracy", "chars", "unknown", "poems"}.
    """
    total = PoemScore(0.0, 0, 0, 0)
    n_poems = 0
    for poem in poems:
        one = score_poem(model, poem)
        total = PoemScore(*(a + b for a, b in zip(total, one)))
        n_poems += 1
    if n_poems == 0:
        raise ValueError("no poems to score")
    return {
        "perplexity": math.exp(-total.log_prob / total.chars),
        "accuracy": total.correct / total.chars,
        "chars": total.chars,
        "unknown": total.unknown,
        "poems": n_poems,
    }
