"""Held-out scoring and `poetry-lstm evaluate`: `python -m pytest tests/test_evaluate.py -q`.

Scores the tiny onehot model of conftest's `tiny_models` on a hand-made file of quatrains and
checks the counts, the numbers (against the NumPy stepper) and the command's JSON.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_config

from poetry_lstm import evaluate
from poetry_lstm.baseline import SCORED_POSITIONS
from poetry_lstm.cli import cli
from poetry_lstm.errors import PoetryError
from poetry_lstm.evaluate import (
    evaluate_model,
    generation_rows,
    generation_settings,
    make_yardsticks,
    model_scores,
    read_poem_file,
)
from poetry_lstm.generate import complete_all
from poetry_lstm.judge import fit_judge, judge_perplexity, training_lines
from poetry_lstm.loading import load_model
from poetry_lstm.reading import attested_doubles
from poetry_lstm.train import split_texts
from poetry_lstm.vectors import load_vectors_fast

OOV = "龘"  # a CJK character no synthetic poem uses


@pytest.fixture(scope="module")
def onehot(tiny_models):
    return load_model(tiny_models / "onehot", keras=True)


@pytest.fixture(scope="module")
def poem_file(onehot, tmp_path_factory):
    """Three quatrains of known characters; the second has an unknown one in line 2 (scored)
    and the third one in line 1 (given, not scored)."""
    chars = [t for t in onehot.vocab.tokens[3:] if "\u4e00" <= t <= "\u9fff"]
    rng = np.random.default_rng(5)
    line = lambda: "".join(rng.choice(chars, 5))
    poems = [f"{line()}，{line()}。{line()}，{line()}。" for _ in range(3)]
    poems[1] = poems[1][:7] + OOV + poems[1][8:]
    poems[2] = OOV + poems[2][1:]
    path = tmp_path_factory.mktemp("eval") / "poems.txt"
    path.write_text("\n".join(poems[:2]) + "\n\n  " + poems[2] + "  \n", encoding="utf-8")  # blank line, spaces
    return path, poems


def test_read_poem_file(poem_file):
    path, poems = poem_file
    assert read_poem_file(path) == poems


@pytest.mark.parametrize("content,match", [
    ("白日依山尽，黄河入海流。欲穷千里目，更上一层楼。\n白日依山尽，黄河入海流\n", r"Line 2 of .* is not a quatrain"),
    ("\n\n白日依山尽,黄河入海流.欲穷千里目,更上一层楼.\n", r"Line 3 of"),
    ("白日依山，黄河入海流。欲穷千里目，更上一层楼。\n", r"Line 1 of"),
    ("\n  \n", r"holds no poems"),
])
def test_read_poem_file_refuses_bad_lines(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PoetryError, match=match) as info:
        read_poem_file(path)
    assert "\n" not in str(info.value)


def test_read_poem_file_missing_or_binary(tmp_path):
    with pytest.raises(PoetryError, match="does not exist"):
        read_poem_file(tmp_path / "nope.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PoetryError, match="UTF-8"):
        read_poem_file(tmp_path / "bin.txt")


def test_counts_and_scores_on_a_file(onehot, poem_file, tiny_root):
    _, poems = poem_file
    train = split_texts(tiny_config(tiny_root), True)["train"]
    result = evaluate_model(onehot, poems, train)
    assert result["mode"] == "onehot" and result["poems"] == 3
    assert result["chars"] == 15 * 3 and result["unknown"] == 1  # line 1's unknown is given, not scored
    assert 1 < result["perplexity"] < len(onehot.vocab) * 5 and 0 <= result["accuracy"] <= 1
    assert result["baseline_perplexity"] > 1 and 0 <= result["baseline_accuracy"] <= 1
    assert result["ratio_to_baseline"] == pytest.approx(result["perplexity"] / result["baseline_perplexity"])
    # The same numbers, the slow way: the NumPy stepper character by character.
    log_prob, correct = 0.0, 0
    for poem in poems:
        ids = onehot.vocab.encode(poem)
        state = onehot.stepper.initial_state(1)
        for t in range(24):
            logp, state = onehot.stepper.step(np.array([ids[t]]), state)
            if t in SCORED_POSITIONS:  # logp predicts poem[t] = ids[t + 1]
                log_prob += logp[0, ids[t + 1]]
                correct += int(logp[0].argmax() == ids[t + 1])
    assert result["perplexity"] == pytest.approx(math.exp(-log_prob / 45), rel=1e-3)
    assert result["accuracy"] == pytest.approx(correct / 45)


def test_chunks_give_the_same_scores(onehot, poem_file, monkeypatch):
    _, poems = poem_file
    whole = model_scores(onehot, poems)
    monkeypatch.setattr(evaluate, "CHUNK", 2)
    assert model_scores(onehot, poems) == pytest.approx(whole)


def test_rhyme_mass_by_hand(onehot):
    """The model's mass on characters rhyming with line 2's end, at line 4's end, recomputed with the stepper."""
    from poetry_lstm.prosody import rhyme_groups, tone_of

    chars = [t for t in onehot.vocab.tokens[3:] if tone_of(t) != "unknown"]
    ping = [c for c in chars if tone_of(c) == "平" and rhyme_groups(c)]
    other = [c for c in chars if tone_of(c) != "平"]
    poems = [f"山水风月花，{line2_end * 5}。山水风月花，山水风月花。" for line2_end in (ping[0], ping[1], other[0])]
    result = model_scores(onehot, poems)
    assert result["rhyme_poems"] == 2  # line 2 ending 仄 or polyphonic does not count
    masses = []
    for poem in poems[:2]:
        logp, _ = onehot.stepper.run(onehot.vocab.encode(poem[:22]))  # predicts poem[22], line 4's end
        rhymes = [i for i, t in enumerate(onehot.vocab.tokens) if rhyme_groups(t) & rhyme_groups(poem[10])]
        masses.append(np.exp(logp[0, rhymes]).sum())
    assert result["rhyme_mass"] == pytest.approx(np.mean(masses), rel=1e-4)


