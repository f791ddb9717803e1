"""The page, in-process: `streamlit.testing.v1.AppTest` against the tiny models, plus the page helpers."""
from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from poetry_lstm import page, prosody
from poetry_lstm.loading import load_model
from poetry_lstm.modeldir import missing_model_error
from poetry_lstm.vectors import load_vectors_fast

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
QUATRAIN = re.compile(r"^[\u3400-\u9fff]{5}，[\u3400-\u9fff]{5}。[\u3400-\u9fff]{5}，[\u3400-\u9fff]{5}。$")


# --- helpers of poetry_lstm/page.py ------------------------------------------------------------

def test_poem_html_shows_tones_rhyme_and_checks():
    text = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
    out = page.poem_html(text, -2.5, prosody.check_poem(text) | {"copied": False}, "仄起不入韵")
    assert "\n" not in out  # one line: Streamlit reads it as Markdown
    assert f'data-text="{text}"' in out
    assert re.findall(r'class="pl-hz">(.)<', out) == [ch for line in prosody.split_lines(text) for ch in line]
    tones = re.findall(r'class="pl-tone pl-(\w+)">', out)
    assert tones == [page.TONE_CLASS[prosody.tone_of(ch)] for line in prosody.split_lines(text) for ch in line]
    rhymed = re.findall(r'class="pl-ch pl-rhyme"[^>]*><span class="pl-hz">(.)<', out)
    assert rhymed == ["流", "楼"]
    assert out.count("pl-pass") == 5 and "pl-fail" not in out
    assert "-2.500" in out and "仄起不入韵" in out


def test_poem_html_marks_failures_and_unknown():
    text = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"  # 静夜思 breaks the tone rules
    out = page.poem_html(text, None, prosody.check_poem(text) | {"copied": None})
    assert "✗ 格律" in out and "– 新句" in out  # no training hashes: the copy check is not applicable


def test_poem_html_marks_given_characters_that_break_the_form():
    text = "山水风月花，前病雨秋家。雨暖歌春问，白书今玉霞。"
    out = page.poem_html(text, -3.0, None, "平起入韵", [(1, 2)])
    marked = re.findall(r'class="pl-ch[^"]*pl-break"[^>]*><span class="pl-hz">(.)<', out)
    assert marked == ["水"]  # (line 1, character 2), counted from 1
    assert re.findall(r'class="pl-break-mark"[^>]*>([^<]*)<', out) == [page.BREAK_MARK]
    assert out.count('class="pl-line pl-has-break"') == 1  # room under line 1 for the mark
    assert "平起入韵" in out and "kept as given" in out  # the tooltip says why
    assert 'class="pl-break-note"' in out and "照原样保留" in out
    # acrostic heads: the first character of lines 3 and 4
    out = page.poem_html(text, None, None, "仄起入韵", [(3, 1), (4, 1)])
    assert re.findall(r'class="pl-ch[^"]*pl-break"[^>]*><span class="pl-hz">(.)<', out) == ["雨", "白"]
    # nothing broken, nothing marked
    plain = page.poem_html(text, -3.0, None, "平起入韵")
    assert "pl-break" not in plain and "pl-has-break" not in plain and page.BREAK_MARK not in plain  # nor a note


def test_zh_message_gives_chinese_before_the_english(tmp_path):
    from poetry_lstm.errors import InputError, Note, PoetryError
    from poetry_lstm.generate import normalize_line
    from poetry_lstm.modeldir import read_overuse

    cases = [  # (what the library is given, the Chinese expected before its English)
        (lambda: normalize_line("山水风月"), "首句须为五个或七个汉字，现在是 4 个字"),
        (lambda: normalize_line(""), "首句是空的，请输入五个或七个汉字"),
        (lambda: normalize_line("山水，风月花"), "首句中间有标点（，），请去掉"),
        (lambda: normalize_line("山水ab花"), "首句须为五个或七个汉字，ab 不是汉字"),
        (lambda: normalize_line("春夏秋", "acrostic", "春夏秋冬"), "藏头字须为四个汉字，现在是 3 个字"),
    ]
    for call, chinese in cases:
        with pytest.raises(InputError) as info:
            call()
        assert page.zh_message(info.value) == f"{chinese} ({info.value})"  # the English is kept whole
    (tmp_path / "overuse.json").write_text("[]", encoding="utf-8")
    with pytest.raises(PoetryError) as info:
        read_overuse(tmp_path, ("<pad>",))
    assert page.zh_message(info.value).startswith("overuse.json（常用字统计）损坏")
    # Notes carry their kind: the Chinese comes from the fields, whatever the English says.
    note = Note("anything at all", "first_line_breaks", form="仄起入韵", where=[4, 5], chars="们啊")
    assert page.zh_message(note, "warning") == ("首句不合四种平仄格式；第二至四句依首句最接近的仄起入韵，"
                                                "首句第 4、5 字（们啊）失律 (anything at all)")
    assert page.zh_message(Note("x", "relaxed", rule="rhyme"), "warning").startswith("未能每一步都守住押韵")
    # an English sentence alone, or a kind nobody mapped, still gets a Chinese lead-in and the English in full
    assert (page.zh_message("could not keep rhyme at every step (x)", "warning")
            == "提示 (could not keep rhyme at every step (x))")
    assert (page.zh_message(PoetryError("Something new went wrong.", kind="brand_new"))
            == "未能完成，原因见英文说明 (Something new went wrong.)")
    assert page.zh_message("Something new.", "warning") == "提示 (Something new.)"


