"""The web page: `streamlit run app.py` — type the first line of a 五言绝句 (or a 七言绝句), get the poem.

Models come from `cfg.paths.models_dir` of `load_config($POETRY_LSTM_CONFIG)` (a relative path
is taken from this folder; a 七绝's under its `qijue` folder). `main()` reads top-down: settings, and
the form (五绝 or 七绝), in the sidebar, then one tab each for
the poem, the poet's desk (诗稿: check a pasted 五绝, take a repair or a rewritten line), the model and
the corpus; the helpers live in `poetry_lstm/page.py`, and each action is one call into the library.
Every `PoetryError` the library raises is shown as its sentence, in Chinese first (`page.zh_message`,
by the error's kind); anything else is a bug and surfaces as one.
"""
from __future__ import annotations

import dataclasses
import os
import random
import threading
from pathlib import Path

import streamlit as st

from poetry_lstm import files, page
from poetry_lstm.config import Config, DecodeSettings, load_config, model_key
from poetry_lstm.errors import PoetryError
from poetry_lstm.layout import FORM_LABELS
from poetry_lstm.loading import TrainedModel, load_model
from poetry_lstm.modeldir import missing_model_error
from poetry_lstm.stepper import limit_blas_threads
from poetry_lstm.vectors import load_vectors_fast, nearest

ROOT = Path(__file__).resolve().parent
MODE_LABELS = {"line": "首句续写 first line", "acrostic": "藏头诗 acrostic", "theme": "主题 theme"}
TITLES = {"wujue": "五言绝句", "qijue": "七言绝句"}
FIRST_LINES = {  # form → the first-line box's (label, placeholder, help)
    "wujue": ("第一句（五个字）", "白日依山尽", "五个汉字，繁简皆可；末尾的，。可有可无。"),
    "qijue": ("第一句（七个字）", "朝辞白帝彩云间", "七个汉字，繁简皆可；末尾的，。可有可无。"),
}
INPUTS = {  # mode → (label, placeholder, help); the first line's by form (FIRST_LINES)
    "line": FIRST_LINES["wujue"],
    "acrostic": ("藏头四字", "春夏秋冬", "四个汉字，分别作四句的第一个字。"),
    "theme": ("主题（现代汉语）", "思念故乡的秋夜", "几句话描述主题；jieba 提取关键词，第一句会含其中一字。"),
}


@st.cache_resource(show_spinner="载入模型…")
def get_model(path: str) -> TrainedModel:
    """The model (NumPy weights and the decoder's tables), once per process. The decoder's tiny matrix
    products run far faster on one BLAS thread (see stepper.limit_blas_threads)."""
    limit_blas_threads(1)
    return load_model(path)


@st.cache_resource(show_spinner="载入字向量…")
def get_vectors(folder: str):
    return load_vectors_fast(folder)


@st.cache_resource
def warm_jieba() -> threading.Thread:
    """Build jieba's dictionary in the background once someone picks the theme mode."""
    def work():
        import jieba
        jieba.setLogLevel(60)
        jieba.initialize()
    thread = threading.Thread(target=work, daemon=True, name="jieba-warmup")
    thread.start()
    return thread


@st.cache_data(show_spinner=False)
def read_json(path: str, mtime: float):
    return files.read_json(Path(path), Path(path).name)


def json_in(folder: Path, name: str):
    """The JSON file beside a model, or None (with a warning on the page when it is unreadable)."""
    path = folder / name
    if not path.exists():
        return None
    try:
        return read_json(str(path), path.stat().st_mtime)
    except PoetryError as exc:
        st.warning(page.md_escape(page.zh_message(exc)))
        return None


def show_error(exc) -> None:
    """A library error as one sentence, Chinese first and the English after it."""
    st.error(page.md_escape(page.zh_message(exc)))


@st.cache_data(show_spinner="作诗中…", max_entries=256)
def make_poems(model_path: str, mode: str, text: str, settings: DecodeSettings):
    from poetry_lstm.generate import acrostic_poem, complete_poem, theme_poem

    trained = get_model(model_path)
    if mode == "acrostic":
        return acrostic_poem(trained, text, settings)
    if mode == "theme":
        vectors_dir = Path(model_path).parent / "word2vec" / "vectors"
        kv = get_vectors(str(vectors_dir)) if (vectors_dir / "vectors.bin").exists() else None
        warm_jieba().join()
        return theme_poem(trained, text, kv, settings)
    return complete_poem(trained, text, settings)


