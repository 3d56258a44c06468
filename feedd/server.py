"""Serve the feeds and the article history over HTTP, with waitress.

Only a fixed table of route names maps to files: a request path is never joined
onto a folder, so no spelling of ``..`` (raw, percent-encoded, doubled slashes,
absolute-form targets) can reach anything but the four feed files.

Feed files are written elsewhere, atomically (``os.replace``) and only when
they change, so a file's mtime is the time of its last real change: it is the
``Last-Modified``, and the content hash is a strong ``ETag``. Both are cached
per (mtime_ns, size, inode) so that a request does not rehash the file.

waitress runs the WSGI callable on a small thread pool behind an asynchronous
channel layer: idle or slow connections wait in the event loop, not in a worker
thread. A read deadline closes those that do not send a whole request in time,
however slowly they trickle, and a per-client cap keeps one host from taking
every connection slot (see "Connections" below). waitress 3.0.2 closes the
connection after every 304 (a 304 has no Content-Length, and without one it
falls back to closing): a keep-alive client reconnects, which
feed readers polling every few minutes do anyway.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import logging
import os
import re
import socket
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, cast
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import BaseWSGIServer, MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.trigger import trigger as Trigger

from feedd.core.diff import char_diff
from feedd.errors import ConfigError, StorageError
from feedd.model import Article, Revision, Sighting
from feedd.store.sql import SqlStore

log = logging.getLogger("feedd.server")

RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"

# request path -> (file name in the output folder, Content-Type). The only
# paths that ever touch the filesystem.
FEED_ROUTES: dict[str, tuple[str, str]] = {
    "/feed.rss": ("feed.rss", RSS_TYPE),
    "/feed.atom": ("feed.atom", ATOM_TYPE),
    "/updates.rss": ("updates.rss", RSS_TYPE),
    "/updates.atom": ("updates.atom", ATOM_TYPE),
}
FEED_MAX_AGE = 60  # seconds; feeds change at most once per scan

# A numeric id (bounded so SQLite's 64-bit integers cannot overflow) or a uid
# or uid prefix (the store wants at least 4 characters).
_ARTICLE_PATH = re.compile(r"/articles/([0-9]{1,18}|[0-9A-Fa-f-]{4,36})")

# Character diffs are quadratic in the worst case (8 s for 10,000 characters of
# a two-letter alphabet). The common prefix and suffix are cut first, which is
# linear; only a changed middle up to this size is diffed character by character.
# An article that repeats in every dump collects a sighting per scan; the page
# shows the latest ones and says how many it left out.
SIGHTINGS_SHOWN = 500

# Nothing we serve reads a request body; waitress would buffer up to 1 GB of
# one before the application could answer 405.
MAX_REQUEST_BODY = 64 * 1024
MAX_REQUEST_HEADERS = 64 * 1024

ALLOWED_METHODS = ("GET", "HEAD")

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em}"
    "ins{background:#d4f8d4;text-decoration:none}"
    "del{background:#f8d4d4}"
    ".text{white-space:pre-wrap;overflow-wrap:anywhere}"
    "table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left;"
    "border-bottom:1px solid #ddd}"
    ".current{font-weight:bold}"
)
# The stylesheet is allowed by its hash: no inline script or style can run,
# even if some text escaped escaping.
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
HTML_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
# Feeds, JSON and text are not pages, but a browser may still render an XML
# feed (XHTML inside Atom can carry script): sandbox everything else too.
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"

Headers = list[tuple[str, str]]


@dataclass
class Response:
    status: str
    headers: Headers = field(default_factory=list)
    body: bytes = b""


# ---------------------------------------------------------------------------
# Pure helpers: conditional requests, dates, diffs, HTML


def make_etag(body: bytes) -> str:
    return f'"sha256-{hashlib.sha256(body).hexdigest()[:32]}"'


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison, as RFC 9110 prescribes for If-None-Match."""
    if any(part.strip() == "*" for part in if_none_match.split(",")):
        return True
    ours = _opaque(etag)
    return any(_opaque(tag) == ours for tag in _ENTITY_TAG.findall(if_none_match))


