"""Does the network use a poem's subject? `python bench/title_condition.py --out DIR [--epochs 3] [--resume]`.

Issue 16 lists the title as a condition: a model that reads the title while it learns is taught that four
lines serve one subject; at generation the user's theme, or keywords from line 1, stand in for the title.
This trains the shipped 五绝 recipe (word2vec, 2 × 384 units, dropout 0.2, Adam 0.002 halved on an epoch
without a better valid loss, batch 64, 1000-step epochs over one shuffled pass after another, its vocabulary
and skip-gram vectors) with one more input at every step: a condition vector, the mean skip-gram vector of
some characters, unit length. Each training text gets, once, its title's characters (60%; the text of a 五律
half or 五古 window keeps its poem's title), its own line 1's (20%: the stand-in at generation; line 1's
targets then weigh nothing, since a network that learned to copy line 1 from the condition would learn what
generation never asks) or zeros (20%, and any title without a known character: no condition). After each
epoch it scores the 811 valid 五绝 three ways, with their titles, with their line 1, with zeros, and prints
the perplexity of all 24 targets (what `train` reports as val_ppl, so the title row compares with the shipped
run's history at the same epoch, models/word2vec/history.json) and of lines 2–4 alone (what a stand-in can
change: line 1 is given then). Checkpoints go to DIR (`--resume` continues).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHIPPED = ROOT / "models" / "word2vec"
SHARES = (0.6, 0.2, 0.2)  # title, line 1, none
NOT_A_SUBJECT = set("其一二三四五六七八九十百首之")  # 其二, 三十首: which poem of a set, not what it says


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def title_chars(title: str) -> str:
    """The characters of a title that may name its subject: before a note or a set's number (two spaces),
    without numerals, 其, 首 and 之 anywhere (七夕 loses its 七: a rare loss)."""
    main = re.split(r"\s{2,}|[（(]", title.strip())[0]
    return "".join(ch for ch in main if "\u4e00" <= ch <= "\u9fff" and ch not in NOT_A_SUBJECT)


def subject_vector(chars: str, vocab, embedding: np.ndarray) -> np.ndarray:
    """(dim,) the unit mean of the characters' vectors; zeros when none is known."""
    rows = [vocab.id(ch) for ch in chars if ch in vocab]
    if not rows:
        return np.zeros(embedding.shape[1], np.float32)
    v = embedding[rows].mean(0)
    return (v / (np.linalg.norm(v) or 1.0)).astype(np.float32)


def conditions(records, vocab, embedding, rng) -> tuple[np.ndarray, np.ndarray]:
    """(texts, dim) each training text's condition, drawn once by SHARES, and (texts,) which (0 title, 1 line 1,
    2 none)."""
    draw = rng.choice(3, size=len(records), p=SHARES)
    out = np.zeros((len(records), embedding.shape[1]), np.float32)
    for i, (r, kind) in enumerate(zip(records, draw)):
        if kind < 2:
            out[i] = subject_vector(title_chars(r.get("title", "")) if kind == 0 else r["text"][:5], vocab, embedding)
    return out, draw


def target_logp(model, ids: np.ndarray, cond: np.ndarray, chunk: int = 128) -> np.ndarray:
    """(poems, 24) log p of each target, the inputs being <s> and the slots before it."""
    out = []
    for i in range(0, len(ids), chunk):
        probs = model.predict({"ids": ids[i:i + chunk, :-1], "condition": cond[i:i + chunk]}, verbose=0)
        out.append(np.log(np.take_along_axis(probs, ids[i:i + chunk, 1:, None], axis=2)[..., 0] + 1e-12))
    return np.concatenate(out)


