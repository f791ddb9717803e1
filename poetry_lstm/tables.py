"""The decoder's tables for one vocabulary: `tables = load_tables(folder, vocab)`.

Which tokens may be written at all, their tones and 平声 groups as masks over the vocabulary, the
frequency prior and where each 叠字 may double. They depend only on the vocabulary and the 平水韵
table, so `calibrate` (and `train`, through it) builds them once and stores them as
`models/<mode>/tables.npz`; a poem then reads 0.3 MB instead of building them (about 0.2 s). A
stored file whose key does not match the vocabulary and the rhyme table is ignored and rebuilt in
memory, so a stale file costs time, never wrong poems.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import files, layout, prosody
from .clean import VARIANT_FORMS, is_cjk, to_simplified
from .errors import PoetryError
from .modeldir import TABLES_FILE, Vocab

VERSION = 2  # bump when what the tables hold or how they are built changes
COMMON = 1500  # the frequency penalty's floor: about the 1500th most frequent character
DOUBLE_AT = (1, 3, 4)  # old vocabularies: line places (from 0) of a 叠字's second character, 悠悠 at 0–1, 2–3, 3–4
BOTH = frozenset({prosody.PING, prosody.ZE})


@dataclass(eq=False)
class DecoderTables:
    """Masks and priors over one vocabulary, (V,) each unless noted."""
    tokens: tuple[str, ...]
    writable: np.ndarray    # bool: a CJK character in its simplified standard form (no 疎, no 雲)
    ping: np.ndarray        # bool: has a 平 reading (any token, writable or not)
    ze: np.ndarray          # bool: has a 仄 reading
    group_names: tuple[str, ...]
    members: np.ndarray     # (groups, V) bool: token is in that 平声 group
    sure: np.ndarray        # (groups, V) bool: every reading of the token rhymes there (sure_rhyme_groups)
    log_prior: np.ndarray   # float32: log training frequency, floored at the COMMON-th character
    doubles: np.ndarray     # (4, V) bool (a 七绝's: (6, V)): row i lets a character double at places i and i+1
    by_tones: dict = field(init=False)
    groups: dict = field(init=False)

    def __post_init__(self):
        none = np.zeros(len(self.tokens), bool)  # an array even for no tone: callers copy and index it
        ping, self.ze_writable = self.ping & self.writable, self.ze & self.writable
        # One mask per set of tones a slot may take: a step looks its mask up instead of building it.
        self.by_tones = {frozenset(t): (ping if prosody.PING in t else none)
                                       | (self.ze_writable if prosody.ZE in t else none)
                         for t in ((), (prosody.PING,), (prosody.ZE,), BOTH)}
        self.groups = {g: row & self.writable for g, row in zip(self.group_names, self.members)
                       if (row & self.writable).any()}
        self.sure_groups = {g: row & self.writable for g, row in zip(self.group_names, self.sure) if g in self.groups}
        self.all_groups = frozenset(self.groups)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.of_groups = lru_cache(maxsize=4096)(self._of_groups)  # a handful of group sets recur all the time

    def _of_groups(self, groups: frozenset, partner: bool = False, sure: bool = False) -> np.ndarray:
        """Characters in any of `groups`; with `partner`, only groups of two characters or more: a rhyme
        opener (line 2's end, a rhyming line 1 end) needs one, or line 4 would have nothing to rhyme with.
        With `sure`, only characters every reading of which rhymes there (no 机 for 上平五微)."""
        rows = self.sure_groups if sure else self.groups
        out = np.zeros(len(self.tokens), bool)
        for g in groups & self.all_groups:
            if not partner or rows[g].sum() >= 2:
                out |= rows[g]
        return out

    def reading_of(self, ch: str) -> prosody.Reading | None:
        """(tones, 平声 groups) of a one-character token as `prosody.reading` gives it; None for another string."""
        i = self.index.get(ch) if len(ch) == 1 else None
        if i is None:
            return None
        tones = frozenset(t for t, on in ((prosody.PING, self.ping[i]), (prosody.ZE, self.ze[i])) if on)
        return tones, frozenset(name for name, on in zip(self.group_names, self.members[:, i]) if on)

    def sure_groups_of(self, ch: str) -> frozenset[str] | None:
        """`prosody.sure_rhyme_groups(ch)` for a one-character token; None for another string."""
        i = self.index.get(ch) if len(ch) == 1 else None
        if i is None:
            return None
        return frozenset(name for name, on in zip(self.group_names, self.sure[:, i]) if on)

    def save(self, path: Path, key: str) -> None:
        with files.atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, key=np.array(key), tokens=np.array(json.dumps(self.tokens, ensure_ascii=False)),
                                writable=self.writable, ping=self.ping, ze=self.ze,
                                group_names=np.array(self.group_names),
                                members=self.members, sure=self.sure, log_prior=self.log_prior,
                                doubles=self.doubles)


def table_key(vocab: Vocab) -> str:
    """What the tables depend on: the vocabulary with its counts and 叠字, the 平水韵 readings and
    the variant forms never written."""
    digest = hashlib.sha1(json.dumps([VERSION, vocab.tokens, vocab.counts, vocab.doubles, vocab.doubles_at,
                                      sorted(VARIANT_FORMS.items())], ensure_ascii=False).encode("utf-8"))
    digest.update(prosody.fingerprint().encode("ascii"))
    return digest.hexdigest()


def build_tables(vocab: Vocab) -> DecoderTables:
    """The tables from the vocabulary and the 平水韵 table (the slow way: every reading looked up)."""
    tokens = vocab.tokens
    single = [len(t) == 1 for t in tokens]
    # Variant forms (疎 for 疏) and traditional ones the corpus kept are never written: output is
    # simplified as the input is.
    writable = np.array([s and is_cjk(t) and t not in VARIANT_FORMS and to_simplified(t) == t
                         for t, s in zip(tokens, single)])
    readings = [prosody.reading(t) if s else (frozenset(), frozenset()) for t, s in zip(tokens, single)]
    ping, ze = (np.array([tone in r[0] for r in readings]) for tone in (prosody.PING, prosody.ZE))
    names = tuple(sorted({g for _, groups in readings for g in groups}))
    members = np.zeros((len(names), len(tokens)), bool)
    index = {g: i for i, g in enumerate(names)}
    sure = np.zeros_like(members)
    for i, (_, groups) in enumerate(readings):
        members[[index[g] for g in groups], i] = True
        if groups:
            sure[[index[g] for g in prosody.sure_rhyme_groups(tokens[i])], i] = True
    log_prior, doubles = _prior(vocab)
    return DecoderTables(tokens, writable, ping, ze, names, members, sure, log_prior, doubles)


def _prior(vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """(log training frequency (V,), 叠字 allowed at each line place (4, V)); zeros and none for an
    old vocabulary. Characters rarer than the COMMON-th all count as that one: the frequency penalty
    evens out generic characters, it must not push rare ones into the poem."""
    tokens = vocab.tokens
    counts = np.array(vocab.counts or [0] * len(tokens), dtype=np.float64)
    log_prior = np.where(counts > 0, np.log(np.maximum(counts, 1) / max(counts.sum(), 1)), 0.0).astype(np.float32)
    common = np.sort(log_prior[log_prior < 0])[::-1]
    if len(common):
        log_prior = np.maximum(log_prior, common[min(COMMON, len(common) - 1)])
    mask = np.zeros((len(vocab.doubles_at) or layout.CHARS - 1, len(tokens)), bool)  # a 七绝's vocabulary: 6 places
    # A vocabulary from before doubles_at knows only which characters double: allow them where quatrains mostly do.
    places = vocab.doubles_at or [vocab.doubles if at + 1 in DOUBLE_AT else "" for at in range(layout.CHARS - 1)]
    for at, chars in enumerate(places):
        mask[at, [vocab.index[ch] for ch in chars if ch in vocab.index]] = True
    return log_prior, mask


def read_tables(path: Path, key: str, tokens: tuple[str, ...]) -> DecoderTables | None:
    """The stored tables if they exist and were built for `key`, else None."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key or tuple(json.loads(str(data["tokens"]))) != tokens:
                return None
            return DecoderTables(tokens, data["writable"], data["ping"], data["ze"],
                                 tuple(str(g) for g in data["group_names"]),
                                 data["members"], data["sure"], data["log_prior"], data["doubles"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        # missing, torn or foreign: build them instead
        return None


def load_tables(folder: Path, vocab: Vocab) -> DecoderTables:
    """The model folder's stored tables when they match, else built now; either way the readings of
    the vocabulary are handed to `prosody`, so a poem's checks need not load the whole table."""
    tables = read_tables(Path(folder) / TABLES_FILE, table_key(vocab), vocab.tokens) or build_tables(vocab)
    prosody.remember(tables)
    return tables


def write_tables(folder: Path, vocab: Vocab) -> Path:
    """Build the tables and store them in the model folder (calibrate and train do this)."""
    if not Path(folder).is_dir():
        raise PoetryError(f"No model folder at {folder} to write the decoder's tables into.", kind="model_missing",
                          path=str(folder))
    path = Path(folder) / TABLES_FILE
    build_tables(vocab).save(path, table_key(vocab))
    return path
