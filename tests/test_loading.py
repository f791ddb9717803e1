"""The Keras-free loader pinned against Keras: `python -m pytest tests/test_weights.py -q`.

`weights.load_model_fast` reads the arrays out of Keras's private HDF5 layout inside `model.keras`
(`layers/lstm/cell/vars/0` …). A Keras release that moves them must not go unnoticed, so every
model here, the shipped `models/word2vec` and `models/onehot` (whichever are present) and a tiny
freshly trained one of each mode, is loaded both ways and compared: every array of the NumPy
stepper, then the log-probabilities of each step of a few poems, from the two steppers and from
`keras_model.predict` itself. `load_model_fast` falls back to Keras when it meets a layout it does
not know; the tests fail on that fallback instead of passing through it.
"""
from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, synthetic_poems

from poetry_lstm.errors import PoetryError
from poetry_lstm.loading import load_model
from poetry_lstm.stepper import LstmStepper, read_keras_weights

SHIPPED = ROOT / "models"
MODES = ("word2vec", "onehot")
# A few poems as the decoder meets them: the start token, then the characters one by one.
# Synthetic (conftest's common characters in the quatrain's shape): the repository ships no poem texts.
POEMS = ["床前明月光，" + synthetic_poems(1, seed=3)[0][6:]] + synthetic_poems(2, seed=11)
ATOL = 1e-5  # on log-probabilities: float32 arithmetic in another order, nothing more


def _shipped(mode: str) -> Path:
    folder = SHIPPED / mode
    if not (folder / "model.keras").exists():
        pytest.skip(f"no shipped model at {folder} (make one with `poetry-lstm train --mode {mode}`)")
    return folder


def _both(folder: Path):
    """(fast, keras) loads of one folder; the fast one must not have fallen back to Keras."""
    fast, keras_loaded = load_model(folder), load_model(folder, keras=True)
    assert fast.keras_model is None, (
        f"load_model({folder}) fell back to Keras: weights.read_keras_weights no longer understands this model.keras "
        "(a Keras release moved its arrays?); fix the reader")
    assert keras_loaded.keras_model is not None
    assert fast.vocab == keras_loaded.vocab and fast.config == keras_loaded.config
    return fast, keras_loaded


def _stepper_arrays(stepper: LstmStepper) -> dict[str, np.ndarray]:
    arrays = {"embedding": stepper.embedding, "out_w": stepper.out_w, "out_b": stepper.out_b}
    for i, cell in enumerate(stepper.cells):
        arrays.update({f"lstm_{i}.kernel": cell[0], f"lstm_{i}.recurrent": cell[1], f"lstm_{i}.bias": cell[2]})
    if stepper.prosody is not None:
        arrays["prosody"] = stepper.prosody
    return arrays


def _step_log_probs(stepper: LstmStepper, ids: list[int]) -> np.ndarray:
    """(len(ids), vocab): the log-probabilities after each prefix, one stepper step at a time."""
    state, rows = stepper.initial_state(1), []
    for t in ids:
        logp, state = stepper.step(np.array([t]), state)
        rows.append(logp[0])
    return np.stack(rows)


def _compare(fast, keras_loaded) -> None:
    a, b = fast.stepper, keras_loaded.stepper
    assert ((a.units, len(a.cells), a.rhyme_context, a.prosody is None)
            == (b.units, len(b.cells), b.rhyme_context, b.prosody is None))
    arrays_a, arrays_b = _stepper_arrays(a), _stepper_arrays(b)
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype == np.float32, name
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    model = keras_loaded.keras_model
    for poem in POEMS:
        ids = fast.vocab.encode(poem)[:24]  # (24,) the inputs of the 24 predictions
        steps_fast, steps_keras = _step_log_probs(a, ids), _step_log_probs(b, ids)  # (24, vocab) each
        np.testing.assert_allclose(steps_fast, steps_keras, rtol=0, atol=ATOL, err_msg=poem)
        logp_run, _ = a.run(ids)  # the decoder's one-call form: after the whole prefix
        np.testing.assert_allclose(logp_run[0], steps_fast[-1], rtol=0, atol=ATOL)
        probs = model.predict(np.array([ids], dtype=np.int32), verbose=0)[0]  # (24, vocab)
        assert probs.shape == (len(ids), len(fast.vocab))
        # Keras's float32 softmax rounds the smallest probabilities, so log-probabilities are compared
        # where the model gives a character a real chance (> 1e-6), at every position loosely…
        real = probs > 1e-6
        np.testing.assert_allclose(steps_fast[real], np.log(probs[real]), rtol=0, atol=1e-4, err_msg=poem)
        # …and within ATOL at the last position of prefixes that end inside lines 1, 2, 3 and 4
        # (the position after line 2 also exercises the rhyme context).
        for length in (3, 10, 16, 22):
            logp, _ = a.run(ids[:length])  # (1, vocab)
            last = model.predict(np.array([ids[:length]], dtype=np.int32), verbose=0)[0, -1]  # (vocab,)
            real = last > 1e-6
            assert real.sum() >= 10, (poem, length)
            np.testing.assert_allclose(logp[0][real], np.log(last[real]), rtol=0, atol=ATOL,
                                       err_msg=f"{poem} [:{length}]")


