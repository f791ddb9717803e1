"""Load a trained model without Keras: `trained = load_model_fast("models/word2vec")`.

The decoder needs the weights, not Keras: `load_model_fast` reads the arrays out of `model.keras`
(a zip holding a Keras config and an HDF5 weights file) with h5py and builds the same NumPy
`LstmStepper` the decoder always uses, so a poem does not wait the several seconds `import keras`
takes on a small CPU. Anything it does not recognise falls back to `load_model_dir` (Keras, safe
mode). Likewise `load_vectors_fast` reads gensim's word2vec binary format with NumPy.
"""
from __future__ import annotations

import importlib.util
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from . import files
from .errors import PoetryError
from .model import LINE_TWO_END, MODEL_FILES, LstmStepper, TrainedModel, Vocab, load_model_dir


def rebuild_command(folder: Path) -> str:
    """The command that rebuilds the model folder `folder`, quoted for a message: training writes
    `<models_dir>/<mode>/`, so the folder's name is its mode."""
    name = Path(folder).name
    if name in ("word2vec", "onehot"):
        return f"`poetry-lstm train --mode {name}`"
    return f"`poetry-lstm train --mode word2vec` (or `--mode onehot`) with [paths] models_dir = \"{Path(folder).parent}\""


def missing_model_message(folder: Path, mode: str) -> str | None:
    """None if `folder` holds a model, else a sentence naming the command that makes one."""
    missing = [f for f in MODEL_FILES if not (folder / f).exists()]
    if not missing:
        return None
    what = f"No {mode} model at {folder}" if not folder.is_dir() else f"The model folder {folder} lacks {', '.join(missing)}"
    return f"{what}; make one with `poetry-lstm train --mode {mode}`."


# --- the model without Keras ---------------------------------------------------------------

_ALLOWED_LAYERS = {"InputLayer", "Embedding", "LSTM", "Dropout", "Dense", "Concatenate", "Add", "Activation", "LineTwoEnd"}