def parse_http_date(value: str) -> float | None:
    """Seconds since the epoch, or None for anything that is not an HTTP-date."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # asctime() dates carry no zone; HTTP dates are GMT
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def not_modified(
    etag: str,
    last_modified: int,
    if_none_match: str | None,
    if_modified_since: str | None,
    now: float,
) -> bool:
    """RFC 9110 section 13.2.2 for GET/HEAD: If-None-Match wins over If-Modified-Since."""
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    if not if_modified_since:
        return False
    since = parse_http_date(if_modified_since)
    # A date in the future is invalid and must be ignored: it would pin the
    # client to its copy across the next change.
    if since is None or since > now:
        return False
    return since >= last_modified


def render_diff(old: str, new: str) -> str:
    """HTML: unchanged text as is, deleted text in <del>, inserted in <ins>; all escaped."""
    tags = {"delete": "del", "insert": "ins"}
    parts = []
    for op, text in char_diff(old, new):
        escaped = html.escape(text)
        parts.append(escaped if op == "equal" else f"<{tags[op]}>{escaped}</{tags[op]}>")
    return "".join(parts)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return _utc(value).isoformat() if value is not None else None


def _time(value: datetime | None) -> str:
    if value is None:
        return ""
    utc = _utc(value)
    return (
        f'<time datetime="{html.escape(utc.isoformat())}">'
        f"{html.escape(utc.strftime('%Y-%m-%d %H:%M:%S'))} UTC</time>"
    )


def _page(title: str, body: str) -> bytes:
    return (
        '<!doctype html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n{body}</body>\n</html>\n"
    ).encode()


def render_index(title: str, base_url: str, feeds: list[tuple[str, str]]) -> bytes:
    """The index page; ``feeds`` holds (route, Content-Type) of the files that exist."""
    e = html.escape
    links = "".join(
        f'<link rel="alternate" type="{e(ctype.split(";")[0])}" title="{e(route[1:])}" '
        f'href="{e(base_url + route)}">\n'
        for route, ctype in feeds
    )
    items = "".join(
        f'<li><a href="{e(base_url + route)}">{e(route[1:])}</a></li>\n' for route, _ in feeds
    )
    listing = f"<ul>\n{items}</ul>\n" if feeds else "<p>No feed has been written yet.</p>\n"
    body = f'<h1>{e(title)}</h1>\n{listing}<p><a href="{e(base_url)}/healthz">health</a></p>\n'
    page = _page(title, body).decode("utf-8")
    # Feed readers find the feeds through <link rel="alternate"> in the head.
    return page.replace("</title>\n", f"</title>\n{links}", 1).encode("utf-8")


def _revision_html(rev: Revision, previous: Revision | None, current: int) -> str:
    e = html.escape
    label = f"Revision {rev.number}"
    if rev.number == current:
        label += " (current)"
    text = e(rev.text) if previous is None else render_diff(previous.text, rev.text)
    note = "" if previous is None else f" · changes from revision {previous.number}"
    heading = '<h3 class="current">' if rev.number == current else "<h3>"
    return (
        f'<li id="r{rev.number}">{heading}'
        f"{e(label)}</h3>\n<p>first seen {_time(rev.first_seen)} · simhash "
        f"<code>{e(rev.simhash)}</code>{e(note)}</p>\n"
        f'<p class="text">{text}</p></li>\n'
    )


def _sighting_row(s: Sighting) -> str:
    e = html.escape
    cells = [
        _time(s.seen_at),
        e(s.dump),
        e(str(s.line)),
        e(str(s.revision)),
        e(s.kind),
        e(s.category or ""),
        e(s.date or ""),
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>\n"


def render_article(article: Article, *, title: str, base_url: str) -> bytes:
    """The article page: metadata, every revision with a diff to the one before, sightings."""
    e = html.escape
    revisions = sorted(article.revisions, key=lambda r: r.number)
    rev_items = "".join(
        _revision_html(rev, revisions[i - 1] if i else None, article.current_revision)
        for i, rev in enumerate(revisions)
    )
    shown = article.sightings[-SIGHTINGS_SHOWN:]
    hidden = len(article.sightings) - len(shown)
    omitted = (
        f"<p>{hidden} earlier sightings are not shown; "
        f"<code>feedd history {e(article.uid)} --json</code> lists them all.</p>\n"
        if hidden
        else ""
    )
    rows = "".join(_sighting_row(s) for s in shown)
    body = (
        f'<p><a href="{e(base_url)}/">{e(title)}</a></p>\n'
        f"<h1>Article {article.id}</h1>\n<dl>\n"
        f"<dt>uid</dt><dd><code>{e(article.uid)}</code></dd>\n"
        f"<dt>first seen</dt><dd>{_time(article.first_seen)}</dd>\n"
        f"<dt>last seen</dt><dd>{_time(article.last_seen)}</dd>\n"
        f"<dt>last changed</dt><dd>{_time(article.updated_at)}</dd>\n"
        f"<dt>revisions</dt><dd>{article.revision_count} "
        f"(current: {article.current_revision})</dd>\n</dl>\n"
        f"<h2>Revisions</h2>\n<ol>\n{rev_items}</ol>\n"
        f"<h2>Sightings ({len(article.sightings)})</h2>\n{omitted}"
        "<table>\n<thead><tr><th>seen</th><th>dump</th><th>line</th><th>revision</th>"
        "<th>kind</th><th>category</th><th>date</th></tr></thead>\n"
        f"<tbody>\n{rows}</tbody>\n</table>\n"
    )
    return _page(f"Article {article.id} · {title}", body)


def _one_line(message: str, limit: int = 200) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "error"
    return first[:limit]


# ---------------------------------------------------------------------------
# Feed files


@dataclass(frozen=True)
class FeedFile:
    key: tuple[int, int, int]  # (mtime_ns, size, inode)
    body: bytes
    etag: str
    last_modified: int  # whole seconds: HTTP dates have no finer resolution


class FeedCache:
    """The bytes and ETag of each feed file, read again only when the file changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Path, FeedFile] = {}

    def get(self, path: Path) -> FeedFile | None:
        """The file as it is now, or None when there is no regular file there."""
        try:
            st = os.stat(path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        with self._lock:
            cached = self._entries.get(path)
        if cached is not None and cached.key == _key(st):
            return cached
        entry = _read_feed(path)
        with self._lock:
            if entry is None:
                self._entries.pop(path, None)
            else:
                self._entries[path] = entry
        return entry


def _regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read_feed(path: Path) -> FeedFile | None:
    # O_NOFOLLOW: a symlink planted in the output folder must not publish the
    # file it points to. O_NONBLOCK: a FIFO must not hang a worker thread.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot open %s: %s", path, exc)
        return None
    with os.fdopen(fd, "rb") as f:
        # The descriptor pins one inode: if the writer replaces the file now,
        # these bytes and this stat still describe the same version.
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        body = f.read()
    return FeedFile(_key(st), body, make_etag(body), st.st_mtime_ns // 1_000_000_000)


# ---------------------------------------------------------------------------
# The WSGI application


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FeedApp:
    """The WSGI callable. Build it with :func:`make_app`."""

    def __init__(
        self,
        store: SqlStore,
        output_dir: Path,
        *,
        base_url: str,
        pending: Callable[[], int] | None = None,
        title: str = "feedd",
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.output_dir = Path(output_dir)
        self.base_url = base_url.rstrip("/")
        self.pending = pending
        self.title = title
        self.now = now
        self.feeds = FeedCache()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", ""))
        try:
            if method not in ALLOWED_METHODS:
                response = _text("405 Method Not Allowed", "method not allowed\n")
                response.headers.append(("Allow", ", ".join(ALLOWED_METHODS)))
            else:
                response = self.route(path, environ)
        except StorageError as exc:
            log.warning("database unavailable while serving %r: %s", path, exc)
            response = _text(
                "503 Service Unavailable", "the database is unavailable; try again shortly\n"
            )
            response.headers.append(("Retry-After", "30"))
        except Exception:
            # %r: a decoded path may hold CR/LF and must not forge log lines.
            log.exception("error serving %s %r", method, path)
            response = _text("500 Internal Server Error", "internal server error\n")
        headers = response.headers
        if not any(name == "Content-Security-Policy" for name, _ in headers):
            headers.append(("Content-Security-Policy", OTHER_CSP))
        headers.append(("X-Content-Type-Options", "nosniff"))
        start_response(response.status, headers)
        # HEAD keeps the Content-Length of the GET it mirrors, without the body.
        if method == "HEAD" or response.status.startswith("304"):
            return []
        return [response.body]

    def route(self, path: str, environ: WSGIEnvironment) -> Response:
        feed = FEED_ROUTES.get(path)
        if feed is not None:
            return self.feed(feed[0], feed[1], environ)
        match = _ARTICLE_PATH.fullmatch(path)
        if match:
            return self.article(match.group(1))
        if path == "/healthz":
            return self.health()
        if path == "/":
            return self.index()
        return _text("404 Not Found", "not found\n")

    def feed(self, name: str, content_type: str, environ: WSGIEnvironment) -> Response:
        entry = self.feeds.get(self.output_dir / name)
        if entry is None:
            return _text("404 Not Found", "not found\n")
        headers: Headers = [
            ("ETag", entry.etag),
            ("Last-Modified", formatdate(entry.last_modified, usegmt=True)),
            ("Cache-Control", f"max-age={FEED_MAX_AGE}"),
        ]
        if not_modified(
            entry.etag,
            entry.last_modified,
            environ.get("HTTP_IF_NONE_MATCH"),
            environ.get("HTTP_IF_MODIFIED_SINCE"),
            self.now().timestamp(),
        ):
            return Response("304 Not Modified", headers)
        headers += [("Content-Type", content_type), ("Content-Length", str(len(entry.body)))]
        return Response("200 OK", headers, entry.body)

    def article(self, ref: str) -> Response:
        # uids are lowercase; SQLite's LIKE ignores case but PostgreSQL's does not.
        found = self.store.article(ref.lower())
        if found is None:
            return _text("404 Not Found", "no such article\n")
        return _html(render_article(found, title=self.title, base_url=self.base_url))

    def index(self) -> Response:
        present = [
            (route, ctype)
            for route, (name, ctype) in FEED_ROUTES.items()
            if _regular_file(self.output_dir / name)
        ]
        return _html(render_index(self.title, self.base_url, present))

    def health(self) -> Response:
        report: dict[str, Any] = {
            "ok": False,
            "database": "ok",
            "last_ingest": None,
            "pending_dumps": self._pending(),
            "articles": None,
        }
        status = "200 OK"
        try:
            self.store.check()
            articles = self.store.totals().articles
            last = self.store.dumps(status="ingested", limit=1)
        except StorageError as exc:
            report["database"] = _one_line(exc.message)
            status = "503 Service Unavailable"
        else:
            report.update(
                ok=True,
                articles=articles,
                last_ingest=_iso(last[0].ingested_at) if last else None,
            )
        body = json.dumps(report, ensure_ascii=False).encode("utf-8")
        return Response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
            body,
        )

    def _pending(self) -> int | None:
        if self.pending is None:
            return None
        try:
            return int(self.pending())
        except StorageError:
            # The counter asks the database; "database" in the report says why.
            return None
        except Exception:
            # A broken counter must not turn a health check into a 500.
            log.exception("pending-dump counter failed")
            return None


def _text(status: str, message: str) -> Response:
    body = message.encode("utf-8")
    return Response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        body,
    )


def _html(body: bytes) -> Response:
    return Response(
        "200 OK",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("Content-Security-Policy", HTML_CSP),
            ("Referrer-Policy", "no-referrer"),
        ],
        body,
    )


