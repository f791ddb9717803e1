"""The poet's checker: every tone, each problem at its place: `report = check(read_poem(text))`.

What 搜韵's 格律检测 and couyun do for a pasted 五绝, by the same rules the generator writes by
(`meter.py`; strict by default): each character's 平仄, the form that fits best, and each problem with
its line and place: a tone out of pattern, 失对, 失粘, 孤平, 三平尾, 三仄尾, an unrescued 大拗, 落韵,
重字 and characters the 平水韵 table lacks. Licences (拗救, 孤雁出群) are notes, not errors.
Suggestions need a language model and come from `desk.py`; nothing here knows one.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import product

from . import meter, prosody
from .clean import is_han, to_simplified
from .errors import InputError

EXAMPLE = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
MAX_INPUT = 2000  # characters: a poem is 24; past this, the input is something else
NAMES = {**meter.FAULTS, "lost_link": "失粘", "off_rhyme": "落韵", "repeated_char": "重字",
         "unknown_char": "字不在平水韵", "polyphonic": "多音字", "licence": "拗救"}
ZH_TONE = {"P": "平", "Z": "仄"}
# Neighbouring rhyme groups (邻韵, after 词林正韵): a rhyming line 1 may borrow one (孤雁出群).
_NEIGHBOURS = ("上平一东 上平二冬", "上平三江 下平七阳", "上平四支 上平五微 上平八齐", "上平六鱼 上平七虞",
               "上平九佳 上平十灰", "上平十一真 上平十二文 上平十三元", "上平十三元 上平十四寒 上平十五删 下平一先",
               "下平二萧 下平三肴 下平四豪", "下平五歌 下平六麻", "下平八庚 下平九青 下平十蒸",
               "下平十二侵 上平十一真", "下平十三覃 下平十四盐 下平十五咸")
NEIGHBOURS: dict[str, set[str]] = {}
for _row in _NEIGHBOURS:
    for _g in _row.split():
        NEIGHBOURS.setdefault(_g, set()).update(set(_row.split()) - {_g})


@dataclass
class Problem:
    line: int                 # from 1
    char: int | None          # place in the line from 1; None for the whole line
    kind: str                 # an id of NAMES
    severity: str             # "error" (breaks the rules), "warning" (重字) or "note" (a licence, a 多音字)
    message: str              # Chinese, then English
    suggestions: list[str] = field(default_factory=list)  # filled by desk.suggest: characters that repair it

    @property
    def name(self) -> str:
        return NAMES[self.kind]


@dataclass
class Report:
    text: str
    form: str | None          # the form that fits best (one of prosody.FORMS)
    chars: list[dict]         # one per character: line, place, char, tone, want ("平", "仄" or "中"), rhyme
    problems: list[Problem]
    rules: str = "strict"
    kind: str = "五绝"        # or "七绝"

    @property
    def form_name(self) -> str:
        """The form as poets name it for this kind (`form` is the key of prosody.FORMS, named for a 五绝)."""
        return prosody.form_name(self.form, 5 if self.kind == "五绝" else 7) if self.form else ""

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def errors(self, lines=(1, 2, 3, 4)) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error" and p.line in lines]

    def to_json(self) -> dict:
        problems = [{**asdict(p), "name": p.name} for p in self.problems]
        return {"kind": self.kind, "form": self.form, "form_name": self.form_name, "rules": self.rules, "ok": self.ok,
                "text": self.text, "chars": self.chars, "problems": problems}


def read_poem(raw: str) -> str:
    """A pasted 五绝 as `XXXXX，XXXXX。XXXXX，XXXXX。` (or 七绝, seven characters a line) in simplified characters:
    marks may be full-width or ASCII, lines may be broken or spaced, or the 20 (28) characters given bare.
    Anything else: an InputError of one sentence."""
    text = (raw or "").strip()
    if not text:
        raise InputError(f"The poem is empty; paste a 五绝 or 七绝 of four lines, e.g. {EXAMPLE}",
                         kind="poem_empty")
    if len(text) > MAX_INPUT:
        raise InputError(f"The input is {len(text):,} characters long, not a poem; paste one 五绝 or 七绝 of four "
                         "lines.", kind="poem_too_long", length=len(text))
    text = to_simplified(text)
    lines = [ln for ln in _split(text) if ln]
    if not lines:
        raise InputError(f"The poem holds only punctuation; paste a 五绝 or 七绝 of four lines, e.g. {EXAMPLE}",
                         kind="poem_empty")
    bad = "".join(dict.fromkeys(ch for ln in lines for ch in ln if not is_han(ch)))
    if bad:
        what = "is not a Chinese character" if len(bad) == 1 else "are not Chinese characters"
        raise InputError(f"The poem holds {bad!r}, which {what}; paste only the poem, e.g. {EXAMPLE}",
                         kind="poem_not_han", bad=bad)
    if len(lines) == 1 and len(lines[0]) in (20, 28):  # the characters given bare: 五绝 or 七绝
        size = len(lines[0]) // 4
        lines = [lines[0][i:i + size] for i in range(0, len(lines[0]), size)]
    sizes = [len(ln) for ln in lines]
    if sizes not in ([5] * 4, [7] * 4):
        raise InputError(f"A 五绝 has four lines of five characters and a 七绝 four of seven, but this has "
                         f"{len(lines)} line(s) of {'/'.join(map(str, sizes))}; write it as "
                         "XXXXX，XXXXX。XXXXX，XXXXX。 or XXXXXXX，XXXXXXX。XXXXXXX，XXXXXXX。", kind="poem_shape",
                         sizes=sizes)
    return "".join(ln + mark for ln, mark in zip(lines, "，。，。"))


def _split(text: str) -> list[str]:
    out, line = [], ""
    for ch in text:
        if ch in "，。,.;；!！?？、:：\n\r\t 　":
            out.append(line)
            line = ""
        else:
            line += ch
    return out + [line]


def _options(ch: str) -> str:
    """The tones a character may take as letters: "P", "Z", "PZ" (多音字), or "PZ" when unknown (read as fitting)."""
    tones = prosody.reading(ch)[0]
    return "".join(letter for letter, tone in (("P", prosody.PING), ("Z", prosody.ZE)) if tone in tones) or "PZ"


@lru_cache(maxsize=4096)
def _best(options: tuple[str, ...], line_type: str, rules: str, rescued: bool) -> meter.Verdict:
    """The kindest verdict over every reading of a line: fewest faults (by weight), plain before licensed."""
    verdicts = (meter.verdict("".join(p), line_type, rules, rescued) for p in product(*options))
    return min(verdicts, key=lambda v: (v.cost, v.licence is not None, v.faults, v.licence or ""))


def _groups(ch: str) -> frozenset[str]:
    return prosody.rhyme_groups(ch) if prosody.PING in prosody.reading(ch)[0] else frozenset()


def _rhyme_problems(lines: list[str], types: tuple, rules: str) -> list[Problem]:
    """落韵 and its licences: lines 2 and 4 (and line 1 in an 入韵 form) end in one 平声 group, line 3 ends 仄."""
    ends, end = [ln[-1] for ln in lines], len(lines[0])
    out = []
    places = [1, 3] + ([0] if types[0] in ("A", "B") else [])
    if prosody.ZE not in prosody.reading(ends[2])[0] and prosody.is_known(ends[2]):
        out.append(_problem(3, end, "off_rhyme", "error", f"第三句末字「{ends[2]}」为平声，应仄收",
                            f"line 3 ends in {ends[2]}, which is 平: it should end 仄"))
    if types[0] in ("a", "b") and prosody.ZE not in prosody.reading(ends[0])[0] and prosody.is_known(ends[0]):
        out.append(_problem(1, end, "off_rhyme", "error", f"首句不入韵，末字「{ends[0]}」却为平声",
                            f"line 1 ends in {ends[0]}, 平, in a form that does not rhyme it: it should end 仄"))
    ping = [i for i in places if _groups(ends[i]) or not prosody.is_known(ends[i])]
    for i in places:
        if i not in ping:
            out.append(_problem(i + 1, end, "off_rhyme", "error", f"第{i + 1}句末字「{ends[i]}」为仄声，应押平声韵",
                                f"line {i + 1} ends in {ends[i]}, which is 仄: it should end in a 平 rhyme"))
    known = [i for i in ping if prosody.is_known(ends[i])]
    count = Counter(g for i in known for g in _groups(ends[i]))
    if not count:
        return out
    top = max(count.values())
    if top < 2 and len(known) >= 2:  # no two rhyme ends share a group: each is out of place for the others
        names = "、".join(f"{ends[i]}（{'/'.join(sorted(_groups(ends[i])))}）" for i in known)
        for i in known:
            out.append(_problem(i + 1, end, "off_rhyme", "error", f"韵脚不同部：{names}",
                                f"the rhyme ends are in different groups: {names}"))
        return out
    # the group most rhyme ends share; between equals, the one of lines 2 and 4
    group = min((g for g, n in count.items() if n == top),
                key=lambda g: (-(g in _groups(ends[1])) - (g in _groups(ends[3])), g))
    for i in known:
        ch = ends[i]
        if group not in _groups(ch):
            if i == 0 and NEIGHBOURS.get(group, set()) & _groups(ch):
                out.append(_problem(1, end, "licence", "note", f"首句借邻韵「{ch}」（孤雁出群）",
                                    f"line 1 borrows a neighbouring rhyme, {ch} (孤雁出群)"))
            else:
                out.append(_problem(i + 1, end, "off_rhyme", "error", f"「{ch}」不在{group}，落韵",
                                    f"{ch} is not in {group}, the poem's rhyme"))
        elif group not in prosody.sure_rhyme_groups(ch):
            severity = "error" if rules == "strict" else "note"
            out.append(_problem(i + 1, end, "off_rhyme", severity, f"「{ch}」是简化合并字，有的读法不在{group}",
                                f"{ch} stands for traditional characters not all of which rhyme in {group}"))
    return out


def _problem(line: int, char: int | None, kind: str, severity: str, zh: str, en: str) -> Problem:
    return Problem(line, char, kind, severity, f"{zh}。{en}.")


def _line_problems(lines: list[str], types: tuple, rules: str) -> tuple[list[Problem], int]:
    """(tone problems of each line and the licences it takes, their cost) under one form."""
    out, cost = [], 0
    size = len(lines[0])
    weights = meter.WEIGHTS_OF[size]
    for k, (line, t) in enumerate(zip(lines, types)):
        rescued = k + 1 < len(lines) and types[k + 1] == "B" and "P" in _options(lines[k + 1][size - 3])
        v = _best(tuple(_options(ch) for ch in line), t, rules, rescued)
        for place, kind in v.faults:
            if place == size:
                continue  # the line's end belongs to the rhyme
            cost += weights[place - 1]
            if size == 7:  # 粘对 is judged at place 2 of a seven; its place 4 is a tone like 6
                kind = {(2, "tone"): "lost_contrast", (4, "lost_contrast"): "tone"}.get((place, kind), kind)
            if kind == "lost_contrast" and k == 2:
                kind = "lost_link"
            out.append(_tone_problem(k + 1, place, kind, line, t))
        if v.licence and not v.faults:
            out.append(_problem(k + 1, None, "licence", "note", f"第{k + 1}句用{v.licence}",
                                f"line {k + 1} takes a licence, {v.licence}"))
    return out, cost


# What each fault says, Chinese then English; {n} the line, {p} the place, {ch} the character, {want} its tone;
# {zp} the place in Chinese, {q} the place after it (孤平's rescue), {zq} that one in Chinese.
TONE_MESSAGES = {
    "tone": ("第{n}句第{p}字「{ch}」应{want}", "line {n}, character {p} ({ch}) should be {want}"),
    "lost_contrast": ("第{n}句第二字「{ch}」失对，应{want}",
                      "line {n}, character 2 ({ch}) has the tone of the line it answers (失对): {want} is wanted"),
    "lost_link": ("第三句第二字「{ch}」失粘，应{want}",
                  "line 3, character 2 ({ch}) breaks the link with line 2 (失粘): {want} is wanted"),
    "lone_ping": ("第{n}句犯孤平：第{zp}字「{ch}」应平（或第{zq}字用平以救）",
                  "line {n} has a lone 平 (孤平): character {p} ({ch}) should be 平, or character {q} 平 to rescue it"),
    "three_ping_tail": ("第{n}句三平尾：第{zp}字「{ch}」应仄",
                        "line {n} ends 平平平 (三平尾): character {p} ({ch}) should be 仄"),
    "three_ze_tail": ("第{n}句三仄尾：第{zp}字「{ch}」应平",
                      "line {n} ends 仄仄仄 (三仄尾): character {p} ({ch}) should be 平"),
    "unrescued_ao": ("第{n}句第{zp}字「{ch}」仄声成大拗，下句第{zr}字未用平声相救",
                     "line {n}, character {p} ({ch}) is 仄 (大拗), and the next line's character {r} is not 平 to "
                     "rescue it"),
    "zi_ping": ("第{n}句{tail}仄平仄平仄：第{zp}字「{ch}」应平（特拗平平仄平仄）",
                "line {n} {last} 仄平仄平仄: character {p} ({ch}) should be 平 (特拗 is 平平仄平仄)"),
}
ZH_NUMBERS = "一二三四五六七"


def _tone_problem(line_no: int, place: int, kind: str, line: str, line_type: str) -> Problem:
    head = len(line) - 5  # a seven-character line's places 3–7 are a five's 1–5
    ch, want = line[place - 1], ZH_TONE[prosody.base_of(line_type, len(line))[place - 1]]
    template = "zi_ping" if kind == "tone" and line_type == "b" and place == 1 + head else kind
    values = dict(n=line_no, p=place, ch=ch, want=want, zp=ZH_NUMBERS[place - 1], q=place + 2,
                  zq=ZH_NUMBERS[min(place + 1, 6)], r=place - 1, zr=ZH_NUMBERS[place - 2],
                  tail="后五字" if head else "", last="ends" if head else "is")  # a seven's head is its own
    zh, en = (t.format(**values) for t in TONE_MESSAGES[template])
    return _problem(line_no, place, kind, "error", zh, en)


def _repeats(lines: list[str]) -> list[Problem]:
    """重字: a character written again (not a 叠字 in place, 青青), flagged where it comes back."""
    seen: dict[str, tuple[int, int]] = {}
    out = []
    for k, line in enumerate(lines):
        for j, ch in enumerate(line):
            if ch in seen and not (seen[ch] == (k, j - 1)):
                first = seen[ch]
                out.append(_problem(k + 1, j + 1, "repeated_char", "warning",
                                    f"「{ch}」重字（第{first[0] + 1}句第{first[1] + 1}字已用）",
                                    f"{ch} is written again (first at line {first[0] + 1}, character {first[1] + 1})"))
            seen[ch] = (k, j)
    return out


def check(text: str, rules: str = "strict") -> Report:
    """The checker's report on one 五绝 or 七绝 (`read_poem` output): the form that fits best, its problems."""
    if rules not in meter.RULE_SETS:
        raise ValueError(f"unknown rules {rules!r}")
    lines = prosody.quatrain_lines(text) or prosody.split_lines(text)  # split_lines says what is wrong
    size = len(lines[0])
    best = None
    for form, types in prosody.FORMS.items():
        problems, cost = _line_problems(lines, types, rules)
        rhyme = _rhyme_problems(lines, types, rules)
        cost += 4 * sum(p.severity == "error" for p in rhyme)
        key = (cost, sum(p.severity != "error" for p in problems + rhyme))
        if best is None or key < best[0]:
            best = (key, form, types, problems + rhyme)
    _, form, types, problems = best
    problems += _repeats(lines)
    unknown = [(k, j) for k, line in enumerate(lines) for j, ch in enumerate(line) if not prosody.is_known(ch)]
    for k, j in unknown:
        ch = lines[k][j]
        problems.append(_problem(k + 1, j + 1, "unknown_char", "error", f"「{ch}」不在平水韵表中，无法定平仄",
                                 f"{ch} is not in the 平水韵 table, so its tone cannot be checked"))
    for k, line in enumerate(lines):
        for j in _WANTED[size]:
            if prosody.tone_of(line[j]) == prosody.BOTH:
                problems.append(_problem(k + 1, j + 1, "polyphonic", "note", f"「{line[j]}」平仄两读，多音字需自校",
                                         f"{line[j]} reads both 平 and 仄: check which reading you mean"))
    problems.sort(key=lambda p: (p.line, p.char or 0, p.severity != "error"))
    return Report(text, form, _chars(lines, types), problems, rules, "五绝" if size == 5 else "七绝")


_WANTED = {5: (1, 3, 4), 7: (1, 3, 5, 6)}  # 0-based places whose tone is fixed (二四分明, 二四六分明, the end)


def _chars(lines: list[str], types: tuple) -> list[dict]:
    rhyming = {1, 3} | ({0} if types[0] in ("A", "B") else set())
    size = len(lines[0])
    want = lambda t, j: ZH_TONE[prosody.base_of(t, size)[j]] if j in _WANTED[size] else "中"  # noqa: E731
    return [{"line": k + 1, "place": j + 1, "char": ch, "tone": prosody.tone_of(ch), "want": want(t, j),
             "rhyme": j == size - 1 and k in rhyming}
            for k, (line, t) in enumerate(zip(lines, types)) for j, ch in enumerate(line)]
