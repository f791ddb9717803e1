"""Polite, cached HTTP for the crawlers: `body = fetch(session, url, cache_file)`.

One `requests.Session` per crawl, with connect/read timeouts and urllib3 retries (exponential
backoff on 429, 5xx and connection errors, honouring Retry-After). A fetched body is written to
the cache atomically, so a re-run or a resumed crawl downloads nothing it already has.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import files
from .config import CrawlConfig
from .errors import PoetryError

RETRY_STATUSES = (429, 500, 502, 503, 504)


def make_session(cfg: CrawlConfig) -> requests.Session:
    retry = Retry(
        total=cfg.retries,
        connect=cfg.retries,
        read=cfg.retries,
        status=cfg.retries,
        backoff_factor=cfg.backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = cfg.user_agent
    return session


def cache_name(url: str, suffix: str = "") -> str:
    """A file name for `url`: readable tail plus a hash, so distinct URLs never collide."""
    tail = re.sub(r"[^\w.\-]+", "_", url.rstrip("/").rsplit("/", 1)[-1])[-60:] or "index"
    return f"{hashlib.sha1(url.encode()).hexdigest()[:12]}_{tail}{suffix}"


def get(session: requests.Session, url: str, cfg: CrawlConfig) -> requests.Response:
    """GET with timeouts and retries; any failure becomes one clear PoetryError."""
    try:
        resp = session.get(url, timeout=(cfg.connect_timeout, cfg.read_timeout))
    except requests.exceptions.RetryError:
        raise PoetryError(f"{url} kept failing after {cfg.retries} retries; try again later.") from None
    except requests.exceptions.Timeout:
        raise PoetryError(f"{url} did not answer in time; check the address or try again later.") from None
    except requests.exceptions.ConnectionError:
        raise PoetryError(f"Cannot reach {url}; "
                          "check the address and your network, then run the command again.") from None
    except requests.exceptions.RequestException as exc:
        raise PoetryError(f"Fetching {url} failed ({exc.__class__.__name__}); check the address.") from None
    if resp.status_code != 200:
        raise PoetryError(f"{url} answered HTTP {resp.status_code}; check the address or try again later.")
    return resp


def fetch(session: requests.Session, url: str, cache_file: Path, cfg: CrawlConfig, validate=None) -> tuple[bytes, bool]:
    """The body of `url`, from the cache when present. Returns (body, came_from_cache).

    `validate(body)` may raise PoetryError; a body that fails it is never cached.
    """
    if cache_file.exists():
        return cache_file.read_bytes(), True
    body = get(session, url, cfg).content
    if validate is not None:
        validate(body)
    files.write_bytes(cache_file, body)
    return body, False