def scores(model, valid, vocab, embedding) -> dict:
    from poetry_lstm.network import poem_ids

    ids = poem_ids([r["text"] for r in valid], vocab)
    given = {"title": np.stack([subject_vector(title_chars(r.get("title", "")), vocab, embedding) for r in valid]),
             "line1": np.stack([subject_vector(r["text"][:5], vocab, embedding) for r in valid]),
             "none": np.zeros((len(valid), embedding.shape[1]), np.float32)}
    out = {}
    for name, cond in given.items():
        logp = target_logp(model, ids, cond)
        out[name] = {"all": round(math.exp(-logp.mean()), 2), "lines_2_4": round(math.exp(-logp[:, 6:].mean()), 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="checkpoint and result folder (outside the repo)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of 1000 steps")
    ap.add_argument("--steps", type=int, default=0, help="steps an epoch (default: [train] steps_per_epoch)")
    ap.add_argument("--resume", action="store_true")
    opts = ap.parse_args()

    import keras
    import tensorflow as tf

    from poetry_lstm import files, prosody, vectors
    from poetry_lstm.clean import load_corpus
    from poetry_lstm.config import load_config
    from poetry_lstm.modeldir import Vocab
    from poetry_lstm.network import build_model, custom_layers, poem_ids, seed_everything

    cfg = load_config(None)
    records = load_corpus(cfg)
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid" and r["form"] == "wujue"]
    vocab = Vocab.build([r["text"] for r in train], cfg.model.min_char_count)
    if vocab.tokens != Vocab.load(SHIPPED / "vocab.json").tokens:
        sys.exit("The corpus is not the one the shipped model learned; its history is no baseline here.")
    kv = vectors.matching_vectors(SHIPPED / "vectors", [r["text"] for r in train], cfg.vectors)
    if kv is None:
        sys.exit(f"No skip-gram vectors of this corpus in {SHIPPED / 'vectors'}.")
    seed_everything(cfg.train.seed)
    embedding = vectors.embedding_matrix(kv, vocab.tokens, cfg.train.seed)
    cond, draw = conditions(train, vocab, embedding, np.random.default_rng(cfg.train.seed))
    ids = poem_ids([r["text"] for r in train], vocab)
    weights = np.ones((len(ids), ids.shape[1] - 1), np.float32)  # (texts, 24)
    weights[draw == 1, :6] = 0  # line 1 and its mark, where the condition holds line 1
    opts.out.mkdir(parents=True, exist_ok=True)
    state = {"history": [], "best": math.inf}
    if opts.resume and (opts.out / "state.json").exists():
        custom_layers()
        state = files.read_json(opts.out / "state.json", "title checkpoint")
        model = keras.saving.load_model(opts.out / "last.keras")
    else:
        model = build_model(len(vocab), "word2vec", 384, cfg.model.layers, 0.2, embedding.shape[1],
                            prosody_dim=prosody.feature_table(()).shape[1], rhyme_context=True,
                            condition_dim=embedding.shape[1], vectors=embedding,
                            prosody=prosody.feature_table(vocab.tokens))
        model.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate, clipnorm=cfg.train.clipnorm),
                      loss="sparse_categorical_crossentropy")
    log(f"title condition: {len(train)} training texts, {int((np.abs(cond).sum(1) > 0).sum())} with a condition; "
        f"{model.count_params():,} parameters")
    history = [r["val_perplexity"] for r in json.loads((SHIPPED / "history.json").read_text())
               if r["phase"] == "pretrain"]

    class EpochEnd(keras.callbacks.Callback):
        """Scores, the plateau rule and a checkpoint after each epoch, as `train` does."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self.started, 1),
                   **scores(self.model, valid, vocab, embedding),
                   "shipped_run": history[epoch] if epoch < len(history) and not opts.steps else None}
            loss = math.log(row["title"]["all"])
            if loss >= state["best"]:
                lr = self.model.optimizer.learning_rate
                lr.assign(float(lr.numpy()) * cfg.train.lr_decay)
            state["best"] = min(state["best"], loss)
            state["history"].append(row)
            with files.atomic_path(opts.out / "last.keras", suffix=".keras") as tmp:
                self.model.save(tmp)
            files.write_json(opts.out / "state.json", state)
            log(f"epoch {epoch + 1}: " + json.dumps(row, ensure_ascii=False))

    done = len(state["history"])
    # one shuffled pass after another through one iterator; a resumed run offsets the seed by the epochs done
    ds = (tf.data.Dataset.from_tensor_slices(({"ids": ids[:, :-1], "condition": cond}, ids[:, 1:], weights))
          .shuffle(len(ids), seed=cfg.train.seed + done, reshuffle_each_iteration=True).repeat()
          .batch(cfg.train.batch_size).prefetch(tf.data.AUTOTUNE))
    if done < opts.epochs:
        model.fit(ds, epochs=opts.epochs, initial_epoch=done, steps_per_epoch=opts.steps or cfg.train.steps_per_epoch,
                  verbose=2, shuffle=False, callbacks=[EpochEnd()])
    for row in state["history"]:
        print(f"epoch {row['epoch']}: all 24 targets, with titles {row['title']['all']:.1f} vs the shipped run "
              f"{row['shipped_run']}; lines 2–4: line 1 as the condition {row['line1']['lines_2_4']:.1f}, "
              f"none {row['none']['lines_2_4']:.1f}, titles {row['title']['lines_2_4']:.1f}")
    files.write_json(opts.out / "result.json", state)


if __name__ == "__main__":
    main()
