"""The `poetry-lstm` command end to end with click's runner: help, crawl → corpus, and every bad input
as one line, a non-zero exit, no traceback, and nothing already written lost."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, synthetic_poems, write_raw
from local_server import LocalServer, Reply
from test_crawl import EXPECTED_CORPUS, SONG, build_tarball, build_tree, corrupt_tarballs, dump, small_tree

from poetry_lstm.cli import cli


@pytest.fixture
def project(tmp_path) -> Path:
    """A config file that puts crawler/, corpus/ and models/ under tmp_path."""
    paths = {name: (tmp_path / name.split("_")[0]).as_posix() for name in ("crawler_dir", "corpus_dir", "models_dir")}
    (tmp_path / "config.toml").write_text("[paths]\n" + "".join(f'{k} = "{v}"\n' for k, v in paths.items()),
                                          encoding="utf-8")
    return tmp_path


def run(project: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(project / "config.toml"), *map(str, args)])


def error_line(result) -> str:
    """The one `Error:` line of a failed command, after checking it failed cleanly."""
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), result.exception  # click's exit, not an escaped exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr
    return errors[0]


def seed_corpus(project: Path) -> bytes:
    """An earlier run's raw records and corpus; returns the corpus bytes."""
    write_raw(project / "crawler", synthetic_poems(40))
    assert run(project, "clean").exit_code == 0
    return (project / "corpus" / "quatrains.jsonl").read_bytes()


# --- help ----------------------------------------------------------------------------------------

def test_help_of_the_group_and_of_every_command_shows_an_example():
    runner = CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0 and "Example" in result.output and "poetry-lstm generate 床前明月光" in result.output
    first_example = result.output.split("Example:", 1)[1].strip().splitlines()[0]
    assert first_example == "poetry-lstm generate 床前明月光"  # a poem first: no corpus or training needed
    assert {"crawl", "clean", "train", "generate", "evaluate"} <= set(cli.commands)
    for name in cli.commands:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output and f"poetry-lstm {name}" in result.output, name


# --- crawl and clean ------------------------------------------------------------------------------

