"""The sampled softmax of pretraining (`train --sampled-softmax K`): `python -m pytest tests/test_sampled.py -q`.

A real tiny Keras network learns on a sampled softmax; what it learns is measured on the full one, which
validation keeps. Then the real command trains a tiny model with it and writes a model folder.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from poetry_lstm.cli import cli
from poetry_lstm.loading import load_model
from poetry_lstm.network import build_model, use_full_softmax, use_sampled_softmax

VOCAB, PROSODY = 40, 6


def _network(dropout: float = 0.0):
    import keras

    rng = np.random.default_rng(3)
    model = build_model(VOCAB, "word2vec", units=16, layers=2, dropout=dropout, embedding_dim=8, prosody_dim=PROSODY,
                        vectors=rng.normal(size=(VOCAB, 8)).astype("float32"),
                        prosody=(rng.random((VOCAB, PROSODY)) < 0.2).astype("float32"))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(n: int = 64, length: int = 8):
    """Each next id is the id after it (mod VOCAB): learnable, and every class is a target somewhere."""
    start = np.random.default_rng(5).integers(0, VOCAB, size=(n, 1))
    ids = (start + np.arange(length + 1)) % VOCAB
    return ids[:, :-1].astype("int32"), ids[:, 1:].astype("int32")


def _full_loss(model, x, y) -> float:
    """Mean cross-entropy of the full softmax, computed here from the model's probabilities."""
    probs = model.predict(x, verbose=0)  # (batch, time, vocab)
    return float(-np.log(np.take_along_axis(probs, y[..., None], axis=-1)).mean())


def test_a_sampled_softmax_learns_what_the_full_softmax_measures():
    model, (x, y) = _network(), _data()
    before = {name: [w.copy() for w in model.get_layer(name).get_weights()]
              for name in ("embedding", "lstm_0", "next_char", "group_scores", "group_spread")}
    start = _full_loss(model, x, y)
    # a skewed proposal, as real character counts are: the correction for how often each is drawn must hold
    use_sampled_softmax(model, 8, counts=[5000 if i < 4 else 0 if i == 5 else 3 + i for i in range(VOCAB)])
    history = model.fit(x, y, batch_size=16, epochs=25, verbose=0, validation_data=(x, y))
    after = _full_loss(model, x, y)
    assert after < start - 1.0, (start, after)
    # validation is the full softmax, whatever the training step
    assert history.history["val_loss"][-1] == pytest.approx(after, abs=1e-3)
    changed = {name: any(not np.array_equal(a, b) for a, b in zip(ws, model.get_layer(name).get_weights()))
               for name, ws in before.items()}
    # the output layer, its group scores and the LSTMs learn; the frozen vectors and the fixed spread do not
    assert changed == {"embedding": False, "lstm_0": True, "next_char": True, "group_scores": True,
                       "group_spread": False}
    assert model.sampled_softmax == 8


def test_fit_steps_on_the_sampled_loss():
    """With one character drawn against each target the step's loss is a two-way softmax's, near log 2 for a fresh
    network, where the full one over 40 characters is near log 40: fit really trains on the sampled loss."""
    model, (x, y) = _network(), _data(16)
    full = _full_loss(model, x, y)
    use_sampled_softmax(model, 1, counts=range(VOCAB))
    logged = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"][0]
    assert full > 3.0 and logged < 0.5 * full, (full, logged)


def test_the_full_softmax_comes_back_for_fine_tuning():
    model, (x, y) = _network(), _data(16)
    use_sampled_softmax(model, 8, counts=range(VOCAB))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    use_full_softmax(model)
    expected = _full_loss(model, x, y)
    # one batch, no dropout: the loss fit reports is the full cross-entropy before its step
    logged = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"][0]
    assert logged == pytest.approx(expected, abs=1e-3) and model.sampled_softmax == 0
    assert "accuracy" in model.fit(x, y, batch_size=16, epochs=1, verbose=0).history


