"""The network and its data: `model = build_model(**config["model_args"])`.

A stacked-LSTM next-character model over integer ids. The vocabulary is JSON, the windows are a
`tf.data` pipeline over integer arrays, and `LstmStepper` runs the trained weights one step at a
time in NumPy for the decoder (no TensorFlow call per character).
"""
from __future__ import annotations

import contextlib
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import files, layout
from .errors import PoetryError
from .metrics import poem_lines
from .reading import ATTESTED_DOUBLE, doubled_counts

PAD, UNK, START = "<pad>", "<unk>", "<s>"
SPECIALS = (PAD, UNK, START)
LINE_TWO_END = 1 + layout.LINE_ENDS[1]  # input position of line 2's last character: after <s>, 5 characters, ，, 5 characters


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what C++ libraries write straight to file descriptor 2 (Python errors still surface after)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_keras():
    """Keras on TensorFlow, imported once with TensorFlow's absl/CUDA start-up lines kept off the terminal."""
    if "tensorflow" not in sys.modules:
        with _quiet_stderr():
            import tensorflow as tf

            tf.constant(0)  # device discovery logs on first use, so do it here too
    import keras

    return keras


def seed_everything(seed: int) -> None:
    """The one place seeds are set: Python, NumPy and (if loaded) TensorFlow."""
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    random.seed(seed)
    np.random.seed(seed)
    import keras
    keras.utils.set_random_seed(seed)


DOUBLE_MIN = ATTESTED_DOUBLE  # a character doubled (悠悠, 萧萧) this often at one place of a line is a real 叠字 there


@dataclass(frozen=True)
class Vocab:
    tokens: tuple[str, ...]
    # Training counts per token (0 for specials) and the characters real lines double: the decoder
    # evens out over-used characters and allows only real 叠字. Not part of equality: a vocabulary
    # is its tokens.
    counts: tuple[int, ...] = field(default=(), compare=False)
    doubles: str = field(default="", compare=False)
    # doubles_at[i]: the 叠字 doubled at line places i and i+1 (0–3); 花花 opens lines, 光光 never
    # closes one. Empty in vocabularies saved before it existed.
    doubles_at: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        object.__setattr__(self, "index", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, ch: str) -> bool:
        return ch in self.index and ch not in SPECIALS

    def id(self, ch: str) -> int:
        return self.index.get(ch, 1)  # 1 = UNK

    def encode(self, text: str, start: bool = True) -> list[int]:
        return ([2] if start else []) + [self.id(ch) for ch in text]

    @classmethod
    def build(cls, texts, min_count: int) -> "Vocab":
        counts = Counter(ch for text in texts for ch in text)
        chars = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
        return cls(SPECIALS + tuple(chars)).with_stats(texts, counts)

    def with_stats(self, texts, counts: Counter | None = None) -> "Vocab":
        """This vocabulary with the training counts and 叠字 of `texts` (the training poems; `counts`
        when the caller has already counted their characters)."""
        counts = Counter(ch for text in texts for ch in text) if counts is None else counts
        at_places = doubled_counts([line for text in texts for line in poem_lines(text)])
        doubled = Counter()
        for (ch, _), n in at_places.items():
            doubled[ch] += n
        doubles = "".join(sorted(ch for ch, n in doubled.items() if n >= DOUBLE_MIN and ch in self.index))
        attested = [key for key, n in at_places.items() if n >= DOUBLE_MIN and key[0] in self.index]
        doubles_at = tuple("".join(sorted(ch for ch, at in attested if at == i)) for i in range(layout.CHARS - 1))
        return Vocab(self.tokens, tuple(0 if t in SPECIALS else counts.get(t, 0) for t in self.tokens), doubles, doubles_at)

    def save(self, path: Path) -> None:
        files.write_json(path, {"tokens": list(self.tokens), "counts": list(self.counts), "doubles": self.doubles,
                                "doubles_at": list(self.doubles_at)}, indent=None)

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        retrain = f"retrain the model with `poetry-lstm train --mode {Path(path).parent.name}`"
        data = files.read_json(path, "vocabulary", fix=retrain)
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or tuple(tokens[:3]) != SPECIALS or not all(isinstance(t, str) for t in tokens):
            raise PoetryError(f"The vocabulary {path} is corrupt; {retrain}.")
        counts, doubles, doubles_at = data.get("counts") or [], data.get("doubles") or "", data.get("doubles_at") or []
        if (counts and (len(counts) != len(tokens) or not all(isinstance(n, int) and n >= 0 for n in counts)) or not isinstance(doubles, str)
                or not isinstance(doubles_at, list) or doubles_at and (len(doubles_at) != layout.CHARS - 1
                                                                       or not all(isinstance(d, str) for d in doubles_at))):
            raise PoetryError(f"The vocabulary {path} has malformed counts; {retrain}.")
        return cls(tuple(tokens), tuple(counts), doubles, tuple(doubles_at))