def test_crawl_from_a_tarball_builds_the_corpus(project):
    result = run(project, "crawl", "--source", "chinese-poetry", "--from", build_tarball(project), "--forms", "wujue")
    assert result.exit_code == 0, result.output
    assert 'crawl: {"files": 2, "malformed": 4, "records": 6}' in result.stdout
    assert "clean: kept 4 (4 real 五绝, 0 五律 halves, 0 windows of 五古 and 五排)" in result.stdout
    assert "replaced" not in result.stdout  # nothing was there before
    rows = [json.loads(line)
            for line in (project / "corpus" / "quatrains.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["text"] for r in rows} == set(EXPECTED_CORPUS)
    report = json.loads((project / "corpus" / "report.json").read_text(encoding="utf-8"))
    assert report["kept"] == 4 and report["per_dynasty"] == {"唐": 3, "宋": 1}
    assert (project / "crawler" / "raw" / "chinese-poetry.jsonl").exists()


def test_crawl_with_wulv_adds_the_halves_to_train(project):
    result = run(project, "crawl", "--from", build_tree(project / "clone"), "--forms", "wujue,wulv")
    assert result.exit_code == 0, result.output
    assert "clean: kept 6 (4 real 五绝, 2 五律 halves, 0 windows of 五古 and 五排)" in result.stdout
    rows = [json.loads(line)
            for line in (project / "corpus" / "quatrains.jsonl").read_text(encoding="utf-8").splitlines()]
    halves = [r for r in rows if r["form"] == "wulv_half"]
    assert [r["text"] for r in halves] == ["国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。",
                                           "烽火连三月，家书抵万金。白头搔更短，浑欲不胜簪。"]
    assert {r["split"] for r in halves} == {"train"}


def test_clean_rebuilds_the_corpus_from_raw_records(project):
    write_raw(project / "crawler", synthetic_poems(50))
    result = run(project, "clean")
    assert result.exit_code == 0, result.output
    assert "clean: kept 50 (50 real 五绝, 0 五律 halves, 0 windows of 五古 and 五排)" in result.stdout
    assert json.loads((project / "corpus" / "report.json").read_text(encoding="utf-8"))["kept"] == 50


def test_clean_without_raw_records_says_run_crawl(project):
    line = error_line(run(project, "clean"))
    assert "run `poetry-lstm crawl` first" in line and str(project / "crawler" / "raw") in line
    assert not (project / "corpus").exists()


@pytest.mark.parametrize("args,message", [
    (["--source", "gushiwen", "--from", "x.tgz"],
     "--from applies to --source chinese-poetry only; drop it or add --source chinese-poetry."),
    (["--source", "chinese-poetry", "--base-url", "http://127.0.0.1:9", "--delay", "2"],
     "--base-url and --delay apply to --source gushiwen only; drop them or add --source gushiwen."),
    (["--max-pages", "3"], "--max-pages applies to --source gushiwen only; drop it or add --source gushiwen."),
])
def test_a_flag_of_the_other_source_is_refused(project, args, message):
    before = seed_corpus(project)
    result = run(project, "crawl", *args)
    assert result.exit_code == 2 and error_line(result) == f"Error: {message}"
    assert (project / "corpus" / "quatrains.jsonl").read_bytes() == before
    assert not (project / "crawler" / "cache").exists()  # nothing was fetched


def test_bad_forms_are_refused(project):
    write_raw(project / "crawler", synthetic_poems(5))
    assert "--forms must include wujue" in error_line(run(project, "clean", "--forms", "wulv"))


# --- bad input keeps what is there ----------------------------------------------------------------------

def test_a_missing_source_path_is_one_line(project):
    before = seed_corpus(project)
    line = error_line(run(project, "crawl", "--from", project / "chinese-poetry-2.0.1.tgz"))
    assert line == (f"Error: {project / 'chinese-poetry-2.0.1.tgz'} does not exist; "
                    "run `npm pack chinese-poetry@2.0.1` or pass a chinese-poetry clone to --from.")
    assert (project / "corpus" / "quatrains.jsonl").read_bytes() == before


def test_corrupt_tarballs_are_one_line_and_keep_the_corpus(project):
    before = seed_corpus(project)
    raw_before = (project / "crawler" / "raw" / "chinese-poetry.jsonl").read_bytes()
    for name, path in corrupt_tarballs(project / "bad").items():
        result = run(project, "crawl", "--from", path)
        line = error_line(result)
        assert result.exit_code == 1
        assert (line.startswith(f"Error: {path} is not a readable tarball (")
                and line.endswith("npm pack chinese-poetry@2.0.1.")), name
        assert (project / "corpus" / "quatrains.jsonl").read_bytes() == before, name
        assert (project / "crawler" / "raw" / "chinese-poetry.jsonl").read_bytes() == raw_before, name


def test_corrupt_json_in_a_folder_is_one_line_naming_the_file(project):
    before = seed_corpus(project)
    tree = build_tree(project / "clone")
    bad = tree / "package" / "dist" / "quantangshi" / "poet.song.0.json"
    bad.write_bytes(dump(SONG)[:30])
    line = error_line(run(project, "crawl", "--from", tree))
    assert line.startswith(f"Error: {bad.as_posix()} is not valid JSON")
    assert (project / "corpus" / "quatrains.jsonl").read_bytes() == before


def test_a_full_disk_is_one_line_and_the_old_corpus_survives(project, monkeypatch):
    before = seed_corpus(project)
    corpus = project / "corpus" / "quatrains.jsonl"
    real_replace = os.replace

    def no_space(src, dst, *args, **kwargs):
        if Path(dst) == corpus:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", no_space)
    result = run(project, "crawl", "--from", build_tarball(project), "--force")  # 6 records replacing 40
    assert result.exit_code == 1
    assert error_line(result) == (f"Error: The disk is full while writing {corpus}; "
                                  "free some space and run the command again.")
    assert corpus.read_bytes() == before
    # no temporary file left (qijue/ is the seven-character corpus of the earlier run)
    assert sorted(p.name for p in corpus.parent.iterdir()) == ["qijue", "quatrains.jsonl", "report.json"]
    assert sorted(p.name for p in (corpus.parent / "qijue").iterdir()) == ["quatrains.jsonl", "report.json"]


def test_a_folder_that_cannot_be_written_is_one_line(project):
    (project / "corpus").write_text("a file where the corpus folder goes", encoding="utf-8")
    write_raw(project / "crawler", synthetic_poems(5))
    line = error_line(run(project, "clean"))
    assert line.startswith("Error: Cannot write ") and "quatrains.jsonl" in line


def test_an_unknown_source_is_refused_by_click(project):
    """--source picks the crawler: choices are checked by click (exit 2, one line)."""
    result = run(project, "crawl", "--source", "wikisource")
    assert (result.exit_code == 2 and "Traceback" not in result.output
            and "Invalid value for '--source'" in result.output)


# --- train ------------------------------------------------------------------------------------------

def test_train_without_a_corpus_says_run_crawl(project):
    line = error_line(run(project, "train", "--mode", "onehot", "--epochs", "1"))
    assert "poetry-lstm crawl" in line and str(project / "corpus" / "quatrains.jsonl") in line
    assert not (project / "models").exists()


def test_train_refuses_a_single_layer_before_loading_anything(project):
    result = run(project, "train", "--layers", "1")
    assert result.exit_code == 2 and error_line(result) == "Error: --layers must be at least 2, not 1."


def test_train_refuses_a_seed_outside_numpys_range(project):
    for seed, shown in (("-5", "-5"), (str(2**32), str(2**32)), (str(2**70), str(2**70))):
        result = run(project, "train", "--seed", seed)
        assert result.exit_code == 2
        assert error_line(result) == f"Error: --seed must be from 0 to 4294967295, not {shown}."
    assert not (project / "models").exists()


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be at least 1, not 0."),
    (["--batch-size", "0"], "--batch-size must be at least 1, not 0."),
    (["--max-minutes", "nan"], "--max-minutes must be at least 0, not nan."),
    (["--units", "0"], "--units must be at least 1, not 0."),
    (["--dropout", "1"], "--dropout must be at least 0 and below 1, not 1.0."),
    (["--learning-rate", "0"], "--learning-rate must be above 0, not 0.0."),
    (["--fine-tune-epochs", "-1"], "--fine-tune-epochs must be at least 0, not -1."),
])
def test_train_flags_get_the_configs_range_checks(project, args, message):
    result = run(project, "train", *args)
    assert result.exit_code == 2 and error_line(result) == f"Error: {message}"


