"""The backward scorer (`train --backward`), the decoder's `mutual` weight, and float16 weights."""
from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
from conftest import tiny_config

from poetry_lstm import generate as G
from poetry_lstm import layout
from poetry_lstm.calibrate import calibrate
from poetry_lstm.clean import load_corpus, texts_by_split
from poetry_lstm.decoder import Candidate, Decoder
from poetry_lstm.loading import load_model, read_weight_index, store_weights_as, write_weight_index
from poetry_lstm.modeldir import BACKWARD
from poetry_lstm.stepper import WEIGHTS_MEMBER

POEM = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"


def test_a_poem_read_from_its_end_keeps_the_marks_and_reads_back():
    back = layout.reverse_poem(POEM)
    assert back == "楼层一上更，目里千穷欲。流海入河黄，尽山依日白。"
    assert layout.reverse_poem(back) == POEM


@pytest.fixture(scope="module")
def with_backward(tiny_root, tiny_models, tmp_path_factory):
    """A copy of the tiny models with a backward scorer trained beside them."""
    from poetry_lstm.train import train

    root = tmp_path_factory.mktemp("backward")
    shutil.copytree(tiny_models, root / "models")
    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(root / "models")).replace("model", reverse=True)
    hashes = (root / "models" / "train_lines.u64").read_bytes()
    train(cfg, "word2vec", command="poetry-lstm train --mode word2vec --backward", log=lambda _: None)
    return root / "models", hashes


def test_training_backward_writes_its_own_folder_and_leaves_the_copy_check_alone(with_backward):
    models, hashes = with_backward
    folder = models / BACKWARD
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["reverse"] is True and config["model_args"]["rhyme_context"] is False
    assert (models / "train_lines.u64").read_bytes() == hashes  # the forward models' copy check is untouched
    assert not (folder / "train_lines.u64").exists() and not (folder / "overuse.json").exists()
    assert not (folder / "vectors").exists()  # its input vectors are inside model.keras
    assert "backward" in (folder / "card.md").read_text(encoding="utf-8").splitlines()[0]
    # its lines are the forward lines: the digest it records is the one the forward models record
    forward = json.loads((models / "word2vec" / "config.json").read_text(encoding="utf-8"))
    assert config["train_lines_sha1"] == forward["train_lines_sha1"]


def test_line_one_score_is_the_backward_keras_models_log_probability(with_backward):
    models, _ = with_backward
    trained = load_model(models / "word2vec")
    scorer = load_model(models / BACKWARD, keras=True, backward=False)
    assert trained.backward is None  # found, not loaded: a poem without `mutual` does not pay for it
    assert trained.scorer() is trained.scorer() and trained.backward.path.name == BACKWARD
    poems = G.complete_poem(trained, "山水风月花", n=3, seed=1).poems
    dec = Decoder(trained, G.settings_for(trained, None, mutual=1.0))
    cands = [Candidate(list(p.text), {}, None, None) for p in poems]
    dec.score_line_one(cands)
    ids = np.array([scorer.vocab.encode(layout.reverse_poem(p.text)) for p in poems])  # (3, 25)
    probs = np.asarray(scorer.keras_model(ids[:, :-1], training=False))  # (3, 24, vocab)
    start = layout.LINE_STARTS[-1]  # the last line read backwards is line 1
    picked = [np.log(probs[b, start + j, ids[b, start + j + 1]]) for b in range(3) for j in range(layout.CHARS)]
    expected = np.array(picked).reshape(3, layout.CHARS).mean(axis=1)
    np.testing.assert_allclose([c.line_one for c in cands], expected, atol=1e-4)


def test_mutual_weighs_the_backward_score_into_the_choice(with_backward):
    models, _ = with_backward
    trained = load_model(models / "word2vec")
    off = G.complete_poem(trained, "山水风月花", n=1, seed=3, mutual=0.0).poems[0]
    on = G.complete_poem(trained, "山水风月花", n=1, seed=3, mutual=1.0, candidates=16).poems[0]
    assert off.line_one == 0.0 and on.line_one < 0
    strong = G.complete_poem(trained, "山水风月花", n=1, seed=3, mutual=5.0, candidates=16).poems[0]
    assert strong.line_one >= on.line_one - 1e-9  # more weight never picks a poem that points back less


def test_mutual_without_a_backward_model_says_so(tiny_models):
    trained = load_model(tiny_models / "word2vec")
    if trained.backward_path is not None:
        pytest.skip("the shared tiny models have a backward scorer")
    poem = G.complete_poem(trained, "山水风月花", n=1, seed=0, mutual=1.0).poems[0]
    assert [n.kind for n in poem.notes if n.kind == "no_backward"] == ["no_backward"]
    assert "--backward" in next(n for n in poem.notes if n.kind == "no_backward").fields["command"]


def test_float16_weights_halve_the_file_and_read_back_in_float32(tiny_models, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_models / "onehot", folder)
    assert store_weights_as(folder, "float32")  # the tiny models are stored as float16, the default
    write_weight_index(folder)
    wide = (folder / "model.keras").stat().st_size
    full = load_model(folder, backward=False, line_hashes=False)
    assert store_weights_as(folder, "float16") and not store_weights_as(folder, "float16")
    write_weight_index(folder)
    assert (folder / "model.keras").stat().st_size < 0.75 * wide
    with zipfile.ZipFile(folder / "model.keras") as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist()) and WEIGHTS_MEMBER in z.namelist()
    assert {dtype for _, dtype, _ in read_weight_index(folder)["arrays"].values()} == {"<f2"}
    half = load_model(folder, backward=False, line_hashes=False)
    assert half.stepper.out_w.dtype == np.float32
    np.testing.assert_allclose(half.stepper.out_w, full.stepper.out_w, rtol=1e-3, atol=1e-4)


def test_calibrate_stores_a_float32_model_as_the_config_says_and_records_it(tiny_root, tiny_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    folder = models / "onehot"
    store_weights_as(folder, "float32")
    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(models)).replace("train", overuse_poems=10)
    calibrate(load_model(folder, overuse=False), texts_by_split(load_corpus(cfg), False)["train"], cfg)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["weights_dtype"] == "float16"
    assert config["commands"][-1] == "poetry-lstm calibrate --mode onehot"
    assert {dtype for _, dtype, _ in read_weight_index(folder)["arrays"].values()} == {"<f2"}
    assert "float16" in (folder / "card.md").read_text(encoding="utf-8")
