"""The rules engine (meter.py) and the poet's checker (checker.py): every fault at its place, licences as notes,
and every odd input as one sentence."""
from __future__ import annotations

import json
from itertools import product

import pytest

from poetry_lstm import checker, meter, prosody
from poetry_lstm.errors import InputError

# EVALUATION.md's accepted variants: the rules the generator kept before the poet's desk
OLD_VARIANTS = {"a": ("PZPPZ", "PZZPZ", "ZZPPZ", "ZZZPZ"), "A": ("ZZZPP", "PZZPP"),
                "b": ("PPPZZ", "PPZZZ", "ZPPZZ", "ZPZPZ", "PPZPZ"), "B": ("PPZZP", "ZPPZP", "PPPZP")}


def test_lenient_rules_with_licences_are_the_rules_before_and_strict_ones_drop_the_disputed():
    for t, old in OLD_VARIANTS.items():
        assert sorted(meter.variants(t, "lenient", licences=True)) == sorted(old)
        assert sorted(prosody.VARIANTS[t]) == sorted(old)
    assert "PPZZZ" not in meter.variants("b", "strict", licences=True)  # 三仄尾
    assert "ZPZPZ" not in meter.variants("b", "strict", licences=True)  # 仄平仄平仄
    # plain lines only: no 拗 of any kind
    assert meter.variants("a") == ("PZPPZ", "ZZPPZ") and meter.variants("B") == ("PPPZP", "PPZZP")
    assert meter.variants(meter.RESCUE) == ("PPPZP",)  # a B line that rescues a 大拗 before it


@pytest.mark.parametrize("pattern, line_type, faults, licence", [
    ("ZZPPZ", "a", (), None),
    ("ZZZPZ", "a", (), "半拗"),
    ("ZZPZZ", "a", ((4, "unrescued_ao"),), None),
    ("PPZPZ", "b", (), "特拗"),
    ("ZPZPZ", "b", ((1, "tone"),), None),
    ("PPZZZ", "b", ((3, "three_ze_tail"),), None),
    ("ZPPZP", "B", (), "孤平拗救"),
    ("ZPZZP", "B", ((1, "lone_ping"),), None),
    ("ZZPPP", "A", ((3, "three_ping_tail"),), None),
    ("ZPZPP", "A", ((2, "lost_contrast"),), None),
])
def test_each_fault_and_licence_is_named_at_its_place(pattern, line_type, faults, licence):
    v = meter.verdict(pattern, line_type)
    assert (v.faults, v.licence) == (faults, licence)


def test_a_rescued_dayao_is_a_licence_and_lenient_rules_accept_the_disputed():
    assert meter.verdict("ZZPZZ", "a", rescued=True) == meter.Verdict((), "对句相救")
    assert meter.verdict("PPZZZ", "b", "lenient") == meter.Verdict((), "三仄尾")
    assert meter.verdict("ZPZPZ", "b", "lenient").ok


def test_every_pattern_gets_a_verdict_and_only_plain_ones_are_written():
    for t in meter.TYPES:
        for letters in product("PZ", repeat=5):
            v = meter.verdict("".join(letters), t)
            assert v.ok == (not v.faults) and v.cost == sum(meter.WEIGHTS[p - 1] for p, _ in v.faults)
        assert all(meter.verdict(p, t).licence is None for p in meter.variants(t))


# --- seven characters a line (issue 18) --------------------------------------------------------------------

def test_seven_character_types_are_the_five_after_a_head_of_the_other_tones():
    assert meter.BASE7 == {"a": "PPZZPPZ", "A": "PPZZZPP", "b": "ZZPPPZZ", "B": "ZZPPZZP"}  # 平平仄仄平平仄 …
    for t in meter.TYPES:
        plain, seven = meter.variants(t), meter.variants(t, chars=7)
        # place 1 free, place 2 the other tone of place 4, places 3–7 as a five-character line
        assert sorted(seven) == sorted(h + meter._OTHER[p[1]] + p for p in plain for h in "PZ")
        lenient = meter.variants(t, "lenient", licences=True, chars=7)
        assert sorted(lenient) == sorted(h + meter._OTHER[p[1]] + p
                                         for p in meter.variants(t, "lenient", licences=True) for h in "PZ")
        assert sorted(prosody.VARIANTS7[t]) == sorted(lenient)


