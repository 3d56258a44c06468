"""SqlStore: every query feedd runs, for SQLite and PostgreSQL alike.

Methods raise ``StorageError`` (or ``DatabaseLocked``) for operational
database failures; anything else is a bug and propagates as is.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, and_, func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from feedd.core.text import hex64
from feedd.errors import DatabaseLocked, StorageError
from feedd.model import Article, DumpInfo, Revision, Sighting, Totals, UpdateEntry, WorkerInfo
from feedd.store import migrate
from feedd.store.engine import WRITE
from feedd.store.ingest_tx import IngestTx, chunks, dump_info
from feedd.store.schema import articles, dumps, revisions, sightings, workers

__all__ = ["DumpRecord", "IngestTx", "SqlStore"]

P = ParamSpec("P")
_UID_PREFIX = re.compile(r"[0-9a-f-]{4,36}")
T = TypeVar("T")

_ADVISORY_INGEST = 0x66656564_01  # serialises match-or-create across PG workers


@contextmanager
def translated_errors(driver_errors: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """The one place where database failures become feedd's errors.

    Operational failures (locked, unreachable, a connection lost) become
    DatabaseLocked or StorageError, whether SQLAlchemy wrapped them or they came
    straight from the driver (IngestTx runs on the DBAPI connection); anything
    else is a bug and propagates as is.
    """
    try:
        yield
    except OperationalError as exc:
        raise _storage_error(exc.orig) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StorageError(f"lost the database connection: {exc.orig}") from exc
        raise
    except driver_errors as exc:
        raise _storage_error(exc) from exc


def wrap_errors(fn: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with translated_errors():
            return fn(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class DumpRecord:
    name: str
    content_hash: str
    size: int
    seq: int | None
    observed_at: datetime
    ingested_at: datetime
    status: str
    error: str | None = None
    encoding: str | None = None
    noise_count: int = 0
    location: str | None = None


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dry: Connection | None = None
        self._batch: _Batch | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # lifecycle --------------------------------------------------------------
    @wrap_errors
    def upgrade(self) -> None:
        migrate.upgrade(self.engine)

    @wrap_errors
    def check(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @wrap_errors
    def schema_revision(self) -> str | None:
        """The schema's Alembic revision (None: no feedd schema). A read only."""
        return migrate.current_revision(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            with conn.execution_options(**{WRITE: True}).begin():
                _lock_ingest(conn)
                yield conn

    @contextmanager
    def dry_run(self) -> Iterator[None]:
        """Ingest for real inside one transaction, then roll all of it back."""
        with self.engine.connect() as conn:
            trans = conn.execution_options(**{WRITE: True}).begin()
            self._dry = conn
            try:
                yield
            finally:
                self._dry = None
                trans.rollback()

    @contextmanager
    def batch(self, dumps: int, seconds: float = 2.0) -> Iterator[None]:
        """Group the dumps ingested inside into transactions of up to ``dumps``
        dumps or ``seconds`` seconds, whichever comes first.

        For backfills: a commit writes every page a dump touched (~0.6 ms per
        dump on SQLite), most of them the same pages again. Each transaction
        still holds whole dumps only, so a crash or an error rolls back to the
        last commit, as if the dumps after it had never started; running the
        backfill again ingests them. Nested in ``dry_run`` it does nothing.
        """
        if self._dry is not None or self._batch is not None or dumps <= 1:
            yield
            return
        with translated_errors(self._driver_errors), self.engine.connect() as conn:
            batch = _Batch(conn.execution_options(**{WRITE: True}), dumps, seconds)
            self._batch = batch
            try:
                yield
                batch.commit()
            finally:
                self._batch = None
                batch.rollback()

    @contextmanager
    def ingest_transaction(self) -> Iterator[IngestTx]:
        """One dump's writes. On any exception nothing of it is kept."""
        if self._dry is not None:
            with self._dry.begin_nested():
                yield IngestTx(self._dry)
            return
        with translated_errors(self._driver_errors):
            if self._batch is not None:
                with self._batch.dump() as conn:
                    yield IngestTx(conn)
                return
            with self._write() as conn:
                yield IngestTx(conn)

    @functools.cached_property
    def _driver_errors(self) -> tuple[type[Exception], ...]:
        dbapi = self.engine.dialect.loaded_dbapi
        return (dbapi.OperationalError, dbapi.InterfaceError)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with translated_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    # reads ------------------------------------------------------------------
    @contextmanager
    def lookup(self) -> Iterator[IngestTx]:
        """The matcher's queries in a read transaction, for `feedd explain`."""
        with self._read() as conn:
            yield IngestTx(conn)

    def known_dump(self, name: str, content_hash: str) -> bool:
        with self._read() as conn:
            return (
                conn.execute(
                    select(dumps.c.id).where(
                        dumps.c.name == name, dumps.c.content_hash == content_hash
                    )
                ).first()
                is not None
            )

    def known_sizes(self, names: Sequence[str]) -> dict[str, set[int]]:
        """Sizes recorded per dump name (any status): to tell pending files apart."""
        out: dict[str, set[int]] = {}
        with self._read() as conn:
            for chunk in chunks(sorted(set(names)), 500):
                for name, size in conn.execute(
                    select(dumps.c.name, dumps.c.size).where(dumps.c.name.in_(chunk))
                ):
                    out.setdefault(name, set()).add(size)
        return out

    def totals(self) -> Totals:
        with self._read() as conn:

            def count(table: Any, *where: Any) -> int:
                return int(
                    conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
                )

            kinds: dict[str, int] = dict(
                conn.execute(
                    select(sightings.c.kind, func.count()).group_by(sightings.c.kind)
                ).all()
            )
            return Totals(
                dumps=count(dumps, dumps.c.status == "ingested"),
                rejected=count(dumps, dumps.c.status == "rejected"),
                articles=count(articles),
                revisions=count(revisions),
                sightings=count(sightings),
                kinds={k: int(kinds.get(k, 0)) for k in ("new", "repeat", "update")},
            )

    def dumps(self, *, status: str | None = None, limit: int | None = None) -> list[DumpInfo]:
        with self._read() as conn:
            q = select(dumps).order_by(dumps.c.id.desc())
            if status:
                q = q.where(dumps.c.status == status)
            if limit:
                q = q.limit(limit)
            return [dump_info(r) for r in conn.execute(q)]

    def last_seq(self) -> int | None:
        """The highest dump number (NNN of NNN_<hex>.txt) ingested so far."""
        with self._read() as conn:
            value: int | None = conn.execute(
                select(func.max(dumps.c.seq)).where(dumps.c.status == "ingested")
            ).scalar()
            return value

    def last_change(self) -> datetime | None:
        with self._read() as conn:
            value: datetime | None = conn.execute(
                select(func.max(articles.c.updated_at))
            ).scalar_one()
            return value

    def articles(self, *, limit: int | None = None, newest_first: bool = True) -> list[Article]:
        with self._read() as conn:
            q = _article_select().order_by(*_feed_order(newest_first))
            if limit:
                q = q.limit(limit)
            return [_article(r) for r in conn.execute(q)]

    def article(self, ref: str | int, *, full: bool = True) -> Article | None:
        """By uid, a unique uid prefix (at least 4 hex digits), or numeric id."""
        with self._read() as conn:
            rows: Sequence[Any] = []
            key = str(ref).strip().lower()
            if len(key) >= 4 and _UID_PREFIX.fullmatch(key):
                rows = conn.execute(
                    _article_select()
                    .where(articles.c.uid.startswith(key, autoescape=True))
                    .limit(2)
                ).all()
            if not rows and key.isascii() and key.isdigit() and len(key) <= 18:
                rows = conn.execute(_article_select().where(articles.c.id == int(key))).all()
            if len(rows) != 1:
                return None
            art = _article(rows[0])
            return _with_history(conn, [art])[0] if full else art

    def articles_by_prefix(self, prefix: str, *, limit: int = 5) -> tuple[int, list[Article]]:
        """How many articles' uids start with ``prefix``, and the first ``limit``
        of them (without history), oldest first."""
        with self._read() as conn:
            where = articles.c.uid.startswith(prefix.strip().lower(), autoescape=True)
            count = int(
                conn.execute(select(func.count()).select_from(articles).where(where)).scalar_one()
            )
            rows = conn.execute(
                _article_select().where(where).order_by(articles.c.id).limit(limit)
            ).all()
            return count, [_article(r) for r in rows]

    def export(self, *, batch: int = 500) -> Iterator[Article]:
        """Every article with revisions and sightings, in first-seen order."""
        last = 0
        while True:
            with self._read() as conn:
                rows = conn.execute(
                    _article_select()
                    .where(articles.c.id > last)
                    .order_by(articles.c.id)
                    .limit(batch)
                ).all()
                if not rows:
                    return
                arts = _with_history(conn, [_article(r) for r in rows])
            yield from arts
            last = arts[-1].id

    def updates(self, *, limit: int) -> list[UpdateEntry]:
        with self._read() as conn:
            rows = conn.execute(
                select(
                    revisions.c.article_id,
                    revisions.c.number,
                    revisions.c.text,
                    revisions.c.first_seen,
                    revisions.c.first_line,
                )
                .where(revisions.c.number > 1)
                .order_by(revisions.c.first_seen.desc(), revisions.c.id.desc())
                .limit(limit)
            ).all()
            ids = sorted({r[0] for r in rows})
            arts = {
                a.id: a
                for a in (
                    _article(r)
                    for r in conn.execute(_article_select().where(articles.c.id.in_(ids)))
                )
            }
            return [UpdateEntry(arts[aid], n, t, fs, line) for aid, n, t, fs, line in rows]

    @wrap_errors
    def set_dump_location(self, name: str, content_hash: str, location: str) -> None:
        with self._write() as conn:
            conn.execute(
                dumps.update()
                .where(dumps.c.name == name, dumps.c.content_hash == content_hash)
                .values(location=location)
            )

    def rejected_dumps(
        self, *, outstanding_only: bool = False, limit: int | None = None
    ) -> tuple[int, list[tuple[DumpInfo, bool]]]:
        """Rejection records, newest first, each with whether a dump of the same
        name was ingested after it (resolved); and how many match in all.
        ``outstanding_only`` leaves the resolved ones out."""
        later = dumps.alias("later")
        resolved = (
            select(later.c.id)
            .where(
                later.c.name == dumps.c.name,
                later.c.status == "ingested",
                later.c.id > dumps.c.id,
            )
            .exists()
        )
        where = [dumps.c.status == "rejected"]
        if outstanding_only:
            where.append(~resolved)
        with self._read() as conn:
            count = int(
                conn.execute(select(func.count()).select_from(dumps).where(*where)).scalar_one()
            )
            q = select(dumps, resolved.label("resolved")).where(*where).order_by(dumps.c.id.desc())
            if limit:
                q = q.limit(limit)
            return count, [(dump_info(r), bool(r.resolved)) for r in conn.execute(q)]

    @wrap_errors
    def clear_rejected(self, name: str | None = None) -> int:
        """Delete rejection records (all, or those of dump ``name``); returns how
        many. Only records: files are never touched."""
        with self._write() as conn:
            q = dumps.delete().where(dumps.c.status == "rejected")
            if name is not None:
                q = q.where(dumps.c.name == name)
            return int(conn.execute(q).rowcount)

    # workers ----------------------------------------------------------------
    @wrap_errors
    def heartbeat(self, info: WorkerInfo) -> None:
        values = dict(info.__dict__)
        with self.engine.connect() as conn, conn.execution_options(**{WRITE: True}).begin():
            updated = conn.execute(
                workers.update().where(workers.c.id == info.id).values(**values)
            ).rowcount
            if not updated:
                conn.execute(workers.insert().values(**values))

    def workers(self) -> list[WorkerInfo]:
        with self._read() as conn:
            rows = conn.execute(select(workers).order_by(workers.c.heartbeat_at.desc())).all()
            return [WorkerInfo(**r._mapping) for r in rows]


def _lock_ingest(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_INGEST})")


