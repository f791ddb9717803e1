"""Which characters the decoder writes more often than real quatrains do: `poetry-lstm calibrate --mode word2vec`.

Best-of-N prefers the model's surest words (无限, 沧浪, 夕阳), so a few characters come back poem after
poem, which a reader notices across poems, not within one. `measure` completes the first lines of real
*training* 五绝 with the decoder's defaults and compares each character's count in lines 2–4 with
what those poems' own lines 2–4 lead one to expect; `models/<mode>/overuse.json` keeps
log(ours ÷ expected) of every character written too often. The decoder subtracts `overuse_penalty` ×
that from the character's score at every step (decoder.Decoder), which divides its odds by the
measured excess. The valid and test poems play no part, so the measures on them stay honest.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from . import files
from .card import rewrite
from .config import Config, DecodeSettings
from .errors import PoetryError
from .generate import complete_all
from .loading import TrainedModel, load_model, store_weights_as, write_weight_index
from .modeldir import OVERUSE_FILE, form_flag
from .reading import char_counts
from .tables import write_tables

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


def measure(trained: TrainedModel, poems: list[str], settings: DecodeSettings, limit: int, log=lambda _: None) -> dict:
    """Complete the first lines of `limit` of the real `poems` (evenly spread) under `settings` (seed
    `settings.seed` + i for line i), with no over-use penalty, and return the record overuse.json holds."""
    if not poems:
        raise PoetryError("No training quatrains to measure over-used characters on; "
                          "rebuild the corpus with `poetry-lstm crawl`.", kind="corpus_missing")
    picked = poems[:: max(1, len(poems) // limit)][:limit]
    settings = dataclasses.replace(settings, overuse_penalty=0.0)
    generated, seconds = complete_all(trained, [trained.shape.lines_of(p)[0] for p in picked], settings)
    ratios = overuse_ratios(generated, poems)
    log(f"over-used characters: {len(ratios)} from {len(picked)} training first lines "
        f"({1000 * seconds:.0f} ms per poem); "
        + " ".join(f"{ch}×{math.exp(r):.1f}" for ch, r in list(ratios.items())[:12]))
    skipped = ("n", "seed", "overuse_penalty", "temperature")  # the temperature last, as records have always had it
    options = ({k: v for k, v in dataclasses.asdict(settings).items() if k not in skipped}
               | {"temperature": settings.temperature})
    return {"overuse": ratios, "first_lines": len(picked), "real_poems": len(poems), "seed": settings.seed,
            "options": options, "min_count": MIN_COUNT}


def calibrate(trained: TrainedModel, poems: list[str], cfg: Config, log=lambda _: None) -> dict:
    """Store the decoder's tables (tables.npz) and where each weight lies (weights_index.json) in the
    model's folder, measure (`measure`, with the
    config's [generate] defaults and [train] overuse_poems), write overuse.json, and rewrite the
    card, which reports it. `trained` is best loaded with `overuse=False`: a broken overuse.json
    is what this replaces, and the measure holds no penalty anyway. Weights stored at another precision
    than [model] weights_dtype are stored again at that one first (config.json and the card say so), so
    the measure reads the weights the decoder will."""
    if store_weights_as(trained.path, cfg.model.weights_dtype):
        config = {**trained.config, "weights_dtype": cfg.model.weights_dtype}
        command = f"poetry-lstm calibrate --mode {trained.mode}{form_flag(trained.path)}"
        config["commands"] = config.get("commands", []) + [command]
        files.write_json(Path(trained.path) / "config.json", config)
        trained = load_model(trained.path, overuse=False, line_hashes=trained.known_lines is not None,
                             backward=trained.backward_path is not None)
    write_tables(trained.path, trained.vocab)
    write_weight_index(trained.path)
    record = measure(trained, poems, cfg.generate.settings(trained.settings_key), cfg.train.overuse_poems, log)
    files.write_json(Path(trained.path) / OVERUSE_FILE, record)
    rewrite(trained.path)
    return record
