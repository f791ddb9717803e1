"""The poet's desk: the checker's problems with fixes, one line rewritten, the characters of a rhyme.

    report = check_poem(model, "床前明月光，疑是地上霜。举头望明月，低头思故乡。")
    report.problems[0].suggestions   # characters that repair it, the likeliest poem first
    revise_line(model, text, line=3, n=3).poems
    rhymes("东")

A suggestion must repair its problem without a new error or a 重字 (the checker says so, character
by character). A shortlist comes from both sides of the place (the forward model given what comes before,
the backward model given what comes after); the repairs on it are ranked by the whole poem with the character
in place, so every character after the place counts as well as those before it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import layout, meter, prosody
from .checker import Problem, Report, check, read_poem
from .config import DecodeSettings
from .decoder import Candidate, Decoder, Poem, _generator, sample_poems
from .errors import InputError
from .generate import form_folder_hint, settings_for
from .loading import TrainedModel

SHORTLIST = 600  # characters read by the two-sided score before the checker vets them, best first
RESCORED = 20    # vetted characters whose whole poem is scored (60 gained 3 of 76 tone repairs on valid)
REVISE_ROUNDS = 4  # rounds of draws for a revised line before it returns fewer versions than asked


def _sum_logp(trained: TrainedModel, texts: list[str]) -> np.ndarray:
    """(len(texts),) summed log-probability of every character of each poem (marks too), one batch. The
    steps all poems share (a suggestion changes one character, a revision one line) run once."""
    vocab, stepper = trained.vocab, trained.stepper
    ids = np.array([vocab.encode(t) for t in texts])  # (batch, 1 + slots)
    shared = 1
    while shared < ids.shape[1] and (ids[:, shared] == ids[0, shared]).all():
        shared += 1  # ids[:, :shared] are the same in every row
    state, common = stepper.initial_state(1), 0.0
    for t in range(shared - 1):
        logp, state = stepper.step(ids[:1, t], state)  # (1, vocab)
        common += float(logp[0, ids[0, t + 1]])
    state = [tuple(np.repeat(x, len(texts), axis=0) for x in layer) for layer in state]
    total = np.full(len(texts), common)
    for t in range(shared - 1, ids.shape[1] - 1):
        logp, state = stepper.step(ids[:, t], state)  # (batch, vocab)
        total += logp[np.arange(len(texts)), ids[:, t + 1]]
    return total


def poem_scores(trained: TrainedModel, texts: list[str], backward: bool = False) -> np.ndarray:
    """(len(texts),) mean log-probability per slot of whole poems under the forward model, which reads every
    character after a changed one too; with `backward`, averaged with the backward scorer's (the poem read from
    its end). On the valid split the forward model alone ranked repairs as well (bench/desk.py ranking)."""
    if not texts:
        return np.zeros(0)
    total, shape = _sum_logp(trained, texts), trained.shape
    scorer = trained.scorer() if backward else None
    if scorer is not None:
        total = (total + _sum_logp(scorer, [shape.reverse_poem(t) for t in texts])) / 2
    return total / shape.slots


def _logp_at(trained: TrainedModel, text: str, pos: int) -> np.ndarray:
    """(vocab,) log p(character at `pos` | what comes before it)."""
    logp, _ = trained.stepper.run(trained.vocab.encode(text[:pos]))
    return logp[0]


def _two_sided(trained: TrainedModel, text: str, pos: int) -> np.ndarray:
    """(vocab,) how well each character fits at `pos` from both sides: the forward model given the characters
    before it, plus the backward model given those after it (in the forward vocabulary's order)."""
    score, sh = _logp_at(trained, text, pos), trained.shape
    backward = trained.scorer()
    if backward is not None:
        mirrored = sh.slot(sh.lines - 1 - sh.line_of(pos), sh.chars - 1 - sh.char_of(pos))
        back = _logp_at(backward, sh.reverse_poem(text), mirrored)
        score = score + back[[backward.vocab.id(t) for t in trained.vocab.tokens]]
    return score


def _repairs(report: Report, fixed: Report, problem: Problem) -> bool:
    """The new character leaves nothing at the problem's place and brings no error or 重字 anywhere."""
    before = {(p.line, p.char, p.kind) for p in report.problems if p.severity != "note"}
    after = {(p.line, p.char, p.kind) for p in fixed.problems if p.severity != "note"}
    here = {key for key in after if key[:2] == (problem.line, problem.char)}
    return not here and after <= before


def vetted_repairs(trained: TrainedModel, report: Report, problem: Problem, count: int = RESCORED) -> list[str]:
    """Up to `count` characters that repair `problem` at its place, in the two-sided shortlist's order: one tone
    (a 多音字 would leave the reader to guess), a simplified standard form, not already in the poem (no 重字),
    and the checker, run again, finds the problem gone and no new error."""
    if problem.char is None or problem.severity == "note":
        return []
    text, pos = report.text, trained.shape.slot(problem.line - 1, problem.char - 1)
    mk, tokens = trained.tables, trained.vocab.tokens
    allowed = mk.writable & (mk.ping ^ mk.ze)
    allowed[[trained.vocab.id(ch) for ch in set(text) if ch in trained.vocab]] = False
    score = np.where(allowed, _two_sided(trained, text, pos), -np.inf)
    order = np.argsort(-score, kind="stable")[:SHORTLIST]
    vetted, seen = [], {}
    for i in order[np.isfinite(score[order])]:
        ch = tokens[i]
        # characters that read alike in the rules repair alike: the checker runs once per kind of character
        kind = (prosody.reading(ch), prosody.sure_rhyme_groups(ch))
        if kind not in seen:
            seen[kind] = _repairs(report, check(text[:pos] + ch + text[pos + 1:], report.rules), problem)
        if seen[kind]:
            vetted.append(ch)
            if len(vetted) == count:
                break
    return vetted


def suggestions_for(trained: TrainedModel, report: Report, problem: Problem, limit: int = 10) -> list[str]:
    """Up to `limit` characters that repair `problem` when put at its place, the likeliest whole poem first."""
    vetted = vetted_repairs(trained, report, problem)
    if not vetted:
        return []
    text, pos = report.text, trained.shape.slot(problem.line - 1, problem.char - 1)
    scores = poem_scores(trained, [text[:pos] + ch + text[pos + 1:] for ch in vetted])
    return [vetted[i] for i in np.argsort(-scores, kind="stable")[:limit]]


def check_poem(trained: TrainedModel | None, raw: str, rules: str = "strict", limit: int = 10) -> Report:
    """The checker's report on a pasted 五绝 or 七绝, each problem at a character with up to `limit` repairs
    ranked by `trained` when it writes that form (a 七绝 model for a 七绝); none without such a model."""
    report = check(read_poem(raw), rules)
    if trained is not None and writes(trained, report.text):
        for problem in report.problems:
            problem.suggestions = suggestions_for(trained, report, problem, limit)
    return report


@dataclass
class Revision:
    text: str                 # the poem as given (read_poem)
    line: int                 # the line rewritten, from 1
    poems: list[Poem]         # the new versions, the likeliest whole poem first; `score` is poem_scores'
    form: str | None          # as poets name it (a 七绝's 仄起 is a 五绝's 平起)
    note: str | None = None   # why there are fewer versions than asked, when there are


def writes(trained: TrainedModel, text: str) -> bool:
    """Whether the model writes the form of the poem `text` (a 五绝 model for a 五绝, a 七绝 model for a 七绝)."""
    return len(text) == trained.shape.slots


def revise_line(trained: TrainedModel, raw: str, line: int, n: int = 3, settings: DecodeSettings | None = None,
                **overrides) -> Revision:
    """`n` new versions of line `line` (1–4) that keep the other three: each scans and rhymes by the rules,
    brings no 重字, copies no training line, and they are ranked by the whole poem (`poem_scores`). `trained`
    writes the poem's form: a 七绝 needs a 七绝 model (`train --form qijue`)."""
    text = read_poem(raw)
    shape = trained.shape
    if not writes(trained, text):
        poem = layout.shape_of_text(text)  # read_poem gave a 五绝 or a 七绝
        given, has = poem.label, shape.label
        raise InputError(f"The poem is a {given} and the model at {trained.path} writes {has}; rewrite it with a "
                         f"{given} model ({form_folder_hint(poem.chars)}).", kind="revise_form", given=given,
                         model=has, path=str(trained.path))
    if not 1 <= line <= shape.lines:
        raise InputError(f"There is no line {line}; a quatrain has lines 1 to 4.", kind="revise_line", line=line)
    s = settings_for(trained, settings, **overrides)
    s = dataclasses.replace(s, tones=True, rhyme=True, novelty=True)
    report = check(text, s.rules)
    types = prosody.FORMS[report.form]
    lines = shape.lines_of(text)
    if line == 2 and types[0] == "a" and prosody.needs_rescue(lines[0], s.rules):
        types = (types[0], meter.RESCUE, *types[2:])
    keep = {i: ch for i, ch in enumerate(text) if i not in shape.marks and shape.line_of(i) != line - 1}
    dec = Decoder(trained, s)
    key = lambda p: (p.line, p.char, p.kind)  # noqa: E731
    old = {key(p) for p in report.errors()}
    fresh: dict[str, Poem] = {}
    # Line 1 is drawn before the lines it must fit, so it needs more draws to find them; a rare rhyme or a
    # crowded line may need another round.
    draws = max(s.candidates, 8) * (8 if line == 1 else 4)
    for round_ in range(REVISE_ROUNDS):
        rngs = [_generator(s.seed, line, round_, j) for j in range(draws)]
        seeds = [Candidate([""] * shape.slots, dict(keep), types, report.form) for _ in rngs]
        for c in sample_poems(dec, seeds, rngs, s.temperature, s.top_k, s.top_p):
            poem = dec.finish(c)
            if poem.text == text or poem.warnings or poem.text in fresh:
                continue
            new = check(poem.text, s.rules)
            if not new.errors(lines=(line,)) and {key(p) for p in new.errors()} <= old:
                fresh[poem.text] = poem
        if len(fresh) >= n:
            break
    poems = list(fresh.values())
    for poem, score in zip(poems, poem_scores(trained, [p.text for p in poems])):
        poem.score = round(float(score), 4)
    poems.sort(key=lambda p: -p.score)
    form = prosody.form_name(report.form, shape.chars) if report.form else None  # as poets name it for a 七绝
    return Revision(text, line, poems[:n], form, None if len(poems) >= n else _why_few(report, line))


def _why_few(report: Report, line: int) -> str:
    """Why a revision found fewer versions than asked: mostly a poem whose other lines break the rules."""
    others = [p for p in report.errors() if p.line != line]
    if others:
        where = "、".join(dict.fromkeys(f"{p.name}（第{p.line}句）" for p in others))
        return (f"其余各句本身不合律：{where}；先改那几句。The other lines break the rules ({len(others)} errors): a "
                f"line {line} that scans cannot mend them; revise those first.")
    return (f"第{line}句合律的写法不多，换个种子再试。Few lines fit line {line} here by the rules; try another seed.")


def rhymes(query: str, vocab=None) -> dict:
    """A rhyme group (东, 一东, 上平一东) → its characters, most used first; a character → its tones and groups.
    How often a character is used comes from a model's vocabulary (`TrainedModel.vocab`; training counts)."""
    q = (query or "").strip()
    if not q:
        raise InputError("Name a rhyme group (东, 上平一东) or one character (红).", kind="rhymes_empty")
    group = prosody.find_group(q)
    counts = dict(zip(vocab.tokens, vocab.counts)) if vocab is not None and vocab.counts else {}
    if group:
        chars = sorted(prosody.group_members(group), key=lambda ch: (-counts.get(ch, 0), ch))
        return {"group": group, "chars": chars, "counts": [counts.get(ch, 0) for ch in chars]}
    if len(q) == 1 and prosody.is_known(q):
        return {"char": q, "tone": prosody.tone_of(q), "groups": prosody.all_groups_of(q),
                "rhymes_in": sorted(prosody.rhyme_groups(q)), "sure_in": sorted(prosody.sure_rhyme_groups(q)),
                "count": counts.get(q, 0)}
    if len(q) == 1:
        raise InputError(f"{q} is not in the 平水韵 table; name another character or a rhyme group such as 东.",
                         kind="rhymes_unknown", query=q)
    raise InputError(f"{q!r} is neither a 平声 rhyme group (东, 一东, 上平一东) nor one character.",
                     kind="rhymes_unknown", query=q)
