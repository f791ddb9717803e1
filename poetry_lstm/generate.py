"""Finish a quatrain from its first line: `complete_poem(load_model_dir("models/word2vec"), "床前明月光")`.

Form is built in (the decoder places ，。，。 and only lets CJK characters into the 15 slots);
tones, rhyme and novelty are masks over the vocabulary, and the model's log-probabilities are
renormalised over what each mask allows. Sampling and beam search both advance every candidate
in one batched NumPy step of the LSTM (`LstmStepper`), keeping its state between characters.
Masks are built once per vocabulary and looked up per step, so a step costs little beyond the LSTM.

For meaning (`Style`): each step's choice subtracts `frequency_penalty` × log training frequency,
so generic characters (不, 一, 可) do not crowd out images; no stutter (是是) unless the character
is a real 叠字 where poems double it, and no two-character word of an earlier line again; sampling
draws `candidates` poems per answer and keeps the one that scores best with `coherence` × its
similarity to line 1; beam search penalises a beam's lower-ranked children (`sibling_penalty`).
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import layout, prosody
from .clean import IS_CJK, IS_HAN, to_simplified
from .errors import InputError
from .model import TrainedModel

PUNCT = layout.MARKS  # the decoder places the marks
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
    # (line, character), both from 1, of the given characters (first line, acrostic heads) that
    # break `form`: the first line is never changed, so the form it breaks least is followed
    breaks: list[tuple[int, int]] = field(default_factory=list)
    coherence: float = 0.0  # mean cosine of lines 2–4's characters to line 1 (Decoder.coherence)
    rank: float = 0.0       # what the decoder maximised among candidates (Decoder.rank)


@dataclass(frozen=True)
class Style:
    """Decoder knobs for meaning, chosen by the reading measures (see config/default.toml)."""
    candidates: int = 8             # sampling: poems drawn per answer, the best kept
    coherence: float = 1.0          # weight of the similarity of lines 2–4 to line 1 in that choice
    frequency_penalty: float = 0.3  # λ: each step scores log p(char | poem) − λ log p(char)
    sibling_penalty: float = 0.5    # beam: per rank among one beam's own children
    beam_noise: float = 0.0         # beam: scale of the Gumbel noise added to each step's scores (0 = plain beam)
    overuse_penalty: float = 0.0    # × each character's measured over-use (overuse.py), taken from its score


@dataclass
class Result:
    first_line: str
    poems: list[Poem]
    warnings: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    keyword_used: str | None = None


NOISE_HEAD = 64  # a stochastic beam perturbs this many children of each beam
NUCLEUS_HEAD = 512  # top-p sorts only this many of the ~8000 allowed characters when they hold the nucleus


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
        if len(ids) > NUCLEUS_HEAD:  # sort a head only, when it holds the nucleus (it nearly always does)
            part = np.argpartition(-logits, NUCLEUS_HEAD - 1)[:NUCLEUS_HEAD]
            weights = np.exp((logits - logits.max()) / max(temperature, 1e-6))
            if weights[part].sum() >= top_p * weights.sum():
                ids, logits = ids[part], logits[part]
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
        # Variant forms (疎 for 疏) and traditional ones the corpus kept are never written: output is
        # simplified as the input is.
        self.cjk = np.array([len(t) == 1 and bool(IS_CJK.match(t)) and t not in VARIANT_FORMS and to_simplified(t) == t
                             for t in tokens])
        readings = [prosody.reading(t) if c else (frozenset(), frozenset()) for t, c in zip(tokens, self.cjk)]
        ping, self.ze = (np.array([tone in r[0] for r in readings]) for tone in (prosody.PING, prosody.ZE))
        # One mask per set of tones a slot may take: a step looks its mask up instead of building it.
        none = np.zeros(len(tokens), bool)  # an array even for no tone: callers copy and index it
        self.by_tones = {frozenset(t): (ping if prosody.PING in t else none) | (self.ze if prosody.ZE in t else none)
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
    chars: list[str]          # layout.SLOTS slots, "" where not yet chosen
    forced: dict[int, str]    # position → character the user fixed (first line, heads, keyword)
    types: tuple | None       # line types of the chosen form, or None with tones off
    form: str | None
    logp: float = 0.0
    generated: int = 0
    relaxed: list[str] = field(default_factory=list)
    free: frozenset = frozenset()  # forced positions that break the form: tones treat them as fitting any slot
    score: float = 0.0             # beam search: log-probabilities plus the frequency penalty, summed


def _vocab_prior(vocab) -> tuple[np.ndarray, np.ndarray]:
    return _prior_of(vocab.tokens, vocab.counts, vocab.doubles, vocab.doubles_at)


@lru_cache(maxsize=4)  # keyed by all four: vocabularies with equal tokens may differ in counts
def _prior_of(tokens: tuple, counts: tuple, doubles: str, doubles_at: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(log training frequency (vocab,), 叠字 allowed at each line place (4, vocab): row i lets a
    character double at places i and i+1); zeros and none for an old vocabulary.

    Characters rarer than the COMMON-th all count as that one: the frequency penalty evens out
    generic characters, it must not push rare ones into the poem."""
    index = {t: i for i, t in enumerate(tokens)}
    counts = np.array(counts or [0] * len(tokens), dtype=np.float64)
    log_prior = np.where(counts > 0, np.log(np.maximum(counts, 1) / max(counts.sum(), 1)), 0.0).astype(np.float32)
    common = np.sort(log_prior[log_prior < 0])[::-1]
    if len(common):
        log_prior = np.maximum(log_prior, common[min(COMMON, len(common) - 1)])
    mask = np.zeros((layout.CHARS - 1, len(tokens)), bool)
    # A vocabulary from before doubles_at knows only which characters double: allow them where quatrains mostly do.
    for at, chars in enumerate(doubles_at or [doubles if at + 1 in DOUBLE_AT else "" for at in range(layout.CHARS - 1)]):
        mask[at, [index[ch] for ch in chars if ch in index]] = True
    return log_prior, mask


