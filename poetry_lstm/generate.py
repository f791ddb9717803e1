"""Finish a quatrain from its first line: `complete_poem(load_model_dir("models/word2vec"), "床前明月光")`.

Form is built in (the decoder places ，。，。 and only lets CJK characters into the 15 slots);
tones, rhyme and novelty are masks over the vocabulary, and the model's log-probabilities are
renormalised over what each mask allows. Sampling and beam search both advance every candidate
in one batched NumPy step of the LSTM (`LstmStepper`), keeping its state between characters.
Masks are built once per vocabulary and looked up per step, so a step costs little beyond the LSTM.
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import prosody
from .clean import IS_CJK, to_simplified
from .errors import InputError
from .metrics import line_hash
from .model import TrainedModel

PUNCT = {5: "，", 11: "。", 17: "，", 23: "。"}  # positions of the decoder-placed marks
RELAX_ORDER = ("novelty", "rhyme", "tones")  # what a dead end gives up first
BOTH = frozenset({prosody.PING, prosody.ZE})


@dataclass
class Poem:
    text: str
    lines: list[str]
    score: float  # mean log-probability of the generated characters under the model
    checks: dict
    warnings: list[str] = field(default_factory=list)
    form: str | None = None


@dataclass
class Result:
    first_line: str
    poems: list[Poem]
    warnings: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    keyword_used: str | None = None


def sample_next(logp: np.ndarray, allowed: np.ndarray, rng: np.random.Generator,
                temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> int:
    """One token id from log-probabilities (vocab,), renormalised over `allowed` (vocab,) bool."""
    ids = np.flatnonzero(allowed)
    if not len(ids):
        raise ValueError("no token is allowed")
    logits = logp[ids]
    if 0 < top_k < len(ids):  # partial sort: only the head matters
        head = np.argpartition(-logits, top_k - 1)[:top_k]
        ids, logits = ids[head], logits[head]
    if top_p < 1.0:  # the nucleus is a head of the sorted list; plain sampling needs no order
        order = np.argsort(-logits, kind="stable")
        ids, logits = ids[order], logits[order]
    cdf = np.cumsum(np.exp((logits - logits.max()) / max(temperature, 1e-6)))
    if top_p < 1.0:  # the smallest head whose mass reaches top_p
        cdf = cdf[: int(np.searchsorted(cdf, top_p * cdf[-1])) + 1]
    # Inverse-CDF draw: one uniform number, without Generator.choice's per-call checks.
    return int(ids[min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1)])


class VocabMasks:
    """Boolean masks over one model's vocabulary, computed once per model."""

    def __init__(self, tokens: tuple[str, ...]):
        self.tokens = tokens
        self.cjk = np.array([len(t) == 1 and bool(IS_CJK.match(t)) for t in tokens])
        readings = [prosody.reading(t) if c else (frozenset(), frozenset()) for t, c in zip(tokens, self.cjk)]
        ping, self.ze = (np.array([tone in r[0] for r in readings]) for tone in (prosody.PING, prosody.ZE))
        # One mask per set of tones a slot may take: a step looks its mask up instead of building it.
        self.by_tones = {frozenset(t): (ping if prosody.PING in t else False) | (self.ze if prosody.ZE in t else False)
                         for t in ((), (prosody.PING,), (prosody.ZE,), BOTH)}
        self.groups: dict[str, np.ndarray] = {}
        for i, (_, groups) in enumerate(readings):
            for g in groups:
                self.groups.setdefault(g, np.zeros(len(tokens), bool))[i] = True
        self.all_groups = frozenset(self.groups)

    @lru_cache(maxsize=4096)  # a handful of group sets recur all the time
    def of_groups(self, groups: frozenset, partner: bool = False) -> np.ndarray:
        """Characters in any of `groups`; with `partner`, only groups of two characters or more: a rhyme
        opener (line 2's end, a 平-only line 1 end) needs one, or line 4 would have nothing to rhyme with."""
        out = np.zeros(len(self.tokens), bool)
        for g in groups & self.all_groups:
            if not partner or self.groups[g].sum() >= 2:
                out |= self.groups[g]
        return out


