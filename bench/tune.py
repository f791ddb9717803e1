"""Compare training settings by validation perplexity at a fixed time budget: `python bench/tune.py`.

Each variant trains `onehot` (or the mode it names) for the same wall-clock budget, two at a
time on separate cores, from the same corpus; the table of best validation perplexities goes to
docs/tuning.md, which the model card quotes. Needs a corpus cleaned with --forms wujue,wulv.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Rounds 1 and 2 ran before the prosody features existed, with dropout 0.2: their rows keep those settings.
OFF = {"prosody": False, "rhyme_context": False, "dropout": 0.2}
VARIANTS = {
    "real 五绝 only, 256 units, window 24": {"train": {"use_windows": False}, "model": {**OFF, "units": 256}},
    "+ 五律 halves, 256 units, window 24": {"train": {"use_windows": True}, "model": {**OFF, "units": 256}},
    "+ 五律 halves, 384 units": {"train": {"use_windows": True}, "model": {**OFF, "units": 384}},
    "+ 五律 halves, 256 units, window 8 stride 4": {"train": {"use_windows": True},
                                                  "model": {**OFF, "units": 256, "window": 8, "stride": 4}},
    # Second round, on the chosen data (real 五绝) and size, one knob at a time against the defaults:
    "defaults (dropout 0.2, 2 layers, lr 0.002, batch 64)": {"model": OFF},
    "dropout 0.4": {"model": {**OFF, "dropout": 0.4}},
    "3 layers": {"model": {**OFF, "layers": 3}},
    "learning rate 0.004": {"train": {"learning_rate": 0.004}, "model": OFF},
    "batch 128": {"train": {"batch_size": 128}, "model": OFF},
    # Third round: the 平仄 / 平声-group features, without and with line 2's end, then the shipped defaults
    # (dropout 0.4).
    "prosody features, no rhyme context": {"model": {"rhyme_context": False, "dropout": 0.2}},
    "prosody features and rhyme context, dropout 0.2": {"model": {"dropout": 0.2}},
    "shipped defaults (prosody, rhyme context, dropout 0.4)": {},
}


def toml(overrides: dict) -> str:
    out = []
    for section, values in overrides.items():
        out.append(f"[{section}]")
        out += [f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}" for k, v in values.items()]
    return "\n".join(out) + "\n"


def run(name: str, overrides: dict, minutes: float, steps: int, workdir: Path, epochs: int = 1000) -> dict:
    folder = workdir / hashlib.sha1(name.encode()).hexdigest()[:12]
    folder.mkdir(parents=True)
    mode = overrides.pop("mode", "onehot")
    overrides.setdefault("paths", {})["models_dir"] = str(folder / "models")
    overrides.setdefault("train", {}).update(max_minutes=minutes, steps_per_epoch=steps, epochs=epochs)
    (folder / "cfg.toml").write_text(toml(overrides), encoding="utf-8")
    started = time.perf_counter()
    log = folder / "log.txt"
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "poetry_lstm.cli", "--config", str(folder / "cfg.toml"),
                               "train", "--mode", mode],
                              cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        return {"variant": name, "error": log.read_text()[-500:]}
    history = json.loads((folder / "models" / mode / "history.json").read_text())
    best = min(history, key=lambda r: r["val_loss"])
    test = json.loads((folder / "models" / mode / "config.json").read_text()).get("test", {})
    return {"variant": name, "mode": mode, "val_perplexity": round(math.exp(best["val_loss"]), 1),
            "val_accuracy": best["val_accuracy"], "test_perplexity": round(test.get("perplexity", float("nan")), 1),
            "baseline_perplexity": round(test.get("baseline_perplexity", float("nan")), 1),
            "rhyme_mass": round(test.get("rhyme_mass", float("nan")), 3),
            "steps": steps * len(history), "minutes": round((time.perf_counter() - started) / 60, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=12, help="training budget per variant")
    parser.add_argument("--steps", type=int, default=300, help="steps between validations")
    parser.add_argument("--epochs", type=int, default=1000,
                        help="epochs per variant (with --minutes 0: equal data passes)")
    parser.add_argument("--parallel", type=int, default=2, help="variants trained at once")
    parser.add_argument("--out", default="tune.json", help="file name under bench/out/")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    args = parser.parse_args()
    names = args.only or list(VARIANTS)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda n: run(n, json.loads(json.dumps(VARIANTS[n])), args.minutes, args.steps,
                                              Path(tmp), args.epochs),
                                names))
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / args.out).write_text(json.dumps(results, ensure_ascii=False, indent=2))
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