def _storage_error(orig: BaseException | None) -> StorageError:
    message = str(orig).lower()
    if "locked" in message or "busy" in message:
        return DatabaseLocked()
    return StorageError(f"database error: {orig}")


class _Batch:
    """The open transaction of ``SqlStore.batch`` and when to commit it."""

    def __init__(self, conn: Connection, dumps: int, seconds: float) -> None:
        self.conn = conn
        self.limit = dumps
        self.seconds = seconds
        self.trans: Any = None
        self.count = 0
        self.started = 0.0

    @contextmanager
    def dump(self) -> Iterator[Connection]:
        if self.trans is None:
            self.trans = self.conn.begin()
            _lock_ingest(self.conn)
            self.count, self.started = 0, time.monotonic()
        try:
            yield self.conn
        except BaseException:
            # Part of a dump must never be committed: drop the whole batch.
            self.rollback()
            raise
        self.count += 1
        if self.count >= self.limit or time.monotonic() - self.started >= self.seconds:
            self.commit()

    def commit(self) -> None:
        if self.trans is not None:
            trans, self.trans = self.trans, None
            trans.commit()

    def rollback(self) -> None:
        if self.trans is not None:
            trans, self.trans = self.trans, None
            trans.rollback()


def _feed_order(newest_first: bool) -> tuple[Any, ...]:
    # Within one dump a listing puts the newest item on top, so ties on the
    # first-seen time are broken by dump, then by line.
    if newest_first:
        return (
            articles.c.first_seen.desc(),
            articles.c.first_dump_id.desc(),
            articles.c.first_line,
        )
    return (articles.c.first_seen, articles.c.first_dump_id, articles.c.first_line.desc())