def make_app(
    store: SqlStore,
    output_dir: Path,
    *,
    base_url: str,
    pending: Callable[[], int] | None = None,
    title: str = "feedd",
    now: Callable[[], datetime] = _utcnow,
) -> WSGIApplication:
    """The WSGI application serving ``output_dir``'s feeds and ``store``'s articles.

    ``pending`` reports how many dumps wait to be ingested, for /healthz;
    ``base_url`` is the public address the HTML pages link to.
    """
    return FeedApp(store, output_dir, base_url=base_url, pending=pending, title=title, now=now)


# ---------------------------------------------------------------------------
# Connections: framing, deadlines and limits
#
# waitress alone is open to two cheap attacks (issue 13). Its channel_timeout
# is an idle timeout that restarts on every byte, so a client trickling one
# header byte every few seconds holds its connection forever; and once
# connection_limit sockets are open it stops accepting, so a few hundred such
# sockets lock every other client out. Three things answer it here:
# - a read deadline: a whole request must arrive within ``read_deadline``
#   seconds of the connection opening, or of the previous response being sent,
#   however the bytes trickle in;
# - a connection limit far above waitress's 100 (poll() instead of select(),
#   which fails past descriptor 1023, and an open-file limit raised to fit);
# - a cap per client address, so one host cannot take all the slots.
# When many hosts fill every slot anyway, the house empties within a deadline,
# and the clients waiting in the kernel's accept queue, first come first
# served, get in before the attackers' reconnections.

