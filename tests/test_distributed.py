"""Training on several workers (TF_CONFIG, MultiWorkerMirroredStrategy):
`python -m pytest tests/test_distributed.py -q`.

The main test starts two real `poetry-lstm train` processes on 127.0.0.1, each told by TF_CONFIG
that it is one of two workers, trains a tiny onehot model for one epoch on conftest's tiny corpus,
and checks that the two trained as one (same losses, same sample poem), that only the chief
(worker 0) wrote into models/, and that the saved model loads (Keras and the NumPy loader) and
finishes a poem. The workers run as `python -m poetry_lstm.cli`, the `poetry-lstm` entry point
itself, so they run this tree's code whatever is installed. If this machine cannot open a local
gRPC port, the test skips and says so; any other failure fails.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT

from poetry_lstm.errors import PoetryError
from poetry_lstm.metrics import HASH_FILE

WORKER_TIMEOUT = 600  # seconds for both workers together; one tiny epoch takes about a minute on 2 busy cores
CANNOT_LISTEN = "could not start its server"


def _cli() -> list[str]:
    return [sys.executable, "-m", "poetry_lstm.cli"]


def _env(tf_config: dict | str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config if isinstance(tf_config, str) else json.dumps(tf_config)
    return env


def _free_ports(n: int) -> list[int]:
    """n ports that were free a moment ago (the OS picks them; a race with another program is possible)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    except OSError as exc:
        pytest.skip(f"cannot bind a TCP port on 127.0.0.1 here ({exc}), so no gRPC worker can start")
    finally:
        for s in sockets:
            s.close()


def _tiny_toml(path: Path, root: Path, models: Path) -> Path:
    path.write_text(
        f'[paths]\ncrawler_dir = "{root / "crawler"}"\ncorpus_dir = "{root / "corpus"}"\nmodels_dir = "{models}"\n'
        "[vectors]\nvector_size = 8\nepochs = 1\nworkers = 1\n"
        "[model]\nunits = 16\nlayers = 2\nembedding_dim = 8\nmin_char_count = 1\n"
        "[train]\nepochs = 1\nbatch_size = 16\npatience = 5\nsteps_per_epoch = 0\nmax_minutes = 0\n"
        "use_windows = false\nfine_tune_epochs = 0\n", encoding="utf-8")
    return path