def test_train_and_a_keras_only_path_without_the_extra_say_what_to_install(project, monkeypatch, tiny_models):
    """The light install: no TensorFlow. `None` in sys.modules is how Python marks a module absent."""
    for name in ("tensorflow", "keras", "gensim"):
        monkeypatch.setitem(sys.modules, name, None)
    result = run(project, "train", "--mode", "onehot")
    assert result.exit_code == 1
    assert error_line(result) == ('Error: `poetry-lstm train` needs TensorFlow and gensim, '
                                  'which the light install leaves out; '
                                  'install the train extra with pip install -e ".[train]" in the project folder.')
    # A model file the fast reader cannot read: without Keras to fall back on, say the file is broken and how to
    # get it back, not "install TensorFlow" (it would not help) and not a traceback.
    shutil.copytree(tiny_models, project / "models")
    (project / "models" / "onehot" / "model.keras").write_bytes(b"not a zip")
    result = run(project, "generate", "山水风月花", "--mode", "onehot", "--n", "1")
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("Error: The model file ") and "model.keras cannot be read (BadZipFile)" in line
    assert line.endswith("or run `poetry-lstm train --mode onehot` again.")


# --- generate: every value checked in one place -------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--temperature", "nan"], "--temperature must be from 0.05 to 5, not nan."),
    (["--temperature", "0"], "--temperature must be from 0.05 to 5, not 0.0."),
    (["--top-p", "nan"], "--top-p must be above 0 and at most 1, not nan."),
    (["--top-p", "2"], "--top-p must be above 0 and at most 1, not 2.0."),
    (["--n", "0"], "--n must be from 1 to 20, not 0."),
    (["--n", "100000"], "--n must be from 1 to 20, not 100000."),
    (["--beam", "100000"], "--beam must be from 1 to 64, not 100000."),
    (["--top-k", "-5"], "--top-k must be at least 0, not -5."),
])
def test_generate_flags_out_of_range_are_refused_before_the_model_loads(project, args, message):
    result = run(project, "generate", "春眠不觉晓", *args)  # no model in this project: refused first
    assert result.exit_code == 2 and error_line(result) == f"Error: {message}"


