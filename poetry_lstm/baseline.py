"""Character n-gram models: `score(TrigramKN().fit(train_poems, vocab), test_poems)["perplexity"]`.

Interpolated Kneser–Ney (Chen & Goodman 1998) of any order (`KneserNey(order)`; `TrigramKN` is
order 3, the baseline beside the LSTM; `judge.py` uses order 4), with one discount per order,
estimated as D = n1 / (n1 + 2 n2) from that order's count-of-counts. The unigram level is
interpolated with a uniform distribution over the vocabulary plus `<unk>`, so no character ever
gets probability 0.

Counts live in sorted NumPy arrays of packed n-gram keys rather than dictionaries: fitting on the
million lines of all five-character verse takes seconds, and scoring many positions is one
vectorised lookup per order.

Each text is one sequence padded with order − 1 `<s>`; punctuation is an ordinary token. `score`
covers the 15 characters of lines 2–4 (`SCORED_POSITIONS`), the same positions the LSTM evaluation scores.
"""
from __future__ import annotations

import math
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from . import layout

BOS = "<s>"
UNK = "<unk>"
POEM_LENGTH = layout.SLOTS


def scored_positions(shape: layout.Shape = layout.FIVE) -> tuple[int, ...]:
    """Lines 2–4 without their punctuation: 6..10, 12..16, 18..22 of `XXXXX，XXXXX。XXXXX，XXXXX。` (a 七绝: 8..14,
    16..22, 24..30)."""
    return tuple(i for line in range(1, shape.lines) for i in shape.line_slots(line))


SCORED_POSITIONS: tuple[int, ...] = scored_positions()
FALLBACK_DISCOUNT = 0.75


def estimate_discount(counts: Iterable[int]) -> float:
    """n1 / (n1 + 2 n2); 0.75 when either is missing, as the formula then gives 0 or 1."""
    values = np.asarray(counts if isinstance(counts, np.ndarray) else list(counts))
    n1, n2 = int((values == 1).sum()), int((values == 2).sum())
    if n1 == 0 or n2 == 0:
        return FALLBACK_DISCOUNT
    return n1 / (n1 + 2 * n2)


class _Level(NamedTuple):
    """One order k ≥ 2: its k-grams as sorted packed keys (history × base + token) with their
    counts (raw at the top order, distinct left contexts below), and per history their sum, how
    many distinct tokens follow, and where its k-grams start in `keys`."""
    keys: np.ndarray       # int64, sorted
    counts: np.ndarray     # float64
    histories: np.ndarray  # int64, sorted, unique
    totals: np.ndarray     # float64
    types: np.ndarray      # float64
    starts: np.ndarray     # int64, len(histories) + 1


