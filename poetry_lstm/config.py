"""Typed defaults for every stage: `cfg = load_config("my.toml"); cfg.train.batch_size`.

`config/default.toml` holds the values and the reasons; this module holds the types. An override
file may set any subset of keys; an unknown key, a value of the wrong type or one outside its
range (`RULES`, checked for config files and command-line flags alike) is refused with a
sentence that names it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, get_type_hints

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from . import layout
from .errors import PoetryError

DEFAULT_FILE = Path(__file__).with_name("default.toml")
MODES = ("word2vec", "onehot")
# Training seeds NumPy's legacy generator and TensorFlow, which take 0 … 2**32 - 1. [generate]
# seed has no range: the decoder maps any integer, negatives too, to a generator of its own.
SEED_MAX = 2**32 - 1


class RangeError(PoetryError):
    """A value outside its allowed range; the CLI names the flag instead of the key when a flag set it."""

    def __init__(self, section: str, key: str, value: Any, allowed: str):
        super().__init__(f"[{section}] {key} must be {allowed}, not {value!r}.", kind="out_of_range", section=section,
                         key=key, value=repr(value), allowed=allowed)
        self.section, self.key, self.value, self.allowed = section, key, value, allowed


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Bound:
    """low <= value <= high (either may be None); `above`/`below` make that end strict. NaN and
    infinity never fit: a float key is a finite number."""
    low: float | None = None
    high: float | None = None
    above: bool = False
    below: bool = False

    def holds(self, value) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or (value < self.high if self.below else value <= self.high)

    def describe(self) -> str:
        low = None if self.low is None else ("above " if self.above else "at least ") + _num(self.low)
        high = None if self.high is None else ("below " if self.below else "at most ") + _num(self.high)
        if low and high and not (self.above or self.below):
            return f"from {_num(self.low)} to {_num(self.high)}"
        return " and ".join(x for x in (low, high) if x)


@dataclass(frozen=True)
class OneOf:
    choices: tuple[str, ...]

    def holds(self, value) -> bool:
        return value in self.choices

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)


SEED = Bound(0, SEED_MAX)
AT_LEAST_0, AT_LEAST_1, POSITIVE = Bound(0), Bound(1), Bound(0, above=True)
SHARE = Bound(0, 1)
# Every range, in one place: load_config and Config.replace (which the CLI's flags go through)
# both check them. Keys not listed take any value of their type.
RULES: dict[str, dict[str, Bound | OneOf]] = {
    "crawl": {"source": OneOf(("chinese-poetry", "gushiwen")), "tang_files": AT_LEAST_0, "song_files": AT_LEAST_0,
              "max_pages": AT_LEAST_1, "delay": AT_LEAST_0, "jitter": AT_LEAST_0, "connect_timeout": POSITIVE,
              "read_timeout": POSITIVE, "retries": AT_LEAST_0, "backoff": AT_LEAST_0},
    "clean": {"valid_share": SHARE, "test_share": SHARE},
    "vectors": {"vector_size": AT_LEAST_1, "window": AT_LEAST_1, "negative": AT_LEAST_0, "min_count": AT_LEAST_1,
                "epochs": AT_LEAST_1, "workers": AT_LEAST_1, "seed": SEED},
    "model": {"min_char_count": AT_LEAST_1, "embedding_dim": AT_LEAST_1, "units": AT_LEAST_1,
              "layers": Bound(2),  # a stacked LSTM
              "dropout": Bound(0, 1, below=True), "window": AT_LEAST_1, "stride": AT_LEAST_1,
              "weights_dtype": OneOf(("float16", "float32", "int8"))},
    "train": {"mode": OneOf(MODES), "fine_tune_epochs": AT_LEAST_0, "fine_tune_learning_rate": POSITIVE,
              "batch_size": AT_LEAST_1, "learning_rate": POSITIVE, "lr_decay": Bound(0, 1, above=True),
              "clipnorm": POSITIVE, "sampled_softmax": AT_LEAST_0,
              "epochs": AT_LEAST_1, "patience": AT_LEAST_1, "seed": SEED,
              "shuffle_buffer": AT_LEAST_0, "steps_per_epoch": AT_LEAST_0, "max_minutes": AT_LEAST_0,
              "overuse_poems": AT_LEAST_0},
    "prefer": {"beta": POSITIVE, "learning_rate": POSITIVE, "epochs": AT_LEAST_1, "batch_size": AT_LEAST_1,
               "anchor": AT_LEAST_0, "anchor_batch": AT_LEAST_1, "min_gap": Bound(1, 4)},
    # n and beam have ceilings: each candidate costs a decode, and 100000 of them hang for minutes
    "generate": {"mode": OneOf(MODES), "n": Bound(1, 20), "temperature": Bound(0.05, 5), "top_k": AT_LEAST_0,
                 "top_p": Bound(0, 1, above=True), "beam": Bound(1, 64), "max_tries": AT_LEAST_1,
                 "candidates": Bound(1, 64), "coherence": AT_LEAST_0, "frequency_penalty": Bound(0, 2),
                 "sibling_penalty": AT_LEAST_0, "beam_noise": Bound(0, 5), "overuse_penalty": Bound(0, 5),
                 "max_char_uses": Bound(1, 2), "mutual": Bound(0, 5), "critic": Bound(0, 5),
                 "sense": Bound(0, 5), "rules": OneOf(("strict", "lenient"))},
}


def allowed(section: str, key: str) -> str | None:
    """The allowed range of a key in words ("from 1 to 20"), for messages and --help; None: any value of its type."""
    rule = RULES.get(section, {}).get(key)
    return rule.describe() if rule else None


def model_key(mode: str, form: str = "wujue") -> str:
    """How `[generate] model_temperature` names a model: its mode (`onehot`), or a 七绝 model's `qijue/<mode>`."""
    return mode if form == "wujue" else f"{form}/{mode}"