def test_unigram_rhyme_mass_counts_line_endings():
    tokens = ("<pad>", "<unk>", "<s>", "东", "风", "山", "月")
    line = lambda end: f"白日依山尽，黄河入海{end}。欲穷千里目，更上一层{end}。"
    train = [line("风"), line("风"), line("山"), line("月")]  # line 4 ends: 风 风 山 月
    # Line 2 ends in 东 (上平一东): 风 rhymes with it, 山 and 月 do not → half the endings.
    assert evaluate.unigram_rhyme_mass([line("东")], train, tokens) == pytest.approx(0.5)
    assert evaluate.unigram_rhyme_mass([line("月")], train, tokens) == 0.0  # 月 is 仄: nothing counted


def test_tone_is_also_reported_over_first_lines_that_fit_a_form():
    deng = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"  # regulated
    jing = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"  # line 1 fits 平起入韵, the poem does not
    odd = "美人卷珠帘，深坐颦蛾眉。但见泪痕湿，不知心恨谁。"  # 怨情: 美人卷珠帘 (ZP*PP) fits no form
    r = evaluate.poem_metrics([deng, jing, odd], set(), set())
    assert r["first_line_fits_a_form"] == pytest.approx(2 / 3)
    assert r["tone"] == pytest.approx(1 / 3) and r["tone_when_first_line_fits"] == pytest.approx(1 / 2)
    assert r["lines_2_4_regulated"] == pytest.approx(1 / 3)  # over all poems: only 登鹳雀楼's lines 2–4 scan


def _run(args):
    return CliRunner().invoke(cli, args)


