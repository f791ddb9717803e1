"""The network in Keras: `model = build_model(**config["model_args"])`, and its training windows.

A stacked-LSTM next-character model over integer ids, with the 平水韵 features beside each
character. Keras only, imported when a function here runs: training and perplexity need it, a
poem never does (`stepper.py` runs the same weights in NumPy). Nothing here knows the model folder.
"""
from __future__ import annotations

import contextlib
import os
import random
import sys
from pathlib import Path

import numpy as np

from .errors import PoetryError
from .layout import LINE_TWO_END_STEP, shape_for
from .weightsfile import float_copy


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


_LAYERS: dict = {}


def custom_layers() -> dict:
    """Our Keras layers, defined (and registered for safe-mode loading) on first use, so that importing this
    module never imports Keras. The shipped networks use LineTwoEnd; the others are the benches' (a network
    for both forms, a condition vector), which the NumPy stepper does not run."""
    if _LAYERS:
        return _LAYERS
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="poetry_lstm")
    class LineTwoEnd(keras.layers.Layer):
        """(batch, time, F) → (batch, time, F): from the step after line 2's last character on, that
        character's features; zeros before. The rhyme partner of line 4, without a 12-step memory."""

        def __init__(self, position: int = LINE_TWO_END_STEP, **kwargs):
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

    @keras.saving.register_keras_serializable(package="poetry_lstm")
    class LineTwoEndFound(keras.layers.Layer):
        """[(batch, time, F), ids (batch, time)] → (batch, time, F): LineTwoEnd for poems of either
        length, each finding line 2's end as the input step before its first 。 (`period_id`); zeros in
        a window without one."""

        def __init__(self, period_id: int, **kwargs):
            super().__init__(**kwargs)
            self.period_id = period_id

        def call(self, inputs):
            features, ids = inputs
            is_period = ops.cast(ops.equal(ids, self.period_id), "int32")  # (batch, time)
            found = ops.cast(ops.max(is_period, axis=1), features.dtype)  # (batch,)
            position = ops.cast(ops.maximum(ops.argmax(is_period, axis=1) - 1, 0), "int32")  # (batch,)
            end = ops.take_along_axis(features, position[:, None, None], axis=1)  # (batch, 1, F)
            after = ops.arange(ops.shape(ids)[1])[None, :] > position[:, None]  # (batch, time)
            return end * (ops.cast(after, features.dtype) * found[:, None])[:, :, None]

        def compute_output_shape(self, input_shapes):
            return input_shapes[0]

        def get_config(self):
            return {**super().get_config(), "period_id": self.period_id}

    _LAYERS["LineTwoEndFound"] = LineTwoEndFound

    @keras.saving.register_keras_serializable(package="poetry_lstm")
    class AlongTime(keras.layers.Layer):
        """[(batch, time, F), (batch, C)] → (batch, time, C): one vector per poem, at every step."""

        def call(self, inputs):
            sequence, vector = inputs
            return ops.ones_like(sequence[:, :, :1]) * vector[:, None, :]

        def compute_output_shape(self, input_shapes):
            return (*input_shapes[0][:2], input_shapes[1][-1])

    _LAYERS["AlongTime"] = AlongTime
    return _LAYERS


def build_model(vocab_size: int, mode: str, units: int, layers: int, dropout: float, embedding_dim: int,
                fine_tune_vectors: bool = False, prosody_dim: int = 0, rhyme_context: bool = False, chars: int = 5,
                period_id: int | None = None, condition_dim: int = 0, vectors: np.ndarray | None = None,
                prosody: np.ndarray | None = None):
    """The stacked LSTM. `vectors` (vocab_size, dim) initialises the word2vec-mode embedding;
    `prosody` (vocab_size, prosody_dim) is `prosody.feature_table(vocab.tokens)` when prosody_dim > 0;
    `rhyme_context` also feeds, after line 2, the features of line 2's last character, which sits where
    lines of `chars` characters (5 or 7) put it; with `period_id` (the id of 。), where each poem's first
    。 shows it, so that one network reads both forms (bench/joint_forms.py; the NumPy stepper runs only
    the fixed place). With `condition_dim`, the model also reads a vector per poem (batch, condition_dim) at
    every step, inputs `{"ids", "condition"}`: a poem's subject, such as its title's (bench/title_condition.py)."""
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
        context = []
        if rhyme_context and period_id is not None:
            context = [custom_layers()["LineTwoEndFound"](period_id, name="line_two_end")([features, ids])]
        elif rhyme_context:
            position = shape_for(chars).line_two_end_step
            context = [custom_layers()["LineTwoEnd"](position, name="line_two_end")(features)]
        x = L.Concatenate(name="with_prosody")([x, features, *context])
    inputs = ids
    if condition_dim:
        condition = keras.Input(shape=(condition_dim,), dtype="float32", name="condition")  # (batch, C)
        along = custom_layers()["AlongTime"](name="condition_along")([x, condition])  # (batch, time, C)
        x = L.Concatenate(name="with_condition")([x, along])
        inputs = {"ids": ids, "condition": condition}
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
    model = keras.Model(inputs, probs, name=f"poetry_lstm_{mode}")
    if mode == "word2vec" and vectors is not None:
        model.get_layer("embedding").set_weights([vectors])
    if prosody_dim and prosody is not None:
        model.get_layer("prosody").set_weights([prosody])
        model.get_layer("group_spread").set_weights([prosody.T.copy()])
    return model