# 异体字 of the Tang and Song texts that OpenCC's t2s keeps, each with the standard simplified form
# (found by listing the model vocabulary's characters that the 平水韵 table spells another way).
VARIANT_FORMS = dict(zip("疎踈髪劒浄迳猨鶑髙鬭鬬懽隣罇檝幷峩堦怱穉飜迺廻缾鳯畧逈潄秪秖歳暎栢悮犂輙竝緜顇欵顦憇薫呌碁讐鏁邨効鸎徴囘衞虵棃窻箒脇蕚趂朶悤",
                         "疏疏发剑净径猿莺高斗斗欢邻尊楫并峨阶匆稚翻乃回瓶凤略迥漱只只岁映柏误犁辄并绵悴款憔憩薰叫棋雠锁村效莺征回卫蛇梨窗帚胁萼趁朵匆"))
COMMON = 1500  # the frequency penalty's floor: about the 1500th most frequent character
DOUBLE_AT = (1, 3, 4)  # old vocabularies: line places (from 0) of a 叠字's second character, 悠悠 at 0–1, 2–3, 3–4


class Decoder:
    def __init__(self, trained: TrainedModel, tones=True, rhyme=True, novelty=True, style: Style = Style()):
        self.m, self.vocab, self.style = trained, trained.vocab, style
        self.masks = masks_for(trained.vocab.tokens)
        self.on = {"tones": tones, "rhyme": rhyme, "novelty": novelty}
        self.train_hashes = trained.line_hashes() if novelty else set()
        log_prior, self.doubles = _vocab_prior(trained.vocab)
        # (vocab,) added to each step's log-probabilities
        self.penalty = -style.frequency_penalty * log_prior - style.overuse_penalty * trained.overuse()
        emb = trained.stepper.embedding
        self.unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-6)  # (vocab, dim) for cosines

    def repeats(self, c: Candidate, pos: int) -> list[int]:
        """Ids that would stutter (是是, unless a real 叠字 where poems double) or echo a two-character
        word of an earlier line (春风 … 春风)."""
        at = layout.char_of(pos)
        prev = c.chars[pos - 1] if at else ""
        if not prev:
            return []
        out = [] if self.doubles[at - 1, self.vocab.id(prev)] and (at < 2 or c.chars[pos - 2] != prev) else [prev]
        for start in layout.LINE_STARTS[:layout.line_of(pos)]:
            line = c.chars[start:start + layout.CHARS]
            out += [line[j + 1] for j in range(4) if line[j] == prev and line[j + 1]]
        return [self.vocab.id(ch) for ch in out]

    def coherence(self, c: Candidate) -> float:
        """Mean cosine of lines 2–4's characters to line 1's centroid, in the model's input embedding
        (the skip-gram vectors in word2vec mode): how near the poem stays to its first line."""
        ids = [self.vocab.id(ch) for ch in c.chars if len(ch) == 1 and IS_CJK.match(ch)]
        first, rest = self.unit[ids[:layout.CHARS]].mean(axis=0), self.unit[ids[layout.CHARS:]]
        return float((rest @ (first / max(np.linalg.norm(first), 1e-6))).mean()) if len(rest) else 0.0

    def rank(self, c: Candidate) -> float:
        """What a best-of-K choice maximises: the model's mean log-probability, less the frequency
        penalty of the chosen characters, plus the coherence with line 1."""
        free = [self.vocab.id(ch) for i, ch in enumerate(c.chars) if i not in c.forced and i not in PUNCT]
        return c.logp / max(c.generated, 1) + float(self.penalty[free].mean() if free else 0) + self.style.coherence * self.coherence(c)

    def allowed(self, c: Candidate, pos: int, drop: tuple = ()) -> np.ndarray:
        """Mask of characters allowed at `pos` for `c`, without the constraints in `drop` (may be shared: copy to write)."""
        mk, line = self.masks, layout.line_of(pos)
        slots = layout.line_slots(line)
        on = {k: v and k not in drop for k, v in self.on.items()}
        tones = BOTH
        if on["tones"] and c.types and c.types[line]:
            as_fitting = lambda i, ch: prosody.ANY if i in c.free else ch
            later = tuple((layout.char_of(i), as_fitting(i, ch)) for i, ch in sorted(c.forced.items()) if pos < i < slots.stop)
            prefix = "".join(as_fitting(i, c.chars[i]) for i in range(slots.start, pos))
            tones = prosody.allowed_tones(c.types[line], prefix, later=later)
        m = mk.by_tones[tones] if on["tones"] else mk.cjk
        if on["rhyme"]:
            one, two, three, four = layout.LINE_ENDS
            first_end = c.chars[one] or c.forced.get(one, "")
            first_rhymes = prosody.reading(first_end)[0] == {prosody.PING}  # a 平-only line 1 end rhymes too
            if pos == one:  # known (check_rhyme needs it), and if 平-only, a rhyme opener
                m = m & (mk.ze | mk.of_groups(mk.all_groups, partner=True))
            elif pos == two:
                m = m & mk.of_groups(prosody.rhyme_groups(first_end) if first_rhymes else mk.all_groups, partner=True)
                m[self.vocab.id(first_end)] = False  # no 重韵: a rhyme character is not used twice
            elif pos == three:
                m = m & mk.ze
            elif pos == four:
                groups = prosody.rhyme_groups(c.chars[two])
                m = m & mk.of_groups(groups & prosody.rhyme_groups(first_end) if first_rhymes else groups)
                m[[self.vocab.id(c.chars[two]), self.vocab.id(first_end)]] = False  # a new array: safe to write
        if on["novelty"]:  # no character three times (counting forced ones still to come), no stutter, no echo
            counts = Counter(c.chars) + Counter(ch for i, ch in c.forced.items() if not c.chars[i])
            banned = [self.vocab.id(ch) for ch, k in counts.items() if k >= 2 and len(ch) == 1]
            banned += self.repeats(c, pos) if "repeats" not in drop else []
            if banned:
                m = m.copy()
                m[banned] = False
        return m

    def line_is_new(self, c: Candidate, pos: int, ch: str) -> bool:
        """If `ch` completes its line: the line is no training line and no earlier line of the poem."""
        slots = layout.line_slots(layout.line_of(pos))
        if not self.on["novelty"] or any(p not in c.forced for p in range(pos + 1, slots.stop)):
            return True
        line = "".join(c.chars[slots.start:pos]) + ch + "".join(c.forced[p] for p in range(pos + 1, slots.stop))
        earlier = {"".join(c.chars[i:i + layout.CHARS]) for i in layout.LINE_STARTS if i < slots.start}
        return line not in earlier and line not in self.train_hashes

    def options(self, c: Candidate, pos: int) -> tuple[np.ndarray, list[str]]:
        """The allowed mask, giving up constraints (novelty, then rhyme, then tones) only at a dead end.

        Stutters and echoes are a matter of style, not a rule: a dead end lets them go first, unmarked."""
        dropped, base, m = [], (), self.allowed(c, pos)
        if not m.any():
            base = ("repeats",)
            m = self.allowed(c, pos, base)
        for name in (name for name in RELAX_ORDER if self.on[name] and not m.any()):
            dropped.append(name)
            m = self.allowed(c, pos, base + tuple(dropped))
        for name in dropped[:-1]:  # take back what the dead end did not need, so the warning names the culprit
            rest = tuple(d for d in dropped if d != name)
            if (kept := self.allowed(c, pos, base + rest)).any():
                dropped, m = list(rest), kept
        return m, dropped

    def finish(self, c: Candidate) -> Poem:
        text = "".join(c.chars)
        checks = prosody.check_poem(text)
        lines = prosody.split_lines(text)
        generated = [ln for i, ln in enumerate(lines) if not all(p in c.forced for p in layout.line_slots(i))]
        checks["copied"] = any(ln in self.train_hashes for ln in generated) if self.on["novelty"] else None
        warnings = [f"could not keep {name} at every step (the model had no allowed character)" for name in dict.fromkeys(c.relaxed)]
        breaks = sorted((layout.line_of(i) + 1, layout.char_of(i) + 1) for i in c.free)
        return Poem(text, lines, round(c.logp / max(c.generated, 1), 4), checks, warnings, c.form, breaks,
                    round(self.coherence(c), 4), round(self.rank(c), 4))


