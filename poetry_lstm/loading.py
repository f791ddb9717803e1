"""Load a model folder for poems: `model = load_model("models/word2vec")`.

The fast path maps the weights straight out of model.keras (where each array lies is in
`weights_index.json`; without it h5py reads them) into a NumPy `LstmStepper`, with no TensorFlow; a
file in a layout it does not know falls back to Keras (`network.load_keras_model`), so a Keras release that
moves its arrays costs start-up time, not wrong poems. Loading also fills, once, everything the
decoder looks up per step: the masks and priors (`tables.py`), the over-use penalties and the unit
embedding for coherence, and the training-line hashes of the copy check.
"""
from __future__ import annotations

import importlib.util
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import files
from .config import model_key
from .critic import NUMPY_FILES, NumpyCritic, load_numpy_critic
from .errors import PoetryError
from .layout import FIVE, Shape
from .metrics import LineHashes
from .modeldir import (
    BACKWARD,
    CRITIC,
    Vocab,
    missing_model_error,
    read_line_hashes,
    read_model_config,
    read_overuse,
    read_sense,
    rebuild_command,
    shape_of_args,
)
from .stepper import INDEX_FILE, LstmStepper, stepper_from_file, weight_index
from .tables import DecoderTables, load_tables
from .weightsfile import rewrite_as


@dataclass(eq=False)
class TrainedModel:
    """A loaded model folder: vocabulary, config, the NumPy stepper and the decoder's tables;
    `keras_model` too when loaded with `keras=True` (perplexity needs it)."""
    path: Path
    vocab: Vocab
    config: dict
    stepper: LstmStepper
    tables: DecoderTables
    overuse: np.ndarray  # (V,) log over-use ratio per token; zeros when not read (calibrate) or never measured
    keras_model: object = None
    known_lines: LineHashes | None = None  # the training lines' hashes, once read (`line_hashes`)
    backward_path: Path | None = None  # models/backward beside it, when there is one (`scorer`)
    backward: TrainedModel | None = field(default=None, init=False)  # that scorer, once loaded
    critic_path: Path | None = None  # models/critic beside it, when there is one (`ranker`)
    critic: NumpyCritic | None = field(default=None, init=False)  # that critic, once loaded
    sense: np.ndarray | None = None  # (units,) the judge of sense on the last hidden state (sense.json), if fitted
    unit_embedding: np.ndarray = field(init=False)  # (V, dim) input vectors of length 1: coherence is a cosine

    def __post_init__(self):
        emb = self.stepper.embedding
        self.unit_embedding = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-6)

    @property
    def mode(self) -> str:
        return self.config["model_args"]["mode"]

    @property
    def settings_key(self) -> str:
        """The name `[generate] model_temperature` gives this model: its mode, or a 七绝 model's `qijue/<mode>`."""
        return model_key(self.mode, self.shape.name)

    @property
    def shape(self) -> Shape:
        """The quatrain the model writes: FIVE, or SEVEN for a 七绝 model (`train --form qijue`)."""
        return shape_of_args(self.config["model_args"])

    def scorer(self) -> TrainedModel | None:
        """The backward scorer beside this model (p(line 1 | lines 2–4), read backwards), loaded on first use:
        only the decoder's `mutual` weight needs it, so a poem without it does not pay for its loading."""
        if self.backward is None and self.backward_path is not None:
            self.backward = load_model(self.backward_path, overuse=False, line_hashes=False, backward=False)
        return self.backward

    def ranker(self) -> NumpyCritic | None:
        """The ranking critic beside this model (log-odds that a whole poem is real), loaded on first use:
        only the decoder's `critic` weight needs it."""
        if self.critic is None and self.critic_path is not None:
            self.critic = load_numpy_critic(self.critic_path)
        return self.critic

    def line_hashes(self) -> LineHashes:
        """The training lines' hashes, read once (the copy check runs at every line end)."""
        if self.known_lines is None:
            self.known_lines = read_line_hashes(self.path, self.config)
        return self.known_lines