@st.cache_data(show_spinner="检查中…", max_entries=256)
def check_desk(model_path: str, text: str, rules: str):
    """The report, its repairs ranked by the model at `model_path` ("": the rules alone)."""
    from poetry_lstm.desk import check_poem

    return check_poem(get_model(model_path) if model_path else None, text, rules)


@st.cache_data(show_spinner="改写中…", max_entries=64)
def revise_desk(model_path: str, text: str, line: int, settings: DecodeSettings):
    from poetry_lstm.desk import revise_line

    return revise_line(get_model(model_path), text, line, settings.n, settings)


def new_seed():
    st.session_state.seed = random.randrange(2**31 - 1)


def sidebar(cfg: Config, missing: dict) -> tuple[str, str, str, DecodeSettings]:
    """(form, model, input mode, the decoder settings): the config's, with the sidebar's over them.
    `missing`: (form, model) → the error of a model not there, or None."""
    gen = cfg.generate
    st.session_state.setdefault("seed", gen.seed)
    with st.sidebar:
        st.header("设置")
        form = st.radio("体裁 form", list(FORM_LABELS), format_func=FORM_LABELS.get, key="form", horizontal=True,
                        help="五绝：每句五字；七绝：每句七字（七言模型在 models/qijue/）。")
        model_name = st.radio("模型 model", page.MODES,
                              index=page.MODES.index(gen.mode) if gen.mode in page.MODES else 0,
                              key="model", horizontal=True,
                              format_func=lambda m: m + ("（未训练）" if missing[form, m] else ""),
                              help="word2vec：输入为冻结的 skip-gram 字向量；onehot：可训练的独热投影。")
        mode = st.radio("方式 mode", list(MODE_LABELS), format_func=MODE_LABELS.get, key="mode")
        n = st.slider("候选数 candidates", 1, 6, min(max(gen.n, 1), 6))
        # each model's own default: onehot reads wilder than word2vec at the same temperature
        temperature = st.slider("温度 temperature", 0.1, 2.0,
                                float(min(max(gen.temperature_for(model_key(model_name, form)), 0.1), 2.0)), 0.05)
        top_k = st.slider("top-k（0 = 不限）", 0, 100, min(max(gen.top_k, 0), 100))
        beam = st.slider("束宽 beam width（1 = 采样）", 1, 10, min(max(gen.beam, 1), 10))
        seed = st.number_input("种子 seed", min_value=0, max_value=2**31 - 1, step=1, key="seed",
                               help="同一种子，同样的诗")
        st.button("新种子 new seed", icon=":material/casino:", on_click=new_seed, help="换一个随机种子")
        tones = st.toggle("平仄 tones", value=gen.tones)
        rhyme = st.toggle("押韵 rhyme", value=gen.rhyme)
    settings = dataclasses.replace(gen.settings(model_key(model_name, form)), n=n, temperature=float(temperature),
                                   top_k=int(top_k), beam=int(beam), seed=int(seed), tones=tones, rhyme=rhyme)
    return form, model_name, mode, settings


