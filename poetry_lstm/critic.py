"""A neural critic of whole poems: `train_critic(real, ours)`, then `critic_scores(critic, real, ours)`.

The surface measures (character statistics, n-gram judges, the position-tagged discriminator) no longer
tell our poems from real ones; readers still do, by what the lines say to each other. The critic reads
the whole poem in both directions (a bidirectional LSTM over character embeddings) and learns real 五绝
against ours written from the same first lines, so line 1 tells it nothing and it must judge lines 2–4
against it. It learns on the train split only and is scored on held-out poems; the decoder never sees
it, so a setting cannot be tuned to please it. Train it again when the generator changes a lot: it
knows the flaws of the poems it learned from.

Stored as `critic.json` (vocabulary, arguments, how it was made) and `critic.weights.h5` in a folder of
its own; training and `load_critic` need the train extra (Keras). `critic.npz` holds the same weights
in float16 for `NumpyCritic`, which needs only NumPy: the decoder can rank its candidates with a second
critic (`[generate] critic`), trained on other first lines than the one that measures.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import files, layout
from .errors import PoetryError

CRITIC_FILES = ("critic.json", "critic.weights.h5")
NUMPY_FILES = ("critic.json", "critic.npz")
ARRAY_NAMES = ("embedding", "fwd_kernel", "fwd_recurrent", "fwd_bias", "bwd_kernel", "bwd_recurrent", "bwd_bias",
               "dense_w", "dense_b")
PAD, UNK = "<pad>", "<unk>"


@dataclass
class Critic:
    tokens: tuple[str, ...]  # id → character; 0 pads, 1 is unknown
    args: dict               # build_critic's arguments
    model: object            # the Keras model: ids (batch, 24) → P(real) (batch, 1)
    made: dict               # how it was trained: poems, seed, epochs, valid scores

    def ids(self, poems: list[str]) -> np.ndarray:
        return _ids({t: i for i, t in enumerate(self.tokens)}, poems)

    def p_real(self, poems: list[str]) -> np.ndarray:
        """(poems,) the critic's probability that each poem is real."""
        return np.asarray(self.model.predict(self.ids(poems), batch_size=256, verbose=0))[:, 0]


def build_critic(vocab_size: int, dim: int = 64, units: int = 64, dropout: float = 0.3, learning_rate: float = 1e-3,
                 frozen: bool = False):
    """`frozen`: the embedding keeps the vectors it is given (the skip-gram vectors: what characters mean,
    learned from 1.1 million lines, which a few thousand poems cannot teach)."""
    import keras

    ids = keras.Input((layout.SLOTS,), dtype="int32")
    x = keras.layers.Embedding(vocab_size, dim, mask_zero=True, trainable=not frozen, name="chars")(ids)  # (b, 24, dim)
    x = keras.layers.Bidirectional(keras.layers.LSTM(units))(x)      # (batch, 2 units): the poem both ways
    x = keras.layers.Dropout(dropout)(x)
    p = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(ids, p, name="critic")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _vocabulary(poems: list[str], min_count: int = 2) -> tuple[str, ...]:
    counts = Counter(ch for p in poems for ch in p)
    return (PAD, UNK, *sorted(ch for ch, k in counts.items() if k >= min_count))


def train_critic(real: list[str], ours: list[str], seed: int = 1234, epochs: int = 12, valid_share: float = 0.1,
                 patience: int = 3, vectors=None, log=lambda _: None, **args) -> Critic:
    """A critic of real (label 1) against ours (label 0), pairs kept together in one split: the poems
    a first line gave go to the same side. Early-stopped on the held-back share; the best epoch stays.
    `vectors` (character → vector, e.g. the skip-gram vectors) become its frozen embedding."""
    import keras

    if len(real) < 10 or len(ours) < 10:
        raise PoetryError(f"A critic needs at least 10 real and 10 generated poems; got {len(real)} and {len(ours)}.",
                          kind="critic_too_few")
    keras.utils.set_random_seed(seed)
    rows = [(p, 1.0) for p in real] + [(p, 0.0) for p in ours]
    lines = sorted({p[:layout.CHARS] for p, _ in rows})
    random.Random(seed).shuffle(lines)
    held = set(lines[:max(1, int(len(lines) * valid_share))])
    train = [r for r in rows if r[0][:layout.CHARS] not in held]
    valid = [r for r in rows if r[0][:layout.CHARS] in held]
    random.Random(seed + 1).shuffle(train)
    tokens = _vocabulary([p for p, _ in train])
    if vectors is not None:
        args.update(dim=vectors.vector_size, frozen=True)
    critic = Critic(tokens, {"vocab_size": len(tokens), **args}, build_critic(len(tokens), **args), {})
    if vectors is not None:
        rng = np.random.default_rng(seed)
        matrix = [vectors[t] if t in vectors else rng.normal(0, 0.1, vectors.vector_size) for t in tokens]
        matrix[0] = np.zeros(vectors.vector_size)  # padding
        critic.model.get_layer("chars").set_weights([np.stack(matrix).astype(np.float32)])
    x, y = critic.ids([p for p, _ in train]), np.array([t for _, t in train], np.float32)
    vx, vy = critic.ids([p for p, _ in valid]), np.array([t for _, t in valid], np.float32)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    history = critic.model.fit(x, y, validation_data=(vx, vy), epochs=epochs, batch_size=64, callbacks=[stop],
                               verbose=0, shuffle=True)
    h = history.history
    best = int(np.argmin(h["val_loss"]))
    log(f"critic: {len(train)} training and {len(valid)} held-back poems; best epoch {best + 1} of {len(h['loss'])}, "
        f"held-back accuracy {h['val_accuracy'][best]:.3f}")
    critic.made = {"real": len(real), "ours": len(ours), "seed": seed, "epochs_run": len(h["loss"]),
                   "best_epoch": best + 1, "valid_accuracy": round(float(h["val_accuracy"][best]), 4),
                   "valid_loss": round(float(h["val_loss"][best]), 4)}
    return critic