DEFAULT_READ_DEADLINE = 10
DEFAULT_CONNECTION_LIMIT = 1000
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 100
# How often the deadline is checked: waitress's own 30 s would let a deadline
# of a few seconds overrun by up to 30.
CLEANUP_INTERVAL = 1
# Descriptors the process needs besides its HTTP connections: the listening
# sockets and trigger pipes, the database, dumps being read, log files.
FD_HEADROOM = 128
# Connections accepted per turn of the event loop.
ACCEPT_BATCH = 64
# At most one warning this often about refused connections, so that an attack
# cannot flood the log.
CAP_WARNING_INTERVAL = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    read_deadline: float = DEFAULT_READ_DEADLINE
    connection_limit: int = DEFAULT_CONNECTION_LIMIT
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT


class _StrictRequest(HTTPRequestParser):
    """waitress's parser, refusing the framings that RFC 9112 section 6.1 calls faulty."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        # A proxy in front that frames by Content-Length sees one request where
        # waitress, framing by Transfer-Encoding, sees two: request smuggling.
        # RFC 9112 lets a server reject the message and requires it to close the
        # connection; waitress's 400 does both, and drops whatever was
        # pipelined behind it.
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            self._faulty("both Content-Length and Transfer-Encoding are present")
        # waitress ignores Transfer-Encoding in HTTP/1.0 and frames by
        # Content-Length; RFC 9112 says such a message's framing is faulty.
        if self.version == "1.0" and "TRANSFER_ENCODING" in self.headers:
            self._faulty("Transfer-Encoding in an HTTP/1.0 request")

    def _faulty(self, reason: str) -> NoReturn:
        # Without this, waitress answers an HTTP/1.0 keep-alive request with
        # both "Connection: close" and "Connection: Keep-Alive".
        cast(dict[str, str], self.headers)["CONNECTION"] = "close"  # a dict; stubs say Mapping
        self.connection_close = True
        raise ParsingError(reason)


class _Channel(HTTPChannel):
    """One connection; knows since when it has been waiting for a complete request."""

    parser_class = _StrictRequest

    def __init__(
        self,
        server: BaseWSGIServer,
        sock: socket.socket,
        addr: Any,
        adj: Adjustments,
        map: dict[int, Any] | None = None,
    ) -> None:
        # Set before the base class hands the channel to the event loop.
        # None while a request is being served: the deadline does not run then.
        self.waiting_since: float | None = time.time()
        self.client: str | None = None
        super().__init__(server, sock, addr, adj, map)

    def service(self) -> None:
        # On a worker thread. The loop thread may also restart the clock
        # between requests (see maintenance); either write is a current time.
        self.waiting_since = None
        try:
            super().service()
        finally:
            self.waiting_since = time.time()

    def del_channel(self, map: Mapping[int, socket.socket] | None = None) -> None:
        super().del_channel(map)
        if isinstance(self.server, _Server):
            self.server.forget(self)


class _Server(TcpWSGIServer):
    """waitress's TCP server with the read deadline and the per-client cap."""

    channel_class = _Channel

    def __init__(
        self,
        application: WSGIApplication,
        map: dict[int, Any],
        *,
        dispatcher: ThreadedTaskDispatcher,
        adj: Adjustments,
        sockinfo: Any,
        limits: ConnectionLimits,
    ) -> None:
        self.limits = limits
        # Open connections per client address; only the loop thread touches it.
        self.clients: Counter[str] = Counter()
        self.refused = 0
        self._next_warning = 0.0
        super().__init__(application, map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo)

    def handle_accept(self) -> None:
        # waitress accepts one connection per turn of its loop, and each turn
        # walks every open connection: a burst of 700 took 1.5 s to drain
        # while a normal client queued behind it. Take a batch per turn.
        socket_map = cast(Any, self)._map  # wasyncore's; missing from the type stubs
        for _ in range(ACCEPT_BATCH):
            if len(socket_map) >= self.adj.connection_limit:
                return
            try:
                accepted = self.accept()
            except OSError:  # a peer that reset first, or EMFILE: try again next turn
                return
            if accepted is None:  # the queue is empty
                return
            self._admit(*accepted, socket_map)

    def _admit(self, conn: socket.socket, addr: Any, socket_map: dict[int, Any]) -> None:
        # waitress's handle_accept, with the cap checked before a channel exists.
        client = str(addr[0])
        if self.clients[client] >= self.limits.max_connections_per_client:
            conn.close()
            self._refuse(client)
            return
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        channel = _Channel(self, conn, self.fix_addr(addr), self.adj, map=socket_map)
        channel.client = client
        self.clients[client] += 1

    def forget(self, channel: _Channel) -> None:
        client, channel.client = channel.client, None
        if client is None:  # not counted, or forgotten already
            return
        self.clients[client] -= 1
        if self.clients[client] <= 0:
            del self.clients[client]

    def _refuse(self, client: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now >= self._next_warning:
            self._next_warning = now + CAP_WARNING_INTERVAL
            log.warning(
                "refusing connections from %s: it holds %d, the most "
                "server.max_connections_per_client allows (%d refused so far)",
                client,
                self.clients[client],
                self.refused,
                extra={"event": "http_client_capped", "client": client},
            )

    def maintenance(self, now: float) -> None:
        # channel_timeout still closes connections stalled while a response is
        # being sent to them.
        super().maintenance(now)  # type: ignore[arg-type]  # the stubs say int
        cutoff = now - self.limits.read_deadline
        for channel in list(cast(dict[int, Any], self.active_channels).values()):
            if not isinstance(channel, _Channel) or channel.requests:
                continue
            since = channel.waiting_since
            if since is None:
                continue
            if channel.total_outbufs_len:
                # A response is still going out: the next request's clock
                # starts once it is sent.
                channel.waiting_since = now
            elif since < cutoff:
                channel.will_close = True


def _fit_fd_limit(connection_limit: int) -> int:
    """Raise the soft open-file limit so ``connection_limit`` sockets fit; the limit that fits.

    Past the open-file limit accept() fails with EMFILE on every turn of the
    loop while the listening socket stays readable, so the server would spin
    without serving: better a lower limit and a warning.
    """
    try:
        import resource
    except ImportError:  # not POSIX; nothing to raise
        return connection_limit
    needed = connection_limit + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return connection_limit
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    if soft >= needed:
        log.info("raised the open-file limit to %d for server.connection_limit", soft)
        return connection_limit
    fitted = max(1, soft - FD_HEADROOM)
    log.warning(
        "server.connection_limit %d does not fit the open-file limit %d; serving at most %d "
        "connections (raise the limit with ulimit -n or LimitNOFILE=)",
        connection_limit,
        soft,
        fitted,
    )
    return fitted


# ---------------------------------------------------------------------------
# Running it


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; ``"[::1]:80"`` -> ``("::1", 80)``."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"listen address must look like 127.0.0.1:8080, got {listen!r}")
    return host.strip("[]"), int(port)


def _cannot_listen(host: str, port: int, reason: object) -> ConfigError:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ConfigError(f"config: server.listen: cannot listen on {where}: {reason}")


def _create_server(
    app: WSGIApplication,
    host: str,
    port: int,
    socket_map: dict[int, Any],
    *,
    threads: int,
    channel_timeout: int,
    limits: ConnectionLimits,
) -> MultiSocketServer | BaseWSGIServer:
    """waitress's create_server for TCP, with our server class; bind errors are ConfigError."""
    if not 0 <= port <= 65535:
        # getaddrinfo takes 99999 and quietly serves on 99999 % 65536.
        raise _cannot_listen(host, port, "the port must be between 0 and 65535")
    try:
        # waitress resolves too, but turns every failure into "Invalid host/port".
        socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP, socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        raise _cannot_listen(host, port, getattr(exc, "strerror", None) or exc) from exc
    limits = dataclasses.replace(limits, connection_limit=_fit_fd_limit(limits.connection_limit))
    try:
        adj = Adjustments(
            host=host,
            port=port,
            threads=threads,
            channel_timeout=channel_timeout,
            cleanup_interval=CLEANUP_INTERVAL,
            asyncore_use_poll=True,
            max_request_body_size=MAX_REQUEST_BODY,
            max_request_header_size=MAX_REQUEST_HEADERS,
            ident="feedd",
        )
    except ValueError as exc:
        raise _cannot_listen(host, port, exc) from exc
    # Threads start only once every socket is bound: a failed bind leaves none.
    dispatcher = ThreadedTaskDispatcher()
    servers: list[_Server] = []
    try:
        for sockinfo in adj.listen:
            servers.append(
                _Server(
                    app,
                    socket_map,
                    dispatcher=dispatcher,
                    adj=adj,
                    sockinfo=sockinfo,
                    limits=limits,
                )
            )
    except OSError as exc:
        wasyncore.close_all(socket_map)
        raise _cannot_listen(host, port, exc.strerror or exc) from exc
    # waitress counts every entry of its socket map, listening sockets and
    # trigger pipes too; the configured limit counts client connections only.
    adj.connection_limit = limits.connection_limit + len(socket_map)
    dispatcher.set_thread_count(threads)
    if len(servers) == 1:
        return servers[0]
    listening = [address for s in servers for address in _addresses(s)]
    return MultiSocketServer(socket_map, adj, listening, dispatcher, servers[-1].log_info)


def serve(
    app: WSGIApplication,
    listen: str = "127.0.0.1:8080",
    *,
    threads: int = 8,
    channel_timeout: int = 30,
    read_deadline: float = DEFAULT_READ_DEADLINE,
    connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
) -> None:
    """Serve until interrupted (Ctrl-C); blocks the calling thread.

    Raises ConfigError when ``listen`` is malformed, does not resolve, or
    cannot be bound (a port in use, an address not on this host).
    """
    try:
        host, port = split_listen(listen)
    except ValueError as exc:
        raise ConfigError(f"config: server.listen: {exc}") from exc
    limits = ConnectionLimits(read_deadline, connection_limit, max_connections_per_client)
    server = _create_server(
        app, host, port, {}, threads=threads, channel_timeout=channel_timeout, limits=limits
    )
    for address in _addresses(server):
        url = _url(*address)
        log.info("serving HTTP on %s", url, extra={"event": "http_listening", "url": url})
    server.run()


def _addresses(server: MultiSocketServer | BaseWSGIServer) -> list[tuple[str, int]]:
    """Where the server listens, with ephemeral ports resolved."""
    if isinstance(server, MultiSocketServer):
        return [(str(host), int(port)) for host, port in server.effective_listen]
    # Set by waitress's constructor; missing from the type stubs.
    loose = cast(Any, server)
    return [(str(loose.effective_host), int(loose.effective_port))]


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class BackgroundServer:
    """A waitress server running on its own thread; ``close()`` stops it."""

    def __init__(self, server: MultiSocketServer | BaseWSGIServer, socket_map: dict[int, Any]):
        self._server = server
        self._map = socket_map
        self.host, self.port = _addresses(server)[0]
        # Found before the loop runs: the map changes under the loop thread.
        self._trigger = next(obj for obj in socket_map.values() if isinstance(obj, Trigger))
        self._thread = threading.Thread(target=server.run, name="feedd-http", daemon=True)
        self._closed = False

    @property
    def url(self) -> str:
        return _url(self.host, self.port)

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def close(self, timeout: int = 5) -> None:
        """Stop accepting, close every connection, wait for the worker threads."""
        if self._closed:
            return
        self._closed = True
        socket_map = self._map

        def close_all() -> None:
            wasyncore.close_all(socket_map)

        # The sockets belong to the event loop; closing them from this thread
        # would race it. The trigger runs close_all inside the loop, and the
        # loop ends once its map is empty.
        try:
            cast(Any, self._trigger).pull_trigger(close_all)
        except OSError:  # the loop died and closed the trigger already
            close_all()
        self._thread.join(timeout)
        self._server.task_dispatcher.shutdown(timeout=timeout)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_background(
    app: WSGIApplication,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    threads: int = 8,
    channel_timeout: int = 30,
    read_deadline: float = DEFAULT_READ_DEADLINE,
    connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
) -> BackgroundServer:
    """Listen now (port 0 picks a free port, see ``.port``) and serve on a daemon thread.

    Raises ConfigError when the address does not resolve or cannot be bound.
    """
    socket_map: dict[int, Any] = {}
    limits = ConnectionLimits(read_deadline, connection_limit, max_connections_per_client)
    server = _create_server(
        app,
        host,
        port,
        socket_map,
        threads=threads,
        channel_timeout=channel_timeout,
        limits=limits,
    )
    handle = BackgroundServer(server, socket_map)
    log.info("serving HTTP on %s", handle.url, extra={"event": "http_listening", "url": handle.url})
    return handle.start()