@pytest.mark.parametrize("mode", MODES)
def test_shipped_model_loads_alike_without_keras(mode):
    _compare(*_both(_shipped(mode)))


@pytest.mark.parametrize("mode", MODES)
def test_fresh_model_loads_alike_without_keras(tiny_models, mode):
    _compare(*_both(tiny_models / mode))


def test_every_array_in_the_weights_file_is_read(tiny_models):
    """The reader's layer names and array counts are the Keras model's own, weight for weight."""
    fast, keras_loaded = _both(tiny_models / "word2vec")
    layers = read_keras_weights(tiny_models / "word2vec" / "model.keras")
    model = keras_loaded.keras_model
    with_weights = {layer.name for layer in model.layers if layer.get_weights()}
    assert with_weights <= set(layers), with_weights - set(layers)
    for name in with_weights:
        ours, theirs = layers[name], model.get_layer(name).get_weights()
        assert len(ours) == len(theirs), name
        for x, y in zip(ours, theirs):
            np.testing.assert_array_equal(x, y, err_msg=name)


def _rewrite_weights(model_file: Path, edit) -> None:
    """Apply `edit(h5py.File)` to the weights inside a copy of a `.keras` zip, in place."""
    import h5py

    with zipfile.ZipFile(model_file) as z:
        members = {name: z.read(name) for name in z.namelist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        edit(h5)
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(model_file, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_an_unknown_layout_is_refused_not_misread(tiny_models, tmp_path):
    """A moved group is a KeyError for the reader (so load_model_fast falls back, and the tests
    above fail); arrays swapped inside their group fail the shape checks or the comparison."""
    from poetry_lstm.stepper import stepper_from_file

    folder = tmp_path / "onehot"
    shutil.copytree(tiny_models / "onehot", folder)
    vocab_size = len(json.loads((folder / "vocab.json").read_text(encoding="utf-8"))["tokens"])
    stepper_from_file(folder / "model.keras", vocab_size)  # the untouched copy reads
    _rewrite_weights(folder / "model.keras", lambda h5: h5.move("layers/lstm/cell/vars", "layers/lstm/cell/variables"))
    with pytest.raises(KeyError):
        read_keras_weights(folder / "model.keras")

    shutil.rmtree(folder)
    shutil.copytree(tiny_models / "onehot", folder)

    def swap_kernels(h5):  # kernel (in, 4u) and recurrent (u, 4u): same shape only when in == u
        vars_ = h5["layers/lstm_1/cell/vars"]
        k, r = np.asarray(vars_["0"]), np.asarray(vars_["1"])
        del vars_["0"], vars_["1"]
        vars_["0"], vars_["1"] = r, k

    _rewrite_weights(folder / "model.keras", swap_kernels)  # layer 2: both (units, 4 units), a silent misread
    fast = load_model(folder, line_hashes=False)  # only onehot/ was copied
    assert fast.keras_model is None  # the reader cannot tell…
    with pytest.raises(AssertionError):  # …but the comparison with the original weights can
        _compare(fast, load_model(tiny_models / "onehot", keras=True))


def test_broken_config_names_the_command(tiny_models, tmp_path):
    folder = tmp_path / "word2vec"
    shutil.copytree(tiny_models / "word2vec", folder)
    for content in ("{truncated", '{"no_model_args": 1}'):
        (folder / "config.json").write_text(content, encoding="utf-8")
        with pytest.raises(PoetryError,
                           match=r"model config .*run `poetry-lstm train --mode word2vec` again\.$") as info:
            load_model(folder)
        assert "\n" not in str(info.value)


def test_a_torn_model_file_fails_at_once_without_starting_tensorflow(tmp_path, tiny_models):
    import subprocess
    import sys

    shutil.copytree(tiny_models / "onehot", tmp_path / "onehot")
    (tmp_path / "onehot" / "model.keras").write_bytes(b"not a zip")
    code = ("import sys\nfrom poetry_lstm.errors import PoetryError\nfrom poetry_lstm.loading import load_model\n"
            f"try:\n    load_model({str(tmp_path / 'onehot')!r})\nexcept PoetryError as e:\n    print(e)\n"
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parent.parent)
    message, tf_loaded = done.stdout.strip().splitlines()
    assert "model.keras cannot be read (BadZipFile)" in message and "`poetry-lstm train --mode onehot`" in message
    assert tf_loaded == "False"


MODELS_LIMIT = 100_000_000  # bytes: issues 16 and 18's budget for all of models/, the 七绝 models included


def test_the_shipped_models_fit_in_their_100_mb():
    """Checkpoints (models/.train-*) are gitignored; everything else under models/ is shipped."""
    shipped = [p for p in SHIPPED.rglob("*")
               if p.is_file() and not any(part.startswith(".") for part in p.relative_to(SHIPPED).parts)]
    if not any(p.name == "model.keras" for p in shipped):
        pytest.skip("no shipped model")
    total = sum(p.stat().st_size for p in shipped)
    assert total <= MODELS_LIMIT, f"models/ ships {total / 1e6:.2f} MB, over its {MODELS_LIMIT / 1e6:.0f} MB"


def test_the_weights_map_out_of_the_file_by_their_index_and_a_stale_index_is_ignored(tiny_models, tmp_path):
    from poetry_lstm.loading import read_weight_index, write_weight_index
    from poetry_lstm.stepper import weight_index

    folder = tmp_path / "onehot"
    shutil.copytree(tiny_models / "onehot", folder)
    index = read_weight_index(folder)  # training wrote it
    assert index == weight_index(folder / "model.keras") and index["stored"]
    mapped, read = read_keras_weights(folder / "model.keras", index), read_keras_weights(folder / "model.keras")
    assert mapped.keys() == read.keys()
    for name in read:
        assert len(mapped[name]) == len(read[name])
        for a, b in zip(mapped[name], read[name]):
            assert a.dtype == b.dtype and np.array_equal(a, b)
            if a.size:
                assert not a.flags.owndata  # a view of the mapped file, not a copy
    # An index of another file (its CRC) or one pointing past the weights is not trusted: h5py reads instead.
    stale = {**index, "crc": index["crc"] ^ 1}
    assert all(not a.size or a.flags.owndata for arrays in read_keras_weights(folder / "model.keras", stale).values()
               for a in arrays)
    first = next(iter(index["arrays"]))
    beyond = {**index, "arrays": {**index["arrays"], first: [index["size"], "<f4", [4]]}}
    with pytest.raises(ValueError, match="outside the weights"):
        read_keras_weights(folder / "model.keras", beyond)
    (folder / "weights_index.json").write_text("{torn", encoding="utf-8")
    assert read_weight_index(folder) is None
    _compare(load_model(folder, line_hashes=False), load_model(tiny_models / "onehot", keras=True))
    assert write_weight_index(folder) and read_weight_index(folder) == index


def test_a_poem_needs_neither_tensorflow_nor_h5py(tiny_models):
    import subprocess
    import sys

    code = ("import sys\nfrom poetry_lstm.loading import load_model\nfrom poetry_lstm.generate import complete_poem\n"
            f"m = load_model({str(tiny_models / 'word2vec')!r})\ncomplete_poem(m, '白日依山尽', n=1)\n"
            "print('tensorflow' in sys.modules, 'h5py' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parent.parent)
    assert done.stdout.split() == ["False", "False", "False"], done.stderr[-500:]
