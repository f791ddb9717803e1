"""The cleaner, rule by rule: normalisation, the shape check, deduplication, the hash split and the report."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from conftest import CHARS, synthetic_poems, tiny_config, write_raw

from poetry_lstm import clean, files
from poetry_lstm.config import load_config
from poetry_lstm.errors import PoetryError

WUJUE = ["wujue"]
DENGGUAN = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
LINES = ["白日依山尽", "黄河入海流", "欲穷千里目", "更上一层楼"]
CHUNWANG = "国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。烽火连三月，家书抵万金。白头搔更短，浑欲不胜簪。"


def run_clean(tmp_path: Path, poems: list[str], extra: list[dict] = (), **clean_settings):
    write_raw(tmp_path / "crawler", poems, extra)
    cfg = tiny_config(tmp_path)
    if clean_settings:
        cfg = cfg.replace("clean", **clean_settings)
    report = clean.clean_corpus(cfg)
    return report, clean.load_corpus(cfg), cfg


# --- normalise ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。", DENGGUAN),                        # traditional → simplified
    ("牀前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。", "床前明月光，疑是地上霜。举头望明月，低头思故乡。"),
    ("白日依山尽,黄河入海流.欲穷千里目,更上一层楼.", DENGGUAN),                               # half-width punctuation
    ("白日依山尽﹐黄河入海流｡欲穷千里目､更上一层楼．", "白日依山尽，黄河入海流。欲穷千里目、更上一层楼。"),
    ("君自故乡来,应知故乡事.来日绮窗前,寒梅著花未?", "君自故乡来，应知故乡事。来日绮窗前，寒梅著花未？"),
    ("白日依山尽（一作白日依山没），黄河入海流。欲穷千里目，更上一层楼。", DENGGUAN),       # variant notes
    ("白日依山尽，黄河入海流(入海 一作:向东)。欲穷千里目，更上一层楼。", DENGGUAN),
    ("白日依山尽，黄河入海流。【注】欲穷千里目〔一〕，更上一层楼[1]。", DENGGUAN),          # other bracketed notes
    (" 白日依山尽，\n黄河入海流。\r\n欲穷千里目，\u3000更上一层楼。\t", DENGGUAN),       # whitespace of every kind
], ids=["traditional", "traditional-2", "half-width", "odd-width", "half-width-question", "variant-note",
        "variant-note-ascii", "other-notes", "whitespace"])
def test_normalise(raw, expected):
    assert clean.normalise(raw) == expected


def test_normalise_can_keep_traditional_characters():
    assert clean.normalise("白日依山盡, 黃河入海流.", simplify=False) == "白日依山盡，黃河入海流。"


# --- variant forms (异体字) ---------------------------------------------------------------------------

# The decoder's first table (it held back these 62 before the cleaner had one): the cleaner's holds them all.
DECODER_VARIANTS = ("疎踈髪劒浄迳猨鶑髙鬭鬬懽隣罇檝幷峩堦怱穉飜迺廻缾鳯畧逈潄秪秖歳"
                    "暎栢悮犂輙竝緜顇欵顦憇薫呌碁讐鏁邨効鸎徴囘衞虵棃窻箒脇蕚趂朶悤")
# A poem written with variant forms t2s keeps (疎 遶 鴈 痩 隠 谿), and the same poem in standard forms.
VARIANT_POEM = "疎林遶古寺，鴈影下寒谿。痩馬隠秋草，疎钟过远堤。"
STANDARD_POEM = "疏林绕古寺，雁影下寒溪。瘦马隐秋草，疏钟过远堤。"


def test_variant_forms_become_standard_after_t2s():
    assert clean.normalise(VARIANT_POEM) == STANDARD_POEM
    # traditional too, 隄 → 堤
    assert clean.normalise("疎林遶古寺，鴈影下寒谿。痩馬隠秋草，疎鐘過遠隄。") == STANDARD_POEM
    assert clean.to_simplified(VARIANT_POEM) != STANDARD_POEM  # t2s alone keeps them: the table does the work
    assert clean.normalise(VARIANT_POEM, standardise=False) == clean.to_simplified(VARIANT_POEM)
    assert clean.normalise(VARIANT_POEM, simplify=False) == VARIANT_POEM


def test_distinct_words_are_not_merged():
    text = "于於余馀着著沈沉澹淡"
    assert clean.normalise(text) == clean.to_simplified(text)


def test_the_variant_table_is_consistent():
    pairs = [pair for group in clean._VARIANT_PAIRS for pair in group.split()]
    assert all(len(pair) == 2 for pair in pairs)
    assert len(clean.VARIANT_FORMS) == len(pairs) >= 400  # no variant listed twice
    assert set(DECODER_VARIANTS) <= set(clean.VARIANT_FORMS)
    values = set(clean.VARIANT_FORMS.values())
    assert not values & set(clean.VARIANT_FORMS), "a standard form is itself listed as a variant"
    assert [v for v in values if clean.to_simplified(v) != v] == []            # values are simplified
    assert [k for k in clean.VARIANT_FORMS if clean.to_simplified(k) != k] == []  # t2s keeps every variant
    # a Han character for a Han character: the shape check reads the text the same before and after
    assert all(clean.is_cjk(ch) for pair in pairs for ch in pair)
    assert clean.standard_forms("".join(clean.VARIANT_FORMS)) == "".join(clean.VARIANT_FORMS.values())


def test_the_cleaner_writes_standard_forms_and_counts_them(tmp_path):
    traditional = "疎林遶古寺，鴈影下寒谿。痩馬隠秋草，疎鐘過遠堤。"
    report, corpus, _ = run_clean(tmp_path, [traditional, DENGGUAN, STANDARD_POEM])  # the last repeats the first
    assert [r["text"] for r in corpus] == [STANDARD_POEM, DENGGUAN]
    assert corpus[0]["lines"] == ["疏林绕古寺", "雁影下寒溪", "瘦马隐秋草", "疏钟过远堤"]
    assert not any(ch in clean.VARIANT_FORMS for r in corpus for ch in r["text"])
    assert report["dropped"]["duplicate_text"] == 1
    assert report["variants_normalised"] == 7
    assert report["variants_by_form"] == {"疎→疏": 2, "遶→绕": 1, "鴈→雁": 1, "谿→溪": 1, "痩→瘦": 1, "隠→隐": 1}
    assert "variants" not in corpus[0]  # the per-row count is not written


def test_variants_are_counted_in_every_kept_window(tmp_path):
    """Counts are of the written corpus: lines 3–4 of a six-line 五古 are in both its windows."""
    six = "疎林遶古寺，鴈影下寒谿。痩馬隠秋草，疎鐘過遠堤。" + synthetic_poems(1, seed=4)[0][:12]
    report, corpus, _ = run_clean(tmp_path, [six, DENGGUAN], forms=["wujue", "wugu"])
    assert [(r["form"], r["lines"][0]) for r in corpus] == [("wujue", "白日依山尽"), ("wugu_window", "疏林绕古寺"),
                                                             ("wugu_window", "瘦马隐秋草")]
    assert report["variants_normalised"] == 7 + 3
    assert report["variants_by_form"]["疎→疏"] == 3 and report["variants_by_form"]["痩→瘦"] == 2
    report, _, _ = run_clean(tmp_path / "none", [DENGGUAN])
    assert report["variants_normalised"] == 0 and report["variants_by_form"] == {}


# --- problem_of -----------------------------------------------------------------------------------

BAD_SHAPES = [
    ("", "empty"),
    ("秦时明月汉时关，万里长征人未还。但使龙城飞将在，不教胡马度阴山。", "not_five_character_quatrain"),  # 七绝
    ("白日依山尽，黄河入海流。欲穷千里目。", "not_five_character_quatrain"),                          # three lines
    ("白日依山，黄河入海流。欲穷千里目，更上一层楼。", "not_five_character_quatrain"),                # a short line
    ("白日依山尽黄河，入海流。欲穷千里目，更上一层楼。", "not_five_character_quatrain"),
    (CHUNWANG, "not_five_character_quatrain"),                                                       # 五律 without wulv
    ("白日依山□，黄河入海流。欲穷千里目，更上一层楼。", "missing_character"),
    ("白日依山尽，黄河入海流。欲穷千里目，更上１层楼。", "digits"),
    ("白日依山尽，黄河入海流。欲穷千里目，更上3层楼。", "digits"),
    ("白日依山尽，黄河入海流。欲穷千里目，更上a层楼。", "latin_letters"),
    ("白日依山尽，黄河入海流。欲穷千里目，更上Ｌ层楼。", "latin_letters"),
    ("白日依山尽，黄河入海流。欲穷千里目，更上一层·。", "stray_marks"),
    ("白日依山尽，黄河入海流。欲穷千里、，更上一层楼。", "stray_marks"),
    ("白日依山尽，黄河入海流。欲穷千里目，更上一层《。", "stray_marks"),
    ("白日依山尽。黄河入海流，欲穷千里目。更上一层楼，", "punctuation"),
    ("白日依山尽，黄河入海流，欲穷千里目，更上一层楼。", "punctuation"),
    ("白日依山尽；黄河入海流。欲穷千里目，更上一层楼。", "punctuation"),   # ； ends a couplet, not a first line
    ("白日依山尽，黄河入海流。欲穷千里目，更上一层楼", "punctuation"),     # no final stop
]


@pytest.mark.parametrize("text, reason", BAD_SHAPES, ids=[f"{reason}-{i}" for i, (_, reason) in enumerate(BAD_SHAPES)])
def test_problem_of_names_the_reason(text, reason):
    assert clean.problem_of(text, WUJUE) == (reason, [])


@pytest.mark.parametrize("text", [
    DENGGUAN,
    "君自故乡来，应知故乡事。来日绮窗前，寒梅著花未？",
    "白日依山尽，黄河入海流！欲穷千里目，更上一层楼；",
    "白日依山尽，黄河入海流；欲穷千里目，更上一层楼！",
], ids=["period", "question", "exclaim-semicolon", "semicolon-exclaim"])
def test_line_final_question_exclamation_and_semicolon_count_as_stops(text):
    reason, parts = clean.problem_of(text, WUJUE)
    assert reason is None and len(parts) == 1 and len(parts[0]) == 4


def test_extension_a_characters_are_allowed():
    ext_a = "\u3400\u3401\u4db5\u4dbf\u4e00"
    text = f"{ext_a}，黄河入海流。欲穷千里目，更上一层楼。"
    assert clean.problem_of(text, WUJUE) == (None, [[ext_a, "黄河入海流", "欲穷千里目", "更上一层楼"]])
    ext_b = "\U00020000黄河入海"
    assert clean.problem_of(f"{ext_b}，黄河入海流。欲穷千里目，更上一层楼。", WUJUE)[0] == "stray_marks"


def test_a_wulv_gives_two_halves_only_when_asked():
    reason, parts = clean.problem_of(CHUNWANG, ["wujue", "wulv"])
    assert reason is None
    assert parts == [["国破山河在", "城春草木深", "感时花溅泪", "恨别鸟惊心"],
                     ["烽火连三月", "家书抵万金", "白头搔更短", "浑欲不胜簪"]]
    assert clean.problem_of(DENGGUAN, ["wujue", "wulv"]) == (None, [LINES])


# --- clean_corpus: drops, dedupe, split, report -------------------------------------------------------

def test_every_drop_is_counted_by_reason_in_the_report(tmp_path):
    poems = [DENGGUAN,
             "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。",              # the same poem in traditional characters
             "白日依山尽,黄河入海流.欲穷千里目,更上一层楼.",                   # … and with half-width punctuation
             "白日依山尽，黄河入海流。欲穷千里目，更上一层楼？",                # … and another final stop
             "白日依山□，黄河入海流。欲穷千里目，更上一层楼。",
             "白日依山尽，黄河入海流。欲穷千里目，更上1层楼。",
             "白日依山尽，黄河入海流。欲穷千里目，更上A层楼。",
             "白日依山尽，黄河入海流。欲穷千里目，更上一层·。",
             "白日依山尽。黄河入海流，欲穷千里目。更上一层楼，",
             "秦时明月汉时关，万里长征人未还。但使龙城飞将在，不教胡马度阴山。",
             CHUNWANG,
             ""]
    extra = [{"source": "chinese-poetry", "text": 5}, {"source_id": "x"}, ["not", "an", "object"]]
    report, corpus, _ = run_clean(tmp_path, poems, extra, forms=WUJUE)  # the 五律 is dropped, not cut into windows
    assert [r["text"] for r in corpus] == [DENGGUAN]
    assert report["records_read"] == len(poems) + len(extra)
    assert report["dropped"] == {"duplicate_text": 3, "missing_character": 1, "digits": 1, "latin_letters": 1,
                                 "stray_marks": 1, "punctuation": 1, "not_five_character_quatrain": 2, "empty": 1,
                                 "malformed_record": 3}
    assert report["kept"] + sum(report["dropped"].values()) == report["records_read"]
    stored = json.loads((tmp_path / "corpus" / "report.json").read_text(encoding="utf-8"))
    assert stored == report


def test_a_poem_sharing_two_lines_with_an_earlier_one_is_dropped(tmp_path):
    poems = [DENGGUAN,
             # two lines repeated, a character changed in the others
             "白日依山尽，黄河入海流。欲穷千里眼，更上一层台。",
             "白日依山没，长河入海流。欲穷千里目，更上一层楼。"]   # the second half repeated
    report, corpus, _ = run_clean(tmp_path, poems)
    assert [r["text"] for r in corpus] == [DENGGUAN]
    assert report["dropped"]["duplicate_line"] == 2


def poem_in_split(split: str, cfg, start: int = 0) -> tuple[int, str]:
    for i, text in enumerate(synthetic_poems(400, seed=99)[start:], start):
        if clean.split_of(text, cfg) == split:
            return i, text
    raise AssertionError(f"no synthetic poem hashes to {split}")


def lines_of(text: str) -> list[str]:
    return text[:-1].replace("。", "，").split("，")


def test_a_poem_borrowing_one_line_lands_in_its_owners_split(tmp_path):
    cfg = tiny_config(tmp_path)
    for split in ("valid", "test"):
        _, owner = poem_in_split(split, cfg)
        # the owner's first line and three lines of its own, and its own hash says train
        borrower = next(b for b in (owner[:5] + t[5:] for t in synthetic_poems(50, seed=42))
                        if clean.split_of(b, cfg) == "train")
        _, corpus, _ = run_clean(tmp_path / split, [owner, borrower])
        assert [(r["text"], r["split"]) for r in corpus] == [(owner, split), (borrower, split)]


def test_no_line_of_a_valid_or_test_poem_occurs_in_train(tmp_path):
    rng = random.Random(3)
    poems = synthetic_poems(600, seed=11)
    for own_text in synthetic_poems(600, seed=12):  # poems borrowing one line (some two), some from borrowers
        k = rng.choice([1, 1, 1, 2])
        lines = lines_of(rng.choice(poems))[:k] + lines_of(own_text)[k:]
        rng.shuffle(lines)
        poems.append(f"{lines[0]}，{lines[1]}。{lines[2]}，{lines[3]}。")
    report, corpus, _ = run_clean(tmp_path, poems)
    in_split = {s: {line for r in corpus if r["split"] == s for line in r["lines"]} for s in clean.SPLITS}
    assert not in_split["train"] & (in_split["valid"] | in_split["test"])
    assert not in_split["valid"] & in_split["test"]
    assert (report["dropped"]["duplicate_line"] > 50 and report["per_split"]["valid"] > 0
            and report["per_split"]["test"] > 0)
    assert len({r["text"] for r in corpus}) == len(corpus)
    borrowed = [r for r in corpus[600:] if r["split"] != "train"]
    assert borrowed, "some borrowers inherited a valid or test split"


def test_the_split_is_a_fixed_function_of_the_text():
    """SHA-1 of the text, not Python's salted hash(): the same poem is in the same split on every machine."""
    cfg = load_config()  # 5% valid, 5% test
    poems = synthetic_poems(60, seed=21)
    got = {s: [i for i, p in enumerate(poems) if clean.split_of(p, cfg) == s] for s in ("valid", "test")}
    assert got == {"valid": [15, 46], "test": [16, 28, 44]}


