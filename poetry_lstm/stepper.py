"""The trained network in NumPy: `stepper = stepper_from_file(path, vocab_size)`; `stepper.step(ids, state)`.

The decoder needs the weights, not Keras: `read_keras_weights` takes the arrays out of `model.keras`
(a zip holding a Keras config and an HDF5 weights file) with h5py, and `LstmStepper` runs them one
step at a time for a batch of candidates, so a poem never waits the seconds `import keras` takes on
a small CPU. NumPy and h5py only: `network.py` builds and trains the same graph in Keras.
"""
from __future__ import annotations

import ctypes
import io
import json
import mmap
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from .layout import SHAPES
from .weightsfile import SCALES, WEIGHTS_MEMBER, dequantised


def _has_layer(model, name: str) -> bool:
    try:
        model.get_layer(name)
    except ValueError:
        return False
    return True


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class LstmStepper:
    """The trained network as NumPy arrays, advanced one token at a time for a batch of states.

    Keras's LSTM: gates [i, f, c, o] = x @ W + h @ U + b; c' = f*c + i*tanh(g); h' = o*tanh(c').
    Dropout is off at inference, so this equals `model.predict` on the whole prefix.
    """

    def __init__(self, model):
        f32 = lambda w: np.asarray(w, dtype=np.float32)  # noqa: E731 -- no copy when the file holds float32 already
        if _has_layer(model, "condition_along") or (_has_layer(model, "line_two_end")
                                                    and not hasattr(model.get_layer("line_two_end"), "position")):
            # bench/joint_forms.py's and bench/title_condition.py's networks: measured in Keras, not shipped
            raise ValueError("a network that reads a condition vector or finds line 2's end itself: the stepper "
                             "runs the shipped kind only (one form, no condition)")
        self.embedding = f32(model.get_layer("embedding").get_weights()[0])
        self.cells = []
        while _has_layer(model, f"lstm_{len(self.cells)}"):
            self.cells.append([f32(w) for w in model.get_layer(f"lstm_{len(self.cells)}").get_weights()])
        self.out_w, self.out_b = (f32(w) for w in model.get_layer("next_char").get_weights())
        self.units = self.cells[0][1].shape[0]
        self.prosody = None
        self.rhyme_context = _has_layer(model, "line_two_end")
        # the input step of line 2's last character: 11 in a 五绝, 15 in a 七绝
        self.line_two_end = model.get_layer("line_two_end").position if self.rhyme_context else None
        if _has_layer(model, "prosody"):
            self.prosody = f32(model.get_layer("prosody").get_weights()[0])
            # in float32: weights stored as float16 would otherwise fold in float16
            group_w, group_b = (f32(w) for w in model.get_layer("group_scores").get_weights())
            spread = f32(model.get_layer("group_spread").get_weights()[0])  # (groups, vocab)
            # x@W + b + (x@G + g)@S = x@(W + G@S) + (b + g@S): the group scores fold into the output
            # layer once here, so a decoder step pays no extra product for them.
            self.out_w = f32(self.out_w + group_w @ spread)
            self.out_b = f32(self.out_b + group_b @ spread)

    def initial_state(self, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(h, c) per layer; with the rhyme context, then (steps fed, line 2's end features) too."""
        zeros = np.zeros((batch, self.units), np.float32)
        state = [(zeros, zeros) for _ in self.cells]
        if self.rhyme_context:
            state.append((np.zeros(batch, np.int64), np.zeros((batch, self.prosody.shape[1]), np.float32)))
        return state

    def step(self, ids: np.ndarray, state, logits: bool = True):
        """ids (batch,) → (log-probabilities (batch, vocab), new state); with `logits=False` only the
        state advances (None for the log-probabilities): a forced character needs no prediction."""
        x = self.embedding[ids]  # (batch, dim)
        if self.prosody is not None:
            x = np.concatenate([x, self.prosody[ids]] + ([state[-1][1]] if self.rhyme_context else []), axis=1)
        new_state = []
        for (kernel, recurrent, bias), (h, c) in zip(self.cells, state):
            z = x @ kernel + h @ recurrent + bias  # (batch, 4 * units)
            i, f, g, o = np.split(z, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            new_state.append((h, c))
            x = h
        if self.rhyme_context:  # the step that feeds line 2's last character keeps its features
            steps, end = state[-1]
            new_state.append((steps + 1, np.where((steps == self.line_two_end)[:, None], self.prosody[ids], end)))
        if not logits:
            return None, new_state
        logits = x @ self.out_w + self.out_b  # (batch, vocab)
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True)), new_state

    def top_hidden(self, state) -> np.ndarray:
        """(batch, units) the last LSTM layer's hidden state in `state` (which ends with the rhyme context's pair
        when the model reads one, so the last layer is found by count, not as state[-1])."""
        return state[len(self.cells) - 1][0]

    def run(self, ids: list[int], batch: int = 1):
        """Feed a prefix; returns (log-probabilities after its last token, state), for `batch` copies."""
        state = self.initial_state(batch)
        for t in ids:
            logp, state = self.step(np.full(batch, t, dtype=np.int64), state)
        return logp, state


# --- the weights out of a .keras file, without Keras ------------------------------------

_ALLOWED_LAYERS = {"InputLayer", "Embedding", "LSTM", "Dropout", "Dense", "Concatenate", "Add", "Activation",
                   "LineTwoEnd"}


def _snake(name: str) -> str:
    """Keras's `naming.to_snake_case` for class names: "InputLayer" → "input_layer", "LSTM" → "lstm"."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class _Layer:
    def __init__(self, weights: list[np.ndarray], position: int | None = None):
        self._weights = weights
        self.position = position  # a LineTwoEnd's, as the Keras layer has it

    def get_weights(self) -> list[np.ndarray]:
        return self._weights


class WeightsOnly:
    """Just enough of a Keras model (`get_layer(name).get_weights()`) for `LstmStepper`."""

    def __init__(self, layers: dict[str, list[np.ndarray]], positions: dict[str, int] | None = None):
        self.layers, self.positions = layers, positions or {}

    def get_layer(self, name: str) -> _Layer:
        if name not in self.layers:
            raise ValueError(f"No such layer: {name}")
        return _Layer(self.layers[name], self.positions.get(name))


INDEX_FILE = "weights_index.json"  # beside model.keras: where each array lies in it (`weight_index`)


def _weight_groups(config: dict):
    """(layer name, HDF5 group of its variables or None) per layer of a Keras 3 model config, checked.

    Keras stores layer i's variables under `layers/<snake class name>[_k]/…` (k counting earlier
    layers of the same class), LSTM ones under `…/cell/vars`. Raises ValueError on anything else.
    """
    used: dict[str, int] = {}
    for layer in config["config"]["layers"]:
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
            yield lc["name"], f"layers/{stored}/cell/vars"
        elif cls in ("Embedding", "Dense"):
            # next_char is softmax, or linear with group scores added before a softmax "probs"
            if cls == "Dense" and lc["name"] != "group_spread" and (
                    lc.get("activation") not in ("softmax", "linear") or not lc.get("use_bias", True)):
                raise ValueError("an output layer the NumPy stepper does not model")
            yield lc["name"], f"layers/{stored}/vars"
        elif cls == "Activation" and lc.get("activation") != "softmax":
            raise ValueError("an output activation the NumPy stepper does not model")
        elif cls == "LineTwoEnd":  # no weights, but the stepper must know it is there, and where it reads
            if lc.get("position") not in {s.line_two_end_step for s in SHAPES.values()}:
                raise ValueError("a rhyme context at another position")
            yield lc["name"], None


def weight_index(path: Path) -> dict:
    """Where each array of `model.keras` lies, read once with h5py: the weights member's CRC and size
    (so a changed file is noticed) and {dataset: [offset in the member, dtype, shape]}. Keras writes
    every array contiguous and uncompressed, so `read_keras_weights` can then map them straight out of
    the file; a member it cannot place that way gets no index."""
    import h5py

    with zipfile.ZipFile(path) as z:
        info = z.getinfo(WEIGHTS_MEMBER)
        data = z.read(WEIGHTS_MEMBER)
    arrays: dict[str, list] = {}

    def add(name, obj):
        if isinstance(obj, h5py.Dataset):
            offset = obj.id.get_offset()
            if offset is None or obj.chunks or obj.compression:
                raise ValueError(f"{name} is not one contiguous array")
            arrays[name] = [int(offset), obj.dtype.str, list(obj.shape)]

    with h5py.File(io.BytesIO(data), "r") as h5:
        h5.visititems(add)
    return {"member": WEIGHTS_MEMBER, "crc": info.CRC, "size": info.file_size, "stored": info.compress_type == 0,
            "arrays": arrays}


def _mapped_arrays(path: Path, info: zipfile.ZipInfo, index: dict):
    """dataset → array, mapped from the file without a copy or h5py; None when the index is not this file's."""
    if (not index.get("stored") or info.compress_type != zipfile.ZIP_STORED or index.get("crc") != info.CRC
            or index.get("size") != info.file_size):
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # the member's local header: its name and extra field precede the data
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")

    def array(name: str) -> np.ndarray:
        offset, dtype, shape = index["arrays"][name]
        count = int(np.prod(shape)) if shape else 1
        if offset + count * np.dtype(dtype).itemsize > info.file_size:
            raise ValueError(f"{name} lies outside the weights")
        return np.frombuffer(mapped, dtype=dtype, count=count, offset=start + offset).reshape(shape)

    return array