def _snake(name: str) -> str:
    """Keras's `naming.to_snake_case` for class names: "InputLayer" → "input_layer", "LSTM" → "lstm"."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class _Layer:
    def __init__(self, weights: list[np.ndarray]):
        self._weights = weights

    def get_weights(self) -> list[np.ndarray]:
        return self._weights


class WeightsOnly:
    """Just enough of a Keras model (`get_layer(name).get_weights()`) for `LstmStepper`."""

    def __init__(self, layers: dict[str, list[np.ndarray]]):
        self.layers = layers

    def get_layer(self, name: str) -> _Layer:
        if name not in self.layers:
            raise ValueError(f"No such layer: {name}")
        return _Layer(self.layers[name])


def read_keras_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """{layer name: weight arrays} of a Keras 3 `.keras` file, checked against its own config.

    Keras stores layer i's variables under `layers/<snake class name>[_k]/…` (k counting earlier
    layers of the same class), LSTM ones under `…/cell/vars`. Raises ValueError on anything else.
    """
    import h5py

    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
        weights_bytes = z.read("model.weights.h5")
    layers = config["config"]["layers"]
    out: dict[str, list[np.ndarray]] = {}
    used: dict[str, int] = {}
    with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
        for layer in layers:
            cls, lc = layer["class_name"], layer["config"]
            if cls not in _ALLOWED_LAYERS:
                raise ValueError(f"unexpected layer {cls}")
            stored = _snake(cls)
            if stored in used:
                used[stored] += 1
                stored = f"{stored}_{used[stored]}"
            else:
                used[stored] = 0
            if cls == "LSTM":
                if (lc.get("activation"), lc.get("recurrent_activation"), lc.get("use_bias"), lc.get("go_backwards"),
                        lc.get("unroll", False)) != ("tanh", "sigmoid", True, False, False):
                    raise ValueError("an LSTM the NumPy stepper does not model")
                group = h5[f"layers/{stored}/cell/vars"]
            elif cls in ("Embedding", "Dense"):
                # next_char is softmax, or linear with group scores added before a softmax "probs"
                if cls == "Dense" and lc["name"] != "group_spread" and (
                        lc.get("activation") not in ("softmax", "linear") or not lc.get("use_bias", True)):
                    raise ValueError("an output layer the NumPy stepper does not model")
                group = h5[f"layers/{stored}/vars"]
            elif cls == "Activation" and lc.get("activation") != "softmax":
                raise ValueError("an output activation the NumPy stepper does not model")
            elif cls == "LineTwoEnd":  # no weights, but the stepper must know it is there
                if lc.get("position") != LINE_TWO_END:
                    raise ValueError("a rhyme context at another position")
                out[lc["name"]] = []
                continue
            else:
                continue
            out[lc["name"]] = [np.asarray(group[str(i)]) for i in range(len(group))]
    return out


def stepper_from_file(path: Path, vocab_size: int) -> LstmStepper:
    layers = read_keras_weights(path)
    stepper = LstmStepper(WeightsOnly(layers))
    width = stepper.embedding.shape[1]
    units = stepper.units
    if stepper.embedding.shape[0] != vocab_size or stepper.out_w.shape != (units, vocab_size) or not stepper.cells:
        raise ValueError("weights do not match the vocabulary")
    if stepper.prosody is not None:  # group scores of another shape already failed to fold into out_w
        if stepper.prosody.shape[0] != vocab_size:
            raise ValueError("prosody weights do not match the vocabulary")
        width += stepper.prosody.shape[1] * (2 if stepper.rhyme_context else 1)
    for kernel, recurrent, bias in stepper.cells:
        if kernel.shape != (width, 4 * units) or recurrent.shape != (units, 4 * units) or bias.shape != (4 * units,):
            raise ValueError("LSTM weights of unexpected shape")
        width = units
    return stepper


def load_model_fast(path: str | Path) -> TrainedModel:
    """A `TrainedModel` whose stepper comes straight from the weights file (`keras_model` is None).

    Falls back to `load_model_dir` (Keras, safe mode) when the file is not the layout we know, so
    a Keras release that moves its arrays costs start-up time, not wrong poems; tests/test_weights.py
    fails on such a fallback for the shipped models. Raises PoetryError naming the command that
    rebuilds the folder for a missing or broken model.
    """
    path = Path(path)
    if missing_model_message(path, path.name):
        return load_model_dir(path)  # raises its PoetryError naming the command
    vocab = Vocab.load(path / "vocab.json")
    config = files.read_json(path / "config.json", "model config", fix=f"run {rebuild_command(path)} again")
    if not isinstance(config, dict) or not isinstance(config.get("model_args"), dict) or "mode" not in config["model_args"]:
        raise PoetryError(f"The model config {path / 'config.json'} is corrupt (no model_args); run {rebuild_command(path)} again.")
    try:
        stepper = stepper_from_file(path / "model.keras", len(vocab))
    except (ValueError, KeyError, IndexError, TypeError, OSError, zipfile.BadZipFile) as exc:
        # Not a zip (a torn or foreign file): Keras cannot read it either, so say so now instead of after
        # TensorFlow's 10-second start-up. Another layout (a newer Keras) is Keras's to read.
        if isinstance(exc, zipfile.BadZipFile) or importlib.util.find_spec("keras") is None:
            raise PoetryError(f"The model file {path / 'model.keras'} cannot be read ({exc.__class__.__name__}); restore it with "
                              f"`git checkout -- {path}` or run {rebuild_command(path)} again.") from None
        return load_model_dir(path)
    return TrainedModel(path, None, vocab, config, stepper)


def limit_blas_threads(n: int = 1) -> list[str]:
    """Set OpenBLAS (NumPy's BLAS) to `n` threads in this process; returns the libraries it set.

    The decoder multiplies a handful of rows by each weight matrix per character: far too little
    work to share between threads, and on a busy 2-core machine the threads spin against the
    other load. One thread makes a step ~10-30x faster there. Linux only (reads /proc/self/maps);
    elsewhere, or without OpenBLAS, it does nothing.
    """
    import ctypes
    import os

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {line.split(None, 5)[-1].strip() for line in f if "openblas" in line.lower()}
    except OSError:
        return []
    done = []
    for path in sorted(p for p in paths if os.path.isfile(p)):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("openblas_set_num_threads", "openblas_set_num_threads64_", "scipy_openblas_set_num_threads64_",
                     "scipy_openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                done.append(path)
                break
    return done


# --- skip-gram vectors without gensim ----------------------------------------------------

class CharVectors:
    """The part of gensim's KeyedVectors the page and `theme_keywords` use."""

    def __init__(self, keys: list[str], vectors: np.ndarray):
        self.index_to_key = list(keys)
        self.key_to_index = {k: i for i, k in enumerate(self.index_to_key)}
        self.vectors = vectors.astype(np.float32)
        self.vector_size = vectors.shape[1]
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self._unit = self.vectors / np.maximum(norms, 1e-12)

    def __contains__(self, key: str) -> bool:
        return key in self.key_to_index

    def __getitem__(self, key: str) -> np.ndarray:
        return self.vectors[self.key_to_index[key]]

    def most_similar(self, key: str, topn: int = 10, restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """Cosine neighbours of `key` among the first `restrict_vocab` keys, the key itself left out (as gensim does)."""
        i = self.key_to_index[key]
        sims = self._unit[:restrict_vocab] @ self._unit[i]
        order = np.argsort(-sims, kind="stable")
        return [(self.index_to_key[j], float(sims[j])) for j in order if j != i][:topn]


def read_word2vec_binary(path: Path) -> CharVectors:
    """The word2vec C binary format gensim writes: a "count dim" line, then `word ` + float32s."""
    data = Path(path).read_bytes()
    end = data.index(b"\n")
    count, dim = (int(x) for x in data[:end].split())
    pos, keys, rows = end + 1, [], np.empty((count, dim), np.float32)
    for i in range(count):
        space = data.index(b" ", pos)
        keys.append(data[pos:space].decode("utf-8").lstrip("\n"))
        pos = space + 1
        rows[i] = np.frombuffer(data, dtype="<f4", count=dim, offset=pos)
        pos += 4 * dim
    if pos < len(data) and data[pos:].strip():
        raise ValueError("trailing bytes")
    return CharVectors(keys, rows)


def load_vectors_fast(folder: str | Path):
    """Vectors from `<folder>/vectors.bin`, by NumPy; gensim's reader if ours does not understand it."""
    path = Path(folder) / "vectors.bin"
    if not path.exists():
        raise PoetryError(f"No character vectors at {path}; run `poetry-lstm train --mode word2vec`.")
    try:
        return read_word2vec_binary(path)
    except (ValueError, UnicodeDecodeError, IndexError) as exc:
        if importlib.util.find_spec("gensim") is None:  # the light install: no gensim reader to try
            raise PoetryError(f"The vectors {path} are corrupt ({exc.__class__.__name__}); "
                              "run `poetry-lstm train --mode word2vec --retrain-vectors`.") from None
        from .vectors import load_vectors
        return load_vectors(folder)
