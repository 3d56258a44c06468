"""The history pages over real HTTP, on SQLite and PostgreSQL: what each page
shows, the DOM contract the browser tests read (tests/test_browser.py),
hostile text, compression, caching, proxies and the access log."""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import logging
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import update

from feedd.logs import JsonFormatter
from feedd.store.schema import articles
from feedd.web import app as web_app
from feedd.web.http import accepts_gzip, gzip_etag, origin, parse_trusted_proxies
from feedd.web.pages import HTML_CSP, STYLE, html_lang, recut_note
from tests.support import AppFactory
from tests.web_site import (
    BAD_DUMP,
    CATEGORY,
    EDIT_V2,
    Site,
    link,
    rows,
    serve_site,
)


@pytest.fixture
def site(make_app: AppFactory) -> Iterator[Site]:
    with serve_site(make_app) as served:
        yield served


def title_of(site: Site, text: str) -> str:
    from feedd.feeds.title import make_title

    return make_title(text, site.app.config.feed.title_max_chars)


# --- / ------------------------------------------------------------------------------


def test_index_lists_the_newest_articles_with_counts_and_marks(site: Site) -> None:
    page = site.page("/")
    assert '<html lang="zh-Hans">' in page
    listed = rows(page)
    newest = site.app.store.articles(limit=web_app.PAGE_SIZE)
    assert [uid for uid, _ in listed] == [a.uid for a in newest]
    for (uid, cells), article in zip(listed, newest, strict=True):
        assert f'<a class="title" href="articles/{uid}"><bdi>' in cells
        shown = re.search(r'<a class="title"[^>]*><bdi>(.*?)</bdi>', cells, re.S)
        assert shown and html.unescape(shown.group(1)) == title_of(site, article.text)
        assert f'<td class="revisions">{article.revision_count}</td>' in cells
        assert ('<span class="updated">' in cells) == (article.revision_count > 1)
        assert cells.count("<time datetime=") == 2  # first and last seen
    assert '<form role="search" method="get">' in page
    assert '<input type="search" name="q"' in page
    assert f'<option value="{CATEGORY}">' in page