def test_every_kind_the_library_raises_has_its_chinese():
    """A kind in the library without a line in page.ZH_BY_KIND would reach the page in English only."""
    import ast

    raised = set()
    for path in (ROOT / "poetry_lstm").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name.endswith("Error"):
                    raised |= {k.value.value for k in node.keywords
                               if k.arg == "kind" and isinstance(k.value, ast.Constant)}
                if (getattr(node.func, "id", "") == "Note" and len(node.args) > 1
                        and isinstance(node.args[1], ast.Constant)):
                    raised.add(node.args[1].value)
    assert {"input_length", "model_missing", "polyphonic_end", "relaxed"} <= raised  # the walk finds them
    assert not raised - {"error"} - set(page.ZH_BY_KIND), sorted(raised - set(page.ZH_BY_KIND))


INJECTED = "白日依山尽，黄河入海流。欲穷千里目，更上一层天。"  # 登鹳雀楼 with its last rhyme broken: 天 is not in 尤


def test_report_html_marks_each_problem_where_it_is():
    from poetry_lstm.checker import check

    report = check(INJECTED)
    out = page.report_html(report)
    assert "\n" not in out and f'data-text="{INJECTED}"' in out
    assert re.findall(r'class="pl-hz">(.)<', out) == [c["char"] for c in report.chars]
    assert re.findall(r'class="pl-tone pl-(\w+)">', out) == [page.TONE_CLASS[c["tone"]] for c in report.chars]
    marked = re.findall(r'class="pl-ch[^"]*pl-break"[^>]*><span class="pl-hz">(.)<', out)
    assert marked == ["流", "天"]  # both rhyme ends: they are in different groups
    assert re.findall(r'class="pl-break-mark"[^>]*>([^<]*)<', out) == ["✗ 落韵"] * 2
    assert report.form in out and "✗ 2 处错误" in out
    assert page.problem_where(report.problems[-1], report.text) == "第4句第5字「天」"
    assert page.with_char(report.text, 4, 5, "楼") == "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
    problem = page.problem_html(report.problems[-1], report.text)
    assert "✗ 错误" in problem and "落韵" in problem and "第4句第5字「天」" in problem
    # 重字 is a warning, marked in amber; 静夜思 also breaks the tones
    text = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
    out = page.report_html(check(text, "lenient"))
    assert re.findall(r'class="pl-ch pl-break pl-warn"[^>]*><span class="pl-hz">(.)<', out) == ["明", "月", "头"]
    assert "⚠ 重字" in out and "宽松 lenient" in out and "处注意" in out
    assert "✓ 合律" in page.report_html(check("白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"))


def test_html_and_markdown_escaping():
    nasty = '<img src=x onerror="alert(1)">&'
    assert "<img" not in page._badge(nasty, True)
    escaped = page.md_escape("[link](javascript:alert(1)) *bold* <b>x</b> `code` $x$")
    for raw in ("[link]", "*bold*", "<b>", "`code`", "$x$"):
        assert raw not in escaped
    from poetry_lstm.checker import Problem

    problem = Problem(1, 2, "tone", "error", nasty, [nasty])
    assert "<img" not in page.problem_html(problem, INJECTED)


