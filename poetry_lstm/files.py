"""Atomic file writes: `write_json(path, obj)` leaves either the old file or the new one, never half.

Every file the project writes goes through here: a temporary name in the same folder, then
`os.replace`, which is atomic on POSIX and Windows.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import PoetryError


def _disk_error(path: Path, exc: OSError) -> PoetryError:
    if exc.errno == errno.ENOSPC:
        return PoetryError(f"The disk is full while writing {path}; free some space and run the command again.",
                           kind="disk_full", path=str(path))
    return PoetryError(f"Cannot write {path} ({exc.strerror or exc}); check the folder's permissions and free space.",
                       kind="write_failed", path=str(path))


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + suffix)
        os.close(fd)
    except OSError as exc:
        raise _disk_error(path, exc) from None
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600; a written file should get the usual umask mode
            os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as exc:
        raise _disk_error(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def temp_glob(path: str | os.PathLike) -> str:
    """The glob matching the temporary names `atomic_path(path)` makes (`.name.XXXX.tmp…`)."""
    return f".{Path(path).name}.*.tmp*"


def remove_stale_temps(folder: str | os.PathLike, pattern: str) -> list[Path]:
    """Delete the temporary files and folders matching `pattern` in `folder`; returns them.

    A run killed mid-write leaves its temporary (a 46 MB raw file, a half-saved model folder)
    beside the real one. Call this at the start of the one run that writes there: an earlier
    run's leftovers are then all that can match.
    """
    removed = []
    for path in sorted(Path(folder).glob(pattern)):
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError:  # someone else's file, say: leaving it costs disk space, not correctness
            continue
        removed.append(path)
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write one JSON object a line; returns how many."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def swap_folder(new: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put the finished folder `new` at `path`: the old one is moved aside first and removed after, so `path`
    holds the whole old folder or the whole new one, never a mix."""
    new, path = Path(new), Path(path)
    old = path.parent / f".{path.name}.old"
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    new.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def read_json(path: str | os.PathLike, what: str = "file", fix: str = "delete it and rebuild it"):
    """Read a JSON file or raise a PoetryError naming it; `fix` says what to do about a broken one,
    best as the exact command ("run `poetry-lstm train --mode onehot` again")."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PoetryError(f"The {what} {path} is missing.", kind="file_missing", what=what, path=str(path)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoetryError(f"The {what} {path} is not valid JSON ({exc}); {fix}.", kind="file_corrupt", what=what,
                          path=str(path)) from None


def read_jsonl(path: str | os.PathLike, what: str = "file") -> list[dict]:
    path = Path(path)
    rows, i = [], 0
    try:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):  # noqa: B007 -- i names the bad line in the except below
                if line.strip():
                    rows.append(json.loads(line))
    except FileNotFoundError:
        raise PoetryError(f"The {what} {path} is missing.", kind="file_missing", what=what, path=str(path)) from None
    except OSError as exc:  # a folder in its place, no permission: `i` may not be set yet
        raise PoetryError(f"Cannot read the {what} {path} ({exc.strerror or exc}); check it and rebuild it.",
                          kind="file_unreadable", what=what, path=str(path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoetryError(f"The {what} {path} is corrupt near line {i} ({exc}); rebuild it.", kind="file_corrupt",
                          what=what, path=str(path)) from None
    return rows