def use_sampled_softmax(model, num_sampled: int, counts) -> None:
    """Train `model` (from `build_model`, compiled) on a sampled softmax: each step scores the targets and
    `num_sampled` characters drawn by frequency (counts ** 0.75, shared by the batch) instead of all ~8,400,
    with the usual correction for how often each is drawn (tf.nn.sampled_softmax_loss). The network, its
    weights and its full-softmax validation are unchanged; only `fit`'s step is, so a checkpoint saved either
    way loads either way. The output layer takes ~45% of a full step (bench/softmax_cost.py). The logged
    training loss is the sampled one (lower than the full loss); `accuracy` is not measured in training."""
    import keras
    import tensorflow as tf

    last = [layer for layer in model.layers if layer.name.startswith("dropout_")][-1]
    prosody = "group_scores" in [layer.name for layer in model.layers]
    outputs = [last.output] + ([model.get_layer("group_scores").output] if prosody else [])
    features = keras.Model(model.input, outputs, name="features")  # shares every layer with `model`
    head = model.get_layer("next_char")
    spread = model.get_layer("group_spread") if prosody else None
    vocab_size = int(head.kernel.shape[-1])
    # <unk> is a target (the characters too rare to keep) with no count of its own: drawn as often as a middling
    # character, else its tiny proposal would leave it all but untrained; <pad> and <s> are never targets
    seen = sorted(c for c in counts if c > 0)
    unigrams = [float(c if c > 0 else (seen[len(seen) // 2] if seen else 1)) for c in counts]
    if len(unigrams) != vocab_size:
        raise PoetryError(f"The sampled softmax needs a count for each of the {vocab_size} characters, "
                          f"not {len(unigrams)}.")
    # fit() reads every compiled metric after an epoch: build them once (accuracy stays unmeasured in training)
    model.compute_metrics(None, np.zeros((1, 1), "int32"), np.full((1, 1, vocab_size), 1 / vocab_size, "float32"), None)
    model.reset_metrics()
    loss_tracker = next(m for m in model.metrics if m.name == "loss")

    def sampled_loss(x, y):
        parts = features(x, training=True)  # the last LSTM's output [, the group scores]: (batch, time, ·)
        z = tf.concat(parts if isinstance(parts, (list, tuple)) else [parts], axis=-1)
        z = tf.reshape(z, (-1, z.shape[-1]))
        kernel = tf.concat([head.kernel, spread.kernel], axis=0) if spread is not None else head.kernel
        labels = tf.reshape(tf.cast(y, tf.int64), (-1, 1))  # (batch·time, 1)
        sampled = tf.random.fixed_unigram_candidate_sampler(labels, 1, num_sampled, True, vocab_size,
                                                            distortion=0.75, unigrams=unigrams)
        losses = tf.nn.sampled_softmax_loss(tf.transpose(kernel), head.bias, labels, z, num_sampled, vocab_size,
                                            sampled_values=sampled, remove_accidental_hits=True)
        return tf.reduce_mean(losses)

    def train_step(data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            loss = sampled_loss(x, y)
        variables = model.trainable_variables
        model.optimizer.apply(tape.gradient(loss, variables), variables)
        loss_tracker.update_state(loss)
        return model.get_metrics_result()

    model.train_step = train_step  # fit() builds its function from the instance's train_step
    model.sampled_softmax = num_sampled  # the epoch callback marks the history rows
    model.make_train_function(force=True)


def use_full_softmax(model) -> None:
    """Undo `use_sampled_softmax`: `fit` trains on the full softmax again (fine-tuning does)."""
    if "train_step" in vars(model):
        del model.train_step
        model.sampled_softmax = 0
        model.make_train_function(force=True)


def as_one_form(model, args: dict, chars: int):
    """A network for both forms (`period_id` in `args`) as one form's shipped kind: the same weights, in a
    network whose rhyme context sits at the fixed place of `chars`-character lines, which the NumPy stepper
    runs and one form's fine-tuning and model folder expect. Neither rhyme-context layer holds weights, so the
    two networks' weight lists match one to one."""
    fixed = {k: v for k, v in args.items() if k != "period_id"}
    copy = build_model(**(fixed if chars == 5 else {**fixed, "chars": chars}))
    copy.set_weights(model.get_weights())
    return copy


def poem_ids(texts: list[str], vocab) -> np.ndarray:
    """(poems, 1 + slots) int32: the start token then the 24 (a 七绝: 32) slots of each poem (`vocab`: a
    modeldir.Vocab)."""
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
        raise PoetryError(f"Window {window} is longer than a poem ({poems.shape[1] - 1} targets); "
                          f"choose at most {poems.shape[1] - 1}.")
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


def load_keras_model(path: Path, vocab_size: int, rebuild: str):
    """`model.keras` read by Keras in safe mode, checked against the vocabulary; `rebuild` is the
    command that makes the folder again, for the message when it cannot be read."""
    import keras

    custom_layers()  # registered, so safe mode can rebuild it
    try:
        with float_copy(path) as readable:  # int8 weights: Keras reads a float32 twin
            model = keras.saving.load_model(readable, safe_mode=True)
    except Exception as exc:  # a torn zip, a foreign file or a layer Keras refuses: all mean "rebuild it"
        raise PoetryError(f"The model file {path} cannot be loaded ({exc.__class__.__name__}); run {rebuild} again.",
                          kind="model_corrupt", path=str(path), command=rebuild) from None
    if model.output_shape[-1] != vocab_size:
        raise PoetryError(f"The model in {path.parent} predicts {model.output_shape[-1]} tokens but its vocabulary has "
                          f"{vocab_size}; run {rebuild} again.", kind="model_corrupt", path=str(path), command=rebuild)
    return model
