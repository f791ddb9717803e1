"""Finish a quatrain from its first line: `complete_poem(load_model_dir("models/word2vec"), "床前明月光")`.

Form is built in (the decoder places ，。，。 and only lets CJK characters into the 15 slots);
tones, rhyme and novelty are masks over the vocabulary, and the model's log-probabilities are
renormalised over what each mask allows. Sampling and beam search both advance every candidate
in one batched NumPy step of the LSTM (`LstmStepper`), keeping its state between characters.
"""
from __future__ import annotations

import unicodedata
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
    logits = logp[ids] / max(temperature, 1e-6)
    if 0 < top_k < len(ids):  # partial sort: only the head matters
        head = np.argpartition(-logits, top_k - 1)[:top_k]
        order = head[np.argsort(-logits[head], kind="stable")]
    else:
        order = np.argsort(-logits, kind="stable")
    p = np.exp(logits[order] - logits[order[0]])
    p /= p.sum()
    if top_p < 1.0:  # nucleus: the smallest head whose mass reaches top_p
        keep = int(np.searchsorted(np.cumsum(p), top_p) + 1)
        p = p[:keep] / p[:keep].sum()
        order = order[:keep]
    return int(ids[order[rng.choice(len(p), p=p)]])


class VocabMasks:
    """Boolean masks over one model's vocabulary, computed once per model."""

    def __init__(self, tokens: tuple[str, ...]):
        self.tokens = tokens
        self.cjk = np.array([len(t) == 1 and bool(IS_CJK.match(t)) for t in tokens])
        readings = [prosody.reading(t) if c else (frozenset(), frozenset()) for t, c in zip(tokens, self.cjk)]
        self.ping = np.array([prosody.PING in r[0] for r in readings])
        self.ze = np.array([prosody.ZE in r[0] for r in readings])
        self.groups: dict[str, np.ndarray] = {}
        for i, (_, groups) in enumerate(readings):
            for g in groups:
                self.groups.setdefault(g, np.zeros(len(tokens), bool))[i] = True
        self.has_group = np.array([bool(r[1]) for r in readings])

    def of_groups(self, groups) -> np.ndarray:
        out = np.zeros(len(self.tokens), bool)
        for g in groups:
            out |= self.groups.get(g, False)
        return out


@lru_cache(maxsize=4)
def masks_for(tokens: tuple[str, ...]) -> VocabMasks:
    return VocabMasks(tokens)


def line_tones(line_type: str, prefix: str, forced: dict[int, str]) -> set[str]:
    """Tones for the next slot that keep an accepted variant reachable, honouring forced characters."""
    pos = len(prefix)
    out = set()
    for v in prosody.VARIANTS[line_type]:
        slots = {i: ch for i, ch in enumerate(prefix)} | {i: ch for i, ch in forced.items() if i > pos}
        if all(prosody._LETTER[v[i]] in prosody.reading(ch)[0] for i, ch in slots.items()):
            out.add(prosody._LETTER[v[pos]])
    return out


@dataclass
class Candidate:
    chars: list[str]          # 24 slots, "" where not yet chosen
    forced: dict[int, str]    # position → character the user fixed (first line, heads, keyword)
    types: tuple | None       # line types of the chosen form, or None with tones off
    form: str | None
    logp: float = 0.0
    generated: int = 0
    relaxed: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.chars)


