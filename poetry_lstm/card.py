"""The model card: `text = model_card(model_dir, config, corpus_report)` → `card.md`.

Everything a reader needs to trust or rebuild the model: the exact command, what data (by the
hash of its corpus report), how long on what machine, the curves' end points, the test scores
(filled in by training's final evaluation), and what was tried (docs/tuning.md).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from . import files
from .weightsfile import QUANTISED_MIN

# by the line length a model writes (model_args "chars", 5 when absent): its quatrain, its longer poems' names
KINDS = {5: ("五绝", "five-character", "五律", "五古 and 五排", "wulv", "wugu"),
         7: ("七绝", "seven-character", "七律", "七古 and 七排", "qilv", "qigu")}


def _kind(config: dict) -> tuple[str, ...]:
    return KINDS[config["model_args"].get("chars", 5)]

TUNING = Path(__file__).resolve().parent.parent / "docs" / "tuning.md"


def _report_sha1(report: dict) -> str:
    return hashlib.sha1(json.dumps(report, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def _size_mb(folder: Path) -> float:
    """The folder's own files: the shared line hashes, written in it before they move beside it, do not count."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != "train_lines.u64") / 1e6


def _warm_start_lines(config: dict) -> list[str]:
    """Where a run started with `--init-from` began: the folders whose mean weights it took, and their scores."""
    sources = config.get("init_from") or []
    if not sources:
        return []
    lines = ["", "The last command started from the weights of "
             + (" and ".join(f"`{s['folder']}`" for s in sources) + " (their mean)" if len(sources) > 1
                else f"`{sources[0]['folder']}`")
             + ", which the commands before it had made; its epochs count from 1 again:"]
    for s in sources:
        test = s.get("test") or {}
        narrower = s.get("units") and s["units"] < config.get("model_args", {}).get("units", 0)
        lines.append(f"- `{s['folder']}`: pretrained {s.get('pretrain_epochs')} epochs"
                     + (f", test perplexity {test['perplexity']:.1f}" if test.get("perplexity") else "")
                     + (f"; {s['units']} units a layer, widened so that the new network began by computing "
                        "exactly what it did (the new units' paths into the old ones and the output start at 0)"
                        if narrower else ""))
    return lines


def _stored_as(dtype: str) -> str:
    if dtype == "int8":
        return f"int8 with a float32 scale per column (matrices of over {QUANTISED_MIN:,} weights; the rest float16)"
    return dtype