def test_cli_evaluate_file_json(tiny_root, tiny_models, poem_file):
    path, _ = poem_file
    result = _run(["--config", str(tiny_root / "config.toml"), "evaluate", "--file", str(path), "--json",
                   "--mode", "onehot"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    assert isinstance(out, dict)
    assert {"perplexity", "accuracy", "baseline_perplexity", "poems"} <= set(out)
    assert out["poems"] == 3 and out["chars"] == 45 and out["unknown"] == 1 and out["mode"] == "onehot"


def test_cli_evaluate_test_split_matches_training_report(tiny_root, tiny_models):
    result = _run(["--config", str(tiny_root / "config.toml"), "evaluate", "--json", "--mode", "onehot"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    config = json.loads((tiny_models / "onehot" / "config.json").read_text(encoding="utf-8"))
    assert out["poems"] == config["test"]["poems"] == len(split_texts(tiny_config(tiny_root), False)["test"])
    for key in ("perplexity", "accuracy", "baseline_perplexity"):
        assert out[key] == pytest.approx(config["test"][key], rel=1e-5)


def _error_line(result) -> str:
    assert result.exit_code not in (0, None) and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_cli_evaluate_malformed_line_names_it(tiny_root, tiny_models, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("白日依山尽，黄河入海流。欲穷千里目，更上一层楼。\n床前明月光\n", encoding="utf-8")
    line = _error_line(_run(["--config", str(tiny_root / "config.toml"), "evaluate", "--file", str(bad),
                             "--mode", "onehot"]))
    assert "Line 2" in line and str(bad) in line


@pytest.mark.parametrize("damage", ["truncate", "vocab", "missing"])
def test_cli_evaluate_broken_model_dir(tiny_root, tiny_models, tmp_path, damage):
    models = tmp_path / "models"
    shutil.copytree(tiny_models / "onehot", models / "onehot")
    if damage == "truncate":
        data = (models / "onehot" / "model.keras").read_bytes()
        (models / "onehot" / "model.keras").write_bytes(data[:1000])
    elif damage == "vocab":
        (models / "onehot" / "vocab.json").write_text("garbage", encoding="utf-8")
    else:
        (models / "onehot" / "config.json").unlink()
    toml = tmp_path / "cfg.toml"
    toml.write_text(
        (tiny_root / "config.toml").read_text(encoding="utf-8").replace(str(tiny_root / "models"), str(models)),
        encoding="utf-8")
    line = _error_line(_run(["--config", str(toml), "evaluate", "--mode", "onehot"]))
    assert "poetry-lstm train" in line or "rebuild" in line


def test_cli_evaluate_without_models(tmp_path):
    toml = tmp_path / "cfg.toml"
    toml.write_text(f'[paths]\nmodels_dir = "{tmp_path / "models"}"\n', encoding="utf-8")
    assert "run `poetry-lstm train" in _error_line(_run(["--config", str(toml), "evaluate"]))


def test_without_training_poems_the_baseline_is_left_out(onehot, poem_file, tiny_root):
    _, poems = poem_file
    train = split_texts(tiny_config(tiny_root), True)["train"]
    alone, beside = evaluate_model(onehot, poems, None), evaluate_model(onehot, poems, train)
    assert (alone["baseline_perplexity"] is None and alone["ratio_to_baseline"] is None
            and alone["unigram_rhyme_mass"] is None)
    assert alone["perplexity"] == beside["perplexity"] and alone["rhyme_mass"] == beside["rhyme_mass"]


@pytest.fixture(scope="module")
def generated_rows(tiny_root, tiny_models):
    """The rows of `evaluate --generate` for the tiny onehot model on 12 test poems."""
    cfg = tiny_config(tiny_root)
    from poetry_lstm.clean import load_corpus
    records = load_corpus(cfg)
    real = [r["text"] for r in records if r["split"] == "test"][:12]
    lines = training_lines(records)
    sticks = make_yardsticks(real, fit_judge(lines), load_vectors_fast(tiny_models / "word2vec" / "vectors"),
                             attested_doubles(lines))
    model = load_model(tiny_models / "onehot")
    return generation_rows({"onehot": model}, {"onehot": generation_settings(cfg.generate, "onehot")}, sticks,
                           model.line_hashes(), None), sticks


def test_generation_rows_compare_each_setting_with_the_real_poems(generated_rows):
    rows, sticks = generated_rows
    assert list(rows) == ["onehot, defaults", "onehot, beam 8", "onehot, defaults, unconstrained", "real poems"]
    real = rows["real poems"]
    assert real["poems"] == 12 and real["judge_ratio_to_real"] == 1.0
    assert real["judge_perplexity"] == pytest.approx(judge_perplexity(sticks.judge, sticks.real)["perplexity"])
    assert "discriminator_accuracy" not in real and "overused" not in real
    for name in list(rows)[:3]:
        row = rows[name]
        assert row["poems"] == 12 and row["first_line_kept"] == 1.0
        assert 0 <= row["discriminator_accuracy"] <= 1 and 0 <= row["formula_rate"] <= 1
        assert row["judge_ratio_to_real"] == pytest.approx(row["judge_perplexity"] / real["judge_perplexity"])
        assert -1 <= row["coherence_lift"] <= 1 and row["stutter"] <= row["doubled_chars"]
        assert len(row["overused"]) == 10 and row["novel_4grams"] is None and row["ms_per_poem"] > 0


def test_beam_completions_repeat_and_the_settings_follow_the_config(tiny_root, tiny_models):
    cfg = tiny_config(tiny_root)
    settings = generation_settings(cfg.generate, "onehot")
    model = load_model(tiny_models / "onehot")
    first = ["山水风月花", "江南春色好"]
    beams = [complete_all(model, first, settings["beam 8"])[0] for _ in range(2)]
    assert beams[0] == beams[1] and all(p[:5] == line for p, line in zip(beams[0], first))
    assert settings["beam 8"].beam == 8 and settings["defaults"].beam == cfg.generate.beam
    assert settings["defaults"].temperature == cfg.generate.temperature_for("onehot")
    assert settings["defaults"] == cfg.generate.settings("onehot")
    assert not any(getattr(settings["defaults, unconstrained"], k) for k in ("tones", "rhyme", "novelty"))


def _config_without_corpus(tiny_root, tmp_path):
    toml = tmp_path / "no-corpus.toml"
    toml.write_text((tiny_root / "config.toml").read_text(encoding="utf-8")
                    .replace(str(tiny_root / "corpus"), str(tmp_path / "corpus")), encoding="utf-8")
    return toml


def test_cli_evaluate_without_corpus_fails_before_tensorflow_and_says_how_to_build_it(tiny_root, tiny_models, tmp_path):
    toml = _config_without_corpus(tiny_root, tmp_path)
    # A fresh interpreter: this one has imported TensorFlow already for the tiny models.
    code = ("import sys; from click.testing import CliRunner; from poetry_lstm.cli import cli; "
            "r = CliRunner().invoke(cli, sys.argv[1:]); print(r.output); "
            "print('tensorflow' in sys.modules); sys.exit(r.exit_code)")
    done = subprocess.run([sys.executable, "-c", code, "--config", str(toml), "evaluate"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "False"
    message = done.stdout
    assert "Traceback" not in message and str(tmp_path / "corpus") in message
    assert "npm pack chinese-poetry@2.0.1" in message
    assert "poetry-lstm crawl --source chinese-poetry --from chinese-poetry-2.0.1.tgz" in message


def test_cli_evaluate_file_without_corpus_scores_it_and_says_what_is_left_out(tiny_root, tiny_models, poem_file,
                                                                              tmp_path):
    path, _ = poem_file
    toml = _config_without_corpus(tiny_root, tmp_path)
    result = _run(["--config", str(toml), "evaluate", "--file", str(path), "--mode", "onehot", "--generate", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["poems"] == 3 and out["perplexity"] > 1 and out["baseline_perplexity"] is None
    assert "trigram baseline" in out["skipped"] and "judge perplexity" in out["skipped"]
    assert "no corpus" in result.stderr and "trigram baseline" in result.stderr
    row = out["generation"]["onehot, defaults"]
    assert "judge_perplexity" not in row and row["stutter"] is None and row["novel_4grams"] is None
    assert row["copy_rate"] is not None and row["discriminator_accuracy"] is None  # 3 poems: too few for 5 folds
    with_corpus = json.loads(_run(["--config", str(tiny_root / "config.toml"), "evaluate", "--file", str(path),
                                   "--mode", "onehot", "--json"]).stdout)
    assert out["perplexity"] == with_corpus["perplexity"] and with_corpus["baseline_perplexity"] > 1


def test_cli_evaluate_generate_json_and_table(tiny_root, tiny_models):
    args = ["--config", str(tiny_root / "config.toml"), "evaluate", "--generate", "--limit", "10"]
    result = _run(args + ["--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # one object on stdout; progress went to stderr
    assert set(out["models"]) == {"word2vec", "onehot"} and out["skipped"] == []
    assert set(out["generation"]) == {f"{m}, {s}" for m in ("word2vec", "onehot")
                                      for s in ("defaults", "beam 8", "defaults, unconstrained")} | {"real poems"}
    assert all("judge_ratio_to_real" in row and "coherence" in row for row in out["generation"].values())
    table = _run(args + ["--mode", "onehot"])
    assert table.exit_code == 0, table.output
    assert "onehot: poems completed from the same first lines" in table.stdout
    assert "discriminator_accuracy" in table.stdout and "over-used characters" in table.stdout
