"""Raw records → clean five-character quatrains: `report = clean_corpus(cfg)`.

Reads every `crawler/raw/*.jsonl`, writes `corpus/quatrains.jsonl` and `corpus/report.json`.
Traditional → simplified (OpenCC t2s, then one form per character: VARIANT_FORMS), punctuation
normalised, bracketed notes and whitespace removed; keeps 4×5 quatrains punctuated ，。，。;
deduplicates by text, then by line; splits by a hash of the text. With "wulv" and "wugu" in
`forms`, longer five-character poems (五律; 五古 and 五排) are cut into consecutive four-line
windows that join the train split only.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

from . import files
from .config import Config
from .errors import PoetryError

CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))  # Extension A and the basic block
# Every Han character a person may type: also compatibility ideographs and planes 2–3 (Extensions
# B–I: 𠀀). The corpus keeps CJK only; a wider character in a first line is read as unknown.
HAN_RANGES = CJK_RANGES + ((0xF900, 0xFAFF), (0x20000, 0x3FFFF))


# Code-point ranges, not regular expressions: a character class this wide takes `re` 5–10 ms to compile,
# which every `poetry-lstm generate` would pay at start-up.
def is_cjk(ch: str) -> bool:
    """`ch` is one character of the basic CJK block or Extension A: what the corpus and the model hold."""
    return len(ch) == 1 and any(low <= ord(ch) <= high for low, high in CJK_RANGES)


def is_han(ch: str) -> bool:
    """`ch` is one Han character a person may type (HAN_RANGES)."""
    return len(ch) == 1 and any(low <= ord(ch) <= high for low, high in HAN_RANGES)

HALF_TO_FULL = str.maketrans({",": "，", ".": "。", "?": "？", "!": "！", ";": "；", ":": "：",
                              "．": "。", "｡": "。", "､": "、", "﹐": "，", "﹒": "。"})
# Variant notes （…一作…） and any other bracketed note; nested notes are rare, one level suffices.
NOTES = re.compile(r"[（(][^（()）]*[)）]|[\[【〔][^\]】〕]*[\]】〕]")
STOPS = "。？！；"
LINE_END = re.compile(f"[，{STOPS}]")
SPLITS = ("train", "valid", "test")

# 异体字 (variant forms) that OpenCC's t2s keeps, each with its standard simplified form (通用规范汉字表),
# so that the corpus spells each character one way: 疎 → 疏. Pairs, variant first. Found in the
# chinese-poetry quatrains (Unihan kSemanticVariant and kZVariant, OpenCC's JPVariants and its newer
# t2s, prosody's VARIANT_MAP) and checked by eye. Left apart on purpose: distinct words (于/於, 余/馀,
# 着/著, 沈/沉, 澹/淡, 翦/剪, 忻/欣, 珪/圭), 陜 (these texts write it for 陝), and variants whose
# standard form the 平水韵 table cannot read or reads with another tone (拏 拿, 姪 侄, 羃 幂, 櫺 棂,
# 勗 勖, 筿 筱, 痺 痹, 蜋 螂, 欬 咳, 搥 捶).
_VARIANT_PAIRS = (
    # the decoder's first table (vocabulary characters the 平水韵 table spells another way), with
    # 罇 → 樽 as the 异体字 tables have it. The decoder never writes any key of VARIANT_FORMS (tables.py):
    # models trained before this table learned both spellings
    """
疎疏 踈疏 髪发 劒剑 浄净 迳径 猨猿 鶑莺 髙高 鬭斗 鬬斗 懽欢 隣邻 罇樽 檝楫 幷并 峩峨 堦阶 怱匆 穉稚
飜翻 迺乃 廻回 缾瓶 鳯凤 畧略 逈迥 潄漱 秪只 秖只 歳岁 暎映 栢柏 悮误 犂犁 輙辄 竝并 緜绵 顇悴 欵款
顦憔 憇憩 薫薰 呌叫 碁棋 讐雠 鏁锁 邨村 効效 鸎莺 徴征 囘回 衞卫 虵蛇 棃梨 窻窗 箒帚 脇胁 蕚萼 趂趁
朶朵 悤匆
""",
    # Japanese 新字体 shapes of traditional characters (OpenCC's JPVariants), most frequent first
    """