def model_card(folder: Path, config: dict, report: dict, test: dict | None = None) -> str:
    args = config["model_args"]
    history = json.loads((folder / "history.json").read_text(encoding="utf-8"))
    # the shipped epoch's row (a network for both forms chose it by both forms' loss); else the lowest loss
    best = next((r for r in history if r.get("epoch") == config.get("best_epoch")), None) or (
        min(history, key=lambda r: r["val_loss"]) if history else None)
    lines = [
        f"# poetry-lstm model card: `{args['mode']}`" + (", backward" if config.get("reverse") else "")
        + (f", {_kind(config)[0]}" if args.get("chars", 5) != 5 else ""),
        "",
        *(["It reads each poem from its end (line 4 first, each line backwards): the decoder's `mutual` weight "
           "uses it to score p(line 1 | lines 2–4). It writes no poems itself and keeps no hashes of its lines: "
           "the copy check is the forward models' (`../train_lines.u64`).", ""] if config.get("reverse") else []),
        "Made by: " + ", then ".join(f"`{c}`" for c in config.get("commands") or [config["command"]]),
        *([f"({config['paths_note']})"] if config.get("paths_note") else []),
        *_warm_start_lines(config),
        "",
        "## Network",
        ("- input: "
         + ("skip-gram character vectors (gensim, sg=1), " + ("fine-tuned" if args["fine_tune_vectors"] else "frozen")
            if args["mode"] == "word2vec" else "one-hot ids (as the identical trainable embedding lookup)")
         + f", width {args['embedding_dim']}"),
        f"- {args['layers']} stacked LSTM layers × {args['units']} units, dropout {args['dropout']}, "
        f"softmax over {args['vocab_size']} tokens",
        *([f"- prosody: each character's 平, 仄 and 平声 group ({args['prosody_dim']} columns of the 平水韵 table, "
           "fixed) are read beside it, "
           "and a learned score per group is added to every character of that group before the softmax"
           + ("; from line 3 on, the columns of line 2's last character are read too (the rhyme context)"
              if args.get("rhyme_context") else "")]
          if args.get("prosody_dim") else []),
        f"- weights stored as {_stored_as(config.get('weights_dtype', 'float32'))} in model.keras, computed in float32",
        f"- windows of {config['window']} positions, stride {config['stride']}; "
        "every position predicts its next character",
        *_vector_lines(config),
        f"- Adam lr {config['train']['learning_rate']} (× {config['train'].get('lr_decay', 1)} after each epoch "
        "without a better valid loss), "
        f"clipnorm {config['train']['clipnorm']}, batch {config['train']['batch_size']}, "
        f"early stopping patience {config['train']['patience']}, seed {config['train']['seed']}",
        "",
        "## Data",
        f"- corpus report sha1 `{_report_sha1(report)}` (copied here as `corpus_report.json`); "
        f"cleaner forms {report.get('forms')}",
        f"- {config['training_poems']} training texts{_what_texts(config, report)}; splits {report.get('per_split')}",
        f"- no line of a valid or test poem occurs in training in any form: {_kind(config)[0]} claim their lines "
        "first, and a window of a longer poem holding such a line is dropped",
        (f"- chinese-poetry (MIT): Tang and Song poems; the 8-byte hashes of its {config.get('train_lines', '?')} "
         f"distinct training lines have sha1 `{config.get('train_lines_sha1', '?')}` (not stored: it checks no copies)"
         if config.get("reverse") else
         f"- chinese-poetry (MIT): Tang and Song poems; `../train_lines.u64` holds 8-byte hashes of the "
         f"{config.get('train_lines', '?')} distinct training lines (sha1 `{config.get('train_lines_sha1', '?')}`), "
         "not the lines; a new line is mistaken for one of them with odds "
         f"n / 2^64 ≈ {config.get('train_lines', 0) / 2**64:.0e}"),
        *([f"- the copy check reads the {config['copy_check'].get('lines', '?')} lines of sha1 "
           f"`{config['copy_check'].get('sha1', '?')}`: {config['copy_check'].get('why', '')}"]
          if isinstance(config.get("copy_check"), dict) else []),
        "",
        "## Training",
        f"- machine: {config['machine']}",
        f"- wall time {config['wall_seconds'] / 60:.1f} min, {_epochs(config, history)}, "
        f"best epoch {config['best_epoch']}",
        *_phase_lines(config, history),
        *_preference_lines(config),
    ]
    if best:
        lines.append(f"- best validation loss {best['val_loss']:.3f} (perplexity {math.exp(best['val_loss']):.1f}, "
                     f"accuracy {best['val_accuracy']:.3f}); train loss then {best['loss']:.3f}")
    lines.append(f"- directory size {_size_mb(folder):.1f} MB")
    if test:
        lines += ["", "## Test split (`poetry-lstm evaluate`)",
                  f"- lines 2–4 given line 1, {test['poems']} poems: perplexity **{test['perplexity']:.1f}**, "
                  f"top-1 accuracy {test['accuracy']:.3f}",
                  "- trigram Kneser–Ney baseline on the same training poems: "
                  f"perplexity {test['baseline_perplexity']:.1f}, "
                  f"accuracy {test['baseline_accuracy']:.3f}; ratio {test['ratio_to_baseline']:.2f}"]
        if "rhyme_mass" in test:
            lines.append(f"- rhyme learned: at line 4's last character the model puts {test['rhyme_mass']:.3f} "
                         "of its probability on characters that share a 平声 group with line 2's "
                         f"(over the {test['rhyme_poems']} poems whose line 2 ends only 平); "
                         f"line-ending frequencies alone give {test['unigram_rhyme_mass']:.3f}")
    lines += _overuse_lines(folder, _kind(config)[0])
    lines += mode_comparison(folder, test)
    if TUNING.exists():
        lines += ["", "## What was tried", "", TUNING.read_text(encoding="utf-8").strip()]
    return "\n".join(lines) + "\n"


def _overuse_lines(folder: Path, quatrain: str = "五绝") -> list[str]:
    """What the decoder holds back for this model (overuse.json), once measured."""
    form = " --form qijue" if quatrain == "七绝" else ""
    path = folder / "overuse.json"
    if not path.exists():
        return []
    record = json.loads(path.read_text(encoding="utf-8"))
    ratios, options = record.get("overuse", {}), record.get("options", {})
    top = " ".join(f"{ch} ×{math.exp(r):.1f}" for ch, r in list(ratios.items())[:8])
    return ["", "## Decoding",
            f"- over-used characters (`overuse.json`): {len(ratios)} characters the decoder wrote too often in "
            f"lines 2–4 of {record.get('first_lines')} training {quatrain} first lines (temperature "
            f"{options.get('temperature')}, best of {options.get('candidates')}), against those poems' own lines; "
            f"the strongest: {top}. The decoder takes `overuse_penalty` × log of each ratio from the character's "
            f"score; `poetry-lstm calibrate --mode {folder.name}{form}` measures it again"]


def _preference_lines(config: dict) -> list[str]:
    """How `poetry-lstm prefer` tuned the trained weights, when it did."""
    p = config.get("preference")
    if not p:
        return []
    last = (p.get("epochs_log") or [{}])[-1]
    return [f"- then tuned toward the poems a reader preferred (`poetry-lstm prefer`, direct preference "
            f"optimisation): {p['pairs']} pairs of our poems rated apart, from {p['first_lines']} rated training "
            f"first lines in {len(p['sheets'])} sheets (pairs sha1 `{p['pairs_sha1']}`), starting from the weights "
            f"of sha1 `{p['from_sha1']}`; β {p['beta']}, Adam lr {p['learning_rate']}, {p['epochs']} epoch(s) of "
            f"batch {p['batch_size']}, anchored by {p['anchor']} × the loss on {p['anchor_batch']} real training "
            f"五绝 a step; valid perplexity {p['valid_perplexity_before']} → {last.get('valid_perplexity')}; over the "
            f"last epoch, the change from the start favoured the reader's choice in {last.get('agreement', 0):.0%} "
            f"of the pairs; {p['seconds'] / 60:.1f} min"]