def _article_select() -> Any:
    current = revisions.alias("current")
    first = revisions.alias("first")
    # last_seen is derived, not stored: keeping a column current would cost
    # an UPDATE per dump on the hottest path (most lines are repeats).
    last_seen = (
        select(func.max(sightings.c.seen_at))
        .where(sightings.c.article_id == articles.c.id)
        .scalar_subquery()
    )
    return (
        select(
            articles,
            last_seen.label("last_seen"),
            current.c.text.label("text"),
            first.c.text.label("first_text"),
            current.c.first_line.label("updated_line"),
        )
        .join(
            current,
            and_(
                current.c.article_id == articles.c.id,
                current.c.number == articles.c.current_revision,
            ),
        )
        .join(first, and_(first.c.article_id == articles.c.id, first.c.number == 1))
    )


def _article(row: Any) -> Article:
    m = row._mapping
    return Article(
        id=m["id"],
        uid=m["uid"],
        first_seen=m["first_seen"],
        last_seen=m["last_seen"],
        updated_at=m["updated_at"],
        current_revision=m["current_revision"],
        revision_count=m["revision_count"],
        text=m["text"],
        first_text=m["first_text"],
        first_line=m["first_line"],
        updated_line=m["updated_line"],
    )


def _with_history(conn: Connection, arts: list[Article]) -> list[Article]:
    ids = [a.id for a in arts]
    revs: dict[int, list[Revision]] = {i: [] for i in ids}
    for r in conn.execute(
        select(
            revisions.c.article_id,
            revisions.c.number,
            revisions.c.text,
            revisions.c.simhash,
            revisions.c.first_seen,
        )
        .where(revisions.c.article_id.in_(ids))
        .order_by(revisions.c.article_id, revisions.c.number)
    ):
        revs[r[0]].append(Revision(r[1], r[2], hex64(r[3]), r[4]))
    sights: dict[int, list[Sighting]] = {i: [] for i in ids}
    for row in conn.execute(
        select(
            sightings.c.article_id,
            dumps.c.name,
            sightings.c.line,
            revisions.c.number,
            sightings.c.kind,
            sightings.c.seen_at,
            sightings.c.category,
            sightings.c.date,
            sightings.c.shown_chars,
        )
        .join(dumps, dumps.c.id == sightings.c.dump_id)
        .join(revisions, revisions.c.id == sightings.c.revision_id)
        .where(sightings.c.article_id.in_(ids))
        .order_by(sightings.c.article_id, sightings.c.dump_id, sightings.c.line)
    ):
        sights[row[0]].append(Sighting(*row[1:]))
    return [
        Article(**{**a.__dict__, "revisions": tuple(revs[a.id]), "sightings": tuple(sights[a.id])})
        for a in arts
    ]
