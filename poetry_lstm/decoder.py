"""The constrained decoder: `poems = decode(model, make_seed, settings)`.

Form is built in (the decoder places ，。，。 and only lets CJK characters into the 15 slots);
tones, rhyme and novelty are masks over the vocabulary (`tables.py`, built once per model), and
the model's log-probabilities are renormalised over what each mask allows. Sampling and beam
search both advance every candidate in one batched NumPy step of the LSTM (`LstmStepper`),
keeping its state between characters.

For meaning (`DecodeSettings`): each step's choice subtracts `frequency_penalty` × log training
frequency and `overuse_penalty` × the measured over-use, so generic and stock characters do not
crowd out images; no stutter (是是) unless the character is a real 叠字 where poems double it, and
no two-character word of an earlier line again; sampling draws `candidates` poems per answer and
keeps the one that scores best with `coherence` × its similarity to line 1; beam search penalises
a beam's lower-ranked children (`sibling_penalty`) and adds seeded noise (`beam_noise`).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import layout, prosody
from .clean import is_cjk
from .config import DecodeSettings
from .errors import Note
from .loading import TrainedModel
from .modeldir import BACKWARD, CRITIC, rebuild_command, sense_command
from .tables import BOTH

RELAX_ORDER = ("novelty", "rhyme", "tones")  # what a dead end gives up first
RHYMING_TYPES = ("A", "B")  # line types ending 平: a form whose line 1 is one rhymes it (入韵)
CRITIC_COMMAND = ("`python bench/critic.py train --mode word2vec --poems 8000 --apart-from 4000 "
                  "--out models/critic`")  # a second critic, on first lines the measuring one never saw


@dataclass
class Poem:
    text: str
    lines: list[str]
    score: float  # mean log-probability of the generated characters under the model
    checks: dict
    warnings: list[str] = field(default_factory=list)  # constraints a dead end made the decoder give up
    form: str | None = None
    # (line, character), both from 1, of the given characters (first line, acrostic heads) that
    # break `form`: the first line is never changed, so the form it breaks least is followed
    breaks: list[tuple[int, int]] = field(default_factory=list)
    coherence: float = 0.0  # mean cosine of lines 2–4's characters to line 1 (Decoder.coherence)
    rank: float = 0.0       # what the decoder maximised among candidates (Decoder.rank)
    line_one: float = 0.0   # mean log p(line 1 | lines 2–4), backward; 0 unless `mutual` (Decoder.score_line_one)
    realness: float = 0.0   # the ranking critic's log-odds that the poem is real; 0 unless `critic` (score_critic)
    sense: float = 0.0      # the judge of sense on the poem's last hidden state; 0 unless `sense` (score_sense)
    notes: list[Note] = field(default_factory=list)  # how the poem read what it was given (a polyphonic line-1 end)


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
            if weights[part].sum() < top_p * weights.sum():
                return _nucleus_of_all(ids, logits, rng, temperature, top_p)
            ids, logits = ids[part], logits[part]
        order = np.argsort(-logits, kind="stable")
        ids, logits = ids[order], logits[order]
    cdf = np.cumsum(np.exp((logits - logits.max()) / max(temperature, 1e-6)))
    if top_p < 1.0:  # the smallest head whose mass reaches top_p
        cdf = cdf[: int(np.searchsorted(cdf, top_p * cdf[-1])) + 1]
    # Inverse-CDF draw: one uniform number, without Generator.choice's per-call checks.
    return int(ids[min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1)])


def _nucleus_of_all(ids: np.ndarray, logits: np.ndarray, rng: np.random.Generator, temperature: float,
                    top_p: float) -> int:
    """What `sample_next` draws from a stable sort of all of `logits`, without sorting the ids: the
    values sorted alone give the same cumulative sums, and the drawn place's id is found among the
    logits equal to its value, in their order (a stable sort keeps it). (n,) → one id, 6× faster."""
    desc = -np.sort(-logits)  # the values of logits[argsort(-logits, kind="stable")], bit for bit
    cdf = np.cumsum(np.exp((desc - desc.max()) / max(temperature, 1e-6)))
    cdf = cdf[: int(np.searchsorted(cdf, top_p * cdf[-1])) + 1]
    place = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1)
    value = desc[place]
    return int(ids[np.flatnonzero(logits == value)[place - int(np.count_nonzero(logits > value))]])


@dataclass
class Candidate:
    chars: list[str]          # a layout.Shape's slots (24, a 七绝's 32), "" where not yet chosen
    forced: dict[int, str]    # position → character the user fixed (first line, heads, keyword)
    types: tuple | None       # line types of the chosen form, or None with tones off
    form: str | None
    logp: float = 0.0
    generated: int = 0
    relaxed: list[str] = field(default_factory=list)
    free: frozenset = frozenset()  # forced positions that break the form: tones treat them as fitting any slot
    score: float = 0.0             # beam search: log-probabilities plus the frequency penalty, summed
    line_one: float = 0.0          # mean log p(line 1 | lines 2–4), read backwards (Decoder.score_line_one)
    realness: float = 0.0          # the ranking critic's log-odds that the poem is real (Decoder.score_critic)
    sense: float = 0.0             # the judge of sense: what readers' ratings say of its last hidden state

    @property
    def shape(self) -> layout.Shape:
        return layout.shape_of_text(self.chars)


def line_search_at(shape: layout.Shape) -> tuple[int, int]:
    """The marks after lines 2 and 3: where whole-line search resamples."""
    return shape.line_ends[1] + 1, shape.line_ends[2] + 1


class Decoder:
    """The constraints and scores of one answer's settings over one loaded model."""

    def __init__(self, trained: TrainedModel, settings: DecodeSettings):
        self.m, self.vocab, self.settings, self.tables = trained, trained.vocab, settings, trained.tables
        self.shape = trained.shape
        self.on = {"tones": settings.tones, "rhyme": settings.rhyme, "novelty": settings.novelty}
        self.train_hashes = trained.line_hashes() if settings.novelty else set()
        self.doubles = self.tables.doubles
        # (vocab,) added to each step's log-probabilities
        self.penalty = -settings.frequency_penalty * self.tables.log_prior - settings.overuse_penalty * trained.overuse
        self.unit = trained.unit_embedding  # (vocab, dim) for cosines
        self.backward = trained.scorer() if settings.mutual else None
        self.missing: list[Note] = []  # notes every poem carries: a weight asked for a scorer there is not
        if settings.mutual and self.backward is None:
            folder = trained.path.parent / BACKWARD
            self.missing.append(Note(f"no backward model at {folder}, so the choice did not weigh how lines 2–4 point "
                                    f"back to line 1; train one with {rebuild_command(folder)}", "no_backward",
                                    path=str(folder), command=rebuild_command(folder)))
        self.critic = trained.ranker() if settings.critic else None
        self.sense = trained.sense if settings.sense else None
        if settings.sense and self.sense is None:
            self.missing.append(Note(f"no judge of sense in {trained.path}, so the choice did not weigh what readers' "
                                     f"ratings say; fit one with {sense_command(trained.path)}", "no_sense",
                                     path=str(trained.path), command=sense_command(trained.path)))
        if settings.critic and self.critic is None and self.shape != layout.FIVE:
            self.missing.append(Note("the ranking critic reads 五绝 only, so the choice among these 七绝 did not weigh "
                                     "how real each candidate reads", "no_critic", path="", command=""))
        elif settings.critic and self.critic is None:
            folder = trained.path.parent / CRITIC
            self.missing.append(Note(f"no ranking critic at {folder}, so the choice did not weigh how real each "
                                    f"candidate reads; make one with {CRITIC_COMMAND}", "no_critic",
                                    path=str(folder), command=CRITIC_COMMAND))

    def may_double(self, c: Candidate, pos: int) -> bool:
        """The character before `pos`, in the same line, may be written again at `pos`: a real 叠字 there
        (悠悠 opens lines, 光光 never closes one), and not a third time in a row."""
        at = self.shape.char_of(pos)
        prev = c.chars[pos - 1] if at else ""
        return bool(prev) and bool(self.doubles[at - 1, self.vocab.id(prev)]) and (at < 2 or c.chars[pos - 2] != prev)

    def repeats(self, c: Candidate, pos: int) -> list[int]:
        """Ids that would stutter (是是, unless a real 叠字 where poems double) or echo a two-character
        word of an earlier line (春风 … 春风)."""
        sh = self.shape
        prev = c.chars[pos - 1] if sh.char_of(pos) else ""
        if not prev:
            return []
        out = [] if self.may_double(c, pos) else [prev]
        for start in sh.line_starts[:sh.line_of(pos)]:
            line = c.chars[start:start + sh.chars]
            out += [line[j + 1] for j in range(sh.chars - 1) if line[j] == prev and line[j + 1]]
        return [self.vocab.id(ch) for ch in out]

    def coherence(self, c: Candidate) -> float:
        """Mean cosine of lines 2–4's characters to line 1's centroid, in the model's input embedding
        (the skip-gram vectors in word2vec mode): how near the poem stays to its first line."""
        ids = [self.vocab.id(ch) for ch in c.chars if is_cjk(ch)]
        first, rest = self.unit[ids[:self.shape.chars]].mean(axis=0), self.unit[ids[self.shape.chars:]]
        return float((rest @ (first / max(np.linalg.norm(first), 1e-6))).mean()) if len(rest) else 0.0

    def rank(self, c: Candidate) -> float:
        """What a best-of-K choice maximises: the model's mean log-probability, less the frequency
        penalty of the chosen characters, plus the coherence with line 1."""
        marks = self.shape.marks
        free = [self.vocab.id(ch) for i, ch in enumerate(c.chars) if ch and i not in c.forced and i not in marks]
        penalty = float(self.penalty[free].mean() if free else 0)
        return (c.logp / max(c.generated, 1) + penalty + self.settings.coherence * self.coherence(c)
                + self.settings.mutual * c.line_one + self.settings.critic * c.realness + self.settings.sense * c.sense)

    def score_sense(self, cands: list[Candidate], hidden: np.ndarray | None = None) -> None:
        """Set each finished candidate's `sense`: the judge's weights (sense.json) times the model's last hidden
        state after the whole poem, all candidates in one batch. Readers rated six of our poems from one first
        line at a time; the judge learned which of them they rate higher, in units of the mean log-probability."""
        if self.sense is None or not cands:
            return
        if hidden is None:  # sampling passes the state it ended in; beam search's winners are read again
            hidden = final_hidden(self.m.stepper, self.vocab, ["".join(c.chars) for c in cands])  # (batch, units)
        for c, value in zip(cands, hidden @ self.sense):
            c.sense = float(value)

    def score_critic(self, cands: list[Candidate]) -> None:
        """Set each finished candidate's `realness`: the ranking critic's log-odds that the whole poem is
        real, all candidates in one batch. The critic learned real 五绝 against the decoder's own poems from
        the same first lines, so it knows what ours get wrong that the model's score does not."""
        if self.critic is None or not cands:
            return
        for c, value in zip(cands, self.critic.logit_real(["".join(c.chars) for c in cands])):
            c.realness = float(value)

    def score_line_one(self, cands: list[Candidate]) -> None:
        """Set each finished candidate's `line_one`: the backward model's mean log-probability of line 1's
        characters after lines 4, 3 and 2 read backwards, all candidates in one batch. A continuation
        that could have come from any first line scores low; one that points back to its own, high."""
        if self.backward is None or not cands:
            return
        vocab, stepper, sh = self.backward.vocab, self.backward.stepper, self.shape
        ids = np.array([vocab.encode(sh.reverse_poem("".join(c.chars))) for c in cands])  # (batch, 1 + slots)
        last = sh.line_starts[-1] + 1  # <s> and 18 slots in (a 七绝: 24): line 1, backwards, is what is left
        state = stepper.initial_state(len(cands))
        for t in range(last - 1):
            _, state = stepper.step(ids[:, t], state, logits=False)
        total = np.zeros(len(cands))
        for t in range(last - 1, last - 1 + sh.chars):
            logp, state = stepper.step(ids[:, t], state)  # (batch, vocab)
            total += logp[np.arange(len(cands)), ids[:, t + 1]]
        for c, value in zip(cands, total / sh.chars):
            c.line_one = float(value)

    def rhymes_given(self, c: Candidate, pos: int) -> frozenset:
        """The groups a rhyme end at `pos` must share with the rhyme ends given after it (`revise` keeps the
        other lines); every group when none is given."""
        given = [prosody.rhyme_groups(c.forced[p]) for p in self.shape.line_ends[1::2] if p > pos and p in c.forced]
        return frozenset.intersection(*given) if given else self.tables.all_groups

    def allowed(self, c: Candidate, pos: int, drop: tuple = ()) -> np.ndarray:
        """Mask of characters allowed at `pos` for `c`, without the constraints in `drop` (may be shared:
        copy to write)."""
        mk, sh = self.tables, self.shape
        line = sh.line_of(pos)
        slots = sh.line_slots(line)
        on = {k: v and k not in drop for k, v in self.on.items()}
        tones = BOTH
        if on["tones"] and c.types and c.types[line]:
            as_fitting = lambda i, ch: prosody.ANY if i in c.free else ch
            later = tuple((sh.char_of(i), as_fitting(i, ch)) for i, ch in sorted(c.forced.items())
                          if pos < i < slots.stop)
            prefix = "".join(as_fitting(i, c.chars[i]) for i in range(slots.start, pos))
            tones = prosody.allowed_tones(c.types[line], prefix, later=later, rules=self.settings.rules,
                                          licences=self.settings.licences, chars=sh.chars)
        m = mk.by_tones[tones] if on["tones"] else mk.writable
        if on["rhyme"]:
            one, two, three, four = sh.line_ends
            sure = self.settings.rules == "strict"  # every reading of a rhyme character rhymes (no 机 for 機)
            first_end = c.chars[one] or c.forced.get(one, "")
            first_rhymes = line_one_rhymes(c, first_end)
            if pos == one:  # known (check_rhyme needs it), and if it rhymes, a rhyme opener
                opener = mk.of_groups(self.rhymes_given(c, pos), partner=True, sure=sure)
                m = m & (opener if c.types and c.types[0] in RHYMING_TYPES else mk.ze_writable | opener)
            elif pos == two:
                groups = prosody.rhyme_groups(first_end) if first_rhymes else mk.all_groups
                # a given line 1 may borrow a neighbouring group (孤雁出群): then line 4's group decides
                later = self.rhymes_given(c, pos)
                groups = groups & later or later
                m = m & mk.of_groups(groups, partner=True, sure=sure)
                m[self.vocab.id(first_end)] = False  # no 重韵: a rhyme character is not used twice
            elif pos == three:
                m = m & mk.ze_writable
            elif pos == four:  # under strict rules, a group line 2's end rhymes in by every reading (干: 寒, not 先)
                written = sure and two not in c.forced
                groups = (written and prosody.sure_rhyme_groups(c.chars[two])) or prosody.rhyme_groups(c.chars[two])
                shared = groups & prosody.rhyme_groups(first_end) if first_rhymes else groups
                m = m & mk.of_groups(shared or groups, sure=sure)  # or line 1 borrowed a neighbour (孤雁出群)
                m[[self.vocab.id(c.chars[two]), self.vocab.id(first_end)]] = False  # a new array: safe to write
        if on["novelty"]:  # no character three times (counting forced ones still to come), no stutter, no echo
            counts = Counter(c.chars)
            counts.update(ch for i, ch in c.forced.items() if not c.chars[i])
            once = self.settings.max_char_uses < 2 and "once" not in drop  # no 重字: a dead end lets it go first
            banned = [self.vocab.id(ch) for ch, k in counts.items() if k >= (1 if once else 2) and len(ch) == 1]
            if once and self.may_double(c, pos) and counts[c.chars[pos - 1]] == 1:
                banned.remove(self.vocab.id(c.chars[pos - 1]))  # 青 → 青青: a 叠字 in place is one use
            banned += self.repeats(c, pos) if "repeats" not in drop else []
            if banned:
                m = m.copy()
                m[banned] = False
        return m

    def line_is_new(self, c: Candidate, pos: int, ch: str) -> bool:
        """If `ch` completes its line: the line is no training line and no earlier line of the poem."""
        sh = self.shape
        slots = sh.line_slots(sh.line_of(pos))
        if not self.on["novelty"] or any(p not in c.forced for p in range(pos + 1, slots.stop)):
            return True
        line = "".join(c.chars[slots.start:pos]) + ch + "".join(c.forced[p] for p in range(pos + 1, slots.stop))
        earlier = {"".join(c.chars[i:i + sh.chars]) for i in sh.line_starts if i < slots.start}
        return line not in earlier and line not in self.train_hashes

    def options(self, c: Candidate, pos: int) -> tuple[np.ndarray, list[str]]:
        """The allowed mask, giving up constraints (novelty, then rhyme, then tones) only at a dead end.

        One use per character, then stutters and echoes, are matters of style, not rules: a dead end lets
        them go first, in that order, unmarked."""
        dropped, base, m = [], (), self.allowed(c, pos)
        for style in (("once",), ("once", "repeats")):
            if m.any():
                break
            base = style
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
        text, sh = "".join(c.chars), self.shape
        checks = prosody.check_poem(text)
        lines = sh.lines_of(text)
        generated = [ln for i, ln in enumerate(lines) if not all(p in c.forced for p in sh.line_slots(i))]
        checks["copied"] = any(ln in self.train_hashes for ln in generated) if self.on["novelty"] else None
        warnings = [Note(f"could not keep {name} at every step (the model had no allowed character)", "relaxed",
                         rule=name) for name in dict.fromkeys(c.relaxed)]
        breaks = sorted((sh.line_of(i) + 1, sh.char_of(i) + 1) for i in c.free)
        note = reading_note(c) if self.on["rhyme"] else None
        notes = [n for n in (note, *self.missing) if n]
        form = prosody.form_name(c.form, sh.chars) if c.form else None  # as poets name it for this line length
        return Poem(text, lines, round(c.logp / max(c.generated, 1), 4), checks, warnings, form, breaks,
                    round(self.coherence(c), 4), round(self.rank(c), 4), line_one=round(c.line_one, 4),
                    realness=round(c.realness, 4), sense=round(c.sense, 4), notes=notes)