_LAYERS: dict = {}


def custom_layers() -> dict:
    """Our one Keras layer, defined (and registered for safe-mode loading) on first use, so that
    importing this module never imports Keras."""
    if _LAYERS:
        return _LAYERS
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="poetry_lstm")
    class LineTwoEnd(keras.layers.Layer):
        """(batch, time, F) → (batch, time, F): from the step after line 2's last character on, that
        character's features; zeros before. The rhyme partner of line 4, without a 12-step memory."""

        def __init__(self, position: int = LINE_TWO_END, **kwargs):
            super().__init__(**kwargs)
            self.position = position

        def call(self, features):
            steps = ops.shape(features)[1]
            end = ops.take(features, ops.minimum(self.position, steps - 1), axis=1)  # (batch, F)
            after = ops.cast(ops.arange(steps) > self.position, features.dtype)  # (time,)
            return end[:, None, :] * after[None, :, None]

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "position": self.position}

    _LAYERS["LineTwoEnd"] = LineTwoEnd
    return _LAYERS


def build_model(vocab_size: int, mode: str, units: int, layers: int, dropout: float, embedding_dim: int,
                fine_tune_vectors: bool = False, prosody_dim: int = 0, rhyme_context: bool = False,
                vectors: np.ndarray | None = None, prosody: np.ndarray | None = None):
    """The stacked LSTM. `vectors` (vocab_size, dim) initialises the word2vec-mode embedding;
    `prosody` (vocab_size, prosody_dim) is `prosody.feature_table(vocab.tokens)` when prosody_dim > 0;
    `rhyme_context` also feeds, after line 2, the features of line 2's last character."""
    import keras
    from keras import layers as L

    if rhyme_context and not prosody_dim:
        raise PoetryError("The rhyme context reads the prosody features; set [model] prosody = true too.")

    ids = keras.Input(shape=(None,), dtype="int32", name="ids")  # (batch, time)
    if mode == "word2vec":
        dim = embedding_dim if vectors is None else vectors.shape[1]
        # Vectors are set as weights below, not as a Constant initialiser, which would copy the
        # whole matrix into the saved model's config.
        x = L.Embedding(vocab_size, dim, trainable=fine_tune_vectors, name="embedding")(ids)
    elif mode == "onehot":
        # one_hot(ids) @ W (vocab, dim) is exactly row lookup W[ids]: the same trainable linear map of
        # one-hot inputs, without materialising (batch, time, vocab) floats.
        x = L.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    else:
        raise PoetryError(f"Unknown mode {mode!r}; use word2vec or onehot.")
    if prosody_dim:
        # 平仄 and 平声 groups ride beside the character (and line 2's end after it):
        # (batch, time, dim + prosody_dim [+ prosody_dim])
        features = L.Embedding(vocab_size, prosody_dim, trainable=False, name="prosody")(ids)
        context = [custom_layers()["LineTwoEnd"](name="line_two_end")(features)] if rhyme_context else []
        x = L.Concatenate(name="with_prosody")([x, features, *context])
    for i in range(layers):
        x = L.LSTM(units, return_sequences=True, name=f"lstm_{i}")(x)  # (batch, time, units)
        x = L.Dropout(dropout, name=f"dropout_{i}")(x)
    if prosody_dim:
        # A score per 平声 group, added to every character of that group: a rhyme learned on common
        # characters carries over to rare ones. (batch, time, prosody_dim) @ (prosody_dim, vocab)
        groups = L.Dense(prosody_dim, name="group_scores")(x)
        spread = L.Dense(vocab_size, use_bias=False, trainable=False, name="group_spread")(groups)
        logits = L.Add(name="logits")([L.Dense(vocab_size, name="next_char")(x), spread])
        probs = L.Activation("softmax", name="probs")(logits)  # (batch, time, vocab)
    else:
        probs = L.Dense(vocab_size, activation="softmax", name="next_char")(x)  # (batch, time, vocab)
    model = keras.Model(ids, probs, name=f"poetry_lstm_{mode}")
    if mode == "word2vec" and vectors is not None:
        model.get_layer("embedding").set_weights([vectors])
    if prosody_dim and prosody is not None:
        model.get_layer("prosody").set_weights([prosody])
        model.get_layer("group_spread").set_weights([prosody.T.copy()])
    return model


