"""Score a model on held-out poems: `poetry-lstm evaluate --mode onehot --json`.

Per-character perplexity and top-1 accuracy of lines 2–4 given line 1 (punctuation excluded),
beside a character trigram model with interpolated Kneser–Ney smoothing fitted on the same
training poems and the model's vocabulary, scored on the same positions; and how much the model
has learned to rhyme: its probability, at line 4's last character, on characters that share a
平声 group with line 2's last character (the "rhyme mass"), beside what the frequencies of
line endings alone would give.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .baseline import SCORED_POSITIONS, TrigramKN, score
from .errors import PoetryError
from .model import TrainedModel
from .prosody import PING, check_form, feature_table, forms_for_first_line, reading

CHUNK = 256  # poems per forward pass: (256, 24, vocab) float32 stays near 150 MB


def read_poem_file(path: str | Path) -> list[str]:
    """One quatrain a line in ，。 form; a bad line is refused with its number."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PoetryError(f"{path} does not exist; pass a file with one quatrain a line.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PoetryError(f"Cannot read {path} as UTF-8 text ({exc.__class__.__name__}).") from None
    poems = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if not check_form(line):
            raise PoetryError(f"Line {number} of {path} is not a quatrain like 白日依山尽，黄河入海流。欲穷千里目，更上一层楼。")
        poems.append(line)
    if not poems:
        raise PoetryError(f"{path} holds no poems; write one quatrain a line.")
    return poems


RHYME_FROM, RHYME_TO = 10, 22  # text indices of line 2's and line 4's last characters


def rhyme_sets(poems: list[str], tokens) -> tuple[np.ndarray, np.ndarray]:
    """(which poems count, (counted poems, vocab) bool: tokens sharing a 平声 group with line 2's end).

    A poem counts when line 2 ends in a character that is only 平 (a 仄 or polyphonic end may
    rhyme on 仄 or not at all, which the 平声 table cannot judge).
    """
    counted = np.array([reading(p[RHYME_FROM])[0] == {PING} for p in poems], dtype=bool)
    groups = feature_table(tokens)[:, 2:]  # (vocab, groups)
    ends = feature_table([p[RHYME_FROM] for p, c in zip(poems, counted) if c])[:, 2:]  # (counted, groups)
    return counted, (ends @ groups.T) > 0


def model_scores(trained: TrainedModel, poems: list[str]) -> dict:
    """Perplexity and accuracy of the LSTM on lines 2–4 of `poems` (unknowns scored as <unk>), and its rhyme mass."""
    vocab = trained.vocab
    ids = np.array([vocab.encode(p) for p in poems], dtype=np.int32)  # (poems, 25)
    positions = np.array(SCORED_POSITIONS)
    counted, rhymes = rhyme_sets(poems, vocab.tokens)
    log_prob, correct, masses = 0.0, 0, []
    for start in range(0, len(poems), CHUNK):
        chunk = ids[start:start + CHUNK]
        probs = np.asarray(trained.keras_model(chunk[:, :-1], training=False))  # (chunk, 24, vocab)
        targets = chunk[:, 1:][:, positions]  # (chunk, 15)
        picked = np.take_along_axis(probs[:, positions], targets[..., None], axis=-1)[..., 0]
        log_prob += float(np.log(np.maximum(picked, 1e-12)).sum())
        correct += int((probs[:, positions].argmax(-1) == targets).sum())
        here = counted[start:start + CHUNK]
        first = int(counted[:start].sum())
        masses += list((probs[here, RHYME_TO] * rhymes[first:first + int(here.sum())]).sum(axis=1))
    chars = len(poems) * len(positions)
    unknown = int((ids[:, 1:][:, positions] == 1).sum())
    return {"perplexity": math.exp(-log_prob / chars), "accuracy": correct / chars, "chars": chars, "unknown": unknown,
            "rhyme_mass": float(np.mean(masses)) if masses else 0.0, "rhyme_poems": len(masses)}


def unigram_rhyme_mass(poems: list[str], train_poems: list[str], tokens) -> float:
    """The rhyme mass of a model that knows only how often each character ends line 4 in training."""
    counted, rhymes = rhyme_sets(poems, tokens)
    index = {t: i for i, t in enumerate(tokens)}
    freq = np.zeros(len(tokens))
    for p in train_poems:
        freq[index.get(p[RHYME_TO], 1)] += 1  # 1 = <unk>
    return float((rhymes @ (freq / max(freq.sum(), 1))).mean()) if counted.any() else 0.0


def evaluate_model(trained: TrainedModel, poems: list[str], train_poems: list[str]) -> dict:
    """The model's scores beside the trigram baseline's on the same poems and vocabulary."""
    ours = model_scores(trained, poems)
    chars = {t for t in trained.vocab.tokens[3:]}
    base = score(TrigramKN().fit(train_poems, vocab=chars), poems)
    return {"mode": trained.mode, "poems": len(poems), **ours,
            "baseline_perplexity": base["perplexity"], "baseline_accuracy": base["accuracy"],
            "ratio_to_baseline": ours["perplexity"] / base["perplexity"],
            "unigram_rhyme_mass": unigram_rhyme_mass(poems, train_poems, trained.vocab.tokens)}


def generation_report(trained: TrainedModel, first_lines: list[str], train_poems: list[str], seed: int = 0, **options) -> dict:
    """Metrics of EVALUATION.md over one poem completed from each first line (fixed seed)."""
    from .generate import complete_poem
    from .metrics import train_ngrams

    poems, kept = [], 0
    for i, line in enumerate(first_lines):
        result = complete_poem(trained, line, n=1, seed=seed + i, **options)
        poems.append(result.poems[0].text)
        kept += poems[-1][:5] == line
    return poem_metrics(poems, trained.line_hashes(), train_ngrams(train_poems), first_line_kept=kept / len(poems))


def poem_metrics(poems: list[str], train_hashes: set[str], train_4grams: set[str], **extra) -> dict:
    from .metrics import summarize
    from .prosody import rates

    r = rates(poems)
    # The decoder keeps line 1 as given, so a first line that fits no form caps "tone" at the share that do.
    scans = [p for p in poems if forms_for_first_line(p[:5])]
    return {**extra, "form": r["form"], "first_line_fits_a_form": len(scans) / len(poems), "tone": r["tone"],
            "tone_when_first_line_fits": rates(scans)["tone"] if scans else 0.0, "tone_245": r["tone_245"], "rhyme": r["rhyme"],
            "tone_and_rhyme": r["both"], **summarize(poems, train_hashes, train_4grams)}
