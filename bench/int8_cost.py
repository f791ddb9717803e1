"""What storing the weights in 8 bits would cost: `python bench/int8_cost.py [--form qijue] [--mode word2vec]`.

`models/` has a 100 MB budget and holds 97 MB at float16, so a larger network needs its weights in fewer bits.
This rounds every weight matrix of the shipped model (the LSTM kernels, the output layer, the embeddings) to
int8 and back, one symmetric scale per output column (and, for comparison, one scale per matrix), and scores
the held-out test poems as `poetry-lstm evaluate` does, beside the weights as stored, in this process. It
prints each perplexity, its ratio to the stored weights', and the bytes the matrices would take (int8 plus a
float32 scale per column) against float16. Nothing is written: the weights are set in memory. The round trip a
scale per column is the library's own (`poetry_lstm.weightsfile`), which `[model] weights_dtype = "int8"` stores.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poetry_lstm.weightsfile import dequantised, int8_columns, is_quantised  # noqa: E402


def int8_round_trip(matrix: np.ndarray, per_column: bool = True) -> np.ndarray:
    """`matrix` (rows, columns) rounded to 127 symmetric steps of its column's (or its own) largest magnitude."""
    if per_column:
        return dequantised(*int8_columns(matrix)).astype(matrix.dtype)
    x = matrix.astype(np.float32)
    largest = np.abs(x).max()
    if largest == 0:
        return matrix.copy()
    return (np.clip(np.round(x / largest * 127), -127, 127) * (largest / 127)).astype(matrix.dtype)


def quantised(weights: list[np.ndarray], per_column: bool) -> tuple[list[np.ndarray], int, int]:
    """(the weights with every large matrix round-tripped, its bytes at int8 + scales, its bytes at float16)."""
    out, int8_bytes, half_bytes = [], 0, 0
    for w in weights:
        if is_quantised(w):  # biases and the 32-column prosody tables stay as they are: a few KB
            out.append(int8_round_trip(w, per_column))
            int8_bytes += w.size + 4 * (w.shape[1] if per_column else 1)
            half_bytes += 2 * w.size
        else:
            out.append(w)
    return out, int8_bytes, half_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default="word2vec")
    parser.add_argument("--form", choices=("wujue", "qijue"), default="wujue")
    parser.add_argument("--config", default=None, help="a config file (its [paths] name the corpus and models)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N test poems (0 = all)")
    args = parser.parse_args()

    from poetry_lstm.config import load_config
    from poetry_lstm.evaluate import evaluation_inputs, model_scores
    from poetry_lstm.loading import load_model

    cfg = load_config(args.config).for_form(args.form)
    _, poems, _ = evaluation_inputs(cfg, args.mode, None, args.limit or None)
    folder = Path(cfg.paths.models_dir) / args.mode
    trained = load_model(folder, keras=True, overuse=False, line_hashes=False, backward=False)
    stored = trained.keras_model.get_weights()
    base = model_scores(trained, poems)["perplexity"]
    print(f"{folder}: {len(poems)} test poems; perplexity of lines 2–4 with the weights as stored: {base:.2f}")
    for name, per_column in (("int8, a scale per column", True), ("int8, a scale per matrix", False)):
        weights, int8_bytes, half_bytes = quantised(stored, per_column)
        trained.keras_model.set_weights(weights)
        ppl = model_scores(trained, poems)["perplexity"]
        print(f"{name:26s} perplexity {ppl:8.2f}  ratio {ppl / base:.4f}  "
              f"matrices {int8_bytes / 1e6:5.1f} MB against {half_bytes / 1e6:5.1f} MB at float16 "
              f"({int8_bytes / half_bytes:.2f}×)")


if __name__ == "__main__":
    main()