@pytest.mark.parametrize("line, message", [
    ("n = 100000", "[generate] n must be from 1 to 20, not 100000."),
    ("n = 0", "[generate] n must be from 1 to 20, not 0."),
    ("beam = 100000", "[generate] beam must be from 1 to 64, not 100000."),
    ("temperature = -1", "[generate] temperature must be from 0.05 to 5, not -1.0."),
    ("top_p = 2.0", "[generate] top_p must be above 0 and at most 1, not 2.0."),
    ("beam = 0", "[generate] beam must be from 1 to 64, not 0."),
    ("top_k = -5", "[generate] top_k must be at least 0, not -5."),
    ("max_tries = -1", "[generate] max_tries must be at least 1, not -1."),
    ('mode = "nope"', "[generate] mode must be one of word2vec, onehot, not 'nope'."),
])
def test_generate_values_in_a_config_file_get_the_same_checks(project, line, message):
    config = project / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + f"[generate]\n{line}\n", encoding="utf-8")
    result = run(project, "generate", "春眠不觉晓")
    assert result.exit_code == 1 and error_line(result) == f"Error: {config}: {message}"
    assert "train --mode nope" not in result.output


def test_generate_takes_any_integer_seed_from_a_flag_or_a_file(tiny_root, tiny_models, tmp_path):
    config = tmp_path / "seed.toml"
    config.write_text((tiny_root / "config.toml").read_text(encoding="utf-8") + "[generate]\nseed = -5\n",
                      encoding="utf-8")
    poems = []
    for args in (["--config", str(tiny_root / "config.toml"), "generate", "春眠不觉晓", "--seed", "-5"],
                 ["--config", str(config), "generate", "春眠不觉晓"],
                 ["--config", str(tiny_root / "config.toml"), "generate", "春眠不觉晓", "--seed", str(2**70)]):
        result = CliRunner().invoke(cli, [*args, "--n", "1", "--json"])
        assert result.exit_code == 0, result.output
        poems.append(json.loads(result.stdout)["poems"][0]["text"])
    assert poems[0] == poems[1]  # the flag and the file mean the same seed


def test_generate_help_shows_defaults_ranges_and_what_score_means():
    result = CliRunner().invoke(cli, ["generate", "--help"])
    text = " ".join(result.output.split())  # click wraps lines
    from poetry_lstm.config import load_config

    g = load_config().generate  # the defaults shown are the config's
    for expected in ("How many poems (from 1 to 20). [default: 3]", f"(from 0.05 to 5). [default: {g.temperature:g}]",
                     "[default: word2vec]", "(from 1 to 64). [default: 1]", "[default: 0]",
                     "(above 0 and at most 1). [default: 0.9]",
                     "mean log-probability per generated character",
                     "0 when at least one line got a poem, 2 when every line was refused"):
        assert expected in text, expected


# --- generate: output -------------------------------------------------------------------------------

@pytest.fixture
def gen(tiny_root, tiny_models):
    def invoke(*args):
        result = CliRunner().invoke(cli, ["--config", str(tiny_root / "config.toml"), "generate", *map(str, args)])
        assert "Traceback" not in result.output
        return result
    return invoke


def test_text_output_explains_the_score_and_names_the_breaking_characters(gen):
    result = gen("我爱你们啊", "--n", "1", "--seed", "0")
    assert result.exit_code == 0, result.output
    assert "score: mean log-probability per generated character under the model; higher is likelier." in result.stdout
    breaks = [line.strip() for line in result.stdout.splitlines()
              if " breaks " in line and line.strip().startswith("line 1")]
    assert len(breaks) == 1 and re.fullmatch(r"line 1 breaks \S+ at character \d(, \d)*", breaks[0]), result.stdout


def test_json_output_lists_breaks_as_line_and_character(gen):
    from poetry_lstm import prosody as P
    out = json.loads(gen("我爱你们啊", "--n", "2", "--json").stdout)
    for poem in out["poems"]:
        assert poem["breaks"] == [[1, i + 1] for i in P.breaks("我爱你们啊", P.FORMS[poem["form"]][0])] != []
    fitting = json.loads(gen("白日依山尽", "--n", "1", "--json").stdout)["poems"][0]
    assert fitting["breaks"] == []


