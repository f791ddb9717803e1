"""The reading measures on hand-made poems with known answers: `python -m pytest tests/test_reading.py -q`."""
from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import CHARS, synthetic_poems

from poetry_lstm import reading
from poetry_lstm.vectors import CharVectors


def poem(*lines: str) -> str:
    return f"{lines[0]}，{lines[1]}。{lines[2]}，{lines[3]}。"


def test_line_ngrams_are_characters_and_pairs_within_lines_two_to_four():
    grams = reading.line_ngrams(poem("白日依山尽", "黄河入海流", "欲穷千里目", "更上一层楼"))
    assert grams[:9] == ["黄", "河", "入", "海", "流", "黄河", "河入", "入海", "海流"]
    assert len(grams) == 3 * 9
    assert "白" not in grams and "流欲" not in grams  # line 1 is given; no pair crosses a line break


def test_discriminator_cannot_tell_two_samples_of_one_source():
    pool = synthetic_poems(400, seed=11)
    assert reading.discriminator_accuracy(pool[:200], pool[200:]) == pytest.approx(0.5, abs=0.1)


def test_discriminator_tells_poems_of_other_characters_always():
    rng = random.Random(3)
    half = len(CHARS) // 2
    line = lambda chars: "".join(rng.choice(chars) for _ in range(5))
    real = [poem(*(line(CHARS[:half]) for _ in range(4))) for _ in range(60)]
    ours = [poem(*(line(CHARS[half:]) for _ in range(4))) for _ in range(60)]
    assert reading.discriminator_accuracy(real, ours) == 1.0


def test_discriminator_is_deterministic_and_needs_a_fold_of_each():
    pool = synthetic_poems(100, seed=4)
    assert reading.discriminator_accuracy(pool[:50], pool[50:]) == reading.discriminator_accuracy(pool[:50], pool[50:])
    with pytest.raises(ValueError, match="at least 5 poems of each"):
        reading.discriminator_accuracy(pool[:4], pool[50:])


def test_formula_rate_counts_lines_in_three_or_more_poems():
    stock, other = "不知春色里", "只是故乡人"
    poems = [
        poem("山水风月花", stock, other, "千山鸟飞绝"),
        poem("山水风月花", stock, other, "万径人踪灭"),
        poem("山水风月花", stock, "孤舟蓑笠翁", stock),   # the stock line twice in one poem: still one poem
        poem("山水风月花", "独钓寒江雪", other, "白日依山尽"),
    ]
    # stock: 4 occurrences in 3 poems (counted); other: 3 occurrences in 3 poems (counted); 5 single lines.
    assert reading.formula_rate(poems) == pytest.approx(7 / 12)
    assert reading.formula_rate(poems, min_poems=4) == 0.0
    assert reading.formula_rate(poems[:2]) == 0.0


def _vectors() -> CharVectors:
    """Two themes in two directions: 山水 near each other, 酒杯 near each other, and 的 in between."""
    keys = ["山", "水", "峰", "酒", "杯", "醉", "的"]
    rows = np.array([[1, 0], [0.9, 0.1], [0.95, 0.05], [0, 1], [0.1, 0.9], [0.05, 0.95], [0.7, 0.7]], dtype=np.float32)
    return CharVectors(keys, rows)


def test_coherence_is_higher_when_lines_two_to_four_stay_on_line_one():
    on = [poem("山水山水山", "峰峰水山水", "山峰水山峰", "水山峰水山"),
          poem("酒杯酒杯酒", "醉杯酒醉杯", "酒醉杯酒醉", "杯酒醉杯酒")]
    off = [poem("山水山水山", "醉杯酒醉杯", "酒醉杯酒醉", "杯酒醉杯酒"),
           poem("酒杯酒杯酒", "峰峰水山水", "山峰水山峰", "水山峰水山")]
    kept, drifted = reading.coherence(on, _vectors()), reading.coherence(off, _vectors())
    assert kept["coherence"] > 0.95 and drifted["coherence"] < 0.25
    # Against the other poem's first line the two sets swap, so their lifts are opposite.
    assert kept["coherence_lift"] > 0.7 and drifted["coherence_lift"] == pytest.approx(-kept["coherence_lift"])


