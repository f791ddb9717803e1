"""Training throughput, tutorial one-hot windows vs our pipeline: \
`python bench/train_throughput.py [--steps 20] [--sample 120]`.

Same corpus sample, same vocabulary, same stack (2 LSTM layers × 256 units, dropout, softmax),
same optimizer and batch size; each variant trains a fixed number of timed steps after a few
warm-up steps, in its own subprocess so that peak memory (VmHWM) is its own:

  (a) tutorial: the sample's text cut into every window of 6 characters, turned into float32
      one-hot arrays in NumPy (x (n, 6, vocab), y (n, vocab)); only the 7th character is
      predicted (last LSTM return_sequences=False, Dense softmax); `model.fit(x, y)`.
  (b) ours: `window_dataset` (window 24, stride 24, every position predicts its next
      character) + `build_model` (onehot mode: the identical trainable embedding lookup).

It prints targets (predicted characters) per second of each, their ratio, the peak RSS of each,
and what (a)'s arrays would weigh for the whole train split. Unless `--no-full`, a third
subprocess runs (b) as `poetry-lstm train` would: the whole train split, the config's model
size and shuffle buffer, for a few steps, to give the full run's peak RSS.

The vocabulary is that of `corpus/quatrains.jsonl`'s train split as training reads it (min count
and use_windows from the config); without a corpus, a synthetic one of ~5000 characters stands in.
Issue targets: (b) ≥ 5× (a) in targets/s; a full run of (b) < 3 GB peak RSS. Results also go to
bench/out/train_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus" / "quatrains.jsonl"
TUTORIAL_WINDOW = 6  # five characters and a punctuation mark: one line predicts the next character


# ---- data --------------------------------------------------------------------------------------
def train_split(args) -> tuple[list[str], str]:
    """(train poems, where they come from): the real corpus's train split as training reads it (五律
    halves only if the config's [train] use_windows says so), else synthetic poems."""
    if CORPUS.exists():
        from poetry_lstm.config import load_config

        halves = load_config().train.use_windows
        with open(CORPUS, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        poems = [r["text"] for r in rows if r.get("split") == "train" and (halves or r.get("form") == "wujue")]
        return poems, (f"{CORPUS.relative_to(ROOT)} train split ({'五绝 + 五律 halves' if halves else '五绝 only'}, "
                       f"as [train] use_windows = {str(halves).lower()})")
    import numpy as np

    rng = np.random.default_rng(args.seed)
    chars = [chr(0x4E00 + i) for i in range(5000)]
    p = 1.0 / np.arange(1, len(chars) + 1)  # Zipf-like, as characters are
    picks = rng.choice(len(chars), size=(20000, 20), p=p / p.sum())
    poems = ["".join(chars[i] for i in row) for row in picks]
    return ([f"{t[0:5]}，{t[5:10]}。{t[10:15]}，{t[15:20]}。" for t in poems],
            "synthetic poems (no corpus/quatrains.jsonl)")


def prepare(args, path: Path) -> dict:
    """The parent reads the corpus once and hands the children the vocabulary and the sample in a
    small file, so that the sample runs' peak memory is the variant's, not the corpus parser's."""
    import numpy as np

    from poetry_lstm.config import load_config
    from poetry_lstm.modeldir import Vocab

    poems, source = train_split(args)
    vocab = Vocab.build(poems, load_config().model.min_char_count)
    rng = np.random.default_rng(args.seed)
    sample = [poems[i] for i in sorted(rng.choice(len(poems), size=min(args.sample, len(poems)), replace=False))]
    data = {"source": source, "tokens": list(vocab.tokens), "sample": sample, "train_poems": len(poems),
            "train_chars": sum(map(len, poems))}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return data


def load_data(args):
    from poetry_lstm.config import load_config
    from poetry_lstm.modeldir import Vocab

    data = json.loads(Path(args.data).read_text(encoding="utf-8"))
    return load_config(), data, Vocab(tuple(data["tokens"]))


def batch_sizes(n_items: int, batch: int, count: int) -> list[int]:
    """Sizes of the first `count` batches of passes over n_items (each pass ends with a partial batch)."""
    per_pass = [batch] * (n_items // batch) + ([n_items % batch] if n_items % batch else [])
    return [per_pass[i % len(per_pass)] for i in range(count)]


def peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _timer(total_steps: int):
    import keras

    class Timer(keras.callbacks.Callback):
        """Wall-clock time at the end of each batch; stops training after `total_steps`."""

        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())
            if len(self.ends) >= total_steps:
                self.model.stop_training = True

    return Timer()


def _compile(model, cfg, loss: str):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate, clipnorm=cfg.train.clipnorm), loss=loss,
                  metrics=["accuracy"])


