"""bench/int8_cost.py's rounding: what it measures is only as good as the round trip it applies."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SPEC = importlib.util.spec_from_file_location("int8_cost", Path(__file__).parent.parent / "bench" / "int8_cost.py")
int8_cost = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(int8_cost)


def test_each_column_keeps_its_own_precision_and_zeros_stay_zero():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(300, 4)).astype(np.float16)
    matrix[:, 1] *= 1e-3  # a column a thousand times smaller: a scale per matrix would round it all to 0
    matrix[:, 3] = 0
    back = int8_cost.int8_round_trip(matrix)
    assert back.dtype == np.float16 and back.shape == matrix.shape
    step = np.abs(matrix.astype(np.float32)).max(axis=0) / 127
    error = np.abs(back.astype(np.float32) - matrix.astype(np.float32)).max(axis=0)
    half_rounding = 127 * step / 1024  # the result is stored back as float16: 1 part in 2048 of the largest value
    assert (error[:3] <= step[:3] / 2 + half_rounding[:3]).all()
    assert np.count_nonzero(back[:, 1]) > 250 and not back[:, 3].any()
    assert not int8_cost.int8_round_trip(matrix, per_column=False)[:, 1].any()


def test_only_large_matrices_are_rounded_and_counted():
    rng = np.random.default_rng(1)
    big, small, bias = rng.normal(size=(200, 100)), rng.normal(size=(20, 30)), rng.normal(size=(100,))
    weights, int8_bytes, half_bytes = int8_cost.quantised([big, small, bias], per_column=True)
    assert weights[1] is small and weights[2] is bias and not np.array_equal(weights[0], big)
    assert (int8_bytes, half_bytes) == (200 * 100 + 4 * 100, 2 * 200 * 100)