class Decoder:
    def __init__(self, trained: TrainedModel, tones=True, rhyme=True, novelty=True):
        self.m, self.vocab = trained, trained.vocab
        self.masks = masks_for(trained.vocab.tokens)
        self.on = {"tones": tones, "rhyme": rhyme, "novelty": novelty}
        self.train_hashes = trained.line_hashes() if novelty else set()

    def allowed(self, c: Candidate, pos: int, drop: tuple = ()) -> np.ndarray:
        """Mask of characters allowed at `pos` for candidate `c`, without the constraints in `drop`."""
        mk, line, j = self.masks, pos // 6, pos % 6
        m = mk.cjk.copy()
        on = {k: v and k not in drop for k, v in self.on.items()}
        if on["tones"] and c.types:
            start = line * 6
            forced = {i - start: ch for i, ch in c.forced.items() if start <= i < start + 5}
            tones = line_tones(c.types[line], "".join(c.chars[start:pos]), forced)
            m &= (mk.ping if prosody.PING in tones else False) | (mk.ze if prosody.ZE in tones else False)
        if on["rhyme"]:
            first_end = c.chars[4]
            if pos == 10:
                m &= mk.has_group
                if prosody.reading(first_end)[0] == {prosody.PING}:
                    m &= mk.of_groups(prosody.rhyme_groups(first_end))
            elif pos == 16:
                m &= mk.ze
            elif pos == 22:
                groups = prosody.rhyme_groups(c.chars[10])
                if prosody.reading(first_end)[0] == {prosody.PING}:
                    groups &= prosody.rhyme_groups(first_end)
                m &= mk.of_groups(groups)
                m[self.vocab.id(c.chars[10])] = False
        if on["novelty"]:
            used = [ch for ch in c.chars if ch and len(ch) == 1]
            for ch in {ch for ch in used if used.count(ch) >= 2}:
                m[self.vocab.id(ch)] = False
        return m

    def line_is_new(self, c: Candidate, pos: int, ch: str) -> bool:
        """At a line end: the finished line is no training line and no earlier line of the poem."""
        if not self.on["novelty"] or pos % 6 != 4:
            return True
        start = pos - 4
        line = "".join(c.chars[start:pos]) + ch
        earlier = {"".join(c.chars[i:i + 5]) for i in range(0, start, 6)}
        return line not in earlier and line_hash(line) not in self.train_hashes

    def options(self, c: Candidate, pos: int) -> tuple[np.ndarray, list[str]]:
        """The allowed mask, giving up constraints (novelty, then rhyme, then tones) only at a dead end."""
        dropped: list[str] = []
        m = self.allowed(c, pos)
        for name in RELAX_ORDER:
            if m.any():
                break
            dropped.append(name)
            m = self.allowed(c, pos, tuple(dropped))
        return m, dropped

    def finish(self, c: Candidate) -> Poem:
        text = c.text()
        checks = prosody.check_poem(text)
        lines = prosody.split_lines(text)
        generated = [ln for i, ln in enumerate(lines) if not all(p in c.forced for p in range(i * 6, i * 6 + 5))]
        checks["copied"] = any(line_hash(ln) in self.train_hashes for ln in generated) if self.train_hashes else None
        warnings = [f"could not keep {name} at every step (the model had no allowed character)" for name in dict.fromkeys(c.relaxed)]
        return Poem(text, lines, round(c.logp / max(c.generated, 1), 4), checks, warnings, c.form)


def _penalty(p: Poem) -> tuple:
    return (len(p.warnings), -p.score)


def sample_poems(dec: Decoder, seeds: list[Candidate], rng, temperature, top_k, top_p) -> list[Candidate]:
    """Fill every slot of each candidate by sampling, all candidates advancing in one batch."""
    cands = seeds
    stepper, vocab = dec.m.stepper, dec.vocab
    state = stepper.initial_state(len(cands))
    prev = np.full(len(cands), vocab.id("<s>"))
    for pos in range(24):
        logp, state = stepper.step(prev, state)  # (batch, vocab)
        for b, c in enumerate(cands):
            if pos in PUNCT or pos in c.forced:
                c.chars[pos] = PUNCT.get(pos) or c.forced[pos]
            else:
                m, dropped = dec.options(c, pos)
                c.relaxed += dropped
                while True:
                    i = sample_next(logp[b], m, rng, temperature, top_k, top_p)
                    if dec.line_is_new(c, pos, vocab.tokens[i]) or m.sum() <= 1:
                        break
                    m[i] = False
                c.chars[pos] = vocab.tokens[i]
                c.logp += float(logp[b, i])
                c.generated += 1
            prev[b] = vocab.id(c.chars[pos])
    return cands