def _fixed(c: Candidate, pos: int) -> str | None:
    """The mark or the given character at `pos`, or None where the decoder chooses."""
    return PUNCT.get(pos) or c.forced.get(pos)


def sample_poems(dec: Decoder, cands: list[Candidate], rngs: list, temperature, top_k, top_p) -> list[Candidate]:
    """Fill every slot of each candidate by sampling, all candidates advancing in one batch; each
    candidate draws from its own generator, so it does not depend on how many share the batch."""
    stepper, tokens = dec.m.stepper, dec.vocab.tokens
    # The characters every candidate has fixed from the start (a given first line) run once, not per candidate.
    shared = 0
    while shared < layout.SLOTS and _fixed(cands[0], shared) and all(_fixed(c, shared) == _fixed(cands[0], shared) for c in cands):
        shared += 1
    prefix = [dec.vocab.id("<s>")] + [dec.vocab.id(_fixed(cands[0], p)) for p in range(shared)]
    state = stepper.initial_state(1)
    for t in prefix[:-1]:
        _, state = stepper.step(np.array([t]), state, logits=False)
    state = [tuple(np.repeat(x, len(cands), axis=0) for x in layer) for layer in state]
    prev = np.full(len(cands), prefix[-1])
    for pos in range(shared):
        for c in cands:
            c.chars[pos] = _fixed(c, pos)
    for pos in range(shared, layout.SLOTS):
        needed = any(not _fixed(c, pos) for c in cands)
        logp, state = stepper.step(prev, state, logits=needed)  # (batch, vocab)
        scores = logp + dec.penalty if needed else None  # (batch, vocab): what the choice sees
        for b, (c, rng) in enumerate(zip(cands, rngs)):
            fixed = _fixed(c, pos)
            if fixed:
                c.chars[pos] = fixed
            else:
                m, dropped = dec.options(c, pos)
                i = sample_next(scores[b], m, rng, temperature, top_k, top_p)
                while not dec.line_is_new(c, pos, tokens[i]):  # resample the line's last character
                    m = m.copy()
                    m[i] = False
                    if not m.any():  # every allowed ending repeats a line: keep it, marked
                        dropped.append("novelty")
                        break
                    i = sample_next(scores[b], m, rng, temperature, top_k, top_p)
                c.chars[pos], c.logp, c.generated = tokens[i], c.logp + float(logp[b, i]), c.generated + 1
                c.relaxed += dropped
            prev[b] = dec.vocab.id(c.chars[pos])
    return cands