隠隐 頼赖 寛宽 揺摇 毎每 懐怀 渇渴 戯戏 黙默 巌岩 勲勋 醤酱 専专 嚢囊 痩瘦 穏稳 涙泪 覧览 捜搜 掲揭
帯带 荘庄 覇霸 歴历 様样 繋系 壊坏 頬颊 戸户 撃击 郷乡 壌壤 黒黑 醸酿 舎舍 縦纵 従从 錬炼 逓递 賛赞
瀬濑 歩步 児儿 聴听 稲稻 楡榆 抜拔 収收 髄髓 闘斗 関关 鉄铁 茘荔 竃灶 犠牺 恵惠 奨奖 増增 圏圈 酔醉
繍绣 穂穗 砕碎 掻搔 挿插 剣剑 両两
""",
    # every other variant form found in the corpus, most frequent first
    """
簷檐 鴈雁 鬰郁 慙惭 遶绕 徧遍 谿溪 媿愧 臯皋 櫂棹 珮佩 僊仙 巵卮 蘂蕊 嬾懒 俛俯 飚飙 粧妆 覩睹 煖暖
歛敛 鼇鳌 懃勤 垅垄 鉏锄 妬妒 斾旆 彊强 埽扫 慇殷 馿驴 髣仿 髴佛 遯遁 褭袅 餠饼 臞癯 賸剩 斲斫 隄堤
椀碗 牋笺 怳恍 筯箸 燄焰 鼈鳖 穽阱 虀齑 偪逼 歘欻 烱炯 秔粳 覊羁 蔕蒂 桮杯 嚬颦 麤粗 磵涧 槩概 荅答
羮羹 瘖喑 驩欢 纒缠 搆构 笻筇 頳赪 锺钟 藂丛 甿氓 斵斫 閴阒 箎篪 毬球 壻婿 羇羁 澣浣 睠眷 醆盏 撚捻
螘蚁 蠧蠹 旛幡 倐倏 諠喧 寖浸 餽馈 䜩宴 鵶鸦 幙幕 譍应 惸茕 沍冱 瑯琅 邉边 濶阔 躭耽 揜掩 鬛鬣 翺翱
狥徇 牓榜 牕窗 粃秕 盌碗 徬彷 瓌瑰 噉啖 貍狸 廐厩 髠髡 逺远 嶤峣 飡餐 濬浚 朞期 廼乃 寘置 敧欹 汚污
漥洼 闗关 碪砧 雝雍 葅菹 舡船 氊毡 啗啖 筩筒 瞇眯 椶棕 陁陀 燿耀 賖赊 艶艳 燐磷 槖橐 斚斝 呪咒 麏麇
耡锄 舃舄 襃褒 寜宁 駮驳 輭软 倣仿 柟楠 筭算 塲场 嘷嗥 攲欹 麞獐 袠帙 瀁漾 毘毗 麕麇 蛬蛩 彜彝 袵衽
纎纤 甖罂 擡抬 寃冤 颕颖 轝舆 瑠琉 恡吝 刼劫 甆瓷 淛浙 嵓岩 僣僭 觧解 菓果 釡釜 皷鼓 蟇蟆 籖签 琖盏
逰游 崕崖 瓈璃 匵椟 蠭蜂 澁涩 囓啮 匳奁 欝郁 敺驱 愞懦 囏艰 鷰燕 灔滟 繖伞 帬裙 昻昂 徃往 髩鬓 傚效
鼃蛙 湼涅 鐡铁 蠒茧 聮联 箝钳 扄扃 覔觅 胷胸 竢俟 磥磊 畊耕 氷冰 覉羁 鞵鞋 皐皋 煑煮 嗁啼 隟隙 鄽廛
罣挂 嵒岩 鶵雏 阬坑 臙胭 窓窗 畆亩 攅攒 尅克 眎视 沲沱 冩写 醼宴 膓肠 簮簪 亷廉 啣衔 麄粗 騐验 醻酬
籐藤 濵滨 歗啸 廹迫 娬妩 壍堑 劔剑 眀明 旍旌 圗图 韲齑 聨联 韈袜 鎻锁 蹏蹄 覰觑 蜨蝶 臈腊 羗羌 甎砖
擥揽 婣姻 勅敕 巓巅 朂勖 螾蚓 蕋蕊 餙饰 鑛矿 抝拗 呑吞 鼔鼓 顋腮 謌歌 糓谷 簁筛 樐橹 栰筏 埜野 裩裈
齅嗅 鵞鹅 鬂鬓 罋瓮 甞尝 歕喷 徤健 叅参 凴凭 倂并 譌讹 甽畎 婬淫 酧酬 韮韭 讁谪 蟁蚊 荳豆 炤照 暱昵
昬昏 宂冗 吚咿 閧哄 衂衄 涖莅 驘骡 饍膳 鑚钻 軰辈 蠏蟹 玆兹 熈熙 慽戚 愽博 宼寇 吿告 忼慷 拕拖 糭粽
蹮跹 觕粗 堘塍
""",
)
VARIANT_FORMS: dict[str, str] = {pair[0]: pair[1] for group in _VARIANT_PAIRS for pair in group.split()}
_STANDARD_FORMS = str.maketrans(VARIANT_FORMS)

_converter = None


def to_simplified(text: str) -> str:
    global _converter
    if _converter is None:
        from opencc import OpenCC  # imported late: building its dictionaries takes a moment
        _converter = OpenCC("t2s")
    return _converter.convert(text)


def standard_forms(text: str) -> str:
    """`text` with every variant form of VARIANT_FORMS replaced by its standard one: 疎 → 疏."""
    return text.translate(_STANDARD_FORMS)


def normalise(text: str, simplify: bool = True, standardise: bool = True) -> str:
    """Simplified text with notes, whitespace and half-width punctuation gone.

    Simplifying is OpenCC's t2s, then VARIANT_FORMS (疎 → 疏), unless `standardise` is False."""
    if simplify:
        text = to_simplified(text)
        text = standard_forms(text) if standardise else text
    text = text.translate(HALF_TO_FULL)
    text = NOTES.sub("", text)
    return re.sub(r"\s+", "", text)