@lru_cache(maxsize=4)
def masks_for(tokens: tuple[str, ...]) -> VocabMasks:
    return VocabMasks(tokens)


@dataclass
class Candidate:
    chars: list[str]          # 24 slots, "" where not yet chosen
    forced: dict[int, str]    # position → character the user fixed (first line, heads, keyword)
    types: tuple | None       # line types of the chosen form, or None with tones off
    form: str | None
    logp: float = 0.0
    generated: int = 0
    relaxed: list[str] = field(default_factory=list)


class Decoder:
    def __init__(self, trained: TrainedModel, tones=True, rhyme=True, novelty=True):
        self.m, self.vocab = trained, trained.vocab
        self.masks = masks_for(trained.vocab.tokens)
        self.on = {"tones": tones, "rhyme": rhyme, "novelty": novelty}
        self.train_hashes = trained.line_hashes() if novelty else set()

    def allowed(self, c: Candidate, pos: int, drop: tuple = ()) -> np.ndarray:
        """Mask of characters allowed at `pos` for `c`, without the constraints in `drop` (may be shared: copy to write)."""
        mk, line = self.masks, pos // 6
        on = {k: v and k not in drop for k, v in self.on.items()}
        tones = BOTH
        if on["tones"] and c.types and c.types[line]:
            later = tuple((i - line * 6, ch) for i, ch in sorted(c.forced.items()) if pos < i < line * 6 + 5)
            tones = prosody.allowed_tones(c.types[line], "".join(c.chars[line * 6:pos]), later=later)
        m = mk.by_tones[tones] if on["tones"] else mk.cjk
        if on["rhyme"]:
            first_end = c.chars[4] or c.forced.get(4, "")
            first_rhymes = prosody.reading(first_end)[0] == {prosody.PING}  # a 平-only line 1 end rhymes too
            if pos == 4:  # known (check_rhyme needs it), and if 平-only, a rhyme opener
                m = m & (mk.ze | mk.of_groups(mk.all_groups, partner=True))
            elif pos == 10:
                m = m & mk.of_groups(prosody.rhyme_groups(first_end) if first_rhymes else mk.all_groups, partner=True)
                m[self.vocab.id(first_end)] = False  # no 重韵: a rhyme character is not used twice
            elif pos == 16:
                m = m & mk.ze
            elif pos == 22:
                groups = prosody.rhyme_groups(c.chars[10])
                m = m & mk.of_groups(groups & prosody.rhyme_groups(first_end) if first_rhymes else groups)
                m[[self.vocab.id(c.chars[10]), self.vocab.id(first_end)]] = False  # a new array: safe to write
        if on["novelty"]:  # no character three times, counting forced characters still to come
            counts = Counter(c.chars) + Counter(ch for i, ch in c.forced.items() if not c.chars[i])
            twice = [self.vocab.id(ch) for ch, k in counts.items() if k >= 2 and len(ch) == 1]
            if twice:
                m = m.copy()
                m[twice] = False
        return m

    def line_is_new(self, c: Candidate, pos: int, ch: str) -> bool:
        """If `ch` completes its line: the line is no training line and no earlier line of the poem."""
        start = pos - pos % 6
        if not self.on["novelty"] or any(p not in c.forced for p in range(pos + 1, start + 5)):
            return True
        line = "".join(c.chars[start:pos]) + ch + "".join(c.forced[p] for p in range(pos + 1, start + 5))
        earlier = {"".join(c.chars[i:i + 5]) for i in range(0, start, 6)}
        return line not in earlier and line_hash(line) not in self.train_hashes

    def options(self, c: Candidate, pos: int) -> tuple[np.ndarray, list[str]]:
        """The allowed mask, giving up constraints (novelty, then rhyme, then tones) only at a dead end."""
        dropped, m = [], self.allowed(c, pos)
        for name in (name for name in RELAX_ORDER if self.on[name] and not m.any()):
            dropped.append(name)
            m = self.allowed(c, pos, tuple(dropped))
        for name in dropped[:-1]:  # take back what the dead end did not need, so the warning names the culprit
            rest = tuple(d for d in dropped if d != name)
            if (kept := self.allowed(c, pos, rest)).any():
                dropped, m = list(rest), kept
        return m, dropped

    def finish(self, c: Candidate) -> Poem:
        text = "".join(c.chars)
        checks = prosody.check_poem(text)
        lines = prosody.split_lines(text)
        generated = [ln for i, ln in enumerate(lines) if not all(p in c.forced for p in range(i * 6, i * 6 + 5))]
        checks["copied"] = any(line_hash(ln) in self.train_hashes for ln in generated) if self.on["novelty"] else None
        warnings = [f"could not keep {name} at every step (the model had no allowed character)" for name in dict.fromkeys(c.relaxed)]
        return Poem(text, lines, round(c.logp / max(c.generated, 1), 4), checks, warnings, c.form)