def beam_poems(dec: Decoder, seed: Candidate, width: int) -> list[Candidate]:
    """Beam search over the free slots; ranks by the model's own log-probability."""
    stepper, vocab = dec.m.stepper, dec.vocab
    beams, state = [seed], stepper.initial_state(1)
    prev = np.array([vocab.id("<s>")])
    for pos in range(24):
        logp, state = stepper.step(prev, state)  # (beams, vocab)
        scored = []
        for b, c in enumerate(beams):
            if pos in PUNCT or pos in c.forced:
                scored.append((c.logp, b, vocab.id(PUNCT.get(pos) or c.forced[pos]), [], False))
                continue
            m, dropped = dec.options(c, pos)
            ids = np.flatnonzero(m)
            best = ids[np.argsort(-logp[b, ids], kind="stable")[: width * 2]]
            fresh = [i for i in best if dec.line_is_new(c, pos, vocab.tokens[i])]
            if not fresh:  # every likely line is a training line: keep the likeliest, marked
                fresh, dropped = best[:1], dropped + ["novelty"]
            scored += [(c.logp + float(logp[b, i]), b, int(i), dropped, True) for i in fresh]
        scored.sort(key=lambda s: -s[0])
        new, keep = [], []
        for total, b, i, dropped, counts in scored[:width]:
            c = beams[b]
            n = Candidate(list(c.chars), c.forced, c.types, c.form, total, c.generated + counts, c.relaxed + dropped)
            n.chars[pos] = vocab.tokens[i] if counts else (PUNCT.get(pos) or c.forced[pos])
            new.append(n)
            keep.append((b, i))
        beams = new
        rows = np.array([b for b, _ in keep])
        state = [(h[rows], c_[rows]) for h, c_ in state]
        prev = np.array([i for _, i in keep])
    return beams


def decode(trained: TrainedModel, make_seed, *, n=3, temperature=0.8, top_k=30, top_p=0.95, beam=1, seed=0,
           tones=True, rhyme=True, novelty=True, max_tries=20) -> list[Poem]:
    """`make_seed(rng)` → a fresh Candidate; returns n distinct poems, cleanest and likeliest first."""
    dec = Decoder(trained, tones, rhyme, novelty)
    rng = np.random.default_rng(seed)
    found: dict[str, Poem] = {}
    if beam > 1:
        for c in beam_poems(dec, make_seed(rng), max(beam, n)):
            found.setdefault(c.text(), dec.finish(c))
    else:
        for _ in range(max_tries):
            clean = [p for p in found.values() if not p.warnings]
            if len(clean) >= n:
                break
            for c in sample_poems(dec, [make_seed(rng) for _ in range(n)], rng, temperature, top_k, top_p):
                found.setdefault(c.text(), dec.finish(c))
    return sorted(found.values(), key=_penalty)[:n]