def poem_ids(texts: list[str], vocab: Vocab) -> np.ndarray:
    """(poems, 25) int32: the start token then the 24 characters of each poem."""
    return np.array([vocab.encode(t) for t in texts], dtype=np.int32).reshape(len(texts), -1)


def window_dataset(poems: np.ndarray, window: int, stride: int, batch_size: int, shuffle: int = 0, seed: int = 0):
    """tf.data of (inputs, targets), each (batch, window): every position predicts its next token.

    Windows are cut inside the pipeline from the (poems, 25) id array, so memory holds the poems
    once whatever the window and stride. With `shuffle`, the poems are fully shuffled first (the
    corpus lists 五绝 before 五律 halves, more than any window buffer holds), then the windows
    within a buffer of `shuffle`.
    """
    import tensorflow as tf

    if window < 1 or stride < 1:
        raise PoetryError(f"Window and stride must be at least 1, not {window} and {stride}.")
    if window + 1 > poems.shape[1]:
        raise PoetryError(f"Window {window} is longer than a poem ({poems.shape[1] - 1} targets); choose at most {poems.shape[1] - 1}.")
    ds = tf.data.Dataset.from_tensor_slices(poems)
    if shuffle:
        ds = ds.shuffle(len(poems), seed=seed, reshuffle_each_iteration=True)  # 100 bytes a poem
    ds = ds.flat_map(lambda p: tf.data.Dataset.from_tensor_slices(tf.signal.frame(p, window + 1, stride)))
    # flat_map hides the length; stating it lets Keras end an epoch without an "ran out of data" warning.
    ds = ds.apply(tf.data.experimental.assert_cardinality(count_windows(len(poems), poems.shape[1], window, stride)))
    if shuffle:
        ds = ds.shuffle(shuffle, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda w: (w[:, :-1], w[:, 1:]), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def count_windows(n_poems: int, length: int, window: int, stride: int) -> int:
    return n_poems * (1 + (length - window - 1) // stride)


def line_hashes(texts):
    """`LineHashes` of every 5-character line: the copy check, without shipping the lines."""
    from .metrics import LineHashes

    return LineHashes.of_lines({line for t in texts for line in layout.lines_of(t)})


def _has_layer(model, name: str) -> bool:
    try:
        model.get_layer(name)
    except ValueError:
        return False
    return True


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class LstmStepper:
    """The trained network as NumPy arrays, advanced one token at a time for a batch of states.

    Keras's LSTM: gates [i, f, c, o] = x @ W + h @ U + b; c' = f*c + i*tanh(g); h' = o*tanh(c').
    Dropout is off at inference, so this equals `model.predict` on the whole prefix.
    """

    def __init__(self, model):
        self.embedding = model.get_layer("embedding").get_weights()[0].astype(np.float32)
        self.cells = []
        while _has_layer(model, f"lstm_{len(self.cells)}"):
            self.cells.append([w.astype(np.float32) for w in model.get_layer(f"lstm_{len(self.cells)}").get_weights()])
        self.out_w, self.out_b = (w.astype(np.float32) for w in model.get_layer("next_char").get_weights())
        self.units = self.cells[0][1].shape[0]
        self.prosody = None
        self.rhyme_context = _has_layer(model, "line_two_end")
        if _has_layer(model, "prosody"):
            self.prosody = model.get_layer("prosody").get_weights()[0].astype(np.float32)
            group_w, group_b = model.get_layer("group_scores").get_weights()
            spread = model.get_layer("group_spread").get_weights()[0]  # (groups, vocab)
            # x@W + b + (x@G + g)@S = x@(W + G@S) + (b + g@S): the group scores fold into the output
            # layer once here, so a decoder step pays no extra product for them.
            self.out_w = (self.out_w + group_w @ spread).astype(np.float32)
            self.out_b = (self.out_b + group_b @ spread).astype(np.float32)

    def initial_state(self, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(h, c) per layer; with the rhyme context, then (steps fed, line 2's end features) too."""
        zeros = np.zeros((batch, self.units), np.float32)
        state = [(zeros, zeros) for _ in self.cells]
        if self.rhyme_context:
            state.append((np.zeros(batch, np.int64), np.zeros((batch, self.prosody.shape[1]), np.float32)))
        return state

    def step(self, ids: np.ndarray, state, logits: bool = True):
        """ids (batch,) → (log-probabilities (batch, vocab), new state); with `logits=False` only the
        state advances (None for the log-probabilities): a forced character needs no prediction."""
        x = self.embedding[ids]  # (batch, dim)
        if self.prosody is not None:
            x = np.concatenate([x, self.prosody[ids]] + ([state[-1][1]] if self.rhyme_context else []), axis=1)
        new_state = []
        for (kernel, recurrent, bias), (h, c) in zip(self.cells, state):
            z = x @ kernel + h @ recurrent + bias  # (batch, 4 * units)
            i, f, g, o = np.split(z, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            new_state.append((h, c))
            x = h
        if self.rhyme_context:  # the step that feeds line 2's last character keeps its features
            steps, end = state[-1]
            new_state.append((steps + 1, np.where((steps == LINE_TWO_END)[:, None], self.prosody[ids], end)))
        if not logits:
            return None, new_state
        logits = x @ self.out_w + self.out_b  # (batch, vocab)
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True)), new_state

    def run(self, ids: list[int], batch: int = 1):
        """Feed a prefix; returns (log-probabilities after its last token, state), for `batch` copies."""
        state = self.initial_state(batch)
        for t in ids:
            logp, state = self.step(np.full(batch, t, dtype=np.int64), state)
        return logp, state


MODEL_FILES = ("model.keras", "vocab.json", "config.json")


@dataclass
class TrainedModel:
    """A loaded model directory: the Keras model, its vocabulary and config, and a NumPy stepper."""
    path: Path
    keras_model: object
    vocab: Vocab
    config: dict
    stepper: LstmStepper
    _line_hashes: object = None
    _overuse: object = None

    @property
    def mode(self) -> str:
        return self.config["model_args"]["mode"]

    def line_hashes(self):
        """The training lines' `LineHashes`, read once per loaded model (the copy check runs per line end).

        They lie beside the model folders (`models/train_lines.u64`, shared by models trained on
        one corpus); the config's digest proves they are this model's."""
        if self._line_hashes is None:
            from .metrics import HASH_FILE, LineHashes
            path = self.path.parent / HASH_FILE
            hashes = LineHashes.load(path)
            want = self.config.get("train_lines_sha1")
            if want and hashes.digest() != want:
                raise PoetryError(f"The training line hashes {path} belong to another corpus than the model in {self.path}; "
                                  f"retrain it with `poetry-lstm train --mode {self.mode}`, or pass --no-novelty.")
            self._line_hashes = hashes
        return self._line_hashes

    def overuse(self):
        """(vocab,) how much more often the decoder wrote each character than real poems (log ratio,
        `overuse.py`), read once; zeros for a model never measured."""
        if self._overuse is None:
            from .overuse import penalties
            self._overuse = penalties(self.path, self.vocab.tokens)
        return self._overuse


def load_model_dir(path: str | Path) -> TrainedModel:
    """Load `models/<mode>/` with Keras's safe mode, or raise a PoetryError saying what to run."""
    path = Path(path)
    mode = path.name
    if not path.is_dir():
        raise PoetryError(f"No model at {path}; run `poetry-lstm train --mode {mode}` to make one.")
    missing = [f for f in MODEL_FILES if not (path / f).exists()]
    if missing:
        raise PoetryError(f"The model directory {path} lacks {', '.join(missing)}; run `poetry-lstm train --mode {mode}` again.")
    vocab = Vocab.load(path / "vocab.json")
    config = files.read_json(path / "config.json", "model config", fix=f"run `poetry-lstm train --mode {mode}` again")
    if not isinstance(config, dict) or not isinstance(config.get("model_args"), dict) or "mode" not in config["model_args"]:
        raise PoetryError(f"The model config {path / 'config.json'} is corrupt; run `poetry-lstm train --mode {mode}` again.")
    import keras

    custom_layers()  # registered, so safe mode can rebuild it
    try:
        model = keras.saving.load_model(path / "model.keras", safe_mode=True)
    except Exception as exc:  # a torn zip, a foreign file or a layer Keras refuses: all mean "rebuild it"
        raise PoetryError(f"The model file {path / 'model.keras'} cannot be loaded ({exc.__class__.__name__}); "
                          f"run `poetry-lstm train --mode {mode}` again.") from None
    if model.output_shape[-1] != len(vocab):
        raise PoetryError(f"The model in {path} predicts {model.output_shape[-1]} tokens but its vocabulary has {len(vocab)}; retrain it.")
    try:
        stepper = LstmStepper(model)
    except (ValueError, IndexError):  # a loadable Keras file of another network: no embedding/lstm_0/next_char
        raise PoetryError(f"The model file {path / 'model.keras'} is not a poetry-lstm network; run `poetry-lstm train --mode {mode}` again.") from None
    return TrainedModel(path, model, vocab, config, stepper)
