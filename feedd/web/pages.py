"""The HTML pages: Jinja2 templates in ``templates/``, autoescaped, and the
view data each one is given.

Scraped text is hostile: every value goes through Jinja's autoescape, and the
only markup built here (diffs and times) escapes its text itself. Each scraped
string sits in ``<bdi>`` or an element with ``dir="auto"``, so that bidi
controls in it cannot reorder the text around it. The stylesheet is inlined
and allowed by its hash; the Content-Security-Policy allows no script at all.

Links are relative (``root`` is "" or "../"), so the pages work on any port
and under any path prefix a reverse proxy mounts them at.

Pure: records in, bytes out.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from feedd import shapes
from feedd.core.diff import char_diff
from feedd.core.text import normalize
from feedd.model import Article, DumpInfo, Revision, Sighting

STYLE = resources.files("feedd.web").joinpath("static/style.css").read_text(encoding="utf-8")
# The stylesheet is allowed by its hash: no inline script or style can run,
# even if some text escaped escaping. form-action 'self': the search form.
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
HTML_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

# An article that repeats in every dump collects a sighting per scan; the page
# shows the latest ones and says how many it left out.
SIGHTINGS_SHOWN = 500

_ENV = Environment(
    loader=PackageLoader("feedd.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Bidi embeddings, overrides and isolates, and the marks: what could reorder a
# <title>, which is plain text and cannot hold a <bdi>.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def html_lang(language: str) -> str:
    """``<html lang>`` from feed.language.

    A bare "zh" becomes "zh-Hans": Chromium picks the Han glyph variants by
    the script subtag (or the region), and without one it falls back to the
    system locale, which drew Simplified Chinese with Japanese glyphs.
    """
    tag = language.strip().replace("_", "-")
    if not re.fullmatch(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*", tag):
        return "zh-Hans"
    if tag.lower() == "zh":
        return "zh-Hans"
    return tag


# ---------------------------------------------------------------------------
# Filters


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


def time_html(value: datetime | None) -> Markup:
    if value is None:
        return Markup("")
    utc = _utc(value)
    # Digits, dashes, colons and a "+": nothing to escape.
    return Markup(f'<time datetime="{utc.isoformat()}">{utc:%Y-%m-%d %H:%M:%S} UTC</time>')


def _iso_time(value: str | None) -> Markup:
    """A time already in ISO form (the status report's) as a <time>."""
    if not value:
        return Markup("")
    try:
        return time_html(datetime.fromisoformat(value))
    except ValueError:
        return Markup("{}").format(value)


def _url_part(value: str) -> str:
    """One path segment: every reserved character percent-encoded."""
    return quote(value, safe="")


_ENV.filters["time"] = time_html
_ENV.filters["isotime"] = _iso_time
_ENV.filters["urlpart"] = _url_part


# ---------------------------------------------------------------------------
# The frame every page shares


@dataclass(frozen=True)
class Site:
    """What every page needs to know about the site."""

    title: str = "feedd"
    lang: str = "zh-Hans"
    title_max_chars: int = 80
    has_activity: bool = False


@dataclass(frozen=True)
class FeedLink:
    name: str  # "feed.atom"
    type: str  # "application/atom+xml"
    href: str  # absolute, from the request


def page_title(*parts: str) -> str:
    return " · ".join(_BIDI_CONTROLS.sub("", p) for p in parts if p)


def _render(template: str, site: Site, root: str, document_title: str, **context: Any) -> bytes:
    page = _ENV.get_template(template).render(
        lang=site.lang,
        site_title=site.title,
        has_activity=site.has_activity,
        root=root,
        page_title=document_title,
        style=Markup(STYLE),
        feeds=context.pop("feeds", ()),
        **context,
    )
    return page.encode("utf-8")


# ---------------------------------------------------------------------------
# /


@dataclass(frozen=True)
class Row:
    uid: str
    title: str
    first_seen: datetime
    last_seen: datetime
    revisions: int
    updated: bool


@dataclass(frozen=True)
class Filters:
    """The index's GET form, as the user typed it (shown back in the form)."""

    q: str = ""
    since: str = ""
    updated: bool = False
    category: str = ""

    @property
    def any(self) -> bool:
        return bool(self.q or self.since or self.updated or self.category)


def row(a: Article, title_max_chars: int = 80) -> Row:
    return Row(
        a.uid,
        shapes.title(a.text, title_max_chars),
        a.first_seen,
        a.last_seen,
        a.revision_count,
        a.revision_count > 1,
    )


def render_index(
    site: Site,
    *,
    articles: Sequence[Article],
    filters: Filters,
    categories: Sequence[str],
    feeds: Sequence[FeedLink],
    prev_href: str | None,
    next_href: str | None,
    chart: Markup | None = None,
    error: str | None = None,
) -> bytes:
    """The newest articles, the filter form, the chart, and the feeds."""
    return _render(
        "index.html",
        site,
        "",
        page_title(site.title),
        rows=[row(a, site.title_max_chars) for a in articles],
        filters=filters,
        filtered=filters.any,
        categories=categories,
        feeds=feeds,
        prev_href=prev_href,
        next_href=next_href,
        chart=chart,
        error=error,
    )


# ---------------------------------------------------------------------------
# /articles/<uid>


@dataclass(frozen=True)
class RevisionView:
    number: int
    label: str
    current: bool
    first_seen: datetime
    simhash: str
    note: str
    recut: str
    body: Markup


@dataclass(frozen=True)
class SightingView:
    dump: str
    line: int
    category: str
    date: str
    kind: str
    revision: int
    seen_at: datetime
    recut: str


def recut_note(shown: int | None, length: int) -> str:
    """A line that showed only part of its revision: a re-cut, not a change."""
    if shown is None or shown >= length:
        return ""
    return f"re-cut: showed {shown} of {length} characters"


def _revision_views(revisions: Sequence[Revision], current: int) -> list[RevisionView]:
    out = []
    previous: Revision | None = None
    for rev in revisions:
        label = f"Revision {rev.number}" + (" (current)" if rev.number == current else "")
        note = recut = ""
        if previous is None:
            body = Markup("{}").format(rev.text)
        else:
            old, new = normalize(previous.text), normalize(rev.text)
            if old.startswith(new) and len(new) < len(old):
                # Recorded before re-cuts were told apart (feedd 0.1): the
                # listing cut the text shorter, nothing in it changed.
                recut = recut_note(len(new), len(old)) + f" of revision {previous.number}"
                body = Markup("{}").format(rev.text)
            else:
                note = f"changes from revision {previous.number}"
                body = Markup(render_diff(previous.text, rev.text))
        out.append(
            RevisionView(
                rev.number,
                label,
                rev.number == current,
                rev.first_seen,
                rev.simhash,
                note,
                recut,
                body,
            )
        )
        previous = rev
    return out


def _sighting_views(sightings: Sequence[Sighting], lengths: dict[int, int]) -> list[SightingView]:
    return [
        SightingView(
            s.dump,
            s.line,
            s.category or "",
            s.date or "",
            s.kind,
            s.revision,
            s.seen_at,
            recut_note(s.shown, lengths.get(s.revision, 0)),
        )
        for s in sightings
    ]


def render_article(
    site: Site, article: Article, *, newer: Article | None, older: Article | None
) -> bytes:
    """The article page: its title, every revision with a diff to the one
    before, its sightings, and its neighbours in the listing."""
    revisions = sorted(article.revisions, key=lambda r: r.number)
    lengths = {r.number: len(normalize(r.text)) for r in revisions}
    shown = article.sightings[-SIGHTINGS_SHOWN:]
    title = shapes.title(article.text, site.title_max_chars)
    return _render(
        "article.html",
        site,
        "../",
        page_title(title, site.title),
        title=title,
        uid=article.uid,
        first_seen=article.first_seen,
        last_seen=article.last_seen,
        updated_at=article.updated_at,
        revision_count=article.revision_count,
        current_revision=article.current_revision,
        revisions=_revision_views(revisions, article.current_revision),
        sightings=_sighting_views(shown, lengths),
        sighting_count=len(article.sightings),
        hidden=len(article.sightings) - len(shown),
        newer=row(newer, site.title_max_chars) if newer else None,
        older=row(older, site.title_max_chars) if older else None,
    )


def render_message(
    site: Site,
    root: str,
    heading: str,
    message: str,
    *,
    matches: Sequence[Article] = (),
    more: int = 0,
) -> bytes:
    """A page that only says something: not found, ambiguous, a bad request."""
    return _render(
        "message.html",
        site,
        root,
        page_title(heading, site.title),
        heading=heading,
        message=message,
        matches=[row(a, 40) for a in matches],
        more=more,
    )


# ---------------------------------------------------------------------------
# /dumps, /dumps/<name>, /status


def render_dumps(
    site: Site,
    *,
    ingested: Sequence[DumpInfo],
    ingested_total: int,
    rejected: Sequence[tuple[DumpInfo, bool]],
    rejected_total: int,
) -> bytes:
    return _render(
        "dumps.html",
        site,
        "",
        page_title("dumps", site.title),
        ingested=ingested,
        ingested_total=ingested_total,
        rejected=rejected,
        rejected_total=rejected_total,
    )


def render_dump(site: Site, name: str, records: Sequence[DumpInfo]) -> bytes:
    return _render(
        "dump.html", site, "../", page_title(name, site.title), name=name, records=records
    )


def render_status(site: Site, report: dict[str, Any]) -> bytes:
    """What `feedd status` prints, from the same report."""
    return _render("status.html", site, "", page_title("status", site.title), report=report)


def render_activity(
    site: Site, *, per_day_90: Markup, per_day_all: Markup, per_hour_48: Markup
) -> bytes:
    """The three charts of new articles and updates."""
    return _render(
        "activity.html",
        site,
        "",
        page_title("activity", site.title),
        per_day_90=per_day_90,
        per_day_all=per_day_all,
        per_hour_48=per_hour_48,
    )