# Per line length: the quatrain (4 lines); the regulated verse (8 lines); any other even count from 6 (古诗, 排律)
SHAPES = {5: ("wujue", "wulv", "wugu"), 7: ("qijue", "qilv", "qigu")}
FORMS = SHAPES[5] + SHAPES[7]
REAL_FORMS = (SHAPES[5][0], SHAPES[7][0])  # quatrains as poets wrote them; the rest are windows, train only
SEVEN_DIR = "qijue"  # corpus/qijue/ holds the seven-character corpus, laid out as corpus/ holds the five


def form_of(n_lines: int, chars: int = 5) -> str | None:
    quatrain, regulated, old = SHAPES[chars]
    if n_lines == 4:
        return quatrain
    if n_lines == 8:
        return regulated
    return old if n_lines >= 6 and n_lines % 2 == 0 else None


def window_starts(n_lines: int) -> list[int]:
    """First line of each four-line window: every 4 lines, and one more ending on the last line
    when the count is not a multiple of 4 (6 lines → 0, 2), so every line is learned at least once."""
    starts = list(range(0, n_lines - 3, 4))
    if n_lines % 4:
        starts.append(n_lines - 4)
    return starts


def problem_of(text: str, forms: list[str], chars: int = 5) -> tuple[str | None, list[list[str]]]:
    """(drop reason or None, quatrains as lists of 4 lines of `chars` characters). A longer poem yields its windows."""
    if not text:
        return "empty", []
    segments = LINE_END.split(text)
    if segments[-1] == "":
        segments.pop()
    n_lines = len(segments) if form_of(len(segments), chars) in forms else 4
    if len(segments) != n_lines or any(len(s) != chars for s in segments):
        return f"not_{'five' if chars == 5 else 'seven'}_character_quatrain", []
    body = "".join(segments)
    if "□" in body or "○" in body or "〇" in body:
        return "missing_character", []
    if re.search(r"[0-9０-９]", body):
        return "digits", []
    if re.search(r"[A-Za-zＡ-Ｚａ-ｚ]", body):
        return "latin_letters", []
    if not all(map(is_cjk, body)):
        return "stray_marks", []
    marks = LINE_END.findall(text)
    if len(marks) != n_lines or not all(m == "，" if i % 2 == 0 else m in STOPS for i, m in enumerate(marks)):
        return "punctuation", []
    return None, [segments[i:i + 4] for i in window_starts(n_lines)]


def poem_text(lines: list[str]) -> str:
    return f"{lines[0]}，{lines[1]}。{lines[2]}，{lines[3]}。"


