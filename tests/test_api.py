"""The library API the README documents, on the shipped models: the library call writes the CLI's poem,
and a polyphonic line-1 end is read the way the chosen form needs."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import poetry_lstm
from poetry_lstm import prosody
from poetry_lstm.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "word2vec"
needs_shipped = pytest.mark.skipif(not (SHIPPED / "model.keras").exists(), reason="the shipped models are not here")


@pytest.fixture(scope="module")
def shipped():
    return poetry_lstm.load_model(SHIPPED)


def cli_poems(*args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["generate", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["poems"]


@needs_shipped
def test_the_library_call_writes_the_clis_poem(shipped, monkeypatch):
    monkeypatch.chdir(ROOT)  # the CLI reads models_dir = "models" from config/default.toml
    library = poetry_lstm.complete_poem(shipped, "孤舟明月夜", seed=0)
    assert library.poems[0].text == cli_poems("孤舟明月夜", "--n", "1", "--seed", "0")[0]["text"]
    beam = poetry_lstm.complete_poem(shipped, "孤舟明月夜", n=2, beam=8, seed=4)
    cli_beam = cli_poems("孤舟明月夜", "--n", "2", "--beam", "8", "--seed", "4")
    assert [p.text for p in beam.poems] == [p["text"] for p in cli_beam]
    heads = poetry_lstm.acrostic_poem(shipped, "春夏秋冬", n=1, seed=2)
    assert heads.poems[0].text == cli_poems("--acrostic", "春夏秋冬", "--n", "1", "--seed", "2")[0]["text"]


@needs_shipped
def test_settings_are_the_configs_and_overrides_replace_them(shipped):
    s = poetry_lstm.DecodeSettings.defaults(shipped.mode)
    assert poetry_lstm.complete_poem(shipped, "孤舟明月夜", s, n=1).poems == \
        poetry_lstm.complete_poem(shipped, "孤舟明月夜", n=1).poems
    assert poetry_lstm.complete_poem(shipped, "孤舟明月夜", dataclasses.replace(s, seed=5), n=1).poems == \
        poetry_lstm.complete_poem(shipped, "孤舟明月夜", n=1, seed=5).poems
    with pytest.raises(poetry_lstm.PoetryError, match="Unknown setting temprature") as info:
        poetry_lstm.complete_poem(shipped, "孤舟明月夜", temprature=0.5)
    assert info.value.kind == "setting_unknown"


@needs_shipped
def test_a_polyphonic_line_one_end_sets_the_rhyme_when_the_form_rhymes_it(shipped):
    """秋风吹客衣: 衣 is 平 (上平五微) and 去 (未). A 入韵 form reads it 平, so lines 2 and 4 rhyme in 微,
    and the poem says so (HEAD rhymed them in 齐: 啼, 鸡)."""
    assert prosody.tone_of("衣") == prosody.BOTH and prosody.rhyme_groups("衣") == {"上平五微"}
    poems = [p for seed in range(7, 12) for p in poetry_lstm.complete_poem(shipped, "秋风吹客衣", n=2, seed=seed).poems]
    rhyming = [p for p in poems if p.form in ("平起入韵", "仄起入韵")]
    assert rhyming and len(rhyming) < len(poems)  # both readings of 衣 occur among these ten
    for p in poems:
        (note,) = p.notes
        assert note.kind == "polyphonic_end" and note.fields["char"] == "衣"
        if p.form in ("平起入韵", "仄起入韵"):
            in_wei = {c for c in p.text if "上平五微" in prosody.rhyme_groups(c)}
            assert {p.lines[1][-1], p.lines[3][-1]} <= in_wei, p.text
            assert note.fields["tone"] == "平" and "reads it as 平 (上平五微)" in note
        else:
            assert note.fields["tone"] == "仄" and "reads it as 仄" in note
        assert p.checks["rhyme"] and p.checks["tone"]


SHIPPED_QIJUE = ROOT / "models" / "qijue" / "word2vec"


@pytest.mark.skipif(not (SHIPPED_QIJUE / "model.keras").exists(), reason="the shipped 七绝 model is not here")
def test_the_shipped_qijue_model_writes_the_clis_qijue(monkeypatch):
    monkeypatch.chdir(ROOT)  # a seven-character first line: the CLI reads models/qijue/word2vec
    library = poetry_lstm.complete_poem(poetry_lstm.load_model(SHIPPED_QIJUE), "朝辞白帝彩云间", seed=0)
    shown = cli_poems("朝辞白帝彩云间", "--n", "1", "--seed", "0")[0]
    assert library.poems[0].text == shown["text"] and shown["form"] == "平起入韵"
    assert [len(line) for line in shown["lines"]] == [7] * 4
    assert all(shown["checks"][k] for k in ("form", "tone", "rhyme")) and shown["checks"]["copied"] is False