def _level(keys: np.ndarray, counts: np.ndarray, base: int) -> _Level:
    histories, starts, types = np.unique(keys // base, return_index=True, return_counts=True)
    totals = np.add.reduceat(counts, starts).astype(np.float64)
    return _Level(keys, counts.astype(np.float64), histories, totals, types.astype(np.float64),
                  np.append(starts, len(keys)))


def _find(sorted_keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each wanted key in sorted_keys, clipped to a valid index; whether it is there)."""
    at = np.minimum(np.searchsorted(sorted_keys, wanted), len(sorted_keys) - 1)
    return at, sorted_keys[at] == wanted


class KneserNey:
    """Interpolated Kneser–Ney character n-gram model; `discount` fixes D for every order."""

    def __init__(self, order: int = 3, discount: float | None = None):
        if order < 1:
            raise ValueError(f"order must be at least 1, not {order}")
        if discount is not None and not 0 < discount <= 1:
            raise ValueError(f"discount must lie in (0, 1], not {discount}")
        self.order = order
        self.fixed_discount = discount

    # ---- fitting -------------------------------------------------------------------------
    def fit(self, texts: Iterable[str], vocab: set[str] | None = None) -> KneserNey:
        """Fit on texts (24-character poems, lines, any strings); chars outside `vocab` → `<unk>`."""
        return self.fit_sequences(texts, vocab)

    def fit_sequences(self, sequences: Iterable[Sequence[str]], vocab: set[str] | None = None) -> KneserNey:
        """Fit on token sequences (a string is a sequence of characters)."""
        sequences = [seq if isinstance(seq, str) else list(seq) for seq in sequences]
        if not any(sequences):
            raise ValueError(f"cannot fit an order-{self.order} model on no text")
        if vocab is None:
            vocab = {tok for seq in sequences for tok in seq}
        self._set_vocabulary(vocab)
        flat, ends = self._padded_ids(sequences)
        keys = np.zeros(len(ends), dtype=np.int64)
        for back in range(self.order - 1, -1, -1):
            keys = keys * self.base + flat[ends - back]
        # Lower orders count distinct left contexts (continuation counts), the heart of KN:
        # the k-grams that are suffixes of distinct (k+1)-grams.
        by_order = {self.order: np.unique(keys, return_counts=True)}
        for k in range(self.order - 1, 0, -1):
            by_order[k] = np.unique(by_order[k + 1][0] % self.base ** k, return_counts=True)
        self.discounts = tuple(
            self.fixed_discount if self.fixed_discount is not None else estimate_discount(by_order[k][1])
            for k in range(1, self.order + 1))
        self._levels = [_level(*by_order[k], self.base) for k in range(2, self.order + 1)]
        self._unigram = self._unigram_distribution(*by_order[1])
        self._top1_cache: dict[tuple[int, ...], int] = {}
        return self

    def _set_vocabulary(self, vocab: set[str]) -> None:
        # Sorted ids make fitting and argmax ties deterministic.
        self.tokens: list[str] = sorted(set(vocab) - {BOS, UNK}) + [UNK]
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        self.unk_id = len(self.tokens) - 1
        self.bos_id = len(self.tokens)  # a history-only token: never predicted
        self.base = len(self.tokens) + 1
        if self.base ** self.order >= 2 ** 63:
            raise ValueError(f"{len(self.tokens)} tokens are too many for packed {self.order}-gram keys")

    def _padded_ids(self, sequences: list) -> tuple[np.ndarray, np.ndarray]:
        """(every sequence's ids after order − 1 `<s>`, concatenated; the positions of real tokens)."""
        pad, get, unk = [self.bos_id] * (self.order - 1), self.index.get, self.unk_id
        flat: list[int] = []
        for seq in sequences:
            flat += pad
            flat += [get(tok, unk) for tok in seq]
        flat_ids = np.array(flat, dtype=np.int64)
        return flat_ids, np.flatnonzero(flat_ids != self.bos_id)

    def _unigram_distribution(self, ids: np.ndarray, continuations: np.ndarray) -> np.ndarray:
        d1 = self.discounts[0]
        counts = np.zeros(len(self.tokens))
        counts[ids] = continuations
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

    def _history_ids(self, history: Sequence[str]) -> tuple[int, ...]:
        if len(history) != self.order - 1:
            raise ValueError(f"an order-{self.order} model needs {self.order - 1} history tokens, not {len(history)}")
        return tuple(self.token_id(h) for h in history)

    def prob(self, ch: str, *history: str) -> float:
        """P(ch | history), the history oldest first, `<s>` before the start."""
        w = self.token_id(ch)
        if w == self.bos_id:
            raise ValueError("<s> is never predicted")
        context = np.array([self._history_ids(history)], dtype=np.int64).reshape(1, self.order - 1)
        return float(self.probs(context, np.array([w]))[0])

    def log_prob(self, ch: str, *history: str) -> float:
        """Natural log of `prob`."""
        return math.log(self.prob(ch, *history))

    def probs(self, contexts: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """P(target | context) for (m, order − 1) context ids (oldest first) and (m,) target ids."""
        p = self._unigram[targets]
        for k, level in enumerate(self._levels, start=2):
            d = self.discounts[k - 1]
            history = self._pack(contexts[:, contexts.shape[1] - (k - 1):])
            row, seen = _find(level.histories, history)
            at, found = _find(level.keys, history * self.base + targets)
            count = np.where(found, level.counts[at], 0.0)
            total, types = level.totals[row], level.types[row]
            p = np.where(seen, np.maximum(count - d, 0) / total + d * types / total * p, p)
        return p

    def _pack(self, ids: np.ndarray) -> np.ndarray:
        key = np.zeros(len(ids), dtype=np.int64)
        for column in ids.T:
            key = key * self.base + column
        return key

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, length) ids of equally long texts, left-padded with order − 1 `<s>`."""
        lengths = {len(t) for t in texts}
        if len(lengths) != 1:
            raise ValueError(f"texts to score together must have one length, not {sorted(lengths)}")
        get, unk = self.index.get, self.unk_id
        ids = np.array([[get(ch, unk) for ch in t] for t in texts], dtype=np.int64).reshape(len(texts), lengths.pop())
        return np.hstack([np.full((len(texts), self.order - 1), self.bos_id, dtype=np.int64), ids])

    def text_log_probs(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, length) natural-log probabilities of each character of equally long texts,
        each text scored as its own sequence from `<s>`."""
        padded = self.encode(texts)
        n, width = self.order - 1, padded.shape[1] - (self.order - 1)
        contexts = np.stack([padded[:, i:i + n] for i in range(width)], axis=1).reshape(len(texts) * width, n)
        targets = padded[:, n:].reshape(-1)
        return np.log(self.probs(contexts, targets)).reshape(len(texts), width)

    def distribution(self, *history: str) -> np.ndarray:
        """P(· | history) over `self.tokens` (vocabulary order, `<unk>` last); sums to 1."""
        return self._distribution(self._history_ids(history))

    def _distribution(self, context: tuple[int, ...]) -> np.ndarray:
        p = self._unigram
        for k, level in enumerate(self._levels, start=2):
            d = self.discounts[k - 1]
            history = self._pack(np.array([context[len(context) - (k - 1):]], dtype=np.int64))
            row, seen = _find(level.histories, history)
            if not seen[0]:  # unseen history: all mass stays with the lower order
                continue
            row = int(row[0])
            lo, hi = level.starts[row], level.starts[row + 1]
            total, types = level.totals[row], level.types[row]
            out = p * (d * types / total)
            out[level.keys[lo:hi] % self.base] += np.maximum(level.counts[lo:hi] - d, 0) / total
            p = out
        return p

    def top1(self, *history: str) -> str:
        """The likeliest next token (possibly `<unk>`); cached per history."""
        return self.tokens[self._top1_id(*self._history_ids(history))]

    def _top1_id(self, *context: int) -> int:
        best = self._top1_cache.get(context)
        if best is None:
            best = self._top1_cache[context] = int(np.argmax(self._distribution(context)))
        return best


class TrigramKN(KneserNey):
    """Interpolated Kneser–Ney character trigram model: `prob(ch, h2, h1)`, h2 the older character."""

    def __init__(self, discount: float | None = None):
        super().__init__(order=3, discount=discount)


# ---- scoring ---------------------------------------------------------------------------------
class PoemScore(NamedTuple):
    log_prob: float  # natural log, summed over the scored characters
    chars: int
    correct: int     # top-1 predictions equal to the true token (`<unk>` matches `<unk>`)
    unknown: int     # scored characters outside the vocabulary


def _check_poems(poems: Sequence[str]) -> layout.Shape:
    """The one shape of `poems` (all 24 characters, or all 32)."""
    if not poems:
        raise ValueError("no poems to score")
    lengths = {len(p) for p in poems}
    shape = layout.shape_of_text(poems[0]) if len(lengths) == 1 else None
    if shape is None:
        raise ValueError(f"expected {POEM_LENGTH}-character poems (or all {layout.SEVEN.slots}-character ones), "
                         f"got lengths {sorted(lengths)}")
    return shape


def score_poems(model: KneserNey, poems: Sequence[str]) -> PoemScore:
    """Lines 2–4 of 24-character (or 32-character) poems, each character given everything before it in its poem."""
    shape = _check_poems(poems)
    padded = model.encode(poems)  # column j + order − 1 holds poem[j]
    n = model.order - 1
    positions = np.array(scored_positions(shape))
    contexts = np.stack([padded[:, i:i + n] for i in positions], axis=1).reshape(len(poems) * len(positions), n)
    targets = padded[:, positions + n].reshape(-1)
    log_prob = float(np.log(model.probs(contexts, targets)).sum())
    correct = sum(model._top1_id(*map(int, c)) == w for c, w in zip(contexts, targets))
    return PoemScore(log_prob, len(targets), int(correct), int((targets == model.unk_id).sum()))


def score_poem(model: KneserNey, poem: str) -> PoemScore:
    """Score lines 2–4 of one 24-character poem given everything before each character."""
    return score_poems(model, [poem])


def score(model: KneserNey, poems: Iterable[str]) -> dict:
    """Per-character perplexity and top-1 accuracy over lines 2–4 of `poems`.

    Returns {"perplexity", "accuracy", "chars", "unknown", "poems"}.
    """
    poems = list(poems)
    if not poems:
        raise ValueError("no poems to score")
    total = score_poems(model, poems)
    return {
        "perplexity": math.exp(-total.log_prob / total.chars),
        "accuracy": total.correct / total.chars,
        "chars": total.chars,
        "unknown": total.unknown,
        "poems": len(poems),
    }