def test_the_hash_split_is_about_90_5_5_and_the_same_on_every_run(tmp_path):
    poems = synthetic_poems(3000, seed=5)
    report, corpus, cfg = run_clean(tmp_path / "a", poems, valid_share=0.05, test_share=0.05)
    shares = {s: n / report["kept"] for s, n in report["per_split"].items()}
    assert report["kept"] == 3000 and sum(report["per_split"].values()) == 3000
    assert 0.87 < shares["train"] < 0.93 and 0.03 < shares["valid"] < 0.07 and 0.03 < shares["test"] < 0.07
    first = (tmp_path / "a" / "corpus" / "quatrains.jsonl").read_bytes()
    clean.clean_corpus(cfg)
    assert (tmp_path / "a" / "corpus" / "quatrains.jsonl").read_bytes() == first

    shuffled = poems[::-1]  # another order, another folder: each poem keeps its split
    _, again, _ = run_clean(tmp_path / "b", shuffled, valid_share=0.05, test_share=0.05)
    assert {r["text"]: r["split"] for r in again} == {r["text"]: r["split"] for r in corpus}


def eight_lines(seed: int) -> str:
    first, second = synthetic_poems(2, seed=seed)
    return first + second


def test_wulv_halves_join_train_only(tmp_path):
    cfg = tiny_config(tmp_path)
    # A 五律 whose halves would hash to valid or test on their own, so "train only" is not luck.
    eight = next(t for t in map(eight_lines, range(1000, 3000))
                 if {clean.split_of(t[:24], cfg), clean.split_of(t[24:], cfg)} == {"valid", "test"})
    _, valid_poem = poem_in_split("valid", cfg)
    sharing = valid_poem[:6] + eight_lines(7)[6:]  # a 五律 whose first half borrows a valid poem's line
    poems = [eight, valid_poem, sharing, DENGGUAN]

    report, corpus, _ = run_clean(tmp_path / "wujue", poems, forms=WUJUE)
    assert report["kept_wulv_halves"] == 0 and report["dropped"]["not_five_character_quatrain"] == 2
    assert report["forms"] == ["wujue"]

    report, corpus, _ = run_clean(tmp_path / "wulv", poems, forms=["wujue", "wulv"])
    assert [r["form"] for r in corpus[:2]] == ["wujue", "wujue"]  # real quatrains first
    halves = [r for r in corpus if r["form"] == "wulv_half"]
    # the half sharing a valid line is dropped
    assert [r["text"] for r in halves] == [eight[:24], eight[24:], sharing[24:]]
    assert {r["split"] for r in halves} == {"train"}
    assert report["kept_wulv_halves"] == 3 and report["kept_real_quatrains"] == 2
    assert report["dropped"]["shares_a_held_out_line"] == 1 and report["per_split"]["train"] >= 3


