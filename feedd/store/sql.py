"""SqlStore: every query feedd runs, for SQLite and PostgreSQL alike.

Methods raise ``StorageError`` (or ``DatabaseLocked``, ``DatabaseBusy``) for
operational database failures; anything else is a bug and propagates as is.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    String,
    and_,
    bindparam,
    case,
    column,
    func,
    inspect,
    literal,
    literal_column,
    or_,
    select,
    text,
    type_coerce,
    union_all,
)
from sqlalchemy.exc import DBAPIError, OperationalError

from feedd.core.text import hex64
from feedd.errors import DatabaseBusy, DatabaseLocked, StorageError
from feedd.model import Article, DumpInfo, Revision, Sighting, Totals, UpdateEntry, WorkerInfo
from feedd.store.engine import WRITE
from feedd.store.rows import chunks, dump_info
from feedd.store.schema import (
    GRAMS_FUNCTION,
    GRAMS_INDEX,
    UTCDateTime,
    articles,
    dumps,
    revisions,
    sightings,
    workers,
)
from feedd.store.search import (
    DENSE_DOCS,
    MAX_PREFIX_TERMS,
    Terms,
    estimated_docs,
    fts5_match,
    like_pattern,
    prefix_range,
    rarest_grams,
    unsupported_message,
)
from feedd.store.search import parse as parse_query

if TYPE_CHECKING:
    from feedd.store.ingest_tx import IngestTx

__all__ = ["DumpRecord", "IngestStats", "IngestTx", "SqlStore"]


def __getattr__(name: str) -> Any:
    # IngestTx brings in the matcher (numpy); a store that only reads
    # (`feedd status`) never loads it.
    if name == "IngestTx":
        from feedd.store.ingest_tx import IngestTx

        return IngestTx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


@dataclass(frozen=True)
class IngestStats:
    """Sums over rows of the dumps table, for /metrics (feedd.web.metrics)."""

    ingested: int
    rejected: int
    kinds: dict[str, int]  # new, repeat, update: item lines of the ingested dumps
    duration_ms: int  # summed over the ingested dumps
    # Ingested dumps that took at most each bound (in ms) of ``ingest_stats``.
    at_most: tuple[int, ...]
    last_ingested_at: datetime | None
    rows: int  # the rows summed (any status)
    last_id: int  # the highest id summed (``after_id`` when none)
    table_rows: int  # every row of the table, at the same moment


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
        from feedd.store import migrate

        migrate.upgrade(self.engine)

    @wrap_errors
    def check(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @wrap_errors
    def schema_revision(self) -> str | None:
        """The schema's Alembic revision (None: no feedd schema). A read only."""
        # alembic_version read here, as Alembic's MigrationContext reads it:
        # importing Alembic costs more than the rest of `feedd status`.
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        if len(rows) > 1:
            raise StorageError(f"the schema has several Alembic heads: {', '.join(rows)}")
        return rows[0] if rows else None

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
        from feedd.store.ingest_tx import IngestTx

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
        from feedd.store.ingest_tx import IngestTx

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

    def ingest_stats(self, bounds_ms: Sequence[int] = (), *, after_id: int = 0) -> IngestStats:
        """The dumps rows after ``after_id`` summed in one query: counts by
        status, item lines by kind, and how many ingested dumps took at most
        each of ``bounds_ms`` (a latency histogram's buckets) to ingest; with
        the table's row count, so that a caller adding these to earlier sums
        can tell whether rows were deleted since.

        A full scan costs ~200 ms at 100k dumps (the CASEs, not the reads: a
        covering index saves nothing), the rows after a recent id ~2 ms.
        """
        ok = dumps.c.status == "ingested"

        def total(where: Any, value: Any = 1) -> Any:
            return func.coalesce(func.sum(case((where, value), else_=0)), 0)

        columns = [
            total(ok),
            total(dumps.c.status == "rejected"),
            total(ok, dumps.c.new_count),
            total(ok, dumps.c.repeat_count),
            total(ok, dumps.c.update_count),
            total(ok, dumps.c.duration_ms),
            func.count(),
            func.coalesce(func.max(dumps.c.id), after_id),
            select(func.count()).select_from(dumps).scalar_subquery(),
            *(total(and_(ok, dumps.c.duration_ms <= int(bound))) for bound in bounds_ms),
            type_coerce(func.max(case((ok, dumps.c.ingested_at))), UTCDateTime),
        ]
        with self._read() as conn:
            row = conn.execute(select(*columns).where(dumps.c.id > after_id)).one()
        counts = [int(v) for v in row[:-1]]
        return IngestStats(
            ingested=counts[0],
            rejected=counts[1],
            kinds=dict(zip(("new", "repeat", "update"), counts[2:5], strict=True)),
            duration_ms=counts[5],
            rows=counts[6],
            last_id=counts[7],
            table_rows=counts[8],
            at_most=tuple(counts[9:]),
            last_ingested_at=row[-1],
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
        """Articles without history in the listing order (newest first, or
        oldest first); the first ``limit`` of them (None or 0: all)."""
        with self._read() as conn:
            if limit:
                # The page's ids through the first-seen index, then their rows:
                # sorted after the joins, SQLite sorted every revision for a
                # page of the feed (0.43 s at 100k articles, bench/web.py's
                # history, instead of 1.1 ms).
                q = _page_of(select(articles.c.id), newest_first, limit)
            else:
                q = _article_select().order_by(*_feed_order(newest_first))
            return [_article(r) for r in conn.execute(q)]

    def search(
        self,
        query: str,
        *,
        limit: int = 50,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[Article]:
        """Articles whose current text holds every word of ``query`` (as
        substrings; feedd/store/search.py), without history, in the order of
        ``articles()``: newest first. Pages as ``browse``'s: ``before_id``
        (the last article of the previous page) gives the ones after it,
        ``after_id`` the ones just before it; an unknown id, an empty page. At
        most ``limit`` (capped at MAX_PAGE) articles.

        A query that can match nothing (blank, NUL) gives an empty list.
        Raises InvalidQuery for more than search.MAX_TERMS words, ValueError
        for both ids, StorageError.
        """
        if before_id is not None and after_id is not None:
            raise ValueError("give before_id or after_id, not both")
        terms = parse_query(query)
        if terms is None or limit <= 0:
            return []
        anchor = after_id if before_id is None else before_id
        with self._read() as conn:
            bound: dict[str, Any] = {"limit": min(limit, MAX_PAGE)}
            direction = None
            if anchor is not None:
                position = _feed_position(conn, anchor)
                if position is None:
                    return []
                bound.update(zip(("seen", "dump_id", "line"), position, strict=True))
                direction = "newer" if before_id is None else "older"
            _plan_each_search(conn, page=True)
            params = _search_params(conn, terms, counting=False)
            if params is None:
                return []
            q = _search_statement(self.dialect, tuple(params), direction, count=False)
            return [_article(r) for r in conn.execute(q, {**params, **bound})]

    def search_count(self, query: str) -> int:
        """How many articles ``search(query)`` finds in all. Its cost grows with
        the matches, and on SQLite for a word of one or two characters with
        too many trigrams to ask the index (search.MAX_PREFIX_TERMS): a scan
        (bench/search.py). Raises InvalidQuery, StorageError."""
        terms = parse_query(query)
        if terms is None:
            return 0
        with self._read() as conn:
            _plan_each_search(conn, page=False)
            params = _search_params(conn, terms, counting=True)
            if params is None:
                return 0
            q = _search_statement(self.dialect, tuple(params), None, count=True)
            return int(conn.execute(q, params).scalar_one())

    def article(self, ref: str | int, *, full: bool = True) -> Article | None:
        """By id (an int), or by uid or a unique uid prefix of at least 4
        characters (a str). A str of digits is a uid prefix, never an id: uids
        are hex, so "1234" may begin one (README, "a number is a uid prefix");
        and an id is never read as a uid prefix. None when nothing, or more
        than one article, matches. Raises StorageError."""
        with self._read() as conn:
            if isinstance(ref, int):
                if not 0 < ref < 1 << 31:  # articles.id is a 32-bit INTEGER on PostgreSQL
                    return None
                rows = conn.execute(_article_select().where(articles.c.id == ref)).all()
            else:
                key = ref.strip().lower()
                if len(key) < 4 or not _UID_PREFIX.fullmatch(key):
                    return None
                rows = conn.execute(
                    _article_select()
                    .where(articles.c.uid.startswith(key, autoescape=True))
                    .limit(2)
                ).all()
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

    # browsing (feedd/web) ---------------------------------------------------
    def browse(
        self,
        *,
        since: datetime | None = None,
        updated_only: bool = False,
        category: str | None = None,
        contains: Sequence[str] = (),
        limit: int = 50,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> list[Article]:
        """Articles without history, newest first (the order of ``articles()``),
        that pass every filter given: first seen at or after ``since``; more
        than one revision; seen at least once under ``category``; a current
        text holding each of ``contains`` (LIKE, case-insensitive for Latin).

        Keyset pages, never OFFSET, as ``search``'s: ``before_id`` (the last
        article of the previous page) gives the ``limit`` articles that come
        after it in the listing, older; ``after_id`` (the first article of the
        next page) the ``limit`` closest ones that come before it, newer; both
        pages newest first (an unknown id: an empty list). Each page is one
        indexed, LIMITed query; last_seen and the revision count come with
        the rows. Raises ValueError for both ids, StorageError.
        """
        if before_id is not None and after_id is not None:
            raise ValueError("give before_id or after_id, not both")
        where: list[Any] = []
        if since is not None:
            where.append(articles.c.first_seen >= since)
        if updated_only:
            where.append(articles.c.revision_count > 1)
        if category is not None:
            where.append(
                select(sightings.c.id)
                .where(sightings.c.article_id == articles.c.id, sightings.c.category == category)
                .exists()
            )
        ids = select(articles.c.id)
        if contains:
            needle = revisions.alias("needle")
            ids = ids.join(
                needle,
                and_(
                    needle.c.article_id == articles.c.id,
                    needle.c.number == articles.c.current_revision,
                ),
            )
            where += [needle.c.text.icontains(term, autoescape=True) for term in contains]
        newest_first = after_id is None  # a page back is read oldest first, from its end
        with self._read() as conn:
            anchor = after_id if before_id is None else before_id
            if anchor is not None:
                position = _feed_position(conn, anchor)
                if position is None:
                    return []
                where.append(_beyond(position, older=newest_first))
            rows = conn.execute(_page_of(ids.where(*where), newest_first, limit)).all()
        found = [_article(r) for r in rows]
        return found if newest_first else found[::-1]

    def neighbours(self, article_id: int) -> tuple[Article | None, Article | None]:
        """The articles just before and just after this one in ``articles()``'s
        order (newest first): (newer, older), without history; None at the ends
        or for an unknown id. Raises StorageError."""
        with self._read() as conn:
            position = _feed_position(conn, article_id)
            if position is None:
                return None, None
            out: list[Article | None] = []
            for older in (False, True):
                ids = select(articles.c.id).where(_beyond(position, older=older))
                row = conn.execute(_page_of(ids, older, 1)).first()
                out.append(_article(row) if row is not None else None)
            return out[0], out[1]

    def categories(self, *, limit: int = 500) -> list[str]:
        """The categories the dumps gave (noise lines above items), sorted.
        A scan of the sightings: callers cache it. Raises StorageError."""
        with self._read() as conn:
            rows = conn.execute(
                select(sightings.c.category)
                .where(sightings.c.category.is_not(None), sightings.c.category != "")
                .group_by(sightings.c.category)
                .order_by(sightings.c.category)
                .limit(limit)
            )
            return [str(r[0]) for r in rows]

    def articles_by_uid(
        self, ref: str, *, limit: int = 5, full: bool = True
    ) -> tuple[int, list[Article]]:
        """Articles whose uid is ``ref`` or starts with it: how many, and the
        first ``limit`` of them, oldest first; with their history when exactly
        one matches and ``full``. Through the uid index (LIKE cannot use it:
        SQLite's ignores case, PostgreSQL's needs the C collation), except a
        prefix on PostgreSQL, a scan of the uids. Raises StorageError."""
        key = ref.strip().lower()
        if len(key) == 36:
            where = articles.c.uid == key
        elif self.dialect == "sqlite" and _UID_PREFIX.fullmatch(key):
            # BINARY collation; "~" sorts after every uid character.
            where = and_(articles.c.uid >= key, articles.c.uid < key + "~")
        else:
            where = articles.c.uid.startswith(key, autoescape=True)
        with self._read() as conn:
            count = int(
                conn.execute(select(func.count()).select_from(articles).where(where)).scalar_one()
            )
            ids = select(articles.c.id).where(where).order_by(articles.c.id).limit(limit)
            page = ids.subquery("page")
            rows = conn.execute(
                _article_select().join(page, page.c.id == articles.c.id).order_by(articles.c.id)
            ).all()
            found = [_article(r) for r in rows]
            if full and count == 1 and found:
                found = _with_history(conn, found)
            return count, found

    def dump_summary(self) -> tuple[int, int, int]:
        """(the newest dump record's id, dumps ingested, dumps rejected): one
        small query; the id changes with every dump recorded. Raises StorageError."""
        with self._read() as conn:
            newest, ingested, rejected = conn.execute(
                select(
                    func.max(dumps.c.id),
                    func.count().filter(dumps.c.status == "ingested"),
                    func.count().filter(dumps.c.status == "rejected"),
                )
            ).one()
            return int(newest or 0), int(ingested), int(rejected)

    def dump_records(self, name: str, *, limit: int = 100) -> list[DumpInfo]:
        """Every record of dumps named ``name`` (each version ingested, each
        rejection), newest first. Raises StorageError."""
        with self._read() as conn:
            rows = conn.execute(
                select(dumps).where(dumps.c.name == name).order_by(dumps.c.id.desc()).limit(limit)
            )
            return [dump_info(r) for r in rows]

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

    def activity(
        self, unit: str, since: datetime | None, until: datetime
    ) -> list[tuple[datetime, int, int]]:
        """New articles and updates per ``unit`` ("day" or "hour", in UTC):
        (bucket start, new, updates) for every bucket from the one holding
        ``since`` (None: the first with any activity) to the one holding
        ``until``, empty buckets included, oldest first.

        Buckets are whole: an article first seen early on ``since``'s day counts
        even if ``since`` is later that day. New is by articles.first_seen,
        updates are revisions after the first, by their first_seen.
        Raises ValueError for another unit.
        """
        step = _ACTIVITY_STEP.get(unit)
        if step is None:
            raise ValueError(f"unit must be 'day' or 'hour', not {unit!r}")
        lo = None if since is None else _floor(since, unit)
        hi = _floor(until, unit) + step

        def grouped(table: Any, *where: Any, new: bool) -> Any:
            bucket = _bucket(self.dialect, table.c.first_seen, unit)
            window = [table.c.first_seen < hi, *where]
            if lo is not None:
                window.append(table.c.first_seen >= lo)
            count = func.count()
            return (
                select(
                    bucket.label("bucket"),
                    (count if new else literal(0)).label("new"),
                    (literal(0) if new else count).label("updates"),
                )
                .where(*window)
                .group_by(bucket)
            )

        # One round trip; each half is a range scan of a first_seen index.
        query = union_all(
            grouped(articles, new=True),
            grouped(revisions, revisions.c.number > 1, new=False),
        )
        counts: dict[datetime, list[int]] = {}
        with self._read() as conn:
            for bucket, new, updates in conn.execute(query):
                got = counts.setdefault(_bucket_start(bucket), [0, 0])
                got[0] += int(new)
                got[1] += int(updates)
        if lo is None:
            if not counts:
                return []
            lo = min(counts)
        out: list[tuple[datetime, int, int]] = []
        at = lo
        while at < hi:
            new, updates = counts.get(at, (0, 0))
            out.append((at, new, updates))
            at += step
        return out

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


_ACTIVITY_STEP = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
# SQLite keeps UTC timestamps as fixed-width ISO text, "YYYY-MM-DD HH:MM:SS.ffffff"
# (ingest_tx._sqlite_timestamp, SQLAlchemy's DateTime): a bucket is a prefix of
# it. substr is 2.5 times as fast as strftime over 225k rows (118 vs 299 ms).
_SQLITE_PREFIX = {"day": 10, "hour": 13}


def _floor(value: datetime, unit: str) -> datetime:
    """The start of the UTC bucket holding ``value`` (an aware datetime)."""
    value = value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return value.replace(hour=0) if unit == "day" else value


def _bucket(dialect: str, column: Any, unit: str) -> Any:
    # Literal SQL, not bound parameters: PostgreSQL would take the SELECT's and
    # the GROUP BY's parameters for different expressions. Both come from
    # fixed tables, never from the caller.
    if dialect == "postgresql":
        return func.date_trunc(literal_column(f"'{unit}'"), column)
    return func.substr(column, literal_column("1"), literal_column(str(_SQLITE_PREFIX[unit])))


def _bucket_start(value: str | datetime) -> datetime:
    # PostgreSQL's date_trunc gives a naive UTC timestamp, SQLite a prefix of
    # the ISO text: "YYYY-MM-DD" or "YYYY-MM-DD HH".
    if isinstance(value, str):
        value = datetime.fromisoformat(value + ":00" if len(value) == 13 else value)
    start: datetime = value
    return start.replace(tzinfo=UTC)


def _lock_ingest(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_INGEST})")


# What a PostgreSQL server says when it turns a connection away for now:
# SQLSTATE 53300 (too many clients), 57P03 (starting up, in recovery), 57P01
# (an administrator shut the backend down); psycopg gives no SQLSTATE for a
# refused connection, so its words too. Network failures (a timeout, a reset)
# are not among them: a wrong host or port looks the same, and that is a
# config mistake. The one network failure here is "no free local port"
# (EADDRNOTAVAIL, a burst of clients on this host), unless some address of
# the host also refused outright.
_BUSY_SQLSTATES = frozenset({"53300", "57P03", "57P01"})
_BUSY_WORDS = (
    "too many clients",
    "too many connections",
    "remaining connection slots",
    "the database system is starting up",
    "the database system is shutting down",
    "cannot assign requested address",
)


def _storage_error(orig: BaseException | None) -> StorageError:
    message = str(orig).lower()
    if "fts5" in message or "trigram" in message:  # a SQLite without them opened the file
        return StorageError(unsupported_message(orig))
    if "locked" in message or "busy" in message:
        return DatabaseLocked()
    busy = any(w in message for w in _BUSY_WORDS) and "connection refused" not in message
    if busy or getattr(orig, "sqlstate", None) in _BUSY_SQLSTATES:
        return DatabaseBusy(f"database busy: {' '.join(str(orig).split())}")
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


def _feed_position(conn: Connection, article_id: int) -> tuple[Any, int, int] | None:
    """An article's key in ``_feed_order``: (first_seen, first_dump_id,
    first_line), unique since a dump line creates one article; None for an
    unknown id."""
    if not 0 < article_id < 1 << 31:  # articles.id is a 32-bit INTEGER on PostgreSQL
        return None
    row = conn.execute(
        select(articles.c.first_seen, articles.c.first_dump_id, articles.c.first_line).where(
            articles.c.id == article_id
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def _page_of(ids: Any, newest_first: bool, limit: int) -> Any:
    """The articles of a page: ``ids`` (a select of articles.id with the
    page's filters), ordered and LIMITed first, then joined for the rows.
    Joined first, SQLite scans every revision and sorts them all (2.7 s at
    100k articles instead of 6 ms)."""
    page = ids.order_by(*_feed_order(newest_first)).limit(limit).subquery("page")
    return (
        _article_select()
        .join(page, page.c.id == articles.c.id)
        .order_by(*_feed_order(newest_first))
    )


def _beyond(position: tuple[Any, Any, Any], *, older: bool) -> Any:
    """The articles after ``position`` (``_feed_position``, or parameters
    bound to it) in the newest-first listing (``older``), or before it."""
    seen, dump_id, line = position
    if older:
        return and_(
            articles.c.first_seen <= seen,
            or_(
                articles.c.first_seen < seen,
                articles.c.first_dump_id < dump_id,
                and_(articles.c.first_dump_id == dump_id, articles.c.first_line > line),
            ),
        )
    return and_(
        articles.c.first_seen >= seen,
        or_(
            articles.c.first_seen > seen,
            articles.c.first_dump_id > dump_id,
            and_(articles.c.first_dump_id == dump_id, articles.c.first_line < line),
        ),
    )


MAX_PAGE = 1000  # articles per search page
_current = revisions.alias("current")  # an article's current revision


_VOCAB = text(
    "SELECT term, doc FROM revisions_fts_vocab WHERE term >= :low AND term < :high LIMIT :n"
)
# PostgreSQL: how many revisions hold each of these characters and pairs, as
# ANALYZE estimated for the elements of feedd_grams(text): its most common
# elements, about the 4,000 commonest (migration 0005 sets the target; at
# 100k articles, each in 1.8% of the texts or more). No row: rarer than those,
# or never analyzed, or a role that may not read the index's statistics.
_GRAM_DOCS = text(
    "SELECT u.elem, u.freq * c.reltuples"
    " FROM pg_stats s CROSS JOIN LATERAL unnest("
    "CAST(CAST(s.most_common_elems AS text) AS text[]), s.most_common_elem_freqs) AS u(elem, freq),"
    " pg_class c"
    " WHERE s.schemaname = current_schema() AND s.tablename = :index"
    " AND c.oid = to_regclass('revisions') AND u.elem = ANY(CAST(:grams AS text[]))"
)
# The parameter names of _search_statement: ``i`` (ILIKE), a kind, a number.
_SEARCH_PARAM = re.compile(r"(i?)(fts|trgm|gram|key|term)\d*")


def _plan_each_search(conn: Connection, *, page: bool) -> None:
    """PostgreSQL: plan this transaction's statements for their values. psycopg
    prepares a statement run five times, and PostgreSQL then may keep one
    generic plan for all values: it read the whole trigram index for a
    two-character pattern (no trigram: every row), 2.4 s at 100k articles
    instead of 5 ms, from the sixth search of a shape on.

    And for a page, no sequential scan: the planner prices LIKE on a text as
    one operator, and read every revision for a word in 344 of 21,000 texts
    (28 ms against 3 ms through the trigram index; five times that at 100k).
    A page is an index's hits or a walk of the listing's index; a count
    (``search_count``) may hash-join its many hits."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        if page:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")


def _fold(term: str) -> str:
    """``i`` (ILIKE) for a term with letters that have case, else nothing:
    ILIKE lowercases every text it reads, 2.5-4x LIKE's cost on Chinese."""
    return "" if term.lower() == term.upper() else "i"


def _search_params(conn: Connection, terms: Terms, *, counting: bool) -> dict[str, Any] | None:
    """The bound values of ``_search_statement``, named by what serves them:

    - ``fts`` (SQLite): an FTS5 query;
    - ``trgm0``, ``trgm1`` ... (PostgreSQL): patterns of the terms of three
      characters or more, found through pg_trgm's index;
    - ``key0`` and ``gram0`` ... (PostgreSQL): a short term, found through
      the index of feedd_grams (``key``), verified with its pattern (``gram``);
    - ``term0``, ``term1`` ...: patterns checked on the current texts in
      listing order (SQLite: every short term; PostgreSQL: a common term).

    On PostgreSQL the number is the term's place among all terms, and an
    ``i`` before a pattern's name makes it ILIKE. None when the index shows
    that no text holds some term."""
    params: dict[str, Any] = {}
    if conn.dialect.name != "sqlite":
        everything = terms.indexed + terms.short
        docs: dict[str, float] = {}
        if not counting:
            wanted = sorted({g for term in everything for g in rarest_grams(term)})
            estimated = conn.execute(_GRAM_DOCS, {"grams": wanted, "index": GRAMS_INDEX})
            docs = {str(gram): float(n) for gram, n in estimated}
        for i, term in enumerate(everything):
            if estimated_docs(term, docs) > DENSE_DOCS:
                # A common term: the listing order finds a page of it within
                # a few hundred texts, while its index hits are thousands to
                # join and sort (bench/search.py).
                params[f"{_fold(term)}term{i}"] = like_pattern(term)
            elif term in terms.indexed:
                params[f"{_fold(term)}trgm{i}"] = like_pattern(term)
            else:
                params[f"key{i}"] = term
                params[f"{_fold(term)}gram{i}"] = like_pattern(term)
        return params
    # A short term is always checked with LIKE; the trigrams that begin with
    # it narrow the texts to check, unless they are too many (search.py).
    alternatives: list[list[str]] = []
    for term in terms.short:
        bounds = prefix_range(term)
        if bounds is None:
            continue
        low, high = bounds
        rows = conn.execute(_VOCAB, {"low": low, "high": high, "n": MAX_PREFIX_TERMS + 1}).all()
        if not rows:
            return None  # every occurrence would begin a trigram
        dense = sum(int(docs) for _, docs in rows) > DENSE_DOCS and not counting
        if len(rows) <= MAX_PREFIX_TERMS and not dense:
            alternatives.append([trigram for trigram, _ in rows])
    if terms.indexed or alternatives:
        params["fts"] = fts5_match(terms.indexed, alternatives)
    for i, term in enumerate(terms.short):
        params[f"term{i}"] = like_pattern(term)
    return params


@functools.cache
def _search_statement(
    dialect: str, shape: tuple[str, ...], direction: str | None, *, count: bool
) -> Any:
    """One statement per shape of query (its parameter names, ``_search_params``)
    and direction (None: the first page; "older": after the article whose
    position is bound as ``seen``, ``dump_id``, ``line``; "newer": the page
    just before it), built once: the values are bound at execution, so
    SQLAlchemy compiles each shape once."""
    where: list[Any] = []  # on the current revision
    found: list[Any] = []  # on any revision: what PostgreSQL's indexes find
    grams = getattr(func, GRAMS_FUNCTION)
    for name in shape:
        match = _SEARCH_PARAM.fullmatch(name)
        assert match is not None, name
        fold, kind = match.groups()
        if kind == "fts":
            rowids = text("SELECT rowid FROM revisions_fts WHERE revisions_fts MATCH :fts")
            where.append(_current.c.id.in_(rowids.columns(column("rowid", Integer))))
        elif kind == "key":
            # Every character and pair of the term is one of the text's: the
            # expression of ix_revisions_text_grams, so the index serves it.
            key = grams(bindparam(name, type_=String))
            found.append(grams(revisions.c.text).op("@>", is_comparison=True)(key))
        else:
            target = _current if kind == "term" else revisions
            like = target.c.text.ilike if fold else target.c.text.like
            (where if kind == "term" else found).append(
                like(bindparam(name, type_=String), escape="\\")
            )
    current = and_(
        _current.c.article_id == articles.c.id,
        _current.c.number == articles.c.current_revision,
    )
    matching: Any = articles.join(_current, current)
    if found:
        # The revisions the indexes find, first and whole: left to itself,
        # PostgreSQL walked the listing order filtering every text (200 ms at
        # 20k articles), expecting a page within a few rows.
        hits = (
            select(revisions.c.article_id, revisions.c.number)
            .where(*found)
            .cte("hits")
            .prefix_with("MATERIALIZED")
        )
        matching = hits.join(
            articles,
            and_(articles.c.id == hits.c.article_id, articles.c.current_revision == hits.c.number),
        )
        if where:
            matching = matching.join(_current, current)
    if count:
        return select(func.count()).select_from(matching).where(*where)
    if direction is not None:
        position = (
            bindparam("seen", type_=UTCDateTime),
            bindparam("dump_id", type_=Integer),
            bindparam("line", type_=Integer),
        )
        where.append(_beyond(position, older=direction == "older"))
    # The page's ids first, then their rows: alone, the filter is planned as
    # a walk of the listing order that stops at a full page (the join to the
    # first revision would otherwise lead SQLite to sort every match).
    page = (
        select(articles.c.id)
        .select_from(matching)
        .where(*where)
        .order_by(*_feed_order(direction != "newer"))
        .limit(bindparam("limit", type_=Integer))
    )
    return _article_select().where(articles.c.id.in_(page)).order_by(*_feed_order(True))


def _article_select() -> Any:
    current = _current
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