@pytest.mark.parametrize("pattern, line_type, faults, licence", [
    ("ZZPPZZP", "B", (), None),                        # 仄仄平平仄仄平
    ("ZZZPZZP", "B", ((3, "lone_ping"),), None),       # 孤平 at its 七言 place
    ("ZZZPPZP", "B", (), "孤平拗救"),
    ("ZPPPZZP", "B", ((2, "tone"),), None),            # 二四六分明: place 2 against place 4
    ("PPZZPPP", "A", ((5, "three_ping_tail"),), None),  # 三平尾
    ("PPZZZPP", "A", (), None),
    ("PPZZPZZ", "a", ((6, "unrescued_ao"),), None),    # 大拗 at place 6
    ("ZZPPZZZ", "b", ((5, "three_ze_tail"),), None),
])
def test_seven_character_faults_sit_at_their_places(pattern, line_type, faults, licence):
    v = meter.verdict(pattern, line_type)
    assert (v.faults, v.licence, v.chars) == (faults, licence, 7)
    assert v.cost == sum(meter.WEIGHTS7[p - 1] for p, _ in v.faults)


def test_a_seven_character_dayao_is_rescued_at_place_5_of_the_next_line():
    assert meter.needs_rescue("PPZZPZZ") and not meter.needs_rescue("PPZZPPZ")
    assert meter.verdict("PPZZPZZ", "a", rescued=True).licence == "对句相救"
    assert meter.verdict("ZZPPPZP", meter.RESCUE).ok and not meter.verdict("ZZPPZZP", meter.RESCUE).ok


def test_famous_qijue_keep_the_rules_the_five_character_checks_apply():
    for text in ("秦时明月汉时关，万里长征人未还。但使龙城飞将在，不教胡马度阴山。",   # 王昌龄, 平起入韵
                 "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。",   # 李白, 平起入韵
                 "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。"):  # 李白, a 拗 first line
        assert prosody.check_poem(text)["form"] and prosody.check_rhyme(text) and prosody.check_after_first(text)
    assert prosody.check_tone("秦时明月汉时关，万里长征人未还。但使龙城飞将在，不教胡马度阴山。")
    # 故人西辞黄鹤楼 has 平 at places 2 and 4 (人, 辞): line 1 breaks 二四六分明, lines 2–4 keep it
    assert not prosody.check_tone_245("故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。")
    assert prosody.seven_lines("秦时明月汉时关，万里长征人未还。但使龙城飞将在，不教胡马度阴山") is None  # no last stop
    assert prosody.line_fits("轻舟已过万重山", "A") and not prosody.line_fits("轻舟已过万重山", "B")
    # the rhyming characters at their places in the 32-character text: 间, 还, 山
    assert prosody.rhyme_chars("朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。") == [6, 14, 30]
    assert prosody.rhyme_chars("白日依山尽，黄河入海流。欲穷千里目，更上一层楼。") == [10, 22]  # 平平仄仄仄平平


def problems(text: str, rules: str = "strict") -> list[tuple]:
    return [(p.line, p.char, p.kind, p.severity) for p in checker.check(checker.read_poem(text), rules).problems
            if p.kind != "polyphonic"]