def test_coherence_by_hand_with_unknown_characters_ignored():
    vectors = _vectors()
    one = poem("山山山山山", "酒酒龘酒酒", "酒酒酒酒酒", "酒酒酒酒酒")  # 龘 has no vector
    result = reading.coherence([one], vectors)
    assert result["coherence"] == pytest.approx(0.0, abs=1e-6) and result["coherence_lift"] is None
    half = poem("山山山山山", "的的的的的", "的的的的的", "的的的的的")
    assert reading.coherence([half], vectors)["coherence"] == pytest.approx(np.sqrt(0.5), rel=1e-5)


def test_char_frequency_gap_names_the_overused_characters():
    real = [poem("山水风月花", "江南春色好", "明月照高楼", "孤舟独钓雪")] * 2
    ours = [poem("山水风月花", "不知春色好", "不见高楼月", "不可一孤舟")] * 2
    gap = reading.char_frequency_gap(real, ours, top=2)
    assert gap["overused"][0] == ["不", 6, 0, 7.0]   # add-one ratio: (6 + 1) / (0 + 1)
    assert gap["overused"][1][0] in "一可知见"        # each 2 against 0; ties go to the smallest code point
    assert gap["overused"][1] == ["一", 2, 0, 3.0]
    assert gap["overused_ratio"] == 8.0               # (6 + 2) / max(0 + 0, 1)
    assert gap["distinct_chars"] == 13 and gap["distinct_chars_real"] == 15
    # Shared: 春色好 高楼月 孤舟 = 8 of 15 characters each, at the same counts: the rest differs.
    assert gap["char_distribution_gap"] == pytest.approx(7 / 15)


def test_attested_doubles_need_real_use_at_that_position():
    lines = ["依依墟里烟", "依依杨柳风", "依依远山色", "年年花相似", "青山水水流"]
    assert reading.attested_doubles(lines) == frozenset({("依", 0)})
    assert reading.attested_doubles(lines, min_count=1) == frozenset({("依", 0), ("年", 0), ("水", 2)})


def test_stutter_doubled_and_echo_rates():
    attested = frozenset({("依", 0)})
    poems = [
        poem("白日依山尽", "依依杨柳风", "明月照高楼", "孤舟独钓雪"),   # an attested 叠字: doubled, no stutter
        poem("白日依山尽", "只是是人时", "明月照高楼", "孤舟独钓雪"),   # 是是: a stutter
        poem("白日依山尽", "春风吹又生", "明月照高楼", "春风独钓雪"),   # 春风 again: an echo
        poem("春风吹又生", "白日依山尽", "明月照高楼", "孤舟独钓雪"),   # line 1's 春风 never comes back
    ]
    assert reading.doubled_rate(poems) == 0.5
    assert reading.stutter_rate(poems, attested) == 0.25
    assert reading.stutter_rate(poems, frozenset()) == 0.5
    assert reading.echo_rate(poems) == 0.25
    # line 1 echoed in line 2
    assert reading.echo_rate([poem("春风吹又生", "白日春风尽", "明月照高楼", "孤舟独钓雪")]) == 1.0
    # within one line is not an echo
    assert reading.echo_rate([poem("春风春风生", "白日依山尽", "明月照高楼", "孤舟独钓雪")]) == 0.0


def test_empty_input_is_refused():
    for measure in (reading.formula_rate, reading.doubled_rate, reading.echo_rate):
        with pytest.raises(ValueError, match="no poems"):
            measure([])
    with pytest.raises(ValueError, match="no real poems"):
        reading.char_frequency_gap([], [poem("山水风月花", "江南春色好", "明月照高楼", "孤舟独钓雪")])


def test_repeated_characters_count_a_doubled_character_in_place_once():
    jingye = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"  # 明, 月 and 头 twice; 明月 of line 1 comes back
    dengguan = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
    qingqing = "青青河畔草，郁郁园中柳。盈盈楼上女，皎皎当窗牖。"  # 叠字 only
    again = "青青河畔草，郁郁园中柳。盈盈楼上女，青草当窗牖。"  # 青 and 草 come back
    assert reading.repeated_char_rates([jingye]) == {"repeated_char": 1.0, "line_1_char_back": 1.0}
    assert reading.repeated_char_rates([dengguan, qingqing]) == {"repeated_char": 0.0, "line_1_char_back": 0.0}
    assert reading.repeated_char_rates([dengguan, again]) == {"repeated_char": 0.5, "line_1_char_back": 0.5}
