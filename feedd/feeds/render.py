"""Render articles and revisions as RSS 2.0 or Atom with feedgen.

Pure: the same articles, config and ``updated`` give the same bytes, so the
writer can tell a real change from a re-render. Every time in the output is a
stored time; none is "now" (feedgen's default for ``updated`` and
``lastBuildDate``).

Item text comes from scraped pages and is untrusted. It is cleaned of what XML
cannot carry, then HTML-escaped and sent as HTML (Atom ``type="html"``, the RSS
description), so that a reader's HTML renderer shows "<script>" and "&" as the
text they are; lxml escapes it once more for XML. It is never embedded as
markup or CDATA. An item that still cannot be serialised is logged and left out
instead of failing the feed.

Building an entry costs far more than serialising it (the title alone about
0.6 ms for a 450-character item), and a publish after one new dump shows
the same entries again but one. An ``EntryCache`` keeps the built entries
from one render to the next, under everything they are made of.
"""

from __future__ import annotations

import html
import logging
import re
import uuid
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator

from feedd.config import FeedConfig
from feedd.core.text import xml_safe
from feedd.feeds.title import make_title
from feedd.model import Article, UpdateEntry

log = logging.getLogger("feedd.feeds")

T = TypeVar("T")

FeedKind = Literal["rss", "atom"]
KINDS: tuple[FeedKind, ...] = ("rss", "atom")
# The date of a feed whose store has recorded no time at all (no article, no
# dump): the day of feedd's first schema (migration 0001). Fixed, so the empty
# feed stays byte-stable ("now" would rewrite it on every render), and never
# 1970, which readers show as a bogus date or take for "no date".
UNDATED = datetime(2026, 11, 22, tzinfo=UTC)
# All entries of one dump share its time. An Atom entry's time is that time less
# one millisecond per dump line, so that entries' times are distinct (the W3C
# validator warns DuplicateUpdated otherwise), never change for an entry, and go
# down the listing as its order does (the newest item is on top). A listing of
# 1,000 lines spans one second; JavaScript readers keep milliseconds.
LINE_STEP = timedelta(milliseconds=1)
GENERATOR = "feedd"
MEDIA_TYPES: dict[FeedKind, str] = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
}

_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\"*"
_MAX_URL = 2000
_C1 = re.compile("[\x7f-\x9f]")
# The text before a URL that stands inside a tag (<a href="http://...">): markup
# scraped along with the text, not a link the listing shows.
_OPEN_TAG = re.compile(r"<[A-Za-z][^<>]*$")
# feedgen/lxml refuse text that XML cannot carry with these; anything else is a bug.
_ENTRY_ERRORS = (ValueError, TypeError, UnicodeError)

_Kept = dict[Hashable, FeedEntry]


class EntryCache:
    """The entries of each feed's last render, for the next render to reuse.

    An entry is kept under its key: the feed kind and every field of the
    article (or revision) that goes into it (``_article_key``,
    ``_update_key``). The config goes into every entry too, so a different
    FeedConfig empties the cache. A kept entry is therefore the entry a fresh
    render would build, and the bytes are the same (tests/test_feeds_cache.py
    compares them). Each render keeps only the entries it used: at most
    ``feed.max_items`` per feed, about 2 kB each (0.4 MB for the four feeds
    at the default of 50). An entry that failed is not kept: it is tried,
    and logged, again.

    One cache may serve several threads: a render reads the entries of the
    one before and stores a dict of its own; no kept entry or dict changes.
    """

    def __init__(self) -> None:
        self._config: FeedConfig | None = None
        self._feeds: dict[tuple[str, FeedKind], _Kept] = {}

    def kept(self, name: str, kind: FeedKind, feed: FeedConfig) -> _Kept:
        if feed != self._config:
            self._feeds = {}
            self._config = feed
        return self._feeds.get((name, kind), {})

    def keep(self, name: str, kind: FeedKind, feed: FeedConfig, entries: _Kept) -> None:
        if feed == self._config:
            self._feeds[(name, kind)] = entries

    def __len__(self) -> int:
        return sum(map(len, self._feeds.values()))


def render(
    kind: FeedKind,
    articles: Sequence[Article],
    feed: FeedConfig,
    *,
    self_url: str,
    updated: datetime | None,
    cache: EntryCache | None = None,
) -> bytes:
    """The article feed: one entry per article, in the given (newest-first) order.

    ``updated`` is the time of the newest change (``SqlStore.last_change()``).
    ``cache`` keeps the built entries for the next render (same bytes).
    """
    fg = _generator(
        kind,
        feed,
        feed_id=feed_id(feed),
        title=_clean(feed.title) or GENERATOR,
        subtitle=_clean(feed.subtitle),
        self_url=self_url,
        updated=updated,
    )
    kept = cache.kept("articles", kind, feed) if cache is not None else {}
    used = _add_entries(
        fg,
        kind,
        articles,
        feed.max_items,
        lambda fe, article: _article_entry(fe, kind, article, feed),
        lambda article: article.uid,
        _article_key,
        kept,
    )
    if cache is not None:
        cache.keep("articles", kind, feed, used)
    return _serialize(fg, kind)