@pytest.mark.parametrize("args, code, says", [
    (["abcde"], 2, "must be five or seven Chinese characters"),
    (["春眠不觉晓", "--seed", "x"], 2, "'x' is not a valid integer"),
    (["春眠不觉晓", "--temperature", "nan"], 2, "--temperature must be from 0.05 to 5, not nan."),
    (["春眠不觉晓", "--mode", "nope"], 2, "'nope' is not one of 'word2vec', 'onehot'"),
    (["春眠不觉晓", "--acrostic", "春夏秋冬"], 2, "Give exactly one of"),
    (["春眠不觉晓", "--file", "absent.txt"], 2, "Give exactly one of"),
])
def test_with_json_every_error_is_json_on_stdout_with_the_same_exit_code(gen, args, code, says):
    result = gen(*args, "--json")
    assert result.exit_code == code and result.stderr == ""
    out = json.loads(result.stdout)
    assert list(out) == ["error"] and says in out["error"] and "\n" not in out["error"]
    plain = gen(*args)
    assert plain.exit_code == code and says in plain.stderr  # the same sentence without --json


def test_json_errors_from_the_config_and_a_missing_model_too(project):
    missing = CliRunner().invoke(cli, ["--config", str(project / "absent.toml"), "generate", "春眠不觉晓", "--json"])
    assert missing.exit_code == 1 and json.loads(missing.stdout) == {
        "error": f"The config file {project / 'absent.toml'} does not exist; pass an existing TOML file to --config."}
    no_model = run(project, "generate", "春眠不觉晓", "--json")
    assert no_model.exit_code == 1 and "poetry-lstm train --mode word2vec" in json.loads(no_model.stdout)["error"]
    evaluate = run(project, "evaluate", "--json")
    assert evaluate.exit_code == 1 and set(json.loads(evaluate.stdout)) == {"error"}
    assert run(project, "clean", "--json").exit_code == 2  # no --json there: click's own message, as text


# --- generate --file: one first line a line -----------------------------------------------------------

BATCH = "白日依山尽\n\nabcde\n牀前明月光。\n   \n"  # line 3 is refused; 2 and 5 are blank


def test_file_with_json_writes_one_object_per_line_and_goes_on_past_a_bad_one(gen, tmp_path):
    path = tmp_path / "first_lines.txt"
    path.write_text(BATCH, encoding="utf-8")
    result = gen("--file", path, "--json", "--n", "2", "--seed", "4")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 3, 4]
    assert (rows[1] == {"line": 3, "input": "abcde", "error": rows[1]["error"]}
            and "five or seven Chinese characters" in rows[1]["error"])
    single = json.loads(gen("牀前明月光。", "--json", "--n", "2", "--seed", "4").stdout)
    assert rows[2] == {"line": 4, **single}  # the same fields and poems as one line given alone
    assert rows[0]["first_line"] == "白日依山尽" and len(rows[0]["poems"]) == 2
    assert "first lines" in result.stderr and "3/3" in result.stderr  # tqdm's bar, on stderr


