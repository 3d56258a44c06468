"""Plain records passed between the store, the feeds and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Revision:
    number: int
    text: str
    simhash: str  # 16 hex digits
    first_seen: datetime


@dataclass(frozen=True)
class Sighting:
    dump: str
    line: int
    revision: int
    kind: str
    seen_at: datetime
    category: str | None = None
    date: str | None = None
    shown: int | None = None  # characters of normalised text the line showed


@dataclass(frozen=True)
class Article:
    id: int
    uid: str
    first_seen: datetime
    last_seen: datetime
    updated_at: datetime
    current_revision: int
    revision_count: int
    text: str  # the current revision's text
    first_text: str = ""
    revisions: tuple[Revision, ...] = field(default=())
    sightings: tuple[Sighting, ...] = field(default=())
    # Dump lines: where the article was first seen, and where its current
    # revision was. With the dump's time they give each feed entry its own time.
    first_line: int = 0
    updated_line: int = 0


@dataclass(frozen=True)
class DumpInfo:
    id: int
    name: str
    version: int
    status: str
    observed_at: datetime
    ingested_at: datetime
    items: int
    new: int
    repeat: int
    update: int
    error: str | None
    location: str | None
    duration_ms: int


@dataclass(frozen=True)
class UpdateEntry:
    """One new revision (>= 2) for the updates feed."""

    article: Article
    number: int
    text: str
    first_seen: datetime
    line: int = 0  # the dump line where this revision was first seen


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    last_scan_at: datetime | None
    next_scan_at: datetime | None
    status: str
    pending: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True)
class Totals:
    dumps: int
    rejected: int
    articles: int
    revisions: int
    sightings: int
    kinds: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dumps": self.dumps,
            "rejected": self.rejected,
            "articles": self.articles,
            "revisions": self.revisions,
            "sightings": self.sightings,
            "kinds": dict(self.kinds),
        }