def render_updates(
    kind: FeedKind,
    entries: Sequence[UpdateEntry],
    feed: FeedConfig,
    *,
    self_url: str,
    updated: datetime | None,
    cache: EntryCache | None = None,
) -> bytes:
    """The updates feed: one entry per new revision (2 and later) of an article."""
    title = _clean(feed.title) or GENERATOR
    fg = _generator(
        kind,
        feed,
        feed_id=updates_feed_id(feed),
        title=f"{title}: updates",
        subtitle=f"New revisions of articles already in {title}",
        self_url=self_url,
        updated=updated,
    )
    kept = cache.kept("updates", kind, feed) if cache is not None else {}
    used = _add_entries(
        fg,
        kind,
        entries,
        feed.max_items,
        lambda fe, entry: _update_entry(fe, kind, entry, feed),
        lambda entry: f"{entry.article.uid} revision {entry.number}",
        _update_key,
        kept,
    )
    if cache is not None:
        cache.keep("updates", kind, feed, used)
    return _serialize(fg, kind)


# ids -------------------------------------------------------------------------
def feed_id(feed: FeedConfig) -> str:
    """feed.id, or a urn:uuid derived from base_url: stable across restarts."""
    if feed.id:
        return _clean(feed.id)
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, _base(feed))}"


def updates_feed_id(feed: FeedConfig) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, feed_id(feed) + '#updates')}"


def article_id(article: Article) -> str:
    return f"urn:uuid:{_clean(article.uid)}"


def revision_id(article: Article, number: int) -> str:
    """Stable per revision, and different from the article's own id."""
    try:
        namespace = uuid.UUID(article.uid)
    except ValueError:
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, article.uid)
    return f"urn:uuid:{uuid.uuid5(namespace, f'revision-{number}')}"


def article_url(feed: FeedConfig, article: Article) -> str:
    return f"{_base(feed)}/articles/{_clean(article.uid)}"


def item_link(feed: FeedConfig, article: Article) -> str:
    """The first http(s) URL in the text, else the article's page on this server."""
    return first_url(article.text) or article_url(feed, article)


def first_url(text: str) -> str | None:
    for match in _URL.finditer(text):
        if match.group().endswith("..") or text[match.end() : match.end() + 1] == "…":
            continue  # the listing cut the text, and the URL with it
        if _OPEN_TAG.search(text, max(0, match.start() - _MAX_URL), match.start()):
            continue
        url = _trim_url(match.group())
        try:
            hostname = urlsplit(url).hostname
        except ValueError:
            continue  # "http://[::1" (an unclosed IPv6 bracket): not a link to follow
        if hostname and len(url) <= _MAX_URL:
            return url
    return None


def _trim_url(url: str) -> str:
    # Prose punctuation glued to a URL is not part of it; a closing bracket is
    # only when the URL opened it (https://en.wikipedia.org/wiki/A_(b)).
    while url:
        last = url[-1]
        if last in _URL_TRAILING:
            url = url[:-1]
        elif last == ")" and url.count("(") < url.count(")"):
            url = url[:-1]
        elif last == "]" and url.count("[") < url.count("]"):
            url = url[:-1]
        else:
            break
    return url


# building --------------------------------------------------------------------
def _generator(
    kind: FeedKind,
    feed: FeedConfig,
    *,
    feed_id: str,
    title: str,
    subtitle: str,
    self_url: str,
    updated: datetime | None,
) -> Any:
    fg = FeedGenerator()
    fg.id(feed_id)
    fg.title(title)
    # RSS requires a channel description; feedgen takes it from the subtitle.
    fg.subtitle(subtitle or title)
    fg.author({"name": _clean(feed.author) or GENERATOR})
    if feed.language:
        fg.language(_clean(feed.language))
    # feedgen uses the last link added as the RSS channel <link>, so the site
    # goes last and the feed's own URL becomes <atom:link rel="self">.
    fg.link(href=_clean(self_url), rel="self", type=MEDIA_TYPES[kind])
    fg.link(href=_base(feed) + "/", rel="alternate", type="text/html")
    fg.generator(GENERATOR)
    fg.updated(_utc(updated) if updated is not None else UNDATED)
    return fg


