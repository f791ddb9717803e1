"""chinese-poetry into raw records: from a folder, from an npm-style tarball, and over HTTP.

The poems are real public-domain Tang and Song poems written out here in traditional characters,
as the data set stores them; the tarball is built in a temporary folder with `tarfile`, and the
HTTP crawl runs against a real local server.
"""
from __future__ import annotations

import errno
import io
import json
import os
import socket
import tarfile
from pathlib import Path

import pytest
from local_server import LocalServer, Reply

from poetry_lstm import clean, crawl, files
from poetry_lstm.config import load_config
from poetry_lstm.errors import PoetryError

TANG = [
    {"author": "王之渙", "title": "登鸛雀樓",
     "paragraphs": ["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"], "id": "t-1"},
    {"author": "李白", "title": "靜夜思",
     "paragraphs": ["牀前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"], "id": "t-2"},
    {"author": "王維", "title": "相思",
     "paragraphs": ["紅豆生南國，春來發幾枝。", "願君多採擷（採擷 一作：攀折），此物最相思。"], "id": "t-3"},
    {"author": "杜甫", "title": "春望",
     "paragraphs": ["國破山河在，城春草木深。", "感時花濺淚，恨別鳥驚心。",
                    "烽火連三月，家書抵萬金。", "白頭搔更短，渾欲不勝簪。"], "id": "t-4"},  # 五律
    {"author": "王昌齡", "title": "出塞",
     "paragraphs": ["秦時明月漢時關，萬里長征人未還。", "但使龍城飛將在，不教胡馬度陰山。"], "id": "t-5"},  # 七绝
]
MALFORMED = [
    {"author": "無名", "title": "缺段", "id": "m-1"},                                      # no paragraphs
    # author not a string
    {"author": 7, "title": "作者非字串", "paragraphs": ["白日依山盡，黃河入海流。"], "id": "m-2"},
    # paragraphs not a list
    {"author": "無名", "title": "段非列表", "paragraphs": "白日依山盡，黃河入海流。", "id": "m-3"},
    "不是一首詩",                                                                           # not even an object
]
SONG = [
    {"author": "王安石", "title": "梅花",
     "paragraphs": ["牆角數枝梅，凌寒獨自開。", "遙知不是雪，爲有暗香來。"], "id": "s-1"},
]
DECOY = [{"author": "誘餌", "title": "不該讀到", "paragraphs": ["白雲千載空悠悠，一二三四五。"], "id": "d-1"}]

EXPECTED_RAW = {  # source_id → (dynasty, author, title, text): traditional, as stored, paragraphs joined
    "t-1": ("唐", "王之渙", "登鸛雀樓", "白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。"),
    "t-2": ("唐", "李白", "靜夜思", "牀前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。"),
    "t-3": ("唐", "王維", "相思", "紅豆生南國，春來發幾枝。\n願君多採擷（採擷 一作：攀折），此物最相思。"),
    "t-4": ("唐", "杜甫", "春望",
            "國破山河在，城春草木深。\n感時花濺淚，恨別鳥驚心。\n烽火連三月，家書抵萬金。\n白頭搔更短，渾欲不勝簪。"),
    "t-5": ("唐", "王昌齡", "出塞", "秦時明月漢時關，萬里長征人未還。\n但使龍城飛將在，不教胡馬度陰山。"),
    "s-1": ("宋", "王安石", "梅花", "牆角數枝梅，凌寒獨自開。\n遙知不是雪，爲有暗香來。"),
}
EXPECTED_CORPUS = {  # simplified, notes gone; the 五律 and the 七绝 are dropped
    "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。": ("唐", "王之涣", "登鹳雀楼"),
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。": ("唐", "李白", "静夜思"),
    "红豆生南国，春来发几枝。愿君多采撷，此物最相思。": ("唐", "王维", "相思"),
    "墙角数枝梅，凌寒独自开。遥知不是雪，为有暗香来。": ("宋", "王安石", "梅花"),
}


