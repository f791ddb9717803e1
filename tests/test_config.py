"""Typed configuration: defaults, override files, and a clear sentence for every mistake."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT
from poetry_lstm.cli import cli
from poetry_lstm.config import DEFAULT_FILE, Config, load_config
from poetry_lstm.errors import PoetryError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

CONFIG_TOML = ROOT / "config" / "default.toml"


def write(tmp_path: Path, text: str, name: str = "my.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_documented_file():
    """config/default.toml is the one users read; the packaged copy is the one loaded: they must agree."""
    assert DEFAULT_FILE.read_bytes() == CONFIG_TOML.read_bytes()
    cfg = load_config()
    data = tomllib.loads(CONFIG_TOML.read_text(encoding="utf-8"))
    for section, values in data.items():
        for key, value in values.items():
            assert getattr(getattr(cfg, section), key) == value, f"[{section}] {key}"
    assert isinstance(cfg, Config) and isinstance(cfg.train.max_minutes, float)


def uncommented_keys(text: str) -> list[str]:
    """`key = value` lines without a `# reason`, on the same line or (for a value too long to share
    its line) on the comment line directly above."""
    missing, previous = [], ""
    for line in text.splitlines():
        if re.match(r"\s*[A-Za-z_][\w-]*\s*=", line):
            after_value = re.sub(r'"[^"]*"', '""', line.split("=", 1)[1])  # a '#' inside a string is no comment
            comment = after_value.split("#", 1)[1].strip() if "#" in after_value else ""
            above = previous.strip()[1:].strip() if previous.strip().startswith("#") else ""
            if not (comment or above):
                missing.append(line.split("=", 1)[0].strip())
        previous = line
    return missing


@pytest.mark.parametrize("path", [CONFIG_TOML, DEFAULT_FILE], ids=["config", "package"])
def test_every_key_in_default_toml_has_a_comment(path):
    text = path.read_text(encoding="utf-8")
    assert uncommented_keys(text) == []
    keys = sum(bool(re.match(r"\s*[A-Za-z_][\w-]*\s*=", line)) for line in text.splitlines())
    assert keys == sum(len(v) for v in tomllib.loads(text).values())  # every key was looked at


def test_the_comment_check_can_fail():
    assert uncommented_keys('[a]\nx = 1   # why\ny = "#not a comment"\n# about z\nz = 3\nw = 4 #\n') == ["y", "w"]


def test_an_override_file_changes_only_its_keys(tmp_path):
    path = write(tmp_path, '[train]\nbatch_size = 8\nlearning_rate = 1   # an int where a float goes is fine\n'
                           '[clean]\nforms = ["wujue", "wulv"]\n[paths]\ncorpus_dir = "elsewhere"\n')
    cfg, default = load_config(path), load_config()
    assert cfg.train.batch_size == 8 and cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)
    assert cfg.clean.forms == ["wujue", "wulv"] and cfg.paths.corpus_dir == "elsewhere"
    assert cfg.train.epochs == default.train.epochs and cfg.model == default.model and cfg.paths.crawler_dir == default.paths.crawler_dir
    assert load_config(str(path)) == cfg
    assert load_config(write(tmp_path, "", "empty.toml")) == default


@pytest.mark.parametrize("text, message", [
    ("[trian]\nepochs = 3\n", r"^Unknown config section \[trian\] in .*my.toml; the sections are: paths, crawl, clean, "),
    ("[train]\nepochz = 3\n", r"^.*my.toml: Unknown config key \[train\] epochz; the keys of \[train\] are: mode, "),
    ('[train]\nepochs = "ten"\n', r"^.*my.toml: Config key \[train\] epochs must be int, not 'ten'\.$"),
    ("[train]\nepochs = true\n", r"^.*my.toml: Config key \[train\] epochs must be int, not True\.$"),
    ("[train]\nepochs = 2.5\n", r"^.*my.toml: Config key \[train\] epochs must be int, not 2.5\.$"),
    ('[train]\nlearning_rate = "fast"\n', r"^.*my.toml: Config key \[train\] learning_rate must be float, not 'fast'\.$"),
    ("[train]\nfine_tune_vectors = 1\n", r"^.*my.toml: Config key \[train\] fine_tune_vectors must be bool, not 1\.$"),
    ('[clean]\nforms = "wujue"\n', r"^.*my.toml: Config key \[clean\] forms must be a list of str, not 'wujue'\.$"),
    ("[clean]\ntop_chars = [2000, \"3000\"]\n", r"^.*my.toml: Config key \[clean\] top_chars must be a list of int, not \[2000, '3000'\]\.$"),
    ("[paths]\ncrawler_dir = 5\n", r"^.*my.toml: Config key \[paths\] crawler_dir must be str, not 5\.$"),
    ("train = 3\n", r"^Config section \[train\] in .*my.toml must be a table of keys\.$"),
    ("[train\nepochs = 3\n", r"^The config file .*my.toml is not valid TOML \(.*line 1.*\)\.$"),
    ("[train]\nepochs = 3\nepochs = 4\n", r"^The config file .*my.toml is not valid TOML \("),
])
def test_mistakes_in_an_override_file_are_one_clear_sentence(tmp_path, text, message):
    with pytest.raises(PoetryError, match=message) as err:
        load_config(write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_a_file_that_is_not_utf8_is_not_valid_toml(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[paths]\ncorpus_dir = "é"\n'.encode("latin-1"))
    with pytest.raises(PoetryError, match="is not valid TOML"):
        load_config(path)


def test_a_missing_file_or_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(PoetryError, match=r"^The config file .*nope.toml does not exist; pass an existing TOML file to --config\.$"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(PoetryError, match=r"^Cannot read the config file .*; pass a readable TOML file to --config\.$"):
        load_config(tmp_path)


def test_replace_checks_types_and_ignores_unset_flags():
    cfg = load_config()
    assert cfg.replace("train", epochs=None) is cfg
    assert cfg.replace("train", epochs=7).train.epochs == 7 and cfg.train.epochs != 7
    with pytest.raises(PoetryError, match=r"\[train\] epochs must be int"):
        cfg.replace("train", epochs="7")
    with pytest.raises(PoetryError, match=r"Unknown config key \[model\] unitz"):
        cfg.replace("model", unitz=3)


@pytest.mark.parametrize("text", ["[train]\nepochs = \"ten\"\n", "[nonsense]\n", "[train\n"])
def test_the_cli_refuses_a_bad_config_in_one_line(tmp_path, text):
    path = write(tmp_path, text, "bad.toml")
    result = CliRunner().invoke(cli, ["--config", str(path), "clean"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(path) in lines[0]


def test_the_cli_refuses_a_missing_config_file(tmp_path):
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "absent.toml"), "clean"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"Error: The config file {tmp_path / 'absent.toml'} does not exist; pass an existing TOML file to --config."]