def model_keys() -> list[str]:
    return [model_key(mode, form) for form in layout.FORMS for mode in MODES]


def _check_ranges(section: str, values: dict) -> None:
    for key, rule in RULES.get(section, {}).items():
        if not rule.holds(values[key]):
            raise RangeError(section, key, values[key], rule.describe())
    if section == "generate":
        for mode, value in values["model_temperature"].items():
            if mode not in model_keys():
                raise PoetryError(f"[generate] model_temperature names {mode!r}, which is not a model; "
                                  f"the models are {', '.join(model_keys())}.", kind="config")
            if not RULES["generate"]["temperature"].holds(value):
                raise RangeError(section, "model_temperature", value, RULES["generate"]["temperature"].describe())
    if section == "clean" and values["valid_share"] + values["test_share"] > 1:
        raise PoetryError("[clean] valid_share + test_share must be at most 1, "
                          f"not {values['valid_share'] + values['test_share']:g}.", kind="config")


@dataclass(frozen=True)
class PathsConfig:
    crawler_dir: str
    corpus_dir: str
    models_dir: str


@dataclass(frozen=True)
class CrawlConfig:
    source: str
    chinese_poetry_url: str
    tang_files: int
    song_files: int
    gushiwen_url: str
    gushiwen_dynasties: list[str]
    max_pages: int
    delay: float
    jitter: float
    connect_timeout: float
    read_timeout: float
    retries: int
    backoff: float
    user_agent: str


@dataclass(frozen=True)
class CleanConfig:
    forms: list[str]
    valid_share: float
    test_share: float
    top_chars: list[int]


@dataclass(frozen=True)
class VectorsConfig:
    vector_size: int
    window: int
    negative: int
    min_count: int
    epochs: int
    workers: int
    seed: int


@dataclass(frozen=True)
class ModelConfig:
    min_char_count: int
    embedding_dim: int
    units: int
    layers: int
    dropout: float
    window: int
    stride: int
    prosody: bool
    rhyme_context: bool
    reverse: bool
    weights_dtype: str


@dataclass(frozen=True)
class TrainConfig:
    mode: str
    fine_tune_vectors: bool
    use_windows: bool
    fine_tune_epochs: int
    fine_tune_learning_rate: float
    batch_size: int
    learning_rate: float
    lr_decay: float
    clipnorm: float
    sampled_softmax: int
    epochs: int
    patience: int
    seed: int
    shuffle_buffer: int
    steps_per_epoch: int
    max_minutes: float
    overuse_poems: int


@dataclass(frozen=True)
class PreferConfig:
    ratings: str
    beta: float
    learning_rate: float
    epochs: int
    batch_size: int
    anchor: float
    anchor_batch: int
    min_gap: int


