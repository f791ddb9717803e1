"""Which characters the decoder writes more often than real quatrains do: `poetry-lstm calibrate --mode word2vec`.

Best-of-N prefers the model's surest words (无限, 沧浪, 夕阳), so a few characters come back poem after
poem, which a reader notices across poems, not within one. `measure` completes the first lines of real
*training* 五绝 with the decoder's defaults and compares each character's count in lines 2–4 with
what those poems' own lines 2–4 lead one to expect; `models/<mode>/overuse.json` keeps
log(ours ÷ expected) of every character written too often. The decoder subtracts `overuse_penalty` ×
that from the character's score at every step (generate.Decoder), which divides its odds by the
measured excess. The valid and test poems play no part, so the measures on them stay honest.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import files, layout
from .errors import PoetryError
from .reading import char_counts

OVERUSE_FILE = "overuse.json"
MIN_COUNT = 5  # fewer generated uses than this say nothing about a character's rate


def overuse_ratios(generated: list[str], real: list[str], min_count: int = MIN_COUNT) -> dict[str, float]:
    """Character → log(count in generated lines 2–4 ÷ the count real lines 2–4 predict), for the
    characters written at least `min_count` times and more often than expected; add-one smoothing keeps
    a character real poems never use from counting as infinitely over-used. Largest first."""
    ours, theirs = char_counts(generated), char_counts(real)
    n_ours, n_theirs = sum(ours.values()), sum(theirs.values())
    if not n_ours or not n_theirs:
        raise PoetryError("Measuring over-used characters needs generated and real poems; got none.")
    out = {}
    for ch, k in ours.items():
        ratio = math.log((k + 1) / (n_ours * theirs[ch] / n_theirs + 1))
        if k >= min_count and ratio > 0:
            out[ch] = round(ratio, 4)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def measure(trained, poems: list[str], options: dict, limit: int, seed: int = 0, log=lambda _: None) -> dict:
    """Complete the first lines of `limit` of the real `poems` (evenly spread) under `options`, with
    no over-use penalty, and return the record that overuse.json holds."""
    from .evaluate import complete_all

    if not poems:
        raise PoetryError("No training 五绝 to measure over-used characters on; rebuild the corpus with `poetry-lstm crawl`.")
    picked = poems[:: max(1, len(poems) // limit)][:limit]
    options = {k: v for k, v in options.items() if k not in ("n", "seed")}
    generated, seconds = complete_all(trained, [layout.lines_of(p)[0] for p in picked], seed=seed,
                                      **{**options, "overuse_penalty": 0.0})
    ratios = overuse_ratios(generated, poems)
    log(f"over-used characters: {len(ratios)} from {len(picked)} training first lines ({1000 * seconds:.0f} ms per poem); "
        + " ".join(f"{ch}×{math.exp(r):.1f}" for ch, r in list(ratios.items())[:12]))
    return {"overuse": ratios, "first_lines": len(picked), "real_poems": len(poems), "seed": seed,
            "options": {k: v for k, v in options.items() if k != "overuse_penalty"}, "min_count": MIN_COUNT}


def calibrate(trained, poems: list[str], cfg, log=lambda _: None) -> dict:
    """Measure (`measure`, with the config's [generate] defaults and [train] overuse_poems), write
    overuse.json into the model's folder, and rewrite its card, which reports it."""
    from .card import rewrite

    options = cfg.generate.decoder_options(trained.mode)
    record = measure(trained, poems, options, cfg.train.overuse_poems, cfg.generate.seed, log)
    files.write_json(Path(trained.path) / OVERUSE_FILE, record)
    rewrite(trained.path)
    return record


def penalties(model_dir: Path, tokens: tuple[str, ...]) -> np.ndarray:
    """(vocab,) the log over-use ratio per token; 0 for the rest, and everywhere for a model never measured."""
    out = np.zeros(len(tokens), np.float32)
    path = Path(model_dir) / OVERUSE_FILE
    if not path.exists():
        return out
    record = files.read_json(path, "over-used characters", fix=f"run `poetry-lstm calibrate --mode {Path(model_dir).name}`")
    ratios = record.get("overuse") if isinstance(record, dict) else None
    if not isinstance(ratios, dict) or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in ratios.values()):
        raise PoetryError(f"The over-used characters in {path} are malformed; run `poetry-lstm calibrate --mode {Path(model_dir).name}` again.")
    index = {t: i for i, t in enumerate(tokens)}
    for ch, ratio in ratios.items():
        if ch in index:
            out[index[ch]] = max(float(ratio), 0.0)
    return out
