"""IngestTx: the statements of one dump, run on the DBAPI connection itself.

This is the hottest code in feedd: a backfill runs these statements for every
dump, and most dumps need only four of them. Through SQLAlchemy Core each
statement cost ~150 µs of parameter processing and result wrapping on top of
~15 µs of SQLite work (profile in docs/performance.md), so the write path talks
to the driver (sqlite3 or psycopg 3) directly, inside the transaction that
``SqlStore`` opened through SQLAlchemy. Everything else stays on SQLAlchemy.

The SQL is written once, in qmark style, and is the same for both engines
apart from the placeholder (psycopg wants ``%s``). Values are converted the
way SQLAlchemy's column types would (see ``_timestamp``), so rows written here
and rows written through SQLAlchemy read back alike; tests/test_ingest.py and
the golden file pin that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from feedd.core.decide import Candidate, ExactMatch
from feedd.core.fingerprint import Fingerprint, TextKey, bands, hamming
from feedd.core.text import compact, normalize
from feedd.model import DumpInfo
from feedd.store.schema import dumps

SEGMENT_FANOUT = 32  # rows read per segment hash: boilerplate must not flood lookups
_MAX_IN = 500  # values per IN (...) list

_FIND_DUMPS = "SELECT id, content_hash, status FROM dumps WHERE name = ?"
_DUMP_BY_ID = select(dumps).where(dumps.c.id == bindparam("id"))
_INSERT_DUMP = (
    "INSERT INTO dumps (name, content_hash, size, seq, version, observed_at, ingested_at,"
    " status, error, encoding, item_count, noise_count, new_count, repeat_count,"
    " update_count, duration_ms, location)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, 0, 0, 0, ?) RETURNING id"
)
_FINISH_DUMP = (
    "UPDATE dumps SET item_count = ?, new_count = ?, repeat_count = ?, update_count = ?,"
    " duration_ms = ? WHERE id = ?"
)
# The article's current revision comes from a correlated subquery, not a join:
# a join lets PostgreSQL pick a hash join over the whole articles table, and a
# plan made while the tables were small (psycopg prepares a statement after
# five runs) kept doing so as they grew: 3,241 -> 780 lines/s over 1M lines.
# A scalar subquery on the primary key is one index lookup per row on every
# engine, whatever the statistics say.
_CURRENT = "(SELECT a.current_revision FROM articles a WHERE a.id = r.article_id)"
_EXACT = (
    f"SELECT r.norm_hash, r.id, r.article_id, r.number, r.text, {_CURRENT}"
    " FROM revisions r WHERE r.norm_hash IN ({marks}) ORDER BY r.id"
)
_NEAR = "SELECT id, simhash FROM revisions WHERE band0 = ? OR band1 = ? OR band2 = ? OR band3 = ?"
# One round trip for all segment hashes, each capped at SEGMENT_FANOUT rows,
# counted per revision inside the database: at a million lines the capped
# rows reach several hundred per text, and only a few revisions share enough.
_SEGMENT_PART = (
    f"SELECT * FROM (SELECT revision_id FROM segments WHERE hash = ? LIMIT {SEGMENT_FANOUT})"
    " AS q{i}"
)
_SEGMENT_SHARED = (
    "SELECT g.revision_id, g.shared,"
    " (SELECT r.simhash FROM revisions r WHERE r.id = g.revision_id)"
    " FROM (SELECT revision_id, COUNT(*) AS shared"
    " FROM ({parts}) AS u GROUP BY revision_id HAVING COUNT(*) >= ?) AS g"
)
_CANDIDATE_TEXTS = (
    f"SELECT r.id, r.article_id, r.number, r.text, r.simhash, {_CURRENT}"
    " FROM revisions r WHERE r.id IN ({marks})"
)
_INSERT_ARTICLE = (
    "INSERT INTO articles (uid, current_revision, revision_count, first_seen, updated_at,"
    " first_dump_id, first_line) VALUES (?, 1, 1, ?, ?, ?, ?) RETURNING id"
)
_INSERT_REVISION = (
    "INSERT INTO revisions (article_id, number, text, norm_hash, simhash, band0, band1,"
    " band2, band3, first_seen, first_dump_id, first_line)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_INSERT_SEGMENT = "INSERT INTO segments (hash, revision_id, article_id) VALUES (?, ?, ?)"
_REVISION_COUNT = "SELECT revision_count FROM articles WHERE id = ?"
_SET_REVISION = (
    "UPDATE articles SET revision_count = ?, current_revision = ?, updated_at = ? WHERE id = ?"
)
_RESTORE = "UPDATE articles SET current_revision = ?, updated_at = ? WHERE id = ?"
_INSERT_SIGHTING = (
    "INSERT INTO sightings (dump_id, line, article_id, revision_id, kind, seen_at,"
    " category, date) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


@functools.cache
def _marks(n: int) -> str:
    return ", ".join("?" * n)


@functools.cache
def _segment_sql(n: int) -> str:
    parts = " UNION ALL ".join(_SEGMENT_PART.format(i=i) for i in range(n))
    return _SEGMENT_SHARED.format(parts=parts)


@functools.cache
def _pg(sql: str) -> str:
    # None of the statements above contains a literal '?' or '%'.
    return sql.replace("?", "%s")


def _sqlite_timestamp(value: datetime) -> str:
    # SQLAlchemy's DateTime on SQLite stores this exact text (always with
    # microseconds); equal formats keep ORDER BY and comparisons right.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_timestamp(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


@functools.lru_cache(maxsize=4096)
def compact_text(raw: str) -> str:
    # Revision texts never change, so their compact form can be reused.
    return compact(normalize(raw))


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def dump_info(row: Any) -> DumpInfo:
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


class IngestTx:
    """The writes of one dump, inside the transaction the store opened."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        raw: Any = conn.connection.driver_connection
        self._cursor = raw.cursor()
        self._sql: Callable[[str], str]
        # Candidate lookups are planned at every execution on PostgreSQL: a
        # generic plan prepared while the tables were small (psycopg prepares
        # after five runs) kept scanning revisions sequentially as it grew.
        self._fresh_plan: dict[str, Any] = {}
        if conn.dialect.name == "postgresql":
            self._fresh_plan = {"prepare": False}
            self._sql = _pg
            self.timestamp: Any = _pg_timestamp
        else:
            self._sql = str
            self.timestamp = _sqlite_timestamp
        # norm_hash -> (article_id, revision_id, number, raw text), or None
        # when the database has no such text (so a miss is asked only once).
        self._exact: dict[int, tuple[int, int, int, str] | None] = {}
        self._current: dict[int, int] = {}  # article_id -> current revision number
        self._versions: tuple[str, int] = ("", 0)

    def _run(self, sql: str, params: Sequence[Any] = (), **options: Any) -> Any:
        cur = self._cursor
        cur.execute(self._sql(sql), params, **options)
        return cur

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        row = self._run(sql, params).fetchone()
        return int(row[0])

    # dumps ------------------------------------------------------------------
    def find_dump(self, name: str, content_hash: str) -> DumpInfo | None:
        """The dump with this name and content, if any; remembers the name's versions."""
        rows = self._run(_FIND_DUMPS, (name,)).fetchall()
        # Versions count ingested contents only: a rejected file is not a version.
        self._versions = (name, sum(status == "ingested" for _, _, status in rows))
        for dump_id, digest, _ in rows:
            if digest == content_hash:
                row = self.conn.execute(_DUMP_BY_ID, {"id": dump_id}).first()
                return dump_info(row) if row else None
        return None

    def add_dump(self, record: Any) -> tuple[int, int]:
        """Insert a dump row; returns (id, version). Call find_dump first."""
        name, earlier = self._versions
        if name != record.name:
            rows = self._run(_FIND_DUMPS, (record.name,)).fetchall()
            earlier = sum(status == "ingested" for _, _, status in rows)
        version = earlier + 1
        ts = self.timestamp
        dump_id = self._insert(
            _INSERT_DUMP,
            (
                record.name,
                record.content_hash,
                record.size,
                record.seq,
                version,
                ts(record.observed_at),
                ts(record.ingested_at),
                record.status,
                record.error,
                record.encoding,
                record.noise_count,
                record.location,
            ),
        )
        return dump_id, version

    def finish_dump(
        self,
        dump_id: int,
        *,
        item_count: int,
        new_count: int,
        repeat_count: int,
        update_count: int,
        duration_ms: int,
    ) -> None:
        self._run(
            _FINISH_DUMP,
            (item_count, new_count, repeat_count, update_count, duration_ms, dump_id),
        )

    # matching ---------------------------------------------------------------
    def preload_exact(self, hashes: Sequence[int]) -> None:
        """One query for the whole dump: most lines are exact repeats."""
        known = self._exact
        wanted = sorted({h for h in hashes if h not in known})
        for chunk in chunks(wanted, _MAX_IN):
            for h in chunk:
                known[h] = None
            rows = self._run(_EXACT.format(marks=_marks(len(chunk))), chunk).fetchall()
            for h, rid, aid, number, raw, current in rows:
                if known.get(h) is None:
                    known[h] = (aid, rid, number, raw)
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

    def candidates(
        self, fp: Fingerprint, k: int, limit: int = 16, min_shared: int = 1
    ) -> list[Candidate]:
        """The best ``limit`` revisions within k bits or sharing ``min_shared``
        leading segments (all of them, for a text with fewer).

        Ranking happens before any text is read, so a boilerplate segment
        shared by thousands of articles costs SEGMENT_FANOUT rows, not thousands.
        One shared segment is a 10-character coincidence that grows more
        likely with every stored text; an edited revision of the same article
        shares most of its segments.
        """
        found: dict[int, list[int]] = {}  # revision id -> [shared segments, distance]
        for rid, sh in self._run(_NEAR, bands(fp.simhash), **self._fresh_plan).fetchall():
            distance = hamming(sh, fp.simhash)
            if distance <= k:
                found[rid] = [0, distance]
        if fp.segments:
            need = max(1, min(min_shared, len(fp.segments)))
            params = (*fp.segments, need)
            # Prepared: planning this union costs ~1 ms, and its plan (a
            # primary-key lookup per hash) was right from the start.
            rows = self._run(_segment_sql(len(fp.segments)), params)
            for rid, shared, sh in rows.fetchall():
                found.setdefault(rid, [0, hamming(sh, fp.simhash)])[0] = shared
        if not found:
            return []
        best = sorted(found, key=lambda rid: (-found[rid][0], found[rid][1], -rid))[:limit]
        out: list[Candidate] = []
        rows = self._run(
            _CANDIDATE_TEXTS.format(marks=_marks(len(best))), best, **self._fresh_plan
        ).fetchall()
        for rid, aid, number, raw, sh, current in rows:
            current = self._current.get(aid, current)
            out.append(
                Candidate(
                    article_id=aid,
                    revision_id=rid,
                    revision_number=number,
                    is_current=current == number,
                    compact=compact_text(raw),
                    simhash=sh,
                    shared_segments=found[rid][0],
                )
            )
        return out

    # writes -----------------------------------------------------------------
    def create_article(
        self, uid: str, fp: Fingerprint, raw: str, seen_at: datetime, dump_id: int, line: int
    ) -> tuple[int, int]:
        ts = self.timestamp(seen_at)
        aid = self._insert(_INSERT_ARTICLE, (uid, ts, ts, dump_id, line))
        rid = self._insert_revision(aid, 1, fp, raw, ts, dump_id, line)
        return aid, rid

    def add_revision(
        self, article_id: int, fp: Fingerprint, raw: str, seen_at: datetime, dump_id: int, line: int
    ) -> tuple[int, int]:
        ts = self.timestamp(seen_at)
        number = 1 + int(self._run(_REVISION_COUNT, (article_id,)).fetchone()[0])
        rid = self._insert_revision(article_id, number, fp, raw, ts, dump_id, line)
        self._run(_SET_REVISION, (number, number, ts, article_id))
        return rid, number

    def _insert_revision(
        self,
        article_id: int,
        number: int,
        fp: Fingerprint,
        raw: str,
        ts: Any,
        dump_id: int,
        line: int,
    ) -> int:
        b0, b1, b2, b3 = bands(fp.simhash)
        rid = self._insert(
            _INSERT_REVISION,
            (article_id, number, raw, fp.norm_hash, fp.simhash, b0, b1, b2, b3, ts, dump_id, line),
        )
        if fp.segments:
            self._cursor.executemany(
                self._sql(_INSERT_SEGMENT), [(h, rid, article_id) for h in fp.segments]
            )
        if self._exact.get(fp.norm_hash) is None:
            self._exact[fp.norm_hash] = (article_id, rid, number, raw)
        self._current[article_id] = number
        return rid

    def restore_revision(self, article_id: int, number: int, seen_at: datetime) -> None:
        self._run(_RESTORE, (number, self.timestamp(seen_at), article_id))
        self._current[article_id] = number

    def add_sightings(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows of (dump_id, line, article_id, revision_id, kind, seen_at, category, date);
        seen_at as ``timestamp()`` returned it."""
        if rows:
            self._cursor.executemany(self._sql(_INSERT_SIGHTING), rows)
