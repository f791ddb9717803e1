"""Finish a quatrain from its first line: `complete_poem(load_model("models/word2vec"), "床前明月光")`.

The library's faces of the decoder (`decoder.py`): a first line, an acrostic's four heads, or a
theme in modern Chinese, each checked and turned into the characters the poem must keep, then
decoded with `DecodeSettings`: config/default.toml's settings for the model unless the caller
passes others (`settings=`, or single ones as keyword overrides, `seed=7`). The CLI and the page
call these same functions, so the same settings give the same poems everywhere.
"""
from __future__ import annotations

import dataclasses
import time
import unicodedata
from dataclasses import dataclass, field

from . import layout, meter, prosody
from .clean import is_cjk, is_han, to_simplified
from .config import DecodeSettings
from .decoder import Candidate, Poem, decode
from .errors import InputError, Note, PoetryError
from .loading import TrainedModel


@dataclass
class Result:
    first_line: str
    poems: list[Poem]
    warnings: list[Note] = field(default_factory=list)  # notes on the input: unknown characters, a broken form
    keywords: list[str] = field(default_factory=list)
    keyword_used: str | None = None  # line 1's: "秋夜 → 秋"
    plan: list[str] = field(default_factory=list)  # a theme's keyword for each line in turn, as keyword_used


def settings_for(trained: TrainedModel, settings: DecodeSettings | None = None, **overrides) -> DecodeSettings:
    """`settings` (default: config/default.toml's for this model) with `overrides` replaced, ranges checked."""
    base = settings if settings is not None else DecodeSettings.defaults(trained.settings_key)
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(DecodeSettings)})
    if unknown:
        names = ", ".join(f.name for f in dataclasses.fields(DecodeSettings))
        raise PoetryError(f"Unknown setting {', '.join(unknown)}; the settings are {names}.", kind="setting_unknown",
                          keys=unknown)
    return dataclasses.replace(base, **overrides) if overrides else base


def choose_form(rng, tones: bool, line: str | None = None, heads: str = "", rules: str = "strict",
                licences: bool = False,
                shape: layout.Shape = layout.FIVE) -> tuple[str | None, tuple | None, frozenset]:
    """(form, its line types, slots of given characters that break it).

    A form the given first line (or every acrostic head) fits; when none fits, one of those it breaks
    least, since the given text is never changed (`break_notes` names the breaks). A first line is read
    as EVALUATION.md's accepted variants read it when they can (平平仄仄仄 as a b line), a plain reading
    first; else by the checker's `rules`, where a 大拗 first line (仄仄平仄仄) makes line 2 the B line that
    rescues it (meter.RESCUE).
    """
    if not tones:
        return None, None, frozenset()
    if line:
        measured = [f for f, types in prosody.FORMS.items() if prosody.line_fits(line, types[0])]
        costs = {f: (0 if f in measured else prosody.break_cost(line, types[0], rules),
                     prosody.licence_rank(line, types[0], rules)) for f, types in prosody.FORMS.items()
                 if f in measured or not measured}
        best = min(costs.values())
        form = str(rng.choice([f for f, cost in costs.items() if cost == best]))
        types = prosody.FORMS[form]
        if types[0] == "a" and prosody.needs_rescue(line, rules):
            types = (types[0], meter.RESCUE, *types[2:])
        return form, types, frozenset() if form in measured else frozenset(prosody.breaks(line, types[0], rules))
    # a head breaks a form when no variant of its line type can start with it
    starts = lambda t, h: prosody.allowed_tones(t, h, rules=rules, licences=licences, chars=shape.chars)  # noqa: E731
    costs = {f: sum(not starts(t, h) for t, h in zip(types, heads)) for f, types in prosody.FORMS.items()}
    best = min(costs.values())
    form = str(rng.choice([f for f, cost in costs.items() if cost == best]))
    types = prosody.FORMS[form]
    return form, types, frozenset(shape.slot(i, 0) for i, (t, h) in enumerate(zip(types, heads)) if not starts(t, h))


# what the part is called, how many characters it has in words and in numbers
PARTS = {"first_line": ("The first line", "five or seven", (5, 7)),
         "acrostic": ("An acrostic (one head per line)", "four", (4,))}


