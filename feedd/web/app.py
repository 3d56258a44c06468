"""The WSGI application: the routes, and what each one answers.

Routes are a fixed table: a request path is never joined onto a folder, so no
spelling of ``..`` (raw, percent-encoded, doubled slashes, absolute-form
targets) can reach anything but the four feed files. Every route answers
GET and HEAD only.

=========================  ================================================
``/``                      the newest articles, filters, search, the chart
``/articles/<uid>``        one article: revisions with diffs, sightings
``/dumps``                 ingested dumps with counts; the quarantine
``/dumps/<name>``          every record of one dump name (why it was refused)
``/status``                what `feedd status` prints
``/activity``              new articles and updates per day and per hour
``/api/...``               the same as JSON, in the shapes of feedd/shapes.py
``/feed.atom`` ...         the feed files, conditional GET, gzip
``/healthz``, ``/metrics`` health as JSON; Prometheus text format
=========================  ================================================

Feed files are written elsewhere, atomically (``os.replace``) and only when
they change, so a file's mtime is the time of its last real change: it is the
``Last-Modified``, and the content hash is a strong ``ETag``.

A newcomer adding a page: a route in ``FeedApp.route``, a template in
``templates/`` with a ``render_*`` in pages.py, its JSON shape in
feedd/shapes.py, its queries in SqlStore.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from wsgiref.types import StartResponse, WSGIEnvironment

from markupsafe import Markup

from feedd import shapes
from feedd.errors import InvalidQuery, StorageError
from feedd.model import Article
from feedd.store.sql import SqlStore
from feedd.web import chart, pages
from feedd.web.http import (
    FeedCache,
    Headers,
    Response,
    finish,
    make_etag,
    origin,
    parse_trusted_proxies,
    regular_file,
)
from feedd.web.metrics import Metrics

log = logging.getLogger("feedd.web")
access_log = logging.getLogger("feedd.access")

RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"

# request path -> (file name in the output folder, Content-Type). The only
# paths that ever touch the filesystem.
FEED_ROUTES: dict[str, tuple[str, str]] = {
    "/feed.rss": ("feed.rss", RSS_TYPE),
    "/feed.atom": ("feed.atom", ATOM_TYPE),
    "/updates.rss": ("updates.rss", RSS_TYPE),
    "/updates.atom": ("updates.atom", ATOM_TYPE),
}
DEFAULT_FEED_MAX_AGE = 60  # seconds; App.wsgi() passes daemon.scan_interval

# The route templates: the only label values of the request metrics.
ROUTES = (
    "/",
    *FEED_ROUTES,
    "/articles/{uid}",
    "/dumps",
    "/dumps/{name}",
    "/status",
    "/activity",
    "/healthz",
    "/metrics",
    "/api/articles",
    "/api/articles/{uid}",
    "/api/dumps",
    "/api/status",
    "/api/activity",
    "other",
)

ALLOWED_METHODS = ("GET", "HEAD")
PAGE_SIZE = 50  # articles per page of /
API_MAX_LIMIT = 200
DUMPS_SHOWN = 200  # ingested dumps on /dumps
API_DUMPS_MAX = 1000
MIN_PREFIX = 4  # uid characters a reference needs, as in the CLI
MATCHES_SHOWN = 5
MAX_QUERY_CHARS = 200
MAX_QUERY_FIELDS = 20
_ARTICLE_REF = re.compile(r"/(api/)?articles/([0-9A-Za-z-]{1,64})")
_UID_REF = re.compile(r"[0-9a-f-]+")
_DUMP_NAME = re.compile(r"/dumps/([^/\x00]{1,255})")
_CURSOR = re.compile(r"([ab])([0-9]{1,18})")
_LOG_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BadRequest(Exception):
    """A parameter that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ArticleQuery:
    """The filters of ``/`` and ``/api/articles``, checked."""

    q: str = ""
    since: datetime | None = None
    updated_only: bool = False
    category: str | None = None
    # ("a", id): the page after article id; ("b", id): the page before it.
    cursor: tuple[str, int] | None = None
    limit: int = PAGE_SIZE