def sample_poems(dec: Decoder, cands: list[Candidate], rng, temperature, top_k, top_p) -> list[Candidate]:
    """Fill every slot of each candidate by sampling, all candidates advancing in one batch."""
    stepper, tokens = dec.m.stepper, dec.vocab.tokens
    state = stepper.initial_state(len(cands))
    prev = np.full(len(cands), dec.vocab.id("<s>"))
    for pos in range(24):
        logp, state = stepper.step(prev, state)  # (batch, vocab)
        for b, c in enumerate(cands):
            fixed = PUNCT.get(pos) or c.forced.get(pos)
            if fixed:
                c.chars[pos] = fixed
            else:
                m, dropped = dec.options(c, pos)
                i = sample_next(logp[b], m, rng, temperature, top_k, top_p)
                while not dec.line_is_new(c, pos, tokens[i]):  # resample the line's last character
                    m = m.copy()
                    m[i] = False
                    if not m.any():  # every allowed ending repeats a line: keep it, marked
                        dropped.append("novelty")
                        break
                    i = sample_next(logp[b], m, rng, temperature, top_k, top_p)
                c.chars[pos], c.logp, c.generated = tokens[i], c.logp + float(logp[b, i]), c.generated + 1
                c.relaxed += dropped
            prev[b] = dec.vocab.id(c.chars[pos])
    return cands