def test_the_report_has_every_key(tmp_path):
    extra = [{"source": "gushiwen", "source_id": "g1", "dynasty": "宋代", "author": "王安石", "title": "梅花",
              "text": "牆角數枝梅，凌寒獨自開。\n遙知不是雪，爲有暗香來。"}]
    report, corpus, _ = run_clean(tmp_path, synthetic_poems(200, seed=2), extra)
    for key in ("records_read", "kept", "dropped", "per_split", "per_dynasty", "vocabulary_size", "coverage_top"):
        assert key in report
    assert report["records_read"] == 201 and report["kept"] == 201
    assert report["per_dynasty"] == {"唐": 200, "宋": 1}  # 宋代 → 宋, traditional → simplified
    assert report["per_source"] == {"chinese-poetry": 200, "gushiwen": 1}
    assert set(report["per_split"]) == {"train", "valid", "test"} and sum(report["per_split"].values()) == 201
    chars = Counter(ch for r in corpus for line in r["lines"] for ch in line)
    assert report["vocabulary_size"] == len(chars) and report["character_occurrences"] == 201 * 20
    assert set(report["coverage_top"]) == {"2000", "3000", "4000", "5000"}
    assert all(v == 1.0 for v in report["coverage_top"].values())  # a vocabulary of ~150 is wholly covered
    meihua = next(r for r in corpus if r["source"] == "gushiwen")
    assert ((meihua["text"], meihua["author"], meihua["dynasty"])
            == ("墙角数枝梅，凌寒独自开。遥知不是雪，为有暗香来。", "王安石", "宋"))