def normalize_line(raw: str, part: str = "first_line", example: str = "床前明月光") -> str:
    """The CJK characters of a first line (five, or seven for a 七绝) or an acrostic (four) in simplified
    form (，/,/。/. at the end dropped), or an InputError saying what is wrong."""
    what, count, sizes = PARTS[part]
    fields = {"part": part, "count": sizes[0], "counts": list(sizes), "example": example}
    text = (raw or "").strip().rstrip("，,。.").strip()
    if not text:
        raise InputError(f"{what} is empty; type {count} Chinese characters, e.g. {example}.", kind="input_empty",
                         **fields)
    inner = "".join(ch for ch in text if unicodedata.category(ch).startswith("P"))
    if inner:
        raise InputError(f"{what} has punctuation inside ({inner}); type {count} characters without it, "
                         f"e.g. {example}.",
                         kind="input_punctuation", punctuation=inner, **fields)
    text = to_simplified(text)
    bad = "".join(ch for ch in text if not is_han(ch))
    if bad:
        raise InputError(f"{what} must be {count} Chinese characters, and {bad!r} "
                         f"{'is not one' if len(bad) == 1 else 'are not Chinese characters'}; e.g. {example}.",
                         kind="input_not_han", bad=bad, **fields)
    if len(text) not in sizes:
        raise InputError(f"{what} must be {count} Chinese characters, but it has {len(text)}; e.g. {example}.",
                         kind="input_length", length=len(text), **fields)
    return text


def check_shape(trained: TrainedModel, line: str) -> None:
    """An InputError when the first line's length is not the one the model writes (five for a 五绝 model)."""
    shape = trained.shape
    if len(line) != shape.chars:
        want, has = layout.shape_for(len(line)).label, shape.label
        raise InputError(f"A {len(line)}-character first line makes a {want}, but the model at {trained.path} writes "
                         f"{has}; load the {want} model ({form_folder_hint(len(line))}) or type a "
                         f"{shape.chars}-character line.", kind="form_mismatch", length=len(line),
                         model_chars=shape.chars, path=str(trained.path))


def form_folder_hint(chars: int) -> str:
    """Where the models for lines of `chars` characters live under models/, for messages."""
    return "models/qijue/<mode>, made by `poetry-lstm train --form qijue`" if chars == 7 else "models/<mode>"


def unknown_notes(trained: TrainedModel, chars: str) -> list[Note]:
    unknown = "".join(ch for ch in dict.fromkeys(chars) if ch not in trained.vocab)
    if not unknown:
        return []
    verb = "is" if len(unknown) == 1 else "are"
    return [Note(f"{unknown} {verb} not in the model's vocabulary: read as unknown", "unknown_chars", chars=unknown)]


def complete_poem(trained: TrainedModel, first_line: str, settings: DecodeSettings | None = None,
                  **overrides) -> Result:
    """Finish the quatrain that starts with `first_line` (traditional or simplified, ，/。 optional).

    `settings` default to config/default.toml's for this model; keyword `overrides` (`seed=7`,
    `n=1`, `beam=8`) change single ones."""
    s = settings_for(trained, settings, **overrides)
    line = normalize_line(first_line)
    check_shape(trained, line)
    slots = trained.shape.slots

    def make_seed(rng):
        form, types, free = choose_form(rng, s.tones, line=line, rules=s.rules, licences=s.licences)
        return Candidate([""] * slots, dict(enumerate(line)), types, form, free=free)

    poems = decode(trained, make_seed, s)
    notes = break_notes(poems, line)
    if s.rhyme and not prosody.is_known(line[-1]):
        notes.append(Note(f"{line[-1]} has no known tone in 平水韵, so the rhyme check cannot pass", "no_tone",
                          char=line[-1]))
    return Result(line, poems, unknown_notes(trained, line) + notes)


def acrostic_poem(trained: TrainedModel, heads: str, settings: DecodeSettings | None = None, **overrides) -> Result:
    """A 藏头诗: line i starts with heads[i]; the first line is generated too. A 七绝 model writes
    seven-character lines."""
    s = settings_for(trained, settings, **overrides)
    heads = normalize_line(heads, "acrostic", "春夏秋冬")
    shape = trained.shape

    def make_seed(rng):
        form, types, free = choose_form(rng, s.tones, heads=heads, rules=s.rules, licences=s.licences, shape=shape)
        forced = {shape.slot(i, 0): ch for i, ch in enumerate(heads)}
        return Candidate([""] * shape.slots, forced, types, form, free=free)

    poems = decode(trained, make_seed, s)
    return Result(poems[0].lines[0] if poems else "", poems, unknown_notes(trained, heads) + break_notes(poems))


def break_notes(poems: list[Poem], line: str = "") -> list[Note]:
    """One note per form followed despite given characters that break it, named from the poems
    themselves (candidates of one answer may follow different forms)."""
    notes = {}
    for p in poems:
        if p.breaks:
            chars = "".join(p.lines[i - 1][j - 1] for i, j in p.breaks)
            where = [j for _, j in p.breaks]
            if line:
                notes[p.form, chars] = Note(
                    f"the first line fits none of the four tone patterns; lines 2–4 follow {p.form}, which it breaks "
                    f"least (character {', '.join(map(str, where))}: {chars})", "first_line_breaks", form=p.form,
                    where=where, chars=chars)
            else:
                notes[p.form, chars] = Note(f"the heads {chars} fit no tone pattern at their place; the poem follows "
                                            f"{p.form}, which they break least", "heads_break", form=p.form,
                                            chars=chars)
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
        for ch in filter(is_cjk, word):
            # A character the model lacks borrows its two nearest neighbours that it knows.
            known = vectors is not None and ch in vectors.key_to_index
            near = [c for c, _ in vectors.most_similar(ch, topn=20)] if known else []
            chars += [ch] if usable(ch) else [c for c in near if usable(c)][:2]
        if chars:
            found.append((word, list(dict.fromkeys(chars))))
    return found


