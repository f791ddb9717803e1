"""Raw records → clean five-character quatrains: `report = clean_corpus(cfg)`.

Reads every `crawler/raw/*.jsonl`, writes `corpus/quatrains.jsonl` and `corpus/report.json`.
Traditional → simplified (OpenCC t2s), punctuation normalised, bracketed notes and whitespace
removed; keeps 4×5 quatrains punctuated ，。，。; deduplicates by text, then by line; splits by a
hash of the text. With "wulv" and "wugu" in `forms`, longer five-character poems (五律; 五古 and
五排) are cut into consecutive four-line windows that join the train split only.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

from . import files
from .config import Config
from .errors import PoetryError

CJK = "\u3400-\u4dbf\u4e00-\u9fff"  # Extension A and the basic block
IS_CJK = re.compile(f"[{CJK}]")
# Every Han character a person may type: also compatibility ideographs and planes 2–3 (Extensions
# B–I: 𠀀). The corpus keeps CJK only; a wider character in a first line is read as unknown.
HAN = CJK + "\uf900-\ufaff\U00020000-\U0003ffff"
IS_HAN = re.compile(f"[{HAN}]")
HALF_TO_FULL = str.maketrans({",": "，", ".": "。", "?": "？", "!": "！", ";": "；", ":": "：",
                              "．": "。", "｡": "。", "､": "、", "﹐": "，", "﹒": "。"})
# Variant notes （…一作…） and any other bracketed note; nested notes are rare, one level suffices.
NOTES = re.compile(r"[（(][^（()）]*[)）]|[\[【〔][^\]】〕]*[\]】〕]")
STOPS = "。？！；"
LINE_END = re.compile(f"[，{STOPS}]")
SPLITS = ("train", "valid", "test")

_converter = None


def to_simplified(text: str) -> str:
    global _converter
    if _converter is None:
        from opencc import OpenCC  # imported late: building its dictionaries takes a moment
        _converter = OpenCC("t2s")
    return _converter.convert(text)


def normalise(text: str, simplify: bool = True) -> str:
    """Simplified text with notes, whitespace and half-width punctuation gone."""
    text = (to_simplified(text) if simplify else text).translate(HALF_TO_FULL)
    text = NOTES.sub("", text)
    return re.sub(r"\s+", "", text)


FORMS = ("wujue", "wulv", "wugu")  # 4 lines; 8 lines; any other even count from 6 (五古, 五排)


def form_of(n_lines: int) -> str | None:
    if n_lines == 4:
        return "wujue"
    if n_lines == 8:
        return "wulv"
    return "wugu" if n_lines >= 6 and n_lines % 2 == 0 else None


def window_starts(n_lines: int) -> list[int]:
    """First line of each four-line window: every 4 lines, and one more ending on the last line
    when the count is not a multiple of 4 (6 lines → 0, 2), so every line is learned at least once."""
    starts = list(range(0, n_lines - 3, 4))
    if n_lines % 4:
        starts.append(n_lines - 4)
    return starts


def problem_of(text: str, forms: list[str]) -> tuple[str | None, list[list[str]]]:
    """(drop reason or None, quatrains as lists of 4 lines). A longer poem yields its windows."""
    if not text:
        return "empty", []
    segments = LINE_END.split(text)
    if segments[-1] == "":
        segments.pop()
    n_lines = len(segments) if form_of(len(segments)) in forms else 4
    if len(segments) != n_lines or any(len(s) != 5 for s in segments):
        return "not_five_character_quatrain", []
    body = "".join(segments)
    if "□" in body or "○" in body or "〇" in body:
        return "missing_character", []
    if re.search(r"[0-9０-９]", body):
        return "digits", []
    if re.search(r"[A-Za-zＡ-Ｚａ-ｚ]", body):
        return "latin_letters", []
    if len(IS_CJK.findall(body)) != len(body):
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
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("text", "source", "source_id")):
                stats["malformed_record"] += 1
                continue
            records.append(row)
    return records


def _quatrains(records: list[dict], forms: list[str], drops: Counter):
    """Yield a row for each well-formed quatrain or window of a longer poem, counting drops by reason."""
    for rec in records:
        # OpenCC is the slow step: judge the shape on the traditional text first (conversion keeps
        # length and punctuation), and convert only the poems that can pass.
        reason, _ = problem_of(normalise(rec["text"], simplify=False), forms)
        if not reason:
            reason, parts = problem_of(normalise(rec["text"]), forms)
        if reason:
            drops[reason] += 1
            continue
        # 2 windows that do not overlap are a 五律's halves; a 6-line poem gives 2 overlapping ones
        n = len(parts)
        form = "wujue" if n == 1 else "wulv_half" if n == 2 and parts[0][2:] != parts[1][:2] else "wugu_window"
        for lines in parts:
            meta = {k: to_simplified(str(rec.get(k, ""))) for k in ("author", "title")}
            dynasty = to_simplified(str(rec.get("dynasty", ""))).removesuffix("代")
            yield {"text": poem_text(lines), "lines": lines, "source": rec["source"], "source_id": rec["source_id"],
                   "dynasty": dynasty, **meta, "form": form}


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
    for row in sorted(rows, key=lambda r: r["form"] != "wujue"):  # stable: input order within a form
        if row["text"] in seen_text:
            drops["duplicate_text"] += 1
            continue
        seen_text.add(row["text"])
        poem = (row["source"], row["source_id"])
        owners = [owner_of_line[line] for line in row["lines"] if line in owner_of_line]
        shared = {split for split, _ in owners}
        n_shared = sum(source != poem for _, source in owners)
        is_window = row["form"] != "wujue"
        if n_shared >= 2 or len(shared) > 1 or (is_window and shared - {"train"}):
            drops["duplicate_line" if n_shared >= 2 or not is_window else "shares_a_held_out_line"] += 1
            continue
        row["split"] = "train" if is_window else (shared.pop() if shared else split_of(row["text"], cfg))
        for line in row["lines"]:
            owner_of_line.setdefault(line, (row["split"], poem))
        kept.append(row)
    return kept


def build_report(kept: list[dict], stats: Counter, drops: Counter, cfg: Config) -> dict:
    chars = Counter(ch for row in kept for line in row["lines"] for ch in line)
    total = sum(chars.values())
    ranked = [n for _, n in chars.most_common()]
    return {
        "records_read": stats["read"],
        "kept": len(kept),
        "kept_real_quatrains": sum(r["form"] == "wujue" for r in kept),
        "kept_wulv_halves": sum(r["form"] == "wulv_half" for r in kept),
        "kept_wugu_windows": sum(r["form"] == "wugu_window" for r in kept),
        "training_lines": sum(len(r["lines"]) for r in kept if r["split"] == "train"),
        "forms": cfg.clean.forms,
        "dropped": dict(sorted({**drops, "malformed_record": stats["malformed_record"]}.items())),
        "per_split": {s: sum(r["split"] == s for r in kept) for s in SPLITS},
        "per_dynasty": dict(Counter(r["dynasty"] for r in kept).most_common()),
        "per_source": dict(Counter(r["source"] for r in kept).most_common()),
        "vocabulary_size": len(chars),
        "character_occurrences": total,
        "coverage_top": {str(n): round(sum(ranked[:n]) / max(total, 1), 4) for n in cfg.clean.top_chars},
        "top_characters": [[c, n] for c, n in chars.most_common(50)],
    }


def clean_corpus(cfg: Config) -> dict:
    """Rebuild corpus/quatrains.jsonl and corpus/report.json from every raw record file."""
    bad = [f for f in cfg.clean.forms if f not in FORMS]
    if bad or "wujue" not in cfg.clean.forms:
        raise PoetryError(f"--forms must include wujue and may add wulv and wugu, not {','.join(cfg.clean.forms)}.")
    stats, drops = Counter(), Counter()
    records = read_raw(Path(cfg.paths.crawler_dir), stats)
    kept = deduplicate(list(_quatrains(records, cfg.clean.forms, drops)), cfg, drops)
    corpus = Path(cfg.paths.corpus_dir)
    files.remove_stale_temps(corpus, ".*.tmp*")  # what a killed clean left half-written
    files.write_jsonl(corpus / "quatrains.jsonl", kept)
    report = build_report(kept, stats, drops, cfg)
    files.write_json(corpus / "report.json", report)
    return report


def texts_by_split(records: list[dict], use_windows: bool) -> dict[str, list[str]]:
    """Poem texts per split of corpus records; windows of longer poems (train only) join when asked."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for r in records:
        if r["split"] in out and (use_windows or r["form"] == "wujue"):
            out[r["split"]].append(r["text"])
    return out


def load_corpus(cfg: Config) -> list[dict]:
    """The cleaned corpus, or a clear error saying how to make it."""
    path = Path(cfg.paths.corpus_dir) / "quatrains.jsonl"
    if not path.exists():
        raise PoetryError(f"No corpus at {path}; run `poetry-lstm crawl` first.")
    return files.read_jsonl(path, "corpus file")