def test_coverage_counts_the_top_characters(tmp_path):
    poems = ["山山山山山，山山山山山。山山山山山，水水水水水。"]  # 15 of 20 are 山
    report, _, _ = run_clean(tmp_path, poems, top_chars=[1, 2])
    assert report["coverage_top"] == {"1": 0.75, "2": 1.0} and report["vocabulary_size"] == 2


# --- bad input ------------------------------------------------------------------------------------------

def test_no_raw_records_says_run_crawl(tmp_path):
    with pytest.raises(PoetryError, match="run `poetry-lstm crawl` first"):
        clean.clean_corpus(tiny_config(tmp_path))
    with pytest.raises(PoetryError, match="run `poetry-lstm crawl` first"):
        clean.load_corpus(tiny_config(tmp_path))


def test_a_corrupt_raw_file_names_file_and_line_and_keeps_the_corpus(tmp_path):
    _, corpus, cfg = run_clean(tmp_path, synthetic_poems(30))
    before = (tmp_path / "corpus" / "quatrains.jsonl").read_bytes()
    raw = tmp_path / "crawler" / "raw" / "chinese-poetry.jsonl"
    raw.write_text(raw.read_text(encoding="utf-8") + '{"text": "broken\n', encoding="utf-8")
    with pytest.raises(PoetryError, match=r"chinese-poetry.jsonl is corrupt near line 31") as err:
        clean.clean_corpus(cfg)
    assert "\n" not in str(err.value)
    assert (tmp_path / "corpus" / "quatrains.jsonl").read_bytes() == before


