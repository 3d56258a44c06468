"""HTTP details that do not depend on what is served: responses, conditional GET,
compression, the feed-file cache, and where a request came from.

Pure except for ``FeedCache``, which reads the feed files.

Conditional GET: every 200 that can be cached carries a strong ``ETag`` (the
content hash) and the feeds also a ``Last-Modified``; a request whose
``If-None-Match`` (or, without one, ``If-Modified-Since``) matches gets a 304.

Compression: a response marked compressible is sent gzipped when the client's
``Accept-Encoding`` allows it, always with ``Vary: Accept-Encoding``. The gzip
bytes are another representation, so their ETag is the identity one with
``-gzip`` appended (RFC 9110 section 8.8.3): a cache never takes one for the
other. gzip runs with mtime 0, so the same body always compresses to the same
bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import os
import re
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

from feedd.errors import ConfigError

Headers = list[tuple[str, str]]

# Bodies smaller than this gain nothing from gzip (its header and trailer are
# 18 bytes, and a 200-byte JSON shrinks by a few dozen).
GZIP_MIN_BYTES = 512
GZIP_LEVEL = 6  # pages and JSON, per request: zlib's default trade-off
FEED_GZIP_LEVEL = 9  # feeds: once per file version, cached

# Headers a 304 repeats from the 200 it stands for (RFC 9110 section 15.4.5),
# and the policies: a browser updates the stored page's headers from the 304,
# so a 304 without the page's Content-Security-Policy would swap in the
# sandboxing one of non-pages and block the page's own stylesheet.
_NOT_MODIFIED_KEEPS = {
    "cache-control",
    "etag",
    "last-modified",
    "vary",
    "expires",
    "content-security-policy",
    "referrer-policy",
}


@dataclass
class Response:
    status: str
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    # Validators: set them and ``finish`` answers conditional requests.
    etag: str | None = None
    last_modified: int | None = None  # seconds since the epoch
    compressible: bool = False
    # The gzip form of ``body``, or what makes it, when it is cached
    # elsewhere (the feeds); None compresses ``body`` here.
    gzipped: bytes | Callable[[], bytes] | None = None


# ---------------------------------------------------------------------------
# Conditional requests


def make_etag(body: bytes) -> str:
    return f'"sha256-{hashlib.sha256(body).hexdigest()[:32]}"'


def gzip_etag(etag: str) -> str:
    """The ETag of the gzip representation: ``"x"`` -> ``"x-gzip"`` (``W/`` kept)."""
    return etag[:-1] + '-gzip"' if etag.endswith('"') else etag


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
    from datetime import UTC

    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # asctime() dates carry no zone; HTTP dates are GMT
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def not_modified(
    etag: str,
    last_modified: int | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    now: float,
) -> bool:
    """RFC 9110 section 13.2.2 for GET/HEAD: If-None-Match wins over If-Modified-Since."""
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    if not if_modified_since or last_modified is None:
        return False
    since = parse_http_date(if_modified_since)
    # A date in the future is invalid and must be ignored: it would pin the
    # client to its copy across the next change.
    if since is None or since > now:
        return False
    return since >= last_modified


# ---------------------------------------------------------------------------
# Compression

_CODING = re.compile(r"^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (RFC 9110 section 12.5.3).

    No header means any coding is acceptable, but a client that sends none
    rarely decodes gzip (curl without --compressed): send identity then.
    """
    if not accept_encoding:
        return False
    q_of: dict[str, float] = {}
    for part in accept_encoding.split(","):
        match = _CODING.match(part)
        if not match:
            continue
        try:
            q = float(match.group(2)) if match.group(2) is not None else 1.0
        except ValueError:
            continue
        q_of[match.group(1).lower()] = q
    for name in ("gzip", "x-gzip"):
        if name in q_of:
            return q_of[name] > 0
    return q_of.get("*", 0) > 0


def gzip_bytes(body: bytes, level: int = GZIP_LEVEL) -> bytes:
    return gzip.compress(body, compresslevel=level, mtime=0)


