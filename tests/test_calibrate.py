"""Over-used characters: measured on training first lines, written beside the model, held back by the decoder."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from test_generate import ALL_OFF, fake_model

from poetry_lstm import calibrate as overuse
from poetry_lstm import generate as G
from poetry_lstm.cli import cli
from poetry_lstm.errors import PoetryError
from poetry_lstm.loading import load_model
from poetry_lstm.modeldir import OVERUSE_FILE, read_overuse


def poem(body: str) -> str:
    """A poem whose lines 2–4 are the 15 characters `body`."""
    return "白日依山尽，" + "，".join([body[0:5] + "。" + body[5:10], body[10:15]]) + "。"


def test_ratios_count_only_lines_2_to_4_and_only_what_is_written_too_often():
    real = [poem("山水云花人来去风月天江湖海林木")] * 20
    ours = [poem("江江江江江水云花人来去风月天林")] * 4  # 江 5 times a poem against once; 湖海木 never
    ratios = overuse.overuse_ratios(ours, real)
    assert list(ratios) == ["江"]  # 白日依山尽 is line 1 and 山 is used less: neither counts
    expected = 60 * 20 / 300  # 60 generated characters, 江 is 20 of the 300 real ones
    assert ratios["江"] == pytest.approx(math.log((20 + 1) / (expected + 1)), abs=1e-4)
    assert overuse.overuse_ratios(ours[:1], real) == {"江": pytest.approx(math.log(6 / 2), abs=1e-4)}  # 5 uses count
    assert overuse.overuse_ratios([poem("江江江江水云花人来去风月天林山")], real) == {}  # 4 say nothing
    with pytest.raises(PoetryError, match="needs generated and real poems"):
        overuse.overuse_ratios([], real)


def test_training_measures_the_decoders_overuse_beside_the_model(tiny_models):
    for mode in ("word2vec", "onehot"):
        record = json.loads((tiny_models / mode / OVERUSE_FILE).read_text(encoding="utf-8"))
        assert (record["first_lines"] == 30 and record["options"]["candidates"] == 8
                and "overuse_penalty" not in record["options"])
        assert all(r > 0 for r in record["overuse"].values())
        card = (tiny_models / mode / "card.md").read_text(encoding="utf-8")
        assert "## Decoding" in card and f"poetry-lstm calibrate --mode {mode}" in card
        trained = load_model(tiny_models / mode)
        vector = trained.overuse
        assert vector.shape == (len(trained.vocab),) and (vector >= 0).all()
        assert sorted(trained.vocab.tokens[i] for i in np.flatnonzero(vector)) == sorted(record["overuse"])


def test_the_decoder_holds_back_an_overused_character(tmp_path):
    trained = fake_model(tmp_path, "江山水云花人来去风月", {"江": 1.0, "山": 0.5})
    (tmp_path / OVERUSE_FILE).write_text(json.dumps({"overuse": {"江": 3.0, "不在词表": 9.0}}), encoding="utf-8")
    trained = dataclasses.replace(trained, overuse=read_overuse(tmp_path, trained.vocab.tokens))
    count = lambda penalty: sum(p.text[6:].count("江") for seed in range(10) for p in G.complete_poem(
        trained, "山水云花人", n=1, seed=seed, overuse_penalty=penalty, frequency_penalty=0.0, **ALL_OFF).poems)
    assert count(0.0) > 3 * max(count(1.0), 1)


@pytest.mark.parametrize("content", ['{"overuse": {"江": "much"}}', '{"overuse": [1, 2]}', "[]",
                                     '{"overuse": {"江": NaN}}'])
def test_a_malformed_overuse_file_names_the_command_that_rebuilds_it(tmp_path, content):
    trained = fake_model(tmp_path, "江山水云花人来去风月")
    (tmp_path / OVERUSE_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(PoetryError, match="poetry-lstm calibrate --mode ") as info:
        read_overuse(tmp_path, trained.vocab.tokens)
    assert info.value.kind == "overuse_corrupt"


def project(tiny_root, tiny_models, tmp_path):
    """(a folder with a copy of the tiny corpus and models, the config.toml that points at them)."""
    root = tmp_path / "project"
    shutil.copytree(tiny_root / "corpus", root / "corpus")
    shutil.copytree(tiny_models, root / "models")
    config = root / "config.toml"
    config.write_text(f'[paths]\ncorpus_dir = "{(root / "corpus").as_posix()}"\n'
                      f'models_dir = "{(root / "models").as_posix()}"\n', encoding="utf-8")
    return root, config


def test_calibrate_repairs_a_malformed_overuse_file(tiny_root, tiny_models, tmp_path):
    """The file generate refuses is the one calibrate replaces: calibrate never reads it."""
    root, config = project(tiny_root, tiny_models, tmp_path)
    target = root / "models" / "onehot" / OVERUSE_FILE
    target.write_text('{"overuse": {"江": "much"}}', encoding="utf-8")
    generate = ["--config", str(config), "generate", "春眠不觉晓", "--mode", "onehot", "--n", "1"]
    refused = CliRunner().invoke(cli, generate)
    assert refused.exit_code == 1 and "poetry-lstm calibrate --mode onehot" in refused.stderr, refused.output
    repaired = CliRunner().invoke(cli, ["--config", str(config), "calibrate", "--mode", "onehot",
                                        "--overuse-poems", "8"])
    assert repaired.exit_code == 0, repaired.output
    assert json.loads(target.read_text(encoding="utf-8"))["first_lines"] == 8
    again = CliRunner().invoke(cli, generate)
    assert again.exit_code == 0 and "春眠不觉晓，" in again.stdout, again.output


def test_calibrate_rewrites_the_measure_and_says_what_is_missing(tiny_root, tiny_models, tmp_path):
    root, config = project(tiny_root, tiny_models, tmp_path)
    target = root / "models" / "onehot" / OVERUSE_FILE
    target.unlink()
    result = CliRunner().invoke(cli, ["--config", str(config), "calibrate", "--mode", "onehot",
                                      "--overuse-poems", "12"])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text(encoding="utf-8"))["first_lines"] == 12
    assert "lines 2–4 of 12 training 五绝 first lines" in (target.parent / "card.md").read_text(encoding="utf-8")
    assert "onehot: " in result.stdout and "over-used characters written to" in result.stdout

    shutil.rmtree(root / "corpus")
    result = CliRunner().invoke(cli, ["--config", str(config), "calibrate"])
    assert result.exit_code == 1 and "No corpus in" in result.stderr and "Traceback" not in result.output
    shutil.rmtree(root / "models")
    result = CliRunner().invoke(cli, ["--config", str(config), "calibrate"])
    assert result.exit_code == 1 and "No model in" in result.stderr
    result = CliRunner().invoke(cli, ["--config", str(config), "calibrate", "--overuse-poems", "-3"])
    assert result.exit_code == 2 and "--overuse-poems must be at least 0, not -3." in result.stderr
