"""Generation metrics on hand-made poems: `python -m pytest tests/test_metrics.py -q`."""
import hashlib

import pytest

from poetry_lstm.errors import PoetryError
from poetry_lstm.metrics import (
    LineHashes,
    copy_rate,
    distinct_n,
    format_table,
    generated_lines,
    line_hash,
    novel_ngrams,
    poem_lines,
    repetition,
    summarize,
    train_ngrams,
)

# Line 4 repeats line 2.
REPEATED_LINE = "白日依山尽，黄河入海流。欲穷千里目，黄河入海流。"
# 处处: a repeated character within line 2.
IN_LINE = "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。"
# 月 in lines 1, 2 and 4, never twice in one line.
THRICE = "月出惊山鸟，月明春涧中。人闲桂花落，夜静月山空。"
# 明, 月, 头 twice each, in different lines: none of the three flags.
CLEAN = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"


def test_lines():
    assert poem_lines(CLEAN) == ["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡"]
    assert generated_lines(CLEAN) == ["疑是地上霜", "举头望明月", "低头思故乡"]
    assert poem_lines("床前明月光，疑是") == ["床前明月光", "疑是"]  # malformed: still lines


def test_line_hash_is_sha1_of_utf8():
    assert line_hash("abc") == 0xa9993e364706816a  # the first 8 bytes of the FIPS 180 test vector a9993e36…
    assert line_hash("黄河入海流") == int.from_bytes(hashlib.sha1("黄河入海流".encode("utf-8")).digest()[:8], "big")


def _write_hashes(path, lines):
    path.write_bytes(LineHashes.of_lines(lines).to_bytes())


def test_copy_rate_against_a_hash_file(tmp_path):
    hashes_file = tmp_path / "train_lines.u64"
    # 白日依山尽 is line 1, given to the generator, so it must not count as a copy.
    _write_hashes(hashes_file, ["黄河入海流", "处处闻啼鸟", "白日依山尽", "黄河入海流"])
    hashes = LineHashes.load(hashes_file)
    assert len(hashes) == 3 and hashes_file.stat().st_size == 3 * 8  # 8 bytes a distinct line
    # Lines 2-4 of both poems: 黄河入海流 (twice) and 处处闻啼鸟 copied, 3 others not: 3 of 6.
    assert copy_rate([REPEATED_LINE, IN_LINE], hashes) == pytest.approx(3 / 6)
    assert copy_rate([CLEAN], hashes) == 0.0


def test_line_hash_is_the_first_eight_bytes_of_sha1_and_files_are_sorted():
    want = int(hashlib.sha1("疑是地上霜".encode("utf-8")).hexdigest()[:16], 16)
    assert line_hash("疑是地上霜") == want
    values = LineHashes.of_lines(["疑是地上霜", "床前明月光", "举头望明月"]).values
    assert list(values) == sorted(values) and len(set(values)) == 3


@pytest.mark.parametrize("content, problem", [(b"", "empty"), (b"\x01" * 12, "truncated"),
                                              ((2).to_bytes(8, "little") + (1).to_bytes(8, "little"), "not sorted")])
def test_load_line_hashes_refuses_empty_truncated_and_unsorted_files(tmp_path, content, problem):
    path = tmp_path / "train_lines.u64"
    path.write_bytes(content)
    with pytest.raises(PoetryError, match=problem) as err:
        LineHashes.load(path)
    assert str(path) in str(err.value) and "--no-novelty" in str(err.value)
    with pytest.raises(PoetryError, match="missing"):
        LineHashes.load(tmp_path / "absent.u64")


