"""The HTTP server: a real waitress on an ephemeral loopback port, real requests."""

from __future__ import annotations

import hashlib
import html
import http.client
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedd.app import App, build
from feedd.config import load_config
from feedd.core.diff import char_diff
from feedd.errors import StorageError
from feedd.model import Article
from feedd.store.engine import make_engine
from feedd.store.sql import SqlStore
from feedd.web import make_app as make_wsgi_app
from feedd.web.http import etag_matches, not_modified
from feedd.web.pages import HTML_CSP, render_diff
from feedd.web.serve import BackgroundServer, split_listen, start_background

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
if not SEEDS.is_dir():
    SEEDS = ROOT / "shared" / "seeds"
BENCH = ROOT / "bench" / "http_load.py"

RSS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>t</title>'
    b"<link>http://127.0.0.1/</link><description>d</description>"
    b"<item><title>\xe6\x96\xb0</title><guid>1</guid></item></channel></rss>\n"
)
ATOM = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
    b"<id>urn:uuid:0</id><title>t</title><updated>2026-01-01T00:00:00Z</updated></feed>\n"
)
SECRET = b"TOP-SECRET-OUTSIDE-THE-OUTPUT-FOLDER"

SCRIPT_V1 = (
    "<script>alert('x')</script> 研究人员发布了一个新的扩散模型，"
    "它在图像生成任务上超过了此前的方法，并开源了全部代码与权重。"
)
SCRIPT_V2 = (
    "<script>alert('x')</script> 研究人员发布了一个新的扩散模型，"
    "它在图像与视频生成任务上超过了此前的方法，并开源了全部代码与权重 <b>。"
)


def dump(*items: str) -> bytes:
    return ("INCOMING TRANSMISSION\n\nLATEST UPDATES\n" + "\n".join(items) + "\n").encode()


