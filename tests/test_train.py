"""Skip-gram vectors, training, checkpoints and the model directory: `python -m pytest tests/test_train.py -q`.

The two tiny models come from conftest's `tiny_models` (trained once per session); the resume
test runs the real command in a subprocess and kills it with SIGKILL after its first epoch.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, synthetic_poems, tiny_config, write_raw

from poetry_lstm import vectors
from poetry_lstm.cli import cli
from poetry_lstm.config import VectorsConfig, load_config
from poetry_lstm.errors import PoetryError
from poetry_lstm.loading import load_model
from poetry_lstm.metrics import LineHashes
from poetry_lstm.modeldir import SPECIALS, Vocab
from poetry_lstm.network import build_model
from poetry_lstm.train import prepare_vectors, split_texts, train, write_model_dir

VEC_CFG = VectorsConfig(vector_size=8, window=2, negative=3, min_count=1, epochs=2, workers=1, seed=1)
TEXTS = synthetic_poems(60, seed=21)
DIR_FILES = {"model.keras", "vocab.json", "config.json", "history.json", "corpus_report.json", "card.md", "tables.npz",
             "weights_index.json"}
# train() measures the decoder's over-used characters after writing the folder
TRAINED_FILES = DIR_FILES | {"overuse.json"}


# ---- skip-gram vectors --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kv():
    return vectors.train_vectors(TEXTS, VEC_CFG)


def test_vectors_are_skip_gram_over_every_character(monkeypatch):
    import gensim.models

    seen = {}

    class Spy(gensim.models.Word2Vec):
        def __init__(self, *args, **kwargs):
            seen.update(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(gensim.models, "Word2Vec", Spy)
    kv = vectors.train_vectors(TEXTS, VEC_CFG)
    assert seen["sg"] == 1 and seen["vector_size"] == 8 and seen["workers"] == 1 and seen["seed"] == 1
    assert set(kv.key_to_index) == {ch for t in TEXTS for ch in t}  # punctuation included: the LSTM reads it
    assert kv.vector_size == 8


def test_nearest(kv):
    found = vectors.nearest(kv, "山", 5)
    assert 0 < len(found) <= 5
    assert all("\u4e00" <= c <= "\u9fff" and c != "山" and isinstance(s, float) for c, s in found)
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    assert vectors.nearest(kv, "龘") == []


def test_vectors_saved_in_word2vec_binary_format(kv, tmp_path):
    from gensim.models import KeyedVectors

    vectors.save_vectors(kv, tmp_path / "v", TEXTS, VEC_CFG)
    raw = (tmp_path / "v" / "vectors.bin").read_bytes()
    assert raw.split(b"\n", 1)[0] == f"{len(kv.index_to_key)} 8".encode()  # the word2vec C header
    again = KeyedVectors.load_word2vec_format(str(tmp_path / "v" / "vectors.bin"), binary=True)
    assert again.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(again.vectors, kv.vectors)
    meta = json.loads((tmp_path / "v" / "vectors.json").read_text(encoding="utf-8"))
    assert meta["corpus_sha1"] == vectors.corpus_digest(TEXTS) and meta["settings"]["vector_size"] == 8
    assert meta["characters"] == len(kv.index_to_key)
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["vectors.bin", "vectors.json"]  # no temp left


def test_vectors_reused_only_when_corpus_and_settings_match(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path).replace("vectors", vector_size=8, window=2, negative=3, epochs=2, seed=1)
    logs, calls = [], []
    real = vectors.train_vectors
    monkeypatch.setattr(vectors, "train_vectors", lambda texts, c, log=None: calls.append(1) or real(texts, c))
    first = prepare_vectors(cfg, TEXTS, tmp_path, False, logs.append)
    assert len(calls) == 1 and (tmp_path / "vectors" / "vectors.bin").exists()
    again = prepare_vectors(cfg, TEXTS, tmp_path, False, logs.append)
    assert len(calls) == 1 and "reusing" in logs[-1]
    np.testing.assert_array_equal(again.vectors, first.vectors)
    logs.clear()
    prepare_vectors(cfg, TEXTS, tmp_path, True, logs.append)  # --retrain-vectors
    assert len(calls) == 2 and logs[0].startswith("skip-gram vectors:") and not any("reusing" in line for line in logs)
    prepare_vectors(cfg.replace("vectors", epochs=3), TEXTS, tmp_path, False, logs.append)  # other settings
    assert len(calls) == 3
    prepare_vectors(cfg.replace("vectors", epochs=3), TEXTS[:-1], tmp_path, False, logs.append)  # other corpus
    assert len(calls) == 4


def test_train_retrain_vectors_flag(tiny_root, tiny_models, tmp_path, monkeypatch):
    import poetry_lstm.train

    calls = []
    real = vectors.train_vectors
    monkeypatch.setattr(vectors, "train_vectors", lambda texts, c, log=None: calls.append(1) or real(texts, c))
    monkeypatch.setattr(poetry_lstm.train, "write_model_dir", lambda *a, **k: None)  # only the vectors matter here
    models = tmp_path / "models"
    shutil.copytree(tiny_models / ".train-word2vec", models / ".train-word2vec")
    # no model folder to measure
    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(models)).replace("train", overuse_poems=0)
    logs = []
    train(cfg, "word2vec", resume=True, log=logs.append)  # the checkpoint is complete: no fitting
    assert calls == [] and any("reusing the skip-gram vectors" in line for line in logs)
    train(cfg, "word2vec", resume=True, retrain_vectors=True, log=logs.append)
    assert calls == [1] and any(line.startswith("skip-gram vectors:") for line in logs)


def test_embedding_matrix_rows_and_missing_characters(kv):
    chars = tuple(sorted({ch for t in TEXTS for ch in t}))
    m = vectors.embedding_matrix(kv, SPECIALS + chars, seed=0)
    assert m.shape == (3 + len(chars), 8) and m.dtype == np.float32
    assert not m[0].any()
    np.testing.assert_allclose(m[1], kv.vectors.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(m[3:], np.stack([kv[c] for c in chars]))
    with pytest.raises(PoetryError, match="lack 1 vocabulary characters.*龘.*--retrain-vectors"):
        vectors.embedding_matrix(kv, SPECIALS + chars + ("龘",), seed=0)


def test_load_vectors_missing_or_corrupt(tmp_path):
    with pytest.raises(PoetryError, match="No character vectors"):
        vectors.load_vectors(tmp_path)
    (tmp_path / "vectors.bin").write_bytes(b"12 8\n\x00\x01")
    with pytest.raises(PoetryError, match="corrupt"):
        vectors.load_vectors(tmp_path)


# ---- the two trained models (conftest) -----------------------------------------------------------
@pytest.mark.parametrize("mode", ["word2vec", "onehot"])
def test_training_lowers_the_loss(tiny_models, mode):
    history = json.loads((tiny_models / mode / "history.json").read_text(encoding="utf-8"))
    # three epochs on all the texts, then the one fine-tuning epoch on 五绝 (tiny_config)
    assert [(r["epoch"], r["phase"]) for r in history] == [(1, "pretrain"), (2, "pretrain"), (3, "pretrain"),
                                                          (4, "finetune")]
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(np.isfinite(r["val_loss"]) and r["perplexity"] == pytest.approx(np.exp(r["loss"]), rel=1e-3)
               for r in history)


def test_word2vec_embedding_is_the_frozen_vectors(tiny_root, tiny_models):
    cfg = tiny_config(tiny_root)
    trained = load_model(tiny_models / "word2vec", keras=True)
    emb = trained.keras_model.get_layer("embedding")
    assert not emb.trainable and trained.config["model_args"]["fine_tune_vectors"] is False
    kv = vectors.load_vectors(tiny_models / "word2vec" / "vectors")
    start = vectors.embedding_matrix(kv, trained.vocab.tokens, cfg.train.seed)
    # Initialised from the vectors, and three epochs of training left them untouched (but for the
    # rounding of the stored weights).
    stored = start.astype(trained.config["weights_dtype"]).astype(np.float32)
    np.testing.assert_allclose(emb.get_weights()[0], stored, atol=1e-6)
    assert trained.config["model_args"]["embedding_dim"] == cfg.vectors.vector_size


def test_onehot_embedding_is_trainable(tiny_models):
    trained = load_model(tiny_models / "onehot", keras=True)
    emb = trained.keras_model.get_layer("embedding")
    assert emb.trainable and len(emb.trainable_weights) == 1
    assert (trained.config["model_args"]["mode"] == "onehot"
            and "vectors" not in {p.name for p in (tiny_models / "onehot").iterdir()})


# ---- the model directory ------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["word2vec", "onehot"])
def test_model_directory_contents(tiny_root, tiny_models, mode):
    cfg = tiny_config(tiny_root)
    folder = tiny_models / mode
    names = {p.name for p in folder.iterdir()}
    assert names == TRAINED_FILES | ({"vectors"} if mode == "word2vec" else set())
    train_texts = split_texts(cfg, cfg.train.use_windows)["train"]
    data = (tiny_models / "train_lines.u64").read_bytes()  # one file beside the model folders, for both
    hashes = [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 8)]
    assert hashes == sorted(set(hashes))
    want = {int(hashlib.sha1(t[i:i + 5].encode("utf-8")).hexdigest()[:16], 16)
            for t in train_texts for i in (0, 6, 12, 18)}
    assert set(hashes) == want and data == LineHashes.of_poems(train_texts).to_bytes()
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["train_lines"] == len(want) and config["train_lines_sha1"] == hashlib.sha1(data).hexdigest()
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab["counts"]) == len(vocab["tokens"]) and sum(vocab["counts"]) == sum(len(t) for t in train_texts)
    assert config["model_args"]["mode"] == mode and config["train"]["mode"] == mode
    assert config["training_poems"] == len(train_texts)
    # 4: the fine-tuning epoch
    assert config["window"] == 24 and config["stride"] == 24 and 1 <= config["best_epoch"] <= 4
    assert config["pretrain"]["epochs"] == 3 and config["fine_tune_from_epoch"] == 3
    assert config["test"]["poems"] == len(split_texts(cfg, False)["test"]) and config["test"]["perplexity"] > 1
    model = build_model(**config["model_args"])
    # the rebuilt network accepts the weights
    model.set_weights(load_model(folder, keras=True).keras_model.get_weights())
    card = (folder / "card.md").read_text(encoding="utf-8")
    assert f"`poetry-lstm train --mode {mode}`" in card and "perplexity" in card
    assert "pretraining on all windows: 3 epochs" in card and "fine-tuning on real 五绝" in card
    # The shipped default reads the 平水韵 table: 平, 仄 and the 30 平声 groups, fixed, and says so in the card.
    assert config["model_args"]["prosody_dim"] == 32 and "- prosody:" in card
    assert f"{config['test']['rhyme_mass']:.3f} of its probability" in card and 0 <= config["test"]["rhyme_mass"] <= 1
    report = json.loads((Path(cfg.paths.corpus_dir) / "report.json").read_text(encoding="utf-8"))
    assert json.loads((folder / "corpus_report.json").read_text(encoding="utf-8")) == report
    assert not [p.name for p in tiny_models.iterdir() if ".tmp-" in p.name or p.name.endswith(".old")]


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_interrupted_save_keeps_the_old_directory(tiny_root, tiny_models, tmp_path, monkeypatch):
    import poetry_lstm.train

    models = tmp_path / "models"
    shutil.copytree(tiny_models / "onehot", models / "onehot")
    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(models))
    before = _digest(models / "onehot")
    trained = load_model(models / "onehot", keras=True, line_hashes=False)  # only onehot/ was copied
    splits = split_texts(cfg, True)
    history = json.loads((models / "onehot" / "history.json").read_text(encoding="utf-8"))
    state = {"history": history, "seconds": 1.0, "best_epoch": 1}
    args = (cfg, models / "onehot", models / ".train-onehot", trained.keras_model, trained.config["model_args"],
            trained.vocab, splits["train"], splits["test"][:3], state)

    def boom(*a, **k):
        raise OSError("disk gone")

    monkeypatch.setattr(poetry_lstm.train, "model_card", boom)  # fails after model.keras, config.json … are written
    with pytest.raises(OSError, match="disk gone"):
        write_model_dir(*args, "second run")
    assert _digest(models / "onehot") == before
    assert sorted(p.name for p in models.iterdir()) == ["onehot"]  # no temporary or .old folder, no new hash file
    monkeypatch.undo()
    write_model_dir(*args, "second run")
    assert json.loads((models / "onehot" / "config.json").read_text(encoding="utf-8"))["command"] == "second run"
    assert sorted(p.name for p in models.iterdir()) == ["onehot", "train_lines.u64"]
    assert {p.name for p in (models / "onehot").iterdir()} == DIR_FILES


# ---- resume after a kill ------------------------------------------------------------------------
def _command() -> list[str]:
    exe = shutil.which("poetry-lstm")
    return [exe] if exe else [sys.executable, "-m", "poetry_lstm.cli"]


@pytest.mark.timeout(150)
def test_resume_after_kill(tiny_root, tmp_path):
    models = tmp_path / "models"
    toml = tmp_path / "cfg.toml"
    toml.write_text(
        f'[paths]\ncrawler_dir = "{tiny_root / "crawler"}"\ncorpus_dir = "{tiny_root / "corpus"}"\n'
        f'models_dir = "{models}"\n'
        "[model]\nunits = 16\nembedding_dim = 8\nmin_char_count = 1\n"
        "[train]\nepochs = 1000\nbatch_size = 16\npatience = 1000\nsteps_per_epoch = 3\nfine_tune_epochs = 0\n",
        encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    state_path = models / ".train-onehot" / "state.json"
    log1 = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(_command() + ["--config", str(toml), "train", "--mode", "onehot"], cwd=ROOT, env=env,
                            stdout=log1, stderr=subprocess.STDOUT)
    try:
        deadline, checkpointed = time.monotonic() + 90, False
        while not checkpointed and time.monotonic() < deadline and proc.poll() is None:
            try:
                checkpointed = json.loads(state_path.read_text(encoding="utf-8"))["epochs_done"] >= 1
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
        assert checkpointed and proc.poll() is None, ("no checkpoint within 90 s:\n"
                                                      + (tmp_path / "first.log").read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log1.close()
    assert not (models / "onehot").exists()  # killed: no model directory yet
    state = json.loads(state_path.read_text(encoding="utf-8"))
    done = state["epochs_done"]
    assert done >= 1 and len(state["history"]) == done
    result = subprocess.run(_command() + ["--config", str(toml), "train", "--mode", "onehot", "--resume",
                                          "--epochs", str(done + 2)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"resuming after epoch {done}" in out
    epochs_logged = [int(n) for n in re.findall(r"^pretrain epoch (\d+):", result.stdout, re.M)]
    assert epochs_logged == [done + 1, done + 2]
    history = json.loads((models / "onehot" / "history.json").read_text(encoding="utf-8"))
    assert [r["epoch"] for r in history] == list(range(1, done + 3))
    assert history[:done] == state["history"]
    assert {p.name for p in (models / "onehot").iterdir()} == TRAINED_FILES
    config = load_model(models / "onehot", keras=True).config
    assert config["wall_seconds"] > state["seconds"]  # the killed run's time counts too


def test_resume_with_other_settings_is_refused(tiny_root, tmp_path):
    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(tmp_path / "models"))
    ckpt = tmp_path / "models" / ".train-onehot"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"model_args": {"units": 999}, "epochs_done": 1}), encoding="utf-8")
    with pytest.raises(PoetryError, match="other settings.*without --resume"):
        train(cfg, "onehot", resume=True, log=lambda _: None)


def test_resume_after_the_corpus_changed_is_refused(tiny_root, tiny_models, tmp_path):

    models = tmp_path / "models"
    shutil.copytree(tiny_models / ".train-onehot", models / ".train-onehot")
    vocab = Vocab.load(models / ".train-onehot" / "vocab.json")
    tokens = list(vocab.tokens)
    tokens[3], tokens[4] = tokens[4], tokens[3]  # same size, other ids: the weights would mean other characters
    Vocab(tuple(tokens)).save(models / ".train-onehot" / "vocab.json")
    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(models))
    with pytest.raises(PoetryError, match="corpus changed.*without --resume"):
        train(cfg, "onehot", resume=True, log=lambda _: None)


# ---- bad input ----------------------------------------------------------------------------------
def _toml(tmp_path: Path, root: Path, extra: str = "") -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(f'[paths]\ncrawler_dir = "{root / "crawler"}"\ncorpus_dir = "{root / "corpus"}"\n'
                    f'models_dir = "{root / "models"}"\n{extra}',
                    encoding="utf-8")
    return path


def _cli_error(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_no_corpus_says_crawl(tmp_path):
    with pytest.raises(PoetryError, match=r"run `poetry-lstm crawl`"):
        train(tiny_config(tmp_path), "onehot", log=lambda _: None)
    assert "poetry-lstm crawl" in _cli_error(["--config", str(_toml(tmp_path, tmp_path)), "train", "--mode", "onehot"])


def test_tiny_corpus_is_refused(tmp_path):
    from poetry_lstm.clean import clean_corpus

    write_raw(tmp_path / "crawler", synthetic_poems(18, seed=5))
    cfg = tiny_config(tmp_path)
    clean_corpus(cfg)
    with pytest.raises(PoetryError, match=r"too few to train.*at least 20") as info:
        train(cfg, "onehot", log=lambda _: None)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "models").exists()


def test_unknown_config_key(tmp_path):
    bad = _toml(tmp_path, tmp_path, "[train]\nepoch = 3\n")
    with pytest.raises(PoetryError, match=r"Unknown config key \[train\] epoch"):
        load_config(bad)
    assert "Unknown config key [train] epoch" in _cli_error(["--config", str(bad), "train", "--mode", "onehot"])
    (tmp_path / "sect.toml").write_text("[trian]\nepochs = 3\n", encoding="utf-8")
    assert "Unknown config section [trian]" in _cli_error(["--config", str(tmp_path / "sect.toml"), "train"])
    (tmp_path / "type.toml").write_text('[train]\nepochs = "many"\n', encoding="utf-8")
    assert "[train] epochs must be int" in _cli_error(["--config", str(tmp_path / "type.toml"), "train"])


def test_a_long_epoch_logs_its_progress(tiny_root):
    from poetry_lstm.train import PROGRESS_STEPS, epoch_callback

    lines = []
    callback = epoch_callback(tiny_config(tiny_root), tiny_root, {}, None, lines.append, 0.0, 0.0, phase="pretrain")
    callback.on_epoch_begin(2)
    for batch in range(2 * PROGRESS_STEPS):
        callback.on_train_batch_end(batch, {"loss": 4.25})
    assert len(lines) == 2 and lines[0].startswith(f"pretrain epoch 3: step {PROGRESS_STEPS}, loss 4.250")
