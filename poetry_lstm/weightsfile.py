"""The weights inside model.keras, stored at a chosen precision: `rewrite_as(path, "int8")`.

A `.keras` file is a zip holding a Keras config and an HDF5 weights member. Keras and the NumPy stepper compute
in float32 whatever is stored:
- float32 or float16: every float array cast; float16 halves the file (a value rounds by at most 1 part in 2048);
- int8: every matrix of over `QUANTISED_MIN` weights (the LSTM kernels, the output layer, the embedding) becomes
  int8 with one float32 scale per column (its largest magnitude ÷ 127), kept under `SCALES` at the matrix's own
  path; the rest (biases, the prosody tables) stays float16. It halves the matrices again, at 0.06% of held-out
  perplexity (`bench/int8_cost.py`), so a wider network fits `models/`.
Keras does not know the scales, so `float_copy` writes a float32 twin of such a file for Keras to read.
NumPy and h5py only.
"""
from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import files

WEIGHTS_MEMBER = "model.weights.h5"
SCALES = "int8_scales"  # top-level HDF5 group: SCALES/<a matrix's path> is that int8 matrix's (columns,) scale
QUANTISED_MIN = 10_000  # smaller arrays stay float16 under int8: a few KB, and a bias has no columns


def int8_columns(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 (rows, columns), float32 (columns,) scales): `matrix` in 127 symmetric steps of each column's largest
    magnitude; a column of zeros gets scale 1."""
    x = np.asarray(matrix, dtype=np.float32)
    largest = np.abs(x).max(axis=0)
    scale = np.where(largest > 0, largest / 127.0, 1.0).astype(np.float32)
    return np.clip(np.round(x / scale), -127, 127).astype(np.int8), scale


def dequantised(quantised: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float32 (rows, columns) of an int8 matrix and its (columns,) scale."""
    return quantised.astype(np.float32) * scale


def is_quantised(array: np.ndarray) -> bool:
    """Whether `dtype` "int8" stores `array` in int8 (a matrix of over QUANTISED_MIN weights)."""
    return array.ndim == 2 and array.size > QUANTISED_MIN


def as_stored(array: np.ndarray, dtype: str) -> np.ndarray:
    """`array` as it reads back after being stored as `dtype`, in its own dtype (train scores the stored model)."""
    if dtype == "int8":
        if is_quantised(array):
            return dequantised(*int8_columns(array)).astype(array.dtype)
        dtype = "float16"
    return array.astype(dtype).astype(array.dtype)


def _converted(data: np.ndarray, scale: np.ndarray | None, dtype: str):
    """(the array to store, its scale or None) for a dataset stored as `data` (with `scale` when int8)."""
    if data.dtype.kind not in "fi" or data.dtype.kind == "i" and scale is None:
        return data, None  # not a weight: stored as it was
    values = dequantised(data, scale) if scale is not None else data
    if dtype == "int8" and is_quantised(values):
        return (data, scale) if scale is not None else int8_columns(values)
    target = "float16" if dtype == "int8" else dtype
    return (values if values.dtype == np.dtype(target) else values.astype(target)), None


def converted_member(weights: bytes, dtype: str) -> tuple[bytes, bool]:
    """(the HDF5 weights member with its weights stored as `dtype`, whether anything changed). Every HDF5
    attribute Keras keeps is copied as it was."""
    import h5py

    out, changed = io.BytesIO(), False
    with h5py.File(io.BytesIO(weights), "r") as src, h5py.File(out, "w") as dst:
        dst.attrs.update(src.attrs)
        scales = src[SCALES] if SCALES in src else None

        def copy(name, obj):
            nonlocal changed
            if name == SCALES or name.startswith(SCALES + "/"):
                return
            if isinstance(obj, h5py.Group):
                dst.require_group(name).attrs.update(obj.attrs)
                return
            data = obj[()]
            scale = np.asarray(scales[name]) if scales is not None and name in scales else None
            stored, new_scale = _converted(data, scale, dtype)
            changed |= stored.dtype != data.dtype
            dst.create_dataset(name, data=stored).attrs.update(obj.attrs)
            if new_scale is not None:
                dst.create_dataset(f"{SCALES}/{name}", data=new_scale)

        src.visititems(copy)
    return out.getvalue(), changed


def _converted_file(path: Path, dtype: str) -> tuple[list[tuple[str, bytes]], bool]:
    """(the members of the `.keras` file `path` with its weights stored as `dtype`, whether anything changed)."""
    with zipfile.ZipFile(path) as z:
        members = [(info.filename, z.read(info.filename)) for info in z.infolist()]
    weights, changed = converted_member(dict(members)[WEIGHTS_MEMBER], dtype)
    return [(name, weights if name == WEIGHTS_MEMBER else data) for name, data in members], changed


def _write_members(out: Path, members: list[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:  # stored, not deflated: the stepper maps the arrays
        for name, data in members:
            z.writestr(name, data)


def rewrite_as(path: Path, dtype: str) -> bool:
    """Rewrite the `.keras` file `path` with its weights stored as `dtype` (`[model] weights_dtype`), atomically;
    True when the file changed. The weights index beside it must be written again after."""
    members, changed = _converted_file(path, dtype)
    if changed:
        with files.atomic_path(path, suffix=".keras") as tmp:
            _write_members(tmp, members)
    return changed


def holds_int8(path: Path) -> bool:
    """Whether the `.keras` file `path` stores any weights in int8 (Keras cannot read it as it is)."""
    import h5py

    with zipfile.ZipFile(path) as z:
        weights = z.read(WEIGHTS_MEMBER)
    with h5py.File(io.BytesIO(weights), "r") as h5:
        return SCALES in h5


@contextmanager
def float_copy(path: Path):
    """The path of a float32 twin of the `.keras` file `path` while the block runs (`path` itself when it holds no
    int8 weights), for `keras.saving.load_model`."""
    if not holds_int8(path):
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="poetry-lstm-float-"))
    try:
        _write_members(folder / path.name, _converted_file(path, "float32")[0])
        yield folder / path.name
    finally:
        shutil.rmtree(folder, ignore_errors=True)
