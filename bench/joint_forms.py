"""One network for 五绝 and 七绝, or two: `python bench/joint_forms.py --out DIR [--epochs 4] [--resume]`.

Issue 18 asks whether one network trained on both forms, the line length known from the layout, beats two
networks at equal budgets. This trains the shipped recipe (word2vec, 2 × 384 units, dropout 0.2, Adam 0.002,
batch 64, 1000-step epochs, the prosody features and the rhyme context) on both corpora at once: each step's
batch is all 五绝 windows (24 steps) or all 七绝 windows (32 steps), half and half, over one vocabulary and
skip-gram vectors learned on both, the rhyme context finding line 2's end from each poem's first 。
(network.LineTwoEndFound). A joint epoch of 1000 steps costs what 500 steps of each separate network do, so
its epoch 2k is compared with the separate networks' epoch k: the shipped models' pretraining histories
(models/word2vec/history.json, models/qijue/word2vec/history.json), the same recipe and the same valid
quatrains. After each epoch it measures the valid perplexity of each form, as `train` measures val_ppl, and
checkpoints to DIR (`--resume` continues). It prints each form's ratio joint / separate at equal steps, and
how many valid targets each vocabulary maps to <unk> (an unknown is easier to predict, so the ratios are
only fair where those shares are close).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FORMS = ("wujue", "qijue")
SEPARATE = {"wujue": ROOT / "models" / "word2vec", "qijue": ROOT / "models" / "qijue" / "word2vec"}


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def unknown_share(texts: list[str], vocab) -> float:
    ids = [i for t in texts for i in vocab.encode(t, start=False)]
    return sum(i == vocab.id("<unk>") for i in ids) / len(ids)


def build(cfg, vocab, embedding):
    import keras

    from poetry_lstm import prosody
    from poetry_lstm.network import build_model

    args = {"vocab_size": len(vocab), "mode": "word2vec", "units": cfg.model.units, "layers": cfg.model.layers,
            "dropout": cfg.model.dropout, "embedding_dim": embedding.shape[1], "prosody_dim":
            prosody.feature_table(()).shape[1], "rhyme_context": True, "period_id": vocab.id("。")}
    model = build_model(**args, vectors=embedding, prosody=prosody.feature_table(vocab.tokens))
    model.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate, clipnorm=cfg.train.clipnorm),
                  loss="sparse_categorical_crossentropy")
    return model


def separate_history(form: str) -> list[float]:
    rows = json.loads((SEPARATE[form] / "history.json").read_text())
    return [r["val_perplexity"] for r in rows if r["phase"] == "pretrain"]


def report(state: dict, unknown: dict) -> dict:
    table = {}
    for form in FORMS:
        separate = separate_history(form)
        for row in state["history"]:
            k = row["epoch"] / 2  # joint steps 2k = separate steps k for each form
            if k == int(k) and int(k) <= len(separate):
                table.setdefault(form, []).append(
                    {"joint_epoch": row["epoch"], "separate_epoch": int(k), "joint": row[form],
                     "separate": separate[int(k) - 1], "ratio": round(row[form] / separate[int(k) - 1], 3)})
    for form, rows in table.items():
        for r in rows:
            print(f"{form}: joint epoch {r['joint_epoch']} (steps {1000 * r['joint_epoch']}) valid perplexity "
                  f"{r['joint']:.1f} vs separate epoch {r['separate_epoch']} {r['separate']:.1f}: "
                  f"ratio {r['ratio']:.3f}")
    print("valid targets mapped to <unk>:", json.dumps(unknown))
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="checkpoint and result folder (outside the repo)")
    ap.add_argument("--epochs", type=int, default=4, help="joint epochs of 1000 steps")
    ap.add_argument("--resume", action="store_true")
    opts = ap.parse_args()

    import dataclasses

    import keras

    from poetry_lstm import files, vectors
    from poetry_lstm.config import load_config
    from poetry_lstm.joint import both_forms_dataset, form_data, valid_datasets
    from poetry_lstm.modeldir import Vocab
    from poetry_lstm.network import custom_layers, seed_everything
    from poetry_lstm.train import prepare_vectors

    cfg = load_config(None)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, units=384, dropout=0.2))
    data = {form: form_data(cfg, form) for form in FORMS}  # (config, train texts, valid texts, quatrains)
    train = data["wujue"][1] + data["qijue"][1]
    vocab = Vocab.build(train, cfg.model.min_char_count)
    unknown = {form: {"joint": round(unknown_share(data[form][2], vocab), 5),
                      "separate": round(unknown_share(data[form][2],
                                                      Vocab.load(SEPARATE[form] / "vocab.json")), 5)}
               for form in FORMS}
    seed_everything(cfg.train.seed)
    opts.out.mkdir(parents=True, exist_ok=True)
    kv = prepare_vectors(cfg, train, opts.out, False, log)  # reused when corpus and settings match
    embedding = vectors.embedding_matrix(kv, vocab.tokens, cfg.train.seed)
    state = {"history": [], "best": math.inf}
    if opts.resume and (opts.out / "state.json").exists():
        custom_layers()
        state = files.read_json(opts.out / "state.json", "joint checkpoint")
        model = keras.saving.load_model(opts.out / "last.keras")
    else:
        model = build(cfg, vocab, embedding)
    log(f"joint: vocabulary {len(vocab)}, {model.count_params():,} parameters; "
        f"train windows {len(data['wujue'][1])} 五绝-shaped + {len(data['qijue'][1])} 七绝-shaped")
    valid = valid_datasets(data, vocab, cfg.train.batch_size)
    for epoch in range(len(state["history"]), opts.epochs):
        started = time.perf_counter()
        # a fresh shuffle each epoch, as a resumed `train` offsets its seed by the epochs done
        t = cfg.train
        batches = both_forms_dataset(data, vocab, t.batch_size, t.shuffle_buffer, t.seed + epoch)
        model.fit(batches, epochs=1, steps_per_epoch=cfg.train.steps_per_epoch, verbose=2, shuffle=False)
        row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - started, 1)}
        row.update({form: round(math.exp(model.evaluate(ds, verbose=0)), 2) for form, ds in valid.items()})
        mean = sum(math.log(row[f]) for f in FORMS) / len(FORMS)
        if mean >= state["best"] and cfg.train.lr_decay < 1:  # train's rule: a plateau halves the step
            model.optimizer.learning_rate.assign(float(model.optimizer.learning_rate.numpy()) * cfg.train.lr_decay)
        state["best"] = min(state["best"], mean)
        state["history"].append(row)
        with files.atomic_path(opts.out / "last.keras", suffix=".keras") as tmp:
            model.save(tmp)
        files.write_json(opts.out / "state.json", state)
        log(f"joint epoch {epoch + 1}: valid perplexity 五绝 {row['wujue']:.1f}, 七绝 {row['qijue']:.1f} "
            f"({row['seconds']:.0f} s)")
    table = report(state, unknown)
    files.write_json(opts.out / "result.json", {"history": state["history"], "compared": table, "unknown": unknown,
                                                 "vocabulary": len(vocab)})


if __name__ == "__main__":
    main()
