"""Train one model directory: `poetry-lstm train --mode word2vec` → `models/word2vec/`.

Corpus → vocabulary (+ skip-gram vectors) → windows → stacked LSTM, with early stopping on
validation loss, an atomic checkpoint every epoch (`models/.train-<mode>/`, for `--resume`), one
sample poem per epoch in the log, and finally an atomically swapped-in model directory. With
`use_windows`, it pretrains on every five-character poem's four-line windows, then fine-tunes on
real 五绝 alone (`fine_tune_epochs`), keeping whichever weights score best on the valid 五绝. With
`form="qijue"` (`train --form qijue`), the same for seven-character verse: corpus/qijue/ → models/qijue/<mode>/.
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
from typing import NamedTuple

import numpy as np

from . import files, layout, prosody, vectors
from .calibrate import calibrate
from .card import model_card
from .clean import load_corpus, texts_by_split
from .config import Config
from .distributed import any_worker, distribution, start_together, worker_dirs, worker_role
from .errors import PoetryError
from .evaluate import evaluate_model
from .loading import TrainedModel, load_model, store_weights_as, write_weight_index
from .metrics import HASH_FILE, LineHashes
from .modeldir import BACKWARD, Vocab, shape_of_args
from .network import (
    as_one_form,
    build_model,
    count_windows,
    custom_layers,
    poem_ids,
    seed_everything,
    use_full_softmax,
    use_sampled_softmax,
    window_dataset,
)
from .stepper import LstmStepper
from .tables import load_tables, write_tables
from .weightsfile import as_stored

MIN_TRAIN_POEMS = 20
# forward: line 1; backward: line 4 as it reads (更上一层楼, 轻舟已过万重山), by line length
SAMPLE_LINE = {5: ("白日依山尽", "楼层一上更"), 7: ("朝辞白帝彩云间", "山重万过已舟轻")}
PROGRESS_STEPS = 200  # a progress line in the log every this many training steps


def split_texts(cfg: Config, use_windows: bool) -> dict[str, list[str]]:
    """Poem texts per split of the corpus; windows of longer poems join train only when asked."""
    return texts_by_split(load_corpus(cfg), use_windows)


def training_texts(splits: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(train, valid) poem texts, refusing a corpus too small to learn from."""
    train, valid = splits["train"], splits["valid"]
    if len(train) < MIN_TRAIN_POEMS or not valid:
        raise PoetryError(f"The corpus has {len(train)} training and {len(valid)} validation poems, too few to train; "
                          f"crawl more poems (at least {MIN_TRAIN_POEMS} and a validation split) "
                          "with `poetry-lstm crawl`.")
    return train, valid


def model_args(cfg: Config, mode: str, vocab: Vocab, vector_dim: int | None,
               shape: layout.Shape = layout.FIVE) -> dict:
    m = cfg.model
    # Read backwards, line 2's end is no rhyme to come: the rhyme context means nothing there.
    args = {"vocab_size": len(vocab), "mode": mode, "units": m.units, "layers": m.layers, "dropout": m.dropout,
            "embedding_dim": vector_dim or m.embedding_dim, "fine_tune_vectors": cfg.train.fine_tune_vectors,
            "prosody_dim": prosody.feature_table(()).shape[1] if m.prosody else 0,
            "rhyme_context": m.rhyme_context and not m.reverse}
    # A 五绝 model's args stay as they always were, so its checkpoints resume and its folder reads the same.
    return args if shape == layout.FIVE else {**args, "chars": shape.chars}



def folder_name(cfg: Config, mode: str) -> str:
    """The model folder training writes under models_dir: the mode's, or `backward` for the backward scorer."""
    return BACKWARD if cfg.model.reverse else mode


def as_read(cfg: Config, splits: dict[str, list[str]], shape: layout.Shape = layout.FIVE) -> dict[str, list[str]]:
    """The poems of each split as the model reads them: backwards for the backward scorer."""
    if not cfg.model.reverse:
        return splits
    return {name: [shape.reverse_poem(p) for p in poems] for name, poems in splits.items()}