def beam_poems(dec: Decoder, seed: Candidate, width: int, rng: np.random.Generator | None = None) -> list[Candidate]:
    """Beam search over the free slots, ranked by the model's log-probability plus the frequency penalty.

    All beams share the seed's forced slots, so a forced step only appends; a free step takes the
    best `width` (beam, character) pairs from the whole (beams, vocab) score table at once. With
    `style.beam_noise`, each step's scores get Gumbel noise of that scale from `rng` (a stochastic
    beam): different first lines stop converging on the same likeliest lines.
    """
    stepper, tokens, size = dec.m.stepper, dec.vocab.tokens, len(dec.vocab)
    beams, state = [seed], stepper.initial_state(1)
    prev = np.array([dec.vocab.id("<s>")])
    noise = dec.style.beam_noise if rng is not None else 0.0
    for pos in range(layout.SLOTS):
        logp, state = stepper.step(prev, state)  # (beams, vocab)
        fixed = _fixed(seed, pos)
        if fixed:
            for c in beams:
                c.chars[pos] = fixed
            prev = np.full(len(beams), dec.vocab.id(fixed))
            continue
        masks, drops = zip(*(dec.options(c, pos) for c in beams))
        scores = np.where(np.stack(masks), logp + dec.penalty, -np.inf)  # (beams, vocab)
        # Each beam's children lose sibling_penalty per rank below its best child, so the next
        # beams come from several parents instead of one parent's near-identical lines. The noise
        # goes on each beam's NOISE_HEAD best children only: past them it would take salad to win.
        k = min(2 * width, size)
        n_head = min(NOISE_HEAD, size) if noise else k
        head = np.argpartition(-scores, n_head - 1, axis=1)[:, :n_head]
        head_scores = np.take_along_axis(scores, head, axis=1)  # (beams, head)
        if noise:
            head_scores = head_scores + noise * rng.gumbel(size=head_scores.shape).astype(np.float32)
        order = np.argsort(-head_scores, axis=1, kind="stable")[:, :k]
        head, head_scores = np.take_along_axis(head, order, axis=1), np.take_along_axis(head_scores, order, axis=1)
        head_scores = head_scores - dec.style.sibling_penalty * np.arange(k) + np.array([[c.score] for c in beams])
        totals = np.full(len(beams) * size, -np.inf)
        totals[(np.arange(len(beams))[:, None] * size + head).ravel()] = head_scores.ravel()
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
                           beams[b].logp + float(logp[b, i]), beams[b].generated + 1, beams[b].relaxed + list(drops[b]) + novelty,
                           seed.free, beams[b].score + float(scores[b, i]))
                 for b, i in zip(rows, ids)]
        state = [(h[rows], c_[rows]) for h, c_ in state]
        prev = ids
    return beams


