"""int8 weights with a scale per column (`weightsfile`): stored, read back by the stepper and by Keras alike,
and poems from them."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import tiny_config
from test_loading import _both, _compare, _stepper_arrays

from poetry_lstm import generate as G
from poetry_lstm import weightsfile
from poetry_lstm.calibrate import calibrate
from poetry_lstm.clean import load_corpus, texts_by_split
from poetry_lstm.loading import load_model, read_weight_index, store_weights_as, write_weight_index


def test_a_column_rounds_to_127_steps_of_its_largest_magnitude():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(400, 3)).astype(np.float32) * np.array([1.0, 0.01, 50.0], np.float32)
    matrix[:, 1] = 0
    matrix[7, 1] = -0.02  # a column whose only weight is negative: its step is its own, not a shared one
    q, scale = weightsfile.int8_columns(matrix)
    assert q.dtype == np.int8 and scale.dtype == np.float32 and scale.shape == (3,)
    assert np.abs(q).max(axis=0).tolist() == [127, 127, 127]
    back = weightsfile.dequantised(q, scale)
    assert (np.abs(back - matrix) <= scale / 2 + 1e-7).all()  # half a step, column by column
    assert back[7, 1] == pytest.approx(-0.02) and (back[:7, 1] == 0).all()
    zeros, unit = weightsfile.int8_columns(np.zeros((3, 2)))
    assert (zeros == 0).all() and (unit == 1).all()


def test_only_matrices_of_more_than_the_threshold_go_to_int8():
    big = np.random.default_rng(1).normal(size=(101, 100)).astype(np.float32)
    small = big[:10]
    assert weightsfile.is_quantised(big) and not weightsfile.is_quantised(small)
    assert not weightsfile.is_quantised(big.ravel())  # a bias or any 1-D array: no columns
    np.testing.assert_array_equal(weightsfile.as_stored(small, "int8"), small.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(weightsfile.as_stored(big, "int8"),
                                  weightsfile.dequantised(*weightsfile.int8_columns(big)))
    assert weightsfile.as_stored(big, "float16").dtype == np.float32


def _array_bytes(folder) -> int:
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
               for _, dtype, shape in read_weight_index(folder)["arrays"].values())


@pytest.fixture
def small_threshold(monkeypatch):
    """The tiny models' matrices hold a few thousand weights: quantise those of over 500."""
    monkeypatch.setattr(weightsfile, "QUANTISED_MIN", 500)


@pytest.mark.parametrize("mode", ["word2vec", "onehot"])
def test_int8_weights_read_back_alike_in_numpy_and_keras_and_make_poems(tiny_models, tmp_path, small_threshold,
                                                                        mode):
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    folder = models / mode
    half = load_model(folder, backward=False)
    half_bytes = _array_bytes(folder)
    assert store_weights_as(folder, "int8") and not store_weights_as(folder, "int8")
    write_weight_index(folder)
    assert _array_bytes(folder) < 0.7 * half_bytes  # the file: its config and HDF5's bookkeeping besides
    arrays = read_weight_index(folder)["arrays"]
    assert {dtype for _, dtype, _ in arrays.values()} == {"|i1", "<f4", "<f2"}  # the matrices, their scales, the rest
    for name, (_, dtype, shape) in arrays.items():  # a scale for each int8 matrix's column, and only for those
        scale = arrays.get(f"{weightsfile.SCALES}/{name}")
        assert (dtype == "|i1") == (scale is not None) and (scale is None or scale[2] == shape[1:]), name
    fast, keras_loaded = _both(folder)
    _compare(fast, keras_loaded)  # every array the same, the steps the same, Keras's predictions the same
    for name, quantised in _stepper_arrays(fast.stepper).items():
        reference = _stepper_arrays(half.stepper)[name]
        step = np.abs(reference).max(axis=0) / 127  # half a step of the largest magnitude, plus float16's rounding
        assert (np.abs(quantised - reference) <= step / 2 + 2e-3 * np.abs(reference).max()).all(), name
    poem = G.complete_poem(fast, "山水风月花", n=1, seed=0).poems[0]
    assert len(poem.lines) == 4
    (folder / "weights_index.json").unlink()  # h5py reads the file instead of the mapped arrays: the same weights
    for name, array in _stepper_arrays(load_model(folder, backward=False).stepper).items():
        np.testing.assert_array_equal(array, _stepper_arrays(fast.stepper)[name], err_msg=name)


def test_int8_weights_go_back_to_float16_without_their_scales(tiny_models, tmp_path, small_threshold):
    folder = tmp_path / "word2vec"
    shutil.copytree(tiny_models / "word2vec", folder)
    store_weights_as(folder, "int8")
    write_weight_index(folder)
    quantised = _stepper_arrays(load_model(folder, line_hashes=False, backward=False).stepper)
    assert store_weights_as(folder, "float16")
    write_weight_index(folder)
    assert {dtype for _, dtype, _ in read_weight_index(folder)["arrays"].values()} == {"<f2"}
    assert not weightsfile.holds_int8(folder / "model.keras")
    for name, array in _stepper_arrays(load_model(folder, line_hashes=False, backward=False).stepper).items():
        # float16's rounding: 1 part in 2048 of a weight (the output layer sums the group scores into it)
        np.testing.assert_allclose(array, quantised[name], rtol=0, atol=1e-3 * np.abs(quantised[name]).max(),
                                   err_msg=name)


def test_calibrate_stores_int8_when_the_config_says_and_the_card_says_how(tiny_root, tiny_models, tmp_path,
                                                                          small_threshold):
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    folder = models / "word2vec"
    cfg = tiny_config(tiny_root).replace("paths", models_dir=str(models)).replace("train", overuse_poems=10)
    cfg = cfg.replace("model", weights_dtype="int8")
    calibrate(load_model(folder, overuse=False), texts_by_split(load_corpus(cfg), False)["train"], cfg)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["weights_dtype"] == "int8" and weightsfile.holds_int8(folder / "model.keras")
    assert "|i1" in {dtype for _, dtype, _ in read_weight_index(folder)["arrays"].values()}
    assert "int8 with a float32 scale per column" in (folder / "card.md").read_text(encoding="utf-8")