# A patch: which of lines 2–4 (0-based) come from another poem.
PATCHES = ((1,), (2,), (3,), (2, 3))


def patched_poems(poems: list[str], seed: int = 0, pool: list[str] | None = None) -> list[str]:
    """Each poem with one of lines 2, 3, 4 (or lines 3 and 4 together) taken from another poem of `pool` (default:
    `poems`): lines at the same places, of the same 平仄 character by character, ending on the same characters, so
    the patched poem keeps its form, tones and rhyme and differs from a real one only in what its lines say to each
    other (the negatives of a coherence critic, which never sees a generated poem). A poem with no such donor is
    left out."""
    from .prosody import tone_of

    def split(texts: list[str]) -> list[tuple[list[str], list[str]]]:  # (lines, their 平/仄/b(oth)/u(nknown))
        lines = [layout.FIVE.lines_of(t) if len(t) == layout.SLOTS else [] for t in texts]
        return [(ls, ["".join(tone_of(ch)[0] for ch in line) for line in ls]) for ls in lines]

    def key(lines_tones, places: tuple[int, ...]) -> tuple:
        lines, tones = lines_tones
        return places, tuple(tones[k] for k in places), lines[places[-1]][-1]

    rng = random.Random(seed)
    targets = split(poems)
    donor_texts = targets if pool is None else split(pool)
    donors: dict[tuple, list[int]] = {}
    for j, donor in enumerate(donor_texts):
        if donor[0]:
            for places in PATCHES:
                donors.setdefault(key(donor, places), []).append(j)
    out = []
    for target in targets:
        lines = target[0]
        if not lines:
            continue
        for places in rng.sample(PATCHES, len(PATCHES)):
            # a donor whose lines at these places differ from the poem's (not the poem itself, in its own pool)
            found = donors.get(key(target, places), [])
            picks = (donor_texts[rng.choice(found)][0] for _ in range(8 if found else 0))
            donor = next((d for d in picks if any(d[k] != lines[k] for k in places)), None)
            if donor is not None:
                patched = [donor[k] if k in places else line for k, line in enumerate(lines)]
                out.append("".join(line + mark for line, mark in zip(patched, layout.MARKS_OF_LINES)))
                break
    return out


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """The chance that a random real poem scores above a random one of ours (ties count half)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def critic_scores(critic: Critic, real: list[str], ours: list[str]) -> dict:
    """How well the critic tells held-out real poems from ours: accuracy on both at 0.5, the area under
    the ROC curve (0.5 = cannot tell), and the share of ours it takes for real (real poems reach
    `real_taken_real`)."""
    pr, po = critic.p_real(real), critic.p_real(ours)
    accuracy = (float((pr > 0.5).sum()) + float((po <= 0.5).sum())) / (len(pr) + len(po))
    return {"accuracy": round(accuracy, 4), "auc": round(_auc(pr, po), 4),
            "ours_taken_real": round(float((po > 0.5).mean()), 4),
            "real_taken_real": round(float((pr > 0.5).mean()), 4),
            "ours_mean_p_real": round(float(po.mean()), 4), "real_mean_p_real": round(float(pr.mean()), 4),
            "real": len(pr), "ours": len(po)}


def save_critic(folder: str | Path, critic: Critic) -> Path:
    folder = Path(folder)
    files.write_json(folder / "critic.json", {"tokens": list(critic.tokens), "args": critic.args, "made": critic.made})
    with files.atomic_path(folder / "critic.weights.h5", suffix=".weights.h5") as tmp:
        critic.model.save_weights(tmp)
    with files.atomic_path(folder / "critic.npz", suffix=".npz") as tmp:
        np.savez(tmp, **critic_arrays(critic))
    return folder


def critic_arrays(critic: Critic) -> dict[str, np.ndarray]:
    """The Keras critic's weights by name, as `NumpyCritic` reads them (float16: 1.3 MB, not 2.6)."""
    both_ways = next(layer for layer in critic.model.layers if type(layer).__name__ == "Bidirectional")
    fwd_k, fwd_r, fwd_b, bwd_k, bwd_r, bwd_b = both_ways.get_weights()
    dense_w, dense_b = critic.model.layers[-1].get_weights()
    arrays = {"embedding": critic.model.get_layer("chars").get_weights()[0], "fwd_kernel": fwd_k,
              "fwd_recurrent": fwd_r, "fwd_bias": fwd_b, "bwd_kernel": bwd_k, "bwd_recurrent": bwd_r,
              "bwd_bias": bwd_b, "dense_w": dense_w, "dense_b": dense_b}
    return {k: v.astype(np.float16) for k, v in arrays.items()}