def _generator(seed: int, *path: int) -> np.random.Generator:
    """A generator for one candidate, fixed by the seed (any integer, negatives too) and its place."""
    return np.random.default_rng([seed % 2**64, *path])


def decode(trained: TrainedModel, make_seed, *, n=3, temperature=0.9, top_k=0, top_p=0.9, beam=1, seed=0,
           tones=True, rhyme=True, novelty=True, max_tries=20, **style) -> list[Poem]:
    """`make_seed(rng)` → a fresh Candidate; returns n distinct poems (beam: cleanest and best-ranked first).

    Sampling draws `style.candidates` poems per answer in one batch and keeps the best by
    `Decoder.rank`. A dead end gives a constraint up for that step only (the poem says which);
    answers without a poem that kept every constraint draw again, at most `max_tries` rounds.
    Answer i's candidates come from generators fixed by (seed, i, round, j), so the first answers
    are the same whatever n is.
    """
    style = Style(**style)  # candidates, coherence, frequency_penalty, sibling_penalty, beam_noise, overuse_penalty
    dec = Decoder(trained, tones, rhyme, novelty, style)
    order = lambda p: (len(p.warnings), -p.rank)
    if beam > 1:
        found: dict[str, Poem] = {}
        rng = _generator(seed)
        for c in beam_poems(dec, make_seed(rng), max(beam, n), rng):
            found.setdefault("".join(c.chars), dec.finish(c))
        return sorted(found.values(), key=order)[:n]
    pools: list[dict[str, Poem]] = [{} for _ in range(n)]
    pending, k = list(range(n)), max(style.candidates, 1)
    for round_ in range(max(max_tries, 1)):
        places = [(i, j) for i in pending for j in range(k)]
        rngs = [_generator(seed, i, round_, j) for i, j in places]
        for (i, _), c in zip(places, sample_poems(dec, [make_seed(r) for r in rngs], rngs, temperature, top_k, top_p)):
            pools[i].setdefault("".join(c.chars), dec.finish(c))
        pending = [i for i in pending if not any(not p.warnings for p in pools[i].values())]
        if not pending:
            break
    chosen: list[Poem] = []
    for pool in pools:  # answer i takes its best poem that an earlier answer did not take
        taken = {p.text for p in chosen}
        best = sorted((p for p in pool.values() if p.text not in taken), key=order)
        if best:
            chosen.append(best[0])
    return chosen  # in answer order: answer 1 stays answer 1 when more are asked for


