"""Tune a trained 五绝 model toward the poems readers prefer: `poetry-lstm prefer` → models/<mode>/ again.

The data are rating sheets (`bench/preference.py sheet --split train`): six of our poems from one first line,
each rated 1–5 by a reader (`answers.json` beside the sheet's `key.json`). Direct preference optimisation
(Rafailov et al., 2023) raises the log p of lines 2–4 of every poem rated above another of its first line,
against that other, as measured from where the model started (the reference); `anchor` × the loss on real
training 五绝 keeps what the model knows of verse. The tuned weights replace the folder's, which keeps
everything else (vocabulary, vectors, tables, the over-use table the reader's poems were written with) and
records the tuning in config.json and card.md. An epoch's weights are checkpointed in `.prefer-<mode>/`
beside the model folders, so an interrupted run goes on with `--resume`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from . import files
from .card import model_card
from .clean import load_corpus, texts_by_split
from .config import Config
from .errors import PoetryError
from .evaluate import evaluate_model
from .layout import FIVE
from .loading import load_model
from .modeldir import SENSE_FILE
from .network import poem_ids, seed_everything
from .train import save_weights

PROMPT_SLOTS = 6  # line 1 and its comma: the same for both poems of a pair, so no part of the preference


def read_sheet(folder: Path, answers: str = "answers.json") -> list[tuple[dict, dict]]:
    """(poems by label, the reader's ratings by label) for every rated first line of one sheet folder."""
    folder = Path(folder)
    for name in ("key.json", answers):
        if not (folder / name).is_file():
            raise PoetryError(f"{folder} has no {name}; give a folder that `bench/preference.py sheet` wrote and a "
                              "reader rated.", kind="ratings_missing", path=str(folder / name))
    key = files.read_json(folder / "key.json", "rating sheet key")
    rated = {a["item"]: a for a in files.read_json(folder / answers, "reader's answers")}
    return [(it["poems"], rated[it["item"]]["ratings"]) for it in key["items"] if it["item"] in rated]


def sheet_folders(paths: list[Path]) -> list[Path]:
    """The rated sheet folders among `paths`: each a sheet, or a folder holding sheets (docs/readings/ratings)."""
    found = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise PoetryError(f"{path} is not a folder of rating sheets; give the folders `bench/preference.py "
                              "sheet` wrote, or docs/readings/ratings.", kind="ratings_missing", path=str(path))
        found += [path] if (path / "key.json").exists() else sorted(p.parent for p in path.glob("*/answers.json"))
    if not found:
        raise PoetryError(f"No rated sheets in {', '.join(map(str, paths))}; rate sheets from `bench/preference.py "
                          "sheet --split train` first.", kind="ratings_missing")
    return found


def rated_pairs(folders: list[Path], min_gap: int) -> tuple[list[str], list[str], int]:
    """(preferred poems, the poems they were preferred to, first lines): every two poems of one first line
    rated at least `min_gap` apart. Only sheets of training first lines: held-out ones measure the result."""
    chosen, rejected, lines = [], [], 0
    for folder in folders:
        split = files.read_json(folder / "key.json", "rating sheet key").get("split")
        if split != "train":
            raise PoetryError(f"{folder} rates poems from {split} first lines; tune on sheets of training first "
                              "lines only (`bench/preference.py sheet --split train`), so held-out ones still "
                              "measure.", kind="ratings_held_out", path=str(folder))
        for poems, ratings in read_sheet(folder):
            lines += 1
            for a, b in itertools.permutations(ratings, 2):
                if ratings[a] - ratings[b] >= min_gap:
                    chosen.append(poems[a]["poem"])
                    rejected.append(poems[b]["poem"])
    if not chosen:
        raise PoetryError(f"The sheets rate no two poems {min_gap} or more apart; rate more sheets or lower "
                          "[prefer] min_gap.", kind="ratings_missing")
    return chosen, rejected, lines


def pairs_digest(chosen: list[str], rejected: list[str]) -> str:
    return hashlib.sha1("\n".join(f"{c}>{r}" for c, r in zip(chosen, rejected)).encode()).hexdigest()


def slot_logp(keras_model, ids, training: bool = False):
    """(batch, 24) the log p of each slot's character given those before it; ids (batch, 1 + 24) int32."""
    import tensorflow as tf

    probs = keras_model(ids[:, :-1], training=training)  # (batch, 24, vocab)
    return tf.math.log(tf.gather(probs, ids[:, 1:], batch_dims=2) + 1e-9)


def lines_logp(keras_model, ids, training: bool = False):
    """(batch,) the log p of lines 2–4 (every slot after line 1's comma); ids (batch, 1 + 24) int32."""
    import tensorflow as tf

    return tf.reduce_sum(slot_logp(keras_model, ids, training)[:, PROMPT_SLOTS:], axis=1)


def all_logp(keras_model, ids: np.ndarray, chunk: int = 256) -> np.ndarray:
    return np.concatenate([np.asarray(lines_logp(keras_model, ids[i:i + chunk])) for i in range(0, len(ids), chunk)])


def real_perplexity(keras_model, ids: np.ndarray, chunk: int = 256) -> float:
    """Perplexity over every slot of real poems, as training's validation counts it."""
    total = sum(float(np.sum(slot_logp(keras_model, ids[i:i + chunk]))) for i in range(0, len(ids), chunk))
    return math.exp(-total / (ids.shape[0] * (ids.shape[1] - 1)))


def train_step(keras_model, optimizer, beta: float, anchor: float):
    """One step of the loss: -log σ(β((π_c − ref_c) − (π_r − ref_r))) + anchor × NLL of real poems."""
    import tensorflow as tf

    @tf.function
    def step(chosen, rejected, ref_chosen, ref_rejected, real):
        with tf.GradientTape() as tape:
            margin = beta * ((lines_logp(keras_model, chosen, True) - ref_chosen)
                             - (lines_logp(keras_model, rejected, True) - ref_rejected))
            loss = tf.reduce_mean(tf.nn.softplus(-margin))
            if anchor:
                loss += anchor * -tf.reduce_mean(slot_logp(keras_model, real, True))
        variables = keras_model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, tf.reduce_mean(tf.cast(margin > 0, tf.float32))

    return step


def _run_state(ckpt: Path, settings: dict, resume: bool) -> dict:
    """The checkpoint's state when resuming the same run; else a fresh one (and no stale checkpoint)."""
    path = ckpt / "state.json"
    if resume and path.exists():
        state = files.read_json(path, "preference checkpoint state", "delete the folder and run without --resume")
        if state.get("settings") != settings:
            raise PoetryError(f"The run in {ckpt} had other settings, sheets or starting weights; run without "
                              "--resume to start again.", kind="resume_mismatch", path=str(ckpt))
        return state
    if resume:
        raise PoetryError(f"There is no stopped preference run in {ckpt} to resume; run without --resume.",
                          kind="resume_missing", path=str(ckpt))
    shutil.rmtree(ckpt, ignore_errors=True)
    ckpt.mkdir(parents=True)
    return {"settings": settings, "epochs_done": 0, "epochs": [], "seconds": 0.0}


def _file_sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def prefer(cfg: Config, mode: str, ratings: list[Path], *, source: Path | None = None, resume: bool = False,
           command: str = "", log=print) -> Path:
    """Tune the 五绝 model `mode` (from `source`, else its own folder) on the rated sheets in `ratings` and write
    it to models/<mode>; returns that folder."""
    import keras

    started, p = time.perf_counter(), cfg.prefer
    out = Path(cfg.paths.models_dir) / mode
    named, source = source is not None, Path(source) if source else out
    trained = load_model(source, keras=True, line_hashes=False, backward=False)
    if trained.shape != FIVE:
        raise PoetryError(f"The model in {source} writes 七绝; the rating sheets rate 五绝, so tune a 五绝 model.",
                          kind="form_unknown", path=str(source))
    if "preference" in trained.config and not named:  # run twice by mistake, it would tune the tuned weights
        raise PoetryError(f"{out} is tuned on readers' preferences already; name the folder to tune with --from, "
                          "or train it again first.", kind="already_tuned", path=str(out))
    folders = sheet_folders(ratings)
    chosen, rejected, lines = rated_pairs(folders, p.min_gap)
    settings = {**dataclasses.asdict(p), "seed": cfg.train.seed, "clipnorm": cfg.train.clipnorm,
                "pairs_sha1": pairs_digest(chosen, rejected), "from_sha1": _file_sha1(source / "model.keras")}
    ckpt = out.parent / f".prefer-{mode}"
    state = _run_state(ckpt, settings, resume)
    records = load_corpus(cfg)  # read once: the 五绝 of each split, and the training windows for the test scores
    quatrains = texts_by_split(records, False)
    km, vocab = trained.keras_model, trained.vocab
    chosen_ids, rejected_ids = poem_ids(chosen, vocab), poem_ids(rejected, vocab)
    valid_ids, real_ids = poem_ids(quatrains["valid"], vocab), poem_ids(quatrains["train"], vocab)
    seed_everything(cfg.train.seed)
    ref_chosen, ref_rejected = all_logp(km, chosen_ids), all_logp(km, rejected_ids)  # the reference: as it was
    state.setdefault("valid_perplexity_before", round(real_perplexity(km, valid_ids), 3))
    log(f"{len(chosen)} preferred pairs from {lines} rated first lines; the model as it was prefers the reader's "
        f"choice in {np.mean(ref_chosen > ref_rejected):.1%}; valid perplexity {state['valid_perplexity_before']}")
    if state["epochs_done"]:
        km.load_weights(ckpt / "weights.weights.h5")
        log(f"resumed after epoch {state['epochs_done']}")
    # A resumed run starts Adam's moments afresh at the epoch boundary; the order of pairs is the same either way.
    step = train_step(km, keras.optimizers.Adam(p.learning_rate, clipnorm=cfg.train.clipnorm), p.beta, p.anchor)
    for epoch in range(state["epochs_done"] + 1, p.epochs + 1):
        row = run_epoch(step, epoch, (chosen_ids, rejected_ids, ref_chosen, ref_rejected), real_ids, cfg)
        row.update(valid_perplexity=round(real_perplexity(km, valid_ids), 3))
        with files.atomic_path(ckpt / "weights.weights.h5", suffix=".weights.h5") as tmp:
            km.save_weights(tmp)
        state["epochs"].append(row)
        state.update(epochs_done=epoch, seconds=state["seconds"] + row["seconds"])
        files.write_json(ckpt / "state.json", state)
        log(f"epoch {epoch}/{p.epochs}: loss {row['loss']}, the change from the start favoured the reader's choice in "
            f"{row['agreement']:.1%} of pairs, valid perplexity {row['valid_perplexity']} ({row['seconds']:.0f} s)")
    record = {**settings, "sheets": [str(f) for f in folders], "pairs": len(chosen),
              "first_lines": lines, "from": str(source), "valid_perplexity_before": state["valid_perplexity_before"],
              "epochs_log": state["epochs"], "seconds": round(state["seconds"], 1)}
    write_tuned_folder(trained, out, record, command, quatrains["test"], texts_by_split(records, True)["train"])
    shutil.rmtree(ckpt, ignore_errors=True)
    log(f"saved {out} ({time.perf_counter() - started:.0f} s)")
    return out


def run_epoch(step, epoch: int, pairs: tuple, real_ids: np.ndarray, cfg: Config) -> dict:
    """One pass over the pairs (chosen ids, rejected ids, their reference log p), in an order fixed by the seed and
    the epoch, each step beside `anchor_batch` real poems; the epoch's mean loss and agreement."""
    p, started = cfg.prefer, time.perf_counter()
    rng = np.random.default_rng(cfg.train.seed + epoch)
    order, losses, agree = rng.permutation(len(pairs[0])), [], []
    for s in range(math.ceil(len(order) / p.batch_size)):
        k = order[s * p.batch_size:(s + 1) * p.batch_size]
        real = real_ids[rng.integers(0, len(real_ids), p.anchor_batch)]
        loss, share = step(*(part[k] for part in pairs), real)
        losses.append(float(loss))
        agree.append(float(share))
    return {"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "agreement": round(float(np.mean(agree)), 4),
            "seconds": round(time.perf_counter() - started, 1)}


def write_tuned_folder(trained, out: Path, record: dict, command: str, test: list[str], windows: list[str]) -> None:
    """The source folder's files with the tuned weights, config and card, built aside and swapped in whole; scored on
    the `test` quatrains beside the trigram baseline of the training `windows`, as `train` scores its folders."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        shutil.copytree(trained.path, tmp, dirs_exist_ok=True)
        (tmp / SENSE_FILE).unlink(missing_ok=True)  # a judge of the old network's hidden states: refit it after
        save_weights(tmp, trained.keras_model, trained.config["model_args"],
                     trained.config.get("weights_dtype", "float32"))
        base = trained.config
        config = {**base, "command": command, "commands": [*(base.get("commands") or [base["command"]]), command],
                  "preference": record}
        files.write_json(tmp / "config.json", config)
        config["test"] = evaluate_model(load_model(tmp, keras=True, line_hashes=False, backward=False), test, windows)
        files.write_json(tmp / "config.json", config)
        report = files.read_json(tmp / "corpus_report.json", "corpus report")
        files.write_text(tmp / "card.md", model_card(tmp, config, report, config["test"]))
        files.swap_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
