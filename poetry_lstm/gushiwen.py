"""Crawl gushiwen's poem lists into raw records: `summary = crawl_gushiwen(load_config(), max_pages=3)`.

One list per dynasty (`cfg.crawl.gushiwen_dynasties`), page after page along the site's next link,
one polite request at a time: robots.txt is obeyed (its Crawl-delay too), at least `delay` plus
random jitter seconds pass between network requests, and every page is cached under
`<crawler_dir>/cache/gushiwen/`, so a re-run parses without fetching. After every page the raw
records (`<crawler_dir>/raw/gushiwen.jsonl`) and then the position (`<crawler_dir>/gushiwen.state.json`)
are rewritten atomically; an interrupted crawl resumes where it stopped and writes no poem twice.
"""
from __future__ import annotations

import hashlib
import ipaddress
import random
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, urljoin, urlparse
from urllib.robotparser import RobotFileParser

import requests
from bs4 import BeautifulSoup, NavigableString, UnicodeDammit

from . import files, http
from .config import Config, CrawlConfig
from .errors import InputError, PoetryError

SOURCE = "gushiwen"
LIST_PATH = "/shiwens/default.aspx?page={page}&tstr=&astr=&cstr={dynasty}&xstr="
DYNASTY_MARK = re.compile(r"〔([^〕]+)〕")  # newer layout: 王维〔唐代〕; older: 唐代：杜甫
HTML_SPACE = re.compile(r"[ \t\r\n\f]+")  # not \s: a full-width space (U+3000) is part of the text
HIDDEN_TAGS = {"textarea", "script", "style"}  # the textarea holds a copy-to-clipboard duplicate
LINE_BREAK_TAGS = {"br", "p", "div"}
MIN_DELAY = 1.0  # seconds between requests to any host but this machine: the README's promise to the site


class ListPage(NamedTuple):
    poems: list[dict]
    next_url: str | None
    walled: bool  # a login or captcha page, served with HTTP 200 instead of the list


def list_url(base_url: str, dynasty: str, page: int = 1) -> str:
    return base_url.rstrip("/") + LIST_PATH.format(page=page, dynasty=quote(dynasty))


def parse_list_page(html: bytes | str, page_url: str) -> ListPage:
    """Every poem on one list page as a raw record, the next page's absolute URL, and whether it is a wall."""
    if isinstance(html, bytes):
        html = UnicodeDammit(html, ["utf-8"]).unicode_markup  # the site is UTF-8; trust a meta charset otherwise
    soup = BeautifulSoup(html, "html.parser")
    poems = [poem for cont in soup.select("div.sons > div.cont") if (poem := _parse_poem(cont, page_url))]
    return ListPage(poems, _next_url(soup, page_url), _is_wall(soup))


def _parse_poem(cont, page_url: str) -> dict | None:
    body, source = cont.select_one("div.contson, div[id^=contson]"), cont.select_one("p.source")
    if body is None or source is None:  # 名句, 古籍 and ad boxes share the div.cont markup
        return None
    title_link = cont.select_one("p > a[href]:has(b)")
    title_tag = title_link or cont.select_one("p b")
    title = title_tag.get_text(strip=True) if title_tag else ""
    dynasty, author = _source_line(source)
    text = _text_with_breaks(body)
    if not text:
        return None
    if title_link is not None:  # the detail page's path survives host changes (.org, .cn, so./www.)
        source_id = urlparse(urljoin(page_url, title_link["href"])).path.lstrip("/")
    else:
        source_id = "sha1:" + hashlib.sha1(f"{title}\n{author}\n{text}".encode()).hexdigest()[:16]
    return {"source": SOURCE, "source_id": source_id, "dynasty": dynasty, "author": author, "title": title,
            "text": text}


def _source_line(source) -> tuple[str, str]:
    """(dynasty, author) from `p.source`, whichever order the layout of the day uses."""
    line = source.get_text("", strip=True)
    mark = DYNASTY_MARK.search(line)
    if mark:
        return mark.group(1).strip(), DYNASTY_MARK.sub("", line).strip()
    parts = re.split(r"[：:]", line, maxsplit=1)
    return (parts[0].strip(), parts[1].strip()) if len(parts) == 2 else ("", line.strip())


def _text_with_breaks(body) -> str:
    """The poem, one line per <br> or <p>; inline variant notes `(…一作：…)` stay for the cleaner."""
    pieces = []
    for node in body.descendants:
        if type(node) is NavigableString and node.parent.name not in HIDDEN_TAGS:
            pieces.append(HTML_SPACE.sub(" ", str(node)))  # a newline in the HTML source is no line break
        elif node.name in LINE_BREAK_TAGS:
            pieces.append("\n")
    lines = (line.strip() for line in "".join(pieces).split("\n"))
    return "\n".join(line for line in lines if line)


