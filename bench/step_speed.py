"""What else a training step could be made to cost: `python bench/step_speed.py [--steps 30] [--sampled 1024]`.

A pretraining step of the shipped network (the 五绝 copy's config.json model_args, Adam with clipnorm and the
accuracy metric as `train` compiles it, on the sampled softmax `train --sampled-softmax K` uses; `--sampled 0` for
the full one), batch 64 of 32-position windows, is timed beside the same step:
- at other batch sizes (`--batches 128,256`): the time per window is what counts, since an epoch is windows;
- with each LSTM unrolled over the 32 positions (`unroll=True`: no while-loop);
- on the full softmax, and the same under XLA (`jit_compile=True`; the sampled softmax's candidate sampler has no XLA
  kernel, so XLA is timed on the full softmax).
All run in this process, alternating in rounds of 5 steps, so a busy CPU slows each alike. Each row's ratio is its time
per window over the first row's, XLA's over the full-softmax row's. `train --form both` also feeds 24-position 五绝
windows to a network that finds line 2's end by its 。; the ratios, not the absolute times, are what carry over.
Unrolling and XLA change only the speed; the batch size changes what a step learns (docs/tuning.md round 16 measures
what a window teaches at 128 and 256).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WINDOW = 32


def compiled(model_args: dict, counts, *, sampled: int, unroll: bool = False, jit: bool = False):
    import keras

    from poetry_lstm.network import build_model, use_sampled_softmax

    plain = keras.layers.LSTM
    keras.layers.LSTM = functools.partial(plain, unroll=True) if unroll else plain  # build_model's L.LSTM
    try:
        model = build_model(**model_args)
    finally:
        keras.layers.LSTM = plain
    model.compile(optimizer=keras.optimizers.Adam(0.0003, clipnorm=1.0), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit)
    if sampled:
        use_sampled_softmax(model, sampled, counts)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "word2vec"))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant, in rounds of 5")
    parser.add_argument("--sampled", type=int, default=1024, help="0 times the full softmax throughout")
    parser.add_argument("--batches", default="128,256", help="other batch sizes to time, comma-separated")
    args = parser.parse_args()
    import numpy as np

    model_args = json.loads((Path(args.model) / "config.json").read_text(encoding="utf-8"))["model_args"]
    counts = json.loads((Path(args.model) / "vocab.json").read_text(encoding="utf-8")).get("counts", [])
    vocab = model_args["vocab_size"]
    if args.sampled and len(counts) != vocab:
        sys.exit(f"{args.model}/vocab.json has no training count for each of its {vocab} tokens, which the sampled "
                 "softmax draws by; give a model folder written by `train`, or --sampled 0.")
    base = f"batch 64{', sampled ' + str(args.sampled) if args.sampled else ', full softmax'}"
    variants = {base: dict(batch=64, sampled=args.sampled)}
    for b in (int(b) for b in args.batches.split(",") if b):
        variants[f"batch {b}"] = dict(batch=b, sampled=args.sampled)
    variants["unrolled"] = dict(batch=64, sampled=args.sampled, unroll=True)
    if args.sampled:
        variants["batch 64, full softmax"] = dict(batch=64, sampled=0)
    variants["XLA, full softmax"] = dict(batch=64, sampled=0, jit=True)
    rng = np.random.default_rng(0)
    nets = {}
    for name, v in variants.items():
        x = rng.integers(3, vocab, size=(v["batch"], WINDOW), dtype=np.int32)
        model = compiled(model_args, counts, sampled=v["sampled"], unroll=v.get("unroll", False),
                         jit=v.get("jit", False))
        nets[name] = (model, x, np.roll(x, -1, axis=1), v["batch"])
        for _ in range(2):  # trace (and for XLA compile) the step, warm the caches
            model.train_on_batch(x, nets[name][2])
    times = {name: [] for name in nets}
    for _ in range(max(1, args.steps // 5)):
        for name, (model, x, y, _) in nets.items():
            for _ in range(5):
                started = time.perf_counter()
                model.train_on_batch(x, y)
                times[name].append(time.perf_counter() - started)
    per_window = {name: statistics.median(times[name]) / nets[name][3] for name in nets}
    full = per_window.get("batch 64, full softmax", per_window[base])
    print(f"{model_args['layers']} × {model_args['units']} units, windows of {WINDOW}, {len(times[base])} steps each "
          "(median step; ratio of the time per window to the first row's, or for XLA to the full-softmax row's):")
    for name in nets:
        ref = full if name.startswith("XLA") else per_window[base]
        print(f"  {name:28s} {1000 * statistics.median(times[name]):7.1f} ms a step, "
              f"{1000 * per_window[name]:5.2f} ms a window   (ratio {per_window[name] / ref:.2f})")


if __name__ == "__main__":
    main()
