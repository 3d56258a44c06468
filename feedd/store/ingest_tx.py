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
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from feedd.core.decide import ExactMatch
from feedd.core.fingerprint import Fingerprint, TextKey, bands, hamming, head_key
from feedd.core.text import normalize
from feedd.model import DumpInfo
from feedd.store.rows import chunks, dump_info
from feedd.store.schema import dumps
from feedd.store.search import SENTINEL

_MAX_IN = 512  # values per IN (...) list

_FIND_DUMPS = "SELECT id, content_hash, status FROM dumps WHERE name = ?"
_DUMP_BY_ID = select(dumps).where(dumps.c.id == bindparam("id"))
_INSERT_DUMP = (
    "INSERT INTO dumps (name, content_hash, size, seq, version, observed_at, ingested_at,"
    " status, error, encoding, item_count, noise_count, new_count, repeat_count,"
    " update_count, duration_ms, location)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, 0, 0, 0, ?)"
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
# Near simhashes: any revision within the radius proposes its article. Capped:
# a template's posts can crowd one band.
_NEAR = (
    "SELECT article_id, simhash FROM revisions"
    " WHERE band0 = ? OR band1 = ? OR band2 = ? OR band3 = ? LIMIT 512"
)
_SEGMENT_DF = "SELECT hash, articles FROM segment_df WHERE hash IN ({marks})"
# Only segments rare enough to be asked (feedd.core.rarity.lookup_segments):
# their rows are bounded by match.boilerplate_df each.
_POSTINGS = "SELECT hash, article_id FROM segments WHERE hash IN ({marks})"
_CURRENT_TEXTS = (
    "SELECT r.article_id, r.id, r.number, r.text, r.simhash FROM revisions r"
    " WHERE r.article_id IN ({marks}) AND r.number ="
    " (SELECT a.current_revision FROM articles a WHERE a.id = r.article_id)"
)
_INSERT_ARTICLE = (
    "INSERT INTO articles (uid, current_revision, revision_count, first_seen, updated_at,"
    " first_dump_id, first_line, head_hash) VALUES (?, 1, 1, ?, ?, ?, ?, ?)"
)
# Articles whose current text opens like the item: candidates for a re-cut.
# Newest first and capped per opening: a series' shared opening must not
# flood the lookup (past the cap the segment index still finds the article).
_HEAD_PART = (
    "SELECT * FROM (SELECT id FROM articles WHERE head_hash = ? ORDER BY id DESC LIMIT 32) AS h{i}"
)
_SET_HEAD = "UPDATE articles SET head_hash = ? WHERE id = ?"
_INSERT_REVISION = (
    "INSERT INTO revisions (article_id, number, text, norm_hash, simhash, band0, band1,"
    " band2, band3, first_seen, first_dump_id, first_line)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SEGMENT = "INSERT INTO segments (hash, article_id) VALUES (?, ?)"
_DELETE_SEGMENT = "DELETE FROM segments WHERE hash = ? AND article_id = ?"
_DF_ADD = (
    "INSERT INTO segment_df (hash, articles) VALUES (?, 1)"
    " ON CONFLICT (hash) DO UPDATE SET articles = segment_df.articles + 1"
)
_DF_REMOVE = "UPDATE segment_df SET articles = articles - 1 WHERE hash = ?"
_EXTEND_REVISION = (
    "UPDATE revisions SET text = ?, norm_hash = ?, simhash = ?, band0 = ?, band1 = ?,"
    " band2 = ?, band3 = ? WHERE id = ?"
)
# The search index on SQLite (feedd/store/search.py): a contentless FTS5 table
# of every revision's text plus the sentinel, so every write of a revision's
# text writes the index too, and an entry is deleted with exactly the text it
# was indexed with. PostgreSQL's trigram index on revisions.text is an
# ordinary index, kept by the server.
_FTS_ADD = "INSERT INTO revisions_fts (rowid, text) VALUES (?, ?)"
_FTS_REMOVE = (
    "INSERT INTO revisions_fts (revisions_fts, rowid, text)"
    " SELECT 'delete', id, text || ? FROM revisions WHERE id = ?"
)
_REVISION_COUNT = "SELECT revision_count FROM articles WHERE id = ?"
_SET_REVISION = (
    "UPDATE articles SET revision_count = ?, current_revision = ?, updated_at = ? WHERE id = ?"
)
_RESTORE = "UPDATE articles SET current_revision = ?, updated_at = ? WHERE id = ?"
_INSERT_SIGHTING = (
    "INSERT INTO sightings (dump_id, line, article_id, revision_id, kind, seen_at,"
    " category, date, shown_chars) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@functools.cache
def _marks(n: int) -> str:
    return ", ".join("?" * n)


@functools.cache
def _heads_sql(n: int) -> str:
    return " UNION ALL ".join(_HEAD_PART.format(i=i) for i in range(n))


@functools.cache
def _returning(sql: str) -> str:
    return sql + " RETURNING id"


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


def padded(items: Sequence[Any], size: int = _MAX_IN) -> list[list[Any]]:
    """``items`` in chunks of at most ``size``, each padded (with its last
    value again) to a power of two, which an IN list does not mind. A
    statement is compiled once per distinct text and the drivers cache a
    bounded number of them (sqlite3 128, psycopg prepares a text after five
    runs): IN lists of every length from 1 to 500 made hundreds of texts, now
    ten per query."""
    out = []
    for chunk in chunks(items, size):
        values = list(chunk)
        values.extend(values[-1:] * ((1 << (len(values) - 1).bit_length()) - len(values)))
        out.append(values)
    return out


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
            self._returning = True
            self.timestamp: Any = _pg_timestamp
        else:
            self._sql = str
            self._returning = False
            self.timestamp = _sqlite_timestamp
        self._fts = conn.dialect.name == "sqlite"
        # norm_hash -> [(article_id, revision_id, number, raw text)], empty
        # when the database has no such text (so a miss is asked only once).
        self._exact: dict[int, list[tuple[int, int, int, str]]] = {}
        self._df: dict[int, int] = {}  # segment hash -> articles holding it
        self._current: dict[int, int] = {}  # article_id -> current revision number
        self._versions: tuple[str, int] = ("", 0)

    def _run(self, sql: str, params: Sequence[Any] = (), **options: Any) -> Any:
        cur = self._cursor
        cur.execute(self._sql(sql), params, **options)
        return cur

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        if self._returning:
            return int(self._run(_returning(sql), params).fetchone()[0])
        # SQLite: the row id, not RETURNING. A RETURNING statement left after
        # its one row was compiled again at every dump's first insert (~270 µs
        # each, the costliest statement of a backfill; lastrowid: ~16 µs).
        return int(self._run(sql, params).lastrowid)

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
        for chunk in padded(wanted):
            for h in chunk:
                known[h] = []
            rows = self._run(_EXACT.format(marks=_marks(len(chunk))), chunk).fetchall()
            for h, rid, aid, number, raw, current in rows:
                known[h].append((aid, rid, number, raw))
                self._current.setdefault(aid, current)

    def exact(self, key: TextKey, raw: str) -> tuple[ExactMatch, ...]:
        """Every stored revision with this normalised text (usually none or one)."""
        if key.norm_hash not in self._exact:
            self.preload_exact([key.norm_hash])
        out = []
        for aid, rid, number, stored in self._exact[key.norm_hash]:
            # The hash only proposes; equal normalised text decides.
            if stored == raw or normalize(stored) == key.normalized:
                out.append(ExactMatch(aid, rid, number, self._current.get(aid) == number))
        return tuple(out)

    def exact_text(self, revision_id: int) -> str | None:
        for hits in self._exact.values():
            for _, rid, _, raw in hits:
                if rid == revision_id:
                    return raw
        return None

    def segment_df(self, hashes: Iterable[int]) -> dict[int, int]:
        """Articles holding each segment hash (0: none); cached for the dump."""
        df = self._df
        wanted = sorted({h for h in hashes if h not in df})
        for chunk in padded(wanted):
            for h in chunk:
                df[h] = 0
            rows = self._run(_SEGMENT_DF.format(marks=_marks(len(chunk))), chunk).fetchall()
            for h, n in rows:
                df[h] = int(n)
        return df

    def postings(self, hashes: Iterable[int]) -> dict[int, list[int]]:
        """Article ids holding each of these (rare) segment hashes."""
        out: dict[int, list[int]] = {}
        for chunk in padded(sorted(set(hashes))):
            rows = self._run(_POSTINGS.format(marks=_marks(len(chunk))), chunk).fetchall()
            for h, aid in rows:
                out.setdefault(h, []).append(aid)
        return out

    def near(self, fp: Fingerprint, k: int) -> dict[int, int]:
        """Articles with a revision within k bits: article id -> nearest distance."""
        out: dict[int, int] = {}
        for aid, sh in self._run(_NEAR, bands(fp.simhash), **self._fresh_plan).fetchall():
            distance = hamming(sh, fp.simhash)
            if distance <= k and distance < out.get(aid, 65):
                out[aid] = distance
        return out

    def by_head(self, heads: Iterable[int]) -> list[int]:
        """Ids of articles whose current text has one of these opening hashes."""
        out: list[int] = []
        for chunk in padded(sorted(set(heads)), 256):
            out.extend(aid for (aid,) in self._run(_heads_sql(len(chunk)), chunk).fetchall())
        # A padded chunk asks its last opening again; an article has one opening.
        return list(dict.fromkeys(out))

    def current_texts(self, article_ids: Iterable[int]) -> dict[int, tuple[int, int, str, int]]:
        """article id -> (current revision id, its number, its text, its simhash)."""
        out: dict[int, tuple[int, int, str, int]] = {}
        for chunk in padded(sorted(set(article_ids))):
            sql = _CURRENT_TEXTS.format(marks=_marks(len(chunk)))
            for aid, rid, number, raw, sh in self._run(sql, chunk, **self._fresh_plan).fetchall():
                out[aid] = (rid, number, raw, sh)
        return out

    # writes -----------------------------------------------------------------
    def create_article(
        self, uid: str, fp: Fingerprint, raw: str, seen_at: datetime, dump_id: int, line: int
    ) -> tuple[int, int]:
        ts = self.timestamp(seen_at)
        aid = self._insert(_INSERT_ARTICLE, (uid, ts, ts, dump_id, line, head_key(fp.compact)))
        rid = self._insert_revision(aid, 1, fp, raw, ts, dump_id, line)
        self.replace_segments(aid, (), fp.segments)
        return aid, rid

    def add_revision(
        self,
        article_id: int,
        fp: Fingerprint,
        raw: str,
        seen_at: datetime,
        dump_id: int,
        line: int,
        previous: Sequence[int],
    ) -> tuple[int, int]:
        """A new current revision; ``previous``: the segments of the text it replaces."""
        ts = self.timestamp(seen_at)
        number = 1 + int(self._run(_REVISION_COUNT, (article_id,)).fetchone()[0])
        rid = self._insert_revision(article_id, number, fp, raw, ts, dump_id, line)
        self._run(_SET_REVISION, (number, number, ts, article_id))
        self._run(_SET_HEAD, (head_key(fp.compact), article_id))
        self.replace_segments(article_id, previous, fp.segments)
        return rid, number

    def extend_revision(
        self, article_id: int, revision_id: int, fp: Fingerprint, raw: str, previous: Sequence[int]
    ) -> None:
        """The current revision shown longer: it keeps the longer text (same number)."""
        if self._fts:
            self._run(_FTS_REMOVE, (SENTINEL, revision_id))
        self._run(
            _EXTEND_REVISION, (raw, fp.norm_hash, fp.simhash, *bands(fp.simhash), revision_id)
        )
        if self._fts:
            self._run(_FTS_ADD, (revision_id, raw + SENTINEL))
        self._run(_SET_HEAD, (head_key(fp.compact), article_id))
        self._exact.setdefault(fp.norm_hash, []).append(
            (article_id, revision_id, self._current.get(article_id, 0), raw)
        )
        self.replace_segments(article_id, previous, fp.segments)

    def replace_segments(self, article_id: int, old: Sequence[int], new: Sequence[int]) -> None:
        """Make the index hold ``new`` for the article instead of ``old``, and keep
        segment_df counting articles."""
        old_set, new_set = set(old), set(new)
        removed = [h for h in old if h not in new_set]
        added = [h for h in new if h not in old_set]
        many = self._cursor.executemany
        if removed:
            many(self._sql(_DELETE_SEGMENT), [(h, article_id) for h in removed])
            many(self._sql(_DF_REMOVE), [(h,) for h in removed])
        if added:
            many(self._sql(_INSERT_SEGMENT), [(h, article_id) for h in added])
            many(self._sql(_DF_ADD), [(h,) for h in added])
        for h in removed:
            if h in self._df:
                self._df[h] -= 1
        for h in added:
            if h in self._df:
                self._df[h] += 1

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
        if self._fts:
            self._run(_FTS_ADD, (rid, raw + SENTINEL))
        self._exact.setdefault(fp.norm_hash, []).append((article_id, rid, number, raw))
        self._current[article_id] = number
        return rid

    def restore_revision(
        self,
        article_id: int,
        number: int,
        seen_at: datetime,
        previous: Sequence[int],
        restored: Sequence[int],
        head: int | None,
    ) -> None:
        # The search index needs nothing: it holds every revision's text, and a
        # search takes the current one from articles.current_revision.
        self._run(_RESTORE, (number, self.timestamp(seen_at), article_id))
        self._run(_SET_HEAD, (head, article_id))
        self._current[article_id] = number
        self.replace_segments(article_id, previous, restored)

    def add_sightings(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows of (dump_id, line, article_id, revision_id, kind, seen_at, category, date,
        shown_chars); seen_at as ``timestamp()`` returned it."""
        if rows:
            self._cursor.executemany(self._sql(_INSERT_SIGHTING), rows)