def finish(response: Response, environ: Any, now: float) -> Response:
    """Compress when allowed, then answer a conditional request with a 304.

    Only for 200s: errors are neither compressed nor validated.
    """
    headers = response.headers
    if not response.status.startswith("200"):
        _set(headers, "Content-Length", str(len(response.body)))
        return response
    if response.compressible:
        headers.append(("Vary", "Accept-Encoding"))
        big = len(response.body) >= GZIP_MIN_BYTES
        if big and accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING")):
            cached = response.gzipped
            if cached is None:
                response.body = gzip_bytes(response.body)
            else:
                response.body = cached() if callable(cached) else cached
            headers.append(("Content-Encoding", "gzip"))
            if response.etag is not None:
                response.etag = gzip_etag(response.etag)
    _set(headers, "Content-Length", str(len(response.body)))
    if response.etag is None:
        return response
    headers.append(("ETag", response.etag))
    if response.last_modified is not None:
        headers.append(("Last-Modified", formatdate(response.last_modified, usegmt=True)))
    if not_modified(
        response.etag,
        response.last_modified,
        environ.get("HTTP_IF_NONE_MATCH"),
        environ.get("HTTP_IF_MODIFIED_SINCE"),
        now,
    ):
        kept = [(k, v) for k, v in headers if k.lower() in _NOT_MODIFIED_KEEPS]
        return Response("304 Not Modified", kept)
    return response


def _set(headers: Headers, name: str, value: str) -> None:
    headers[:] = [(k, v) for k, v in headers if k.lower() != name.lower()]
    headers.append((name, value))


# ---------------------------------------------------------------------------
# Feed files


@dataclass
class FeedFile:
    key: tuple[int, int, int]  # (mtime_ns, size, inode)
    body: bytes
    etag: str
    last_modified: int  # whole seconds: HTTP dates have no finer resolution
    _gzipped: bytes | None = None

    @property
    def gzipped(self) -> bytes:
        # Compressed on first demand, once per version of the file (a 57 kB
        # feed takes about 3 ms at level 9); a race compresses twice, alike.
        if self._gzipped is None:
            self._gzipped = gzip_bytes(self.body, FEED_GZIP_LEVEL)
        return self._gzipped


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


def regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read_feed(path: Path) -> FeedFile | None:
    import logging

    # O_NOFOLLOW: a symlink planted in the output folder must not publish the
    # file it points to. O_NONBLOCK: a FIFO must not hang a worker thread.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logging.getLogger("feedd.web").warning("cannot open %s: %s", path, exc)
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
# Where the request came from: the public origin and path prefix

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

# What a path prefix may hold: RFC 3986 path characters, nothing that could
# end an attribute or start a scheme.
_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*/?")
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


def parse_trusted_proxies(value: str) -> Networks:
    """``server.trusted_proxies``: comma-separated addresses (or networks, CIDR).

    Raises ConfigError naming the key for anything that is not one.
    """
    out = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(
                f"config: server.trusted_proxies: {part!r} is not an IP address or network; "
                'give e.g. "127.0.0.1, ::1" (or "" to trust no proxy)'
            ) from None
    return tuple(out)


@dataclass(frozen=True)
class Origin:
    """The public address of this server as the client saw it."""

    scheme: str  # "http" or "https"
    host: str  # host[:port], checked
    prefix: str  # "" or "/feeds": the path a reverse proxy mounts us under

    def url(self, path: str) -> str:
        """An absolute URL for one of our paths (``path`` starts with "/")."""
        return f"{self.scheme}://{self.host}{self.prefix}{path}"


def origin(environ: Any, trusted: Networks) -> Origin:
    """The scheme, host and path prefix the client used.

    ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``X-Forwarded-Prefix`` count
    only when the peer is one of the trusted proxies: anyone else could make
    our pages point anywhere. A malformed value is ignored.
    """
    scheme = "https" if environ.get("wsgi.url_scheme") == "https" else "http"
    host = str(environ.get("HTTP_HOST") or "")
    if not _HOST.fullmatch(host):
        name = str(environ.get("SERVER_NAME") or "localhost")
        port = str(environ.get("SERVER_PORT") or "80")
        host = f"{name}:{port}" if _HOST.fullmatch(f"{name}:{port}") else "localhost"
    prefix = ""
    if trusted and _is_trusted(str(environ.get("REMOTE_ADDR") or ""), trusted):
        proto = _first(environ.get("HTTP_X_FORWARDED_PROTO")).lower()
        if proto in ("http", "https"):
            scheme = proto
        forwarded_host = _first(environ.get("HTTP_X_FORWARDED_HOST"))
        if _HOST.fullmatch(forwarded_host):
            host = forwarded_host
        forwarded_prefix = _first(environ.get("HTTP_X_FORWARDED_PREFIX"))
        if forwarded_prefix.startswith("/") and _PREFIX.fullmatch(forwarded_prefix):
            prefix = forwarded_prefix.rstrip("/")
    return Origin(scheme, host, prefix)


def _first(value: object) -> str:
    # A proxy chain may list several values; the first is the client's.
    return str(value or "").split(",")[0].strip()


def _is_trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in trusted)