def dump(poems) -> bytes:
    return json.dumps(poems, ensure_ascii=False, indent=2).encode("utf-8")


def build_tree(root: Path) -> Path:
    """The npm package's layout, with the error/ and strains/ folders that are not poems."""
    dist = root / "package" / "dist"
    for rel, poems in {"quantangshi/poet.tang.0.json": TANG + MALFORMED, "quantangshi/poet.song.0.json": SONG,
                       "error/poet.tang.0.json": DECOY, "strains/json/poet.tang.0.json": DECOY,
                       "strains/json/poet.song.0.json": DECOY}.items():
        (dist / rel).parent.mkdir(parents=True, exist_ok=True)
        (dist / rel).write_bytes(dump(poems))
    (root / "package" / "package.json").write_text('{"name": "chinese-poetry", "version": "2.0.1"}', encoding="utf-8")
    return root


def build_tarball(tmp_path: Path, name: str = "chinese-poetry-2.0.1.tgz") -> Path:
    tree = build_tree(tmp_path / "tree")
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree / "package", arcname="package")
    return path


def cfg_for(tmp_path: Path, **crawl_settings):
    cfg = load_config().replace("paths", crawler_dir=str(tmp_path / "crawler"), corpus_dir=str(tmp_path / "corpus"),
                                models_dir=str(tmp_path / "models"))
    return cfg.replace("crawl", **crawl_settings) if crawl_settings else cfg


def raw_of(cfg) -> list[dict]:
    return files.read_jsonl(crawl.raw_path(cfg, "chinese-poetry"))


def check_raw(records: list[dict]) -> None:
    assert {r["source_id"]: (r["dynasty"], r["author"], r["title"], r["text"]) for r in records} == EXPECTED_RAW
    assert len(records) == len(EXPECTED_RAW)  # nothing twice, no decoy from error/ or strains/
    assert {r["source"] for r in records} == {"chinese-poetry"}
    assert all(set(r) == {"source", "source_id", "dynasty", "author", "title", "text"} for r in records)


# --- folder and tarball ----------------------------------------------------------------------

def test_a_folder_gives_raw_records_and_skips_malformed_ones(tmp_path):
    cfg = cfg_for(tmp_path)
    stats = crawl.crawl_chinese_poetry(cfg, build_tree(tmp_path / "clone"))
    assert stats == {"files": 2, "malformed": len(MALFORMED), "records": len(EXPECTED_RAW)}
    check_raw(raw_of(cfg))


def test_a_tarball_is_read_in_place_and_cleaned_into_simplified_quatrains(tmp_path):
    tarball = build_tarball(tmp_path)
    cfg = cfg_for(tmp_path).replace("clean", forms=["wujue"])
    stats = crawl.crawl_chinese_poetry(cfg, tarball)
    assert stats == {"files": 2, "malformed": len(MALFORMED), "records": len(EXPECTED_RAW)}
    check_raw(raw_of(cfg))
    assert not (tmp_path / "package").exists() and not list((tmp_path / "crawler").rglob("*.json"))  # nothing unpacked

    report = clean.clean_corpus(cfg)
    corpus = clean.load_corpus(cfg)
    assert {r["text"]: (r["dynasty"], r["author"], r["title"]) for r in corpus} == EXPECTED_CORPUS
    assert all(r["form"] == "wujue" and r["split"] in clean.SPLITS and r["source"] == "chinese-poetry" for r in corpus)
    assert report["records_read"] == len(EXPECTED_RAW) and report["kept"] == len(EXPECTED_CORPUS)
    assert report["per_dynasty"] == {"唐": 3, "宋": 1}
    assert report["dropped"]["not_five_character_quatrain"] == 2  # 春望 (a 五律) and 出塞 (a 七绝)


def test_a_tarball_and_the_same_folder_give_the_same_records(tmp_path):
    from_tar, from_dir = cfg_for(tmp_path / "a"), cfg_for(tmp_path / "b")
    crawl.crawl_chinese_poetry(from_tar, build_tarball(tmp_path))
    crawl.crawl_chinese_poetry(from_dir, tmp_path / "tree")
    assert raw_of(from_tar) == raw_of(from_dir)


