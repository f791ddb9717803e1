"""`poetry-lstm prefer`: a real tiny model tuned on rated sheets moves toward the poems rated higher, writes a
folder the decoder reads, resumes after an interruption, and refuses what it cannot use in one sentence."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import rated_sheet, tiny_config

FIRST_LINES = (["春风吹柳絮", "山水风月花", "明月照高楼", "白云生远岫"], ["孤舟明月夜", "秋风吹落叶", "青山横北郭"])


@pytest.fixture()
def setup(tiny_root, tiny_models, tmp_path):
    """(config whose models_dir is a copy of the tiny models, the folder of two rated sheets)."""
    from poetry_lstm.loading import load_model

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    model = load_model(models / "word2vec")
    for k, firsts in enumerate(FIRST_LINES):
        rated_sheet(tmp_path / "ratings" / f"sheet{k}", model, firsts)
    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(models))
    return cfg.replace("prefer", learning_rate=0.003, epochs=2, batch_size=8, anchor=0.1, anchor_batch=8), \
        tmp_path / "ratings"


def margins(folder: Path, chosen: list[str], rejected: list[str]) -> np.ndarray:
    from poetry_lstm.loading import load_model
    from poetry_lstm.network import poem_ids
    from poetry_lstm.prefer import all_logp

    m = load_model(folder, keras=True)
    return all_logp(m.keras_model, poem_ids(chosen, m.vocab)) - all_logp(m.keras_model, poem_ids(rejected, m.vocab))


def test_tuning_moves_the_model_toward_the_poems_rated_higher(setup, tiny_models):
    from poetry_lstm.generate import complete_poem
    from poetry_lstm.loading import load_model
    from poetry_lstm.prefer import prefer, rated_pairs, sheet_folders

    cfg, ratings = setup
    chosen, rejected, lines = rated_pairs(sheet_folders([ratings]), 1)
    assert lines == 7 and len(chosen) == len(rejected) > 0
    before = margins(tiny_models / "word2vec", chosen, rejected)
    judge = Path(cfg.paths.models_dir) / "word2vec" / "sense.json"
    judge.write_text(json.dumps({"weights": [0.1] * 24}), encoding="utf-8")  # fitted on the old hidden states
    out = prefer(cfg, "word2vec", [ratings], command="poetry-lstm prefer", log=lambda _: None)
    assert not (out / "sense.json").exists()
    after = margins(out, chosen, rejected)
    assert after.mean() > before.mean() + 0.5 and (after > before).mean() > 0.7

    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    p = config["preference"]
    assert p["pairs"] == len(chosen) and p["first_lines"] == 7 and len(p["epochs_log"]) == 2
    assert config["commands"][-1] == "poetry-lstm prefer" and config["test"]["perplexity"] > 1
    assert "poetry-lstm prefer" in (out / "card.md").read_text(encoding="utf-8")
    assert not (out.parent / ".prefer-word2vec").exists()  # the checkpoint goes once the folder is in
    poem = complete_poem(load_model(out), "山水风月花", n=1, seed=1).poems[0]  # the NumPy path reads it
    assert len(poem.text) == 24


def test_an_interrupted_run_resumes_after_its_last_epoch(setup, monkeypatch):
    from poetry_lstm import prefer as tuning

    cfg, ratings = setup
    real, calls = tuning.real_perplexity, []

    def stop_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # before, after epoch 1, after epoch 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "real_perplexity", stop_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        tuning.prefer(cfg, "word2vec", [ratings], command="first", log=lambda _: None)
    ckpt = Path(cfg.paths.models_dir) / ".prefer-word2vec"
    first = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    assert first["epochs_done"] == 1
    monkeypatch.setattr(tuning, "real_perplexity", real)
    said = []
    out = tuning.prefer(cfg, "word2vec", [ratings], resume=True, command="again", log=said.append)
    assert "resumed after epoch 1" in said
    log = json.loads((out / "config.json").read_text(encoding="utf-8"))["preference"]["epochs_log"]
    assert [r["epoch"] for r in log] == [1, 2] and log[0] == first["epochs"][0]


def test_a_changed_setting_is_not_resumed(setup, monkeypatch):
    from poetry_lstm import prefer as tuning
    from poetry_lstm.errors import PoetryError

    cfg, ratings = setup
    with pytest.raises(PoetryError, match="no stopped preference run"):
        tuning.prefer(cfg, "word2vec", [ratings], resume=True, log=lambda _: None)
    monkeypatch.setattr(tuning, "write_tuned_folder", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        tuning.prefer(cfg, "word2vec", [ratings], log=lambda _: None)
    other = cfg.replace("prefer", beta=0.5)
    with pytest.raises(PoetryError, match="other settings"):
        tuning.prefer(other, "word2vec", [ratings], resume=True, log=lambda _: None)


def test_what_cannot_be_tuned_on_is_refused_in_one_sentence(setup, tmp_path):
    from poetry_lstm.errors import PoetryError
    from poetry_lstm.loading import load_model
    from poetry_lstm.prefer import prefer

    cfg, ratings = setup
    model = load_model(Path(cfg.paths.models_dir) / "word2vec")
    rated_sheet(tmp_path / "held" / "valid", model, ["春风吹柳絮"], split="valid")
    with pytest.raises(PoetryError, match=r"--split train"):
        prefer(cfg, "word2vec", [tmp_path / "held"], log=lambda _: None)
    (tmp_path / "unrated").mkdir()
    shutil.copy(ratings / "sheet0" / "key.json", tmp_path / "unrated" / "key.json")
    with pytest.raises(PoetryError, match="has no answers.json"):
        prefer(cfg, "word2vec", [tmp_path / "unrated"], log=lambda _: None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PoetryError, match="No rated sheets"):
        prefer(cfg, "word2vec", [tmp_path / "empty"], log=lambda _: None)
    once = dataclasses.replace(cfg, prefer=dataclasses.replace(cfg.prefer, epochs=1))
    prefer(once, "word2vec", [ratings], log=lambda _: None)
    with pytest.raises(PoetryError, match="--from"):
        prefer(once, "word2vec", [ratings], log=lambda _: None)


def test_the_command_names_a_missing_folder_without_a_traceback(tiny_root, tmp_path):
    run = subprocess.run([sys.executable, "-m", "poetry_lstm.cli", "--config", str(tiny_root / "config.toml"),
                          "prefer", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "nowhere is not a folder of rating sheets" in run.stderr