def load_model(path: str | Path, *, keras: bool = False, overuse: bool = True,
               line_hashes: bool = True, backward: bool = True) -> TrainedModel:
    """The model in `path` (`models/word2vec`), ready for poems.

    `keras=True` also loads the Keras model (imports TensorFlow: evaluation, training's test
    scores). `overuse=False` leaves overuse.json unread, so `calibrate` can replace a broken one;
    `line_hashes=False` leaves the copy check's hashes to the first poem that checks copies
    (`generate --no-novelty` needs none). With `backward`, the backward scorer in the folder `backward`
    beside `path` is found, when there is one, and loaded when the decoder's `mutual` weight first asks.
    Raises PoetryError naming the command that rebuilds the folder when something is missing or broken.
    """
    path = Path(path)
    error = missing_model_error(path)
    if error:
        raise error
    vocab = Vocab.load(path / "vocab.json")
    config = read_model_config(path)
    keras_model, stepper = _from_keras(path, vocab) if keras else (None, _fast_stepper(path, vocab))
    if stepper is None:  # a layout the fast reader does not know: Keras reads it
        keras_model, stepper = _from_keras(path, vocab)
    shape, command = shape_of_args(config["model_args"]), rebuild_command(path)
    # the rhyme context and the 叠字 places were made for one line length: the config's
    if (stepper.line_two_end not in (None, shape.line_two_end_step)
            or vocab.doubles_at and len(vocab.doubles_at) != shape.chars - 1):
        raise PoetryError(f"The model in {path} was not made for lines of {shape.chars} characters, as its config.json "
                          f"says; run {command} again.", kind="model_corrupt", path=str(path), command=command)
    penalties = read_overuse(path, vocab.tokens) if overuse else np.zeros(len(vocab), np.float32)
    hashes = read_line_hashes(path, config) if line_hashes else None
    scorer = path.parent / BACKWARD
    found = backward and path.name != BACKWARD and missing_model_error(scorer) is None
    critic = path.parent / CRITIC
    # the ranking critic reads whole 五绝 (24 slots): none beside a 七绝 model
    has_critic = (path.name != BACKWARD and shape == FIVE
                  and all((critic / name).exists() for name in NUMPY_FILES))
    sense = read_sense(path, config["model_args"]["units"])
    return TrainedModel(path, vocab, config, stepper, load_tables(path, vocab), penalties, keras_model, hashes,
                        scorer if found else None, critic if has_critic else None, sense)


def read_weight_index(folder: Path) -> dict | None:
    """`weights_index.json` (where each array lies in model.keras), or None when it is absent or unreadable:
    it only saves time, and `stepper.read_keras_weights` checks it against the file before trusting it."""
    try:
        index = json.loads((Path(folder) / INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) and isinstance(index.get("arrays"), dict) else None


def write_weight_index(folder: Path) -> Path | None:
    """Write `weights_index.json` for the model.keras in `folder` (train and calibrate do); None, and no
    file, for weights that are not contiguous arrays (h5py reads those at every load)."""
    path = Path(folder) / INDEX_FILE
    try:
        index = weight_index(Path(folder) / "model.keras")
    except ValueError:
        path.unlink(missing_ok=True)
        return None
    files.write_json(path, index, indent=None)
    return path


def store_weights_as(folder: Path, dtype: str) -> bool:
    """Rewrite `folder`/model.keras with its weights stored as `dtype` (`[model] weights_dtype`); True when the
    file changed. The weights index must be written again after."""
    return rewrite_as(Path(folder) / "model.keras", dtype)


def _fast_stepper(path: Path, vocab: Vocab) -> LstmStepper | None:
    """The stepper straight from the weights file, or None when Keras should read it instead."""
    try:
        return stepper_from_file(path / "model.keras", len(vocab), read_weight_index(path))
    except (ValueError, KeyError, IndexError, TypeError, OSError, zipfile.BadZipFile) as exc:
        # Not a zip (a torn or foreign file): Keras cannot read it either, so say so now instead of after
        # TensorFlow's 10-second start-up. Another layout (a newer Keras) is Keras's to read.
        if isinstance(exc, zipfile.BadZipFile) or importlib.util.find_spec("keras") is None:
            command = rebuild_command(path)
            raise PoetryError(f"The model file {path / 'model.keras'} cannot be read ({exc.__class__.__name__}); "
                              f"restore it with `git checkout -- {path}` or run {command} again.", kind="model_corrupt",
                              path=str(path / "model.keras"), command=command) from None
        return None


def _from_keras(path: Path, vocab: Vocab) -> tuple[object, LstmStepper]:
    """(the Keras model, a stepper of its weights)."""
    from .network import load_keras_model

    model = load_keras_model(path / "model.keras", len(vocab), rebuild_command(path))
    try:
        return model, LstmStepper(model)
    except (ValueError, IndexError):  # a loadable Keras file of another network: no embedding/lstm_0/next_char
        command = rebuild_command(path)
        raise PoetryError(f"The model file {path / 'model.keras'} is not a poetry-lstm network; run {command} again.",
                          kind="model_corrupt", path=str(path / "model.keras"), command=command) from None
