"""Skip-gram character vectors: `kv = train_vectors(texts, cfg.vectors)`; `nearest(kv, "月")`.

gensim Word2Vec with sg=1 over the training poems (each poem one sentence of characters,
punctuation included, since the LSTM reads it too). Saved in word2vec binary format (no pickle)
beside a small JSON that says which corpus and settings made them, so a matching set is reused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from . import files
from .config import VectorsConfig
from .errors import PoetryError

PROBES = ("月", "山", "春", "酒")


def corpus_digest(texts: list[str]) -> str:
    return hashlib.sha1("\n".join(texts).encode("utf-8")).hexdigest()


def train_vectors(texts: list[str], cfg: VectorsConfig, log=None):
    """Skip-gram vectors; `log` hears once per epoch, so a long run shows progress in its log file."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    class Progress(CallbackAny2Vec):
        def __init__(self):
            self.epoch, self.started = 0, time.perf_counter()

        def on_epoch_end(self, model):
            self.epoch += 1
            if log:
                log(f"skip-gram vectors: epoch {self.epoch}/{cfg.epochs} done after {time.perf_counter() - self.started:.0f} s")

    logging.getLogger("gensim").setLevel(logging.WARNING)
    # With more than one worker, thread scheduling changes the vectors slightly from run to run.
    model = Word2Vec(sentences=[list(t) for t in texts], vector_size=cfg.vector_size, window=cfg.window, sg=1,
                     negative=cfg.negative, min_count=cfg.min_count, epochs=cfg.epochs, seed=cfg.seed,
                     workers=cfg.workers, callbacks=[Progress()])
    return model.wv


def save_vectors(kv, folder: Path, texts: list[str], cfg: VectorsConfig) -> None:
    with files.atomic_path(folder / "vectors.bin") as tmp:
        kv.save_word2vec_format(str(tmp), binary=True)
    files.write_json(folder / "vectors.json", {"corpus_sha1": corpus_digest(texts), "settings": dataclasses.asdict(cfg),
                                               "characters": len(kv.index_to_key)})


def load_vectors(folder: Path):
    from gensim.models import KeyedVectors

    path = Path(folder) / "vectors.bin"
    if not path.exists():
        raise PoetryError(f"No character vectors at {path}; run `poetry-lstm train --mode word2vec`.")
    try:
        return KeyedVectors.load_word2vec_format(str(path), binary=True)
    except (ValueError, EOFError, UnicodeDecodeError, OSError) as exc:
        raise PoetryError(f"The vectors {path} are corrupt ({exc.__class__.__name__}); run `poetry-lstm train --mode word2vec --retrain-vectors`.") from None


def matching_vectors(folder: Path, texts: list[str], cfg: VectorsConfig):
    """Saved vectors if they were made from these texts with these settings, else None."""
    meta_path = Path(folder) / "vectors.json"
    if not meta_path.exists() or not (Path(folder) / "vectors.bin").exists():
        return None
    meta = files.read_json(meta_path, "vectors description")
    if meta.get("corpus_sha1") != corpus_digest(texts) or meta.get("settings") != dataclasses.asdict(cfg):
        return None
    return load_vectors(folder)


def embedding_matrix(kv, tokens: tuple[str, ...], seed: int) -> np.ndarray:
    """(vocab, dim) rows in vocabulary order; specials get zeros (pad), the mean (unk), noise (start)."""
    missing = [t for t in tokens[3:] if t not in kv.key_to_index]
    if missing:
        raise PoetryError(f"The character vectors lack {len(missing)} vocabulary characters (e.g. {''.join(missing[:5])}); "
                          "they do not match the corpus: run `poetry-lstm train --mode word2vec --retrain-vectors`.")
    rng = np.random.default_rng(seed)
    dim = kv.vector_size
    rows = [np.zeros(dim), kv.vectors.mean(axis=0), rng.normal(0, 0.1, dim)]
    rows += [kv[t] for t in tokens[3:]]
    return np.stack(rows).astype(np.float32)


COMMON = 3000  # neighbours come from the most frequent characters: a character seen twice has a noisy vector


def nearest(kv, ch: str, topn: int = 8) -> list[tuple[str, float]]:
    """Nearest common CJK characters to `ch` by cosine similarity (punctuation left out)."""
    if ch not in kv.key_to_index:
        return []
    found = kv.most_similar(ch, topn=topn + 4, restrict_vocab=COMMON)
    return [(c, round(float(s), 3)) for c, s in found if "\u3400" <= c <= "\u9fff"][:topn]