def test_a_regular_poem_passes_and_reports_its_form_and_tones():
    report = checker.check(checker.read_poem("白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"))
    assert report.ok and report.form == "仄起不入韵" and report.errors() == []
    assert len(report.chars) == 20 and report.chars[1] == {"line": 1, "place": 2, "char": "日", "tone": "仄",
                                                            "want": "仄", "rhyme": False}
    assert [c["char"] for c in report.chars if c["rhyme"]] == ["流", "楼"]
    out = report.to_json()
    assert json.loads(json.dumps(out, ensure_ascii=False)) == out
    assert set(out) >= {"kind", "form", "ok", "chars", "problems"} and out["kind"] == "五绝"


def test_a_tone_error_is_flagged_at_its_character_and_a_rhyme_error_at_the_line_end():
    # 海 → 天 at line 2 place 4: 平 where 仄 is wanted
    assert (2, 4, "tone", "error") in problems("白日依山尽，黄河入天流。欲穷千里目，更上一层楼。")
    # 楼 → 天 (下平一先): lines 2 and 4 no longer share a group; both ends are named
    found = problems("白日依山尽，黄河入海流。欲穷千里目，更上一层天。")
    assert (4, 5, "off_rhyme", "error") in found and (2, 5, "off_rhyme", "error") in found
    # 入韵: line 1 rhymes with line 4, so line 2 is the odd one out
    found = problems("山中相送罢，日暮掩柴门。春草明年绿，王孙归不归。".replace("门", "天"))
    assert (2, 5, "off_rhyme", "error") in found


def test_shinian_shidui_and_the_rescued_lines_of_real_poems():
    # 静夜思 is a 古绝: 失粘 at line 3, character 2
    assert (3, 2, "lost_link", "error") in problems("床前明月光，疑是地上霜。举头望明月，低头思故乡。")
    # 移舟泊烟渚 uses 特拗 in line 1: a note, not an error
    assert problems("移舟泊烟渚，日暮客愁新。野旷天低树，江清月近人。") == [(1, None, "licence", "note")]


def test_strict_rules_fault_the_three_ze_tail_and_lenient_rules_accept_it():
    tail = "白日依山尽，黄河入海流。青天落叶远，更上一层楼。"  # line 3: 平平仄仄仄
    assert problems(tail) == [(3, 3, "three_ze_tail", "error")]
    assert problems(tail, "lenient") == [(3, None, "licence", "note")]


def test_a_rhyme_through_a_merged_simplified_character_is_an_error_only_by_strict_rules():
    assert prosody.sure_rhyme_groups("机") == frozenset() and prosody.rhyme_groups("机") >= {"上平五微"}
    assert prosody.sure_rhyme_groups("台") == frozenset({"上平十灰"})  # 台 and 臺 both rhyme there
    text = "春风吹柳絮，燕子入帘飞。独坐窗前久，闲看织女机。"
    assert (4, 5, "off_rhyme", "error") in problems(text)
    assert (4, 5, "off_rhyme", "note") in problems(text, "lenient")


def test_repeats_are_warnings_and_unknown_characters_errors():
    found = problems("白日依山尽，黄河入海流。欲穷千里目，更上一层山。")
    assert (4, 5, "repeated_char", "warning") in found
    assert not [p for p in problems("青青涧畔松，黄河入海流。欲穷千里目，更上一层楼。") if p[2] == "repeated_char"]
    assert (1, 3, "unknown_char", "error") in problems("白日㐀山尽，黄河入海流。欲穷千里目，更上一层楼。")


@pytest.mark.parametrize("raw, kind", [
    ("", "poem_empty"), ("   ", "poem_empty"),
    ("😀😀😀😀😀，😀😀😀😀😀。😀😀😀😀😀，😀😀😀😀😀。", "poem_not_han"),
    ("白日依山尽", "poem_shape"), ("白日依山尽，黄河入海流。", "poem_shape"),
    ("白日依山尽万里，黄河入海流千丈。欲穷千里目千丈，更上一层楼万里千丈。", "poem_shape"),  # 7/7/7/9
    ("床" * 200_000, "poem_too_long"),
    ("hello world", "poem_not_han"),
])
def test_every_bad_input_is_one_sentence(raw, kind):
    with pytest.raises(InputError) as info:
        checker.read_poem(raw)
    assert info.value.kind == kind
    message = str(info.value)
    assert message.count("\n") == 0 and len(message) < 300 and message.endswith((".", "。"))