@dataclass(frozen=True)
class GenerateConfig:
    mode: str
    n: int
    temperature: float
    model_temperature: dict[str, float]
    top_k: int
    top_p: float
    beam: int
    seed: int
    tones: bool
    rhyme: bool
    novelty: bool
    max_tries: int
    candidates: int
    coherence: float
    frequency_penalty: float
    sibling_penalty: float
    beam_noise: float
    overuse_penalty: float
    max_char_uses: int
    mutual: float
    critic: float
    sense: float
    line_search: bool
    rules: str
    licences: bool

    def temperature_for(self, mode: str) -> float:
        """The sampling temperature of one model: its own from `model_temperature`, else `temperature`."""
        return float(self.model_temperature.get(mode, self.temperature))

    def settings(self, mode: str | None = None) -> "DecodeSettings":
        """The decoder settings these defaults mean for the model `mode` (default: `self.mode`, the
        one that answers): its own temperature, everything else as written."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(DecodeSettings) if f.name != "temperature"}
        return DecodeSettings(**values, temperature=self.temperature_for(mode or self.mode))


@dataclass(frozen=True)
class DecodeSettings:
    """How the decoder writes one answer. Made from the config (`load_config().generate.settings(mode)`
    or `DecodeSettings.defaults(mode)`), changed with `dataclasses.replace`, which checks the
    ranges again: the library, the CLI and the page write the same poems from the same settings."""
    n: int                    # poems per answer
    temperature: float        # sampling temperature
    top_k: int                # sample among the K likeliest allowed characters; 0 = all
    top_p: float              # nucleus: sample within this share of the allowed mass
    beam: int                 # beam width; 1 = sampling
    seed: int                 # same seed, same poems; any integer
    tones: bool               # keep 平仄 by the four forms
    rhyme: bool               # lines 2 and 4 share a 平声 group, line 3 ends 仄
    novelty: bool             # no training line, no character three times, no stutter or echo
    max_tries: int            # sampling rounds before an answer keeps a poem with a failed check
    candidates: int           # sampling: poems drawn per answer, the best kept
    coherence: float          # weight of the similarity of lines 2–4 to line 1 in that choice
    frequency_penalty: float  # each step scores log p(char | poem) − this × log p(char)
    sibling_penalty: float    # beam: a beam's children lose this per rank
    beam_noise: float         # beam: scale of the Gumbel noise on each step's scores (0 = plain beam)
    overuse_penalty: float    # × each character's measured over-use (overuse.json), taken from its score
    max_char_uses: int        # novelty: how often one character may be written (a 叠字 in place is one use; 2 or 1)
    mutual: float             # weight of the backward model's mean log p(line 1 | lines 2–4) in the choice
    critic: float             # weight of the ranking critic's log-odds that the poem is real (models/critic)
    sense: float              # weight of the judge of sense (sense.json: readers' ratings on the last hidden state)
    line_search: bool         # sampling: after lines 2 and 3, the worse half of an answer's candidates copy the better
    rules: str                # "strict" or "lenient" (also 三仄尾 and 仄平仄平仄): which lines tones allow (meter.py)
    licences: bool            # also write the licences the rules accept (拗救); False: plain lines only

    def __post_init__(self):
        hints = _hints(DecodeSettings)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _check_type(value, hints[f.name]):
                raise PoetryError(f"The setting {f.name} must be {_type_name(hints[f.name])}, not {value!r}.",
                                  kind="setting_type", key=f.name, value=repr(value))
            object.__setattr__(self, f.name, _as_hinted(value, hints[f.name]))
            rule = RULES["generate"].get(f.name)
            if rule and not rule.holds(value):
                raise RangeError("generate", f.name, value, rule.describe())

    @classmethod
    def defaults(cls, mode: str = "word2vec") -> "DecodeSettings":
        """config/default.toml's settings for the model `mode`."""
        return _default_generate().settings(mode)


@lru_cache(maxsize=1)
def _default_generate() -> GenerateConfig:
    return load_config().generate


