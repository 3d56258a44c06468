"""Engines for SQLite (embedded default) and PostgreSQL (several workers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from feedd.errors import ConfigError

WRITE = "feedd_write"  # execution option: this transaction will write


def make_engine(url: str, *, busy_timeout_ms: int = 5000, sqlite_cache_mb: int = 64) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"config: database.url is not a database URL: {exc}") from None
    if parsed.drivername == "postgresql":
        # SQLAlchemy 2.1 defaults postgresql:// to psycopg 3 too, but older
        # versions do not; say it explicitly so the pin range behaves alike.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout_ms, sqlite_cache_mb)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, pool_size=4, max_overflow=4)
    raise ConfigError(
        f"config: database.url: unsupported database {parsed.get_backend_name()!r}; "
        "use sqlite:/// or postgresql+psycopg://"
    )


def _sqlite_engine(url: Any, busy_timeout_ms: int, cache_mb: int) -> Engine:
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # Take transaction control from pysqlite so that BEGIN IMMEDIATE is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # NORMAL in WAL mode is still crash-safe (a power cut may lose the last
        # commits, never corrupt); FULL would fsync every dump.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # The fingerprint indexes take random keys, so every new text touches
        # pages all over them; SQLite's default 2 MB cache made each of those
        # a read from the OS once the history outgrew it (docs/performance.md).
        cursor.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
        record.info[_PAGE_SIZE] = cursor.execute("PRAGMA page_size").fetchone()[0]
        _bound_wal(dbapi_connection, record.info)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A write transaction takes the write lock up front: a deferred BEGIN
        # that upgrades later fails with "database is locked" under contention
        # instead of waiting for busy_timeout.
        immediate = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
        if immediate:  # only a writer grows the database: follow its size
            _bound_wal(conn.connection.dbapi_connection, conn.info)

    return engine


# The WAL is checkpointed once it holds about as many pages as the database
# (the next power of two, at least SQLite's default of about 1,000 pages and at
# most 16,384, 64 MB with 4 KB pages), and cut back to that length after each
# checkpoint (journal_size_limit). Checkpoints copy each changed page once
# however often it changed since the last, and a big database's random index
# pages change again and again: at SQLite's default cadence the copies grew to
# a fifth of backfill time by 300k lines, so a big database keeps the 64 MB
# cadence. A small one needs no such amortising, and at a fixed 64 MB its WAL
# grew to 64 MB beside a 3 MB database (docs/performance.md, "The WAL").
WAL_MIN_PAGES = 1024
WAL_MAX_PAGES = 16384
_PAGE_SIZE = "feedd_sqlite_page_size"  # keys in the pool's per-connection info
_WAL_PAGES = "feedd_sqlite_wal_pages"


def wal_pages(database_pages: int) -> int:
    """Checkpoint cadence, in pages, for a database of that many pages."""
    return max(WAL_MIN_PAGES, min(WAL_MAX_PAGES, 1 << max(0, database_pages - 1).bit_length()))


def _bound_wal(dbapi_connection: Any, info: dict[str, Any]) -> None:
    cursor = dbapi_connection.cursor()
    try:
        pages = wal_pages(cursor.execute("PRAGMA page_count").fetchone()[0])
        if info.get(_WAL_PAGES) != pages:  # changes 5 times in a database's life
            cursor.execute(f"PRAGMA wal_autocheckpoint={pages}")
            cursor.execute(f"PRAGMA journal_size_limit={pages * info[_PAGE_SIZE]}")
            info[_WAL_PAGES] = pages
    finally:
        cursor.close()