def rewrite(folder: Path) -> None:
    """The card of a finished model folder again, from its own files (after overuse.json changes)."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    report = json.loads((folder / "corpus_report.json").read_text(encoding="utf-8"))
    files.write_text(folder / "card.md", model_card(folder, config, report, config.get("test")))


def _epochs(config: dict, history: list) -> str:
    steps = config["train"].get("steps_per_epoch")
    tuned = sum(r.get("phase") == "finetune" for r in history)
    return (f"{len(history) - tuned} epochs of {steps or 'all'} {'steps' if steps else 'windows'}"
            + (f", then {tuned} full pass{'es' if tuned > 1 else ''} over the {_kind(config)[0]}" if tuned else ""))


def _what_texts(config: dict, report: dict) -> str:
    quatrain, length, lv, gu, lv_key, gu_key = _kind(config)
    if not config["train"]["use_windows"]:
        return f" (real {quatrain})"
    return (f" (real {quatrain}, then four-line windows of every longer {length} poem: "
            f"{report.get(f'kept_{lv_key}_halves', 0)} {lv} halves "
            f"and {report.get(f'kept_{gu_key}_windows', 0)} windows of {gu}; "
            f"{report.get('training_lines', '?')} lines in all)")


def _vector_lines(config: dict) -> list[str]:
    v = config.get("vectors")
    if not v:
        return []
    cost = ("one worker: the vectors are bit-reproducible" if v.get("workers", 1) == 1 else
            f"{v['workers']} workers, which halves their time but lets thread scheduling change the vectors "
            "slightly from run to run (set [vectors] workers = 1 for bit-reproducible vectors)")
    verse = "five- and seven-character" if config.get("joint") else _kind(config)[1]
    return [f"- skip-gram vectors over every training text (all {verse} verse): {v['epochs']} epochs, "
            f"window {v['window']}, {v['negative']} negatives; {cost}"]


def _phase_lines(config: dict, history: list) -> list[str]:
    """Pretraining on all windows, then fine-tuning on 五绝: where each ended, so the card says whether
    fine-tuning helped."""
    pre = config.get("pretrain")
    if not pre:
        return []
    tuned = [r for r in history if r.get("phase") == "finetune"]
    joint = config.get("joint")
    out = [f"- pretraining on all windows: {pre['epochs']} epochs, "
           f"best valid perplexity {pre['best_val_perplexity']:.1f} (epoch {pre['best_epoch']})"
           + (f", in one network for both forms (`train --form both`): batches of 五绝 and of 七绝 windows half "
              f"and half ({' + '.join(str(n) for n in joint['training_texts'].values())} texts), one vocabulary "
              f"of {joint['vocabulary']}, early-stopped on the two forms' mean valid loss; this folder holds the "
              f"{_kind(config)[0]}'s copy, fine-tuned on its own" if joint else "")
           + (f"; each step on a sampled softmax of {k} characters drawn by frequency (`--sampled-softmax {k}`), "
              "validated on the full one" if (k := config["train"].get("sampled_softmax")) else "")]
    if tuned:
        best = min(tuned, key=lambda r: r["val_loss"])
        helped = math.exp(best["val_loss"]) < pre["best_val_perplexity"]
        out.append(f"- fine-tuning on real {_kind(config)[0]} at lr {config['train']['fine_tune_learning_rate']}: "
                   f"{len(tuned)} epoch{'s' if len(tuned) > 1 else ''}, "
                   f"best valid perplexity {math.exp(best['val_loss']):.1f} — "
                   + ("it helped, and the fine-tuned weights are shipped" if helped
                      else "no gain, so the pretrained weights are shipped"))
    return out


def mode_comparison(folder: Path, test: dict | None) -> list[str]:
    """Which input mode wins on the test split, when the sibling model has been evaluated too."""
    other = folder.parent / ("onehot" if folder.name == "word2vec" else "word2vec") / "config.json"
    if not test or not other.exists():
        return []
    theirs = json.loads(other.read_text(encoding="utf-8")).get("test")
    if not theirs:
        return []
    ours, mine = theirs["perplexity"], test["perplexity"]
    winner, loser = (test, theirs) if mine <= ours else (theirs, test)
    return ["", "## Which input mode wins",
            f"- `{winner['mode']}` (perplexity {winner['perplexity']:.1f}, "
            f"{winner['ratio_to_baseline']:.2f} × baseline) beats "
            f"`{loser['mode']}` ({loser['perplexity']:.1f}, {loser['ratio_to_baseline']:.2f} × baseline) by "
            f"{100 * (1 - winner['perplexity'] / loser['perplexity']):.1f}% in test perplexity."]