def _run_workers(toml: Path, logs: Path) -> tuple[list[int], list[str]]:
    """Both workers, started together and awaited together: (exit codes, logs). A worker that
    fails leaves its peer waiting in a collective for ever, so the other is killed then."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, files = [], []
    for i in range(2):
        f = open(logs / f"worker{i}.log", "w", encoding="utf-8")
        files.append(f)
        procs.append(subprocess.Popen(_cli() + ["--config", str(toml), "train", "--mode", "onehot"], cwd=ROOT,
                                      env=_env({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                                      stdout=f, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + WORKER_TIMEOUT
    try:
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs):
                time.sleep(5)  # let the peer fail on its own and say why, then stop it
                break
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for f in files:
            f.close()
    texts = [(logs / f"worker{i}.log").read_text(encoding="utf-8", errors="replace") for i in range(2)]
    if time.monotonic() >= deadline:
        pytest.fail(f"the two workers did not finish within {WORKER_TIMEOUT} s:\n" + "\n".join(
            f"--- worker {i} ---\n{t[-3000:]}" for i, t in enumerate(texts)))
    return [p.returncode for p in procs], texts


@pytest.mark.slow
@pytest.mark.timeout(2 * WORKER_TIMEOUT + 120)
def test_two_workers_train_one_model(tiny_root, tmp_path):
    from poetry_lstm.generate import complete_poem
    from poetry_lstm.loading import load_model

    models = tmp_path / "models"
    toml = _tiny_toml(tmp_path / "cfg.toml", tiny_root, models)
    codes, logs = _run_workers(toml, tmp_path)
    # a port taken between choosing and binding: once more
    if codes != [0, 0] and any(CANNOT_LISTEN in log for log in logs):
        codes, logs = _run_workers(toml, tmp_path)
        if codes != [0, 0] and any(CANNOT_LISTEN in log for log in logs):
            line = next(line for log in logs for line in log.splitlines() if CANNOT_LISTEN in line)
            pytest.skip(f"no gRPC server could listen on 127.0.0.1 here: {line.strip()}")
    assert codes == [0, 0], "\n".join(f"--- worker {i} (exit {c}) ---\n{log[-4000:]}"
                                      for i, (c, log) in enumerate(zip(codes, logs)))
    chief, other = logs
    assert "Traceback" not in chief + other

    # Both are MultiWorkerMirroredStrategy replicas of one 2-replica group; the chief says it writes.
    assert ("training data-parallel on 2 workers (MultiWorkerMirroredStrategy, 2 replicas); "
            "this is worker 0, the chief") in chief
    assert ("training data-parallel on 2 workers (MultiWorkerMirroredStrategy, 2 replicas); "
            "this is worker 1") in other
    # One model, trained together: the epoch line (losses from the summed metrics, and a sample poem
    # drawn from the weights) is the same on both, but for its wall time.
    epoch = [re.findall(r"^pretrain epoch 1: .*$", log, re.M) for log in logs]
    assert len(epoch[0]) == len(epoch[1]) == 1, logs
    assert re.sub(r"\(\d+ s\)", "", epoch[0][0]) == re.sub(r"\(\d+ s\)", "", epoch[1][0])

    # Only the chief wrote into models/; worker 1 used a temporary folder and removed it at exit.
    assert sorted(p.name for p in models.iterdir()) == sorted([".train-onehot", "onehot", HASH_FILE])
    scratch = re.search(r"^worker 1 of 2: checkpoints and model go to (\S+) \(removed at exit\)", other, re.M)
    assert scratch, other
    assert not Path(scratch.group(1)).exists() and not Path(scratch.group(1)).is_relative_to(models)
    history = json.loads((models / "onehot" / "history.json").read_text(encoding="utf-8"))
    assert [r["epoch"] for r in history] == [1]

    # The saved model loads both ways, agrees, and finishes a poem.
    trained, fast = load_model(models / "onehot", keras=True), load_model(models / "onehot")
    assert fast.keras_model is None and trained.keras_model is not None
    ids = trained.vocab.encode("山水风月花，")
    np.testing.assert_allclose(fast.stepper.run(ids)[0], trained.stepper.run(ids)[0], rtol=0, atol=1e-6)
    result = complete_poem(trained, "床前明月光", n=1, novelty=False)
    assert len(result.poems) == 1
    poem = result.poems[0]
    assert poem.lines[0] == "床前明月光" and len(poem.lines) == 4 and all(len(line) == 5 for line in poem.lines)


WORKER_SCRIPT = """
import json, sys
import numpy as np
from poetry_lstm.errors import PoetryError
from poetry_lstm.modeldir import SPECIALS, Vocab
from poetry_lstm.network import build_model
from poetry_lstm.distributed import any_worker as _any_worker, start_together as _start_together, \
worker_role as _worker_role, start_distribution

strategy = start_distribution()
place, workers = _worker_role()
vocab = Vocab(SPECIALS + tuple("山水风月花"))
with strategy.scope():
    model = build_model(vocab_size=len(vocab), mode="onehot", units=4, layers=2, dropout=0.0, embedding_dim=3)
# Weights set after the variables exist stay local (as skip-gram vectors do): make every worker's differ.
model.set_weights([np.full(w.shape, place + 1, w.dtype) for w in model.get_weights()])
out = {}
try:
    _start_together(strategy, model, {"epochs_done": place}, vocab)  # as if resumed from different checkpoints
except PoetryError as exc:
    out["refused"] = str(exc)