def test_a_count_for_every_character_is_needed():
    from poetry_lstm.errors import PoetryError

    with pytest.raises(PoetryError, match="a count for each of the 40 characters"):
        use_sampled_softmax(_network(), 8, counts=[1] * 39)


def _config(tmp_path, root) -> str:
    path = tmp_path / "cfg.toml"
    text = (root / "config.toml").read_text(encoding="utf-8").replace(str(root / "models"), str(tmp_path / "models"))
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_train_pretrains_on_a_sampled_softmax_and_fine_tunes_on_the_full_one(tiny_root, tmp_path):
    result = CliRunner().invoke(cli, ["--config", _config(tmp_path, tiny_root), "train", "--mode", "word2vec",
                                      "--epochs", "2", "--sampled-softmax", "8"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "models" / "word2vec"
    history = json.loads((folder / "history.json").read_text(encoding="utf-8"))
    pre = [r for r in history if r["phase"] == "pretrain"]
    tuned = [r for r in history if r["phase"] == "finetune"]
    assert len(pre) == 2 and all(r["sampled_softmax"] == 8 and r["perplexity"] is None for r in pre)
    assert tuned and all("sampled_softmax" not in r and r["perplexity"] > 1 for r in tuned)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["train"]["sampled_softmax"] == 8  # the run says how it was made
    trained = load_model(folder)  # the network is the usual one: the decoder reads it as any other
    assert trained.vocab and "a sampled softmax of 8 characters" in (folder / "card.md").read_text(encoding="utf-8")


def test_more_samples_than_characters_is_refused_in_one_sentence(tiny_root, tmp_path):
    result = CliRunner().invoke(cli, ["--config", _config(tmp_path, tiny_root), "train", "--mode", "word2vec",
                                      "--epochs", "1", "--sampled-softmax", "100000"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "fewer than the vocabulary's" in errors[0], result.output


def test_the_network_for_both_forms_pretrains_on_a_sampled_softmax(tiny_root, tmp_path):
    """The joint network (line 2's end found before each poem's first 。) learns on it too; both folders load."""
    from conftest import tiny_config

    from poetry_lstm.joint import train_joint

    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(tmp_path / "models")).replace(
        "train", epochs=2, steps_per_epoch=4, fine_tune_epochs=1, overuse_poems=0, sampled_softmax=8)
    outs = train_joint(cfg, "word2vec", command="poetry-lstm train --mode word2vec --form both --sampled-softmax 8",
                       log=lambda _: None)
    for out in outs:
        history = json.loads((out / "history.json").read_text(encoding="utf-8"))
        assert [r.get("sampled_softmax") for r in history] == [8, 8, None]
        assert all(r["val_perplexity"] > 1 for r in history) and load_model(out).vocab


def test_a_narrower_folder_that_differs_otherwise_is_refused_not_widened():
    """Only fewer units a layer is widened; a narrower network without the prosody features (or of another mode)
    is refused in the usual sentence instead of failing inside the widening."""
    from types import SimpleNamespace

    from poetry_lstm.errors import PoetryError
    from poetry_lstm.train import _only_narrower, warm_start

    mine = dict(vocab_size=VOCAB, mode="word2vec", units=16, layers=2, dropout=0.0, embedding_dim=8,
                prosody_dim=PROSODY)
    plain = build_model(**{**mine, "units": 8, "prosody_dim": 0})
    source = SimpleNamespace(keras_model=plain, path="narrow", config={"model_args": {**mine, "units": 8,
                                                                                        "prosody_dim": 0}})
    assert _only_narrower({**mine, "units": 8, "dropout": 0.2}, mine)
    assert not _only_narrower(source.config["model_args"], mine) and not _only_narrower({**mine, "units": 32}, mine)
    with pytest.raises(PoetryError, match="other shapes than this run's"):
        warm_start(_network(), [source], lambda _: None, mine)
