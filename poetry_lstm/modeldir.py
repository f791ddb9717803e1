"""A model folder on disk: `models/<mode>/` and what each file in it means.

    model.keras   the network (Keras 3 zip: config + HDF5 weights)   → stepper.py, network.py
    vocab.json    tokens, training counts, the 叠字 real lines double  → `Vocab`
    config.json   model_args, training settings, the command          → `read_model_config`
    overuse.json  characters the decoder over-uses (calibrate.py)     → `read_overuse`
    tables.npz    the decoder's masks and priors, built once           → tables.py
    weights_index.json  where each array lies in model.keras           → stepper.py, loading.py
    ../train_lines.u64  hashes of every training line (the copy check) → `read_line_hashes`

Each reader checks its file once and, when it is missing or broken, raises a PoetryError naming
the command that makes it again. Nothing here imports NumPy-heavy or Keras code.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import files, layout
from .errors import PoetryError
from .metrics import HASH_FILE, LineHashes, poem_lines
from .reading import ATTESTED_DOUBLE, doubled_counts

MODEL_FILES = ("model.keras", "vocab.json", "config.json")
OVERUSE_FILE = "overuse.json"
TABLES_FILE = "tables.npz"
MODES = ("word2vec", "onehot")
BACKWARD = "backward"  # the folder of the backward scorer (`train --backward`), beside the modes' folders
CRITIC = "critic"  # the folder of the ranking critic (`python bench/critic.py train --out models/critic`), beside them
SENSE_FILE = "sense.json"  # a model's judge of sense: readers' ratings of its poems read off its last hidden state
PAD, UNK, START = "<pad>", "<unk>", "<s>"
SPECIALS = (PAD, UNK, START)


def form_flag(path: Path) -> str:
    """" --form qijue" for a path in or under a 七绝 model's folder (models/qijue/<mode>/…), else "": what a
    command that remakes it must add."""
    return " --form qijue" if "qijue" in [p.name for p in list(Path(path).parents)[:3]] else ""


def rebuild_command(folder: Path) -> str:
    """The command that rebuilds the model folder `folder`, quoted for a message: training writes
    `<models_dir>/<mode>/` (a 七绝's `<models_dir>/qijue/<mode>/`), so the folder's name is its mode."""
    name = Path(folder).name
    form = " --form both" if _made_for_both_forms(folder) else form_flag(folder)
    if name in MODES:
        return f"`poetry-lstm train --mode {name}{form}`"
    if name == BACKWARD:
        return f"`poetry-lstm train --mode word2vec --backward{form}`"
    return ("`poetry-lstm train --mode word2vec` (or `--mode onehot`) "
            f"with [paths] models_dir = \"{Path(folder).parent}\"")


def _made_for_both_forms(folder: Path) -> bool:
    """Whether the folder's config.json, where it can be read, says `train --form both` made it."""
    try:
        return bool(files.read_json(Path(folder) / "config.json", "model config").get("joint"))
    except (PoetryError, AttributeError):  # missing, torn or not an object: the usual command then
        return False


def missing_model_error(folder: Path) -> PoetryError | None:
    """None if `folder` holds a model, else the error naming the command that makes one."""
    folder = Path(folder)
    missing = [f for f in MODEL_FILES if not (folder / f).exists()]
    if not missing:
        return None
    command = rebuild_command(folder)
    if not folder.is_dir():
        return PoetryError(f"No {folder.name} model at {folder}; make one with {command}.", kind="model_missing",
                           mode=folder.name, path=str(folder), command=command)
    return PoetryError(f"The model folder {folder} lacks {', '.join(missing)}; make it again with {command}.",
                       kind="model_incomplete", path=str(folder), missing=missing, command=command)


def shape_of_args(args: dict) -> layout.Shape:
    """The quatrain a model writes, from its model_args: FIVE, or what `chars` says (a 七绝 model's 7)."""
    return layout.shape_for(args.get("chars", layout.CHARS))


def read_model_config(folder: Path) -> dict:
    """config.json, checked once: a dict whose model_args name the mode."""
    path, command = Path(folder) / "config.json", rebuild_command(folder)
    config = files.read_json(path, "model config", fix=f"run {command} again")
    if (not isinstance(config, dict) or not isinstance(config.get("model_args"), dict)
            or "mode" not in config["model_args"]):
        raise PoetryError(f"The model config {path} is corrupt (no model_args); run {command} again.",
                          kind="model_corrupt", path=str(path), command=command)
    if config["model_args"].get("chars", layout.CHARS) not in layout.SHAPES:
        raise PoetryError(f"The model config {path} names lines of {config['model_args'].get('chars')!r} characters, "
                          f"not 5 or 7; run {command} again.", kind="model_corrupt", path=str(path), command=command)
    return config


def read_overuse(folder: Path, tokens: tuple[str, ...]) -> np.ndarray:
    """(vocab,) the log over-use ratio per token (calibrate.py); 0 for the rest, and everywhere for a
    model never measured."""
    out = np.zeros(len(tokens), np.float32)
    path = Path(folder) / OVERUSE_FILE
    if not path.exists():
        return out
    fix = f"`poetry-lstm calibrate --mode {Path(folder).name}{form_flag(folder)}`"
    record = files.read_json(path, "over-used characters", fix=f"run {fix}")
    ratios = record.get("overuse") if isinstance(record, dict) else None
    if (not isinstance(ratios, dict)
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in ratios.values())):
        raise PoetryError(f"The over-used characters in {path} are malformed; run {fix} again.", kind="overuse_corrupt",
                          path=str(path), command=fix)
    index = {t: i for i, t in enumerate(tokens)}
    for ch, ratio in ratios.items():
        if ch in index:
            out[index[ch]] = max(float(ratio), 0.0)
    return out