_start_together(strategy, model, {"epochs_done": 0}, vocab)
out["weights"] = sorted({float(v) for w in model.get_weights() for v in np.unique(w)})
out["any"] = [_any_worker(place == 1), _any_worker(False)]
print("RESULT " + json.dumps(out, ensure_ascii=False), flush=True)
"""


@pytest.mark.slow
@pytest.mark.timeout(WORKER_TIMEOUT + 60)
def test_workers_start_from_the_chiefs_weights_and_stop_together(tmp_path):
    """`_start_together` refuses workers at different epochs on all of them at once (no hang), then
    gives every worker the chief's weights; `_any_worker` is one decision for all."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT], cwd=ROOT,
                              env=_env({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=WORKER_TIMEOUT)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(CANNOT_LISTEN in out for out in outs):
        pytest.skip("no gRPC server could listen on 127.0.0.1 here: "
                    + next(o for o in outs if CANNOT_LISTEN in o)[-300:])
    results = []
    for i, out in enumerate(outs):
        found = re.findall(r"^RESULT (.*)$", out, re.M)
        assert procs[i].returncode == 0 and found, f"worker {i}:\n{out[-4000:]}"
        results.append(json.loads(found[0]))
    for r in results:
        assert r["refused"].startswith("The 2 workers do not start alike "
                                       "(epochs done per worker: 0, 1; same vocabulary: yes)")
        assert r["weights"] == [1.0]  # the chief's (place 0 set every weight to 1), worker 1's 2s are gone
        assert r["any"] == [True, False]


# ---- TF_CONFIG as input: one sentence, never a traceback ---------------------------------------
@pytest.mark.parametrize("value", [
    "{not json",
    '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}}',  # no task
    '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',  # no such worker
    # parameter servers
    '{"cluster": {"worker": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}',
    '{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}',  # no port
])
def test_bad_tf_config_is_one_sentence(monkeypatch, value):
    from poetry_lstm.distributed import worker_role as _worker_role

    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(PoetryError, match=r"^TF_CONFIG must be JSON such as .*docs/distributed\.md\.$") as info:
        _worker_role()
    assert "\n" not in str(info.value)


def test_worker_places(monkeypatch):
    from poetry_lstm.distributed import worker_role as _worker_role

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert _worker_role() == (0, 1)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2", "c:3"]},
                                                "task": {"type": "worker", "index": 2}}))
    assert _worker_role() == (2, 3)
    # A named chief is place 0, and the workers count after it (TensorFlow's own numbering).
    chief = {"chief": ["a:1"], "worker": ["b:2", "c:3"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": chief, "task": {"type": "chief", "index": 0}}))
    assert _worker_role() == (0, 3)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": chief, "task": {"type": "worker", "index": 0}}))
    assert _worker_role() == (1, 3)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert _worker_role() == (0, 1)  # one worker: no multi-worker strategy


def test_bad_tf_config_from_the_command(tiny_root, tmp_path, monkeypatch):
    from poetry_lstm.cli import cli

    monkeypatch.setenv("TF_CONFIG", "{not json")
    toml = _tiny_toml(tmp_path / "cfg.toml", tiny_root, tmp_path / "models")
    result = CliRunner().invoke(cli, ["--config", str(toml), "train", "--mode", "onehot"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert (len(errors) == 1 and "TF_CONFIG must be JSON" in errors[0]
            and "Traceback" not in result.output), result.output
    assert not (tmp_path / "models" / "onehot").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_taken_port_is_one_sentence(tiny_root, tmp_path):
    """The worker's own address is in use: exit 1 and say which, instead of a gRPC traceback."""
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
    except OSError as exc:
        pytest.skip(f"cannot bind a TCP port on 127.0.0.1 here ({exc})")
    try:
        port = taken.getsockname()[1]
        config = {"cluster": {"worker": [f"127.0.0.1:{port}", f"127.0.0.1:{_free_ports(1)[0]}"]},
                  "task": {"type": "worker", "index": 0}}
        toml = _tiny_toml(tmp_path / "cfg.toml", tiny_root, tmp_path / "models")
        result = subprocess.run(_cli() + ["--config", str(toml), "train", "--mode", "onehot"], cwd=ROOT,
                                env=_env(config), capture_output=True, text=True, timeout=240)
    finally:
        taken.close()
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in out, out
    assert f"Error: Worker 0 could not start its server at 127.0.0.1:{port}" in out, out
    assert not (tmp_path / "models" / "onehot").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_strategy_after_tensorflow_started_is_one_sentence(tmp_path):
    """Python callers must make the strategy first; if TensorFlow already ran, they are told so."""
    config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}, "task": {"type": "worker", "index": 0}}
    code = ("import tensorflow as tf; tf.constant(0)\n"
            "from poetry_lstm.errors import PoetryError\nfrom poetry_lstm.distributed import start_distribution\n"
            "try:\n    start_distribution()\nexcept PoetryError as exc:\n    print('refused:', exc)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(config), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("refused: TF_CONFIG names 2 workers, but TensorFlow was already running in this process"
            in result.stdout), result.stdout
