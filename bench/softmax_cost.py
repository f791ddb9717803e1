"""How much of a training step the ~8,400-way softmax takes: `python bench/softmax_cost.py [--steps 60]`.

The meaning issue asks whether a cheaper softmax (sampled in training, or adaptive: the frequent characters in
a small head) would buy more epochs in the same hours. This times training steps of the shipped word2vec
network (its config.json's model_args, batch 64, 24 positions, Adam with clipnorm, sparse cross-entropy, as
`train` compiles it) against the same network whose output layer has only `--head` classes: the most a
cheaper softmax could save, since an adaptive one still pays for its head, and either pays something for the
rest. Both run in this process, alternating, so a busy CPU slows both alike; it prints the ratio, and how
much of the training text the `--head` most frequent characters cover (what an adaptive head would hold).
`--units N` also times the full network at N units a layer, for what a bigger model costs a step;
`--sampled K` times the shipped network trained on a sampled softmax of K characters a step
(`network.use_sampled_softmax`, what `train --sampled-softmax K` does): the saving actually bought; with `--units`
too, the bigger network on it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def compiled(args: dict, vocab_size: int, sampled: int = 0, counts=()):
    import keras

    from poetry_lstm.network import build_model, use_sampled_softmax

    model = build_model(**{**args, "vocab_size": vocab_size})
    model.compile(optimizer=keras.optimizers.Adam(0.002, clipnorm=1.0), loss="sparse_categorical_crossentropy")
    if sampled:
        use_sampled_softmax(model, sampled, counts)
    return model


def step_seconds(model, x, y, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(x, y)
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "word2vec"))
    parser.add_argument("--head", type=int, default=1024, help="classes of the cheap output layer")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per network, in rounds of 10")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--units", type=int, default=0, help="also time the full network at this many units")
    parser.add_argument("--sampled", type=int, default=0,
                        help="also time the shipped network on a sampled softmax of this many characters")
    args = parser.parse_args()
    import numpy as np

    config = json.loads((Path(args.model) / "config.json").read_text(encoding="utf-8"))
    model_args = config["model_args"]
    counts = json.loads((Path(args.model) / "vocab.json").read_text(encoding="utf-8")).get("counts", [])
    full_v = model_args["vocab_size"]
    rng = np.random.default_rng(0)
    nets = {}
    variants = [("full", full_v, model_args), ("head", args.head, model_args)]
    if args.units:
        variants.append((f"{args.units} units", full_v, {**model_args, "units": args.units}))
    if args.sampled:
        variants.append((f"sampled {args.sampled}", full_v, model_args))
    if args.sampled and args.units:
        variants.append((f"sampled {args.sampled}, {args.units} units", full_v, {**model_args, "units": args.units}))
    for name, v, net_args in variants:
        x = rng.integers(3, v, size=(args.batch, 24), dtype=np.int32)
        sampled = args.sampled if name.startswith("sampled") else 0
        nets[name] = (compiled(net_args, v, sampled, counts), x, np.roll(x, -1, axis=1))
        step_seconds(*nets[name], 3)  # build the graph, warm the caches
    times = {name: [] for name in nets}
    for _ in range(max(1, args.steps // 10)):  # alternate, so load on the machine hits both alike
        for name, (model, x, y) in nets.items():
            times[name] += step_seconds(model, x, y, 10)
    full, head = (statistics.median(times[n]) for n in ("full", "head"))
    ranked = sorted(counts, reverse=True)
    covered = sum(ranked[:args.head]) / max(sum(ranked), 1)
    print(f"median training step, batch {args.batch} × 24, {len(times['full'])} steps each:")
    print(f"  full softmax, {full_v} classes:   {1000 * full:7.1f} ms")
    print(f"  output of {args.head} classes:        {1000 * head:7.1f} ms   (ratio to full {head / full:.2f})")
    print(f"  at most {full / head:.2f}× the steps in the same hours; the {args.head} most frequent characters "
          f"cover {covered:.1%} of the training text")
    if args.units:
        bigger = statistics.median(times[f"{args.units} units"])
        print(f"  full softmax, {args.units} units a layer ({model_args['units']} shipped): {1000 * bigger:7.1f} ms "
              f"(ratio to full {bigger / full:.2f})")
    if args.sampled:
        cheap = statistics.median(times[f"sampled {args.sampled}"])
        print(f"  sampled softmax of {args.sampled} characters: {1000 * cheap:7.1f} ms   (ratio to full "
              f"{cheap / full:.2f}): {full / cheap:.2f}× the steps in the same hours")
    if args.sampled and args.units:
        both = statistics.median(times[f"sampled {args.sampled}, {args.units} units"])
        print(f"  sampled softmax, {args.units} units a layer: {1000 * both:7.1f} ms   (ratio to the shipped "
              f"network's full step {both / full:.2f})")


if __name__ == "__main__":
    main()