def write_atomic(path: Path, data: bytes, mtime: float | None = None) -> None:
    """As the feed writer does: a temporary file, then os.replace."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)


def request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, Message, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.msg, response.read()
    finally:
        conn.close()


def raw_request(port: int, data: bytes) -> bytes:
    """Send bytes as they are (no client-side normalisation); read until closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The seed dumps, plus an article holding a <script> in two revisions."""
    folder = tmp_path_factory.mktemp("history")
    config = load_config(
        env={},
        overrides={
            "database.url": f"sqlite:///{folder / 't.db'}",
            "feed.output_dir": str(folder / "public"),
        },
    )
    app = build(config)
    app.ingester.ingest_paths(sorted(SEEDS.glob("*.txt")))
    seen = datetime(2026, 1, 1, tzinfo=UTC)
    first = app.ingester.ingest_bytes("900_aaaaaaaaaaaaaaaa.txt", dump(SCRIPT_V1), seen)
    second = app.ingester.ingest_bytes(
        "901_bbbbbbbbbbbbbbbb.txt", dump(SCRIPT_V2), seen + timedelta(minutes=5)
    )
    assert (first.new, second.update) == (1, 1)
    yield app
    app.close()


@pytest.fixture
def script_article(history: App) -> Article:
    found = [a for a in history.store.articles() if "<script>" in a.text]
    assert len(found) == 1
    article = history.store.article(found[0].id)
    assert article is not None and article.revision_count == 2
    return article


@pytest.fixture
def public(tmp_path: Path) -> Path:
    folder = tmp_path / "public"
    folder.mkdir()
    (tmp_path / "secret.txt").write_bytes(SECRET)
    return folder


Serve = Callable[..., BackgroundServer]


@pytest.fixture
def serve(history: App, public: Path) -> Iterator[Serve]:
    handles: list[BackgroundServer] = []

    def start(
        store: SqlStore | None = None,
        pending: Callable[[], int] | None = None,
        threads: int = 4,
    ) -> BackgroundServer:
        app = make_wsgi_app(
            store or history.store, public, base_url="http://feeds.example", pending=pending
        )
        handle = start_background(app, "127.0.0.1", 0, threads=threads)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.close()


@pytest.fixture
def port(serve: Serve) -> int:
    return serve().port


# --- feeds ----------------------------------------------------------------------


def test_feeds_are_served_with_their_content_types(public: Path, port: int) -> None:
    files = {"feed.rss": RSS, "feed.atom": ATOM, "updates.rss": RSS, "updates.atom": ATOM}
    for name, data in files.items():
        write_atomic(public / name, data)
    for name, data in files.items():
        status, headers, body = request(port, f"/{name}")
        kind = "rss" if name.endswith(".rss") else "atom"
        assert status == 200
        assert headers["Content-Type"] == f"application/{kind}+xml; charset=utf-8"
        assert headers["Content-Length"] == str(len(data))
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert body == data


def test_a_feed_that_was_not_written_is_404(public: Path, port: int) -> None:
    write_atomic(public / "feed.rss", RSS)
    for path in ("/updates.rss", "/updates.atom", "/feed.atom"):
        assert request(port, path)[0] == 404


def test_etag_and_last_modified_describe_the_file(public: Path, port: int) -> None:
    mtime = 1_767_225_600.75  # 2026-01-01 00:00:00.75 UTC
    write_atomic(public / "feed.rss", RSS, mtime)
    status, headers, _ = request(port, "/feed.rss")
    assert status == 200
    assert headers["ETag"] == f'"sha256-{hashlib.sha256(RSS).hexdigest()[:32]}"'
    assert headers["Last-Modified"] == "Thu, 01 Jan 2026 00:00:00 GMT"
    assert headers["Cache-Control"] == "max-age=60"


def test_if_none_match_gives_304(public: Path, port: int) -> None:
    write_atomic(public / "feed.atom", ATOM)
    etag = request(port, "/feed.atom")[1]["ETag"]
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*", f'W/"x" ,  W/{etag}'):
        status, headers, body = request(port, "/feed.atom", headers={"If-None-Match": header})
        assert (status, body) == (304, b""), header
        assert headers["ETag"] == etag
        assert headers["Cache-Control"] == "max-age=60"
    for header in ('"sha256-0"', 'W/"sha256-0"', ""):
        assert request(port, "/feed.atom", headers={"If-None-Match": header})[0] == 200


def test_if_modified_since_gives_304(public: Path, port: int) -> None:
    mtime = time.time() - 3600
    write_atomic(public / "feed.rss", RSS, mtime)
    last_modified = request(port, "/feed.rss")[1]["Last-Modified"]

    def status_for(headers: dict[str, str]) -> int:
        return request(port, "/feed.rss", headers=headers)[0]

    assert status_for({"If-Modified-Since": last_modified}) == 304
    assert status_for({"If-Modified-Since": formatdate(mtime + 60, usegmt=True)}) == 304
    assert status_for({"If-Modified-Since": formatdate(mtime - 60, usegmt=True)}) == 200
    # Ignored: not a date, or a date in the future.
    assert status_for({"If-Modified-Since": "yesterday"}) == 200
    assert status_for({"If-Modified-Since": formatdate(time.time() + 86400, usegmt=True)}) == 200
    # If-None-Match, when present, decides alone.
    both = {"If-Modified-Since": last_modified, "If-None-Match": '"sha256-stale"'}
    assert status_for(both) == 200


def test_a_changed_file_gets_a_new_etag(public: Path, port: int) -> None:
    mtime = time.time() - 3600
    write_atomic(public / "feed.rss", RSS, mtime)
    old_etag = request(port, "/feed.rss")[1]["ETag"]
    # Same size and same mtime: only the inode tells the cache the file changed.
    changed = RSS.replace(b"<title>t</title>", b"<title>u</title>")
    assert len(changed) == len(RSS)
    write_atomic(public / "feed.rss", changed, mtime)
    status, headers, body = request(port, "/feed.rss", headers={"If-None-Match": old_etag})
    assert (status, body) == (200, changed)
    assert headers["ETag"] != old_etag
    assert request(port, "/feed.rss", headers={"If-None-Match": headers["ETag"]})[0] == 304


def test_head_has_the_headers_of_get_without_the_body(public: Path, port: int) -> None:
    write_atomic(public / "feed.atom", ATOM)
    _, get_headers, _ = request(port, "/feed.atom")
    status, headers, body = request(port, "/feed.atom", method="HEAD")
    assert (status, body) == (200, b"")
    for name in ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Cache-Control"):
        assert headers[name] == get_headers[name]
    assert headers["Content-Length"] == str(len(ATOM))
    etag = headers["ETag"]
    assert request(port, "/feed.atom", method="HEAD", headers={"If-None-Match": etag})[0] == 304
    assert request(port, "/healthz", method="HEAD")[2] == b""


def test_head_keeps_the_connection_usable(public: Path, port: int) -> None:
    write_atomic(public / "feed.rss", RSS)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for method in ("HEAD", "GET", "HEAD", "GET"):
            conn.request(method, "/feed.rss")
            response = conn.getresponse()
            assert response.read() == (RSS if method == "GET" else b"")
    finally:
        conn.close()


# --- routing --------------------------------------------------------------------


def test_unknown_paths_are_404(public: Path, port: int) -> None:
    write_atomic(public / "feed.rss", RSS)
    (public / "other.xml").write_bytes(RSS)
    (public / "sub").mkdir()
    for path in (
        "/nope",
        "/feed.rss/",
        "/FEED.RSS",
        "/feed.rss.tmp",
        "/other.xml",
        "/sub",
        "/sub/",
        "/public/feed.rss",
        "/articles/",
        "/articles/<x>",
        "/healthz/",
        "/api/",
        "/api/articles/",
        "/dumps/",
        "/static/style.css",
    ):
        status, headers, body = request(port, path)
        assert status == 404, path
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert RSS not in body
    # An article reference that finds nothing is a page saying why.
    for path in ("/articles/99999999", "/articles/ffffffff-ffff", "/articles/1"):
        status, headers, body = request(port, path)
        assert status == 404, path
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert RSS not in body


def test_other_methods_are_405(public: Path, port: int) -> None:
    write_atomic(public / "feed.rss", RSS)
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for path in ("/feed.rss", "/nope", "/"):
            status, headers, _ = request(port, path, method=method)
            assert status == 405, (method, path)
            assert headers["Allow"] == "GET, HEAD"


def test_a_large_request_body_is_refused_without_reading_it(port: int) -> None:
    status, _, _ = request(port, "/feed.rss", method="POST", body=b"x")
    assert status == 405
    head = b"POST /feed.rss HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
    assert raw_request(port, head).startswith(b"HTTP/1.1 413 ")


TRAVERSALS = [
    b"GET /../../etc/passwd HTTP/1.1",
    b"GET /../secret.txt HTTP/1.1",
    b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1",
    b"GET /%2e%2e/secret.txt HTTP/1.1",
    b"GET /%2E%2E%2Fsecret.txt HTTP/1.1",
    b"GET /..%2fsecret.txt HTTP/1.1",
    b"GET /.%2e/secret.txt HTTP/1.1",
    b"GET /%252e%252e/secret.txt HTTP/1.1",
    b"GET //etc/passwd HTTP/1.1",
    b"GET ///etc/passwd HTTP/1.1",
    b"GET /feed.rss/../../secret.txt HTTP/1.1",
    b"GET /articles/../../secret.txt HTTP/1.1",
    b"GET /articles/..%2f..%2fsecret.txt HTTP/1.1",
    b"GET /..\\..\\secret.txt HTTP/1.1",
    b"GET ../secret.txt HTTP/1.1",
    b"GET secret.txt HTTP/1.1",
    b"GET http://evil/etc/passwd HTTP/1.1",
    b"GET http://evil/../secret.txt HTTP/1.1",
    b"GET file:///etc/passwd HTTP/1.1",
    b"GET /%00/etc/passwd HTTP/1.1",
    b"GET /secret.txt%00.rss HTTP/1.1",
    b"GET /updates.atom HTTP/1.1",  # a symlink to the secret, planted in the folder
    b"GET * HTTP/1.1",
]


@pytest.mark.parametrize("line", TRAVERSALS, ids=[t.decode() for t in TRAVERSALS])
def test_no_request_reaches_a_file_outside_the_routes(public: Path, port: int, line: bytes) -> None:
    write_atomic(public / "feed.rss", RSS)
    (public / "updates.atom").symlink_to(public.parent / "secret.txt")
    response = raw_request(port, line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    status = response.split(b"\r\n", 1)[0]
    assert re.fullmatch(rb"HTTP/1\.1 (400|404) .*", status), response[:200]
    assert SECRET not in response
    assert b"root:" not in response


def test_an_absolute_form_target_names_only_its_path(public: Path, port: int) -> None:
    # RFC 9112 makes servers accept absolute-form targets; the host part is
    # ignored and the path goes through the same fixed routes.
    write_atomic(public / "feed.rss", RSS)
    response = raw_request(port, b"GET http://evil/feed.rss HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(RSS)


def test_no_directory_listing(public: Path, port: int) -> None:
    write_atomic(public / "feed.rss", RSS)
    (public / "private-notes.txt").write_bytes(b"x")
    status, _, body = request(port, "/")
    assert status == 200
    assert b"private-notes" not in body
    assert b"feed.rss" in body


def test_index_links_the_feeds_that_exist(public: Path, port: int) -> None:
    write_atomic(public / "feed.atom", ATOM)
    status, headers, body = request(port, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == HTML_CSP
    assert b'type="application/atom+xml"' in body
    # Built from the request, not from feed.base_url (the feeds' own address).
    assert f'href="http://127.0.0.1:{port}/feed.atom"'.encode() in body
    assert b'href="feed.atom"' in body
    assert b"feed.rss" not in body


# --- article pages --------------------------------------------------------------


def test_article_page_escapes_the_text_and_shows_the_diff(
    port: int, script_article: Article
) -> None:
    status, headers, body = request(port, f"/articles/{script_article.uid}")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    page = body.decode("utf-8")
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<ins>与视频</ins>" in page
    assert "<del>。</del>" in page or "<ins> &lt;b&gt;</ins>" in page
    assert page.index("Revision 1") < page.index("Revision 2 (current)")
    assert "901_bbbbbbbbbbbbbbbb.txt" in page and "900_aaaaaaaaaaaaaaaa.txt" in page
    assert 'datetime="2026-01-01T00:00:00+00:00"' in page  # first seen
    assert 'datetime="2026-01-01T00:05:00+00:00"' in page  # last seen


def test_article_by_uid_and_uid_prefix_never_by_number(port: int, script_article: Article) -> None:
    by_uid = request(port, f"/articles/{script_article.uid}")[2]
    assert request(port, f"/articles/{script_article.uid[:13].upper()}")[2] == by_uid
    # Digits are uid characters, never an article number (as in the CLI).
    status, _, body = request(port, f"/articles/{script_article.id}")
    assert status == 404 and body != by_uid


def test_every_seed_article_renders(history: App, port: int) -> None:
    for article in history.store.articles():
        status, _, body = request(port, f"/articles/{article.uid}")
        assert status == 200
        assert body.decode("utf-8").count('<li id="r') == article.revision_count


# --- health and errors ----------------------------------------------------------


def test_healthz_reports_the_database(history: App, serve: Serve) -> None:
    port = serve(pending=lambda: 3).port
    status, headers, body = request(port, "/healthz")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    report = json.loads(body)
    assert list(report) == ["ok", "database", "last_ingest", "pending_dumps", "articles"]
    assert report["ok"] is True and report["database"] == "ok"
    assert report["pending_dumps"] == 3
    assert report["articles"] == history.store.totals().articles > 0
    last = history.store.dumps(status="ingested", limit=1)[0].ingested_at
    assert datetime.fromisoformat(report["last_ingest"]) == last


def test_healthz_without_a_pending_counter(port: int) -> None:
    assert json.loads(request(port, "/healthz")[2])["pending_dumps"] is None


def test_an_unreachable_database_is_503_and_feeds_still_serve(
    tmp_path: Path, public: Path, serve: Serve
) -> None:
    store = SqlStore(make_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}"))
    write_atomic(public / "feed.rss", RSS)
    port = serve(store=store, pending=lambda: 0).port
    status, _, body = request(port, "/healthz")
    report = json.loads(body)
    assert status == 503
    assert report["ok"] is False and report["database"] != "ok" and report["database"]
    assert report["articles"] is None and report["pending_dumps"] == 0
    status, headers, body = request(port, "/articles/abcd")
    assert status == 503 and headers["Retry-After"] == "30"
    assert b"database" in body and len(body) < 200
    assert request(port, "/feed.rss")[0] == 200
    store.close()


class ExplodingStore(SqlStore):
    def articles_by_uid(
        self, ref: str, *, limit: int = 5, full: bool = True
    ) -> tuple[int, list[Article]]:
        raise RuntimeError("a bug in the store")


class LockedStore(SqlStore):
    def articles_by_uid(
        self, ref: str, *, limit: int = 5, full: bool = True
    ) -> tuple[int, list[Article]]:
        raise StorageError("database is locked")


def test_a_bug_is_500_logged_and_the_server_goes_on(
    history: App, public: Path, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    write_atomic(public / "feed.rss", RSS)
    port = serve(store=ExplodingStore(history.store.engine)).port
    with caplog.at_level(logging.ERROR, logger="feedd.web"):
        status, _, body = request(port, "/articles/abcd")
    assert status == 500
    assert b"a bug in the store" not in body
    record = next(r for r in caplog.records if r.name == "feedd.web" and r.levelno >= logging.ERROR)
    assert record.exc_info is not None and "a bug in the store" in caplog.text
    assert request(port, "/feed.rss")[0] == 200


def test_a_storage_error_is_503(history: App, serve: Serve) -> None:
    port = serve(store=LockedStore(history.store.engine)).port
    assert request(port, "/articles/abcd")[0] == 503


@pytest.mark.parametrize("error", [OSError("watch folder gone"), StorageError()])
def test_a_failing_pending_counter_does_not_fail_the_health_check(
    serve: Serve, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> int:
        raise error

    port = serve(pending=broken).port
    with caplog.at_level(logging.ERROR, logger="feedd.web"):
        status, _, body = request(port, "/healthz")
    assert status == 200 and json.loads(body)["pending_dumps"] is None
    # A bug in the counter leaves a traceback; a database outage does not.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert bool(errors) == isinstance(error, OSError)


# --- connections ----------------------------------------------------------------


def test_idle_connections_do_not_block_requests(public: Path, serve: Serve) -> None:
    write_atomic(public / "feed.rss", RSS)
    port = serve(threads=2).port
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    half = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
    try:
        for sock in half:  # slow clients: half a request line, then nothing
            sock.sendall(b"GET /feed.rss HTT")
        for _ in range(10):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/feed.rss")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, RSS)
            conn.close()
    finally:
        for sock in idle + half:
            sock.close()


def test_close_stops_listening(public: Path, serve: Serve) -> None:
    handle = serve()
    assert request(handle.port, "/healthz")[0] == 200
    handle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", handle.port), timeout=2)
    handle.close()  # twice is harmless


# --- pure helpers ---------------------------------------------------------------


def test_etag_matching_is_weak() -> None:
    assert etag_matches('"a"', '"a"')
    assert etag_matches('W/"a"', '"a"')
    assert etag_matches('"b", W/"a"', '"a"')
    assert etag_matches(" * ", '"a"')
    assert not etag_matches('"ab"', '"a"')
    assert not etag_matches("a", '"a"')
    assert not etag_matches("", '"a"')


def test_not_modified_rules() -> None:
    now = 2_000_000_000.0
    lm = 1_900_000_000
    at_lm = formatdate(lm, usegmt=True)
    assert not_modified('"a"', lm, None, at_lm, now)
    assert not not_modified('"a"', lm, None, formatdate(lm - 1, usegmt=True), now)
    assert not not_modified('"a"', lm, None, formatdate(now + 10, usegmt=True), now)
    assert not not_modified('"a"', lm, '"b"', at_lm, now)
    assert not_modified('"a"', lm, '"a"', formatdate(lm - 1, usegmt=True), now)
    assert not not_modified('"a"', lm, None, None, now)
    # asctime() form, which carries no zone, is GMT.
    asctime = parsedate_to_datetime(at_lm).strftime("%a %b %d %H:%M:%S %Y")
    assert not_modified('"a"', lm, None, asctime, now)


def _sides(ops: Sequence[tuple[str, str]]) -> tuple[str, str]:
    old = "".join(text for op, text in ops if op != "insert")
    new = "".join(text for op, text in ops if op != "delete")
    return old, new


@given(st.text(max_size=60), st.text(max_size=60), st.integers(min_value=0, max_value=20))
def test_char_diff_rebuilds_both_texts(old: str, new: str, limit: int) -> None:
    ops = char_diff(old, new, limit)
    assert _sides(ops) == (old, new)
    assert all(text for _, text in ops)
    assert all(a[0] != b[0] for a, b in zip(ops, ops[1:], strict=False))


def test_char_diff_of_long_texts_keeps_the_common_parts() -> None:
    old = "ab" * 50_000
    new = "ab" * 25_000 + "X" * 5000 + "ab" * 25_000
    ops = char_diff(old, new)
    assert _sides(ops) == (old, new)
    assert ops == [("equal", "ab" * 25_000), ("insert", "X" * 5000), ("equal", "ab" * 25_000)]


def test_render_diff_escapes_every_part() -> None:
    old, new = "<a>1</a> & more", "<a>2</a><script> & more"
    out = render_diff(old, new)
    assert out.startswith("&lt;a&gt;<del>1</del><ins>2</ins>&lt;/a")
    bare = re.sub(r"</?(ins|del)>", "", out)
    assert "<" not in bare and ">" not in bare
    # What is left once the insertions (or the deletions) go is the old (new) text.
    assert html.unescape(re.sub(r"<ins>.*?</ins>|</?del>", "", out)) == old
    assert html.unescape(re.sub(r"<del>.*?</del>|</?ins>", "", out)) == new


def test_split_listen() -> None:
    assert split_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert split_listen("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError):
        split_listen("8080")


# --- the load test --------------------------------------------------------------


def run_bench(*args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_http_load_smoke() -> None:
    report = run_bench("--requests", "100", "--connections", "10")
    assert report["total"] == 100 and report["errors"] == 0
    assert report["status_200"] == report["sent_plain"] == 50
    assert report["status_304"] == report["sent_conditional"] == 50
    assert report["split_ok"] is True


def test_http_load_full_size() -> None:
    # 2,000 requests over 50 connections take about 1 s here: no slow mark.
    report = run_bench("--requests", "2000", "--connections", "50")
    assert report["total"] == 2000 and report["errors"] == 0
    assert report["split_ok"] is True


def test_http_load_refuses_a_remote_target() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--url", "http://192.0.2.1/feed.rss", "--requests", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "only loopback" in result.stderr