def test_an_unreadable_raw_file_is_a_clear_error(tmp_path):
    cfg = tiny_config(tmp_path)
    (tmp_path / "crawler" / "raw" / "gushiwen.jsonl").mkdir(parents=True)  # a folder where a file should be
    with pytest.raises(PoetryError, match="Cannot read the raw record file .*gushiwen.jsonl"):
        clean.clean_corpus(cfg)


@pytest.mark.parametrize("forms", [["wulv"], ["wujue", "sijue"], ["qijue"], []])
def test_forms_must_include_wujue(tmp_path, forms):
    write_raw(tmp_path / "crawler", synthetic_poems(5))
    with pytest.raises(PoetryError, match="--forms must include wujue"):
        clean.clean_corpus(tiny_config(tmp_path).replace("clean", forms=forms))


def test_corpus_rows_are_complete(tmp_path):
    _, corpus, _ = run_clean(tmp_path, synthetic_poems(20))
    row = corpus[0]
    assert set(row) == {"text", "lines", "source", "source_id", "dynasty", "author", "title", "form", "split"}
    assert clean.poem_text(row["lines"]) == row["text"] and all(len(line) == 5 for line in row["lines"])
    assert all(ch in CHARS for line in row["lines"] for ch in line)
    assert files.read_json(tmp_path / "corpus" / "report.json")["kept"] == 20


