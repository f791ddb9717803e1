"""Skip-gram character vectors: `kv = train_vectors(texts, cfg.vectors)`; `nearest(kv, "月")`.

gensim Word2Vec with sg=1 over the training poems (each poem one sentence of characters,
punctuation included, since the LSTM reads it too). Saved in word2vec binary format (no pickle)
beside a small JSON that says which corpus and settings made them, so a matching set is reused.
`load_vectors_fast` reads that binary with NumPy, for the page and the theme: gensim is imported
only to train, or when our reader does not understand a file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import time
from pathlib import Path

import numpy as np

from . import files
from .config import VectorsConfig
from .errors import PoetryError
from .modeldir import form_flag

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
                log(f"skip-gram vectors: epoch {self.epoch}/{cfg.epochs} done "
                    f"after {time.perf_counter() - self.started:.0f} s")

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
        raise PoetryError(f"No character vectors at {path}; run `poetry-lstm train --mode word2vec{form_flag(path)}`.",
                          kind="vectors_missing", path=str(path))
    try:
        return KeyedVectors.load_word2vec_format(str(path), binary=True)
    except (ValueError, EOFError, UnicodeDecodeError, OSError) as exc:
        raise PoetryError(f"The vectors {path} are corrupt ({exc.__class__.__name__}); "
                          f"run `poetry-lstm train --mode word2vec --retrain-vectors{form_flag(path)}`.",
                          kind="vectors_corrupt",
                          path=str(path)) from None


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
        raise PoetryError(f"The character vectors lack {len(missing)} vocabulary characters "
                          f"(e.g. {''.join(missing[:5])}); "
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


# --- the vectors without gensim: the page and the theme read them in milliseconds ----------

class CharVectors:
    """The part of gensim's KeyedVectors the page and `theme_keywords` use."""

    def __init__(self, keys: list[str], vectors: np.ndarray):
        self.index_to_key = list(keys)
        self.key_to_index = {k: i for i, k in enumerate(self.index_to_key)}
        self.vectors = vectors.astype(np.float32)
        self.vector_size = vectors.shape[1]
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self._unit = self.vectors / np.maximum(norms, 1e-12)

    def __contains__(self, key: str) -> bool:
        return key in self.key_to_index

    def __getitem__(self, key: str) -> np.ndarray:
        return self.vectors[self.key_to_index[key]]

    def most_similar(self, key: str, topn: int = 10, restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """Cosine neighbours of `key` among the first `restrict_vocab` keys, the key itself left out (as
        gensim does)."""
        i = self.key_to_index[key]
        sims = self._unit[:restrict_vocab] @ self._unit[i]
        order = np.argsort(-sims, kind="stable")
        return [(self.index_to_key[j], float(sims[j])) for j in order if j != i][:topn]


def read_word2vec_binary(path: Path) -> CharVectors:
    """The word2vec C binary format gensim writes: a "count dim" line, then `word ` + float32s."""
    data = Path(path).read_bytes()
    end = data.index(b"\n")
    count, dim = (int(x) for x in data[:end].split())
    pos, keys, rows = end + 1, [], np.empty((count, dim), np.float32)
    for i in range(count):
        space = data.index(b" ", pos)
        keys.append(data[pos:space].decode("utf-8").lstrip("\n"))
        pos = space + 1
        rows[i] = np.frombuffer(data, dtype="<f4", count=dim, offset=pos)
        pos += 4 * dim
    if pos < len(data) and data[pos:].strip():
        raise ValueError("trailing bytes")
    return CharVectors(keys, rows)


def load_vectors_fast(folder: str | Path):
    """Vectors from `<folder>/vectors.bin`, by NumPy; gensim's reader if ours does not understand it."""
    path = Path(folder) / "vectors.bin"
    if not path.exists():
        raise PoetryError(f"No character vectors at {path}; run `poetry-lstm train --mode word2vec{form_flag(path)}`.",
                          kind="vectors_missing", path=str(path))
    try:
        return read_word2vec_binary(path)
    except (ValueError, UnicodeDecodeError, IndexError) as exc:
        if importlib.util.find_spec("gensim") is None:  # the light install: no gensim reader to try
            raise PoetryError(f"The vectors {path} are corrupt ({exc.__class__.__name__}); "
                              f"run `poetry-lstm train --mode word2vec --retrain-vectors{form_flag(path)}`.",
                              kind="vectors_corrupt",
                              path=str(path)) from None
        return load_vectors(folder)