def theme_poem(trained: TrainedModel, theme: str, vectors=None, settings: DecodeSettings | None = None,
               **overrides) -> Result:
    """A poem on a theme in modern Chinese, planned (Wang et al., COLING 2016): line i contains a character
    of the theme's i-th usable keyword, for as many lines as there are keywords, placed where its tone fits
    the chosen form (and never on a rhyme), so every keyword shapes the poem, not the first alone.
    `vectors`: the skip-gram vectors, which lend a character the model lacks its nearest ones."""
    s = settings_for(trained, settings, **overrides)
    if not (theme or "").strip():
        raise InputError("The theme is empty; describe it in a few words, e.g. 思念故乡的秋夜.", kind="theme_empty")
    keywords = theme_keywords(trained, theme, vectors)
    if not keywords:
        raise InputError(f"The theme {theme.strip()!r} has no keyword the model can use; try plainer words, "
                         "e.g. 思念故乡的秋夜.", kind="theme_no_keyword", theme=theme.strip())
    plan, shape = theme_plan(keywords), trained.shape

    def make_seed(rng):
        form, types, _ = choose_form(rng, s.tones, rules=s.rules, licences=s.licences, shape=shape)
        forced = {}
        for line, (_, chars, one) in enumerate(plan):
            start, text = place(rng, types[line] if types else None, line, chars, one, s.rules, s.licences,
                                shape.chars)
            forced.update({shape.slot(line, start + k): ch for k, ch in enumerate(text)})
        return Candidate([""] * shape.slots, forced, types, form)

    poems = decode(trained, make_seed, s)
    planned = [f"{word} → {chars}" for word, chars, _ in plan]
    return Result(poems[0].lines[0] if poems else "", poems, [], [w for w, _ in keywords], planned[0], planned)


def place(rng, line_type, line: int, word: str, one: str, rules: str = "strict",
          licences: bool = False, chars: int = 5) -> tuple[int, str]:
    """(first place, text) of a theme keyword in line `line` of type `line_type`: the whole two-character
    word where a line puts its words (places 1–2, 3–4, or for line 1 also 4–5; a seven's 1–2, 3–4, 5–6,
    or 6–7) and both tones fit, else its one character wherever its tone fits; lines 2–4 keep their last
    place for the rhyme and the turn. Line 1 always holds its keyword (the form then follows what it
    breaks least); a later line whose form leaves the keyword no place goes without."""
    last = chars if line == 0 else chars - 1
    fits = lambda text, j: line_type is None or all(  # noqa: E731
        prosody.reading(ch)[0] & prosody.allowed_tones(line_type, "", j + k, rules=rules, licences=licences,
                                                       chars=chars)
        for k, ch in enumerate(text))
    starts = (0, 2, 3) if chars == 5 else (0, 2, 4, 5)  # where a line's two-character words begin
    spans = [j for j in starts if len(word) == 2 and j + 2 <= last and fits(word, j)]
    if spans:
        return int(rng.choice(spans)), word
    spots = [j for j in range(last) if fits(one, j)] or (list(range(last)) if line == 0 else [])
    return (int(rng.choice(spots)), one) if spots else (0, "")


def theme_plan(keywords: list[tuple[str, list[str]]]) -> list[tuple[str, str, str]]:
    """(keyword, the characters to place: the word itself when the model knows both of its two characters,
    else one, and that one character) for lines 1, 2, … in jieba's order, at most one keyword per line,
    no character twice (a poem writes each character once)."""
    plan, used = [], set()
    for word, chars in keywords:
        one = next((c for c in chars if c not in used), None)
        if one is None:
            continue
        whole = word if len(word) == 2 and list(word) == chars and not used & set(word) else one
        plan.append((word, whole, one))
        used.update(whole)
        if len(plan) == layout.LINES:
            break
    return plan


def complete_all(trained: TrainedModel, first_lines: list[str], settings: DecodeSettings) -> tuple[list[str], float]:
    """(one poem completed from each first line, with seed `settings.seed` + i for line i; mean seconds per poem)."""
    started = time.perf_counter()
    poems = [complete_poem(trained, line, settings, n=1, seed=settings.seed + i).poems[0].text
             for i, line in enumerate(first_lines)]
    return poems, (time.perf_counter() - started) / len(first_lines)