def sense_command(folder: Path) -> str:
    return f"`python bench/preference.py fit docs/readings/ratings/* --model {folder}`"


def read_sense(folder: Path, units: int) -> np.ndarray | None:
    """(units,) the weights of the model's judge of sense (`sense.json`, fitted by bench/preference.py on readers'
    ratings of its poems) on its last layer's hidden state after a whole poem; None for a model without one."""
    path = Path(folder) / SENSE_FILE
    if not path.exists():
        return None
    fix = sense_command(Path(folder))
    record = files.read_json(path, "judge of sense", fix=f"run {fix}")
    weights = record.get("weights") if isinstance(record, dict) else None
    if (not isinstance(weights, list) or len(weights) != units
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in weights)):
        raise PoetryError(f"The judge of sense in {path} does not fit this model's {units} units; run {fix} again.",
                          kind="sense_corrupt", path=str(path), command=fix)
    return np.asarray(weights, np.float32)


def read_line_hashes(folder: Path, config: dict) -> LineHashes:
    """The training lines' hashes beside the model folders (`models/train_lines.u64`, shared by the
    models of one corpus); the config's digest proves they are this model's. A model trained before the
    cleaner spelt each character one way records the digest of its lines respelt (`copy_check`): the
    decoder writes no variant form, so those are the lines a copy of its training would match."""
    path = Path(folder).parent / HASH_FILE
    hashes = LineHashes.load(path)
    copy_check = config.get("copy_check")
    want = (copy_check.get("sha1") if isinstance(copy_check, dict) else None) or config.get("train_lines_sha1")
    if want and hashes.digest() != want:
        command = rebuild_command(folder)
        raise PoetryError(f"The training line hashes {path} belong to another corpus than the model in {folder}; "
                          f"retrain it with {command}, or pass --no-novelty.", kind="hashes_mismatch", path=str(path),
                          command=command)
    return hashes


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
        shape = next((layout.shape_of_text(t) for t in texts[:1]), None) or layout.FIVE  # a 七绝 corpus: 6 places
        doubles_at = tuple("".join(sorted(ch for ch, at in attested if at == i)) for i in range(shape.chars - 1))
        return Vocab(self.tokens, tuple(0 if t in SPECIALS else counts.get(t, 0) for t in self.tokens), doubles,
                     doubles_at)

    def save(self, path: Path) -> None:
        files.write_json(path, {"tokens": list(self.tokens), "counts": list(self.counts), "doubles": self.doubles,
                                "doubles_at": list(self.doubles_at)}, indent=None)

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        command = rebuild_command(Path(path).parent)
        retrain = f"run {command} again"
        data = files.read_json(path, "vocabulary", fix=retrain)
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or tuple(tokens[:3]) != SPECIALS or not all(isinstance(t, str) for t in tokens):
            raise PoetryError(f"The vocabulary {path} is corrupt; {retrain}.", kind="model_corrupt", path=str(path),
                              command=command)
        counts, doubles, doubles_at = data.get("counts") or [], data.get("doubles") or "", data.get("doubles_at") or []
        if (counts and (len(counts) != len(tokens) or not all(isinstance(n, int) and n >= 0 for n in counts))
                or not isinstance(doubles, str) or not isinstance(doubles_at, list)
                or doubles_at and (len(doubles_at) not in {s.chars - 1 for s in layout.SHAPES.values()}
                                   or not all(isinstance(d, str) for d in doubles_at))):
            raise PoetryError(f"The vocabulary {path} has malformed counts; {retrain}.", kind="model_corrupt",
                              path=str(path), command=command)
        return cls(tuple(tokens), tuple(counts), doubles, tuple(doubles_at))
