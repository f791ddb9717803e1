"""Train one model directory: `poetry-lstm train --mode word2vec` → `models/word2vec/`.

Corpus → vocabulary (+ skip-gram vectors) → windows → stacked LSTM, with early stopping on
validation loss, an atomic checkpoint every epoch (`models/.train-<mode>/`, for `--resume`), one
sample poem per epoch in the log, and finally an atomically swapped-in model directory. With
`use_windows`, it pretrains on every five-character poem's four-line windows, then fine-tunes on
real 五绝 alone (`fine_tune_epochs`), keeping whichever weights score best on the valid 五绝.
"""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import files, layout, prosody, vectors
from .clean import load_corpus
from .config import Config
from .errors import PoetryError
from .metrics import HASH_FILE
from .model import LstmStepper, TrainedModel, Vocab, build_model, count_windows, line_hashes, poem_ids, seed_everything, window_dataset

MIN_TRAIN_POEMS = 20
SAMPLE_LINE = "白日依山尽"


def split_texts(cfg: Config, use_windows: bool) -> dict[str, list[str]]:
    """Poem texts per split; windows of longer poems join train only when asked."""
    out = {"train": [], "valid": [], "test": []}
    for r in load_corpus(cfg):
        if r["split"] in out and (use_windows or r["form"] == "wujue"):
            out[r["split"]].append(r["text"])
    return out


def training_texts(cfg: Config) -> tuple[list[str], list[str]]:
    """(train, valid) poem texts, refusing a corpus too small to learn from."""
    splits = split_texts(cfg, cfg.train.use_windows)
    train, valid = splits["train"], splits["valid"]
    if len(train) < MIN_TRAIN_POEMS or not valid:
        raise PoetryError(f"The corpus has {len(train)} training and {len(valid)} validation poems, too few to train; "
                          f"crawl more poems (at least {MIN_TRAIN_POEMS} and a validation split) with `poetry-lstm crawl`.")
    return train, valid


def model_args(cfg: Config, mode: str, vocab: Vocab, vector_dim: int | None) -> dict:
    m = cfg.model
    return {"vocab_size": len(vocab), "mode": mode, "units": m.units, "layers": m.layers, "dropout": m.dropout,
            "embedding_dim": vector_dim or m.embedding_dim, "fine_tune_vectors": cfg.train.fine_tune_vectors,
            "prosody_dim": prosody.feature_table(()).shape[1] if m.prosody else 0, "rhyme_context": m.rhyme_context}


def sample_poem(stepper: LstmStepper, vocab: Vocab, first_line: str, rng: np.random.Generator, temperature: float = 0.8) -> str:
    """A quick unconstrained sample for the log: CJK characters only, punctuation placed by position."""
    allowed = np.array([len(t) == 1 and "\u3400" <= t <= "\u9fff" for t in vocab.tokens])
    text = first_line + "，"
    logp, state = stepper.run(vocab.encode(text))
    for pos in range(len(text), layout.SLOTS):
        if pos in layout.MARKS:
            ch = layout.MARKS[pos]
        else:
            z = np.where(allowed, logp[0] / temperature, -np.inf)
            p = np.exp(z - z.max())  # shifted: a confident model must not underflow every allowed character to 0
            ch = vocab.tokens[rng.choice(len(p), p=p / p.sum())]
        text += ch
        logp, state = stepper.step(np.array([vocab.id(ch)]), state)
    return text