def main() -> None:
    st.set_page_config(page_title="绝句 · poetry-lstm", layout="wide")
    try:
        cfg = load_config(os.environ.get("POETRY_LSTM_CONFIG") or None)
    except PoetryError as exc:
        show_error(exc)
        st.stop()
    folders = {form: page.models_dir(cfg.for_form(form).paths.models_dir, ROOT) for form in FORM_LABELS}
    missing = {(form, m): missing_model_error(folders[form] / m) for form in FORM_LABELS for m in page.MODES}
    st.markdown(page.CSS, unsafe_allow_html=True)
    form, model_name, mode, settings = sidebar(cfg, missing)
    models = folders[form]

    st.title(TITLES[form])
    st.caption(f"输入第一句，LSTM 续成一首合平仄、押平水韵的{TITLES[form]}；也可作藏头诗，或按主题作诗。")
    if missing[form, model_name]:
        show_error(missing[form, model_name])
        st.stop()
    try:
        get_model(str(models / model_name))
    except PoetryError as exc:
        show_error(exc)
        st.stop()
    if mode == "theme":
        warm_jieba()

    tab_poem, tab_desk, tab_model, tab_corpus = st.tabs(["作诗", "诗稿", "模型", "语料"])
    with tab_poem:
        poem_tab(models / model_name, mode, settings,
                 f"{FORM_LABELS[form]} · {model_name} · seed {settings.seed} · temperature {settings.temperature:g} "
                 f"· top-k {settings.top_k} · beam {settings.beam}", form)
    with tab_desk:  # a pasted poem's repairs and rewrites come from the model of its own form
        desk_tab({f: None if missing[f, model_name] else folders[f] / model_name for f in FORM_LABELS}, settings)
    with tab_model:
        model_tab(models, [m for m in page.MODES if not missing[form, m]])
    with tab_corpus:
        corpus_tab(models, model_name)


def poem_tab(model_path: Path, mode: str, settings: DecodeSettings, caption: str, form: str = "wujue") -> None:
    """The form and its poems. (Not an `st.fragment`: measured in Chromium, a fragment rerun showed
    the poems later than a rerun of the whole page, 0.9 s against 0.6 s on the busy 2-core machine.)"""
    label, example, help_text = FIRST_LINES[form] if mode == "line" else INPUTS[mode]
    with st.form(f"ask_{mode}", border=False):
        text_col, button_col = st.columns([5, 1], vertical_alignment="bottom")
        text = text_col.text_input(label, key=f"text_{mode}", placeholder=example, help=help_text,
                                   max_chars=200 if mode == "theme" else 40)
        submitted = button_col.form_submit_button("生成", type="primary")
    if submitted:
        st.session_state.request = (form, mode, text)
    request = st.session_state.get("request")
    if not (request and request[:2] == (form, mode)):
        st.caption(f"例：{example}。输入后按 生成（或回车）。")
        return
    try:
        result = make_poems(str(model_path), mode, request[2], settings)
    except PoetryError as exc:  # refused input, or a model file that fails on first use
        st.error(f"⚠️ {page.md_escape(page.zh_message(exc))}", icon=None)
        return
    if mode == "theme":
        st.caption("jieba 关键词：" + page.md_escape("、".join(result.keywords))
                   + " · 逐句：" + page.md_escape("；".join(result.plan) or "—"))
    for note in result.warnings:
        st.caption("⚠️ " + page.md_escape(page.zh_message(note, "warning")))
    if not result.poems:
        st.warning("这些设置下没有找到诗，请换个种子或关掉一项约束 "
                   "(The model found no poem with these settings; try another seed or turn a constraint off.)")
    for _, poem in poem_columns(result.poems):
        for note in poem.warnings:
            st.caption("⚠️ " + page.md_escape(page.zh_message(note, "warning")))
        for note in poem.notes:  # how it read what it was given: information, not a failure
            st.caption("ℹ️ " + page.md_escape(page.zh_message(note, "warning")))
    st.markdown(page.LEGEND, unsafe_allow_html=True)
    st.caption(caption)


def poem_columns(poems, per_row: int = 3):
    """Each poem drawn as the page draws poems, `per_row` to a row; yields (index, poem) while inside the poem's
    column, so what the caller writes next goes under it."""
    for i, poem in enumerate(poems):
        if i % per_row == 0:
            row = st.columns(per_row)
        with row[i % per_row]:
            st.markdown(page.poem_html(poem.text, poem.score, poem.checks, poem.form, poem.breaks),
                        unsafe_allow_html=True)
            yield i, poem


def take_poem(text: str) -> None:
    """A suggested character or a rewritten line taken into the desk: the text box holds the new poem, and it
    is the poem checked (a callback, so it runs before the text box is drawn again)."""
    st.session_state.desk_text = text
    st.session_state.desk_poem = text
    st.session_state.pop("desk_revision", None)