def final_hidden(stepper, vocab, poems: list[str]) -> np.ndarray:
    """(poems, units) the last LSTM layer's hidden state after each whole poem, from <s> to its last mark."""
    ids = np.array([vocab.encode(p) for p in poems])  # (batch, 1 + slots)
    state = stepper.initial_state(len(poems))
    for t in range(ids.shape[1]):
        _, state = stepper.step(ids[:, t], state, logits=False)
    return stepper.top_hidden(state)


def _fixed(c: Candidate, pos: int) -> str | None:
    """The mark or the given character at `pos`, or None where the decoder chooses."""
    return c.shape.marks.get(pos) or c.forced.get(pos)


def resample_lines(dec: Decoder, cands: list[Candidate], groups: list[int]) -> np.ndarray:
    """Whole-line search: within each answer's group, the worse half of the candidates (by `Decoder.rank` of
    what they wrote so far) take over copies of the better half, so one weak line does not sink a poem.
    Returns, for each place of the batch, the place it now continues (for the LSTM state)."""
    source = np.arange(len(cands))
    for g in dict.fromkeys(groups):
        places = [b for b, k in enumerate(groups) if k == g]
        ranked = sorted(places, key=lambda b: (len(set(cands[b].relaxed)), -dec.rank(cands[b])))  # as decode's order
        keep = ranked[:(len(ranked) + 1) // 2]
        for n, b in enumerate(ranked[len(keep):]):
            source[b] = keep[n % len(keep)]
    copies = [cands[b] for b in source]
    for b, from_b in enumerate(source):
        if from_b != b:  # its own lists: the copy writes on
            cands[b] = dataclasses.replace(copies[b], chars=list(copies[b].chars), relaxed=list(copies[b].relaxed))
    return source


def sample_poems(dec: Decoder, cands: list[Candidate], rngs: list, temperature, top_k, top_p,
                 groups: list[int] | None = None) -> list[Candidate]:
    """Fill every slot of each candidate by sampling, all candidates advancing in one batch; each
    candidate draws from its own generator, so it does not depend on how many share the batch.
    With `groups` (the answer each candidate belongs to) and `line_search` on, the candidates of an
    answer are resampled by what they wrote after lines 2 and 3 (`resample_lines`)."""
    stepper, tokens, slots, search_at = dec.m.stepper, dec.vocab.tokens, dec.shape.slots, line_search_at(dec.shape)
    # The characters every candidate has fixed from the start (a given first line) run once, not per candidate.
    shared = 0
    while (shared < slots and _fixed(cands[0], shared)
           and all(_fixed(c, shared) == _fixed(cands[0], shared) for c in cands)):
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
    for pos in range(shared, slots):
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
        if groups is not None and dec.settings.line_search and pos in search_at:
            source = resample_lines(dec, cands, groups)
            state = [tuple(x[source] for x in layer) for layer in state]
            prev = prev[source]
    if dec.sense is not None:  # one more step reads the closing mark: the state the judge of sense reads
        _, state = stepper.step(prev, state, logits=False)
        dec.score_sense(cands, stepper.top_hidden(state))
    return cands


def beam_poems(dec: Decoder, seed: Candidate, width: int, rng: np.random.Generator | None = None) -> list[Candidate]:
    """Beam search over the free slots, ranked by the model's log-probability plus the frequency penalty.

    All beams share the seed's forced slots, so a forced step only appends; a free step takes the
    best `width` (beam, character) pairs from the whole (beams, vocab) score table at once. With
    `settings.beam_noise`, each step's scores get Gumbel noise of that scale from `rng` (a stochastic
    beam): different first lines stop converging on the same likeliest lines.
    """
    stepper, tokens, size = dec.m.stepper, dec.vocab.tokens, len(dec.vocab)
    beams, state = [seed], stepper.initial_state(1)
    prev = np.array([dec.vocab.id("<s>")])
    noise = dec.settings.beam_noise if rng is not None else 0.0
    for pos in range(dec.shape.slots):
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
        head_scores = head_scores - dec.settings.sibling_penalty * np.arange(k) + np.array([[c.score] for c in beams])
        totals = np.full(len(beams) * size, -np.inf)
        totals[(np.arange(len(beams))[:, None] * size + head).ravel()] = head_scores.ravel()
        k = min(2 * width, int(np.isfinite(totals).sum()))
        top = np.argpartition(-totals, k - 1)[:k]
        top = top[np.argsort(-totals[top], kind="stable")]
        fresh = lambda f, beams=beams, pos=pos: dec.line_is_new(beams[f // size], pos, tokens[f % size])
        picked = [f for f in top if fresh(f)][:width]
        if not picked:  # the likely choices all repeat a line: look further down the table
            rest = np.flatnonzero(np.isfinite(totals))
            picked = [f for f in rest[np.argsort(-totals[rest], kind="stable")] if fresh(f)][:1]
        novelty = [] if picked else ["novelty"]
        rows, ids = np.divmod(np.array(picked or top[:1]), size)  # nothing new anywhere: the likeliest, marked
        beams = [Candidate(beams[b].chars[:pos] + [tokens[i]] + beams[b].chars[pos + 1:], seed.forced, seed.types,
                           seed.form, beams[b].logp + float(logp[b, i]), beams[b].generated + 1,
                           beams[b].relaxed + list(drops[b]) + novelty, seed.free, beams[b].score + float(scores[b, i]))
                 for b, i in zip(rows, ids)]
        state = [(h[rows], c_[rows]) for h, c_ in state]
        prev = ids
    return beams


def _generator(seed: int, *path: int) -> np.random.Generator:
    """A generator for one candidate, fixed by the seed (any integer, negatives too) and its place."""
    return np.random.default_rng([seed % 2**64, *path])


def decode(trained: TrainedModel, make_seed, settings: DecodeSettings) -> list[Poem]:
    """`make_seed(rng)` → a fresh Candidate; returns `settings.n` distinct poems, answer 1 first whatever n is.

    Sampling draws `settings.candidates` poems per answer in one batch and keeps the best by
    `Decoder.rank`. A dead end gives a constraint up for that step only (the poem says which);
    answers without a poem that kept every constraint draw again, at most `max_tries` rounds.
    Answer i's candidates come from generators fixed by (seed, i, round, j), so the first answers
    are the same whatever n is. Beam search runs one stochastic beam per answer (generator (seed, i),
    answer 1's (seed)) and keeps its best poem. Each answer avoids the lines 2–4 of earlier answers when
    it has a poem that can, so `--n 3` gives three poems, not one with its last line varied.
    """
    s = settings
    dec = Decoder(trained, s)
    order = lambda p: (len(p.warnings), -p.rank)  # noqa: E731
    if s.beam > 1:  # answer i runs its own stochastic beam (answer 1's generator is the seed's alone)
        chosen = []
        for i in range(s.n):
            rng = _generator(s.seed, *([i] if i else []))
            beams = beam_poems(dec, make_seed(rng), s.beam, rng)
            dec.score_line_one(beams)
            dec.score_critic(beams)
            dec.score_sense(beams)
            found = {"".join(c.chars): c for c in beams}
            picked = _apart(sorted((dec.finish(c) for c in found.values()), key=order), chosen)
            if picked:
                chosen.append(picked)
        return sorted(chosen, key=lambda p: len(p.warnings))  # clean first, else in answer order
    pools: list[dict[str, Poem]] = [{} for _ in range(s.n)]
    pending, k = list(range(s.n)), max(s.candidates, 1)
    for round_ in range(max(s.max_tries, 1)):
        places = [(i, j) for i in pending for j in range(k)]
        rngs = [_generator(s.seed, i, round_, j) for i, j in places]
        drawn = sample_poems(dec, [make_seed(r) for r in rngs], rngs, s.temperature, s.top_k, s.top_p,
                             groups=[i for i, _ in places])
        dec.score_line_one(drawn)
        dec.score_critic(drawn)
        for (i, _), c in zip(places, drawn):
            pools[i].setdefault("".join(c.chars), dec.finish(c))
        pending = [i for i in pending if not any(not p.warnings for p in pools[i].values())]
        if not pending:
            break
    chosen: list[Poem] = []
    for pool in pools:  # answer i takes its best poem that shares no written line with an earlier answer
        picked = _apart(sorted(pool.values(), key=order), chosen)
        if picked:
            chosen.append(picked)
    return chosen  # in answer order: answer 1 stays answer 1 when more are asked for


def _apart(ranked: list[Poem], chosen: list[Poem]) -> Poem | None:
    """The first of `ranked` that shares none of lines 2–4 with a poem in `chosen`, else the first that is
    not one of them: three answers should be three poems, not one poem with its last line changed."""
    seen = {line for p in chosen for line in p.lines[1:]}
    taken = {p.text for p in chosen}
    fresh = [p for p in ranked if p.text not in taken]
    return next((p for p in fresh if not seen & set(p.lines[1:])), fresh[0] if fresh else None)


def line_one_rhymes(c: Candidate, end: str) -> bool:
    """Whether line 1's last character rhymes with lines 2 and 4: it can only be 平, or the chosen
    form rhymes line 1 (入韵: its line type ends 平) and it has a 平 reading (衣: 平 微 and 去 未)."""
    tones = prosody.reading(end)[0] if end else frozenset()
    return tones == {prosody.PING} or bool(c.types and c.types[0] in RHYMING_TYPES and prosody.PING in tones)


def reading_note(c: Candidate) -> Note | None:
    """Which reading of a polyphonic line-1 end the poem took, and so whether line 1 rhymes."""
    ends = c.shape.line_ends
    end = c.chars[ends[0]]
    form = prosody.form_name(c.form, c.shape.chars) if c.form else c.form
    if not c.types or prosody.reading(end)[0] != BOTH:
        return None
    if line_one_rhymes(c, end):
        groups = sorted(prosody.rhyme_groups(end) & prosody.rhyme_groups(c.chars[ends[1]]))
        return Note(f"{end} is both 平 and 仄; {form} reads it as 平 ({'、'.join(groups)}), "
                    "so lines 2 and 4 rhyme with it", "polyphonic_end", char=end, tone=prosody.PING, groups=groups,
                    form=form)
    return Note(f"{end} is both 平 and 仄; {form} reads it as 仄, so line 1 does not rhyme", "polyphonic_end",
                char=end, tone=prosody.ZE, groups=[], form=form)
