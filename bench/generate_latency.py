"""How long one poem takes: `python bench/generate_latency.py [--model models/word2vec]`.

A 七绝 model (`--model models/qijue/word2vec`) is timed the same way on seven-character first lines of its own
held-out poems, with the page on its 七绝 side and the cold start of `poetry-lstm generate 朝辞白帝彩云间`.

With the model loaded, the median time to complete one poem (n=1) over 20 first lines:
(1) the defaults of config/default.toml (sampling, best of `candidates` draws, every constraint),
(2) beam width 8 with the same constraints, and
(3) the tutorial way: one `model.predict` of the whole window per character (sampling, no
constraints), with the speed-up (3)/(1). Then the cold start of `poetry-lstm generate 床前明月光`
(a fresh process until the poems are printed, median of 3) and what it is made of, the parts
timed in one fresh process in the CLI's order. Targets on a 2-core CPU: (1) ≤ 100 ms,
(2) ≤ 300 ms, (3)/(1) ≥ 10, and (4) the page's later poems ≤ 0.5 s.

OpenBLAS runs on one thread, as the CLI sets it (`--blas-threads 0` leaves OpenBLAS's default to
show why: the decoder's matrix-vector products are tiny, and spare threads spin on a busy CPU).
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import dataclasses
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FALLBACK_LINES = ["床前明月光", "白日依山尽", "春眠不觉晓", "千山鸟飞绝", "红豆生南国", "空山不见人", "移舟泊烟渚",
                  "向晚意不适", "松下问童子", "独坐幽篁里", "君自故乡来", "北斗七星高", "绿蚁新醅酒", "功盖三分国",
                  "打起黄莺儿", "鸣筝金粟柱", "故国三千里", "清明时节雨", "夜来风雨声", "举头望明月"]

FIRST = {5: "床前明月光", 7: "朝辞白帝彩云间"}  # the cold start's first line, by the model's line length

# Each part of the CLI's cold start, timed in a fresh process (imports are cached after the first).
PARTS = r"""
import json, sys, time
t = time.perf_counter
out, t0 = {}, t()
import numpy; out["import numpy"] = t() - t0; t1 = t()
import poetry_lstm.cli; from poetry_lstm import generate as G, loading as L, stepper as S
out["import poetry_lstm (cli, generate, loading)"] = t() - t1; t1 = t()
S.limit_blas_threads(1); m = L.load_model(sys.argv[1])
out["loading.load_model (weights mapped from the file, no keras; the decoder tables)"] = t() - t1; t1 = t()
G.normalize_line(sys.argv[2]); out["OpenCC dictionaries (first to_simplified)"] = t() - t1; t1 = t()
m.line_hashes(); out["read train_lines.u64"] = t() - t1; t1 = t()
G.complete_poem(m, sys.argv[2], n=3); out["first complete_poem (n=3)"] = t() - t1; t1 = t()
out["total in process"] = t() - t0
out["(tensorflow imported: %s)" % ("tensorflow" in sys.modules)] = 0.0
t1 = t(); import tensorflow; out["for comparison: import tensorflow"] = t() - t1; t1 = t()
L.load_model(sys.argv[1], keras=True)
out["for comparison: load_model(keras=True) (Keras, after the import)"] = t() - t1
print(json.dumps(out))
"""


def first_lines(count: int, chars: int = 5) -> list[str]:
    """First lines of the held-out test poems (a 七绝's: corpus/qijue/), or famous ones where the corpus is absent."""
    corpus = ROOT / "corpus" / ("qijue" if chars == 7 else "") / "quatrains.jsonl"
    lines = []
    if corpus.exists():
        with open(corpus, encoding="utf-8") as f:
            for row in f:
                poem = json.loads(row)
                if poem.get("split") == "test":
                    lines.append(poem["lines"][0])
                if len(lines) == count:
                    break
    if len(lines) < count and chars == 7:
        raise SystemExit(f"no {count} held-out 七绝 in {corpus}: build it with `poetry-lstm clean`")
    return lines if len(lines) == count else FALLBACK_LINES[:count]


def timed(fn, items) -> list[float]:
    out = []
    for i, item in enumerate(items):
        started = time.perf_counter()
        fn(i, item)
        out.append(time.perf_counter() - started)
    return out


def tutorial_poem(trained, line: str, rng, temperature: float = 0.8) -> str:
    """The textbook loop: re-run the network over the whole window for every new character."""
    import numpy as np

    window, text = int(trained.config.get("window", 24)), line
    while len(text) < trained.shape.slots:
        ids = np.array([trained.vocab.encode(text)[-window:]], dtype=np.int32)
        probs = trained.keras_model.predict(ids, verbose=0)[0, -1].astype(np.float64)
        p = np.exp(np.log(probs + 1e-12) / temperature)
        text += trained.vocab.tokens[rng.choice(len(p), p=p / p.sum())]
    return text


def fmt(seconds: list[float]) -> str:
    return (f"median {statistics.median(seconds) * 1000:8.1f} ms   "
            f"(min {min(seconds) * 1000:.1f}, max {max(seconds) * 1000:.1f})")


def cold_start(model: Path, runs: int, chars: int = 5) -> None:
    if model.name not in ("word2vec", "onehot"):
        print(f"cold start: skipped (the CLI picks models by mode, and {model.name!r} is neither word2vec nor onehot)")
        return
    line = FIRST[chars]
    # the CLI finds a 七绝 model in the models folder's qijue/
    models_dir = model.resolve().parent.parent if chars == 7 else model.resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(f'[paths]\nmodels_dir = "{models_dir.as_posix()}"\n', encoding="utf-8")
        exe = shutil.which("poetry-lstm")
        command = ([exe] if exe else [sys.executable, "-m", "poetry_lstm.cli"]) + \
            ["--config", str(config), "generate", line, "--mode", model.name]
        walls = []
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            walls.append(time.perf_counter() - started)
            if done.returncode:
                print(f"cold start: the command failed ({done.returncode}): {done.stderr.strip()[-300:]}")
                return
    print(f"cold start `poetry-lstm generate {line}` (n=3, fresh process to printed poems): {fmt(walls)}")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    print(f"  {'python start-up':56s} {(time.perf_counter() - started) * 1000:8.0f} ms")
    done = subprocess.run([sys.executable, "-c", PARTS, str(model), line], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        print(f"  parts: failed: {done.stderr.strip()[-300:]}")
        return
    for name, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
        print(f"  {name:56s} {seconds * 1000:8.0f} ms" if seconds else f"  {name}")


def cold_start_against(baseline: Path, runs: int) -> None:
    """The CLI's cold start of this checkout and of `baseline` (another checkout, with its own models:
    `git worktree add /tmp/head 945b132`), run in turn so both see the same machine; prints the ratio."""
    walls: dict[str, list[float]] = {"this checkout": [], f"baseline {baseline}": []}
    for _ in range(runs):
        for times, root in zip(walls.values(), (ROOT, baseline)):
            env = {**os.environ, "PYTHONPATH": str(root)}
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "poetry_lstm.cli", "generate", "床前明月光"], cwd=root, env=env,
                           capture_output=True, check=True)
            times.append(time.perf_counter() - started)
    for name, times in walls.items():
        print(f"cold start, {name}: {fmt(times)}")
    ours, theirs = (statistics.median(t) for t in walls.values())
    print(f"    ratio this ÷ baseline: {ours / theirs:.2f}")