def desk_tab(model_paths: dict, settings: DecodeSettings) -> None:
    """诗稿: a pasted 五绝 or 七绝 checked (`desk.check_poem`), a suggested character put in with a click, or one
    line rewritten (`desk.revise_line`) and the version taken, by the model of the poem's form (`model_paths`:
    form → its folder, None when not trained: the rules alone)."""
    with st.form("desk", border=False):
        text = st.text_area("五言或七言绝句（标点、换行随意，繁简皆可）", key="desk_text", height=110,
                            placeholder="移舟泊烟渚，日暮客愁新。\n野旷天低树，江清月近人。")
        rules_col, button_col = st.columns([5, 1], vertical_alignment="bottom")
        rules = rules_col.radio("规则 rules", list(page.RULE_LABELS), format_func=page.RULE_LABELS.get,
                                key="desk_rules", horizontal=True,
                                help="严格：只认公认的拗救；宽松：也认三仄尾与仄平仄平仄。")
        checked = button_col.form_submit_button("检查", type="primary")
    if checked:
        st.session_state.desk_poem = text
    poem = st.session_state.get("desk_poem")
    if poem is None:
        st.caption("贴入一首五言或七言绝句，按 检查：逐字标出平仄，指出失对、失粘、孤平、落韵、重字等；"
                   "有这种绝句的模型时并给出改法，也可改写一句。")
        return
    model_path = model_paths[page.form_of_poem(poem)]
    try:
        report = check_desk(str(model_path or ""), poem, rules)
    except PoetryError as exc:  # refused input: empty, not Chinese, the wrong shape
        show_error(exc)
        return
    st.markdown(page.report_html(report), unsafe_allow_html=True)
    desk_problems(report)
    st.markdown(page.DESK_LEGEND, unsafe_allow_html=True)
    if model_path is not None:
        desk_revision(model_path, report, settings)
    else:  # no model of this form: the rules are checked, nothing is suggested
        st.caption(f"{report.kind}只检查格律：还没有{report.kind}模型，所以没有改法，也不能改写"
                   f"（{'poetry-lstm train --form qijue' if report.kind == '七绝' else 'poetry-lstm train'}）。")


def desk_problems(report) -> None:
    """Each problem with its repairs as buttons: a click puts that character in and checks again."""
    if not report.problems:
        st.success("合律：没有发现问题 (No problems found.)")
    for k, problem in enumerate(report.problems):
        st.markdown(page.problem_html(problem, report.text), unsafe_allow_html=True)
        if not problem.suggestions:
            continue
        columns = st.columns(12, gap="small", vertical_alignment="center")
        columns[0].caption("改为 →")
        for col, ch in zip(columns[1:], problem.suggestions):
            fixed = page.with_char(report.text, problem.line, problem.char, ch)
            col.button(ch, key=f"desk_fix_{k}_{problem.line}_{problem.char}_{ch}", on_click=take_poem, args=(fixed,),
                       help=f"{page.problem_where(problem, report.text)}改为「{ch}」")


def desk_revision(model_path: Path, report, settings: DecodeSettings) -> None:
    """One line rewritten by the model, the other three kept; the sidebar's settings (candidates, seed,
    temperature) say how many versions and which."""
    st.subheader("改写一句")
    pick_col, button_col = st.columns([5, 1], vertical_alignment="bottom")
    line = pick_col.radio("改写第几句 line", [1, 2, 3, 4], format_func=lambda i: f"第{i}句", key="desk_line",
                          horizontal=True)
    if button_col.button("改写", key="desk_revise"):
        st.session_state.desk_revision = (report.text, line)
    asked = st.session_state.get("desk_revision")
    if not asked or asked[0] != report.text:  # a revision of another poem: the desk moved on
        return
    try:
        revision = revise_desk(str(model_path), *asked, settings)
    except PoetryError as exc:
        show_error(exc)
        return
    if revision.note:  # fewer versions than asked, and why (Chinese, then English)
        st.warning(page.md_escape(revision.note))
    for i, version in poem_columns(revision.poems):
        st.button("采用此稿", key=f"desk_take_{i}", on_click=take_poem, args=(version.text,),
                  help=f"把第{asked[1]}句换成这一版，再检查")