def _ids(index: dict[str, int], poems: list[str]) -> np.ndarray:
    """(poems, 24) token ids of whole poems; 1 (unknown) for a character the critic never saw."""
    return np.array([[index.get(ch, 1) for ch in p[:layout.SLOTS]] for p in poems], dtype=np.int32)


def _lstm_last(x: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras's LSTM (gates i, f, c, o; tanh and sigmoid) over x (batch, time, dim) → the last h (batch, units)."""
    units = recurrent.shape[0]
    h = np.zeros((x.shape[0], units), np.float32)
    c = np.zeros_like(h)
    inputs = x @ kernel + bias  # (batch, time, 4 units): the input half of every step at once
    for t in range(x.shape[1]):
        z = inputs[:, t] + h @ recurrent
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
    return h


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


@dataclass
class NumpyCritic:
    """The critic without Keras: `logit_real(poems)` for whole 24-slot poems (no padding, so no mask)."""
    tokens: tuple[str, ...]
    arrays: dict  # name → float32 array (critic_arrays)
    made: dict

    def __post_init__(self):
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def logit_real(self, poems: list[str]) -> np.ndarray:
        """(poems,) log-odds that each poem is real: the critic's pre-sigmoid score."""
        a = self.arrays
        x = a["embedding"][_ids(self.index, poems)]  # (batch, 24, dim)
        h = np.concatenate([_lstm_last(x, a["fwd_kernel"], a["fwd_recurrent"], a["fwd_bias"]),
                            _lstm_last(x[:, ::-1], a["bwd_kernel"], a["bwd_recurrent"], a["bwd_bias"])], axis=1)
        return (h @ a["dense_w"] + a["dense_b"])[:, 0]


def _critic_meta(folder: Path, needed: tuple[str, ...]) -> dict:
    """critic.json of the critic in `folder`, once the files `needed` are all there."""
    missing = [f for f in needed if not (folder / f).exists()]
    if missing:
        raise PoetryError(f"No critic in {folder} (missing {', '.join(missing)}); train one with "
                          "`python bench/critic.py train`.", kind="critic_missing", path=str(folder))
    return files.read_json(folder / "critic.json", "critic", fix="train the critic again")


def load_numpy_critic(folder: str | Path) -> NumpyCritic:
    folder = Path(folder)
    meta = _critic_meta(folder, NUMPY_FILES)
    with np.load(folder / "critic.npz", allow_pickle=False) as z:
        arrays = {k: z[k].astype(np.float32) for k in z.files}
    missing = sorted(set(ARRAY_NAMES) - set(arrays))
    if missing:
        raise PoetryError(f"The critic in {folder} lacks {', '.join(missing)} in critic.npz; train it again with "
                          "`python bench/critic.py train`.", kind="critic_missing", path=str(folder))
    return NumpyCritic(tuple(meta["tokens"]), arrays, meta.get("made", {}))


def load_critic(folder: str | Path) -> Critic:
    folder = Path(folder)
    meta = _critic_meta(folder, CRITIC_FILES)
    args = dict(meta["args"])
    model = build_critic(args.pop("vocab_size"), **args)
    model.load_weights(folder / "critic.weights.h5")
    return Critic(tuple(meta["tokens"]), meta["args"], model, meta.get("made", {}))


def binomial_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95% interval for a share k/n: how far two critic readings must differ to mean something."""
    if not n:
        return 0.0, 1.0
    p, d = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return round(mid - half, 4), round(mid + half, 4)