def split_of(text: str, cfg: Config) -> str:
    """Deterministic split by hash of the text: the same poem lands in the same split on every machine."""
    x = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) / 0x100000000
    if x < cfg.clean.test_share:
        return "test"
    return "valid" if x < cfg.clean.test_share + cfg.clean.valid_share else "train"


def read_raw(crawler_dir: Path, stats: Counter) -> list[dict]:
    raw = sorted((crawler_dir / "raw").glob("*.jsonl"))
    if not raw:
        raise PoetryError(f"No raw records in {crawler_dir / 'raw'}; run `poetry-lstm crawl` first.")
    records = []
    for path in raw:
        for row in files.read_jsonl(path, "raw record file"):
            stats["read"] += 1
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str)
                                                    for k in ("text", "source", "source_id")):
                stats["malformed_record"] += 1
                continue
            records.append(row)
    return records


def _quatrains(records: list[dict], forms: list[str], drops: Counter, chars: int = 5):
    """Yield a row for each well-formed quatrain or window of a longer poem with lines of `chars`
    characters, counting drops by reason."""
    quatrain, regulated, old = SHAPES[chars]
    for rec in records:
        # OpenCC is the slow step: judge the shape on the traditional text first (conversion keeps
        # length and punctuation), and convert only the poems that can pass.
        reason, _ = problem_of(normalise(rec["text"], simplify=False), forms, chars)
        if not reason:
            # Variant forms are replaced line by line below, so that each quatrain counts its own (the
            # table maps a Han character to another, so the shape is the same either way).
            reason, parts = problem_of(normalise(rec["text"], standardise=False), forms, chars)
        if reason:
            drops[reason] += 1
            continue
        # 2 windows that do not overlap are a 律诗's halves; a 6-line poem gives 2 overlapping ones
        n = len(parts)
        halves = n == 2 and parts[0][2:] != parts[1][:2]
        form = quatrain if n == 1 else f"{regulated}_half" if halves else f"{old}_window"
        for lines in parts:
            variants = Counter(ch for line in lines for ch in line if ch in VARIANT_FORMS)
            # The split is drawn from the text as OpenCC left it, so normalising the variants moves no
            # poem between train, valid and test: held-out scores stay comparable across the change.
            split_key = poem_text(lines)
            lines = [standard_forms(line) for line in lines]
            meta = {k: to_simplified(str(rec.get(k, ""))) for k in ("author", "title")}
            dynasty = to_simplified(str(rec.get("dynasty", ""))).removesuffix("代")
            yield {"text": poem_text(lines), "lines": lines, "source": rec["source"], "source_id": rec["source_id"],
                   "dynasty": dynasty, **meta, "form": form,
                   "variants": variants, "split_key": split_key}  # clean_corpus takes these out before writing


def deduplicate(rows: list[dict], cfg: Config, drops: Counter) -> list[dict]:
    """Real quatrains first, then windows of longer poems; drop repeats by text, then by line.

    The data set repeats poems under several authors with a character or two changed: two or
    more lines shared with another poem are the tell, and the later copy is dropped. A poem that
    borrows a single line is kept but inherits the split of the poem owning that line, so no line
    of a valid or test poem ever occurs in training (a window holding one is dropped). Windows of
    one poem may overlap (a 6-line poem gives lines 1–4 and 3–6): lines shared with the same poem
    do not count.
    """
    seen_text, owner_of_line, kept = set(), {}, []  # line → (split, source poem)
    for row in sorted(rows, key=lambda r: r["form"] not in REAL_FORMS):  # stable: input order within a form
        if row["text"] in seen_text:
            drops["duplicate_text"] += 1
            continue
        seen_text.add(row["text"])
        poem = (row["source"], row["source_id"])
        owners = [owner_of_line[line] for line in row["lines"] if line in owner_of_line]
        shared = {split for split, _ in owners}
        n_shared = sum(source != poem for _, source in owners)
        is_window = row["form"] not in REAL_FORMS
        if n_shared >= 2 or len(shared) > 1 or (is_window and shared - {"train"}):
            drops["duplicate_line" if n_shared >= 2 or not is_window else "shares_a_held_out_line"] += 1
            continue
        row["split"] = "train" if is_window else (shared.pop() if shared else split_of(row["split_key"], cfg))
        for line in row["lines"]:
            owner_of_line.setdefault(line, (row["split"], poem))
        kept.append(row)
    return kept


