"""gushiwen list parsing and the polite, resumable crawl, against stored pages and a local server."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest
from local_server import LocalServer, Reply

from poetry_lstm import files, gushiwen
from poetry_lstm.config import load_config
from poetry_lstm.errors import InputError, PoetryError

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "gushiwen"
TANG, SONG = "唐代", "宋代"


def stored_page(name: str) -> bytes:
    if not (FIXTURES / name).exists():
        pytest.skip(f"stored page {FIXTURES / name} is absent")
    return (FIXTURES / name).read_bytes()


# --- pages written by the tests, in the site's two layouts ---------------------------------

def new_layout(poem_id: str, title: str, author: str, dynasty: str, lines: list[str]) -> str:
    """2020s: author link (with a portrait) first, then 〔dynasty〕; lines split by <br>."""
    return f"""<div class="sons"><div class="cont">
<div class="yizhu"><img alt="背诵" src="bei.png"/></div>
<div id="zhengwen{poem_id}">
<p><a href="https://so.gushiwen.cn/shiwenv_{poem_id}.aspx" target="_blank"><b>{title}</b></a></p>
<p class="source"><a href="/authorv.aspx?name=x"><img alt="{author}" src="a.jpg"/>
{author}</a><a href="/shiwens/default.aspx?cstr=x">〔{dynasty}〕</a></p>
<div class="contson" id="contson{poem_id}">
{"<br/>".join(lines)}
</div></div></div></div>"""


def old_layout(poem_id: str, title: str, author: str, dynasty: str, lines: list[str]) -> str:
    """2010s: dynasty link, a full-width colon, author link; stanzas in <p>, a hidden copy inside."""
    half = len(lines) // 2 or 1
    stanzas = "".join(f"<p>{'<br />'.join(part)}</p>" for part in (lines[:half], lines[half:]) if part)
    return f"""<div class="sons"><div class="cont">