@pytest.mark.parametrize("raw", [
    "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。",
    "白日依山尽,黄河入海流.欲穷千里目,更上一层楼.",
    "白日依山尽\n黄河入海流\n欲穷千里目\n更上一层楼",
    "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。",
    "白日依山尽黄河入海流欲穷千里目更上一层楼",
])
def test_the_poem_is_read_however_it_is_pasted(raw):
    assert checker.read_poem(raw) == "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"


# --- the checker reads a 七绝 (issue 18) -----------------------------------------------------------------

QIJUE = "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"


@pytest.mark.parametrize("raw", [
    QIJUE,
    "朝辞白帝彩云间,千里江陵一日还.两岸猿声啼不住,轻舟已过万重山.",
    "朝辭白帝彩雲間\n千里江陵一日還\n兩岸猿聲啼不住\n輕舟已過萬重山",
    "朝辞白帝彩云间千里江陵一日还两岸猿声啼不住轻舟已过万重山",  # 28 characters bare
])
def test_a_qijue_is_read_however_it_is_pasted(raw):
    assert checker.read_poem(raw) == QIJUE


def test_a_regulated_qijue_passes_with_its_seven_character_name():
    report = checker.check(QIJUE)
    assert report.ok and report.kind == "七绝" and report.form == "仄起入韵"  # the key of (A B b A)
    assert report.form_name == "平起入韵"  # line 1 is 平平仄仄仄平平: 辞 at place 2 is 平
    assert report.to_json()["form_name"] == "平起入韵" and report.to_json()["kind"] == "七绝"
    assert len(report.chars) == 28 and [c["want"] for c in report.chars[:7]] == list("中平中仄中平平")
    assert [c["place"] for c in report.chars if c["rhyme"]] == [7, 7, 7]  # lines 1, 2 and 4 rhyme


@pytest.mark.parametrize("text, expected", [
    # 孤平 at place 3 of a B line (仄仄仄平仄仄平): 千里江陵 → 千里水陵
    ("朝辞白帝彩云间，千里水陵一日还。两岸猿声啼不住，轻舟已过万重山。", (2, 3, "lone_ping")),
    # place 2 of line 3 against line 2's (失粘): 两岸 → 两山
    ("朝辞白帝彩云间，千里江陵一日还。两山猿声啼不住，轻舟已过万重山。", (3, 2, "lost_link")),
    # line 3 ends 平 (落韵 at place 7)
    ("朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不休，轻舟已过万重山。", (3, 7, "off_rhyme")),
    # place 4 of line 2 against its type (二四六分明; the five's place 2, named a tone fault here): 陵 → 岸
    ("朝辞白帝彩云间，千里江岸一日还。两岸猿声啼不住，轻舟已过万重山。", (2, 4, "tone")),
    # place 6 of line 4 against its type (二四六分明): 重 → 里
    ("朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万里山。", (4, 6, "tone")),
])
def test_each_qijue_fault_sits_at_its_seven_character_place(text, expected):
    found = [(p.line, p.char, p.kind) for p in checker.check(text).problems if p.severity == "error"]
    assert expected in found, found
    message = next(p.message for p in checker.check(text).problems if (p.line, p.char, p.kind) == expected)
    assert message.count("。") == 1 and message.endswith(".")


def test_a_lone_ping_message_names_the_seven_character_places():
    problem = next(p for p in checker.check("朝辞白帝彩云间，千里水陵一日还。两岸猿声啼不住，轻舟已过万重山。").problems
                   if p.kind == "lone_ping")
    assert "第三字" in problem.message and "第五字用平以救" in problem.message
    assert "character 3" in problem.message and "character 5" in problem.message
