"""The `poetry-lstm` command end to end with click's runner: help, crawl → corpus, and every bad input
as one line, a non-zero exit, no traceback, and nothing already written lost."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import synthetic_poems, write_raw
from poetry_lstm.cli import cli
from test_crawl import EXPECTED_CORPUS, SONG, build_tarball, build_tree, corrupt_tarballs, dump


@pytest.fixture
def project(tmp_path) -> Path:
    """A config file that puts crawler/, corpus/ and models/ under tmp_path."""
    paths = {name: (tmp_path / name.split("_")[0]).as_posix() for name in ("crawler_dir", "corpus_dir", "models_dir")}
    (tmp_path / "config.toml").write_text("[paths]\n" + "".join(f'{k} = "{v}"\n' for k, v in paths.items()), encoding="utf-8")
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
    assert {"crawl", "clean", "train", "generate", "evaluate"} <= set(cli.commands)
    for name in cli.commands:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output and f"poetry-lstm {name}" in result.output, name


# --- crawl and clean ------------------------------------------------------------------------------

def test_crawl_from_a_tarball_builds_the_corpus(project):
    result = run(project, "crawl", "--source", "chinese-poetry", "--from", build_tarball(project))
    assert result.exit_code == 0, result.output
    assert 'crawl: {"files": 2, "malformed": 4, "records": 6}' in result.stdout
    assert "clean: kept 4 (4 real 五绝, 0 五律 halves)" in result.stdout
    rows = [json.loads(line) for line in (project / "corpus" / "quatrains.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["text"] for r in rows} == set(EXPECTED_CORPUS)
    report = json.loads((project / "corpus" / "report.json").read_text(encoding="utf-8"))
    assert report["kept"] == 4 and report["per_dynasty"] == {"唐": 3, "宋": 1}
    assert (project / "crawler" / "raw" / "chinese-poetry.jsonl").exists()


def test_crawl_with_wulv_adds_the_halves_to_train(project):
    result = run(project, "crawl", "--from", build_tree(project / "clone"), "--forms", "wujue,wulv")
    assert result.exit_code == 0, result.output
    assert "clean: kept 6 (4 real 五绝, 2 五律 halves)" in result.stdout
    rows = [json.loads(line) for line in (project / "corpus" / "quatrains.jsonl").read_text(encoding="utf-8").splitlines()]
    halves = [r for r in rows if r["form"] == "wulv_half"]
    assert [r["text"] for r in halves] == ["国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。", "烽火连三月，家书抵万金。白头搔更短，浑欲不胜簪。"]
    assert {r["split"] for r in halves} == {"train"}


def test_clean_rebuilds_the_corpus_from_raw_records(project):
    write_raw(project / "crawler", synthetic_poems(50))
    result = run(project, "clean")
    assert result.exit_code == 0, result.output
    assert "clean: kept 50 (50 real 五绝, 0 五律 halves)" in result.stdout
    assert json.loads((project / "corpus" / "report.json").read_text(encoding="utf-8"))["kept"] == 50


def test_clean_without_raw_records_says_run_crawl(project):
    line = error_line(run(project, "clean"))
    assert "run `poetry-lstm crawl` first" in line and str(project / "crawler" / "raw") in line
    assert not (project / "corpus").exists()


@pytest.mark.parametrize("args,message", [
    (["--source", "gushiwen", "--from", "x.tgz"], "--from applies to --source chinese-poetry only; drop it or add --source chinese-poetry."),
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
    assert line == f"Error: {project / 'chinese-poetry-2.0.1.tgz'} does not exist; run `npm pack chinese-poetry@2.0.1` or pass a chinese-poetry clone to --from."
    assert (project / "corpus" / "quatrains.jsonl").read_bytes() == before


def test_corrupt_tarballs_are_one_line_and_keep_the_corpus(project):
    before = seed_corpus(project)
    raw_before = (project / "crawler" / "raw" / "chinese-poetry.jsonl").read_bytes()
    for name, path in corrupt_tarballs(project / "bad").items():
        result = run(project, "crawl", "--from", path)
        line = error_line(result)
        assert result.exit_code == 1
        assert line.startswith(f"Error: {path} is not a readable tarball (") and line.endswith("npm pack chinese-poetry@2.0.1."), name
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
    result = run(project, "crawl", "--from", build_tarball(project))
    assert result.exit_code == 1
    assert error_line(result) == f"Error: The disk is full while writing {corpus}; free some space and run the command again."
    assert corpus.read_bytes() == before
    assert sorted(p.name for p in corpus.parent.iterdir()) == ["quatrains.jsonl", "report.json"]  # no temporary file left


def test_a_folder_that_cannot_be_written_is_one_line(project):
    (project / "corpus").write_text("a file where the corpus folder goes", encoding="utf-8")
    write_raw(project / "crawler", synthetic_poems(5))
    line = error_line(run(project, "clean"))
    assert line.startswith("Error: Cannot write ") and "quatrains.jsonl" in line


def test_an_unknown_source_is_refused_by_click(project):
    """--source picks the crawler: choices are checked by click (exit 2, one line)."""
    result = run(project, "crawl", "--source", "wikisource")
    assert result.exit_code == 2 and "Traceback" not in result.output and "Invalid value for '--source'" in result.output


# --- train ------------------------------------------------------------------------------------------

def test_train_without_a_corpus_says_run_crawl(project):
    line = error_line(run(project, "train", "--mode", "onehot", "--epochs", "1"))
    assert "poetry-lstm crawl" in line and str(project / "corpus" / "quatrains.jsonl") in line
    assert not (project / "models").exists()


def test_train_refuses_a_single_layer_before_loading_anything(project):
    assert "--layers must be at least 2" in error_line(run(project, "train", "--layers", "1"))