class FeedApp:
    """The WSGI callable. Build it with :func:`make_app`."""

    def __init__(
        self,
        store: SqlStore,
        output_dir: Path,
        *,
        base_url: str = "",
        pending: Callable[[], int] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        title: str = "feedd",
        language: str = "zh",
        title_max_chars: int = 80,
        feed_max_age: int = DEFAULT_FEED_MAX_AGE,
        trusted_proxies: str = "",
        access_log: bool = True,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.output_dir = Path(output_dir)
        self.base_url = base_url.rstrip("/")
        self.pending = pending
        self.status = status
        self.title = title
        self.title_max_chars = title_max_chars
        self.feed_max_age = feed_max_age
        self.trusted = parse_trusted_proxies(trusted_proxies)
        self.log_requests = access_log
        self.now = now
        self.feeds = FeedCache()
        self.site = pages.Site(
            title=title,
            lang=pages.html_lang(language),
            title_max_chars=title_max_chars,
            has_activity=True,
        )
        self.metrics = Metrics(store, pending=pending, now=now, routes=ROUTES)
        self._cache_lock = threading.Lock()
        self._cache: dict[str, tuple[Any, Any]] = {}

    # -- the WSGI entry --------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        started = time.perf_counter()
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = _decoded_path(environ)
        route = "other"
        try:
            if method not in ALLOWED_METHODS:
                response = _text("405 Method Not Allowed", "method not allowed\n")
                response.headers.append(("Allow", ", ".join(ALLOWED_METHODS)))
            else:
                route, response = self.route(path, environ)
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
        response = finish(response, environ, self.now().timestamp())
        headers = response.headers
        if not any(name == "Content-Security-Policy" for name, _ in headers):
            headers.append(("Content-Security-Policy", OTHER_CSP))
        headers.append(("X-Content-Type-Options", "nosniff"))
        start_response(response.status, headers)
        # HEAD keeps the Content-Length of the GET it mirrors, without the body.
        body = b"" if method == "HEAD" or response.status.startswith("304") else response.body
        elapsed = time.perf_counter() - started
        code = int(response.status[:3])
        self.metrics.observe_request(route, code, elapsed)
        if self.log_requests:
            self._log_request(environ, method, path, code, len(body), elapsed)
        return [body] if body else []

    def _log_request(
        self, environ: WSGIEnvironment, method: str, path: str, status: int, size: int, s: float
    ) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        query = str(environ.get("QUERY_STRING") or "")
        target = _log_safe(path + (f"?{query}" if query else ""))
        ms = round(s * 1000, 1)
        access_log.info(
            "%s %s %d %d B %.1f ms",
            method,
            target,
            status,
            size,
            ms,
            extra={
                "event": "http_request",
                "method": method,
                "path": _log_safe(path),
                "query": _log_safe(query),
                "status": status,
                "bytes": size,
                "ms": ms,
                "client": str(environ.get("REMOTE_ADDR") or ""),
            },
        )

    # -- routing ---------------------------------------------------------------
    def route(self, path: str, environ: WSGIEnvironment) -> tuple[str, Response]:
        """(route template, response) for a GET or HEAD of ``path``."""
        feed = FEED_ROUTES.get(path)
        if feed is not None:
            return path, self.feed(feed[0], feed[1])
        fixed: dict[str, Callable[[WSGIEnvironment], Response]] = {
            "/": self.index,
            "/dumps": self.dumps_page,
            "/status": self.status_page,
            "/healthz": self.health,
            "/api/articles": self.api_articles,
            "/api/dumps": self.api_dumps,
            "/api/status": self.api_status,
        }
        fixed["/activity"] = self.activity_page
        fixed["/api/activity"] = self.api_activity
        fixed["/metrics"] = self.metrics_page
        handler = fixed.get(path)
        if handler is not None:
            return path, handler(environ)
        match = _ARTICLE_REF.fullmatch(path)
        if match:
            api = bool(match.group(1))
            ref = match.group(2)
            if api:
                return "/api/articles/{uid}", self.api_article(ref)
            return "/articles/{uid}", self.article_page(ref)
        match = _DUMP_NAME.fullmatch(path)
        if match:
            return "/dumps/{name}", self.dump_page(match.group(1))
        return "other", _text("404 Not Found", "not found\n")

    # -- feeds -----------------------------------------------------------------
    def feed(self, name: str, content_type: str) -> Response:
        entry = self.feeds.get(self.output_dir / name)
        if entry is None:
            return _text("404 Not Found", "not found\n")
        return Response(
            "200 OK",
            [("Content-Type", content_type), ("Cache-Control", f"max-age={self.feed_max_age}")],
            entry.body,
            etag=entry.etag,
            last_modified=entry.last_modified,
            compressible=True,
            gzipped=lambda: entry.gzipped,
        )

    def _feed_links(self, environ: WSGIEnvironment) -> list[pages.FeedLink]:
        where = origin(environ, self.trusted)
        return [
            pages.FeedLink(route[1:], ctype.split(";")[0], where.url(route))
            for route, (name, ctype) in FEED_ROUTES.items()
            if regular_file(self.output_dir / name)
        ]

    # -- articles --------------------------------------------------------------
    def index(self, environ: WSGIEnvironment) -> Response:
        params = _params(environ)
        filters = pages.Filters(
            q=params.get("q", "")[:MAX_QUERY_CHARS],
            since=params.get("since", "")[:40],
            updated=_flag(params.get("updated")),
            category=params.get("category", "")[:64],
        )
        version = self.store.dump_summary()[0]
        error = None
        arts: list[Article] = []
        next_href = prev_href = None
        try:
            query = _article_query(params, limit_allowed=False)
            arts, next_cursor, prev_cursor = self._page(query)
        except (BadRequest, InvalidQuery) as exc:
            error = str(exc)
        else:
            next_href = _href(params, next_cursor)
            prev_href = _href(params, prev_cursor)
        body = pages.render_index(
            self.site,
            articles=arts,
            filters=filters,
            categories=self._categories(version),
            feeds=self._feed_links(environ),
            prev_href=prev_href,
            next_href=next_href,
            chart=self._chart("per-day-90", version),
            error=error,
        )
        return _html(body, "400 Bad Request" if error else "200 OK")

    def api_articles(self, environ: WSGIEnvironment) -> Response:
        params = _params(environ)
        try:
            query = _article_query(params, limit_allowed=True)
            arts, next_cursor, prev_cursor = self._page(query)
        except (BadRequest, InvalidQuery) as exc:
            return _json({"error": str(exc)}, "400 Bad Request")
        response = _json(
            shapes.articles_page(
                arts,
                next_cursor=next_cursor,
                prev_cursor=prev_cursor,
                title_max_chars=self.title_max_chars,
            )
        )
        where = origin(environ, self.trusted)
        links = []
        for rel, cursor in (("next", next_cursor), ("prev", prev_cursor)):
            if cursor:
                url = where.url("/api/articles?" + urlencode({**params, "cursor": cursor}))
                links.append(f'<{url}>; rel="{rel}"')
        if links:
            response.headers.append(("Link", ", ".join(links)))
        return response

    def _page(self, query: ArticleQuery) -> tuple[list[Article], str | None, str | None]:
        """One page of articles, and the cursors of the pages after and before it.

        A cursor names a place in the listing: ``a<id>``, the page after that
        article (the store's ``before_id``: older); ``b<id>``, the page before
        it (``after_id``: newer)."""
        direction, anchor = query.cursor or ("a", None)
        if direction == "b":
            found = self._find(query, after_id=anchor, limit=query.limit + 1)
            if len(found) > query.limit:
                page = found[1:]
                return page, f"a{page[-1].id}", f"b{page[0].id}"
            # Back at the top: the first page, whole.
            anchor = None
        found = self._find(query, before_id=anchor, limit=query.limit + 1)
        page = found[: query.limit]
        next_cursor = f"a{page[-1].id}" if len(found) > query.limit else None
        prev_cursor = None
        if anchor is not None:
            prev_cursor = f"b{page[0].id}" if page else f"b{anchor}"
        return page, next_cursor, prev_cursor

    def _find(
        self,
        query: ArticleQuery,
        *,
        limit: int,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[Article]:
        """The search adapter: SqlStore.search (the search indexes) when the
        query is a search alone, either way; SqlStore.browse, whose text
        filter is a LIKE scan, for everything else. Both page alike."""
        terms = query.q.split()
        search = getattr(self.store, "search", None)
        alone = query.since is None and not query.updated_only and query.category is None
        if terms and alone and search is not None:
            found: list[Article] = search(
                query.q, limit=limit, before_id=before_id, after_id=after_id
            )
            return found
        if len(terms) > 16:
            raise InvalidQuery(f"a search takes at most 16 words; this one has {len(terms)}")
        return self.store.browse(
            since=query.since,
            updated_only=query.updated_only,
            category=query.category,
            contains=terms,
            limit=limit,
            before_id=before_id,
            after_id=after_id,
        )

    def _lookup(self, ref: str) -> tuple[Article | None, str, list[Article], int]:
        """(the article, why not, the matches of an ambiguous prefix, how many)."""
        key = ref.strip().lower()
        if not _UID_REF.fullmatch(key):
            return None, f"{ref!r} is not an article uid: uids are 0-9, a-f and dashes", [], 0
        if len(key) < MIN_PREFIX:
            return None, f"give at least {MIN_PREFIX} characters of the uid", [], 0
        count, found = self.store.articles_by_uid(key, limit=MATCHES_SHOWN)
        if count == 0 or not found:
            return None, f"no article's uid starts with {key}", [], 0
        if count > 1:
            return None, f"{count} articles' uids start with {key}; pick one", found, count
        return found[0], "", [], 1

    def article_page(self, ref: str) -> Response:
        article, why, matches, count = self._lookup(ref)
        if article is None:
            heading = "Ambiguous article reference" if matches else "No such article"
            body = pages.render_message(
                self.site,
                "../",
                heading,
                why,
                matches=matches,
                more=max(0, count - len(matches)),
            )
            return _html(body, "404 Not Found")
        newer, older = self.store.neighbours(article.id)
        return _html(pages.render_article(self.site, article, newer=newer, older=older))

    def api_article(self, ref: str) -> Response:
        article, why, matches, count = self._lookup(ref)
        if article is not None:
            return _json(shapes.history(article, title_max_chars=self.title_max_chars))
        if matches:
            return _json(shapes.ambiguous(ref.lower(), count, matches), "404 Not Found")
        return _json({"error": why}, "404 Not Found")

    # -- dumps -----------------------------------------------------------------
    def dumps_page(self, environ: WSGIEnvironment) -> Response:
        _newest, ingested_total, rejected_total = self.store.dump_summary()
        ingested = self.store.dumps(status="ingested", limit=DUMPS_SHOWN)
        _count, rejected = self.store.rejected_dumps(limit=DUMPS_SHOWN)
        body = pages.render_dumps(
            self.site,
            ingested=ingested,
            ingested_total=ingested_total,
            rejected=rejected,
            rejected_total=rejected_total,
        )
        return _html(body)

    def api_dumps(self, environ: WSGIEnvironment) -> Response:
        params = _params(environ)
        try:
            limit = _int(params.get("limit"), "limit", DUMPS_SHOWN, 1, API_DUMPS_MAX)
        except BadRequest as exc:
            return _json({"error": str(exc)}, "400 Bad Request")
        _newest, ingested_total, rejected_total = self.store.dump_summary()
        ingested = self.store.dumps(status="ingested", limit=limit)
        _count, rejected = self.store.rejected_dumps(limit=limit)
        return _json(shapes.dumps(ingested, rejected, ingested_total, rejected_total))

    def dump_page(self, name: str) -> Response:
        records = self.store.dump_records(name)
        body = pages.render_dump(self.site, name, records)
        return _html(body, "200 OK" if records else "404 Not Found")

    # -- status and health -----------------------------------------------------
    def _status_report(self) -> dict[str, Any]:
        if self.status is not None:
            return self.status()
        return _store_status(self.store, self._pending(), self.now())

    def status_page(self, environ: WSGIEnvironment) -> Response:
        response = _html(pages.render_status(self.site, self._status_report()))
        _set_header(response.headers, "Cache-Control", "no-store")
        return response

    def api_status(self, environ: WSGIEnvironment) -> Response:
        response = _json(self._status_report())
        _set_header(response.headers, "Cache-Control", "no-store")
        return response

    def health(self, environ: WSGIEnvironment) -> Response:
        database, status = "ok", "200 OK"
        articles = last = None
        try:
            self.store.check()
            articles = self.store.totals().articles
            latest = self.store.dumps(status="ingested", limit=1)
            last = latest[0].ingested_at if latest else None
        except StorageError as exc:
            database = _one_line(exc.message)
            status = "503 Service Unavailable"
        report = shapes.health(
            database=database, last_ingest=last, pending_dumps=self._pending(), articles=articles
        )
        body = json.dumps(report, ensure_ascii=False).encode("utf-8")
        return Response(status, [("Content-Type", JSON_TYPE), ("Cache-Control", "no-store")], body)

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

    def metrics_page(self, environ: WSGIEnvironment) -> Response:
        body, content_type = self.metrics.render()
        return Response(
            "200 OK",
            [("Content-Type", content_type), ("Cache-Control", "no-store")],
            body,
            compressible=True,
        )

    # -- activity --------------------------------------------------------------
    def activity_page(self, environ: WSGIEnvironment) -> Response:
        version = self.store.dump_summary()[0]
        charts = {name: self._chart(name, version) or Markup("") for name in _CHARTS}
        body = pages.render_activity(
            self.site,
            per_day_90=charts["per-day-90"],
            per_day_all=charts["per-day-all"],
            per_hour_48=charts["per-hour-48"],
        )
        return _html(body)

    def api_activity(self, environ: WSGIEnvironment) -> Response:
        version = self.store.dump_summary()[0]
        out = {}
        for name in _CHARTS:
            unit, buckets = self._buckets(name, version)
            out[name.replace("-", "_")] = shapes.activity(buckets, unit)
        return _json(out)

    def _buckets(self, name: str, version: int) -> tuple[str, list[tuple[datetime, int, int]]]:
        unit, span = _CHARTS[name]
        now = self.now()
        since = None if span is None else now - span
        rows = self._cached(
            f"activity:{name}",
            (version, now.strftime("%Y%m%d%H")),
            lambda: self.store.activity(unit, since, now),
        )
        return unit, rows

    def _chart(self, name: str, version: int) -> Markup:
        unit, rows = self._buckets(name, version)

        def draw() -> Markup:
            buckets = [chart.Bucket(start, new, updates) for start, new, updates in rows]
            # chart.render_svg escapes every text it draws.
            return Markup(chart.render_svg(buckets, id=name, title=_CHART_TITLES[name], unit=unit))

        hour = self.now().strftime("%Y%m%d%H")
        svg: Markup = self._cached(f"svg:{name}", (version, hour), draw)
        return svg

    def _categories(self, version: int) -> list[str]:
        # A scan of the sightings, like the charts' of the history: both are
        # kept until the next dump is recorded (the charts also until the
        # hour turns), so that / stays fast at 100k articles.
        categories: list[str] = self._cached("categories", (version,), self.store.categories)
        return categories

    def _cached(self, key: str, version: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()``, kept while ``version`` stays the same: the newest
        dump record's id (SqlStore.dump_summary), which changes with every
        dump recorded, and for the charts the hour."""
        with self._cache_lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        value = compute()
        with self._cache_lock:
            self._cache[key] = (version, value)
        return value


# unit and span of each chart; None: all time
_CHARTS: dict[str, tuple[str, timedelta | None]] = {
    "per-day-90": ("day", timedelta(days=89)),
    "per-day-all": ("day", None),
    "per-hour-48": ("hour", timedelta(hours=47)),
}

_CHART_TITLES = {
    "per-day-90": "New articles and updates per day, last 90 days",
    "per-day-all": "New articles and updates per day, all time",
    "per-hour-48": "New articles and updates per hour, last 48 hours",
}

# Feeds, JSON and text are not pages, but a browser may still render an XML
# feed (XHTML inside Atom can carry script): sandbox everything else too.
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"


# ---------------------------------------------------------------------------
# Requests


def _decoded_path(environ: WSGIEnvironment) -> str:
    # WSGI hands the path over as latin-1 code points of its bytes; dump
    # names and uids are UTF-8.
    raw = str(environ.get("PATH_INFO", ""))
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def _params(environ: WSGIEnvironment) -> dict[str, str]:
    """The query string's parameters, the first value of each."""
    try:
        pairs = parse_qsl(
            str(environ.get("QUERY_STRING") or ""),
            keep_blank_values=True,
            max_num_fields=MAX_QUERY_FIELDS,
        )
    except ValueError:
        pairs = []  # too many fields: read none rather than some
    out: dict[str, str] = {}
    for key, value in pairs:
        # No stored text holds NUL (a dump with one is rejected), and
        # PostgreSQL refuses it in a parameter.
        out.setdefault(key, value.replace("\x00", ""))
    return out


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "on", "true", "yes")


def _int(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    if not value.isascii() or not value.isdigit() or not lo <= int(value) <= hi:
        raise BadRequest(f"{name} must be a whole number from {lo} to {hi}, got {value[:20]!r}")
    return int(value)


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(
            f"since must be a date like 2026-01-31 (or an ISO time), got {value[:40]!r}"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _article_query(params: dict[str, str], *, limit_allowed: bool) -> ArticleQuery:
    """Raises BadRequest naming the parameter that cannot be used."""
    cursor = None
    if params.get("cursor"):
        match = _CURSOR.fullmatch(params["cursor"])
        if not match:
            raise BadRequest("cursor is not one this server gave; start again from the first page")
        cursor = (match.group(1), int(match.group(2)))
        if cursor[1] >= 1 << 31:  # no article id is this large (a 32-bit INTEGER)
            raise BadRequest("cursor is not one this server gave; start again from the first page")
    q = " ".join(params.get("q", "").split())
    if len(q) > MAX_QUERY_CHARS:
        raise BadRequest(f"q is longer than {MAX_QUERY_CHARS} characters")
    category = params.get("category", "") or None
    if category is not None and len(category) > 64:
        raise BadRequest("category is longer than 64 characters")
    limit = PAGE_SIZE
    if limit_allowed:
        limit = _int(params.get("limit"), "limit", PAGE_SIZE, 1, API_MAX_LIMIT)
    return ArticleQuery(
        q=q,
        since=_since(params.get("since")),
        updated_only=_flag(params.get("updated")),
        category=category,
        cursor=cursor,
        limit=limit,
    )


def _href(params: dict[str, str], cursor: str | None) -> str | None:
    """A link to another page of the same listing: only the query changes."""
    if cursor is None:
        return None
    kept = {k: v for k, v in params.items() if k in ("q", "since", "updated", "category") and v}
    return "?" + urlencode({**kept, "cursor": cursor})


# ---------------------------------------------------------------------------
# Responses


def _text(status: str, message: str) -> Response:
    return Response(
        status, [("Content-Type", "text/plain; charset=utf-8")], message.encode("utf-8")
    )


def _html(body: bytes, status: str = "200 OK") -> Response:
    ok = status.startswith("200")
    return Response(
        status,
        [
            ("Content-Type", HTML_TYPE),
            ("Cache-Control", "no-cache"),
            ("Content-Security-Policy", pages.HTML_CSP),
            ("Referrer-Policy", "no-referrer"),
        ],
        body,
        etag=make_etag(body) if ok else None,
        compressible=True,
    )


def _json(value: Any, status: str = "200 OK") -> Response:
    body = json.dumps(value, ensure_ascii=False).encode("utf-8")
    ok = status.startswith("200")
    return Response(
        status,
        [("Content-Type", JSON_TYPE), ("Cache-Control", "no-cache")],
        body,
        etag=make_etag(body) if ok else None,
        compressible=True,
    )


def _set_header(headers: Headers, name: str, value: str) -> None:
    headers[:] = [(k, v) for k, v in headers if k.lower() != name.lower()]
    headers.append((name, value))


def _one_line(message: str, limit: int = 200) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "error"
    return first[:limit]


def _log_safe(text: str) -> str:
    # A decoded path may hold CR/LF or bidi controls: they must not forge or
    # reorder log lines.
    return _LOG_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _store_status(store: SqlStore, pending: int | None, now: datetime) -> dict[str, Any]:
    """The status report from the database alone, for an app built without
    App.status_report (tests, benchmarks)."""
    workers = store.workers()
    live = [
        w for w in workers if w.status == "running" and (now - w.heartbeat_at).total_seconds() <= 60
    ]
    latest = store.dumps(status="ingested", limit=1)
    open_count, rejected = store.rejected_dumps(outstanding_only=True, limit=20)
    return shapes.status(
        live=live,
        workers=workers,
        dead=[],
        this_host=socket.gethostname(),
        totals=store.totals(),
        pending=pending or 0,
        lag_seconds=0,
        last_ingest=latest[0] if latest else None,
        rejected_open=open_count,
        rejections=[d for d, _ in rejected],
        feeds={},
    )


def make_app(
    store: SqlStore,
    output_dir: Path,
    *,
    base_url: str = "",
    pending: Callable[[], int] | None = None,
    status: Callable[[], dict[str, Any]] | None = None,
    title: str = "feedd",
    language: str = "zh",
    title_max_chars: int = 80,
    feed_max_age: int = DEFAULT_FEED_MAX_AGE,
    trusted_proxies: str = "",
    access_log: bool = True,
    now: Callable[[], datetime] = _utcnow,
) -> FeedApp:
    """The WSGI application serving ``output_dir``'s feeds and ``store``'s history.

    ``pending`` reports how many dumps wait to be ingested (/healthz);
    ``status`` is App.status_report (/status); ``base_url`` is feed.base_url,
    the address in the feeds: the pages link relatively and never use it.
    ``feed_max_age`` is the feeds' Cache-Control max-age in seconds.
    Raises ConfigError for a malformed ``trusted_proxies``.
    """
    return FeedApp(
        store,
        output_dir,
        base_url=base_url,
        pending=pending,
        status=status,
        title=title,
        language=language,
        title_max_chars=title_max_chars,
        feed_max_age=feed_max_age,
        trusted_proxies=trusted_proxies,
        access_log=access_log,
        now=now,
    )


__all__ = ["FEED_ROUTES", "ROUTES", "FeedApp", "make_app"]