# --- bad input ---------------------------------------------------------------------------------

def one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message and message.endswith(".")


def corrupt_tarballs(tmp_path: Path) -> dict[str, Path]:
    good = build_tarball(tmp_path).read_bytes()
    damaged = bytearray(good)
    for i in range(len(good) // 3, len(good) // 3 + 40):
        damaged[i] ^= 0x5A
    out = {"random": os.urandom(4096), "truncated": good[: len(good) // 2], "damaged": bytes(damaged), "empty": b""}
    for name, data in out.items():
        (tmp_path / f"{name}.tgz").write_bytes(data)
    return {name: tmp_path / f"{name}.tgz" for name in out}


def test_corrupt_tarballs_are_one_clear_error_and_keep_earlier_records(tmp_path):
    cfg = cfg_for(tmp_path)
    crawl.crawl_chinese_poetry(cfg, build_tarball(tmp_path, "good.tgz"))
    before = crawl.raw_path(cfg, "chinese-poetry").read_bytes()
    for name, path in corrupt_tarballs(tmp_path).items():
        with pytest.raises(PoetryError, match="is not a readable tarball") as err:
            crawl.crawl_chinese_poetry(cfg, path)
        assert str(err.value).startswith(str(path)), name
        one_sentence(str(err.value))
        assert crawl.raw_path(cfg, "chinese-poetry").read_bytes() == before, name
    # no temp files
    assert [p.name for p in crawl.raw_path(cfg, "chinese-poetry").parent.iterdir()] == ["chinese-poetry.jsonl"]


def test_a_tarball_without_poem_files_says_so(tmp_path):
    path = tmp_path / "other.tgz"
    with tarfile.open(path, "w:gz") as tar:
        data = b'{"name": "left-pad"}'
        info = tarfile.TarInfo("package/package.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(PoetryError, match="holds no poet.tang/poet.song files"):
        crawl.crawl_chinese_poetry(cfg_for(tmp_path), path)


def test_corrupt_json_in_a_folder_names_the_file_and_writes_nothing(tmp_path):
    tree = build_tree(tmp_path / "clone")
    bad = tree / "package" / "dist" / "quantangshi" / "poet.song.0.json"
    bad.write_bytes(dump(SONG)[:-20])
    cfg = cfg_for(tmp_path)
    with pytest.raises(PoetryError, match="is not valid JSON") as err:
        crawl.crawl_chinese_poetry(cfg, tree)
    assert bad.as_posix() in str(err.value)
    one_sentence(str(err.value))
    assert not crawl.raw_path(cfg, "chinese-poetry").exists()


def test_corrupt_json_inside_a_tarball_names_the_tarball_and_the_member(tmp_path):
    tree = build_tree(tmp_path / "clone")
    (tree / "package" / "dist" / "quantangshi" / "poet.tang.0.json").write_bytes(b"\xff\xfe not json")
    path = tmp_path / "bad-json.tgz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree / "package", arcname="package")
    with pytest.raises(PoetryError, match="is not valid JSON") as err:
        crawl.crawl_chinese_poetry(cfg_for(tmp_path), path)
    assert str(path) in str(err.value) and "package/dist/quantangshi/poet.tang.0.json" in str(err.value)


def test_a_json_file_that_is_not_a_list_is_refused(tmp_path):
    tree = build_tree(tmp_path / "clone")
    (tree / "package" / "dist" / "quantangshi" / "poet.tang.0.json").write_text('{"poems": []}', encoding="utf-8")
    with pytest.raises(PoetryError, match="is not a list of poems"):
        crawl.crawl_chinese_poetry(cfg_for(tmp_path), tree)


def test_a_missing_source_or_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(PoetryError, match="does not exist") as err:
        crawl.crawl_chinese_poetry(cfg_for(tmp_path), tmp_path / "nowhere.tgz")
    one_sentence(str(err.value))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PoetryError, match="holds no poet.tang"):
        crawl.crawl_chinese_poetry(cfg_for(tmp_path), tmp_path / "empty")


def test_a_full_disk_is_one_sentence_and_the_old_records_survive(tmp_path, monkeypatch):
    cfg = cfg_for(tmp_path)
    tarball = build_tarball(tmp_path)
    crawl.crawl_chinese_poetry(cfg, tarball)
    raw = crawl.raw_path(cfg, "chinese-poetry")
    raw.write_text('{"old": "records"}\n', encoding="utf-8")
    real_replace = os.replace

    def no_space(src, dst, *args, **kwargs):
        if Path(dst) == raw:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(PoetryError) as err:
        crawl.crawl_chinese_poetry(cfg, tarball)
    assert str(err.value) == f"The disk is full while writing {raw}; free some space and run the command again."
    assert raw.read_text(encoding="utf-8") == '{"old": "records"}\n'
    assert [p.name for p in raw.parent.iterdir()] == [raw.name]  # the half-written temporary file is gone


def test_a_full_disk_while_writing_is_caught_too(tmp_path, monkeypatch):
    """ENOSPC from the write itself, not the rename: the temporary file fills up part-way."""
    path = tmp_path / "out" / "rows.jsonl"
    files.write_jsonl(path, [{"n": 0}])

    class FullFile(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "open", lambda *a, **k: FullFile(), raising=False)
    with pytest.raises(PoetryError, match="^The disk is full while writing .*rows.jsonl; free some space"):
        files.write_jsonl(path, [{"n": 1}, {"n": 2}])
    monkeypatch.undo()
    assert files.read_jsonl(path) == [{"n": 0}]
    assert [p.name for p in path.parent.iterdir()] == ["rows.jsonl"]


# --- a smaller crawl, and what a killed one left ------------------------------------------------

def small_tree(root: Path) -> Path:
    """One good poem and two malformed records: a wrong --from, not the data set."""
    folder = root / "package" / "dist" / "quantangshi"
    folder.mkdir(parents=True)
    (folder / "poet.tang.0.json").write_bytes(dump(TANG[:1] + MALFORMED[:2]))
    return root


def test_a_crawl_with_under_half_the_records_keeps_the_previous_ones(tmp_path):
    cfg = cfg_for(tmp_path)
    crawl.crawl_chinese_poetry(cfg, build_tree(tmp_path / "full"))
    raw = crawl.raw_path(cfg, "chinese-poetry")
    before = raw.read_bytes()
    with pytest.raises(PoetryError) as err:
        crawl.crawl_chinese_poetry(cfg, small_tree(tmp_path / "small"))
    assert str(err.value) == (f"The new crawl has 1 record, fewer than half of the 6 in {raw}, "
                              "so the previous raw records and corpus are kept; "
                              "check --from (the full data set is `npm pack chinese-poetry@2.0.1`), "
                              "or pass --force to replace them.")
    assert raw.read_bytes() == before and [p.name for p in raw.parent.iterdir()] == [raw.name]


def test_force_replaces_them_and_says_how_many_it_replaced(tmp_path):
    cfg = cfg_for(tmp_path)
    crawl.crawl_chinese_poetry(cfg, build_tree(tmp_path / "full"))
    stats = crawl.crawl_chinese_poetry(cfg, small_tree(tmp_path / "small"), force=True)
    assert stats == {"files": 1, "malformed": 2, "records": 1, "replaced": 6}
    assert [r["source_id"] for r in raw_of(cfg)] == ["t-1"]


def test_half_the_records_is_plausible(tmp_path):
    cfg = cfg_for(tmp_path)
    raw = crawl.raw_path(cfg, "chinese-poetry")
    raw.parent.mkdir(parents=True)
    raw.write_text("{}\n" * 2, encoding="utf-8")  # 2 earlier records: 1 new one is half, and kept
    assert crawl.crawl_chinese_poetry(cfg, small_tree(tmp_path / "small"))["replaced"] == 2
    raw.write_text("{}\n" * 3, encoding="utf-8")
    with pytest.raises(PoetryError, match="fewer than half of the 3"):
        crawl.crawl_chinese_poetry(cfg, small_tree(tmp_path / "small2"))


def test_a_crawl_removes_what_a_killed_crawl_left(tmp_path):
    cfg = cfg_for(tmp_path)
    raw = crawl.raw_path(cfg, "chinese-poetry")
    cache = tmp_path / "crawler" / "cache" / "chinese-poetry"
    raw.parent.mkdir(parents=True)
    cache.mkdir(parents=True)
    left = [raw.parent / ".chinese-poetry.jsonl.k1ll3d.tmp", cache / ".poet.tang.0.json.x7y8z9.tmp"]
    kept = [raw.parent / "gushiwen.jsonl", raw.parent / ".gushiwen.jsonl.abc.tmp", cache / "poet.song.0.json"]
    for path in left + kept:
        path.write_text("partial", encoding="utf-8")
    crawl.crawl_chinese_poetry(cfg, build_tree(tmp_path / "clone"))
    assert not any(path.exists() for path in left)
    assert all(path.exists() for path in kept)  # another source's files (and their temporaries) are its own
    check_raw(raw_of(cfg))


def test_remove_stale_temps_takes_files_and_folders_matching_only(tmp_path):
    """What train.py calls for a killed run's `models/.onehot.tmp-*` folder."""
    (tmp_path / ".onehot.tmp-ab12" / "vectors").mkdir(parents=True)
    (tmp_path / ".onehot.tmp-ab12" / "vectors" / "vectors.bin").write_bytes(b"x")
    (tmp_path / ".onehot.tmp-cd34").write_bytes(b"y")
    (tmp_path / "onehot").mkdir()
    (tmp_path / ".word2vec.tmp-ef56").mkdir()
    removed = files.remove_stale_temps(tmp_path, ".onehot.tmp-*")
    assert [p.name for p in removed] == [".onehot.tmp-ab12", ".onehot.tmp-cd34"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".word2vec.tmp-ef56", "onehot"]
    assert files.remove_stale_temps(tmp_path / "absent", "*") == []


def test_temp_glob_matches_the_names_atomic_path_makes(tmp_path):
    target = tmp_path / "rows.jsonl"
    with files.atomic_path(target, suffix=".keras") as tmp:
        tmp.write_text("x", encoding="utf-8")
        assert [p.name for p in tmp_path.glob(files.temp_glob(target))] == [tmp.name]
    assert list(tmp_path.glob(files.temp_glob(target))) == []


def test_read_json_names_the_fix_it_is_given(tmp_path):
    (tmp_path / "config.json").write_text("{torn", encoding="utf-8")
    with pytest.raises(PoetryError, match=r"is not valid JSON \(.*\); run `poetry-lstm train --mode onehot` again\.$"):
        files.read_json(tmp_path / "config.json", "model config", fix="run `poetry-lstm train --mode onehot` again")


# --- HTTP ---------------------------------------------------------------------------------------

FOLDER = "/chinese-poetry/abc123/全唐诗"  # the real URL has Chinese in its path too
HTTP_FILES = {"poet.tang.0.json": TANG + MALFORMED, "poet.tang.1000.json": TANG[:1], "poet.song.0.json": SONG}


@pytest.fixture
def server():
    with LocalServer({f"{FOLDER}/{name}": Reply(body=dump(poems), content_type="text/plain; charset=utf-8")
                      for name, poems in HTTP_FILES.items()}) as s:
        yield s


def http_cfg(tmp_path: Path, url: str, **settings):
    base = dict(chinese_poetry_url=url + FOLDER, tang_files=2, song_files=1, retries=2, backoff=0.01,
                connect_timeout=1.0, read_timeout=2.0)
    return cfg_for(tmp_path, **{**base, **settings})


def cache_dir(cfg) -> Path:
    return Path(cfg.paths.crawler_dir) / "cache" / "chinese-poetry"


def test_http_crawl_caches_every_file_and_a_second_run_fetches_nothing(server, tmp_path):
    cfg = http_cfg(tmp_path, server.url)
    stats = crawl.crawl_chinese_poetry(cfg)
    assert stats == {"files": 3, "malformed": len(MALFORMED), "records": len(EXPECTED_RAW) + 1}
    assert server.paths() == [f"{FOLDER}/{name}"
                              for name in ("poet.tang.0.json", "poet.tang.1000.json", "poet.song.0.json")]
    assert {r.headers["User-Agent"] for r in server.requests} == {cfg.crawl.user_agent}
    assert sorted(p.name for p in cache_dir(cfg).iterdir()) == sorted(HTTP_FILES)
    assert json.loads((cache_dir(cfg) / "poet.song.0.json").read_bytes()) == SONG
    records = raw_of(cfg)
    assert [r["dynasty"] for r in records].count("宋") == 1 and {r["source"] for r in records} == {"chinese-poetry"}

    sent = len(server.requests)
    assert crawl.crawl_chinese_poetry(cfg) == {**stats, "replaced": stats["records"]}
    assert len(server.requests) == sent and raw_of(cfg) == records


def test_a_500_is_retried_then_succeeds(server, tmp_path):
    path = f"{FOLDER}/poet.tang.1000.json"
    server.route(path, Reply(500, b"oops"), Reply(body=dump(TANG[:1])))
    cfg = http_cfg(tmp_path, server.url)
    assert crawl.crawl_chinese_poetry(cfg)["records"] == len(EXPECTED_RAW) + 1
    assert server.count(path) == 2


def test_a_server_that_keeps_failing_is_a_clear_error_after_the_retries(server, tmp_path):
    path = f"{FOLDER}/poet.song.0.json"
    server.route(path, Reply(503, b"busy"))
    cfg = http_cfg(tmp_path, server.url, retries=1)
    with pytest.raises(PoetryError, match="answered HTTP 503") as err:
        crawl.crawl_chinese_poetry(cfg)
    assert "poet.song.0.json" in str(err.value)
    assert server.count(path) == 2  # the first try and one retry
    assert sorted(p.name for p in cache_dir(cfg).iterdir()) == ["poet.tang.0.json", "poet.tang.1000.json"]


def test_a_missing_file_is_a_clear_error(server, tmp_path):
    cfg = http_cfg(tmp_path, server.url, tang_files=3)  # poet.tang.2000.json is not served
    with pytest.raises(PoetryError, match="poet.tang.2000.json answered HTTP 404"):
        crawl.crawl_chinese_poetry(cfg)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_host_is_a_clear_error(tmp_path):
    cfg = http_cfg(tmp_path, f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(PoetryError, match="^Cannot reach http://127.0.0.1:") as err:
        crawl.crawl_chinese_poetry(cfg)
    one_sentence(str(err.value))
    assert not crawl.raw_path(cfg, "chinese-poetry").exists()


def test_an_html_answer_is_refused_and_not_cached(server, tmp_path):
    path = f"{FOLDER}/poet.tang.1000.json"
    server.route(path, Reply(body="<html><body>Rate limit exceeded</body></html>"))
    cfg = http_cfg(tmp_path, server.url)
    with pytest.raises(PoetryError, match="is not valid JSON") as err:
        crawl.crawl_chinese_poetry(cfg)
    assert "poet.tang.1000.json" in str(err.value)
    one_sentence(str(err.value))
    assert sorted(p.name for p in cache_dir(cfg).iterdir()) == ["poet.tang.0.json"]  # the good file before it is kept

    server.route(path, Reply(body=dump(TANG[:1])))
    server.requests.clear()
    crawl.crawl_chinese_poetry(cfg)
    assert server.paths() == [path, f"{FOLDER}/poet.song.0.json"]  # resumed: the cached file is not fetched again