def test_pca_2d_is_the_top_two_principal_axes_with_fixed_signs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    xy = page.pca_2d(x)
    assert xy.shape == (200, 2)
    assert np.allclose(xy.mean(axis=0), 0, atol=1e-9)
    var = xy.var(axis=0)
    assert var[0] > var[1] > 0.5 * 3.0**2  # the two widest directions, widest first
    # The same projection from the covariance's eigenvectors, signed by the rule pca_fit states:
    # the point furthest along each axis lies on its positive side. Compared with signs, not np.abs.
    centred = x - x.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    expected = centred @ vectors[:, ::-1][:, :2]
    expected *= np.sign(expected[np.abs(expected).argmax(axis=0), [0, 1]])
    np.testing.assert_allclose(xy, expected, rtol=0, atol=1e-9)
    assert all(xy[np.abs(xy[:, k]).argmax(), k] > 0 for k in range(2))
    # The picture depends on the points, not on the sign of the vectors or the order of the rows.
    np.testing.assert_allclose(page.pca_2d(-x), xy, rtol=0, atol=1e-9)
    order = rng.permutation(len(x))
    np.testing.assert_allclose(page.pca_2d(x[order]), xy[order], rtol=0, atol=1e-9)
    # By hand: points on a line, the far one at 10 → coordinates along it minus the mean 3.25.
    line = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [10.0, 10.0]])
    np.testing.assert_allclose(page.pca_2d(line)[:, 0], np.array([-3.25, -2.25, -1.25, 6.75]) * np.sqrt(2), atol=1e-12)
    np.testing.assert_allclose(page.pca_2d(-line)[:, 0], page.pca_2d(line)[:, 0], atol=1e-12)


def test_fast_loaders_match_keras_and_gensim(tiny_models):
    from poetry_lstm.loading import load_model
    from poetry_lstm.vectors import load_vectors, nearest

    for mode in ("word2vec", "onehot"):
        fast, slow = load_model(tiny_models / mode), load_model(tiny_models / mode, keras=True)
        assert fast.keras_model is None and fast.vocab == slow.vocab and fast.mode == mode
        ids = fast.vocab.encode("山水风月花，")
        a, _ = fast.stepper.run(ids, batch=2)
        b, _ = slow.stepper.run(ids, batch=2)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    ours, theirs = (load_vectors_fast(tiny_models / "word2vec" / "vectors"),
                    load_vectors(tiny_models / "word2vec" / "vectors"))
    assert ours.index_to_key == theirs.index_to_key
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)
    assert nearest(ours, "月", 5) == nearest(theirs, "月", 5)


def test_fast_loader_falls_back_and_reports_missing(tmp_path, tiny_models):
    from poetry_lstm.errors import PoetryError

    with pytest.raises(PoetryError, match="poetry-lstm train --mode word2vec"):
        load_model(tmp_path / "word2vec")
    missing = missing_model_error(tmp_path / "onehot")
    assert "poetry-lstm train --mode onehot" in str(missing) and missing.kind == "model_missing"
    assert page.zh_message(missing).startswith("还没有 onehot 模型")
    assert missing_model_error(tiny_models / "onehot") is None


def test_report_bars_leave_out_empty_reasons():
    bars = page.report_bars({"per_dynasty": {"唐": 3, "": 1}, "dropped": {"digits": 2, "malformed_record": 0},
                             "top_characters": [["月", 9], ["山", 4]]})
    assert bars["dynasty"] == [{"dynasty": "唐", "poems": 3}, {"dynasty": "（未标）", "poems": 1}]
    assert bars["dropped"] == [{"reason": "digits", "records": 2}]
    assert [r["char"] for r in bars["top"]] == ["月", "山"]


def test_models_dir_relative_to_root(tmp_path):
    assert page.models_dir("models", tmp_path) == tmp_path / "models"
    assert page.models_dir(str(tmp_path / "m"), Path("/elsewhere")) == tmp_path / "m"


# --- the page in AppTest ---------------------------------------------------------------------