def beam_poems(dec: Decoder, seed: Candidate, width: int) -> list[Candidate]:
    """Beam search over the free slots, ranked by the model's own log-probability.

    All beams share the seed's forced slots, so a forced step only appends; a free step takes the
    best `width` (beam, character) pairs from the whole (beams, vocab) score table at once.
    """
    stepper, tokens, size = dec.m.stepper, dec.vocab.tokens, len(dec.vocab)
    beams, state = [seed], stepper.initial_state(1)
    prev = np.array([dec.vocab.id("<s>")])
    for pos in range(24):
        logp, state = stepper.step(prev, state)  # (beams, vocab)
        fixed = PUNCT.get(pos) or seed.forced.get(pos)
        if fixed:
            for c in beams:
                c.chars[pos] = fixed
            prev = np.full(len(beams), dec.vocab.id(fixed))
            continue
        masks, drops = zip(*(dec.options(c, pos) for c in beams))
        totals = np.where(np.stack(masks), logp + np.array([[c.logp] for c in beams]), -np.inf).ravel()
        k = min(2 * width, int(np.isfinite(totals).sum()))
        top = np.argpartition(-totals, k - 1)[:k]
        top = top[np.argsort(-totals[top], kind="stable")]
        fresh = lambda f: dec.line_is_new(beams[f // size], pos, tokens[f % size])
        picked = [f for f in top if fresh(f)][:width]
        if not picked:  # the likely choices all repeat a line: look further down the table
            rest = np.flatnonzero(np.isfinite(totals))
            picked = [f for f in rest[np.argsort(-totals[rest], kind="stable")] if fresh(f)][:1]
        novelty = [] if picked else ["novelty"]
        rows, ids = np.divmod(np.array(picked or top[:1]), size)  # nothing new anywhere: the likeliest, marked
        beams = [Candidate(beams[b].chars[:pos] + [tokens[i]] + beams[b].chars[pos + 1:], seed.forced, seed.types, seed.form,
                           beams[b].logp + float(logp[b, i]), beams[b].generated + 1, beams[b].relaxed + list(drops[b]) + novelty)
                 for b, i in zip(rows, ids)]
        state = [(h[rows], c_[rows]) for h, c_ in state]
        prev = ids
    return beams


def decode(trained: TrainedModel, make_seed, *, n=3, temperature=0.9, top_k=0, top_p=0.9, beam=1, seed=0,
           tones=True, rhyme=True, novelty=True, max_tries=20) -> list[Poem]:
    """`make_seed(rng)` → a fresh Candidate; returns n distinct poems, cleanest and likeliest first.

    A dead end gives a constraint up for that step only (the poem says which); sampling then draws
    again, at most `max_tries` rounds of n, until n poems kept every constraint.
    """
    dec = Decoder(trained, tones, rhyme, novelty)
    rng = np.random.default_rng(seed)
    found: dict[str, Poem] = {}
    if beam > 1:
        for c in beam_poems(dec, make_seed(rng), max(beam, n)):
            found.setdefault("".join(c.chars), dec.finish(c))
    else:
        for _ in range(max(max_tries, 1)):
            if sum(not p.warnings for p in found.values()) >= n:
                break
            for c in sample_poems(dec, [make_seed(rng) for _ in range(n)], rng, temperature, top_k, top_p):
                found.setdefault("".join(c.chars), dec.finish(c))
    return sorted(found.values(), key=lambda p: (len(p.warnings), -p.score))[:n]


def choose_form(rng, tones: bool, line: str | None = None, heads: str = "") -> tuple[str | None, tuple | None, list[str]]:
    """(form, its line types, notes): a form the given first line fits, or one whose lines each head can start."""
    if not tones:
        return None, None, []
    fitting = prosody.forms_for_first_line(line) if line else (
        [f for f, types in prosody.FORMS.items() if all(prosody.allowed_tones(t, h) for t, h in zip(types, heads))] or list(prosody.FORMS))
    if not fitting:  # only a given first line can fit none; lines 2–4 still follow a form
        form = str(rng.choice(list(prosody.FORMS)))
        return form, (None,) + prosody.FORMS[form][1:], [f"the first line fits none of the four tone patterns; lines 2–4 follow {form}"]
    form = str(rng.choice(fitting))
    return form, prosody.FORMS[form], []


def normalize_line(raw: str, what: str = "The first line", size: int = 5, example: str = "床前明月光") -> str:
    """`size` CJK characters in simplified form (，/,/。/. at the end dropped), or an InputError saying what is wrong."""
    count = {4: "four", 5: "five"}.get(size, str(size))
    text = (raw or "").strip().rstrip("，,。.").strip()
    if not text:
        raise InputError(f"{what} is empty; type {count} Chinese characters, e.g. {example}.")
    inner = [ch for ch in text if unicodedata.category(ch).startswith("P")]
    if inner:
        raise InputError(f"{what} has punctuation inside ({''.join(inner)}); type {count} characters without it, e.g. {example}.")
    text = to_simplified(text)
    bad = [ch for ch in text if not IS_CJK.match(ch)]
    if len(text) != size or bad:
        extra = f", and {''.join(bad)!r} {'is not a Chinese character' if len(bad) == 1 else 'are not Chinese characters'}" if bad else ""
        raise InputError(f"{what} must be {count} Chinese characters, but it has {len(text)}{extra}; e.g. {example}.")
    return text


def unknown_warning(trained: TrainedModel, chars: str) -> list[str]:
    unknown = [ch for ch in dict.fromkeys(chars) if ch not in trained.vocab]
    return [f"{''.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not in the model's vocabulary: read as unknown"] if unknown else []


def complete_poem(trained: TrainedModel, first_line: str, **options) -> Result:
    """Finish the quatrain that starts with `first_line` (traditional or simplified, ，/。 optional)."""
    line = normalize_line(first_line)
    notes: list[str] = []

    def make_seed(rng):
        form, types, notes[:] = choose_form(rng, options.get("tones", True), line=line)
        return Candidate([""] * 24, dict(enumerate(line)), types, form)

    poems = decode(trained, make_seed, **options)
    if options.get("rhyme", True) and not prosody.is_known(line[-1]):
        notes.append(f"{line[-1]} has no known tone in 平水韵, so the rhyme check cannot pass")
    return Result(line, poems, unknown_warning(trained, line) + notes)


def acrostic_poem(trained: TrainedModel, heads: str, **options) -> Result:
    """A 藏头诗: line i starts with heads[i]; the first line is generated too."""
    heads = normalize_line(heads, "An acrostic (one head per line)", 4, "春夏秋冬")

    def make_seed(rng):
        form, types, _ = choose_form(rng, options.get("tones", True), heads=heads)
        return Candidate([""] * 24, {i * 6: ch for i, ch in enumerate(heads)}, types, form)

    poems = decode(trained, make_seed, **options)
    return Result(poems[0].lines[0] if poems else "", poems, unknown_warning(trained, heads))


def theme_keywords(trained: TrainedModel, theme: str, vectors=None) -> list[tuple[str, list[str]]]:
    """(keyword, in-vocabulary characters for it) for each jieba keyword of the theme that maps somewhere."""
    import jieba
    import jieba.analyse

    jieba.setLogLevel(60)  # its "Building prefix dict" chatter is not for users
    usable = lambda c: c in trained.vocab and prosody.is_known(c)
    found = []
    for word in jieba.analyse.extract_tags(to_simplified(theme), topK=8):
        chars = []
        for ch in filter(IS_CJK.match, word):
            # A character the model lacks borrows its two nearest neighbours that it knows.
            near = [] if vectors is None or ch not in vectors.key_to_index else [c for c, _ in vectors.most_similar(ch, topn=20)]
            chars += [ch] if usable(ch) else [c for c in near if usable(c)][:2]
        if chars:
            found.append((word, list(dict.fromkeys(chars))))
    return found


def theme_poem(trained: TrainedModel, theme: str, vectors=None, **options) -> Result:
    """A poem on a theme in modern Chinese: line 1 contains a character of its first usable keyword."""
    if not (theme or "").strip():
        raise InputError("The theme is empty; describe it in a few words, e.g. 思念故乡的秋夜.")
    keywords = theme_keywords(trained, theme, vectors)
    if not keywords:
        raise InputError(f"The theme {theme.strip()!r} has no keyword the model can use; try plainer words, e.g. 思念故乡的秋夜.")
    word, (ch, *_) = keywords[0]

    def make_seed(rng):  # the keyword goes where its tone fits line 1 of the chosen form
        form, types, _ = choose_form(rng, options.get("tones", True))
        fits = lambda j: prosody.reading(ch)[0] & prosody.allowed_tones(types[0], "", j)
        spots = [j for j in range(5) if not types or fits(j)] or list(range(5))
        return Candidate([""] * 24, {int(rng.choice(spots)): ch}, types, form)

    poems = decode(trained, make_seed, **options)
    return Result(poems[0].lines[0] if poems else "", poems, [], [w for w, _ in keywords], f"{word} → {ch}")