def choose_form(rng, tones: bool, line: str | None = None, heads: str = "") -> tuple[str | None, tuple | None, frozenset]:
    """(form, its line types, slots of given characters that break it).

    A form the given first line (or every acrostic head) fits; when none fits, one of those it
    breaks least, since the given text is never changed (`break_notes` names the breaks).
    """
    if not tones:
        return None, None, frozenset()
    if line:
        costs = {f: prosody.break_cost(line, types[0]) for f, types in prosody.FORMS.items()}
    else:  # a head breaks a form when no variant of its line type can start with it
        costs = {f: sum(not prosody.allowed_tones(t, h) for t, h in zip(types, heads)) for f, types in prosody.FORMS.items()}
    best = min(costs.values())
    form = str(rng.choice([f for f, cost in costs.items() if cost == best]))
    types = prosody.FORMS[form]
    if not best:
        return form, types, frozenset()
    if line:
        return form, types, frozenset(prosody.breaks(line, types[0]))
    return form, types, frozenset(layout.slot(i, 0) for i, (t, h) in enumerate(zip(types, heads)) if not prosody.allowed_tones(t, h))


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
    bad = "".join(ch for ch in text if not IS_HAN.match(ch))
    if bad:
        raise InputError(f"{what} must be {count} Chinese characters, and {bad!r} "
                         f"{'is not one' if len(bad) == 1 else 'are not Chinese characters'}; e.g. {example}.")
    if len(text) != size:
        raise InputError(f"{what} must be {count} Chinese characters, but it has {len(text)}; e.g. {example}.")
    return text


def unknown_warning(trained: TrainedModel, chars: str) -> list[str]:
    unknown = [ch for ch in dict.fromkeys(chars) if ch not in trained.vocab]
    return [f"{''.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not in the model's vocabulary: read as unknown"] if unknown else []


def complete_poem(trained: TrainedModel, first_line: str, **options) -> Result:
    """Finish the quatrain that starts with `first_line` (traditional or simplified, ，/。 optional)."""
    line = normalize_line(first_line)

    def make_seed(rng):
        form, types, free = choose_form(rng, options.get("tones", True), line=line)
        return Candidate([""] * layout.SLOTS, dict(enumerate(line)), types, form, free=free)

    poems = decode(trained, make_seed, **options)
    notes = break_notes(poems, line)
    if options.get("rhyme", True) and not prosody.is_known(line[-1]):
        notes.append(f"{line[-1]} has no known tone in 平水韵, so the rhyme check cannot pass")
    return Result(line, poems, unknown_warning(trained, line) + notes)


def acrostic_poem(trained: TrainedModel, heads: str, **options) -> Result:
    """A 藏头诗: line i starts with heads[i]; the first line is generated too."""
    heads = normalize_line(heads, "An acrostic (one head per line)", 4, "春夏秋冬")

    def make_seed(rng):
        form, types, free = choose_form(rng, options.get("tones", True), heads=heads)
        return Candidate([""] * layout.SLOTS, {layout.slot(i, 0): ch for i, ch in enumerate(heads)}, types, form, free=free)

    poems = decode(trained, make_seed, **options)
    return Result(poems[0].lines[0] if poems else "", poems, unknown_warning(trained, heads) + break_notes(poems))


def break_notes(poems: list[Poem], line: str = "") -> list[str]:
    """One note per form followed despite given characters that break it, named from the poems
    themselves (candidates of one answer may follow different forms)."""
    notes = {}
    for p in poems:
        if p.breaks:
            chars = "".join(p.lines[i - 1][j - 1] for i, j in p.breaks)
            where = ", ".join(str(j) for _, j in p.breaks)
            notes[p.form, chars] = (f"the first line fits none of the four tone patterns; lines 2–4 follow {p.form}, which it "
                                    f"breaks least (character {where}: {chars})" if line else
                                    f"the heads {chars} fit no tone pattern at their place; the poem follows {p.form}, which they break least")
    return list(notes.values())


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
        return Candidate([""] * layout.SLOTS, {int(rng.choice(spots)): ch}, types, form)

    poems = decode(trained, make_seed, **options)
    return Result(poems[0].lines[0] if poems else "", poems, [], [w for w, _ in keywords], f"{word} → {ch}")