def choose_form(line: str | None, rng, forced: dict[int, str], tones: bool) -> tuple[str | None, tuple | None, list[str]]:
    """A form the given first line fits (or, with no first line, one the forced characters fit)."""
    if not tones:
        return None, None, []
    if line is not None:
        fitting = prosody.forms_for_first_line(line)
        if not fitting:
            form = str(rng.choice(list(prosody.FORMS)))
            return form, (None,) + prosody.FORMS[form][1:], [f"the first line fits none of the four tone patterns; lines 2–4 follow {form}"]
    else:
        fitting = [f for f, types in prosody.FORMS.items()
                   if all(line_tones(types[i // 6], "", {i % 6: ch}) for i, ch in forced.items() if i % 6 == 0)] or list(prosody.FORMS)
    form = str(rng.choice(fitting))
    return form, prosody.FORMS[form], []


def normalize_line(raw: str, what: str = "The first line") -> str:
    """Five CJK characters in simplified form, or an InputError saying what is wrong."""
    text = (raw or "").strip()
    if not text:
        raise InputError(f"{what} is empty; type five Chinese characters, e.g. 床前明月光.")
    text = text.rstrip("，,。.").strip()
    inner = [ch for ch in text if unicodedata.category(ch).startswith("P")]
    if inner:
        raise InputError(f"{what} has punctuation inside ({''.join(inner)}); type five characters without it, e.g. 床前明月光.")
    text = to_simplified(text)
    bad = [ch for ch in text if not IS_CJK.match(ch)]
    if len(text) != 5 or bad:
        extra = f", and {''.join(bad)!r} {'is' if len(bad) == 1 else 'are'} not Chinese characters" if bad else ""
        raise InputError(f"{what} must be five Chinese characters, but it has {len(text)}{extra}; e.g. 床前明月光.")
    return text


def unknown_warning(trained: TrainedModel, chars: str) -> list[str]:
    unknown = [ch for ch in dict.fromkeys(chars) if ch not in trained.vocab]
    return [f"{''.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not in the model's vocabulary: read as unknown"] if unknown else []


def complete_poem(trained: TrainedModel, first_line: str, **options) -> Result:
    """Finish the quatrain that starts with `first_line` (traditional or simplified, ，/。 optional)."""
    line = normalize_line(first_line)
    notes: list[str] = []

    def make_seed(rng):
        form, types, why = choose_form(line, rng, {}, options.get("tones", True))
        notes[:] = why
        return Candidate([""] * 24, dict(enumerate(line)), types, form)

    poems = decode(trained, make_seed, **options)
    return Result(line, poems, unknown_warning(trained, line) + notes)


def acrostic_poem(trained: TrainedModel, heads: str, **options) -> Result:
    """A 藏头诗: line i starts with heads[i]; the first line is generated too."""
    heads = to_simplified((heads or "").strip())
    if len(heads) != 4 or not all(IS_CJK.match(ch) for ch in heads):
        raise InputError(f"An acrostic needs four Chinese characters, one per line (e.g. 春夏秋冬), not {heads!r}.")
    forced = {i * 6: ch for i, ch in enumerate(heads)}

    def make_seed(rng):
        form, types, _ = choose_form(None, rng, forced, options.get("tones", True))
        return Candidate([""] * 24, dict(forced), types, form)

    poems = decode(trained, make_seed, **options)
    return Result(poems[0].lines[0] if poems else "", poems, unknown_warning(trained, heads))


def theme_keywords(trained: TrainedModel, theme: str, vectors=None) -> list[tuple[str, list[str]]]:
    """(keyword, in-vocabulary characters for it) for each jieba keyword of the theme that maps somewhere."""
    import jieba
    import jieba.analyse

    jieba.setLogLevel(60)  # its "Building prefix dict" chatter is not for users
    found = []
    for word in jieba.analyse.extract_tags(to_simplified(theme), topK=8):
        chars = []
        for ch in word:
            if not IS_CJK.match(ch):
                continue
            if ch in trained.vocab and prosody.is_known(ch):
                chars.append(ch)
            elif vectors is not None and ch in vectors.key_to_index:
                # An unknown character borrows its nearest neighbours that the model does know.
                near = [c for c, _ in vectors.most_similar(ch, topn=20) if c in trained.vocab and prosody.is_known(c)]
                chars += near[:2]
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
    word, chars = keywords[0]
    ch = chars[0]

    def make_seed(rng):
        form, types, _ = choose_form(None, rng, {}, options.get("tones", True))
        fits = lambda j: any(prosody._LETTER[v[j]] in prosody.reading(ch)[0] for v in prosody.VARIANTS[types[0]])
        spots = [j for j in range(5) if not types or fits(j)] or list(range(5))
        j = int(rng.choice(spots))
        return Candidate([""] * 24, {j: ch}, types, form)

    poems = decode(trained, make_seed, **options)
    return Result(poems[0].lines[0] if poems else "", poems, [], [w for w, _ in keywords], f"{word} → {ch}")
