"""Typed configuration: defaults, override files, and a clear sentence for every mistake."""
from __future__ import annotations

import dataclasses
import math
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT

from poetry_lstm.cli import cli
from poetry_lstm.config import DEFAULT_FILE, RULES, Config, DecodeSettings, RangeError, allowed, load_config
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


def test_the_packaged_defaults_are_a_link_to_the_documented_file():
    """config/default.toml is the one users read; the package loads poetry_lstm/default.toml, a
    link to it, so the two cannot drift apart."""
    assert DEFAULT_FILE.is_symlink() and DEFAULT_FILE.resolve() == CONFIG_TOML.resolve()


def test_a_built_wheel_ships_the_defaults_and_leaves_training_to_an_extra(tmp_path):
    """The link is followed when the wheel is built, and the light install has no TensorFlow."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "config", src / "config")
    shutil.copytree(ROOT / "poetry_lstm", src / "poetry_lstm", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-c",
                    f"import setuptools.build_meta as b; b.build_wheel({str(tmp_path / 'dist')!r})"],
                   cwd=src, check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("poetry_lstm-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("poetry_lstm/default.toml") == CONFIG_TOML.read_bytes()
        meta = next(z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    base = {re.split(r"[<>=;\[ ]", r)[0].lower() for r in requires if "extra ==" not in r}
    train = {re.split(r"[<>=;\[ ]", r)[0].lower() for r in requires if 'extra == "train"' in r}
    assert {"h5py", "numpy", "streamlit", "jieba"} <= base and not {"tensorflow", "gensim", "keras"} & base
    assert {"tensorflow", "gensim", "scikit-learn"} <= train
    assert any(r.startswith("poetry-lstm[train]") and 'extra == "test"' in r for r in requires)  # tests install it all


def test_defaults_are_the_documented_file():
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


def test_every_key_in_default_toml_has_a_comment():
    text = CONFIG_TOML.read_text(encoding="utf-8")
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
    assert (cfg.train.epochs == default.train.epochs and cfg.model == default.model
            and cfg.paths.crawler_dir == default.paths.crawler_dir)
    assert load_config(str(path)) == cfg
    assert load_config(write(tmp_path, "", "empty.toml")) == default


@pytest.mark.parametrize("text, message", [
    ("[trian]\nepochs = 3\n",
     r"^Unknown config section \[trian\] in .*my.toml; the sections are: paths, crawl, clean, "),
    ("[train]\nepochz = 3\n", r"^.*my.toml: Unknown config key \[train\] epochz; the keys of \[train\] are: mode, "),
    ('[train]\nepochs = "ten"\n', r"^.*my.toml: Config key \[train\] epochs must be int, not 'ten'\.$"),
    ("[train]\nepochs = true\n", r"^.*my.toml: Config key \[train\] epochs must be int, not True\.$"),
    ("[train]\nepochs = 2.5\n", r"^.*my.toml: Config key \[train\] epochs must be int, not 2.5\.$"),
    ('[train]\nlearning_rate = "fast"\n',
     r"^.*my.toml: Config key \[train\] learning_rate must be float, not 'fast'\.$"),
    ("[train]\nfine_tune_vectors = 1\n", r"^.*my.toml: Config key \[train\] fine_tune_vectors must be bool, not 1\.$"),
    ('[clean]\nforms = "wujue"\n', r"^.*my.toml: Config key \[clean\] forms must be a list of str, not 'wujue'\.$"),
    ("[clean]\ntop_chars = [2000, \"3000\"]\n",
     r"^.*my.toml: Config key \[clean\] top_chars must be a list of int, not \[2000, '3000'\]\.$"),
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
    with pytest.raises(PoetryError,
                       match=r"^The config file .*nope.toml does not exist; pass an existing TOML file to --config\.$"):
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
    assert result.output.strip().splitlines() == [f"Error: The config file {tmp_path / 'absent.toml'} does not exist; "
                                                  "pass an existing TOML file to --config."]


# --- ranges: one check for files and flags ----------------------------------------------------

@pytest.mark.parametrize("key, value, allowed", [
    ("n", "100000", "from 1 to 20"), ("n", "0", "from 1 to 20"), ("beam", "100000", "from 1 to 64"),
    ("beam", "0", "from 1 to 64"), ("temperature", "0", "from 0.05 to 5"), ("temperature", "-1", "from 0.05 to 5"),
    ("temperature", "nan", "from 0.05 to 5"), ("temperature", "inf", "from 0.05 to 5"),
    ("top_p", "2.0", "above 0 and at most 1"), ("top_p", "0", "above 0 and at most 1"),
    ("top_p", "nan", "above 0 and at most 1"),
    ("top_k", "-5", "at least 0"), ("max_tries", "-1", "at least 1"), ("max_tries", "0", "at least 1"),
    ("mode", '"nope"', "one of word2vec, onehot"),
])
def test_generate_values_out_of_range_are_refused_naming_key_and_range(tmp_path, key, value, allowed):
    path = write(tmp_path, f"[generate]\n{key} = {value}\n")
    given = tomllib.loads(f"x = {value}")["x"]
    shown = repr(float(given) if key in ("temperature", "top_p") else given)  # a float key holds a float
    with pytest.raises(PoetryError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: [generate] {key} must be {allowed}, not {shown}."


@pytest.mark.parametrize("section, key, value, allowed", [
    ("train", "epochs", "0", "at least 1"), ("train", "batch_size", "0", "at least 1"),
    ("train", "learning_rate", "0", "above 0"), ("train", "learning_rate", "nan", "above 0"),
    ("train", "learning_rate", "-0.1", "above 0"), ("train", "seed", "-5", "from 0 to 4294967295"),
    ("train", "lr_decay", "1.5", "above 0 and at most 1"), ("train", "patience", "0", "at least 1"),
    ("train", "mode", '"nope"', "one of word2vec, onehot"), ("train", "max_minutes", "-1", "at least 0"),
    ("model", "layers", "1", "at least 2"), ("model", "dropout", "1.0", "at least 0 and below 1"),
    ("vectors", "seed", "-1", "from 0 to 4294967295"), ("crawl", "delay", "-1", "at least 0"),
    ("crawl", "read_timeout", "0", "above 0"), ("crawl", "source", '"wikisource"', "one of chinese-poetry, gushiwen"),
    ("clean", "test_share", "1.5", "from 0 to 1"),
])
def test_other_sections_are_range_checked_too(tmp_path, section, key, value, allowed):
    path = write(tmp_path, f"[{section}]\n{key} = {value}\n")
    with pytest.raises(PoetryError, match=rf"^.*my.toml: \[{section}\] {key} must be {re.escape(allowed)}, not "):
        load_config(path)


def test_the_held_out_shares_leave_room_for_training(tmp_path):
    with pytest.raises(PoetryError,
                       match=r"my.toml: \[clean\] valid_share \+ test_share must be at most 1, not 1.2\.$"):
        load_config(write(tmp_path, "[clean]\nvalid_share = 0.6\ntest_share = 0.6\n"))
    assert load_config(write(tmp_path, "[clean]\nvalid_share = 0.0\ntest_share = 1.0\n",
                             "all_test.toml")).clean.test_share == 1.0


def test_values_at_the_ends_of_their_ranges_are_accepted(tmp_path):
    cfg = load_config(write(tmp_path, "[generate]\nn = 20\nbeam = 64\ntemperature = 0.05\ntop_p = 1.0\ntop_k = 0\n"
                                      "seed = -5\nmax_tries = 1\nmode = \"onehot\"\n[train]\nseed = 4294967295\n"))
    g = cfg.generate
    assert ((g.n, g.beam, g.temperature, g.top_p, g.top_k, g.seed, g.max_tries, g.mode)
            == (20, 64, 0.05, 1.0, 0, -5, 1, "onehot"))
    assert cfg.train.seed == 2**32 - 1  # [generate] seed takes any integer: the decoder maps it
    assert load_config(write(tmp_path, "[generate]\ntemperature = 5\n", "hot.toml")).generate.temperature == 5.0


def test_replace_checks_ranges_as_the_file_does():
    cfg = load_config()
    with pytest.raises(RangeError) as err:
        cfg.replace("generate", temperature=math.nan)
    assert (err.value.section, err.value.key, err.value.allowed) == ("generate", "temperature", "from 0.05 to 5")
    assert math.isnan(err.value.value)
    assert cfg.replace("generate", n=20).generate.n == 20


def test_every_default_is_in_range_and_every_rule_names_a_real_key():
    cfg = load_config()
    for section, rules in RULES.items():
        for key, rule in rules.items():
            assert rule.holds(getattr(getattr(cfg, section), key)), f"[{section}] {key}"
            assert allowed(section, key) == rule.describe()


def test_decode_settings_come_from_the_config_and_change_only_through_replace():
    s = DecodeSettings.defaults("word2vec")
    g = load_config().generate
    assert ((s.temperature, s.beam_noise, s.overuse_penalty, s.n)
            == (g.temperature_for("word2vec"), g.beam_noise, g.overuse_penalty, g.n))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.seed = 3
    assert dataclasses.replace(s, seed=3).seed == 3 and s.seed == g.seed
    with pytest.raises(RangeError, match=r"\[generate\] temperature must be from 0.05 to 5, not 9"):
        dataclasses.replace(s, temperature=9)
    with pytest.raises(PoetryError, match="The setting beam must be int"):
        dataclasses.replace(s, beam="wide")
    assert isinstance(dataclasses.replace(s, temperature=1).temperature, float)  # TOML and callers write 1 for 1.0


def test_a_model_may_have_its_own_temperature_and_a_given_temperature_holds_for_every_model(tmp_path):
    g = load_config().generate
    assert g.settings("qijue/word2vec").temperature == g.temperature  # the 七绝 word2vec model has no entry of its own
    for mode, own in g.model_temperature.items():
        assert own != g.temperature and g.settings(mode).temperature == g.temperature_for(mode) == own
        assert DecodeSettings.defaults(mode) == g.settings(mode)
    assert g.settings().temperature == g.temperature_for(g.mode)
    flagged = load_config().replace("generate", temperature=1.3).generate  # the CLI's --temperature
    filed = load_config(write(tmp_path, "[generate]\ntemperature = 1.3\n")).generate
    for h in (flagged, filed):
        assert h.model_temperature == {} and {h.temperature_for(m) for m in ("word2vec", "onehot")} == {1.3}
    both = load_config(write(tmp_path, "[generate]\ntemperature = 1.3\nmodel_temperature = { onehot = 0.5 }\n",
                             "both.toml")).generate
    assert (both.temperature_for("word2vec"), both.temperature_for("onehot")) == (1.3, 0.5)


@pytest.mark.parametrize("text, message", [
    ("model_temperature = { gpt = 0.7 }",
     "[generate] model_temperature names 'gpt', which is not a model; the models are word2vec, onehot, "
     "qijue/word2vec, qijue/onehot."),
    ("model_temperature = { onehot = 0 }", "[generate] model_temperature must be from 0.05 to 5, not 0.0."),
    ('model_temperature = { onehot = "hot" }',
     "Config key [generate] model_temperature must be a table of float values, not {'onehot': 'hot'}."),
    ("model_temperature = 0.7", "Config key [generate] model_temperature must be a table of float values, not 0.7."),
])
def test_a_bad_model_temperature_is_one_clear_sentence(tmp_path, text, message):
    path = write(tmp_path, f"[generate]\n{text}\n")
    with pytest.raises(PoetryError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {message}"
