"""SqlStore: every query feedd runs, for SQLite and PostgreSQL alike.

Methods raise ``StorageError`` (or ``DatabaseLocked``) for operational
database failures; anything else is a bug and propagates as is.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, text, union_all
from sqlalchemy.exc import DBAPIError, OperationalError

from feedd.core.decide import Candidate, ExactMatch
from feedd.core.fingerprint import Fingerprint, TextKey, bands, hamming
from feedd.core.text import compact, hex64, normalize
from feedd.errors import DatabaseLocked, StorageError
from feedd.model import Article, DumpInfo, Revision, Sighting, Totals, UpdateEntry, WorkerInfo
from feedd.store import migrate
from feedd.store.engine import WRITE
from feedd.store.schema import articles, dumps, revisions, segments, sightings, workers

P = ParamSpec("P")
_UID_PREFIX = re.compile(r"[0-9a-f-]{4,36}")
T = TypeVar("T")

_ADVISORY_INGEST = 0x66656564_01  # serialises match-or-create across PG workers
SEGMENT_FANOUT = 32  # rows read per segment hash: boilerplate must not flood lookups


def wrap_errors(fn: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            if "locked" in str(exc.orig).lower() or "busy" in str(exc.orig).lower():
                raise DatabaseLocked() from exc
            raise StorageError(f"database error: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StorageError(f"lost the database connection: {exc.orig}") from exc
            raise

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


# Statements built once: building a select() per call costs more than running
# it on SQLite, and most dumps need only five statements.
_DUMPS_BY_NAME = select(dumps.c.id, dumps.c.content_hash, dumps.c.status).where(
    dumps.c.name == bindparam("name")
)
_DUMP_BY_ID = select(dumps).where(dumps.c.id == bindparam("id"))
_EXACT = (
    select(
        revisions.c.norm_hash,
        revisions.c.id,
        revisions.c.article_id,
        revisions.c.number,
        revisions.c.text,
        articles.c.current_revision,
    )
    .join(articles, articles.c.id == revisions.c.article_id)
    .where(revisions.c.norm_hash.in_(bindparam("hashes", expanding=True)))
    .order_by(revisions.c.id)
)
_NEAR = select(revisions.c.id, revisions.c.simhash).where(
    or_(
        revisions.c.band0 == bindparam("b0"),
        revisions.c.band1 == bindparam("b1"),
        revisions.c.band2 == bindparam("b2"),
        revisions.c.band3 == bindparam("b3"),
    )
)


@functools.cache
def _segment_query(n: int) -> Any:
    """One round trip for all segment hashes, each capped at SEGMENT_FANOUT rows."""
    parts = [
        select(segments.c.revision_id, revisions.c.simhash)
        .join(revisions, revisions.c.id == segments.c.revision_id)
        .where(segments.c.hash == bindparam(f"h{i}"))
        .limit(SEGMENT_FANOUT)
        .subquery()
        .select()
        for i in range(n)
    ]
    return union_all(*parts)


def _segment_params(fp: Fingerprint) -> dict[str, int]:
    return {f"h{i}": h for i, h in enumerate(fp.segments)}


_CANDIDATE_TEXTS = (
    select(
        revisions.c.id,
        revisions.c.article_id,
        revisions.c.number,
        revisions.c.text,
        revisions.c.simhash,
        articles.c.current_revision,
    )
    .join(articles, articles.c.id == revisions.c.article_id)
    .where(revisions.c.id.in_(bindparam("ids", expanding=True)))
)


_INSERT_DUMP = dumps.insert()
_DUMP_DEFAULTS = {
    "item_count": 0,
    "new_count": 0,
    "repeat_count": 0,
    "update_count": 0,
    "duration_ms": 0,
}
_INSERT_ARTICLE = articles.insert()
_INSERT_REVISION = revisions.insert()
_INSERT_SEGMENT = segments.insert()
_INSERT_SIGHTING = sightings.insert()


class IngestTx:
    """The writes of one dump, inside one transaction (all or nothing)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # norm_hash -> (article_id, revision_id, number, raw text), or None
        # when the database has no such text (so a miss is asked only once).
        self._exact: dict[int, tuple[int, int, int, str] | None] = {}
        self._current: dict[int, int] = {}  # article_id -> current revision number

    # dumps ------------------------------------------------------------------
    def find_dump(self, name: str, content_hash: str) -> DumpInfo | None:
        """The dump with this name and content, if any; remembers the name's versions."""
        rows = self.conn.execute(_DUMPS_BY_NAME, {"name": name}).all()
        # Versions count ingested contents only: a rejected file is not a version.
        self._versions = (name, sum(status == "ingested" for _, _, status in rows))
        for dump_id, digest, _ in rows:
            if digest == content_hash:
                row = self.conn.execute(_DUMP_BY_ID, {"id": dump_id}).first()
                return _dump_info(row) if row else None
        return None

    def add_dump(self, record: DumpRecord) -> tuple[int, int]:
        """Insert a dump row; returns (id, version). Call find_dump first."""
        name, earlier = getattr(self, "_versions", ("", 0))
        if name != record.name:
            rows = self.conn.execute(_DUMPS_BY_NAME, {"name": record.name}).all()
            earlier = sum(status == "ingested" for _, _, status in rows)
        version = earlier + 1
        values = dict(_DUMP_DEFAULTS, **record.__dict__, version=version)
        return _new_id(self.conn.execute(_INSERT_DUMP, values)), version

    def finish_dump(self, dump_id: int, **counts: int) -> None:
        stmt = dumps.update().where(dumps.c.id == bindparam("dump_id"))
        self.conn.execute(stmt, {"dump_id": dump_id, **counts})

    # matching ---------------------------------------------------------------
    def preload_exact(self, hashes: Sequence[int]) -> None:
        """One query for the whole dump: most lines are exact repeats."""
        wanted = sorted(set(hashes) - set(self._exact))
        for chunk in _chunks(wanted, 500):
            for h in chunk:
                self._exact[h] = None
            for h, rid, aid, number, raw, current in self.conn.execute(
                _EXACT, {"hashes": list(chunk)}
            ):
                if self._exact.get(h) is None:
                    self._exact[h] = (aid, rid, number, raw)
                self._current.setdefault(aid, current)

    def exact(self, key: TextKey, raw: str) -> ExactMatch | None:
        if key.norm_hash not in self._exact:
            self.preload_exact([key.norm_hash])
        hit = self._exact.get(key.norm_hash)
        if hit is None:
            return None
        aid, rid, number, stored = hit
        # The hash only proposes; equal normalised text decides.
        if stored != raw and normalize(stored) != key.normalized:
            return None
        return ExactMatch(aid, rid, number, self._current.get(aid) == number)

    def candidates(self, fp: Fingerprint, k: int, limit: int = 16) -> list[Candidate]:
        """The best ``limit`` revisions within k bits or sharing a leading segment.

        Ranking happens before any text is read, so a boilerplate segment
        shared by thousands of articles costs SEGMENT_FANOUT rows, not thousands.
        """
        b = bands(fp.simhash)
        found: dict[int, list[int]] = {}  # revision id -> [shared segments, distance]
        for rid, sh in self.conn.execute(_NEAR, {"b0": b[0], "b1": b[1], "b2": b[2], "b3": b[3]}):
            distance = hamming(sh, fp.simhash)
            if distance <= k:
                found[rid] = [0, distance]
        if fp.segments:
            for rid, sh in self.conn.execute(_segment_query(len(fp.segments)), _segment_params(fp)):
                found.setdefault(rid, [0, hamming(sh, fp.simhash)])[0] += 1
        if not found:
            return []
        best = sorted(found, key=lambda rid: (-found[rid][0], found[rid][1], -rid))[:limit]
        out: list[Candidate] = []
        for rid, aid, number, raw, sh, current in self.conn.execute(
            _CANDIDATE_TEXTS, {"ids": best}
        ):
            current = self._current.get(aid, current)
            out.append(
                Candidate(
                    article_id=aid,
                    revision_id=rid,
                    revision_number=number,
                    is_current=current == number,
                    compact=_compact_text(raw),
                    simhash=sh,
                    shared_segments=found[rid][0],
                )
            )
        return out

    # writes -----------------------------------------------------------------
    def create_article(
        self, uid: str, fp: Fingerprint, raw: str, seen_at: datetime, dump_id: int, line: int
    ) -> tuple[int, int]:
        aid = _new_id(
            self.conn.execute(
                _INSERT_ARTICLE,
                {
                    "uid": uid,
                    "current_revision": 1,
                    "revision_count": 1,
                    "first_seen": seen_at,
                    "updated_at": seen_at,
                    "first_dump_id": dump_id,
                    "first_line": line,
                },
            )
        )
        rid = self._insert_revision(aid, 1, fp, raw, seen_at, dump_id, line)
        return aid, rid

    def add_revision(
        self, article_id: int, fp: Fingerprint, raw: str, seen_at: datetime, dump_id: int, line: int
    ) -> tuple[int, int]:
        number = (
            1
            + self.conn.execute(
                select(articles.c.revision_count).where(articles.c.id == article_id)
            ).scalar_one()
        )
        rid = self._insert_revision(article_id, number, fp, raw, seen_at, dump_id, line)
        self.conn.execute(
            articles.update()
            .where(articles.c.id == article_id)
            .values(revision_count=number, current_revision=number, updated_at=seen_at)
        )
        return rid, number

    def _insert_revision(
        self,
        article_id: int,
        number: int,
        fp: Fingerprint,
        raw: str,
        seen_at: datetime,
        dump_id: int,
        line: int,
    ) -> int:
        b = bands(fp.simhash)
        rid = _new_id(
            self.conn.execute(
                _INSERT_REVISION,
                {
                    "article_id": article_id,
                    "number": number,
                    "text": raw,
                    "norm_hash": fp.norm_hash,
                    "simhash": fp.simhash,
                    "band0": b[0],
                    "band1": b[1],
                    "band2": b[2],
                    "band3": b[3],
                    "first_seen": seen_at,
                    "first_dump_id": dump_id,
                    "first_line": line,
                },
            )
        )
        if fp.segments:
            self.conn.execute(
                _INSERT_SEGMENT,
                [{"hash": h, "revision_id": rid, "article_id": article_id} for h in fp.segments],
            )
        if self._exact.get(fp.norm_hash) is None:
            self._exact[fp.norm_hash] = (article_id, rid, number, raw)
        self._current[article_id] = number
        return rid

    def restore_revision(self, article_id: int, number: int, seen_at: datetime) -> None:
        self.conn.execute(
            articles.update()
            .where(articles.c.id == article_id)
            .values(current_revision=number, updated_at=seen_at)
        )
        self._current[article_id] = number

    def add_sightings(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(_INSERT_SIGHTING, rows)


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dry: Connection | None = None

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

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            with conn.execution_options(**{WRITE: True}).begin():
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_INGEST})")
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
    def ingest_transaction(self) -> Iterator[IngestTx]:
        """One dump's writes. On any exception nothing of it is kept."""
        if self._dry is not None:
            with self._dry.begin_nested():
                yield IngestTx(self._dry)
            return
        try:
            with self._write() as conn:
                yield IngestTx(conn)
        except OperationalError as exc:
            if "locked" in str(exc.orig).lower():
                raise DatabaseLocked() from exc
            raise StorageError(f"database error: {exc.orig}") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StorageError(f"database error: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StorageError(f"lost the database connection: {exc.orig}") from exc
            raise

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
            for chunk in _chunks(sorted(set(names)), 500):
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
            return [_dump_info(r) for r in conn.execute(q)]

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
            return [UpdateEntry(arts[aid], n, t, fs) for aid, n, t, fs in rows]

    @wrap_errors
    def set_dump_location(self, name: str, content_hash: str, location: str) -> None:
        with self._write() as conn:
            conn.execute(
                dumps.update()
                .where(dumps.c.name == name, dumps.c.content_hash == content_hash)
                .values(location=location)
            )

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


@functools.lru_cache(maxsize=4096)
def _compact_text(raw: str) -> str:
    # Revision texts never change, so their compact form can be reused.
    return compact(normalize(raw))


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


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


def _dump_info(row: Any) -> DumpInfo:
    m = row._mapping
    return DumpInfo(
        id=m["id"],
        name=m["name"],
        version=m["version"],
        status=m["status"],
        observed_at=m["observed_at"],
        ingested_at=m["ingested_at"],
        items=m["item_count"],
        new=m["new_count"],
        repeat=m["repeat_count"],
        update=m["update_count"],
        error=m["error"],
        location=m["location"],
        duration_ms=m["duration_ms"],
    )