@pytest.fixture
def app(tiny_root, tiny_models, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("POETRY_LSTM_CONFIG", str(tiny_root / "config.toml"))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    return at


def ask(at, text: str, mode: str = "line"):
    if at.radio(key="mode").value != mode:
        at.radio(key="mode").set_value(mode).run()
    at.text_input(key=f"text_{mode}").input(text)
    next(b for b in at.button if b.label == "生成").click()
    at.run()
    assert not at.exception, at.exception
    return at


def poems(at) -> list[str]:
    return [html.unescape(t) for m in at.markdown for t in re.findall(r'class="pl-poem" data-text="([^"]*)"', m.value)]


def errors(at) -> list[str]:
    return [e.value.replace("\\", "") for e in at.error]


def captions(at) -> list[str]:
    return [c.value.replace("\\", "") for c in at.caption]


def marked(at) -> list[list[tuple[int, int, str]]]:
    """Per poem on the page: (line, character, the character) of each mark ✗ 失律, from 1."""
    out = []
    for m in at.markdown:
        for block in re.findall(r'<div class="pl-poem".*?(?=<div class="pl-poem"|$)', m.value):
            found = []
            for i, line in enumerate(re.findall(r'<div class="pl-line[^"]*">(.*?)<span class="pl-punct">', block)):
                for j, ch in enumerate(re.findall(r'<span class="pl-ch([^"]*)"[^>]*><span class="pl-hz">(.)<', line)):
                    if "pl-break" in ch[0]:
                        assert page.BREAK_MARK in line
                        found.append((i + 1, j + 1, ch[1]))
            out.append(found)
    return out


def forms(at) -> list[str]:
    return [f for m in at.markdown for f in re.findall(r'class="pl-meta">[^<]*· ([^<·]+)</div>', m.value)]


def test_page_opens_with_controls(app):
    assert app.text_input(key="text_line").placeholder == "白日依山尽"
    assert [b.label for b in app.button if b.label == "生成"]
    assert app.radio(key="model").value == "word2vec" and app.radio(key="model").options == ["word2vec", "onehot"]
    assert {s.label.split()[0] for s in app.slider} >= {"候选数", "温度", "top-k（0", "束宽"}
    assert {t.label for t in app.toggle} == {"平仄 tones", "押韵 rhyme"}
    assert [t.label for t in app.tabs] == ["作诗", "诗稿", "模型", "语料"]
    assert not poems(app) and not app.error


def test_first_line_gives_quatrains_starting_with_it(app):
    ask(app, "山水风月花")
    found = poems(app)
    assert len(found) == 3  # cfg.generate.n
    for text in found:
        assert QUATRAIN.match(text) and text.startswith("山水风月花，")
    assert not errors(app)


def test_traditional_first_line_with_a_stop(app):
    ask(app, "白雲歸江東。")
    assert poems(app) and all(p.startswith("白云归江东，") for p in poems(app))


BAD_INPUTS = [  # (mode, text, part of the English message, the Chinese that comes first)
    ("line", "", "is empty", "首句是空的"),
    ("line", "山水风月", "must be five or seven Chinese characters, but it has 4",
     "首句须为五个或七个汉字，现在是 4 个字"),
    ("line", "山水风月花云", "but it has 6", "首句须为五个或七个汉字，现在是 6 个字"),
    ("line", "abcde", "not Chinese characters", "首句须为五个或七个汉字，abcde 不是汉字"),
    ("line", "山水，风月花", "punctuation inside", "首句中间有标点"),
    ("acrostic", "春夏秋", "four Chinese characters", "藏头字须为四个汉字"),
    ("acrostic", "ab春夏", "four Chinese characters", "藏头字须为四个汉字"),
    ("theme", "", "theme is empty", "主题是空的"),
    ("theme", "hello world 123", "no keyword the model can use", "主题里没有模型能用的关键词"),
]


def test_bad_input_gives_a_message_not_a_traceback(app):
    for mode, text, message, chinese in BAD_INPUTS:
        ask(app, text, mode)
        shown = errors(app)
        assert len(shown) == 1 and message in shown[0], (mode, text, shown)
        assert shown[0].startswith(chinese), shown  # Chinese first…
        english = shown[0][shown[0].index(" (") + 2:]
        assert english[:1].isascii() and english.endswith(")"), shown  # …then the library's English in brackets
        assert "e.g." in shown[0], shown  # with an example of what works
        assert not poems(app), (mode, text)
    ask(app, "山水风月花")  # and the page still works afterwards
    assert poems(app) and not errors(app)


def test_acrostic(app):
    ask(app, "春夏秋冬", "acrostic")
    found = poems(app)
    assert found and not errors(app)
    for text in found:
        assert QUATRAIN.match(text) and [line[0] for line in prosody.split_lines(text)] == list("春夏秋冬")
    assert marked(app) == [[]] * len(found)  # heads that fit a form: nothing marked


@pytest.mark.parametrize("heads", ["我爱你们", "睳慏肉吮"])  # issue 9: these crashed the page with a traceback
def test_acrostic_heads_that_fit_no_form(app, heads):
    ask(app, heads, "acrostic")
    found = poems(app)
    assert len(found) == 3 and not errors(app)
    for text in found:
        assert QUATRAIN.match(text) and [line[0] for line in prosody.split_lines(text)] == list(heads)
    marks = marked(app)
    assert all(marks) and len(marks) == len(found)
    for poem_marks, form in zip(marks, forms(app)):
        types = prosody.FORMS[form]
        assert all(char == 1 for _, char, _ in poem_marks)  # only heads are marked…
        for i, head in enumerate(heads):  # …exactly those that no variant of their line can start with
            breaks = not prosody.allowed_tones(types[i], head)
            assert breaks == ((i + 1, 1, head) in poem_marks), (form, head, poem_marks)
    assert any(c.startswith("⚠️ 藏头字 ") and "不合所在位置的平仄" in c for c in captions(app)), captions(app)


def test_first_line_that_fits_no_form_is_kept_and_marked(app):
    line = "山水风月花"
    assert prosody.forms_for_first_line(line) == []  # the premise: no tone form takes this line
    ask(app, line)
    found, marks = poems(app), marked(app)
    assert len(found) == 3 and all(t.startswith(line + "，") for t in found) and not errors(app)
    assert len(marks) == len(found) and all(marks)
    for text, poem_marks, form in zip(found, marks, forms(app)):
        assert {(i, ch) for i, _, ch in poem_marks} <= {(1, ch) for ch in line}  # only line 1's characters
        spots = {j - 1 for _, j, _ in poem_marks}
        head = prosody.FORMS[form][0]
        # the marks are exactly what breaks the form: free them and line 1 fits it
        freed = "".join(prosody.ANY if j in spots else ch for j, ch in enumerate(line))
        assert not prosody.line_fits(line, head) and prosody.line_fits(freed, head), (form, poem_marks)
        assert all(prosody.line_fits(ln, t) for ln, t in zip(prosody.split_lines(text)[1:], prosody.FORMS[form][1:]))
    assert any(c.startswith("⚠️ 首句不合四种平仄格式") and "失律" in c for c in captions(app)), captions(app)
    ask(app, "孤舟明月夜")  # a first line that fits: nothing marked
    assert prosody.forms_for_first_line("孤舟明月夜") and poems(app) and marked(app) == [[]] * len(poems(app))
    assert not any("首句不合" in c for c in captions(app))


def test_theme_shows_keywords(app):
    ask(app, "思念故乡的秋夜，江上明月", "theme")
    found = poems(app)
    assert found and all(QUATRAIN.match(t) for t in found)
    caption = next(c.value for c in app.caption if "jieba" in c.value)
    assert "逐句" in caption and "→" in caption


def test_user_text_never_reaches_html(app):
    ask(app, '<img src=x onerror=alert(1)>秋月<b>江</b>', "theme")
    for m in app.markdown:
        assert "<img" not in m.value and "<b>" not in m.value
    for c in app.caption:
        assert "<img" not in c.value


# --- the 诗稿 tab ---------------------------------------------------------------------------

def desk_check(at, text: str, rules: str | None = None):
    at.text_area(key="desk_text").input(text)
    if rules:
        at.radio(key="desk_rules").set_value(rules)
    next(b for b in at.button if b.label == "检查").click()
    at.run()
    assert not at.exception, at.exception
    return at


def desk_tab(at):
    return next(t for t in at.tabs if t.label == "诗稿")


def desk_report(at) -> str | None:
    """The checked poem's text, or None when the desk shows none."""
    found = [html.unescape(t) for m in desk_tab(at).markdown
             for t in re.findall(r'class="pl-poem pl-desk" data-text="([^"]*)"', m.value)]
    assert len(found) <= 1, found
    return found[0] if found else None


def desk_marked(at) -> list[str]:
    """The characters of the checked poem marked with a problem, in reading order."""
    block = next(m.value for m in desk_tab(at).markdown if "pl-desk" in m.value)
    return re.findall(r'class="pl-ch[^"]*pl-break[^"]*"[^>]*><span class="pl-hz">(.)<', block)


def fix_buttons(at, line: int, char: int) -> list:
    """The suggestion buttons of the problem at (line, char), both from 1, in the order shown."""
    return [b for b in desk_tab(at).button if b.key and b.key.startswith("desk_fix_")
            and b.key.split("_")[3:5] == [str(line), str(char)]]


def test_desk_shows_a_rhyme_error_and_its_repairs(app, tiny_models):
    from poetry_lstm.desk import check_poem

    desk_check(app, INJECTED.replace("。", "。\n"))  # pasted with line breaks: the checker reads it
    assert desk_report(app) == INJECTED and not errors(app)
    assert desk_marked(app) == ["流", "天"]  # 流 and 天 are in different rhyme groups
    shown = " ".join(m.value for m in desk_tab(app).markdown)
    assert "第4句第5字「天」" in shown and "落韵" in shown and "✗ 错误" in shown
    expected = check_poem(load_model(tiny_models / "word2vec"), INJECTED)  # what the library suggests
    for problem in expected.problems:
        assert [b.label for b in fix_buttons(app, problem.line, problem.char)] == problem.suggestions
    assert fix_buttons(app, 4, 5), "the tiny model knows characters of 尤 (楼, 秋, 舟…)"
    assert not poems(app)  # nothing from the desk reaches the 作诗 tab's poems


def test_desk_suggestion_goes_into_the_poem(app):
    desk_check(app, INJECTED)
    button = fix_buttons(app, 4, 5)[0]
    fixed = INJECTED[:-2] + button.label + "。"
    button.click().run()
    assert not app.exception
    assert app.text_area(key="desk_text").value == fixed and desk_report(app) == fixed
    assert desk_marked(app) == [] and not fix_buttons(app, 4, 5) and not fix_buttons(app, 2, 5)
    shown = " ".join(m.value for m in desk_tab(app).markdown)
    assert "落韵" not in shown and "✓ 合律" in shown
    assert any("没有发现问题" in s.value for s in desk_tab(app).success)
    desk_check(app, fixed, "lenient")  # the other rules read the repaired poem as fine too
    assert "宽松 lenient" in " ".join(m.value for m in desk_tab(app).markdown) and not desk_marked(app)


def test_desk_rewrites_one_line_and_keeps_the_others(app):
    desk_check(app, INJECTED)
    app.radio(key="desk_line").set_value(3).run()
    app.button(key="desk_revise").click().run()
    assert not app.exception and not errors(app)
    versions = poems(app)
    assert versions and len(versions) <= 3  # cfg.generate.n
    kept = prosody.split_lines(INJECTED)
    for text in versions:
        lines = prosody.split_lines(text)
        assert QUATRAIN.match(text) and lines[2] != kept[2]
        assert [lines[i] for i in (0, 1, 3)] == [kept[i] for i in (0, 1, 3)]
        assert len(set(text) - set("，。")) == 20  # a new line brings no 重字
    app.button(key="desk_take_0").click().run()  # take the first version into the desk
    assert not app.exception
    assert app.text_area(key="desk_text").value == versions[0] and desk_report(app) == versions[0]
    assert not poems(app)  # the versions of the old poem are gone


def test_desk_bad_input_is_one_sentence(app):
    cases = [  # (pasted text, the Chinese first, part of the English)
        ("", "诗稿是空的", "The poem is empty"),
        ("白日依山尽😀，黄河入海流。欲穷千里目，更上一层楼。", "诗稿中的 😀 不是汉字", "not a Chinese character"),
        ("白日依山尽，黄河入海流。", "绝句是四句、每句五字或七字，这里是 2 句", "four lines of five characters"),
    ]
    for text, chinese, english in cases:
        desk_check(app, text)
        shown = errors(app)
        assert len(shown) == 1 and shown[0].startswith(chinese) and english in shown[0], (text, shown)
        assert desk_report(app) is None and not fix_buttons(app, 4, 5)
        assert "Traceback" not in shown[0]
    desk_check(app, INJECTED)  # and the desk still works afterwards
    assert desk_report(app) == INJECTED and not errors(app)


QIJUE = "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。"


@pytest.fixture
def app_without_qijue(tiny_root, tiny_models, tmp_path, monkeypatch):
    """The page over a models folder holding the 五绝 models alone, whatever other tests trained."""
    from streamlit.testing.v1 import AppTest

    models = tmp_path / "models"
    for mode in ("word2vec", "onehot"):
        shutil.copytree(tiny_models / mode, models / mode)
    shutil.copyfile(tiny_models / "train_lines.u64", models / "train_lines.u64")
    config = tmp_path / "config.toml"
    config.write_text((tiny_root / "config.toml").read_text(encoding="utf-8")
                      .replace(str(tiny_root / "models"), str(models)), encoding="utf-8")
    monkeypatch.setenv("POETRY_LSTM_CONFIG", str(config))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    return at


def test_the_desk_checks_a_qijue_by_the_rules_alone(app_without_qijue):
    app, qijue = app_without_qijue, QIJUE
    desk_check(app, qijue)
    assert desk_report(app) == qijue and not errors(app)
    shown = " ".join(m.value for m in desk_tab(app).markdown)
    assert "失对" in shown and "第1句第2字「人」" in shown  # 人 at place 2 has place 4's tone (辞)
    assert "仄起入韵" in shown  # line 1 reads 仄平平平平仄平 best as 仄仄平平仄仄平: the 七言 name
    assert not fix_buttons(app, 1, 2) and not [b for b in desk_tab(app).button if b.key == "desk_revise"]
    assert any("七绝只检查格律" in c.value and "--form qijue" in c.value for c in desk_tab(app).caption)


def test_the_desk_repairs_and_rewrites_a_qijue_with_the_qijue_model(app_with_qijue, tiny_qijue):
    from poetry_lstm.desk import check_poem

    app = app_with_qijue
    desk_check(app, QIJUE)
    assert desk_report(app) == QIJUE and not errors(app)
    expected = check_poem(load_model(tiny_qijue), QIJUE)  # the 七绝 model's repairs
    assert any(p.suggestions for p in expected.problems)
    for problem in expected.problems:
        assert [b.label for b in fix_buttons(app, problem.line, problem.char)] == problem.suggestions
    fixable = next(p for p in expected.problems if p.suggestions)
    button = fix_buttons(app, fixable.line, fixable.char)[0]
    button.click().run()  # the repair goes in at its own place of the seven-character line
    fixed = app.text_area(key="desk_text").value
    stride = 8
    at = (fixable.line - 1) * stride + fixable.char - 1
    assert fixed[at] == button.label and fixed[:at] + fixed[at + 1:] == QIJUE[:at] + QIJUE[at + 1:]
    desk_check(app, QIJUE)
    app.radio(key="desk_line").set_value(3).run()
    app.button(key="desk_revise").click().run()
    assert not app.exception and not errors(app)
    kept = prosody.quatrain_lines(QIJUE)
    for text in poems(app):
        lines = prosody.quatrain_lines(text)
        assert lines[2] != kept[2] and [lines[i] for i in (0, 1, 3)] == [kept[i] for i in (0, 1, 3)]


def test_switching_model_and_settings(tiny_root, tiny_models, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from poetry_lstm.config import load_config

    # The defaults give both 五绝 models T 0.75; here onehot has its own, so the slider must follow the model.
    config = tmp_path / "config.toml"
    config.write_text((tiny_root / "config.toml").read_text(encoding="utf-8")
                      + "[generate]\nmodel_temperature = { onehot = 0.9 }\n", encoding="utf-8")
    monkeypatch.setenv("POETRY_LSTM_CONFIG", str(config))
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    gen = load_config(str(config)).generate
    ask(app, "山水风月花")
    first = poems(app)
    assert app.slider[1].value == gen.temperature_for("word2vec")
    app.radio(key="model").set_value("onehot").run()
    assert not app.exception
    assert app.slider[1].value == gen.temperature_for("onehot") != gen.temperature_for("word2vec")  # each model's own
    second = poems(app)
    assert second and all(p.startswith("山水风月花，") for p in second)
    assert any("onehot" in c.value for c in app.caption)
    app.toggle[0].set_value(False).run()  # tones off
    app.slider[3].set_value(3).run()  # beam search
    assert not app.exception and poems(app)
    assert any("beam 3" in c for c in captions(app)) and marked(app) == [[]] * len(poems(app))  # tones off: no marks
    app.radio(key="model").set_value("word2vec").run()
    assert not app.exception and poems(app)
    app.toggle[0].set_value(True).run()
    app.slider[3].set_value(1).run()  # back to the first settings: the same seed gives the same poems
    assert not app.exception and poems(app) == first and len(first) == 3


def test_page_uses_the_configs_decoder_settings(tiny_root, tiny_models, tmp_path, monkeypatch):
    """The poems are the library's for the config's [generate] settings, style knobs included."""
    from streamlit.testing.v1 import AppTest

    from poetry_lstm.config import load_config
    from poetry_lstm.generate import complete_poem

    config = tmp_path / "config.toml"
    config.write_text((tiny_root / "config.toml").read_text(encoding="utf-8")
                      + "[generate]\nn = 2\ncandidates = 2\ncoherence = 0.0\nfrequency_penalty = 0.0\n",
                      encoding="utf-8")
    monkeypatch.setenv("POETRY_LSTM_CONFIG", str(config))
    at = ask(AppTest.from_file(str(APP), default_timeout=60).run(), "江南春日好")
    cfg = load_config(str(config))
    expected = complete_poem(load_model(tiny_models / cfg.generate.mode), "江南春日好", cfg.generate.settings())
    assert poems(at) == [p.text for p in expected.poems] and len(expected.poems) == 2
    default = complete_poem(load_model(tiny_models / cfg.generate.mode), "江南春日好",
                            load_config(str(tiny_root / "config.toml")).generate.settings())
    assert [p.text for p in default.poems][:2] != poems(at)  # the knobs matter, so the test can tell


def test_new_seed_button(app):
    ask(app, "山水风月花")
    before = app.number_input(key="seed").value
    next(b for b in app.button if "新种子" in b.label).click().run()
    assert not app.exception
    assert app.number_input(key="seed").value != before
    assert poems(app)


def test_model_tab_explorer_and_corpus(app):
    # Training curves, the evaluation table and the explorer's neighbours table all render.
    # 2 curves, the PCA, dynasties, top characters and what the five-character corpus leaves out (the tiny
    # corpus's 七绝, which go to corpus/qijue/)
    assert len(app.get("vega_lite_chart")) == 6
    tables = [d.value for d in app.dataframe]
    evaluation = next(t for t in tables if "perplexity" in t.columns)
    assert list(evaluation["模型 model"]) == ["word2vec", "onehot"]
    assert evaluation["baseline perplexity"].notna().all()
    neighbours = next(t for t in tables if "近邻 neighbour" in t.columns)
    assert len(neighbours) > 0 and neighbours["余弦相似度 cosine"].between(-1, 1).all()
    app.text_input(key="probe").input("Q").run()
    assert not app.exception and any("has no vector" in w.value for w in app.warning)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["保留绝句 kept"] == "300" and metrics["训练 train"] != "0"


def test_missing_models_say_which_command(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nmodels_dir = "{tmp_path / "nothing"}"\n', encoding="utf-8")
    monkeypatch.setenv("POETRY_LSTM_CONFIG", str(config))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert any(e.startswith("还没有 word2vec 模型") and "poetry-lstm train --mode word2vec" in e
               for e in errors(at)), errors(at)
    assert not at.tabs  # st.stop() before the tabs


def test_library_errors_that_are_not_input_are_messages(tmp_path, tiny_models, monkeypatch):
    """A broken model folder: each PoetryError the library raises is one sentence, Chinese first."""
    import shutil

    from streamlit.testing.v1 import AppTest

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    (models / "word2vec" / "vectors" / "vectors.bin").write_bytes(b"garbage\x00\xff")
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nmodels_dir = "{models}"\n', encoding="utf-8")
    monkeypatch.setenv("POETRY_LSTM_CONFIG", str(config))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception and at.tabs  # the page still opens; the explorer says what is wrong
    assert errors(at) == [e for e in errors(at) if e.startswith("字向量文件损坏") and "are corrupt" in e] and errors(at)
    ask(at, "思念故乡的秋夜", "theme")  # the theme reads the same vectors
    shown = [e.value for e in at.error if e.icon == "⚠️"]  # the poem tab's message
    assert len(shown) == 1 and "are corrupt" in shown[0] and "字向量文件损坏" in shown[0] and not poems(at)
    assert "Traceback" not in " ".join(errors(at))

    models = tmp_path / "models2"  # another folder: the loaded models are cached by path
    shutil.copytree(tiny_models, models)
    (models / "train_lines.u64").unlink()  # the copy check's hashes: the model cannot load
    config.write_text(f'[paths]\nmodels_dir = "{models}"\n', encoding="utf-8")
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception and not at.tabs
    assert any(e.startswith("训练句哈希文件") and "train_lines.u64" in e for e in errors(at)), errors(at)


def test_bad_config_is_a_message(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    config = tmp_path / "config.toml"
    config.write_text("[paths]\nnot_a_key = 1\n", encoding="utf-8")
    monkeypatch.setenv("POETRY_LSTM_CONFIG", str(config))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception and any(e.startswith("配置文件有误 (") and "not_a_key" in e for e in errors(at)), errors(at)


@pytest.fixture
def app_with_qijue(tiny_qijue, app):
    app.run()  # the 七绝 model is there now
    return app


def test_the_form_switch_makes_a_qijue(app_with_qijue):
    at = app_with_qijue
    assert at.radio(key="form").options == ["五绝", "七绝"] and at.title[0].value == "五言绝句"
    at.radio(key="form").set_value("qijue").run()
    assert not at.exception and at.title[0].value == "七言绝句"
    assert at.text_input(key="text_line").placeholder == "朝辞白帝彩云间"
    ask(at, "朝辞白帝彩云间")
    found = poems(at)
    assert len(found) == 3 and not errors(at)
    for text in found:
        lines = re.findall(r"(\w{7})[，。]", text)
        assert len(lines) == 4 and text.startswith("朝辞白帝彩云间，")
    assert any("七绝" in c for c in captions(at))
    ask(at, "山水风月花")  # a five-character line on the 七绝 side: one sentence saying which form to pick
    assert not poems(at) or all(p.startswith("朝辞") for p in poems(at))
    assert any("这个模型写七绝" in e for e in errors(at))
    at.radio(key="form").set_value("wujue").run()
    ask(at, "山水风月花")
    assert poems(at) and all(p.startswith("山水风月花，") for p in poems(at))


def test_a_missing_qijue_model_names_its_command(app_without_qijue):
    at = app_without_qijue
    at.radio(key="form").set_value("qijue").run()
    assert not at.exception
    assert any("poetry-lstm train --mode word2vec --form qijue" in e for e in errors(at))