<p><a style="font-size:18px;" href="/view_{poem_id}.aspx"><b>{title}</b></a></p>
<p class="source"><a href="/shiwen/default_4A1.aspx">{dynasty}</a><span>：</span>\
<a href="/authors/x.aspx">{author}</a></p>
<div class="contson" id="contson{poem_id}">{stanzas}\
<textarea style="display:none">{"".join(lines)}——{dynasty}·{author}</textarea></div>
</div></div>"""


MINGJU_BOX = '<div class="sons"><div class="cont"><a href="/mingju/juv_1.aspx">烟笼寒水月笼沙</a></div></div>'


def list_page(blocks: list[str], next_href: str | None = None, next_style: str = "amore") -> str:
    if next_href is None:
        nav = ""
    elif next_style == "amore":
        nav = f'<a id="amore" class="amore" href="{next_href}">下一页</a>'
    else:  # the paged /shiwens/ lists: a plain "下一页" link beside "上一页"
        nav = f'<div class="pagesright"><a href="/x">上一页</a><a class="amore" href="{next_href}">下一页</a></div>'
    return (f"<html><head><title>古诗文网</title></head><body><div class='left'>{''.join(blocks)}{MINGJU_BOX}{nav}"
            "</div></body></html>")


def path(dynasty: str, page: int) -> str:
    return gushiwen.list_url("", dynasty, page)


def logged(*paths: str) -> list[str]:
    """Paths as `LocalServer.paths()` logs them: percent-decoded."""
    return [unquote(p) for p in paths]


POEMS = {  # (id, title, author, lines) per page of the 唐代 list; page 3 repeats a poem of page 1
    1: [("a1", "静夜思", "李白", ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]),
        ("a2", "春晓", "孟浩然", ["春眠不觉晓，处处闻啼鸟。", "夜来风雨声，花落知多少。"])],
    2: [("b1", "登鹳雀楼", "王之涣", ["白日依山尽，黄河入海流。", "欲穷千里目，更上一层楼。"]),
        ("b2", "鹿柴", "王维", ["空山不见人，但闻人语响。", "返景入深林，复照青苔上。"])],
    3: [("c1", "相思", "王维", ["红豆生南国，春来发几枝。", "愿君多采撷，此物最相思。"]),
        ("a1", "静夜思", "李白", ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"])],
}
SONG_POEM = ("s1", "题西林壁", "苏轼", ["横看成岭侧成峰，远近高低各不同。", "不识庐山真面目，只缘身在此山中。"])
LOGIN_PAGE = ("<html><head><title>登录古诗文网</title></head><body><form action='./login.aspx'>"
              "<input type='password' name='pwd'/>验证码<input name='code'/></form></body></html>")


def tang_page(n: int) -> Reply:
    layout = new_layout if n != 2 else old_layout
    blocks = [layout(pid, title, author, TANG, lines) for pid, title, author, lines in POEMS[n]]
    return Reply(body=list_page(blocks, path(TANG, n + 1) if n < 3 else None, "amore" if n == 1 else "plain"))


def make_site(robots: str = "User-agent: *\nAllow: /\n") -> LocalServer:
    server = LocalServer({"/robots.txt": Reply(body=robots, content_type="text/plain")})
    for n in POEMS:
        server.route(path(TANG, n), tang_page(n))
    server.route(path(SONG, 1), Reply(body=list_page([new_layout(*SONG_POEM[:3], SONG, SONG_POEM[3])])))
    return server


@pytest.fixture
def site():
    with make_site() as server:
        yield server


def make_cfg(tmp_path: Path, base_url: str, folder: str = "crawler", **crawl):
    cfg = load_config().replace("paths", crawler_dir=str(tmp_path / folder))
    settings = dict(gushiwen_url=base_url, gushiwen_dynasties=[TANG], delay=0.0, jitter=0.0, retries=2,
                    backoff=0.01, connect_timeout=1.0, read_timeout=1.0)
    return cfg.replace("crawl", **{**settings, **crawl})


def raw_records(cfg) -> list[dict]:
    return files.read_jsonl(Path(cfg.paths.crawler_dir) / "raw" / "gushiwen.jsonl")


def state(cfg) -> dict:
    return files.read_json(Path(cfg.paths.crawler_dir) / "gushiwen.state.json")


def uninterrupted_records(tmp_path: Path) -> list[dict]:
    with make_site() as server:
        cfg = make_cfg(tmp_path, server.url, folder="reference")
        gushiwen.crawl_gushiwen(cfg, progress=False)
    return raw_records(cfg)


# --- parsing ----------------------------------------------------------------------------------

def test_stored_list_page_yields_its_ten_poems():
    page = gushiwen.parse_list_page(stored_page("list_default_page1_2024.html"), "https://www.gushiwen.cn/default.aspx")
    assert len(page.poems) == 10 and not page.walled
    assert page.next_url == "https://www.gushiwen.cn/default_2.aspx"
    first = page.poems[0]
    assert (first["title"], first["author"], first["dynasty"]) == ("敕借岐王九成宫避暑应教", "王维", "唐代")
    assert first["text"].split("\n") == ["帝子远辞丹凤阙，天书遥借翠微宫。", "隔窗云雾生衣上，卷幔山泉入镜中。",
                                         "林下水声喧语笑，岩间树色隐房栊。", "仙家未必能胜此，何事吹笙向碧空。"]
    assert first["source_id"] == "shiwenv_071b22958b9c.aspx" and first["source"] == "gushiwen"
    by_title = {poem["title"]: poem for poem in page.poems}
    pipa = by_title["琵琶行"]
    assert (pipa["author"], pipa["dynasty"]) == ("白居易", "唐代")
    # variant note kept inline
    assert "轻拢慢捻抹复挑，初为《霓裳》后《六幺》。(六幺 一作：绿腰)" in pipa["text"].split("\n")
    assert pipa["text"].split("\n")[1] == "浔阳江头夜送客，枫叶荻花秋瑟瑟。"  # <p> preface ends a line
    assert (by_title["东门之枌"]["author"], by_title["东门之枌"]["dynasty"]) == ("诗经·国风·陈风", "先秦")
    assert not any("——" in poem["text"] or "https" in poem["text"] for poem in page.poems)  # no textarea copies
    assert len({poem["source_id"] for poem in page.poems}) == 10


def test_stored_login_page_has_no_poems_and_is_a_wall():
    page = gushiwen.parse_list_page(stored_page("login_wall_2022.html"), "https://so.gushiwen.cn/user/login.aspx")
    assert page.poems == [] and page.walled


def test_both_layouts_give_title_author_dynasty_and_lines():
    html = list_page([
        new_layout("n1", "江雪", "柳宗元", "唐代", ["千山鸟飞绝，万径人踪灭。", "孤舟蓑笠翁，独钓寒江雪。"]),
        old_layout("o1", "春望", "杜甫", "唐代", ["国破山河在，城春草木深。",
                                                 "感时花溅泪，恨别鸟惊心。（恨别 一作：别恨）",
                                                 "烽火连三月，家书抵万金。", "白头搔更短，浑欲不胜簪。"]),
    ], next_href="/shiwens/default.aspx?page=2", next_style="plain")
    page = gushiwen.parse_list_page(html.encode("utf-8"), "http://127.0.0.1:1/shiwens/default.aspx?page=1")
    new, old = page.poems
    assert ((new["title"], new["author"], new["dynasty"], new["source_id"])
            == ("江雪", "柳宗元", "唐代", "shiwenv_n1.aspx"))
    assert new["text"] == "千山鸟飞绝，万径人踪灭。\n孤舟蓑笠翁，独钓寒江雪。"
    assert (old["title"], old["author"], old["dynasty"], old["source_id"]) == ("春望", "杜甫", "唐代", "view_o1.aspx")
    assert old["text"].split("\n") == ["国破山河在，城春草木深。", "感时花溅泪，恨别鸟惊心。（恨别 一作：别恨）",
                                       "烽火连三月，家书抵万金。", "白头搔更短，浑欲不胜簪。"]
    assert page.next_url == "http://127.0.0.1:1/shiwens/default.aspx?page=2" and not page.walled


def test_a_poem_without_a_detail_link_gets_a_content_hash_id():
    block = (new_layout("x", "无题", "佚名", "汉代", ["一行。"])
             .replace('href="https://so.gushiwen.cn/shiwenv_x.aspx"', ""))
    (poem,) = gushiwen.parse_list_page(list_page([block]), "http://h/").poems
    again = gushiwen.parse_list_page(list_page([block]), "http://other/").poems[0]
    assert poem["source_id"].startswith("sha1:") and poem["source_id"] == again["source_id"]


# --- crawling ---------------------------------------------------------------------------------

def test_crawl_follows_next_links_through_every_list(site, tmp_path):
    cfg = make_cfg(tmp_path, site.url, gushiwen_dynasties=[TANG, SONG])
    summary = gushiwen.crawl_gushiwen(cfg, progress=False)
    records = raw_records(cfg)
    assert [r["title"] for r in records] == ["静夜思", "春晓", "登鹳雀楼", "鹿柴", "相思", "题西林壁"]
    assert records[2] == {"source": "gushiwen", "source_id": "view_b1.aspx", "dynasty": TANG, "author": "王之涣",
                          "title": "登鹳雀楼", "text": "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。"}
    assert records[-1]["dynasty"] == SONG
    assert summary == {"pages": 4, "fetched": 4, "from_cache": 0, "new_records": 6, "skipped": 1, "disallowed": 0,
                       "records": 6, "finished": True,
                       "raw_file": str(Path(cfg.paths.crawler_dir) / "raw" / "gushiwen.jsonl")}
    assert site.paths() == logged("/robots.txt", path(TANG, 1), path(TANG, 2), path(TANG, 3), path(SONG, 1))
    assert {r.headers["User-Agent"] for r in site.requests} == {cfg.crawl.user_agent}
    lists = state(cfg)["lists"]
    assert [(v["dynasty"], v["pages"], v["next_url"]) for v in lists.values()] == [(TANG, 3, None), (SONG, 1, None)]
    assert state(cfg)["source_ids"] == [r["source_id"] for r in records]
    assert len(list((Path(cfg.paths.crawler_dir) / "cache" / "gushiwen").iterdir())) == 4


def test_rerun_fetches_nothing_and_a_lost_state_reparses_the_cache(site, tmp_path):
    cfg = make_cfg(tmp_path, site.url)
    gushiwen.crawl_gushiwen(cfg, progress=False)
    first, sent = raw_records(cfg), len(site.requests)
    assert gushiwen.crawl_gushiwen(cfg, progress=False)["pages"] == 0
    (Path(cfg.paths.crawler_dir) / "gushiwen.state.json").unlink()
    summary = gushiwen.crawl_gushiwen(cfg, progress=False)
    assert (summary["from_cache"], summary["fetched"], summary["new_records"]) == (3, 0, 0)
    assert len(site.requests) == sent and raw_records(cfg) == first


def test_max_pages_then_a_longer_crawl_equals_an_uninterrupted_one(site, tmp_path):
    cfg = make_cfg(tmp_path, site.url)
    assert gushiwen.crawl_gushiwen(cfg, max_pages=1, progress=False)["finished"] is False
    assert [r["source_id"] for r in raw_records(cfg)] == ["shiwenv_a1.aspx", "shiwenv_a2.aspx"]
    assert list(state(cfg)["lists"].values())[0]["next_url"] == site.url + path(TANG, 2)
    gushiwen.crawl_gushiwen(cfg, progress=False)
    assert raw_records(cfg) == uninterrupted_records(tmp_path)
    assert site.count(path(TANG, 1)) == 1  # resumed at page 2, not from the start


def test_crash_between_records_and_state_resumes_without_duplicates(site, tmp_path, monkeypatch):
    cfg = make_cfg(tmp_path, site.url)
    real_write_json, calls = files.write_json, []

    def crash_on_second_state(path, obj, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # page 2's records are on disk, its state is not
            raise KeyboardInterrupt
        return real_write_json(path, obj, *args, **kwargs)

    monkeypatch.setattr(files, "write_json", crash_on_second_state)
    with pytest.raises(KeyboardInterrupt):
        gushiwen.crawl_gushiwen(cfg, progress=False)
    monkeypatch.setattr(files, "write_json", real_write_json)
    assert len(raw_records(cfg)) == 4
    summary = gushiwen.crawl_gushiwen(cfg, progress=False)
    assert raw_records(cfg) == uninterrupted_records(tmp_path)
    assert (summary["from_cache"], summary["skipped"]) == (1, 3)  # page 2 re-read from cache; a1 repeats on page 3
    assert site.count(path(TANG, 2)) == 1


def test_a_server_failing_mid_crawl_stops_clearly_and_resumes(site, tmp_path):
    cfg = make_cfg(tmp_path, site.url, retries=1)
    site.route(path(TANG, 2), Reply(503, b"busy"))
    with pytest.raises(PoetryError, match="HTTP 503") as err:
        gushiwen.crawl_gushiwen(cfg, progress=False)
    assert "page=2" in str(err.value)
    assert len(raw_records(cfg)) == 2
    site.route(path(TANG, 2), tang_page(2))
    gushiwen.crawl_gushiwen(cfg, progress=False)
    assert raw_records(cfg) == uninterrupted_records(tmp_path)


def test_a_500_is_retried_then_succeeds(site, tmp_path):
    site.route(path(TANG, 1), Reply(500, b"oops"), tang_page(1))
    cfg = make_cfg(tmp_path, site.url)
    assert gushiwen.crawl_gushiwen(cfg, progress=False)["records"] == 5
    assert site.count(path(TANG, 1)) == 2


def test_a_read_timeout_is_retried_then_succeeds(site, tmp_path):
    slow = Reply(body=tang_page(1).body, sleep=0.6)
    site.route(path(TANG, 1), slow, tang_page(1))
    cfg = make_cfg(tmp_path, site.url, read_timeout=0.2)
    assert gushiwen.crawl_gushiwen(cfg, progress=False)["records"] == 5
    assert site.count(path(TANG, 1)) == 2


def test_a_page_that_never_answers_in_time_is_a_clear_error(site, tmp_path):
    site.route(path(TANG, 1), Reply(body=b"late", sleep=0.6))
    cfg = make_cfg(tmp_path, site.url, read_timeout=0.2, retries=1)
    with pytest.raises(PoetryError, match="page=1"):
        gushiwen.crawl_gushiwen(cfg, progress=False)
    assert site.count(path(TANG, 1)) == 2 and not (Path(cfg.paths.crawler_dir) / "raw" / "gushiwen.jsonl").exists()


def test_a_login_page_stops_the_crawl_and_keeps_earlier_records(site, tmp_path):
    site.route(path(TANG, 2), Reply(body=LOGIN_PAGE))
    cfg = make_cfg(tmp_path, site.url)
    with pytest.raises(PoetryError, match="login or captcha page") as err:
        gushiwen.crawl_gushiwen(cfg, progress=False)
    assert "page=2" in str(err.value) and "gushiwen.jsonl" in str(err.value)
    assert [r["title"] for r in raw_records(cfg)] == ["静夜思", "春晓"]
    assert list(state(cfg)["lists"].values())[0]["next_url"].endswith(path(TANG, 2))
    site.route(path(TANG, 2), tang_page(2))  # the wall was not cached: the next run asks again
    gushiwen.crawl_gushiwen(cfg, progress=False)
    assert raw_records(cfg) == uninterrupted_records(tmp_path)


def test_a_login_page_first_claims_no_file(site, tmp_path):
    site.route(path(TANG, 1), Reply(body=LOGIN_PAGE))
    cfg = make_cfg(tmp_path, site.url)
    with pytest.raises(PoetryError) as err:
        gushiwen.crawl_gushiwen(cfg, progress=False)
    assert str(err.value) == (f"gushiwen served a login or captcha page instead of poems at {site.url}{path(TANG, 1)}; "
                              "no records were written; try again later.")
    assert not (Path(cfg.paths.crawler_dir) / "raw" / "gushiwen.jsonl").exists()


def test_a_non_html_answer_is_refused_and_not_cached(site, tmp_path):
    site.route(path(TANG, 1), Reply(body=json.dumps({"poems": []}), content_type="application/json"))
    cfg = make_cfg(tmp_path, site.url)
    with pytest.raises(PoetryError, match="application/json instead of an HTML page") as err:
        gushiwen.crawl_gushiwen(cfg, progress=False)
    assert "page=1" in str(err.value)
    assert not (Path(cfg.paths.crawler_dir) / "cache" / "gushiwen").exists()


def test_robots_txt_forbidding_a_page_is_obeyed(tmp_path, capsys):
    robots = "User-agent: *\nDisallow: /shiwens/default.aspx?page=2\n"
    with make_site(robots) as server:
        cfg = make_cfg(tmp_path, server.url)
        summary = gushiwen.crawl_gushiwen(cfg, progress=False)
        assert server.paths() == logged("/robots.txt", path(TANG, 1))
    assert (summary["disallowed"], summary["finished"], summary["records"]) == (1, False, 2)
    assert "robots.txt disallows" in capsys.readouterr().err


def test_robots_txt_group_for_our_user_agent_is_obeyed_and_forbidding_all_says_so(tmp_path):
    robots = "User-agent: poetry-lstm\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    with make_site(robots) as server:
        with pytest.raises(PoetryError) as err:
            gushiwen.crawl_gushiwen(make_cfg(tmp_path, server.url), progress=False)
        assert server.paths() == ["/robots.txt"]
    assert str(err.value) == (f"{server.url}/robots.txt forbids the crawl: no list page may be fetched, "
                              "so nothing was; no records were written.")
    assert not (tmp_path / "crawler" / "raw").exists()


@pytest.mark.parametrize("status", [200, 403])
def test_robots_txt_forbidding_all_keeps_and_names_earlier_records(site, tmp_path, status):
    cfg = make_cfg(tmp_path, site.url, max_pages=1)
    gushiwen.crawl_gushiwen(cfg, progress=False)
    raw = Path(cfg.paths.crawler_dir) / "raw" / "gushiwen.jsonl"
    before = raw.read_bytes()
    site.route("/robots.txt", Reply(status, "User-agent: *\nDisallow: /\n", content_type="text/plain"))
    with pytest.raises(PoetryError,
                       match=rf"robots.txt forbids the crawl: .*; the 2 records crawled so far are kept in {raw}\.$"):
        gushiwen.crawl_gushiwen(make_cfg(tmp_path, site.url), progress=False)
    assert raw.read_bytes() == before


def test_a_crawl_removes_what_a_killed_crawl_left(site, tmp_path):
    crawler = tmp_path / "crawler"
    left = [crawler / "raw" / ".gushiwen.jsonl.a1b2.tmp", crawler / ".gushiwen.state.json.c3d4.tmp",
            crawler / "cache" / "gushiwen" / ".0123_page.html.e5f6.tmp"]
    kept = crawler / "raw" / ".chinese-poetry.jsonl.g7h8.tmp"  # the other source's: not this crawl's to remove
    for p in left + [kept]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("partial", encoding="utf-8")
    gushiwen.crawl_gushiwen(make_cfg(tmp_path, site.url), progress=False)
    assert not any(p.exists() for p in left) and kept.exists()
    assert len(raw_records(make_cfg(tmp_path, site.url))) == 5


def test_delay_between_requests_is_obeyed(site, tmp_path):
    cfg = make_cfg(tmp_path, site.url, max_pages=2)
    gushiwen.crawl_gushiwen(cfg, delay=0.2, progress=False)
    times = [r.time for r in site.requests]
    assert len(times) == 3 and all(later - earlier >= 0.19 for earlier, later in zip(times, times[1:]))


@pytest.mark.parametrize("url, local", [
    ("http://127.0.0.1:8000", True), ("http://127.5.0.1/", True), ("http://localhost:9/x", True),
    ("http://[::1]:80/", True),
    ("https://www.gushiwen.cn", False), ("http://10.0.0.1/", False), ("http://localhost.example.com/", False),
    ("", False),
])
def test_only_this_machine_counts_as_local(url, local):
    assert gushiwen.is_local(url) is local


def test_a_delay_under_a_second_is_refused_for_any_other_host(tmp_path):
    cfg = load_config().replace("paths", crawler_dir=str(tmp_path / "crawler"))
    for delay in (0.0, 0.5, 0.999):
        with pytest.raises(InputError) as err:
            gushiwen.crawl_gushiwen(cfg, delay=delay, progress=False)  # the real site: refused before any request
        assert str(err.value) == (f"A delay of {delay:g} s is too short for www.gushiwen.cn: "
                                  "under 1 s is allowed only against "
                                  "this machine (127.0.0.1, localhost); use --delay 1 or more.")
    assert not (tmp_path / "crawler").exists()


def test_robots_crawl_delay_outweighs_a_shorter_delay(tmp_path):
    with make_site("User-agent: *\nCrawl-delay: 1\n") as server:
        gushiwen.crawl_gushiwen(make_cfg(tmp_path, server.url, max_pages=1), progress=False)
        robots_time, page_time = (r.time for r in server.requests)
    assert page_time - robots_time >= 0.95