def _next_url(soup, page_url: str) -> str | None:
    link = soup.select_one("a#amore[href]") or next(
        (a for a in soup.find_all("a", href=True) if a.get_text(strip=True) == "下一页"), None)
    if link is None or link["href"].strip().lower().startswith(("javascript", "#")):
        return None
    return urljoin(page_url, link["href"].strip())


def _is_wall(soup) -> bool:
    title, text = (soup.title.get_text() if soup.title else ""), soup.get_text()
    return (soup.find("input", attrs={"type": "password"}) is not None or "登录" in title or "登陆" in title
            or "验证码" in text or "captcha" in text.lower())


def crawl_gushiwen(cfg: Config, *, base_url: str | None = None, max_pages: int | None = None,
                   delay: float | None = None, progress: bool = True) -> dict:
    """Crawl every dynasty's list (resuming a stopped crawl) and return counts of what happened."""
    cfg = cfg.replace("crawl", gushiwen_url=base_url, max_pages=max_pages, delay=delay)
    check_delay(cfg.crawl)
    return _Crawl(cfg.crawl, Path(cfg.paths.crawler_dir), progress).run()


def is_local(url: str) -> bool:
    """Whether `url` points at this machine (localhost or a loopback address)."""
    host = urlparse(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return False


def check_delay(crawl: CrawlConfig) -> None:
    """A delay under MIN_DELAY only against this machine, where no one else's server is hurried."""
    if crawl.delay < MIN_DELAY and not is_local(crawl.gushiwen_url):
        host = urlparse(crawl.gushiwen_url).hostname or crawl.gushiwen_url
        raise InputError(f"A delay of {crawl.delay:g} s is too short for {host}: under {MIN_DELAY:g} s is allowed only "
                         f"against this machine (127.0.0.1, localhost); use --delay {MIN_DELAY:g} or more.")


class _Crawl:
    def __init__(self, crawl: CrawlConfig, crawler_dir: Path, progress: bool):
        self.crawl, self.progress = crawl, progress
        self.raw_file = crawler_dir / "raw" / "gushiwen.jsonl"
        self.state_file = crawler_dir / "gushiwen.state.json"
        self.cache_dir = crawler_dir / "cache" / "gushiwen"
        # A crawl killed mid-write left its temporaries; this run is the one writing here now.
        for path in (self.raw_file, self.state_file):
            files.remove_stale_temps(path.parent, files.temp_glob(path))
        files.remove_stale_temps(self.cache_dir, ".*.tmp*")
        # The raw file, not the state, says which poems are done: it is written first, so a crash
        # between the two writes re-parses one cached page and finds every poem on it already there.
        self.records = files.read_jsonl(self.raw_file, "raw gushiwen file") if self.raw_file.exists() else []
        self.seen = {record["source_id"] for record in self.records}
        self.state = files.read_json(self.state_file, "gushiwen crawl state") if self.state_file.exists() else {}
        self.state.setdefault("lists", {})
        self.session: requests.Session | None = None  # opened on the first network request only
        self.robots: RobotFileParser | None = None
        self.pause = crawl.delay
        self.last_request: float | None = None
        self.disallowed: list[str] = []
        self.counts = {"pages": 0, "fetched": 0, "from_cache": 0, "new_records": 0, "skipped": 0, "disallowed": 0}

    def run(self) -> dict:
        try:
            finished = [self._crawl_list(dynasty) for dynasty in self.crawl.gushiwen_dynasties]
        finally:
            if self.session is not None:
                self.session.close()
        if self.counts["disallowed"] == len(finished) and not self.counts["pages"]:
            raise PoetryError(f"{urljoin(self.crawl.gushiwen_url, '/robots.txt')} forbids the crawl: "
                              f"no list page may be fetched, so nothing was; {self._kept()}.")
        for message in self.disallowed:  # told once the crawl is known to have done something else
            self._say(message, always=True)
        return {**self.counts, "records": len(self.records), "finished": all(finished), "raw_file": str(self.raw_file)}

    def _crawl_list(self, dynasty: str) -> bool:
        """Crawl one dynasty's list from where it stopped; True once its last page is parsed."""
        first_url = list_url(self.crawl.gushiwen_url, dynasty)
        position = self.state["lists"].setdefault(first_url, {"dynasty": dynasty, "pages": 0, "next_url": first_url})
        while position["next_url"] and position["pages"] < self.crawl.max_pages:
            url = position["next_url"]
            html = self._page(url)
            if html is None:
                self.disallowed.append(f"robots.txt disallows {url}; the {dynasty} list stops here.")
                self.counts["disallowed"] += 1
                return False
            page = parse_list_page(html, url)
            if not page.poems and page.walled:
                self._cache_file(url).unlink(missing_ok=True)  # so the next run asks the site again
                raise PoetryError(f"gushiwen served a login or captcha page instead of poems at {url}; "
                                  f"{self._kept()}; try again later.")
            if not page.poems:  # the end of the list, or a layout this parser no longer reads
                self._say(f"No poems found at {url}; the {dynasty} list ends here.", always=True)
            self._keep(page.poems, dynasty)
            position.update(pages=position["pages"] + 1, next_url=self._follow(page, url))
            files.write_json(self.state_file, {**self.state, "source_ids": [r["source_id"] for r in self.records]})
            self.counts["pages"] += 1
            self._say(f"gushiwen {dynasty} page {position['pages']}: {len(page.poems)} poems, "
                      f"{len(self.records)} records in all")
        return position["next_url"] is None

    def _kept(self) -> str:
        """What an early stop leaves behind, in words."""
        if not self.records:
            return "no records were written"
        return f"the {len(self.records)} records crawled so far are kept in {self.raw_file}"

    def _keep(self, poems: list[dict], dynasty: str) -> None:
        new = [{**poem, "dynasty": poem["dynasty"] or dynasty} for poem in poems if poem["source_id"] not in self.seen]
        self.counts["skipped"] += len(poems) - len(new)
        if new:
            self.records.extend(new)
            self.seen.update(poem["source_id"] for poem in new)
            self.counts["new_records"] += len(new)
            files.write_jsonl(self.raw_file, self.records)  # whole file via temp + rename: never a torn line

    def _follow(self, page: ListPage, url: str) -> str | None:
        """The next page to crawl, or None at the end of the list (an empty page ends it too)."""
        if not page.poems or page.next_url in (None, url):
            return None
        if urlparse(page.next_url).netloc != urlparse(self.crawl.gushiwen_url).netloc:
            self._say(f"The next page {page.next_url} is on another host; the list stops here.", always=True)
            return None
        return page.next_url

    def _cache_file(self, url: str) -> Path:
        return self.cache_dir / http.cache_name(url, ".html")

    def _page(self, url: str) -> bytes | None:
        """The page's HTML, from the cache when present; None when robots.txt forbids fetching it."""
        cache_file = self._cache_file(url)
        if cache_file.exists():
            self.counts["from_cache"] += 1
            return cache_file.read_bytes()
        if not self._allowed(url):
            return None
        self._wait_turn()
        try:
            response = http.get(self.session, url, self.crawl)
        finally:
            self.last_request = time.monotonic()
        content_type = response.headers.get("Content-Type", "")
        if "html" not in content_type.lower():
            raise PoetryError(f"{url} answered {content_type or 'without a Content-Type'} instead of an HTML page; "
                              "check --base-url.")
        files.write_bytes(cache_file, response.content)
        self.counts["fetched"] += 1
        return response.content

    def _allowed(self, url: str) -> bool:
        if self.robots is None:
            self.session = http.make_session(self.crawl)
            self.robots = self._read_robots()
            agent = self.crawl.user_agent
            rate = self.robots.request_rate(agent)
            self.pause = max(self.crawl.delay, float(self.robots.crawl_delay(agent) or 0),
                             rate.seconds / rate.requests if rate and rate.requests else 0.0)
        return self.robots.can_fetch(self.crawl.user_agent, url)

    def _read_robots(self) -> RobotFileParser:
        url = urljoin(self.crawl.gushiwen_url, "/robots.txt")
        robots = RobotFileParser(url)
        self._wait_turn()
        try:  # not http.get: its answer to a 404 is an error, here it means "no rules"
            response = self.session.get(url, timeout=(self.crawl.connect_timeout, self.crawl.read_timeout))
        except requests.RequestException:
            raise PoetryError(f"Cannot read {url}, so the crawl cannot know what the site allows; "
                              "check --base-url or try again later.") from None
        finally:
            self.last_request = time.monotonic()
        if response.status_code >= 500:
            raise PoetryError(f"{url} answered HTTP {response.status_code}; try again later.")
        if response.status_code in (401, 403):  # as urllib.robotparser: a locked robots.txt forbids all
            robots.disallow_all = True
        elif response.status_code == 200:
            robots.parse(response.text.splitlines())
        else:
            robots.allow_all = True
        return robots

    def _wait_turn(self) -> None:
        """Sleep until `pause` plus jitter has passed since the last request ended."""
        if self.last_request is not None:
            due = self.last_request + self.pause + random.uniform(0, self.crawl.jitter)
            time.sleep(max(0.0, due - time.monotonic()))

    def _say(self, message: str, always: bool = False) -> None:
        if self.progress or always:
            print(message, file=sys.stderr)