def build_report(kept: list[dict], stats: Counter, drops: Counter, cfg: Config,
                 variants: Counter | None = None, line_chars: int = 5) -> dict:
    """The report; `variants` counts the variant forms replaced in the kept quatrains (疎: 3)."""
    variants = variants or Counter()
    quatrain, regulated, old = SHAPES[line_chars]
    chars = Counter(ch for row in kept for line in row["lines"] for ch in line)
    total = sum(chars.values())
    ranked = [n for _, n in chars.most_common()]
    return {
        "records_read": stats["read"],
        "kept": len(kept),
        "kept_real_quatrains": sum(r["form"] == quatrain for r in kept),
        f"kept_{regulated}_halves": sum(r["form"] == f"{regulated}_half" for r in kept),
        f"kept_{old}_windows": sum(r["form"] == f"{old}_window" for r in kept),
        "training_lines": sum(len(r["lines"]) for r in kept if r["split"] == "train"),
        "forms": [f for f in cfg.clean.forms if f in SHAPES[line_chars]],
        "dropped": dict(sorted({**drops, "malformed_record": stats["malformed_record"]}.items())),
        "per_split": {s: sum(r["split"] == s for r in kept) for s in SPLITS},
        "per_dynasty": dict(Counter(r["dynasty"] for r in kept).most_common()),
        "per_source": dict(Counter(r["source"] for r in kept).most_common()),
        "vocabulary_size": len(chars),
        "character_occurrences": total,
        "variants_normalised": sum(variants.values()),
        "variants_by_form": {f"{v}→{VARIANT_FORMS[v]}": n for v, n in variants.most_common()},
        "coverage_top": {str(n): round(sum(ranked[:n]) / max(total, 1), 4) for n in cfg.clean.top_chars},
        "top_characters": [[c, n] for c, n in chars.most_common(50)],
    }


def clean_corpus(cfg: Config) -> dict:
    """Rebuild corpus/quatrains.jsonl and corpus/report.json from every raw record file, and with qijue
    among the forms corpus/qijue/quatrains.jsonl and its report.json: the report of the five (with the
    seven's under "seven" when there is one)."""
    bad = [f for f in cfg.clean.forms if f not in FORMS]
    seven_without_qijue = set(cfg.clean.forms) & set(SHAPES[7]) and "qijue" not in cfg.clean.forms
    if bad or "wujue" not in cfg.clean.forms or seven_without_qijue:
        raise PoetryError(f"--forms must include wujue and may add wulv and wugu, and qijue with qilv and qigu; "
                          f"not {','.join(cfg.clean.forms)}.")
    stats = Counter()
    records = read_raw(Path(cfg.paths.crawler_dir), stats)
    corpus = Path(cfg.paths.corpus_dir)
    report = _clean_shape(records, stats, cfg, 5, corpus)
    if "qijue" in cfg.clean.forms:
        report["seven"] = _clean_shape(records, stats, cfg, 7, corpus / SEVEN_DIR)
    return report


def _clean_shape(records: list[dict], stats: Counter, cfg: Config, chars: int, corpus: Path) -> dict:
    drops = Counter()
    kept = deduplicate(list(_quatrains(records, cfg.clean.forms, drops, chars)), cfg, drops)
    variants = Counter()
    for row in kept:
        variants.update(row.pop("variants"))
        row.pop("split_key")
    files.remove_stale_temps(corpus, ".*.tmp*")  # what a killed clean left half-written
    files.write_jsonl(corpus / "quatrains.jsonl", kept)
    report = build_report(kept, stats, drops, cfg, variants, chars)
    files.write_json(corpus / "report.json", report)
    return report


def texts_by_split(records: list[dict], use_windows: bool) -> dict[str, list[str]]:
    """Poem texts per split of corpus records; windows of longer poems (train only) join when asked."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for r in records:
        if r["split"] in out and (use_windows or r["form"] in REAL_FORMS):
            out[r["split"]].append(r["text"])
    return out


def load_corpus(cfg: Config) -> list[dict]:
    """The cleaned corpus, or a clear error saying how to make it."""
    path = Path(cfg.paths.corpus_dir) / "quatrains.jsonl"
    if not path.exists():
        raise PoetryError(f"No corpus at {path}; run `poetry-lstm crawl` first.")
    return files.read_jsonl(path, "corpus file")