def model_tab(models: Path, present: list[str]) -> None:
    """Training curves, test scores and the character explorer of the models present."""
    import pandas as pd

    st.subheader("训练曲线")
    rows = page.history_rows({m: json_in(models / m, "history.json") for m in present})
    if rows:
        for col, (metric, title) in zip(st.columns(2), (("loss", "交叉熵 loss"), ("perplexity", "困惑度 perplexity"))):
            col.vega_lite_chart(page.curves_spec(rows, metric, title))
    else:
        st.info("模型旁没有训练记录 (No history.json beside the models.)")

    st.subheader("测试集评估")
    st.caption("第 2–4 句在给定第 1 句时的每字困惑度与 top-1 准确率；基线为同一训练集上的字三元 Kneser–Ney 模型。")
    st.dataframe(pd.DataFrame(page.evaluation_rows({m: json_in(models / m, "config.json") for m in present})),
                 hide_index=True)

    st.subheader("字向量探索")
    vectors_dir = models / "word2vec" / "vectors"
    kv = None
    if not (vectors_dir / "vectors.bin").exists():
        st.info("没有字向量 (No skip-gram vectors; make them with `poetry-lstm train --mode word2vec`.)")
    else:
        try:
            kv = get_vectors(str(vectors_dir))
        except PoetryError as exc:
            show_error(exc)
    if kv is not None:
        probe = st.text_input("字 character", value="月", max_chars=1, key="probe").strip()
        if probe and probe not in kv:
            st.warning(f"「{page.md_escape(probe)}」没有字向量（不在训练诗中），试试 月、山、春 "
                       f"(「{page.md_escape(probe)}」 has no vector: "
                       "it is not in the training poems; try 月, 山 or 春.)")
        near = nearest(kv, probe, 10) if probe in kv else []
        left, right = st.columns([1, 3])
        left.dataframe(pd.DataFrame(near, columns=["近邻 neighbour", "余弦相似度 cosine"]), hide_index=True)
        points = page.explorer_points(kv, probe, [c for c, _ in near])
        if points:
            right.vega_lite_chart(page.scatter_spec(points, f"{len(points)} 个常用字的 skip-gram 向量 · "
                                                            "PCA 二维投影（可缩放）"))


def corpus_tab(models: Path, model_name: str) -> None:
    """The corpus report copied beside the models."""
    report = next((r for r in (json_in(models / m, "corpus_report.json") for m in [model_name, *page.MODES])
                   if r), None)
    if not report:
        st.info("模型旁没有语料报告 (No corpus_report.json beside the models; `poetry-lstm train` copies it there.)")
    else:
        split = report.get("per_split") or {}
        coverage = report.get("coverage_top") or {}
        row = st.columns(4)
        row[0].metric("读入记录 records", f"{report.get('records_read', 0):,}")
        row[1].metric("保留绝句 kept", f"{report.get('kept', 0):,}")
        row[2].metric("字种 characters", f"{report.get('vocabulary_size', 0):,}")
        if coverage:
            top_n = min(coverage, key=int)
            row[3].metric(f"前 {top_n} 字覆盖 coverage", f"{coverage[top_n]:.1%}")
        row = st.columns(4)
        for col, (name, label) in zip(row, (("train", "训练 train"), ("valid", "验证 valid"), ("test", "测试 test"))):
            col.metric(label, f"{split.get(name, 0):,}")
        bars = page.report_bars(report)
        left, right = st.columns(2)
        left.vega_lite_chart(page.bar_spec(bars["dynasty"], "dynasty", "poems", "各朝代绝句数 per dynasty",
                                           big_labels=True))
        if bars["dropped"]:
            right.vega_lite_chart(page.bar_spec(bars["dropped"], "reason", "records", "剔除原因 dropped",
                                                horizontal=True))
        else:
            right.caption("剔除原因 dropped：没有剔除任何记录。")
        st.vega_lite_chart(page.bar_spec(bars["top"], "char", "count", "最常见的字 most frequent characters",
                                         big_labels=True))
        if coverage:
            st.caption("常用字覆盖率：" + "，".join(f"前 {k} 字 {v:.1%}" for k, v in coverage.items()))


if __name__ == "__main__":
    main()
