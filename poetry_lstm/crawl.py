"""Read the chinese-poetry data set into raw records: `crawl_chinese_poetry(cfg, source_path=None)`.

Three ways in, one record format out (`crawler/raw/chinese-poetry.jsonl`):
the raw files on GitHub at a pinned commit (default, cached under `crawler/cache/`), a local clone
or folder (`--from DIR`), or the npm tarball (`--from chinese-poetry-2.0.1.tgz`, read in place).
"""
from __future__ import annotations

import contextlib
import json
import lzma
import re
import tarfile
import zlib
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from . import files, http
from .config import Config
from .errors import PoetryError

SOURCE = "chinese-poetry"
# poet.tang.0.json … poet.song.254000.json; the `error/` folder holds rejected records, not poems.
POEM_FILE = re.compile(r"(?:^|/)poet\.(tang|song)\.(\d+)\.json$")
DYNASTY = {"tang": "唐", "song": "宋"}
FIELDS = ("author", "title", "paragraphs", "id")


def raw_path(cfg: Config, source: str) -> Path:
    return Path(cfg.paths.crawler_dir) / "raw" / f"{source}.jsonl"


def _is_poem_file(name: str) -> re.Match | None:
    # error/ holds rejected records and strains/ tone patterns of the same ids: neither is poems.
    return None if {"error", "strains"} & set(name.split("/")) else POEM_FILE.search(name)


def _sort_key(name: str) -> tuple[str, int]:
    m = POEM_FILE.search(name)
    return (m.group(1), int(m.group(2)))


def _parse(name: str, body: bytes) -> list:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoetryError(f"{name} is not valid JSON ({exc.__class__.__name__}); "
                          "re-download the data set or point --from at a good copy.") from None
    if not isinstance(data, list):
        raise PoetryError(f"{name} is not a list of poems; point --from at the chinese-poetry data set.")
    return data


def to_records(name: str, poems: list, stats: dict) -> Iterator[dict]:
    """Raw records from one file's list; a malformed poem is counted and skipped."""
    dynasty = DYNASTY[_sort_key(name)[0]]
    for _i, poem in enumerate(poems):
        ok = isinstance(poem, dict) and all(k in poem for k in FIELDS)
        ok = ok and all(isinstance(poem[k], str) for k in ("author", "title", "id"))
        ok = ok and isinstance(poem["paragraphs"], list) and all(isinstance(p, str) for p in poem["paragraphs"])
        if not ok:
            stats["malformed"] += 1
            continue
        yield {"source": SOURCE, "source_id": poem["id"], "dynasty": dynasty, "author": poem["author"],
               "title": poem["title"], "text": "\n".join(poem["paragraphs"])}


def files_from_tarball(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, body) for every poem file in the tarball, without unpacking it to disk.

    Names are `<tarball>/<member>`, so an error about one file says where it came from.
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and _is_poem_file(m.name)),
                             key=lambda m: _sort_key(m.name))
            # tarfile takes a damaged header after the first member for the end of the archive, and
            # gzip checks its CRC only at the end of the stream: read to the end, so a corrupt
            # tarball fails here instead of silently losing poems.
            while tar.fileobj.read(1 << 20):
                pass
            if not members:
                raise PoetryError(f"{path} holds no poet.tang/poet.song files; "
                                  "use the chinese-poetry npm tarball (npm pack chinese-poetry@2.0.1).")
            for m in tqdm(members, desc="tarball", unit="file"):
                yield f"{path.as_posix()}/{m.name}", tar.extractfile(m).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        # tarfile's "could not be opened" lists every method it tried, one a line: keep the first.
        detail = (str(exc).splitlines() or [""])[0].rstrip(": ") or exc.__class__.__name__
        raise PoetryError(f"{path} is not a readable tarball ({detail}); "
                          "download it again with npm pack chinese-poetry@2.0.1.") from None


def files_from_folder(path: Path) -> Iterator[tuple[str, bytes]]:
    found = sorted((p for p in path.rglob("poet.*.json") if _is_poem_file(p.relative_to(path).as_posix())),
                   key=lambda p: _sort_key(p.name))
    if not found:
        raise PoetryError(f"{path} holds no poet.tang.*.json or poet.song.*.json files; "
                          "point --from at a chinese-poetry clone.")
    for p in tqdm(found, desc="folder", unit="file"):
        try:
            yield p.as_posix(), p.read_bytes()
        except OSError as exc:
            raise PoetryError(f"Cannot read {p} ({exc.strerror}); check the file.") from None


def files_from_http(cfg: Config) -> Iterator[tuple[str, bytes]]:
    c = cfg.crawl
    names = [f"poet.tang.{i * 1000}.json" for i in range(c.tang_files)]
    names += [f"poet.song.{i * 1000}.json" for i in range(c.song_files)]
    cache = Path(cfg.paths.crawler_dir) / "cache" / SOURCE
    session = http.make_session(c)
    fetched = 0
    for name in tqdm(names, desc="download", unit="file"):
        url = f"{c.chinese_poetry_url.rstrip('/')}/{name}"
        # The cache file is only written after a whole, parseable body: a resumed run re-fetches nothing good.
        body, cached = http.fetch(session, url, cache / name, c, validate=lambda b, u=url: _parse(u, b))
        fetched += not cached
        yield url, body


def _record_count(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _check_plausible(path: Path, new: int, force: bool) -> int | None:
    """The record count of the raw file about to be replaced (None if there is none); refuses to
    replace it with fewer than half as many records unless forced: a wrong --from must not
    silently turn a 311,855-record crawl into a one-poem corpus."""
    try:
        previous = _record_count(path)
    except FileNotFoundError:
        return None
    except OSError:  # unreadable: nothing worth keeping
        return None
    if 2 * new < previous and not force:
        raise PoetryError(f"The new crawl has {new} record{'' if new == 1 else 's'}, fewer than half of the {previous} "
                          f"in {path}, so the previous raw records and corpus are kept; "
                          "check --from (the full data set is `npm pack chinese-poetry@2.0.1`), "
                          "or pass --force to replace them.")
    return previous


def crawl_chinese_poetry(cfg: Config, source_path: str | Path | None = None, force: bool = False) -> dict:
    """Write `crawler/raw/chinese-poetry.jsonl`; returns counts for the report, with `replaced`:
    the record count of the raw file it replaced, if there was one."""
    raw = raw_path(cfg, SOURCE)
    # A crawl killed while writing left its temporaries (the raw file's is 46 MB); this run owns them.
    files.remove_stale_temps(raw.parent, files.temp_glob(raw))
    files.remove_stale_temps(Path(cfg.paths.crawler_dir) / "cache" / SOURCE, ".*.tmp*")
    if source_path is None:
        stream = files_from_http(cfg)
    else:
        source_path = Path(source_path)
        if not source_path.exists():
            raise PoetryError(f"{source_path} does not exist; "
                              "run `npm pack chinese-poetry@2.0.1` or pass a chinese-poetry clone to --from.")
        stream = files_from_folder(source_path) if source_path.is_dir() else files_from_tarball(source_path)
    stats = {"files": 0, "malformed": 0, "records": 0}
    records = []
    # closing: on a bad file the stream's progress bar ends its line now, not after the error is shown
    with contextlib.closing(stream):
        for name, body in stream:
            stats["files"] += 1
            records.extend(to_records(name.rsplit("/", 1)[-1] if "://" in name else name, _parse(name, body), stats))
    previous = _check_plausible(raw, len(records), force)
    stats["records"] = files.write_jsonl(raw, records)
    if previous is not None:
        stats["replaced"] = previous
    return stats
