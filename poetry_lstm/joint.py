"""One network for both forms: `poetry-lstm train --mode word2vec --form both` → `models/<mode>/` and
`models/qijue/<mode>/`.

One network learning 五绝 and 七绝 together beat two networks at equal budgets (bench/joint_forms.py,
docs/tuning.md round 12): what a poem of one line length teaches carries over to the other. This pretrains one
network on both corpora (each form's texts with the windows of its longer poems): every batch holds windows of
one form, 五绝 and 七绝 drawn half and half, over one vocabulary and skip-gram vectors learned on both, the
rhyme context finding line 2's end before each poem's first 。. Validation scores each form's valid quatrains
and stops early on their mean loss; checkpoints go to models/.train-joint-<mode>/ (`--resume`). Then each form
fine-tunes its own copy on its real quatrains (the optimizer carried on, at the fine-tuning rate), the rhyme context
at its fixed place (the network the decoder runs), and writes its model folder as `train --form` does: the two folders
share tokens and vectors, each with its own form's character counts. A fresh run, or one whose pretraining went on,
starts the forms' copies over; a resumed run finds each form where it stopped.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path

from . import files, layout
from .clean import load_corpus, texts_by_split
from .config import Config
from .distributed import distribution, start_together, worker_role
from .errors import PoetryError
from .network import poem_ids, seed_everything, window_dataset
from .train import (
    Run,
    compiled_model,
    epoch_callback,
    fine_tune,
    finish_model,
    load_checkpoint,
    model_args,
    prepare_run,
    pretraining_softmax,
    training_texts,
)

FORMS = tuple(layout.FORMS)  # wujue, qijue: the order of the validation scores and the model folders written


def form_data(cfg: Config, form: str) -> tuple[Config, list[str], list[str], dict[str, list[str]]]:
    """(the config for `form`, training texts with windows, valid texts, real quatrains per split)."""
    fcfg = cfg.for_form(form)
    records = load_corpus(fcfg)
    train_texts, valid_texts = training_texts(texts_by_split(records, fcfg.train.use_windows))
    return fcfg, train_texts, valid_texts, texts_by_split(records, False)


def both_forms_dataset(data: dict, vocab, batch_size: int, shuffle: int, seed: int):
    """Batches of one form each, 五绝 and 七绝 drawn half and half at random, without end:
    (inputs, targets), each (batch, 24) or (batch, 32)."""
    import tensorflow as tf

    parts = [window_dataset(poem_ids(data[form][1], vocab), data[form][0].model.window, data[form][0].model.stride,
                            batch_size, shuffle, seed).repeat() for form in FORMS]
    return tf.data.Dataset.sample_from_datasets(parts, weights=[0.5, 0.5], seed=seed)


def valid_datasets(data: dict, vocab, batch_size: int) -> dict:
    """{form: its valid texts' windows}."""
    return {form: window_dataset(poem_ids(data[form][2], vocab), data[form][0].model.window,
                                 data[form][0].model.stride, batch_size) for form in FORMS}


def validate_each_form(valid: dict):
    """A callback that fills the epoch's val_loss and val_accuracy with the mean of the forms' (each form
    weighing the same, whatever its valid set's size), and val_perplexity_<form>, val_accuracy_<form>;
    it must come before the checkpointing callback, which reads them."""
    import keras

    class ValidateEachForm(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses, accuracies = [], []
            for form, ds in valid.items():
                loss, accuracy = self.model.evaluate(ds, verbose=0)
                logs[f"val_perplexity_{form}"], logs[f"val_accuracy_{form}"] = math.exp(loss), accuracy
                losses.append(loss)
                accuracies.append(accuracy)
            logs["val_loss"], logs["val_accuracy"] = sum(losses) / len(losses), sum(accuracies) / len(accuracies)

    return ValidateEachForm()


def train_joint(cfg: Config, mode: str, *, resume: bool = False, retrain_vectors: bool = False, command: str = "",
                log=print, init_from: tuple[Path, ...] = ()) -> list[Path]:
    """Pretrain one `mode` network on both forms, then fine-tune and write each form's model folder;
    returns those folders (五绝's, 七绝's)."""
    started = time.perf_counter()
    if cfg.model.reverse:
        raise PoetryError("The backward scorer learns 五绝 alone; train it without --form both.")
    if not cfg.train.steps_per_epoch:
        raise PoetryError("A network for both forms draws batches from both corpora without end; "
                          "set [train] steps_per_epoch above 0.")
    data = {form: form_data(cfg, form) for form in FORMS}  # before TensorFlow loads
    seed_everything(cfg.train.seed)
    run = prepare_run(cfg, mode, f"joint-{mode}", [t for form in FORMS for t in data[form][1]], None, resume,
                      retrain_vectors, command, log, init_from)
    state, t = run.state, cfg.train
    state["training_texts"] = {form: len(data[form][1]) for form in FORMS}
    valid = valid_datasets(data, run.vocab, t.batch_size)
    log(f"{mode} for both forms: " + ", ".join(f"{len(data[f][1])} {layout.FORMS[f].label}-shaped training texts"
                                              for f in FORMS)
        + f"; vocabulary {len(run.vocab)}; {run.model.count_params():,} parameters")
    verbose = 1 if sys.stdout.isatty() else 2
    pretraining = (state.get("phase", "pretrain") == "pretrain" and state["wait"] < t.patience
                   and state["epochs_done"] < t.epochs)
    if resume and state.get("phase") == "forms" and state["epochs_done"] < t.epochs:
        # its budget or early stopping ended pretraining; going on here would overwrite the forms it fine-tuned
        log(f"pretraining ended after epoch {state['epochs_done']}; to train further, start a new run from what it "
            f"wrote: --init-from {Path(cfg.paths.models_dir) / mode} --init-from "
            f"{Path(cfg.for_form('qijue').paths.models_dir) / mode}")
    if pretraining or not resume:  # the forms' copies of an earlier run (or of fewer epochs) are stale
        for form in FORMS:
            shutil.rmtree(run.ckpt / form, ignore_errors=True)
    if pretraining:
        # A resumed run must not replay the first run's shuffle order: offset the seed by the epochs done.
        ds = both_forms_dataset(data, run.vocab, t.batch_size, t.shuffle_buffer,
                                t.seed + state["epochs_done"] + state.get("seed_offset", 0))
        pretraining_softmax(cfg, run.model, run.vocab)
        run.model.fit(ds, epochs=t.epochs, initial_epoch=state["epochs_done"], steps_per_epoch=t.steps_per_epoch,
                      verbose=verbose, shuffle=False,
                      callbacks=[validate_each_form(valid),
                                 epoch_callback(cfg, run.ckpt, state, run.vocab, log, time.perf_counter(), started,
                                                budget_minutes=t.max_minutes)])
    if not (run.ckpt / "best.weights.h5").exists():  # every validation loss was NaN
        raise PoetryError(f"Training reached no finite validation loss in {state['epochs_done']} epochs; "
                          "lower [train] learning_rate and run again without --resume.")
    state["phase"] = "forms"
    state["seconds"] = state.get("seconds_before", 0.0) + time.perf_counter() - started
    files.write_json(run.ckpt / "state.json", state)
    run.model.load_weights(run.ckpt / "best.weights.h5")
    return [fine_tune_form(cfg, form, mode, run, data[form], valid[form], command, log, verbose) for form in FORMS]


def fine_tune_form(cfg: Config, form: str, mode: str, run: Run, data: tuple, valid_ds, command: str, log,
                   verbose: int) -> Path:
    """One form's copy of the pretrained network, fine-tuned on its real quatrains (checkpoints in
    models/.train-joint-<mode>/<form>/), written to its model folder."""
    started = time.perf_counter()
    fcfg, train_texts, _, quatrains = data
    fckpt = run.ckpt / form
    # the shared tokens, with this form's counts and 叠字 places: the decoder's frequency penalty and 叠字 read them
    vocab = run.vocab.with_stats(train_texts)
    args = model_args(fcfg, mode, run.vocab, run.args["embedding_dim"], layout.FORMS[form])
    out = Path(fcfg.paths.models_dir) / mode if worker_role()[0] == 0 else run.out / form  # others: scratch
    # a run killed while it wrote leaves a half-built model folder and temporary checkpoint files
    files.remove_stale_temps(out.parent, f".{out.name}.tmp-*")
    files.remove_stale_temps(fckpt, ".*.tmp*")
    strategy = distribution(log)
    if (fckpt / "state.json").exists():
        with strategy.scope():  # variables made here are mirrored across GPUs and workers
            model, state = load_checkpoint(fckpt, args)
        state["seconds_before"] = state.get("seconds", state["seconds_before"])
        state["commands"] = run.state["commands"]
        if state.get("written") == run.state["best_epoch"]:
            log(f"{out} was written from this run's best epoch already")
            return out
    else:
        with strategy.scope():
            model, state = form_copy(fcfg, form, args, run, fckpt, valid_ds, log)
    start_together(strategy, model, state, vocab)  # several workers: the chief's weights
    if fcfg.train.fine_tune_epochs:
        fine_tune(fcfg, fckpt, model, state, vocab, quatrains["train"], valid_ds, log, started, verbose)
    finish_model(fcfg, out, fckpt, model, vocab, train_texts, quatrains, state, command, started, log)
    state["written"] = run.state["best_epoch"]
    files.write_json(fckpt / "state.json", state)
    return out


def carry_optimizer(source, target) -> None:
    """Adam's step count and moments of `source` into `target`'s optimizer, variable by variable (the same
    layers in the same order), as a single form's fine-tuning carries its pretraining's on."""
    target.optimizer.build(target.trainable_variables)
    theirs = {v.path.split("/", 1)[-1]: v for v in source.optimizer.variables}
    for mine in target.optimizer.variables:
        match = theirs.get(mine.path.split("/", 1)[-1])
        if match is not None and tuple(match.shape) == tuple(mine.shape):
            mine.assign(match)


def form_copy(fcfg: Config, form: str, args: dict, run: Run, fckpt: Path, valid_ds, log):
    """The pretrained network's best weights in one form's network (its optimizer carried on), with the state a
    checkpoint of that form's pretraining would hold: its
    valid loss and its own column of the joint history. Written before it is returned, so a kill resumes here."""
    model = compiled_model(fcfg, args, run.embedding, run.vocab)
    model.set_weights(run.model.get_weights())  # neither rhyme-context layer holds weights: the lists match
    carry_optimizer(run.model, model)
    loss = model.evaluate(valid_ds, verbose=0)[0]
    label = layout.FORMS[form].label
    log(f"{label}: the pretrained network's best epoch {run.state['best_epoch']} scores valid perplexity "
        f"{math.exp(loss):.1f} on the {label} alone")
    history = [{**row, "val_loss": round(math.log(row[f"val_perplexity_{form}"]), 4),
                "val_perplexity": row[f"val_perplexity_{form}"], "val_accuracy": row[f"val_accuracy_{form}"],
                "both_forms_val_loss": row["val_loss"]} for row in run.state["history"]]
    state = {"model_args": args, "epochs_done": run.state["epochs_done"], "best_val_loss": loss,
             "best_epoch": run.state["best_epoch"], "wait": 0, "history": history,
             "seconds_before": run.state["seconds"], "commands": run.state["commands"],
             "init_from": run.state.get("init_from"),
             "joint": {"forms": list(FORMS), "vocabulary": len(run.vocab), "best_epoch": run.state["best_epoch"],
                       "training_texts": run.state["training_texts"],
                       "checkpoint": str(run.ckpt)}}
    fckpt.mkdir(parents=True, exist_ok=True)
    if (run.ckpt / "vectors").is_dir():  # the model folder ships them
        shutil.rmtree(fckpt / "vectors", ignore_errors=True)
        shutil.copytree(run.ckpt / "vectors", fckpt / "vectors")
    with files.atomic_path(fckpt / "best.weights.h5", suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    with files.atomic_path(fckpt / "last.keras", suffix=".keras") as tmp:
        model.save(tmp)
    files.write_json(fckpt / "state.json", state)
    return model, state