def test_file_as_text_prints_each_poem_and_a_bad_line_in_its_place(gen, tmp_path):
    path = tmp_path / "first_lines.txt"
    path.write_text(BATCH, encoding="utf-8")
    result = gen("--file", path, "--n", "1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "line 1: 白日依山尽" and "line 4: 牀前明月光。" in lines
    assert any(line.startswith("line 3: The first line must be five or seven Chinese characters") for line in lines)
    assert (lines.index("line 1: 白日依山尽") < [i for i, line in enumerate(lines) if line.startswith("line 3:")][0]
            < lines.index("line 4: 牀前明月光。"))
    assert lines[-1].startswith("score: ")


def test_file_where_every_line_is_refused_exits_2(gen, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("abcde\n床前\n", encoding="utf-8")
    result = gen("--file", path, "--json")
    assert result.exit_code == 2
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r.get("line") for r in rows] == [1, 2, None]
    assert rows[-1] == {"error": f"No line of {path} gave a poem; "
                                 "each must be five or seven Chinese characters, e.g. 床前明月光."}


@pytest.mark.parametrize("content, says", [
    (None, "does not exist; pass --file a text file with one first line a line."),
    ("\n  \n".encode(), "holds no first lines; write one a line, e.g. 床前明月光."),
    ("白日依山尽\n".encode("gb18030"), "is not UTF-8 text; save it as UTF-8 and run the command again."),
])
def test_a_missing_empty_or_foreign_file_is_one_sentence(gen, tmp_path, content, says):
    path = tmp_path / "lines.txt"
    if content is not None:
        path.write_bytes(content)
    result = gen("--file", path)
    assert result.exit_code == 2 and error_line(result) == f"Error: The file {path} {says}"


def test_a_utf8_byte_order_mark_is_no_character(gen, tmp_path):
    path = tmp_path / "notepad.txt"
    path.write_bytes("\ufeff白日依山尽\n".encode("utf-8"))
    rows = [json.loads(line) for line in gen("--file", path, "--json", "--n", "1").stdout.splitlines()]
    assert rows[0]["first_line"] == "白日依山尽"


def test_generate_never_imports_tensorflow_or_gensim(tiny_root, tiny_models):
    code = ("import sys; from poetry_lstm.cli import cli; "
            f"cli.main(['--config', {str(tiny_root / 'config.toml')!r}, 'generate', '山水风月花', '--n', '1'], "
            "standalone_mode=False); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'gensim', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --- crawl: politeness, robots.txt, and a crawl too small to trust -----------------------------------------

def test_a_delay_under_a_second_against_the_real_site_is_refused(project):
    before = seed_corpus(project)
    result = run(project, "crawl", "--source", "gushiwen", "--delay", "0")
    assert result.exit_code == 2
    assert error_line(result) == ("Error: A delay of 0 s is too short for www.gushiwen.cn: "
                                  "under 1 s is allowed only against "
                                  "this machine (127.0.0.1, localhost); use --delay 1 or more.")
    assert ((project / "corpus" / "quatrains.jsonl").read_bytes() == before
            and not (project / "crawler" / "cache").exists())
    assert "under 1 only against this machine" in " ".join(run(project, "crawl", "--help").output.split())


def test_a_delay_of_nan_is_refused(project):
    result = run(project, "crawl", "--source", "gushiwen", "--delay", "nan")
    assert result.exit_code == 2 and error_line(result) == "Error: --delay must be at least 0, not nan."


def test_robots_txt_forbidding_everything_says_so(project):
    with LocalServer({"/robots.txt": Reply(body="User-agent: *\nDisallow: /\n", content_type="text/plain")}) as server:
        result = run(project, "crawl", "--source", "gushiwen", "--base-url", server.url, "--delay", "0")
        assert server.paths() == ["/robots.txt"]
    assert result.exit_code == 1
    assert error_line(result) == (f"Error: {server.url}/robots.txt forbids the crawl: "
                                  "no list page may be fetched, so nothing was; no records were written.")
    assert "run `poetry-lstm crawl` first" not in result.output and result.stderr.count("\n") == 1  # one sentence


def test_a_crawl_of_a_few_records_keeps_the_corpus_unless_forced(project):
    before = seed_corpus(project)  # 40 raw records, 40 quatrains
    raw = project / "crawler" / "raw" / "chinese-poetry.jsonl"
    result = run(project, "crawl", "--from", small_tree(project / "small"))
    assert result.exit_code == 1
    assert error_line(result) == (f"Error: The new crawl has 1 record, fewer than half of the 40 in {raw}, "
                                  "so the previous raw records and corpus are kept; "
                                  "check --from (the full data set is `npm pack chinese-poetry@2.0.1`), "
                                  "or pass --force to replace them.")
    assert (project / "corpus" / "quatrains.jsonl").read_bytes() == before
    forced = run(project, "crawl", "--from", small_tree(project / "small2"), "--force")
    assert forced.exit_code == 0, forced.output
    assert "crawl: replaced 40 raw records with 1 (--force)" in forced.stdout
    assert "clean: replaced a corpus of 40 quatrains with 1" in forced.stdout


def test_force_is_a_chinese_poetry_flag(project):
    result = run(project, "crawl", "--source", "gushiwen", "--force")
    assert result.exit_code == 2
    assert error_line(result) == ("Error: --force applies to --source chinese-poetry only; "
                                  "drop it or add --source chinese-poetry.")
