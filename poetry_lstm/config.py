"""Typed defaults for every stage: `cfg = load_config("my.toml"); cfg.train.batch_size`.

`config/default.toml` holds the values and the reasons; this module holds the types. An override
file may set any subset of keys; an unknown key or a value of the wrong type is refused with a
sentence that names it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import PoetryError

DEFAULT_FILE = Path(__file__).with_name("default.toml")


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


@dataclass(frozen=True)
class TrainConfig:
    mode: str
    fine_tune_vectors: bool
    use_halves: bool
    batch_size: int
    learning_rate: float
    lr_decay: float
    clipnorm: float
    epochs: int
    patience: int
    seed: int
    shuffle_buffer: int
    steps_per_epoch: int
    max_minutes: float


@dataclass(frozen=True)
class GenerateConfig:
    mode: str
    n: int
    temperature: float
    top_k: int
    top_p: float
    beam: int
    seed: int
    tones: bool
    rhyme: bool
    novelty: bool
    max_tries: int


@dataclass(frozen=True)
class Config:
    paths: PathsConfig
    crawl: CrawlConfig
    clean: CleanConfig
    vectors: VectorsConfig
    model: ModelConfig
    train: TrainConfig
    generate: GenerateConfig

    def replace(self, section: str, **changes) -> "Config":
        """A copy with some keys of one section changed (flags set to None are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        current = getattr(self, section)
        return dataclasses.replace(self, **{section: _build(type(current), {**dataclasses.asdict(current), **changes}, section)})


def _check_type(value: Any, expected: Any) -> bool:
    origin = getattr(expected, "__origin__", None)
    if origin is list:
        (item,) = expected.__args__
        return isinstance(value, list) and all(_check_type(v, item) for v in value)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _build(cls, values: dict, section: str):
    hints = get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            raise PoetryError(f"Unknown config key [{section}] {key}; the keys of [{section}] are: {', '.join(hints)}.")
        if not _check_type(value, hints[key]):
            name = hints[key].__name__ if getattr(hints[key], "__origin__", None) is not list else f"a list of {hints[key].__args__[0].__name__}"
            raise PoetryError(f"Config key [{section}] {key} must be {name}, not {value!r}.")
    missing = [k for k in hints if k not in values]
    if missing:
        raise PoetryError(f"Config section [{section}] lacks {', '.join(missing)}.")
    values = {k: float(v) if hints[k] is float else v for k, v in values.items()}
    return cls(**values)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise PoetryError(f"The config file {path} does not exist; pass an existing TOML file to --config.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PoetryError(f"The config file {path} is not valid TOML ({exc}).") from None
    except OSError as exc:  # a folder, no permission
        raise PoetryError(f"Cannot read the config file {path} ({exc.strerror or exc}); pass a readable TOML file to --config.") from None


def load_config(path: str | Path | None = None) -> Config:
    """The defaults, overridden by the TOML file at `path` (any subset of sections and keys)."""
    data = _read_toml(DEFAULT_FILE)
    if path is not None:
        for section, values in _read_toml(Path(path)).items():
            if section not in data:
                raise PoetryError(f"Unknown config section [{section}] in {path}; the sections are: {', '.join(data)}.")
            if not isinstance(values, dict):
                raise PoetryError(f"Config section [{section}] in {path} must be a table of keys.")
            data[section] = {**data[section], **values}
    types = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = get_type_hints(Config)
    try:
        return Config(**{name: _build(hints[name], data.get(name, {}), name) for name in types})
    except PoetryError as exc:
        if path is None:
            raise
        raise PoetryError(f"{path}: {exc}") from None  # the defaults are valid: the mistake is in this file