def _in_float32(array, exists):
    """dataset name → its array (`array(name)`), times its scales where `exists` finds them (an int8 matrix)."""
    def weight(name: str) -> np.ndarray:
        scale = f"{SCALES}/{name}"
        return dequantised(array(name), array(scale)) if exists(scale) else array(name)

    return weight


def read_keras_weights(path: Path, index: dict | None = None) -> dict[str, list[np.ndarray]]:
    """{layer name: weight arrays} of a Keras 3 `.keras` file, checked against its own config; an int8 matrix
    comes back in float32, times its scales (`weightsfile`).

    With this file's `weight_index`, the arrays are mapped straight out of the file (no h5py, no copy);
    without one, or with a stale one, h5py reads them. Raises ValueError on a layout it does not know.
    """
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
        info = z.getinfo(WEIGHTS_MEMBER)
        array = _mapped_arrays(path, info, index) if index else None
        if array is not None:
            names = set(index["arrays"])
            weight = _in_float32(array, names.__contains__)
            return {layer: [] if group is None else
                    [weight(f"{group}/{i}") for i in range(sum(n.startswith(f"{group}/") for n in names))]
                    for layer, group in _weight_groups(config)}
        weights_bytes = z.read(WEIGHTS_MEMBER)
    import h5py

    with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
        weight = _in_float32(lambda name: np.asarray(h5[name]), h5.__contains__)
        return {layer: [] if group is None else [weight(f"{group}/{i}") for i in range(len(h5[group]))]
                for layer, group in _weight_groups(config)}


def line_two_end_positions(path: Path) -> dict[str, int]:
    """{layer name: position} of the rhyme-context layers of a `.keras` file (checked by `_weight_groups`)."""
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    return {layer["config"]["name"]: layer["config"]["position"] for layer in config["config"]["layers"]
            if layer["class_name"] == "LineTwoEnd"}


def stepper_from_file(path: Path, vocab_size: int, index: dict | None = None) -> LstmStepper:
    """The stepper of `model.keras` (`index`: its `weight_index`, for the fast path), checked against the vocabulary."""
    layers = read_keras_weights(path, index)
    stepper = LstmStepper(WeightsOnly(layers, line_two_end_positions(path)))
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


def limit_blas_threads(n: int = 1) -> list[str]:
    """Set OpenBLAS (NumPy's BLAS) to `n` threads in this process; returns the libraries it set.

    The decoder multiplies a handful of rows by each weight matrix per character: far too little
    work to share between threads, and on a busy 2-core machine the threads spin against the
    other load. One thread makes a step ~10-30x faster there. Linux only (reads /proc/self/maps);
    elsewhere, or without OpenBLAS, it does nothing.
    """
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