def _add_entries(
    fg: Any,
    kind: FeedKind,
    items: Sequence[T],
    limit: int,
    fill: Callable[[FeedEntry, T], None],
    describe: Callable[[T], str],
    key: Callable[[T], Hashable],
    kept: _Kept,
) -> _Kept:
    """Add up to ``limit`` entries; returns the ones added, by key. An entry in
    ``kept`` is added as it is: feedgen builds its XML from its fields at every
    serialisation and changes nothing in it."""
    used: _Kept = {}
    added = 0
    for item in items:
        if added >= limit:
            break
        k = key(item)
        fe = kept.get(k)
        if fe is None:
            fe = FeedEntry()
            try:
                fill(fe, item)
                # Build the entry's XML once here: a failure then costs this
                # entry, not the whole feed at serialisation time.
                fe.atom_entry() if kind == "atom" else fe.rss_entry()
            except _ENTRY_ERRORS as exc:
                log.warning(
                    "left %s out of the %s feed: %s",
                    describe(item),
                    kind,
                    exc,
                    extra={"event": "feed_entry_skipped", "kind": kind},
                )
                continue
        fg.add_entry(fe, order="append")
        used[k] = fe
        added += 1
    return used


# The keys list every field that the fill function next to them reads: a field
# read there and missing here would let a changed item keep its old entry.
def _article_key(article: Article) -> Hashable:
    return (
        article.uid,
        article.text,
        article.first_seen,
        article.first_line,
        article.updated_at,
        article.updated_line,
    )


def _article_entry(fe: FeedEntry, kind: FeedKind, article: Article, feed: FeedConfig) -> None:
    text = _clean(article.text)
    fe.id(article_id(article))
    fe.title(make_title(text, feed.title_max_chars))
    fe.link(href=item_link(feed, article), rel="alternate")
    _set_times(
        fe,
        kind,
        (article.first_seen, article.first_line),
        (article.updated_at, article.updated_line),
    )
    _set_text(fe, kind, text)


def _update_key(entry: UpdateEntry) -> Hashable:
    return (entry.article.uid, entry.number, entry.text, entry.first_seen, entry.line)


def _update_entry(fe: FeedEntry, kind: FeedKind, entry: UpdateEntry, feed: FeedConfig) -> None:
    text = _clean(entry.text)
    fe.id(revision_id(entry.article, entry.number))
    fe.title(f"{make_title(text, feed.title_max_chars)} (revision {entry.number})")
    fe.link(href=article_url(feed, entry.article), rel="alternate")
    seen = (entry.first_seen, entry.line)
    _set_times(fe, kind, seen, seen)
    _set_text(fe, kind, text)


def entry_time(seen: datetime, line: int) -> datetime:
    """An Atom entry's time: its dump's time less LINE_STEP per dump line."""
    return _utc(seen) - LINE_STEP * line


def _set_times(
    fe: FeedEntry,
    kind: FeedKind,
    published: tuple[datetime, int],
    updated: tuple[datetime, int],
) -> None:
    # Each of ``published`` and ``updated`` is (dump time, dump line). An RSS
    # pubDate has whole seconds only: the line's milliseconds could not make
    # it distinct, only move it a second back, so it stays the dump's time.
    if kind == "atom":
        fe.published(entry_time(*published))
        fe.updated(entry_time(*updated))
    else:
        fe.published(_utc(published[0]))


def _set_text(fe: FeedEntry, kind: FeedKind, text: str) -> None:
    # The text, HTML-escaped and sent as HTML. Some readers render Atom
    # type="text" as HTML: newsboat 2.21 drops "&", tags and whole <script>
    # elements from it, and makes a scraped <a> a live link. Escaped HTML is
    # the text itself to any HTML renderer (an RSS description is HTML by
    # convention). type="CDATA" would be invalid Atom.
    escaped = html.escape(text, quote=False)
    if kind == "atom":
        fe.content(escaped, type="html")
    else:
        fe.description(escaped)


def _serialize(fg: Any, kind: FeedKind) -> bytes:
    data = fg.atom_str(pretty=True) if kind == "atom" else fg.rss_str(pretty=True)
    return bytes(data)


def _clean(text: str) -> str:
    # C1 controls are legal XML 1.0 but never text, and feedparser reads them
    # as Windows-1252 ("\x80" becomes "€").
    return _C1.sub("", xml_safe(text)).strip()


def _base(feed: FeedConfig) -> str:
    return _clean(feed.base_url).rstrip("/")


def _utc(value: datetime) -> datetime:
    # feedgen rejects naive datetimes; the store's are UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