@dataclass(frozen=True)
class Config:
    paths: PathsConfig
    crawl: CrawlConfig
    clean: CleanConfig
    vectors: VectorsConfig
    model: ModelConfig
    train: TrainConfig
    prefer: PreferConfig
    generate: GenerateConfig

    def replace(self, section: str, **changes) -> "Config":
        """A copy with some keys of one section changed (flags set to None are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        current = getattr(self, section)
        changes = _one_temperature(section, changes)
        return dataclasses.replace(
            self, **{section: _build(type(current), {**dataclasses.asdict(current), **changes}, section)})

    def for_form(self, form: str) -> "Config":
        """This config for the models of `form` (a key of layout.FORMS): a 七绝's corpus and models sit in a
        `qijue` folder under corpus_dir and models_dir (`clean` writes corpus/qijue/), and its training windows
        and their stride grow with its 32 slots as a 五绝's fit its 24 (24 → 32)."""
        if form not in layout.FORMS:
            raise PoetryError(f"Unknown form {form!r}; use {' or '.join(layout.FORMS)}.", kind="form_unknown")
        shape = layout.FORMS[form]
        if shape == layout.FIVE:
            return self
        grow = lambda n: n * shape.slots // layout.FIVE.slots  # noqa: E731
        paths = dataclasses.replace(self.paths, corpus_dir=str(Path(self.paths.corpus_dir) / form),
                                    models_dir=str(Path(self.paths.models_dir) / form))
        model = dataclasses.replace(self.model, window=grow(self.model.window), stride=grow(self.model.stride))
        return dataclasses.replace(self, paths=paths, model=model)


def _one_temperature(section: str, changes: dict) -> dict:
    """A `temperature` given (by a flag or an override file) without `model_temperature` is meant for
    every model: it clears the defaults' per-model temperatures rather than hide behind them."""
    if section == "generate" and "temperature" in changes and "model_temperature" not in changes:
        return {**changes, "model_temperature": {}}
    return changes


def _check_type(value: Any, expected: Any) -> bool:
    origin = getattr(expected, "__origin__", None)
    if origin is dict:
        key, item = expected.__args__
        return isinstance(value, dict) and all(_check_type(k, key) and _check_type(v, item) for k, v in value.items())
    if origin is list:
        (item,) = expected.__args__
        return isinstance(value, list) and all(_check_type(v, item) for v in value)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _type_name(expected: Any) -> str:
    origin = getattr(expected, "__origin__", None)
    if origin is list:
        return f"a list of {expected.__args__[0].__name__}"
    if origin is dict:
        return f"a table of {expected.__args__[1].__name__} values"
    return expected.__name__


def _as_hinted(value: Any, expected: Any) -> Any:
    """A checked value with its floats as floats (TOML writes 1 for 1.0), in tables too."""
    if expected is float:
        return float(value)
    if getattr(expected, "__origin__", None) is dict:
        return {k: _as_hinted(v, expected.__args__[1]) for k, v in value.items()}
    return value


@lru_cache(maxsize=None)
def _hints(cls) -> dict:
    """The resolved type hints of a config class, worked out once: every settings object is checked against them."""
    return get_type_hints(cls)


def _build(cls, values: dict, section: str):
    hints = _hints(cls)
    for key, value in values.items():
        if key not in hints:
            raise PoetryError(f"Unknown config key [{section}] {key}; the keys of [{section}] are: {', '.join(hints)}.",
                              kind="config")
        if not _check_type(value, hints[key]):
            name = _type_name(hints[key])
            raise PoetryError(f"Config key [{section}] {key} must be {name}, not {value!r}.", kind="config")
    missing = [k for k in hints if k not in values]
    if missing:
        raise PoetryError(f"Config section [{section}] lacks {', '.join(missing)}.", kind="config")
    values = {k: _as_hinted(v, hints[k]) for k, v in values.items()}
    _check_ranges(section, values)
    return cls(**values)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise PoetryError(f"The config file {path} does not exist; pass an existing TOML file to --config.",
                          kind="config") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PoetryError(f"The config file {path} is not valid TOML ({exc}).", kind="config") from None
    except OSError as exc:  # a folder, no permission
        raise PoetryError(f"Cannot read the config file {path} ({exc.strerror or exc}); "
                          "pass a readable TOML file to --config.", kind="config") from None


def load_config(path: str | Path | None = None) -> Config:
    """The defaults, overridden by the TOML file at `path` (any subset of sections and keys)."""
    data = _read_toml(DEFAULT_FILE)
    if path is not None:
        for section, values in _read_toml(Path(path)).items():
            if section not in data:
                raise PoetryError(f"Unknown config section [{section}] in {path}; "
                                  f"the sections are: {', '.join(data)}.", kind="config")
            if not isinstance(values, dict):
                raise PoetryError(f"Config section [{section}] in {path} must be a table of keys.", kind="config")
            data[section] = {**data[section], **_one_temperature(section, values)}
    types = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = get_type_hints(Config)
    try:
        return Config(**{name: _build(hints[name], data.get(name, {}), name) for name in types})
    except PoetryError as exc:
        if path is None:
            raise
        # the defaults are valid: the mistake is in this file
        raise PoetryError(f"{path}: {exc}", kind="config", path=str(path)) from None