def _result(args, timer, sizes: list[int], targets_per_item: int, **extra) -> dict:
    w = args.warmup
    if len(timer.ends) < w + args.steps:
        raise SystemExit(f"only {len(timer.ends)} steps ran; need {w + args.steps}")
    seconds = timer.ends[w + args.steps - 1] - timer.ends[w - 1]
    targets = sum(sizes[w:w + args.steps]) * targets_per_item
    return {"steps": args.steps, "seconds": seconds, "seconds_per_step": seconds / args.steps, "targets": targets,
            "targets_per_step": targets / args.steps, "targets_per_second": targets / seconds, **extra}


# ---- the variants, each run in its own subprocess ----------------------------------------------
def run_tutorial(args) -> dict:
    import keras
    import numpy as np
    from keras import layers as L

    cfg, data, vocab = load_data(args)
    sample = data["sample"]
    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    ids = np.array(vocab.encode("".join(sample), start=False), dtype=np.int64)  # the sample as one text
    n, v, k = len(ids) - TUTORIAL_WINDOW, len(vocab), TUTORIAL_WINDOW
    x = np.zeros((n, k, v), dtype=np.float32)
    x[np.arange(n)[:, None], np.arange(k)[None, :], ids[np.arange(n)[:, None] + np.arange(k)[None, :]]] = 1.0
    y = np.zeros((n, v), dtype=np.float32)
    y[np.arange(n), ids[k:]] = 1.0
    prep = time.perf_counter() - started

    inputs = keras.Input(shape=(k, v), dtype="float32")
    h = inputs
    for i in range(args.layers):
        h = L.LSTM(args.units, return_sequences=i < args.layers - 1)(h)
        h = L.Dropout(cfg.model.dropout)(h)
    model = keras.Model(inputs, L.Dense(v, activation="softmax")(h))
    _compile(model, cfg, "categorical_crossentropy")
    total = args.warmup + args.steps
    timer = _timer(total)
    epochs = -(-total // -(-n // args.batch))
    model.fit(x, y, batch_size=args.batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    return _result(args, timer, batch_sizes(n, args.batch, total), 1, windows=n, arrays_bytes=x.nbytes + y.nbytes,
                   prep_seconds=prep, parameters=model.count_params(), vocab=v, sample_poems=len(sample),
                   peak_rss=peak_rss_bytes())


def run_ours(args, full: bool = False) -> dict:
    import keras

    from poetry_lstm.network import build_model, count_windows, poem_ids, window_dataset

    cfg, data, vocab = load_data(args)
    keras.utils.set_random_seed(args.seed)
    # The full run parses the corpus itself, as `poetry-lstm train` does: its peak includes that.
    texts = train_split(args)[0] if full else data["sample"]
    window, stride = (cfg.model.window, cfg.model.stride) if full else (24, 24)
    units, layers, batch = ((cfg.model.units, cfg.model.layers, cfg.train.batch_size) if full
                            else (args.units, args.layers, args.batch))
    started = time.perf_counter()
    ids = poem_ids(texts, vocab)
    ds = window_dataset(ids, window, stride, batch, cfg.train.shuffle_buffer, args.seed).repeat()
    prep = time.perf_counter() - started
    model = build_model(len(vocab), "onehot", units, layers, cfg.model.dropout, cfg.model.embedding_dim)
    _compile(model, cfg, "sparse_categorical_crossentropy")
    if full:
        args.steps = args.full_steps
    total = args.warmup + args.steps
    timer = _timer(total)
    model.fit(ds, steps_per_epoch=total, epochs=1, verbose=0, callbacks=[timer])
    n = count_windows(len(texts), ids.shape[1], window, stride)
    return _result(args, timer, batch_sizes(n, batch, total), window, windows=n, arrays_bytes=ids.nbytes,
                   prep_seconds=prep, parameters=model.count_params(), vocab=len(vocab), poems=len(texts), units=units,
                   layers=layers, window=window, stride=stride, batch=batch, shuffle_buffer=cfg.train.shuffle_buffer,
                   peak_rss=peak_rss_bytes())


# ---- the parent -----------------------------------------------------------------------------------
def child(variant: str, args, data_path: Path) -> dict:
    """Run one variant in a fresh interpreter; its own peak RSS comes back twice (VmHWM and wait4)."""
    cmd = [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--sample", str(args.sample), "--units", str(args.units), "--layers", str(args.layers),
           "--batch", str(args.batch), "--seed", str(args.seed), "--full-steps", str(args.full_steps),
           "--data", str(data_path)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"variant {variant} failed ({proc.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per variant (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (graph tracing)")
    parser.add_argument("--sample", type=int, default=120,
                        help="corpus poems both variants train on (a's arrays grow with it)")
    parser.add_argument("--units", type=int, default=256, help="LSTM units per layer")
    parser.add_argument("--layers", type=int, default=2, help="stacked LSTM layers")
    parser.add_argument("--batch", type=int, default=64, help="windows per step, both variants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-full", action="store_true", help="skip the full-train-split memory run of (b)")
    parser.add_argument("--full-steps", type=int, default=3,
                        help="timed steps of the full-train-split run (it is there for memory)")
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=["tutorial", "ours", "full"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.steps, args.warmup, args.full_steps) < 1 or args.sample < 2:
        parser.error("--steps, --warmup and --full-steps must be at least 1, --sample at least 2")
    if args.variant:  # a child: one JSON line on stdout
        sys.path.insert(0, str(ROOT))
        run = {"tutorial": run_tutorial, "ours": run_ours, "full": lambda a: run_ours(a, full=True)}[args.variant]
        print(json.dumps(run(args)))
        return

    started = time.perf_counter()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "data.json"
        data = prepare(args, data_path)
        a = child("tutorial", args, data_path)
        b = child("ours", args, data_path)
        full = None if args.no_full else child("full", args, data_path)
    ratio = b["targets_per_second"] / a["targets_per_second"]
    v = a["vocab"]
    n_full = data["train_chars"] - TUTORIAL_WINDOW  # the tutorial slides over the whole text, one window per character
    x_full, y_full = n_full * TUTORIAL_WINDOW * v * 4, n_full * v * 4
    print(f"corpus: {data['source']}, {data['train_poems']:,} poems, vocabulary {v:,}; "
          f"sample {a['sample_poems']} poems; "
          f"{args.layers} LSTM × {args.units} units, batch {args.batch}; "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    print(f"{'variant':<38}{'targets/step':>13}{'s/step':>9}{'targets/s':>11}{'params':>12}{'peak RSS':>10}")
    for name, r in (("(a) tutorial one-hot, 6 → 7th char", a), ("(b) window_dataset 24/24, every target", b)):
        print(f"{name:<38}{r['targets_per_step']:>13,.0f}{r['seconds_per_step']:>9.3f}{r['targets_per_second']:>11,.0f}"
              f"{r['parameters']:>12,}{gb(r['peak_rss']):>10}")
    print(f"ratio (b)/(a): {ratio:.1f}× targets per second (issue target ≥ 5×: {'met' if ratio >= 5 else 'NOT met'})")
    print(f"(a) arrays for the sample: x ({a['windows']:,}, {TUTORIAL_WINDOW}, {v:,}) + y float32 = "
          f"{gb(a['arrays_bytes'])}, "
          f"built in {a['prep_seconds']:.1f} s; (b) ids for the sample: {b['arrays_bytes']:,} bytes")
    print(f"(a) for the full train split: N×6×V×4 = {n_full:,} × {TUTORIAL_WINDOW} × {v:,} × 4 B = {gb(x_full)} for x "
          f"(+ {gb(y_full)} for y); (b) holds its ids once: "
          f"{data['train_poems']:,} × 25 × 4 B = {data['train_poems'] * 100 / 1e6:.1f} MB")
    if full:
        print(f"(b) full train split as `poetry-lstm train` runs it ({full['poems']:,} poems → "
              f"{full['windows']:,} windows, "
              f"{full['layers']} × {full['units']} units, shuffle buffer {full['shuffle_buffer']:,}): "
              f"{full['targets_per_second']:,.0f} targets/s, "
              f"peak RSS {gb(full['peak_rss'])} "
              f"(issue target < 3 GB: {'met' if full['peak_rss'] < 3e9 else 'NOT met'}; "
              f"an epoch ≈ {full['windows'] * full['window'] / full['targets_per_second'] / 60:.0f} min at this rate)")
    print(f"total {time.perf_counter() - started:.0f} s; "
          "machine shared with other jobs: compare the ratio, not the absolute rates")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_throughput.json").write_text(
        json.dumps({"tutorial": a, "ours": b, "full": full, "ratio": ratio,
                    "tutorial_full_x_bytes": x_full, "tutorial_full_y_bytes": y_full},
                   ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