def test_index_pages_through_every_article_once_and_back(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_app, "PAGE_SIZE", 10)
    everything = [a.uid for a in site.app.store.articles()]
    seen: list[str] = []
    pages = []
    href: str | None = ""
    while href is not None:
        page = site.page("/" + href)
        pages.append(href)
        seen += [uid for uid, _ in rows(page)]
        assert (link(page, "prev") is None) == (href == "")
        href = link(page, "next")
        assert len(pages) < 20
    assert seen == everything
    assert len(pages) == -(-len(everything) // 10)
    # Back from the second page: the first page again.
    second = site.page("/" + pages[1])
    back = link(second, "prev")
    assert back is not None
    assert [u for u, _ in rows(site.page("/" + back))] == everything[:10]


def test_index_filters_by_update_date_category_and_text(site: Site) -> None:
    updated = [u for u, _ in rows(site.page("/?updated=1"))]
    assert updated == [site.edited.uid]
    assert rows(site.page("/?since=2999-01-01")) == []
    since = site.edited.first_seen.date().isoformat()
    recent = {u for u, _ in rows(site.page(f"/?since={since}"))}
    assert {site.edited.uid, site.hostile.uid} <= recent
    assert all(
        a.first_seen.date().isoformat() >= since
        for a in site.app.store.articles()
        if a.uid in recent
    )
    assert [u for u, _ in rows(site.page("/?category=" + quote(CATEGORY)))] == [site.edited.uid]
    # Three characters or more (the trigram index), two (a scan), and with a filter.
    for q in ("多跳推理", "多跳", "检索 增强"):
        assert [u for u, _ in rows(site.page("/?q=" + quote(q)))] == [site.edited.uid], q
    assert [u for u, _ in rows(site.page("/?updated=1&q=" + quote("多跳")))] == [site.edited.uid]
    assert rows(site.page("/?q=" + quote("没有这样的文字内容"))) == []
    # The form shows the filters back.
    page = site.page("/?updated=1&q=" + quote("<多跳>"))
    assert 'value="&lt;多跳&gt;"' in page and "checked" in page


@pytest.mark.parametrize(
    ("query", "needle"),
    [("since=yesterday", "since"), ("cursor=zz", "cursor"), ("q=" + "x" * 300, "q")],
)
def test_bad_parameters_give_a_400_page_that_says_which(
    site: Site, query: str, needle: str
) -> None:
    status, headers, body = site.get("/?" + query)
    assert status == 400
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    page = body.decode()
    assert f'<p class="error">{needle}' in page
    assert '<a href="status">status</a>' in page


# --- /articles/<uid> ---------------------------------------------------------------


def test_article_page_shows_title_diff_sightings_and_neighbours(site: Site) -> None:
    article = site.edited
    page = site.page(f"/articles/{article.uid}")
    heading = re.search(r"<h1><bdi>(.*?)</bdi></h1>", page)
    assert heading and html.unescape(heading.group(1)) == title_of(site, EDIT_V2)
    assert "Article " not in page
    revisions = page[page.index('<section id="revisions">') :]
    revisions = revisions[: revisions.index("</section>")]
    assert revisions.count('<li id="r') == 2
    assert "<ins>与多跳推理</ins>" in revisions
    table = page[page.index('<table id="sightings">') :]
    table = table[: table.index("</table>")]
    assert table.count('<tr class="sighting') == len(article.sightings)
    assert "900_aaaaaaaaaaaaaaaa.txt" in table and "901_bbbbbbbbbbbbbbbb.txt" in table
    assert f"<bdi>{CATEGORY}</bdi>" in table
    assert 'href="../dumps/900_aaaaaaaaaaaaaaaa.txt"' in page
    # The neighbours are the rows above and below it on /.
    listing = [a.uid for a in site.app.store.articles()]
    at = listing.index(article.uid)
    newer = listing[at - 1] if at else None
    older = listing[at + 1] if at + 1 < len(listing) else None
    assert link(page, "prev") == (f"../articles/{newer}" if newer else None)
    assert link(page, "next") == (f"../articles/{older}" if older else None)


def test_a_recut_is_shown_as_a_recut_not_a_diff(site: Site) -> None:
    article = site.hostile
    [recut] = [s for s in article.sightings if s.kind == "repeat"]
    assert recut.shown is not None
    from feedd.core.text import normalize

    note = recut_note(recut.shown, len(normalize(article.text)))
    assert note.startswith(f"re-cut: showed {recut.shown} of ")
    page = site.page(f"/articles/{article.uid}")
    assert f'<span class="recut">{note}</span>' in page
    revisions = page[page.index('<section id="revisions">') :].split("</section>")[0]
    assert "<ins>" not in revisions and "<del>" not in revisions


def test_hostile_text_is_escaped_and_isolated_everywhere(site: Site) -> None:
    uid = site.hostile.uid
    for path in ("/", f"/articles/{uid}", f"/articles/{uid[:8]}"):
        page = site.page(path)
        assert "<script" not in page
        assert "&lt;script&gt;" in page
        # Every scraped text sits in a <bdi> or a dir=auto element.
        for match in re.finditer("\u202e", page):
            before = page[: match.start()]
            assert before.rfind("<bdi>") > before.rfind("</bdi>") or (
                before.rfind('dir="auto"') > before.rfind("</p>")
            ), path
    title = re.search(r"<title>(.*?)</title>", site.page(f"/articles/{uid}"), re.S)
    assert title and "\u202e" not in title.group(1)


def test_article_references_are_uids_or_prefixes_never_numbers(site: Site) -> None:
    uid = site.edited.uid
    assert site.get(f"/articles/{uid.upper()}")[0] == 200
    assert site.get(f"/articles/{uid[:8]}")[0] == 200
    for ref in (str(site.edited.id), uid[:3], "zzzz", "ffffffff-ffff-ffff"):
        status, headers, body = site.get(f"/articles/{ref}")
        assert status == 404, ref
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert b'<a href="../status">status</a>' in body


def test_an_ambiguous_prefix_is_a_404_listing_the_matches(site: Site) -> None:
    first, second = site.edited, site.hostile
    shared = first.uid[:8]
    with site.app.store.engine.begin() as conn:
        conn.execute(
            update(articles).where(articles.c.id == second.id).values(uid=shared + second.uid[8:])
        )
    status, _, body = site.get(f"/articles/{shared}")
    assert status == 404
    page = body.decode()
    assert "2 articles" in page
    assert f'href="../articles/{first.uid}"' in page
    assert f'href="../articles/{shared + second.uid[8:]}"' in page
    assert site.get(f"/articles/{first.uid}")[0] == 200


# --- /dumps, /status, every page ---------------------------------------------------


def test_dumps_page_lists_ingested_dumps_and_the_quarantine(site: Site) -> None:
    page = site.page("/dumps")
    ingested = site.app.store.dumps(status="ingested")
    table = page[page.index('<table id="dumps">') :].split("</table>")[0]
    assert table.count('<tr class="dump">') == len(ingested)
    last = ingested[0]
    assert f"<bdi>{last.name}</bdi>" in table
    assert f'<td class="num">{last.new}</td><td class="num">{last.repeat}</td>' in table
    quarantine = page[page.index('<table id="rejected">') :].split("</table>")[0]
    [(record, _fixed)] = site.app.store.rejected_dumps()[1]
    assert BAD_DUMP in quarantine and html.escape(record.error or "") in quarantine
    detail = site.page(f"/dumps/{BAD_DUMP}")
    assert "<h2>rejected</h2>" in detail and html.escape(record.error or "") in detail
    assert '<a href="../status">status</a>' in detail
    assert site.get("/dumps/no-such-dump.txt")[0] == 404


def test_status_page_shows_what_feedd_status_shows(site: Site) -> None:
    report = site.app.status_report()
    page = site.page("/status")
    totals = report["totals"]
    assert f'<tr><th>articles</th><td class="num">{totals["articles"]}</td></tr>' in page
    assert f"{totals['kinds']['new']} new, {totals['kinds']['repeat']} repeat" in page
    assert report["last_ingest"]["name"] in page
    assert BAD_DUMP in page  # an open rejection
    for name in report["feeds"]:
        assert f'<a href="{name}">{name}</a>' in page


def test_every_page_links_to_status_relatively(site: Site) -> None:
    uid = site.edited.uid
    for path, href in [
        ("/", "status"),
        ("/?q=" + quote("多跳"), "status"),
        (f"/articles/{uid}", "../status"),
        ("/dumps", "status"),
        (f"/dumps/{BAD_DUMP}", "../status"),
        ("/status", "status"),
        ("/activity", "status"),
    ]:
        page = site.page(path)
        assert f'<a href="{href}">status</a>' in page, path
        # No link leaves the page's folder by an absolute path.
        assert not re.search(r'(?:href|action|src)="/', page), path
        assert "<script" not in page and "<img" not in page, path


def test_activity_page_draws_the_three_charts(site: Site) -> None:
    page = site.page("/activity")
    for chart_id in ("per-day-90", "per-day-all", "per-hour-48"):
        assert f'class="chart" id="{chart_id}"' in page
    svg = page[page.index('id="per-day-all"') :].split("</svg>")[0]
    new = sum(int(n) for n in re.findall(r'class="bar new"[^>]*data-count="(\d+)"', svg))
    assert new == site.app.store.totals().articles
    index = site.page("/")
    assert 'class="chart" id="per-day-90"' in index


# --- HTTP ---------------------------------------------------------------------------


def test_pages_and_feeds_are_gzipped_when_accepted_with_an_etag_per_encoding(
    site: Site,
) -> None:
    for path in ("/", "/feed.atom", f"/articles/{site.edited.uid}", "/api/articles"):
        status, plain_headers, plain = site.get(path, headers={"Accept-Encoding": "identity"})
        assert status == 200 and "Content-Encoding" not in plain_headers, path
        status, headers, packed = site.get(path, headers={"Accept-Encoding": "gzip, br"})
        assert status == 200 and headers["Content-Encoding"] == "gzip", path
        assert gzip.decompress(packed) == plain and len(packed) < len(plain), path
        assert headers["Vary"] == plain_headers["Vary"] == "Accept-Encoding"
        assert headers["Content-Length"] == str(len(packed))
        etag = plain_headers["ETag"]
        assert headers["ETag"] == gzip_etag(etag) != etag, path
        # Each validator revalidates its own representation only.
        gz = {"Accept-Encoding": "gzip"}
        assert site.get(path, headers={**gz, "If-None-Match": headers["ETag"]})[0] == 304
        assert site.get(path, headers={**gz, "If-None-Match": etag})[0] == 200
        assert site.get(path, headers={"If-None-Match": etag})[0] == 304
        head = site.get(path, headers=gz, method="HEAD")
        assert head[2] == b"" and head[1]["Content-Length"] == str(len(packed))
    # The seed feed shrinks to about a third.
    feed_plain = site.get("/feed.atom")[2]
    feed_packed = site.get("/feed.atom", headers={"Accept-Encoding": "gzip"})[2]
    assert len(feed_packed) < len(feed_plain) / 2


def test_accept_encoding_is_read_as_rfc_9110_says() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("deflate, gzip;q=0.5") and accepts_gzip("*")
    assert accepts_gzip("x-gzip") and accepts_gzip("GZIP ; q=1")
    assert not accepts_gzip(None) and not accepts_gzip("") and not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("*;q=0")
    assert not accepts_gzip("*, gzip;q=0")


def test_feed_cache_control_follows_the_scan_interval(make_app: AppFactory) -> None:
    with serve_site(make_app, daemon__scan_interval=7.5) as site:
        status, headers, _ = site.get("/feed.atom")
        assert status == 200 and headers["Cache-Control"] == "max-age=8"


def test_the_csp_allows_no_script_and_the_inline_style_by_its_hash(site: Site) -> None:
    status, headers, body = site.get("/")
    assert headers["Content-Security-Policy"] == HTML_CSP
    assert "script-src" not in HTML_CSP and "unsafe" not in HTML_CSP
    assert "form-action 'self'" in HTML_CSP  # the search form
    style = re.search(r"<style>(.*?)</style>", body.decode(), re.S)
    assert style and style.group(1) == STYLE
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in HTML_CSP


def test_proxy_headers_count_only_from_trusted_proxies(make_app: AppFactory) -> None:
    forwarded = {
        "Host": "internal:8080",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "news.example.org",
        "X-Forwarded-Prefix": "/feeds/",
    }
    with serve_site(make_app, server__trusted_proxies="10.0.0.1, 127.0.0.0/8") as site:
        page = site.page("/", headers=forwarded)
        assert 'href="https://news.example.org/feeds/feed.atom"' in page
        assert '<a class="title" href="articles/' in page  # links stay relative
        status, headers, _ = site.get("/api/articles?limit=1", headers=forwarded)
        assert headers["Link"].startswith("<https://news.example.org/feeds/api/articles?")
        # Malformed values are ignored.
        bad = {**forwarded, "X-Forwarded-Prefix": '/x"><script>', "X-Forwarded-Proto": "js"}
        page = site.page("/", headers=bad)
        assert 'href="http://news.example.org/feed.atom"' in page
    with serve_site(make_app) as site:
        page = site.page("/", headers=forwarded)
        assert 'href="http://internal:8080/feed.atom"' in page
        assert "news.example.org" not in page


def test_origin_and_trusted_proxies_parsing() -> None:
    trusted = parse_trusted_proxies("127.0.0.1, ::1, 10.1.0.0/16")
    environ = {
        "REMOTE_ADDR": "10.1.2.3",
        "HTTP_HOST": "a:1",
        "HTTP_X_FORWARDED_PREFIX": "/p/q",
        "HTTP_X_FORWARDED_PROTO": "https, http",
    }
    where = origin(environ, trusted)
    assert where.url("/feed.atom") == "https://a:1/p/q/feed.atom"
    assert origin({**environ, "REMOTE_ADDR": "10.2.0.1"}, trusted).url("/") == "http://a:1/"
    assert (
        origin({"HTTP_HOST": "bad host\r\n", "SERVER_NAME": "s", "SERVER_PORT": "81"}, ()).host
        == "s:81"
    )
    from feedd.errors import ConfigError

    with pytest.raises(ConfigError, match="server.trusted_proxies"):
        parse_trusted_proxies("127.0.0.1, proxy.example")


def test_html_lang_picks_simplified_chinese_for_zh() -> None:
    assert html_lang("zh") == "zh-Hans"
    assert html_lang("zh_TW") == "zh-TW"
    assert html_lang("en") == "en"
    assert html_lang('"><script>') == "zh-Hans"


def test_every_request_is_one_access_log_line_off_by_config(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_site(make_app) as site, caplog.at_level(logging.INFO, logger="feedd.access"):
        site.get("/articles/" + site.edited.uid + "?x=1")
        site.get("/nope%0d%0aforged")
    records = [r for r in caplog.records if r.name == "feedd.access"]
    assert len(records) == 2
    first = records[0]
    fields = {k: getattr(first, k) for k in ("method", "path", "status", "bytes", "ms")}
    assert fields["method"] == "GET" and fields["status"] == 200
    assert fields["path"] == f"/articles/{site.edited.uid}" and first.query == "x=1"
    assert fields["bytes"] > 1000 and fields["ms"] >= 0
    line = json.loads(JsonFormatter().format(first))
    assert {"method", "path", "status", "bytes", "ms"} <= set(line)
    assert line["logger"] == "feedd.access" and line["event"] == "http_request"
    assert "\n" not in records[1].getMessage() and records[1].status == 404
    caplog.clear()
    with serve_site(make_app, server__access_log=False) as site:
        with caplog.at_level(logging.INFO, logger="feedd.access"):
            site.get("/")
    assert not [r for r in caplog.records if r.name == "feedd.access"]


def test_a_database_outage_is_503_on_pages_and_the_feeds_still_serve(site: Site) -> None:
    site.app.store.engine.dispose()
    broken = site.app.store.engine.url.set(
        database=str(site.app.store.engine.url.database) + "-gone/x"
    )
    from feedd.store.engine import make_engine

    site.app.store.engine = make_engine(broken.render_as_string(hide_password=False))
    for path in ("/", f"/articles/{site.edited.uid}", "/dumps", "/api/articles"):
        status, headers, _ = site.get(path)
        assert status == 503 and headers["Retry-After"] == "30", path
    assert site.get("/feed.atom")[0] == 200


def test_the_wsgi_app_needs_no_app_for_status(site: Site) -> None:
    from feedd.web import make_app

    wsgi = make_app(site.app.store, site.app.output_dir)
    captured: dict[str, str] = {}
    body = b"".join(
        wsgi(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/status", "QUERY_STRING": ""},
            lambda status, headers: captured.setdefault("status", status),
        )
    )
    assert captured["status"].startswith("200")
    assert json.loads(body)["totals"] == site.app.status_report()["totals"]


def test_every_answer_has_a_content_length_and_keeps_the_connection(site: Site) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        for path in ("/", "/nope", "/articles/zzzz", "/?since=bad", "/api/articles?limit=0", "/"):
            conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
            response = conn.getresponse()
            body = response.read()
            assert response.getheader("Content-Length") == str(len(body)), path
            assert not response.will_close, path
    finally:
        conn.close()


def test_a_304_carries_the_page_policy_the_browser_will_keep(site: Site) -> None:
    for path, csp in (("/", HTML_CSP), ("/feed.atom", web_app.OTHER_CSP)):
        _, headers, _ = site.get(path)
        status, again, body = site.get(path, headers={"If-None-Match": headers["ETag"]})
        assert (status, body) == (304, b"")
        assert again["Content-Security-Policy"] == headers["Content-Security-Policy"] == csp
        assert again["Vary"] == "Accept-Encoding" and again["ETag"] == headers["ETag"]