PAGE = r"""
import json, statistics, sys, time
from streamlit.testing.v1 import AppTest
app = AppTest.from_file(sys.argv[1], default_timeout=120)
app.run()
if len(json.loads(sys.argv[2])[0]) == 7:  # a 七绝's first lines: the page's 七绝 side
    app.radio(key="form").set_value("qijue").run()
times = []
for line in json.loads(sys.argv[2]):
    app.text_input(key="text_line").input(line)
    next(b for b in app.button if b.label == "生成").click()
    started = time.perf_counter()
    app.run()
    times.append(time.perf_counter() - started)
    if app.exception:
        raise SystemExit(app.exception[0].message)
print(json.dumps(times))
"""


def page_latency(lines: list[str]) -> None:
    """(4) the page: one first line after another through Streamlit's AppTest, in a fresh process as a
    served page is (this one has Keras loaded and OpenBLAS held to one thread)."""
    done = subprocess.run([sys.executable, "-c", PAGE, str(ROOT / "app.py"), json.dumps(lines, ensure_ascii=False)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        print(f"(4) page: failed or skipped: {done.stderr.strip()[-300:] or done.stdout.strip()[-300:]}")
        return
    times = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"(4) page, later poems (n=3, AppTest):           {fmt(times[1:])}   [first poem {times[0] * 1000:.0f} ms]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "word2vec"),
                        help="model directory (default models/word2vec)")
    parser.add_argument("--lines", type=int, default=20, help="first lines to time (default 20)")
    parser.add_argument("--tutorial-lines", type=int, default=5,
                        help="first lines for the slow tutorial loop (default 5)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold starts to time; 0 skips them")
    parser.add_argument("--baseline-checkout", default=None,
                        help="another checkout (git worktree) whose CLI cold start is timed in turn with this one's")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="OpenBLAS threads, set as the CLI does (default 1); 0 leaves OpenBLAS's own default")
    args = parser.parse_args()

    import numpy as np

    from poetry_lstm.config import load_config
    from poetry_lstm.generate import complete_poem
    from poetry_lstm.loading import load_model
    from poetry_lstm.stepper import limit_blas_threads

    if args.blas_threads:
        limit_blas_threads(args.blas_threads)

    model = Path(args.model)
    trained = load_model(model, keras=True)
    lines = first_lines(args.lines, trained.shape.chars)
    trained.line_hashes(), complete_poem(trained, lines[0], n=1)  # warm caches
    stepper = trained.stepper
    print(f"model {model}: vocabulary {len(trained.vocab)}, {len(stepper.cells)} LSTM layers × {stepper.units} units; "
          f"OpenBLAS threads {args.blas_threads or 'default'}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    state = stepper.initial_state(1)
    step = timed(lambda i, _: stepper.step(np.array([3]), state), range(200))
    print(f"one LSTM step (batch 1, NumPy):                  {fmt(step)}")
    g = load_config().generate
    defaults = dataclasses.replace(g.settings(trained.settings_key), n=1)
    warned = []
    sample = timed(lambda i, line: warned.append(complete_poem(trained, line, defaults, seed=i).poems[0].warnings),
                   lines)
    print(f"(1) defaults (best of {g.candidates}), n=1:               {fmt(sample)}   "
          f"[{sum(map(bool, warned))}/{len(lines)} with a relaxed constraint]")
    beam = timed(lambda i, line: complete_poem(trained, line, defaults, beam=8, seed=i), lines)
    print(f"(2) beam width 8, all constraints, n=1:          {fmt(beam)}")
    rng = np.random.default_rng(0)
    tutorial_poem(trained, lines[0], rng)  # Keras traces predict on its first call
    slow = timed(lambda i, line: tutorial_poem(trained, line, rng), lines[: args.tutorial_lines])
    print(f"(3) tutorial: model.predict per character:       {fmt(slow)}   over {len(slow)} lines")
    print(f"    speed-up (3)/(1): {statistics.median(slow) / statistics.median(sample):.0f}×")
    page_latency(lines[:10])
    if args.cold_runs:
        cold_start(model, args.cold_runs, trained.shape.chars)
        if args.baseline_checkout:
            cold_start_against(Path(args.baseline_checkout), args.cold_runs)


if __name__ == "__main__":
    main()
