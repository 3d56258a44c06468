"""Tables. The schema is owned by the Alembic migrations in ``migrations/``;
these definitions must match them (tests/test_migrations.py compares the two).

Except the full-text search indexes (feedd/store/search.py), which no engine
spells alike and SQLAlchemy cannot describe: migration 0004 creates the FTS5
table ``revisions_fts`` (with its shadow tables ``revisions_fts_*``) on SQLite
and the GIN index ``ix_revisions_text_trgm`` on PostgreSQL, migration 0005 the
function ``feedd_grams`` and the GIN index ``ix_revisions_text_grams`` on
PostgreSQL; and the partial index ``ix_sightings_category`` (0005, both
engines). ``include_name`` keeps them out of the comparison and of autogenerate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Named constraints let Alembic's batch mode on SQLite recreate tables reliably.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

SEARCH_TABLE = "revisions_fts"
SEARCH_INDEX = "ix_revisions_text_trgm"
# PostgreSQL: the characters and pairs of characters of each text (0005).
GRAMS_FUNCTION = "feedd_grams"
GRAMS_INDEX = "ix_revisions_text_grams"
# Both engines: sightings (category, article_id) WHERE category IS NOT NULL
# (0005), the listing's category filter; partial, since most lines have none.
# Outside the metadata like the two above: a partial index is dialect options,
# and declaring those loads SQLAlchemy's PostgreSQL dialect (30 ms of every
# command's start, `feedd status` included).
CATEGORY_INDEX = "ix_sightings_category"


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's ``include_name`` hook: False for the objects made outside the
    metadata (the search indexes, the partial category index)."""
    if type_ == "table" and name is not None:
        return name != SEARCH_TABLE and not name.startswith(SEARCH_TABLE + "_")
    return not (type_ == "index" and name in (SEARCH_INDEX, GRAMS_INDEX, CATEGORY_INDEX))


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the column on every engine."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        result: datetime = value.replace(tzinfo=UTC)
        return result


dumps = Table(
    "dumps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("seq", BigInteger),  # NNN of NNN_<hex>.txt; None for other names
    Column("version", Integer, nullable=False, default=1),  # same name, new content
    Column("observed_at", UTCDateTime, nullable=False),
    Column("ingested_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # ingested | rejected
    Column("error", Text),
    Column("encoding", String(16)),
    Column("item_count", Integer, nullable=False, default=0),
    Column("noise_count", Integer, nullable=False, default=0),
    Column("new_count", Integer, nullable=False, default=0),
    Column("repeat_count", Integer, nullable=False, default=0),
    Column("update_count", Integer, nullable=False, default=0),
    Column("duration_ms", Integer, nullable=False, default=0),
    Column("location", Text),  # where the file was left (archive or quarantine)
    UniqueConstraint("name", "content_hash", name="uq_dumps_name_content"),
)

articles = Table(
    "articles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(36), nullable=False, unique=True),
    Column("current_revision", Integer, nullable=False, default=1),
    Column("revision_count", Integer, nullable=False, default=1),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),  # when the latest revision appeared
    Column("first_dump_id", Integer, ForeignKey("dumps.id"), nullable=False),
    Column("first_line", Integer, nullable=False),
    # Hash of the current text's opening (feedd.core.fingerprint.head_key):
    # finds re-cuts of it without a fingerprint.
    Column("head_hash", BigInteger),
    Index("ix_articles_first_seen", "first_seen", "first_dump_id"),
    Index("ix_articles_head_hash", "head_hash"),
)

revisions = Table(
    "revisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("norm_hash", BigInteger, nullable=False),
    Column("simhash", BigInteger, nullable=False),
    Column("band0", Integer, nullable=False),
    Column("band1", Integer, nullable=False),
    Column("band2", Integer, nullable=False),
    Column("band3", Integer, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("first_dump_id", Integer, ForeignKey("dumps.id"), nullable=False),
    Column("first_line", Integer, nullable=False),
    UniqueConstraint("article_id", "number", name="uq_revisions_article_number"),
    Index("ix_revisions_norm_hash", "norm_hash"),
    Index("ix_revisions_band0", "band0"),
    Index("ix_revisions_band1", "band1"),
    Index("ix_revisions_band2", "band2"),
    Index("ix_revisions_band3", "band3"),
    # The activity charts: updates (number > 1) per bucket of first_seen.
    Index("ix_revisions_first_seen", "first_seen", "number"),
)

# The candidate index: the segment hashes of each article's current text, one
# row per (hash, article) whatever the article's number of revisions.
segments = Table(
    "segments",
    metadata,
    Column("hash", BigInteger, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id"), primary_key=True),
    # SQLite: the rows in the primary key's B-tree, not in a second one
    # (migration 0006): half the random page writes per segment.
    sqlite_with_rowid=False,
)

# Document frequency: how many articles' current texts hold each segment hash
# (the row count of ``segments`` per hash, kept so that rarity is one lookup).
segment_df = Table(
    "segment_df",
    metadata,
    Column("hash", BigInteger, primary_key=True),
    Column("articles", Integer, nullable=False),
    sqlite_with_rowid=False,
)

sightings = Table(
    "sightings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dump_id", Integer, ForeignKey("dumps.id"), nullable=False),
    Column("line", Integer, nullable=False),
    Column("article_id", Integer, ForeignKey("articles.id"), nullable=False),
    Column("revision_id", Integer, ForeignKey("revisions.id"), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("category", String(64)),
    Column("date", String(16)),
    # Characters of the normalised text this line showed (a re-cut shows fewer
    # or more than its revision's text).
    Column("shown_chars", Integer),
    UniqueConstraint("dump_id", "line", name="uq_sightings_dump_line"),
    Index("ix_sightings_article_id", "article_id"),
    # CATEGORY_INDEX (migration 0005) serves the listing's category filter.
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),  # host:pid:start
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("last_scan_at", UTCDateTime),
    Column("next_scan_at", UTCDateTime),
    Column("status", String(16), nullable=False),  # running | stopped
    Column("pending", Integer, nullable=False, default=0),
    Column("oldest_pending_at", UTCDateTime),
)