# --- seven characters a line (issue 18) ------------------------------------------------------------------

CHUSAI = "秦时明月汉时关，万里长征人未还。但使龙城飞将在，不教胡马度阴山。"
DENGGAO = ("风急天高猿啸哀，渚清沙白鸟飞回。无边落木萧萧下，不尽长江滚滚来。"
           "万里悲秋常作客，百年多病独登台。艰难苦恨繁霜鬓，潦倒新停浊酒杯。")


def test_seven_character_verse_goes_to_its_own_corpus(tmp_path):
    report, corpus, cfg = run_clean(tmp_path, [DENGGUAN, CHUSAI, DENGGAO, CHUNWANG],
                                    forms=["wujue", "wulv", "qijue", "qilv", "qigu"])
    assert [r["form"] for r in corpus] == ["wujue", "wulv_half", "wulv_half"]  # the five, as before
    assert report["kept"] == 3 and report["forms"] == ["wujue", "wulv"]
    assert report["dropped"]["not_five_character_quatrain"] == 2  # the 七绝 and the 七律
    seven = clean.load_corpus(cfg.replace("paths", corpus_dir=str(Path(cfg.paths.corpus_dir) / "qijue")))
    assert [(r["form"], r["lines"][0]) for r in seven] == [("qijue", "秦时明月汉时关"), ("qilv_half", "风急天高猿啸哀"),
                                                         ("qilv_half", "万里悲秋常作客")]
    assert all(len(line) == 7 for r in seven for line in r["lines"])
    written = json.loads((Path(cfg.paths.corpus_dir) / "qijue" / "report.json").read_text(encoding="utf-8"))
    assert written == report["seven"] and "seven" not in json.loads(
        (Path(cfg.paths.corpus_dir) / "report.json").read_text(encoding="utf-8"))
    assert (written["kept_real_quatrains"], written["kept_qilv_halves"], written["kept_qigu_windows"]) == (1, 2, 0)
    assert written["forms"] == ["qijue", "qilv", "qigu"] and written["dropped"]["not_seven_character_quatrain"] == 2
    assert {r["split"] for r in seven if r["form"] == "qilv_half"} == {"train"}
    texts = clean.texts_by_split(seven, use_windows=False)
    assert sum(map(len, texts.values())) == 1 and CHUSAI in texts[seven[0]["split"]]


def test_without_qijue_no_seven_character_corpus_is_written(tmp_path):
    report, _, cfg = run_clean(tmp_path, [DENGGUAN, CHUSAI], forms=["wujue"])
    assert "seven" not in report and not (Path(cfg.paths.corpus_dir) / "qijue").exists()
    with pytest.raises(PoetryError, match="qijue with qilv and qigu"):
        run_clean(tmp_path / "b", [DENGGUAN], forms=["wujue", "qilv"])


def test_the_seven_character_shape_check():
    lines = ["秦时明月汉时关", "万里长征人未还", "但使龙城飞将在", "不教胡马度阴山"]
    assert clean.problem_of(CHUSAI, ["qijue"], 7) == (None, [lines])
    assert clean.problem_of(DENGGUAN, ["qijue"], 7)[0] == "not_seven_character_quatrain"
    assert clean.problem_of(DENGGAO, ["qijue"], 7)[0] == "not_seven_character_quatrain"  # 七律 without qilv
    assert len(clean.problem_of(DENGGAO, ["qijue", "qilv"], 7)[1]) == 2