def test_novel_ngrams_by_hand():
    train = [IN_LINE]
    generated = ["床前明月光，处处闻啼鸟。夜来风雨急，花落知多少。"]
    # 4-grams of lines 2-4: 处处闻啼 处闻啼鸟 夜来风雨 来风雨急 花落知多 落知多少; only 来风雨急 is new.
    assert novel_ngrams(generated, train, n=4) == pytest.approx(1 / 6)
    assert novel_ngrams(generated, train_ngrams(train, 4), n=4) == pytest.approx(1 / 6)
    # Training n-grams come from all four lines, line 1 included.
    assert "春眠不觉" in train_ngrams(train, 4)
    # Bigrams: 1 new of 12 (雨急; 处处 处闻 闻啼 啼鸟 夜来 来风 风雨 花落 落知 知多 多少 are known).
    assert novel_ngrams(generated, train, n=2) == pytest.approx(1 / 12)
    with pytest.raises(ValueError, match="4-gram"):
        novel_ngrams(generated, {"处处闻"}, n=4)


def test_distinct_n_by_hand():
    # REPEATED_LINE lines 2-4: 黄河入海流 欲穷千里目 黄河入海流: 12 bigrams, 8 distinct; 15 chars, 10 distinct.
    assert distinct_n([REPEATED_LINE], 2) == pytest.approx(8 / 12)
    assert distinct_n([REPEATED_LINE], 1) == pytest.approx(10 / 15)
    # IN_LINE adds 12 bigrams, all distinct and new; 15 chars, 14 distinct (处 twice), none shared.
    assert distinct_n([REPEATED_LINE, IN_LINE], 2) == pytest.approx(20 / 24)
    assert distinct_n([REPEATED_LINE, IN_LINE], 1) == pytest.approx(24 / 30)


def test_repetition_flags():
    assert repetition([REPEATED_LINE]) == {"char_three_times": 0, "char_repeat_in_line": 0, "line_repeated": 1}
    assert repetition([IN_LINE]) == {"char_three_times": 0, "char_repeat_in_line": 1, "line_repeated": 0}
    assert repetition([THRICE]) == {"char_three_times": 1, "char_repeat_in_line": 0, "line_repeated": 0}
    assert repetition([CLEAN]) == {"char_three_times": 0, "char_repeat_in_line": 0, "line_repeated": 0}
    assert repetition([REPEATED_LINE, IN_LINE, THRICE, CLEAN]) == {
        "char_three_times": 0.25, "char_repeat_in_line": 0.25, "line_repeated": 0.25}


def test_summarize_combines_and_marks_missing_inputs():
    poems = [REPEATED_LINE, IN_LINE, THRICE, CLEAN]
    hashes = LineHashes.of_lines(["黄河入海流"])
    full = summarize(poems, hashes, train_ngrams([IN_LINE]))
    assert list(full) == ["poems", "copy_rate", "novel_4grams", "distinct_1", "distinct_2",
                          "char_three_times", "char_repeat_in_line", "line_repeated"]
    assert full["poems"] == 4
    assert full["copy_rate"] == pytest.approx(2 / 12)
    assert full["novel_4grams"] == pytest.approx(1 - 6 / 24)  # IN_LINE's own six 4-grams are known
    assert full["distinct_2"] == distinct_n(poems, 2)
    bare = summarize(poems)
    assert bare["copy_rate"] is None and bare["novel_4grams"] is None


def test_empty_input_is_a_bug():
    for metric in (lambda p: distinct_n(p, 2), repetition, lambda p: copy_rate(p, set())):
        with pytest.raises(ValueError):
            metric([])


def test_format_table():
    table = format_table({
        "word2vec": {"poems": 3, "distinct_2": 0.5, "copy_rate": None},
        "real": {"poems": 800, "distinct_2": 0.891234, "perplexity": 123.456},
    })
    assert table == (
        "metric      word2vec   real\n"
        "----------  --------  -----\n"
        "poems              3    800\n"
        "distinct_2     0.500  0.891\n"
        "copy_rate          -      -\n"
        "perplexity         -  123.5"
    )


def test_format_table_aligns_wide_characters():
    lines = format_table({"真": {"a": 1}, "onehot": {"a": 22}}).splitlines()
    # The header's 真 takes two columns, so every line has the same display width.
    assert lines[0] == "metric  真  onehot"
    assert lines[2] == "a        1      22"