def _epoch_callback(cfg, ckpt: Path, state: dict, vocab: Vocab, log, run_started: float, started: float,
                    phase: str = "pretrain", budget_minutes: float = 0, patience: int = 0):
    import keras

    class EpochEnd(keras.callbacks.Callback):
        """History, atomic checkpoints, early stopping and a sample poem, all resumable from state.json."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, "phase": phase, "loss": logs["loss"], "val_loss": logs["val_loss"],
                   "perplexity": math.exp(logs["loss"]), "val_perplexity": math.exp(logs["val_loss"]),
                   "accuracy": logs["accuracy"], "val_accuracy": logs["val_accuracy"],
                   "seconds": round(time.perf_counter() - self.started, 1)}
            state["history"].append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
            if row["val_loss"] < state["best_val_loss"]:
                state.update(best_val_loss=row["val_loss"], best_epoch=epoch + 1, wait=0)
                with files.atomic_path(ckpt / "best.weights.h5", suffix=".weights.h5") as tmp:
                    self.model.save_weights(tmp)
            else:
                state["wait"] += 1
                if cfg.train.lr_decay < 1:  # a plateau: smaller steps usually find a lower valley
                    lr = self.model.optimizer.learning_rate
                    lr.assign(float(lr.numpy()) * cfg.train.lr_decay)
                    log(f"valid loss did not improve: learning rate now {float(lr.numpy()):.2e}")
            with files.atomic_path(ckpt / "last.keras", suffix=".keras") as tmp:
                self.model.save(tmp)
            state["epochs_done"] = epoch + 1
            state["seconds"] = state["seconds_before"] + time.perf_counter() - started  # survives a kill
            files.write_json(ckpt / "state.json", state)
            sample = sample_poem(LstmStepper(self.model), vocab, SAMPLE_LINE, np.random.default_rng(epoch))
            log(f"{phase} epoch {epoch + 1}: loss {row['loss']:.3f} val_loss {row['val_loss']:.3f} "
                f"val_ppl {row['val_perplexity']:.1f} ({row['seconds']:.0f} s)  sample: {sample}")
            if budget_minutes and time.perf_counter() - run_started > 60 * budget_minutes:
                log(f"time budget of {budget_minutes} min spent: {phase} stops")
                self.model.stop_training = True
            if state["wait"] >= (patience or cfg.train.patience):
                log(f"early stop: no better validation loss for {patience or cfg.train.patience} epochs")
                self.model.stop_training = True

    return EpochEnd()


def prepare_vectors(cfg: Config, train: list[str], out: Path, retrain: bool, log):
    folder = out / "vectors"
    kv = None if retrain else vectors.matching_vectors(folder, train, cfg.vectors)
    if kv is not None:
        log(f"reusing the skip-gram vectors in {folder} (same corpus and settings)")
        return kv
    started = time.perf_counter()
    log(f"skip-gram vectors: {len(train)} texts, {cfg.vectors.epochs} epochs, {cfg.vectors.workers} worker(s)")
    kv = vectors.train_vectors(train, cfg.vectors, log)
    vectors.save_vectors(kv, folder, train, cfg.vectors)
    log(f"skip-gram vectors: {len(kv.index_to_key)} characters in {time.perf_counter() - started:.0f} s")
    for probe in vectors.PROBES:
        log(f"  {probe}: " + " ".join(f"{c}{s:.2f}" for c, s in vectors.nearest(kv, probe, 6)))
    return kv


def _compiled(cfg: Config, args: dict, embedding: np.ndarray | None, vocab: Vocab):
    import keras

    table = prosody.feature_table(vocab.tokens) if args.get("prosody_dim") else None
    model = build_model(**args, vectors=embedding, prosody=table)
    model.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate, clipnorm=cfg.train.clipnorm),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _load_checkpoint(ckpt: Path, args: dict):
    import keras

    from .model import custom_layers

    custom_layers()
    state = files.read_json(ckpt / "state.json", "training checkpoint")
    if state.get("model_args") != args:
        raise PoetryError(f"The checkpoint in {ckpt} was made with other settings; run without --resume to start over.")
    try:
        return keras.saving.load_model(ckpt / "last.keras"), state
    except Exception as exc:  # a torn or foreign file: Keras raises many types here
        raise PoetryError(f"The checkpoint {ckpt / 'last.keras'} cannot be loaded ({exc.__class__.__name__}); run without --resume.") from None


def _tf_config() -> dict | None:
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
                          '"task": {"type": "worker", "index": 0}}, naming this task among the chief or workers; see docs/distributed.md.')
    return conf


def _worker_role() -> tuple[int, int]:
    """(this process's place among the workers, how many workers) from TF_CONFIG; (0, 1) without one.

    Place 0 is the chief, which alone writes the model: the `chief` task if the cluster names one,
    else worker 0 (TensorFlow numbers them the same way).
    """
    conf = _tf_config()
    if conf is None:
        return 0, 1
    cluster, task = conf["cluster"], conf["task"]
    chiefs = len(cluster.get("chief", []))
    return int(task["index"]) + (chiefs if task["type"] == "worker" else 0), chiefs + len(cluster.get("worker", []))


def _keras_multi_worker_fixes() -> None:
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
    reduce_per_replica, symbolic_build = tf_trainer.reduce_per_replica, tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_scalars(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def local_first_batch(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is not None and strategy is not None and tf_trainer._collective_all_reduce_multi_worker(strategy):
            for _, _, it in iterator:
                data_batch = tree.map_structure(
                    lambda x: strategy.experimental_local_results(x)[0] if isinstance(x, tf.distribute.DistributedValues) else x, next(it))
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
    place, workers = _worker_role()
    if "tensorflow" not in sys.modules:
        from .model import _quiet_stderr

        with _quiet_stderr():  # TensorFlow's absl/CUDA start-up lines, as in import_keras
            import tensorflow  # noqa: F401
    import tensorflow as tf

    if workers > 1:
        conf = _tf_config()
        address = conf["cluster"][conf["task"]["type"]][int(conf["task"]["index"])]
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError:  # "Collective ops must be configured at program startup"
            raise PoetryError(f"TF_CONFIG names {workers} workers, but TensorFlow was already running in this process; "
                              "start each worker with `poetry-lstm train`, which sets the workers up first.") from None
        except tf.errors.OpError as exc:  # the gRPC server could not bind, or a peer answered wrongly
            raise PoetryError(f"Worker {place} could not start its server at {address} ({exc.message}); "
                              "free that port or name another in TF_CONFIG.") from None
        _keras_multi_worker_fixes()
    elif len(tf.config.list_physical_devices("GPU")) > 1:
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    start_distribution.strategy = strategy
    return strategy


def _distribution(log):
    """The strategy of `start_distribution`, said in the log: MultiWorkerMirroredStrategy across the
    TF_CONFIG workers, MirroredStrategy across several local GPUs, else the default, which runs as is."""
    import tensorflow as tf

    strategy = start_distribution()
    place, workers = _worker_role()
    if workers > 1:
        log(f"training data-parallel on {workers} workers (MultiWorkerMirroredStrategy, {strategy.num_replicas_in_sync} replicas); "
            f"this is worker {place}" + (", the chief: it writes the model and checkpoints" if place == 0 else ""))
    elif isinstance(strategy, tf.distribute.MirroredStrategy):
        log(f"training data-parallel on {strategy.num_replicas_in_sync} GPUs (MirroredStrategy)")
    return strategy


def _worker_dirs(cfg: Config, mode: str, resume: bool, log) -> tuple[Path, Path]:
    """(model directory, checkpoint folder) this process writes: `models/<mode>/` and
    `models/.train-<mode>/` on the chief; on every other worker, a temporary folder removed at exit.

    Every worker runs the same steps and callbacks, but only the chief's files count: workers that
    share a disk must not race on one file. With --resume such a worker starts from a copy of the
    chief's checkpoint when it can see one (a shared disk, or a copied folder); in word2vec mode it
    copies the chief's skip-gram vectors when they exist, saving their training.
    """
    models = Path(cfg.paths.models_dir)
    place, workers = _worker_role()
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
    log(f"worker {place} of {workers}: checkpoints and model go to {scratch} (removed at exit); the chief writes {models / mode}")
    return scratch / mode, ckpt


def _start_together(strategy, model, state: dict, vocab: Vocab) -> None:
    """With several workers: refuse unless all hold the same vocabulary and checkpoint, then give
    every worker the chief's weights.

    The strategy gives new variables the chief's initial values, but weights set afterwards stay
    local: skip-gram vectors (gensim with several threads differs from run to run) and a resumed
    checkpoint. Each worker's [epochs done, vocabulary CRC-32, weight count] goes in its own row of a
    summed (workers, 3) array, so every worker sees all rows and all refuse together; a mismatch
    found later, inside the weight sum, would hang instead.
    """
    place, workers = _worker_role()
    if workers < 2:
        return
    import zlib

    import tensorflow as tf

    weights = model.get_weights()
    rows = np.zeros((workers, 3))
    rows[place] = (state["epochs_done"], zlib.crc32("\n".join(vocab.tokens).encode("utf-8")), sum(w.size for w in weights))
    rows = strategy.reduce("SUM", tf.constant(rows), axis=None).numpy()  # (workers, 3)
    if not (rows == rows[0]).all():
        raise PoetryError(f"The {workers} workers do not start alike (epochs done per worker: {', '.join(str(int(r)) for r in rows[:, 0])}; "
                          f"same vocabulary: {'yes' if (rows[:, 1] == rows[0, 1]).all() else 'no'}); give every worker the same corpus/ "
                          "and, with --resume, a copy of the chief's checkpoint folder, or run them all without --resume.")
    # float64 holds every float32 and every integer seed state exactly: chief's values + zeros.
    flat = np.concatenate([w.ravel().astype(np.float64) for w in weights]) if place == 0 else np.zeros(int(rows[0, 2]))
    flat = strategy.reduce("SUM", tf.constant(flat), axis=None).numpy()  # (all weights,)
    ends = np.cumsum([w.size for w in weights])
    model.set_weights([part.reshape(w.shape).astype(w.dtype) for part, w in zip(np.split(flat, ends[:-1]), weights)])


def _any_worker(flag: bool) -> bool:
    """`flag` with one worker; with several, True on all when it is True on any (one all-reduce).

    A decision that ends training (the time budget) must be taken together: a worker that stops
    alone leaves the others waiting in their next gradient sum for ever. Every worker must call it
    at the same point, as epoch-end callbacks do.
    """
    if _worker_role()[1] < 2:
        return flag
    import tensorflow as tf

    return bool(start_distribution().reduce("SUM", tf.constant(float(flag)), axis=None).numpy() > 0)


def _fine_tune(cfg: Config, ckpt: Path, model, state: dict, vocab: Vocab, valid_ds, log, started: float, verbose: int) -> None:
    """Real 五绝 alone, from the best pretrained weights at a smaller learning rate; a fine-tune epoch
    that beats the pretrained valid loss becomes the best checkpoint, else the pretrained one stays."""
    m = cfg.model
    if state.get("phase", "pretrain") == "pretrain":
        model.load_weights(ckpt / "best.weights.h5")
        shutil.copyfile(ckpt / "best.weights.h5", ckpt / "pretrained.weights.h5")  # to measure what fine-tuning adds
        state.update(phase="finetune", wait=0, fine_tune_from=state["epochs_done"],
                     pretrain={"best_epoch": state["best_epoch"], "best_val_loss": state["best_val_loss"],
                               "best_val_perplexity": round(math.exp(state["best_val_loss"]), 2), "epochs": state["epochs_done"]})
        model.optimizer.learning_rate.assign(cfg.train.fine_tune_learning_rate)
        files.write_json(ckpt / "state.json", state)
    end = state["fine_tune_from"] + cfg.train.fine_tune_epochs
    if state["epochs_done"] >= end or state["wait"] >= min(2, cfg.train.patience):
        return
    quatrains = split_texts(cfg, False)["train"]
    log(f"fine-tuning on {len(quatrains)} real 五绝 for up to {cfg.train.fine_tune_epochs} epochs at learning rate {cfg.train.fine_tune_learning_rate:g}")
    ds = window_dataset(poem_ids(quatrains, vocab), m.window, m.stride, cfg.train.batch_size, cfg.train.shuffle_buffer,
                        cfg.train.seed + state["epochs_done"])
    model.fit(ds, validation_data=valid_ds, epochs=end, initial_epoch=state["epochs_done"], verbose=verbose, shuffle=False,
              callbacks=[_epoch_callback(cfg, ckpt, state, vocab, log, time.perf_counter(), started, phase="finetune",
                                         patience=min(2, cfg.train.patience))])


def _model_and_state(cfg: Config, ckpt: Path, args: dict, embedding, vocab: Vocab, resume: bool):
    """The compiled model and training state: from the checkpoint with --resume, else fresh."""
    if resume and (ckpt / "state.json").exists():
        return _load_checkpoint(ckpt, args)
    state = {"model_args": args, "epochs_done": 0, "best_val_loss": float("inf"), "best_epoch": 0, "wait": 0,
             "history": [], "seconds_before": 0.0}
    return _compiled(cfg, args, embedding, vocab), state


def train(cfg: Config, mode: str, *, resume: bool = False, retrain_vectors: bool = False, command: str = "", log=print) -> Path:
    """Train `mode` and write its model directory; returns that directory."""
    started = time.perf_counter()
    train_texts, valid_texts = training_texts(cfg)  # before TensorFlow loads: a missing corpus fails at once
    seed_everything(cfg.train.seed)
    out = Path(cfg.paths.models_dir) / mode
    ckpt = Path(cfg.paths.models_dir) / f".train-{mode}"
    # A run killed while it wrote leaves a half-built model folder and temporary checkpoint files.
    files.remove_stale_temps(out.parent, f".{out.name}.tmp-*")
    files.remove_stale_temps(ckpt, ".*.tmp*")
    vocab = Vocab.build(train_texts, cfg.model.min_char_count)
    embedding = None
    if mode == "word2vec":
        kv = prepare_vectors(cfg, train_texts, ckpt, retrain_vectors, log)
        embedding = vectors.embedding_matrix(kv, vocab.tokens, cfg.train.seed)
    args = model_args(cfg, mode, vocab, None if embedding is None else embedding.shape[1])
    with _distribution(log).scope():  # variables made here are mirrored across GPUs when there are several
        model, state = _model_and_state(cfg, ckpt, args, embedding, vocab, resume)
    state["commands"] = state.get("commands", []) + [command]  # a resumed model was made by every run in turn
    if state["epochs_done"]:
        if (ckpt / "vocab.json").exists() and Vocab.load(ckpt / "vocab.json") != vocab:
            raise PoetryError(f"The corpus changed since the checkpoint in {ckpt} (other vocabulary); run without --resume to start over.")
        state["seconds_before"] = state.get("seconds", state.get("seconds_before", 0.0))  # wall time of the runs before
        log(f"resuming after epoch {state['epochs_done']} from {ckpt}")
    vocab.save(ckpt / "vocab.json")
    m = cfg.model
    # A resumed run must not replay the first run's shuffle order: offset the seed by the epochs done.
    train_ds = window_dataset(poem_ids(train_texts, vocab), m.window, m.stride, cfg.train.batch_size, cfg.train.shuffle_buffer,
                              cfg.train.seed + state["epochs_done"])
    valid_ds = window_dataset(poem_ids(valid_texts, vocab), m.window, m.stride, cfg.train.batch_size)
    n_windows = count_windows(len(train_texts), 25, m.window, m.stride)
    log(f"{mode}: {len(train_texts)} training poems → {n_windows} windows of {m.window}; {len(valid_texts)} validation poems; "
        f"vocabulary {len(vocab)}; {model.count_params():,} parameters")
    steps = cfg.train.steps_per_epoch or None
    if steps:  # "epochs" of a fixed number of steps: validation and checkpoints come more often
        train_ds = train_ds.repeat()
    verbose = 1 if sys.stdout.isatty() else 2
    if state.get("phase", "pretrain") == "pretrain" and state["wait"] < cfg.train.patience and state["epochs_done"] < cfg.train.epochs:
        model.fit(train_ds, validation_data=valid_ds, epochs=cfg.train.epochs, initial_epoch=state["epochs_done"], steps_per_epoch=steps,
                  verbose=verbose, shuffle=False, callbacks=[_epoch_callback(cfg, ckpt, state, vocab, log, time.perf_counter(), started,
                                                                              budget_minutes=cfg.train.max_minutes)])
    if cfg.train.use_windows and cfg.train.fine_tune_epochs and (ckpt / "best.weights.h5").exists():
        _fine_tune(cfg, ckpt, model, state, vocab, valid_ds, log, started, verbose)
    state["seconds"] = state.get("seconds_before", 0.0) + time.perf_counter() - started
    state["seconds_before"] = state["seconds"]
    files.write_json(ckpt / "state.json", state)
    if not (ckpt / "best.weights.h5").exists():  # every validation loss was NaN
        raise PoetryError(f"Training reached no finite validation loss in {state['epochs_done']} epochs; lower [train] learning_rate and run again without --resume.")
    model.load_weights(ckpt / "best.weights.h5")
    test_texts = split_texts(cfg, False)["test"]
    write_model_dir(cfg, out, ckpt, model, args, vocab, train_texts, test_texts, state, command)
    log(f"saved {out} (best epoch {state['best_epoch']}, valid perplexity {math.exp(state['best_val_loss']):.1f})")
    return out


def _machine() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{platform.processor() or platform.machine()}, {len(gpus)} GPU(s), TensorFlow {tf.__version__}, Python {platform.python_version()}"


def write_model_dir(cfg: Config, out: Path, ckpt: Path, model, args: dict, vocab: Vocab, train_texts: list[str],
                    test_texts: list[str], state: dict, command: str) -> None:
    """Build the whole directory under a temporary name, then swap it in: never half-written."""
    from .card import model_card

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    os.chmod(tmp, 0o777 & ~files._UMASK)  # mkdtemp makes 0700; the model directory is for everyone to read
    try:
        clean_model = build_model(**args)  # no optimizer state: the shipped file stays small
        clean_model.set_weights(model.get_weights())
        clean_model.save(tmp / "model.keras")
        vocab.save(tmp / "vocab.json")
        report_path = Path(cfg.paths.corpus_dir) / "report.json"
        report = files.read_json(report_path, "corpus report")
        files.write_json(tmp / "corpus_report.json", report)
        hashes = line_hashes(train_texts)
        files.write_bytes(out.parent / HASH_FILE, hashes.to_bytes())  # shared by the models of this corpus
        files.write_json(tmp / "history.json", state["history"])
        config = {"model_args": args, "window": cfg.model.window, "stride": cfg.model.stride,
                  "min_char_count": cfg.model.min_char_count, "train": {**dataclasses.asdict(cfg.train), "mode": args["mode"]},
                  "vectors": dataclasses.asdict(cfg.vectors) if args["mode"] == "word2vec" else None,
                  "clean_forms": report.get("forms"), "command": command, "commands": state.get("commands", [command]), "machine": _machine(),
                  "wall_seconds": round(state["seconds"], 1), "best_epoch": state["best_epoch"],
                  "training_poems": len(train_texts), "train_lines": len(hashes), "train_lines_sha1": hashes.digest(),
                  "pretrain": state.get("pretrain"), "fine_tune_from_epoch": state.get("fine_tune_from")}
        files.write_json(tmp / "config.json", config)
        if (ckpt / "vectors").exists():
            shutil.copytree(ckpt / "vectors", tmp / "vectors")
        test = None
        if test_texts:
            from .evaluate import evaluate_model
            test = evaluate_model(TrainedModel(tmp, clean_model, vocab, config, LstmStepper(clean_model)), test_texts, train_texts)
            config["test"] = test
            files.write_json(tmp / "config.json", config)
        files.write_text(tmp / "card.md", model_card(tmp, config, report, test))
        old = out.parent / f".{out.name}.old"
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