def sample_poem(stepper: LstmStepper, vocab: Vocab, first_line: str, rng: np.random.Generator,
                temperature: float = 0.8) -> str:
    """A quick unconstrained sample for the log: CJK characters only, punctuation placed by position
    (the first line's length gives the shape)."""
    shape = layout.shape_for(len(first_line))
    allowed = np.array([len(t) == 1 and "\u3400" <= t <= "\u9fff" for t in vocab.tokens])
    text = first_line + "，"
    logp, state = stepper.run(vocab.encode(text))
    for pos in range(len(text), shape.slots):
        if pos in shape.marks:
            ch = shape.marks[pos]
        else:
            z = np.where(allowed, logp[0] / temperature, -np.inf)
            p = np.exp(z - z.max())  # shifted: a confident model must not underflow every allowed character to 0
            ch = vocab.tokens[rng.choice(len(p), p=p / p.sum())]
        text += ch
        logp, state = stepper.step(np.array([vocab.id(ch)]), state)
    return text


def epoch_callback(cfg, ckpt: Path, state: dict, vocab: Vocab, log, run_started: float, started: float,
                    phase: str = "pretrain", budget_minutes: float = 0, patience: int = 0):
    import keras

    class EpochEnd(keras.callbacks.Callback):
        """History, atomic checkpoints, early stopping and a sample poem, all resumable from state.json."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.epoch = time.perf_counter(), epoch

        def on_train_batch_end(self, batch, logs=None):
            # An epoch on two cores takes ~10 minutes: a log file should show it moving.
            if (batch + 1) % PROGRESS_STEPS == 0 and logs and "loss" in logs:
                log(f"{phase} epoch {self.epoch + 1}: step {batch + 1}, loss {float(logs['loss']):.3f} "
                    f"({time.perf_counter() - self.started:.0f} s)")

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, "phase": phase, "loss": logs["loss"], "val_loss": logs["val_loss"],
                   "perplexity": math.exp(logs["loss"]), "val_perplexity": math.exp(logs["val_loss"]),
                   "accuracy": logs["accuracy"], "val_accuracy": logs["val_accuracy"],
                   "seconds": round(time.perf_counter() - self.started, 1)}
            if getattr(self.model, "sampled_softmax", 0):  # a sampled loss: no training perplexity or accuracy
                row.update(perplexity=None, accuracy=None, sampled_softmax=self.model.sampled_softmax)
            # a network for both forms also logs each form's valid perplexity (poetry_lstm/joint.py)
            row.update({k: v for k, v in logs.items() if k.startswith(("val_perplexity_", "val_accuracy_"))})
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
            args = state["model_args"]
            shape = shape_of_args(args)
            # a network for both forms samples as a 五绝 network (the stepper reads the fixed place only)
            net = as_one_form(self.model, args, shape.chars) if "period_id" in args else self.model
            sample = sample_poem(LstmStepper(net), vocab, SAMPLE_LINE[shape.chars][cfg.model.reverse],
                                 np.random.default_rng(epoch))
            sample = shape.reverse_poem(sample) if cfg.model.reverse else sample  # shown as it is read
            log(f"{phase} epoch {epoch + 1}: loss {row['loss']:.3f} val_loss {row['val_loss']:.3f} "
                f"val_ppl {row['val_perplexity']:.1f} ({row['seconds']:.0f} s)  sample: {sample}")
            # all workers stop together
            if budget_minutes and any_worker(time.perf_counter() - run_started > 60 * budget_minutes):
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


def compiled_model(cfg: Config, args: dict, embedding: np.ndarray | None, vocab: Vocab):
    import keras

    table = prosody.feature_table(vocab.tokens) if args.get("prosody_dim") else None
    model = build_model(**args, vectors=embedding, prosody=table)
    model.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate, clipnorm=cfg.train.clipnorm),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def pretraining_softmax(cfg: Config, model, vocab: Vocab) -> None:
    """Pretrain on a sampled softmax when [train] sampled_softmax asks for one (fine-tuning undoes it)."""
    k = cfg.train.sampled_softmax
    if not k:
        return
    if k >= len(vocab):
        raise PoetryError(f"--sampled-softmax {k} is not fewer than the vocabulary's {len(vocab)} characters; "
                          "choose fewer (1024 is a good start), or 0 for the full softmax.")
    if model.distribute_strategy.num_replicas_in_sync > 1:
        raise PoetryError("The sampled softmax trains on one device only; run without --sampled-softmax "
                          "on several GPUs or workers.")
    use_sampled_softmax(model, k, vocab.counts)


def load_checkpoint(ckpt: Path, args: dict):
    import keras

    custom_layers()
    state = files.read_json(ckpt / "state.json", "training checkpoint")
    if state.get("model_args") != args:
        raise PoetryError(f"The checkpoint in {ckpt} was made with other settings; run without --resume to start over.")
    try:
        return keras.saving.load_model(ckpt / "last.keras"), state
    except Exception as exc:  # a torn or foreign file: Keras raises many types here
        raise PoetryError(f"The checkpoint {ckpt / 'last.keras'} cannot be loaded ({exc.__class__.__name__}); "
                          "run without --resume.") from None


def fine_tune(cfg: Config, ckpt: Path, model, state: dict, vocab: Vocab, quatrains: list[str], valid_ds, log,
               started: float, verbose: int) -> None:
    """Real 五绝 (a 七绝 model: real 七绝) alone, from the best pretrained weights at a smaller learning rate; a
    fine-tune epoch that beats the pretrained valid loss becomes the best checkpoint, else the pretrained one stays."""
    m = cfg.model
    use_full_softmax(model)  # the last epochs learn exactly what validation measures
    if state.get("phase", "pretrain") == "pretrain":
        model.load_weights(ckpt / "best.weights.h5")
        shutil.copyfile(ckpt / "best.weights.h5", ckpt / "pretrained.weights.h5")  # to measure what fine-tuning adds
        state.update(phase="finetune", wait=0, fine_tune_from=state["epochs_done"],
                     pretrain={"best_epoch": state["best_epoch"], "best_val_loss": state["best_val_loss"],
                               "best_val_perplexity": round(math.exp(state["best_val_loss"]), 2),
                               "epochs": state["epochs_done"]})
        model.optimizer.learning_rate.assign(cfg.train.fine_tune_learning_rate)
        files.write_json(ckpt / "state.json", state)
    end = state["fine_tune_from"] + cfg.train.fine_tune_epochs
    if state["epochs_done"] >= end or state["wait"] >= min(2, cfg.train.patience):
        return
    label = shape_of_args(state["model_args"]).label
    log(f"fine-tuning on {len(quatrains)} real {label} for up to {cfg.train.fine_tune_epochs} epochs "
        f"at learning rate {cfg.train.fine_tune_learning_rate:g}")
    ds = window_dataset(poem_ids(quatrains, vocab), m.window, m.stride, cfg.train.batch_size, cfg.train.shuffle_buffer,
                        cfg.train.seed + state["epochs_done"])
    model.fit(ds, validation_data=valid_ds, epochs=end, initial_epoch=state["epochs_done"], verbose=verbose,
              shuffle=False,
              callbacks=[epoch_callback(cfg, ckpt, state, vocab, log, time.perf_counter(), started, phase="finetune",
                                         patience=min(2, cfg.train.patience))])


def model_and_state(cfg: Config, ckpt: Path, args: dict, embedding, vocab: Vocab, resume: bool):
    """The compiled model and training state: from the checkpoint with --resume, else fresh."""
    if resume and (ckpt / "state.json").exists():
        return load_checkpoint(ckpt, args)
    state = {"model_args": args, "epochs_done": 0, "best_val_loss": float("inf"), "best_epoch": 0, "wait": 0,
             "history": [], "seconds_before": 0.0}
    return compiled_model(cfg, args, embedding, vocab), state


def warm_sources(folders: tuple[Path, ...], vocab: Vocab, train_texts: list[str], cfg: Config, mode: str,
                 ckpt: Path) -> list[TrainedModel]:
    """The model folders a run starts from, loaded as every folder is (`loading.load_model`), refusing those it
    cannot start from (other tokens, other vectors); a word2vec run takes the first one's skip-gram vectors, which
    its frozen embedding holds, into its checkpoint."""
    sources = []
    for folder in folders:
        if not (folder / "model.keras").exists() or not (folder / "vocab.json").exists():
            raise PoetryError(f"{folder} is not a model folder (no model.keras and vocab.json); "
                              "give --init-from a folder that `poetry-lstm train` wrote.")
        source = load_model(folder, keras=True, overuse=False, line_hashes=False, backward=False)
        if source.vocab.tokens != vocab.tokens:
            raise PoetryError(f"The model in {folder} learned another vocabulary than this corpus gives; "
                              "start from a model trained on this corpus, or train without --init-from.")
        sources.append(source)
    if mode == "word2vec":
        found = folders[0] / "vectors"
        if vectors.matching_vectors(found, train_texts, cfg.vectors) is None:
            raise PoetryError(f"The skip-gram vectors in {found} were made from other texts or settings than this "
                              "run's; start from a model of the same --form and corpus, or train without --init-from.")
        shutil.rmtree(ckpt / "vectors", ignore_errors=True)
        shutil.copytree(found, ckpt / "vectors")
    return sources


def widened(model, source) -> list[np.ndarray]:
    """`source`'s weights (a Keras model of fewer LSTM units a layer, same layers otherwise) in `model`'s shapes,
    so that `model` computes exactly what `source` does (Net2Net's function-preserving widening): the old units
    keep their weights, the new ones keep `model`'s own fresh ones, and every path from a new unit into an old
    unit or into the output starts at 0 and learns. Keras LSTM weights: kernel (in, 4u), recurrent (u, 4u),
    bias (4u), the gates i, f, c, o in blocks of u."""
    out = []
    for layer in model.layers:
        fresh = layer.get_weights()
        if not fresh:
            continue
        old = source.get_layer(layer.name).get_weights()
        if all(a.shape == b.shape for a, b in zip(fresh, old)):
            out += old
        elif layer.name.startswith("lstm_"):
            kernel, recurrent, bias = (w.copy() for w in fresh)
            k_old, r_old, b_old = old
            u, big, rows = r_old.shape[0], recurrent.shape[0], k_old.shape[0]  # a wider input only after lstm_0
            for g in range(4):
                new_cols, old_cols = slice(g * big, g * big + u), slice(g * u, (g + 1) * u)
                kernel[:, new_cols], recurrent[:, new_cols] = 0.0, 0.0  # new inputs into old units: none yet
                kernel[:rows, new_cols], recurrent[:u, new_cols] = k_old[:, old_cols], r_old[:, old_cols]
                bias[new_cols] = b_old[old_cols]
            out += [kernel, recurrent, bias]
        else:  # next_char, group_scores: (units, n) and (n,); a new unit adds nothing yet
            kernel = np.zeros_like(fresh[0])
            kernel[:old[0].shape[0]] = old[0]
            out += [kernel, *old[1:]]
    return out


def warm_start(model, sources: list[TrainedModel], log, args: dict) -> list[dict]:
    """Set `model`'s weights to the mean of the loaded folders' (one folder: its own), layer by layer; a network
    for both forms takes a form's copy, since neither rhyme-context layer holds weights. A source of fewer units
    a layer than this run's `args` is widened first (`widened`). Returns where each came from, with the commands
    that made it, for the new model's config and card."""
    mine = [w.shape for w in model.get_weights()]
    sums, made_by, wider = None, [], False
    for source in sources:
        weights = source.keras_model.get_weights()
        if [w.shape for w in weights] != mine and _only_narrower(source.config.get("model_args", {}), args):
            weights, wider = widened(model, source.keras_model), True
        weights = [w.astype(np.float64) for w in weights]
        if [w.shape for w in weights] != mine:
            raise PoetryError(f"The network in {source.path} has other shapes than this run's (units, layers, mode); "
                              "give the settings it was trained with (its card.md), or train without --init-from.")
        sums = weights if sums is None else [a + b for a, b in zip(sums, weights)]
        config = source.config
        made_by.append({"folder": str(source.path), "commands": config.get("commands") or [config.get("command")],
                        "pretrain_epochs": (config.get("pretrain") or {}).get("epochs") or config.get("best_epoch"),
                        "best_epoch": config.get("best_epoch"), "test": config.get("test"),
                        "units": config.get("model_args", {}).get("units")})
    model.set_weights([(w / len(sources)).astype(np.float32) for w in sums])
    log("starting from the weights of " + " and ".join(str(s.path) for s in sources)
        + (" (their mean)" if len(sources) > 1 else "")
        + (f", widened to {model.get_layer('lstm_0').units} units a layer" if wider else ""))
    return made_by


def _only_narrower(theirs: dict, mine: dict) -> bool:
    """Whether a source network of model_args `theirs` differs from this run's `mine` only by fewer LSTM units
    (dropout holds no weights; a form's copy reads line 2's end at a fixed place, the joint network by its 。)."""
    same = lambda args: {k: v for k, v in args.items() if k not in ("units", "dropout", "period_id", "chars")}
    return bool(theirs.get("units")) and theirs["units"] < mine.get("units", 0) and same(theirs) == same(mine)


class Run(NamedTuple):
    """What a training run works with, fresh or resumed."""
    out: Path            # the model folder it writes
    ckpt: Path           # its checkpoint folder
    vocab: Vocab
    embedding: np.ndarray | None  # (vocab, dim) skip-gram vectors in word2vec mode
    args: dict           # model_args
    model: object        # the compiled Keras model
    state: dict          # state.json: epochs, best loss, history


def prepare_run(cfg: Config, mode: str, folder: str, train_texts: list[str], shape: layout.Shape | None,
                resume: bool, retrain_vectors: bool, command: str, log, init_from: tuple[Path, ...] = ()) -> Run:
    """Vocabulary, vectors, model and state of a run with checkpoints in models/.train-<folder>/ (writing
    models/<folder>/, but a network for both forms, `shape` None, writes its forms' folders), from the checkpoint
    with `resume`; a fresh run starts from the mean weights of the model folders `init_from`, if given."""
    # the chief writes models/; other workers a temporary folder
    out, ckpt = worker_dirs(cfg, folder, resume, log)
    # A run killed while it wrote leaves a half-built model folder and temporary checkpoint files.
    files.remove_stale_temps(out.parent, f".{out.name}.tmp-*")
    files.remove_stale_temps(ckpt, ".*.tmp*")
    vocab = Vocab.build(train_texts, cfg.model.min_char_count)
    warm = bool(init_from) and not (resume and (ckpt / "state.json").exists())  # a resumed one holds them already
    sources = warm_sources(init_from, vocab, train_texts, cfg, mode, ckpt) if warm else []
    embedding = None
    if mode == "word2vec":
        kv = prepare_vectors(cfg, train_texts, ckpt, retrain_vectors, log)
        embedding = vectors.embedding_matrix(kv, vocab.tokens, cfg.train.seed)
    args = model_args(cfg, mode, vocab, None if embedding is None else embedding.shape[1], shape or layout.FIVE)
    if shape is None:  # line 2's end found before each poem's first 。, whatever its line length
        args["period_id"] = vocab.id("。")
    strategy = distribution(log)
    with strategy.scope():  # variables made here are mirrored across GPUs and workers
        model, state = model_and_state(cfg, ckpt, args, embedding, vocab, resume)
        if sources:
            state["init_from"] = warm_start(model, sources, log, args)
            # a new shuffle order, not the source run's first epochs again
            state["seed_offset"] = max(src["pretrain_epochs"] or 0 for src in state["init_from"])
            state["commands"] = list(dict.fromkeys(c for src in state["init_from"] for c in src["commands"]))
    start_together(strategy, model, state, vocab)  # several workers: same corpus and checkpoint, the chief's weights
    state["commands"] = state.get("commands", []) + [command]  # a resumed model was made by every run in turn
    if state["epochs_done"]:
        if (ckpt / "vocab.json").exists() and Vocab.load(ckpt / "vocab.json") != vocab:
            raise PoetryError(f"The corpus changed since the checkpoint in {ckpt} (other vocabulary); "
                              "run without --resume to start over.")
        state["seconds_before"] = state.get("seconds", state.get("seconds_before", 0.0))  # wall time of the runs before
        log(f"resuming after epoch {state['epochs_done']} from {ckpt}")
    vocab.save(ckpt / "vocab.json")
    return Run(out, ckpt, vocab, embedding, args, model, state)


def train(cfg: Config, mode: str, *, form: str = "wujue", resume: bool = False, retrain_vectors: bool = False,
          command: str = "", log=print, init_from: tuple[Path, ...] = ()) -> Path:
    """Train `mode` for `form` (wujue, or qijue: corpus/qijue/ into models/qijue/) and write its model
    directory; returns that directory."""
    started = time.perf_counter()
    cfg, shape = cfg.for_form(form), layout.FORMS[form]
    records = load_corpus(cfg)  # read once: the 100 MB corpus gives the training texts, the 五绝 and the test poems
    quatrains = as_read(cfg, texts_by_split(records, False), shape)  # real quatrains: fine-tuning and the test scores
    # before TensorFlow loads
    train_texts, valid_texts = training_texts(as_read(cfg, texts_by_split(records, cfg.train.use_windows), shape))
    seed_everything(cfg.train.seed)
    run = prepare_run(cfg, mode, folder_name(cfg, mode), train_texts, shape, resume, retrain_vectors, command, log,
                      init_from)
    out, ckpt, vocab, model, state = run.out, run.ckpt, run.vocab, run.model, run.state
    m = cfg.model
    # A resumed run must not replay the first run's shuffle order: offset the seed by the epochs done.
    train_ds = window_dataset(poem_ids(train_texts, vocab), m.window, m.stride, cfg.train.batch_size,
                              cfg.train.shuffle_buffer,
                              cfg.train.seed + state["epochs_done"] + state.get("seed_offset", 0))
    valid_ds = window_dataset(poem_ids(valid_texts, vocab), m.window, m.stride, cfg.train.batch_size)
    n_windows = count_windows(len(train_texts), shape.slots + 1, m.window, m.stride)
    log(f"{mode}: {len(train_texts)} training poems → {n_windows} windows of {m.window}; "
        f"{len(valid_texts)} validation poems; "
        f"vocabulary {len(vocab)}; {model.count_params():,} parameters")
    steps = cfg.train.steps_per_epoch or None
    if steps:  # "epochs" of a fixed number of steps: validation and checkpoints come more often
        train_ds = train_ds.repeat()
    verbose = 1 if sys.stdout.isatty() else 2
    if (state.get("phase", "pretrain") == "pretrain" and state["wait"] < cfg.train.patience
            and state["epochs_done"] < cfg.train.epochs):
        pretraining_softmax(cfg, model, vocab)
        model.fit(train_ds, validation_data=valid_ds, epochs=cfg.train.epochs, initial_epoch=state["epochs_done"],
                  steps_per_epoch=steps, verbose=verbose, shuffle=False,
                  callbacks=[epoch_callback(cfg, ckpt, state, vocab, log, time.perf_counter(), started,
                                             budget_minutes=cfg.train.max_minutes)])
    if cfg.train.use_windows and cfg.train.fine_tune_epochs and (ckpt / "best.weights.h5").exists():
        fine_tune(cfg, ckpt, model, state, vocab, quatrains["train"], valid_ds, log, started, verbose)
    finish_model(cfg, out, ckpt, model, vocab, train_texts, quatrains, state, command, started, log)
    return out


def finish_model(cfg: Config, out: Path, ckpt: Path, model, vocab: Vocab, train_texts: list[str],
                 quatrains: dict[str, list[str]], state: dict, command: str, started: float, log) -> None:
    """The best checkpoint into the model folder `out`, scored on the test quatrains, then its over-used
    characters measured."""
    state["seconds"] = state.get("seconds_before", 0.0) + time.perf_counter() - started
    state["seconds_before"] = state["seconds"]
    files.write_json(ckpt / "state.json", state)
    if not (ckpt / "best.weights.h5").exists():  # every validation loss was NaN
        raise PoetryError(f"Training reached no finite validation loss in {state['epochs_done']} epochs; "
                          "lower [train] learning_rate and run again without --resume.")
    model.load_weights(ckpt / "best.weights.h5")
    write_model_dir(cfg, out, ckpt, model, state["model_args"], vocab, train_texts, quatrains["test"], state, command)
    log(f"saved {out} (best epoch {state['best_epoch']}, valid perplexity {math.exp(state['best_val_loss']):.1f})")
    # other workers write scratch folders; the backward scorer writes no poems to measure
    if cfg.train.overuse_poems and quatrains["train"] and worker_role()[0] == 0 and not cfg.model.reverse:
        # The decoder's over-used characters belong to this model: measure them now (`poetry-lstm calibrate`
        # again later).
        calibrate(load_model(out, overuse=False), quatrains["train"], cfg, log)


def _machine() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return (f"{platform.processor() or platform.machine()}, {len(gpus)} GPU(s), TensorFlow {tf.__version__}, "
            f"Python {platform.python_version()}")


def save_weights(folder: Path, model, args: dict, dtype: str):
    """`model`'s weights as `folder`/model.keras at `dtype`, with its weights index; returns the network built from
    `args` holding them rounded as stored (no optimizer state: the shipped file stays small), so scores taken from
    it are the stored file's."""
    clean_model = build_model(**args)
    clean_model.set_weights([as_stored(w, dtype) for w in model.get_weights()])
    clean_model.save(folder / "model.keras")
    store_weights_as(folder, dtype)
    write_weight_index(folder)
    return clean_model


def write_model_dir(cfg: Config, out: Path, ckpt: Path, model, args: dict, vocab: Vocab, train_texts: list[str],
                    test_texts: list[str], state: dict, command: str) -> None:
    """Build the whole directory under a temporary name, then swap it in: never half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    os.chmod(tmp, 0o777 & ~files._UMASK)  # mkdtemp makes 0700; the model directory is for everyone to read
    try:
        clean_model = save_weights(tmp, model, args, cfg.model.weights_dtype)
        vocab.save(tmp / "vocab.json")
        write_tables(tmp, vocab)
        report_path = Path(cfg.paths.corpus_dir) / "report.json"
        report = files.read_json(report_path, "corpus report")
        files.write_json(tmp / "corpus_report.json", report)
        # The copy check reads the lines as written; the backward scorer's lines are the forward models' lines,
        # whose file it leaves alone: config.json keeps only their count and digest.
        written = [shape_of_args(args).reverse_poem(p) for p in train_texts] if cfg.model.reverse else train_texts
        hashes = LineHashes.of_poems(written)
        if not cfg.model.reverse:
            files.write_bytes(tmp / HASH_FILE, hashes.to_bytes())  # moves beside the model folders once it is in
        files.write_json(tmp / "history.json", state["history"])
        config = {"model_args": args, "window": cfg.model.window, "stride": cfg.model.stride,
                  "min_char_count": cfg.model.min_char_count,
                  "train": {**dataclasses.asdict(cfg.train), "mode": args["mode"]},
                  "vectors": dataclasses.asdict(cfg.vectors) if args["mode"] == "word2vec" else None,
                  "reverse": cfg.model.reverse, "weights_dtype": cfg.model.weights_dtype,
                  "clean_forms": report.get("forms"), "command": command,
                  "commands": state.get("commands", [command]),
                  "machine": _machine(),
                  "wall_seconds": round(state["seconds"], 1), "best_epoch": state["best_epoch"],
                  "training_poems": len(train_texts), "train_lines": len(hashes), "train_lines_sha1": hashes.digest(),
                  "pretrain": state.get("pretrain"), "fine_tune_from_epoch": state.get("fine_tune_from"),
                  "joint": state.get("joint"),  # pretrained on both forms (poetry_lstm/joint.py), else None
                  "init_from": state.get("init_from")}  # the model folders a warm-started run began from
        files.write_json(tmp / "config.json", config)
        # the backward scorer's input vectors are in its model.keras, and no theme reads them
        if (ckpt / "vectors").exists() and not cfg.model.reverse:
            shutil.copytree(ckpt / "vectors", tmp / "vectors")
        test = None
        if test_texts:
            trained = TrainedModel(tmp, vocab, config, LstmStepper(clean_model), load_tables(tmp, vocab),
                                   np.zeros(len(vocab), np.float32), clean_model)
            test = evaluate_model(trained, test_texts, train_texts)
            config["test"] = test
            files.write_json(tmp / "config.json", config)
        files.write_text(tmp / "card.md", model_card(tmp, config, report, test))
        files.swap_folder(tmp, out)
        if not cfg.model.reverse:
            os.replace(out / HASH_FILE, out.parent / HASH_FILE)  # shared by the models of one corpus
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
