"""The page, in-process: `streamlit.testing.v1.AppTest` against the tiny models, plus the page helpers."""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest

from poetry_lstm import page, prosody, weights

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


def test_html_and_markdown_escaping():
    nasty = '<img src=x onerror="alert(1)">&'
    assert "<img" not in page._badge(nasty, True)
    escaped = page.md_escape("[link](javascript:alert(1)) *bold* <b>x</b> `code` $x$")
    for raw in ("[link]", "*bold*", "<b>", "`code`", "$x$"):
        assert raw not in escaped


def test_pca_2d_is_the_top_two_principal_axes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    xy = page.pca_2d(x)
    assert xy.shape == (200, 2)
    assert np.allclose(xy.mean(axis=0), 0, atol=1e-9)
    var = xy.var(axis=0)
    assert var[0] > var[1] > 0.5 * 3.0**2  # the two widest directions, widest first
    assert np.allclose(np.abs(page.pca_2d(-x)), np.abs(xy))  # signs are fixed, values are not mirrored at random


def test_fast_loaders_match_keras_and_gensim(tiny_models):
    from poetry_lstm.model import load_model_dir
    from poetry_lstm.vectors import load_vectors, nearest

    for mode in ("word2vec", "onehot"):
        fast, slow = weights.load_model_fast(tiny_models / mode), load_model_dir(tiny_models / mode)
        assert fast.keras_model is None and fast.vocab == slow.vocab and fast.mode == mode
        ids = fast.vocab.encode("山水风月花，")
        a, _ = fast.stepper.run(ids, batch=2)
        b, _ = slow.stepper.run(ids, batch=2)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    ours, theirs = weights.load_vectors_fast(tiny_models / "word2vec" / "vectors"), load_vectors(tiny_models / "word2vec" / "vectors")
    assert ours.index_to_key == theirs.index_to_key
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)
    assert nearest(ours, "月", 5) == nearest(theirs, "月", 5)


def test_fast_loader_falls_back_and_reports_missing(tmp_path, tiny_models):
    from poetry_lstm.errors import PoetryError

    with pytest.raises(PoetryError, match="poetry-lstm train --mode word2vec"):
        weights.load_model_fast(tmp_path / "word2vec")
    assert "poetry-lstm train --mode onehot" in weights.missing_model_message(tmp_path / "onehot", "onehot")
    assert weights.missing_model_message(tiny_models / "onehot", "onehot") is None


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


def test_page_opens_with_controls(app):
    assert app.text_input(key="text_line").placeholder == "白日依山尽"
    assert [b.label for b in app.button if b.label == "生成"]
    assert app.radio(key="model").value == "word2vec" and app.radio(key="model").options == ["word2vec", "onehot"]
    assert {s.label.split()[0] for s in app.slider} >= {"候选数", "温度", "top-k（0", "束宽"}
    assert {t.label for t in app.toggle} == {"平仄 tones", "押韵 rhyme"}
    assert [t.label for t in app.tabs] == ["作诗", "模型", "语料"]
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


BAD_INPUTS = [  # (mode, text, part of the message)
    ("line", "", "is empty"),
    ("line", "山水风月", "must be five Chinese characters, but it has 4"),
    ("line", "山水风月花云", "but it has 6"),
    ("line", "abcde", "not Chinese characters"),
    ("line", "山水，风月花", "punctuation inside"),
    ("acrostic", "春夏秋", "four Chinese characters"),
    ("acrostic", "ab春夏", "four Chinese characters"),
    ("theme", "", "theme is empty"),
    ("theme", "hello world 123", "no keyword the model can use"),
]


def test_bad_input_gives_a_message_not_a_traceback(app):
    for mode, text, message in BAD_INPUTS:
        ask(app, text, mode)
        shown = errors(app)
        assert len(shown) == 1 and message in shown[0], (mode, text, shown)
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


def test_theme_shows_keywords(app):
    ask(app, "思念故乡的秋夜，江上明月", "theme")
    found = poems(app)
    assert found and all(QUATRAIN.match(t) for t in found)
    caption = next(c.value for c in app.caption if "jieba" in c.value)
    assert "采用" in caption and "→" in caption


def test_user_text_never_reaches_html(app):
    ask(app, '<img src=x onerror=alert(1)>秋月<b>江</b>', "theme")
    for m in app.markdown:
        assert "<img" not in m.value and "<b>" not in m.value
    for c in app.caption:
        assert "<img" not in c.value


def test_switching_model_and_settings(app):
    ask(app, "山水风月花")
    first = poems(app)
    app.radio(key="model").set_value("onehot").run()
    assert not app.exception
    second = poems(app)
    assert second and all(p.startswith("山水风月花，") for p in second)
    assert any("onehot" in c.value for c in app.caption)
    app.toggle[0].set_value(False).run()  # tones off
    app.slider[3].set_value(3).run()  # beam search
    assert not app.exception and poems(app)
    app.radio(key="model").set_value("word2vec").run()
    assert not app.exception and poems(app) and first


def test_new_seed_button(app):
    ask(app, "山水风月花")
    before = app.number_input(key="seed").value
    next(b for b in app.button if "新种子" in b.label).click().run()
    assert not app.exception
    assert app.number_input(key="seed").value != before
    assert poems(app)


def test_model_tab_explorer_and_corpus(app):
    # Training curves, the evaluation table and the explorer's neighbours table all render.
    assert len(app.get("vega_lite_chart")) == 5  # 2 curves, the PCA, dynasties and top characters (the tiny corpus drops nothing)
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
    assert any("poetry-lstm train --mode word2vec" in e.value for e in at.error)
    assert not at.tabs  # st.stop() before the tabs


def test_bad_config_is_a_message(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    config = tmp_path / "config.toml"
    config.write_text("[paths]\nnot_a_key = 1\n", encoding="utf-8")
    monkeypatch.setenv("POETRY_LSTM_CONFIG", str(config))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception and any("not_a_key" in e.value.replace("\\", "") for e in at.error)
