"""Data-parallel training across machines or GPUs: `strategy = distribution(log)`.

`TF_CONFIG` naming several workers gives `MultiWorkerMirroredStrategy` (every worker runs the same
`poetry-lstm train`; worker 0, the chief, alone writes `models/`), several local GPUs give
`MirroredStrategy`, anything else the default strategy. `docs/distributed.md` says how to run it.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from .config import Config
from .errors import PoetryError
from .modeldir import Vocab


def tf_config() -> dict | None:
    """TF_CONFIG as a dict, None when unset; anything malformed is refused in one sentence.

    Only the `chief` and `worker` jobs of MultiWorkerMirroredStrategy are meaningful here (no
    parameter servers, no evaluator), and this task must be one of them.
    """
    import json

    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        conf = json.loads(raw)
        cluster, task = conf["cluster"], conf["task"]
        hosts = [h for job in ("chief", "worker") for h in cluster.get(job, [])]
        ok = (set(cluster) <= {"chief", "worker"} and task["type"] in cluster and len(cluster.get("chief", [])) <= 1
              and 0 <= int(task["index"]) < len(cluster[task["type"]])
              and all(isinstance(h, str) and h.rpartition(":")[2].isdigit() for h in hosts))
    except (ValueError, TypeError, KeyError, AttributeError):
        ok = False
    if not ok:
        raise PoetryError('TF_CONFIG must be JSON such as {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                          '"task": {"type": "worker", "index": 0}}, naming this task among the chief or workers; '
                          'see docs/distributed.md.')
    return conf


def worker_role() -> tuple[int, int]:
    """(this process's place among the workers, how many workers) from TF_CONFIG; (0, 1) without one.

    Place 0 is the chief, which alone writes the model: the `chief` task if the cluster names one,
    else worker 0 (TensorFlow numbers them the same way).
    """
    conf = tf_config()
    if conf is None:
        return 0, 1
    cluster, task = conf["cluster"], conf["task"]
    chiefs = len(cluster.get("chief", []))
    return int(task["index"]) + (chiefs if task["type"] == "worker" else 0), chiefs + len(cluster.get("worker", []))


def keras_multi_worker_fixes() -> None:
    """Two Keras 3 bugs that stop `model.fit` under MultiWorkerMirroredStrategy (keras-team/keras#20585,
    tensorflow/tensorflow#72388), patched in this process only, and only once several workers train.

    - `fit` reduces its first (inputs, targets) batch with a cross-worker MEAN just to learn shapes,
      and that reduce cannot take a tuple: take this worker's own batch instead.
    - every step's logs (scalar loss and metrics) are reduced with `axis=0`, which a scalar lacks:
      reduce them with `axis=None`, an all-reduce MEAN. Those per-step logs only feed the progress
      line; the epoch's logs, which the callbacks read, come from the metric variables read outside
      the step, where the strategy sums them exactly over every worker.
    If a Keras release moves these internals, nothing is patched; if it still has the bugs,
    tests/test_distributed.py fails.
    """
    import tensorflow as tf

    try:
        from keras.src import tree
        from keras.src.backend.tensorflow import trainer as tf_trainer
    except ImportError:
        return
    if getattr(tf_trainer, "_poetry_lstm_patched", False) or not (
            hasattr(tf_trainer, "reduce_per_replica") and hasattr(tf_trainer, "_collective_all_reduce_multi_worker")
            and hasattr(getattr(tf_trainer, "TensorFlowTrainer", None), "_maybe_symbolic_build")):
        return
    reduce_per_replica, symbolic_build = (tf_trainer.reduce_per_replica,
                                          tf_trainer.TensorFlowTrainer._maybe_symbolic_build)

    def reduce_scalars(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def local_first_batch(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is not None and strategy is not None and tf_trainer._collective_all_reduce_multi_worker(strategy):
            for _, _, it in iterator:
                data_batch = tree.map_structure(
                    lambda x: (strategy.experimental_local_results(x)[0]
                               if isinstance(x, tf.distribute.DistributedValues) else x), next(it))
                break
            iterator = None
        return symbolic_build(self, iterator=iterator, data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_scalars
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = local_first_batch
    tf_trainer._poetry_lstm_patched = True


def start_distribution():
    """This process's tf.distribute strategy, made once, before any other TensorFlow op.

    MultiWorkerMirroredStrategy when TF_CONFIG names several workers: data-parallel, each worker
    reads its own share of every batch (tf.data's DATA auto-sharding of `window_dataset`, whose
    shuffle is seeded alike on every worker) and the gradients are summed over gRPC. It configures
    TensorFlow's runtime, so `poetry-lstm train` calls this before Keras touches a tensor.
    MirroredStrategy when several local GPUs are visible; else the default strategy, which runs as is.
    """
    if hasattr(start_distribution, "strategy"):
        return start_distribution.strategy
    place, workers = worker_role()
    if "tensorflow" not in sys.modules:
        from .network import _quiet_stderr

        with _quiet_stderr():  # TensorFlow's absl/CUDA start-up lines, as in import_keras
            import tensorflow  # noqa: F401
    import tensorflow as tf

    if workers > 1:
        conf = tf_config()
        address = conf["cluster"][conf["task"]["type"]][int(conf["task"]["index"])]
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError:  # "Collective ops must be configured at program startup"
            raise PoetryError(f"TF_CONFIG names {workers} workers, but TensorFlow was already running in this process; "
                              "start each worker with `poetry-lstm train`, which sets the workers up first.") from None
        except tf.errors.OpError as exc:  # the gRPC server could not bind, or a peer answered wrongly
            raise PoetryError(f"Worker {place} could not start its server at {address} ({exc.message}); "
                              "free that port or name another in TF_CONFIG.") from None
        keras_multi_worker_fixes()
    elif len(tf.config.list_physical_devices("GPU")) > 1:
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    start_distribution.strategy = strategy
    return strategy


def distribution(log):
    """The strategy of `start_distribution`, said in the log: MultiWorkerMirroredStrategy across the
    TF_CONFIG workers, MirroredStrategy across several local GPUs, else the default, which runs as is."""
    import tensorflow as tf

    strategy = start_distribution()
    place, workers = worker_role()
    if workers > 1:
        log(f"training data-parallel on {workers} workers (MultiWorkerMirroredStrategy, "
            f"{strategy.num_replicas_in_sync} replicas); "
            f"this is worker {place}" + (", the chief: it writes the model and checkpoints" if place == 0 else ""))
    elif isinstance(strategy, tf.distribute.MirroredStrategy):
        log(f"training data-parallel on {strategy.num_replicas_in_sync} GPUs (MirroredStrategy)")
    return strategy


def worker_dirs(cfg: Config, mode: str, resume: bool, log) -> tuple[Path, Path]:
    """(model directory, checkpoint folder) this process writes: `models/<mode>/` and
    `models/.train-<mode>/` on the chief; on every other worker, a temporary folder removed at exit.

    Every worker runs the same steps and callbacks, but only the chief's files count: workers that
    share a disk must not race on one file. With --resume such a worker starts from a copy of the
    chief's checkpoint when it can see one (a shared disk, or a copied folder); in word2vec mode it
    copies the chief's skip-gram vectors when they exist, saving their training.
    """
    models = Path(cfg.paths.models_dir)
    place, workers = worker_role()
    if place == 0:
        return models / mode, models / f".train-{mode}"
    import atexit

    scratch = Path(tempfile.mkdtemp(prefix=f"poetry-lstm-worker{place}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    chief_ckpt, ckpt = models / f".train-{mode}", scratch / f".train-{mode}"
    if resume and (chief_ckpt / "state.json").exists():
        shutil.copytree(chief_ckpt, ckpt)
    elif (chief_ckpt / "vectors").is_dir():  # reused only if they match the corpus and settings
        shutil.copytree(chief_ckpt / "vectors", ckpt / "vectors")
    log(f"worker {place} of {workers}: checkpoints and model go to {scratch} (removed at exit); "
        f"the chief writes {models / mode}")
    return scratch / mode, ckpt


def start_together(strategy, model, state: dict, vocab: Vocab) -> None:
    """With several workers: refuse unless all hold the same vocabulary and checkpoint, then give
    every worker the chief's weights.

    The strategy gives new variables the chief's initial values, but weights set afterwards stay
    local: skip-gram vectors (gensim with several threads differs from run to run) and a resumed
    checkpoint. Each worker's [epochs done, vocabulary CRC-32, weight count] goes in its own row of a
    summed (workers, 3) array, so every worker sees all rows and all refuse together; a mismatch
    found later, inside the weight sum, would hang instead.
    """
    place, workers = worker_role()
    if workers < 2:
        return
    import zlib

    import tensorflow as tf

    weights = model.get_weights()
    rows = np.zeros((workers, 3))
    rows[place] = (state["epochs_done"], zlib.crc32("\n".join(vocab.tokens).encode("utf-8")),
                   sum(w.size for w in weights))
    rows = strategy.reduce("SUM", tf.constant(rows), axis=None).numpy()  # (workers, 3)
    if not (rows == rows[0]).all():
        raise PoetryError(f"The {workers} workers do not start alike (epochs done per worker: "
                          f"{', '.join(str(int(r)) for r in rows[:, 0])}; "
                          f"same vocabulary: {'yes' if (rows[:, 1] == rows[0, 1]).all() else 'no'}); "
                          "give every worker the same corpus/ "
                          "and, with --resume, a copy of the chief's checkpoint folder, "
                          "or run them all without --resume.")
    # float64 holds every float32 and every integer seed state exactly: chief's values + zeros.
    flat = np.concatenate([w.ravel().astype(np.float64) for w in weights]) if place == 0 else np.zeros(int(rows[0, 2]))
    flat = strategy.reduce("SUM", tf.constant(flat), axis=None).numpy()  # (all weights,)
    ends = np.cumsum([w.size for w in weights])
    model.set_weights([part.reshape(w.shape).astype(w.dtype) for part, w in zip(np.split(flat, ends[:-1]), weights)])


def any_worker(flag: bool) -> bool:
    """`flag` with one worker; with several, True on all when it is True on any (one all-reduce).

    A decision that ends training (the time budget) must be taken together: a worker that stops
    alone leaves the others waiting in their next gradient sum for ever. Every worker must call it
    at the same point, as epoch-end callbacks do.
    """
    if worker_role()[1] < 2:
        return flag
    import tensorflow as tf

    return bool(start_distribution().reduce("SUM", tf.constant(float(flag)), axis=None).numpy() > 0)
