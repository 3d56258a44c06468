"""Crash safety: kill -9 at random points, restart, and lose nothing.

The daemon and `feedd backfill` are killed while they ingest 200 generated
dumps, then restarted each time. After every kill the database must hold only
whole dumps, in dump order, and every feed file on disk must be well-formed
XML; at the end `feedd export` and the feeds must be byte-identical to those of
an uninterrupted run. A schema upgrade killed half-way must leave the old
schema, which the next start upgrades.

Helpers here (``Feedd``, ``wait_for``, ``db_rows``) are shared with
test_hostile.py and test_faults.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select

from feedd.app import build
from feedd.config import load_config
from feedd.core.parse import parse_dump
from feedd.feeds.write import STALE_TEMP_SECONDS
from feedd.store import migrate
from feedd.store.engine import make_engine
from feedd.store.schema import articles, dumps, revisions, sightings
from tests.support import ROOT, TEST_MIGRATION, seed_files

HEADER = "INCOMING TRANSMISSION\n\nLATEST UPDATES\n"
FEED_ROOTS = {"rss", "{http://www.w3.org/2005/Atom}feed"}
BASE_MTIME = 1_750_000_000  # whole seconds: sightings are dated by file mtime


# --- helpers shared by the reliability tests -------------------------------------


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.005)


def _toml(value: object) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def clean_env() -> dict[str, str]:
    """The environment without FEEDD_* variables, which would override config.toml."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}


class Feedd:
    """A feedd installation in a folder: config.toml, dumps/, public/, the database."""

    def __init__(self, root: Path, **sections: dict[str, object]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.dumps = root / "dumps"
        self.dumps.mkdir(exist_ok=True)
        self.public = root / "public"
        self.quarantine = root / "quarantine"
        self.db = root / "feedd.db"
        self.log = root / "feedd.log"
        config: dict[str, dict[str, object]] = {
            "database": {"url": "sqlite:///feedd.db"},
            "ingest": {"watch_dir": "dumps", "quarantine_dir": "quarantine"},
            "feed": {"output_dir": "public"},
            "daemon": {"scan_interval": 0.2, "settle_seconds": 0.1},
        }
        for name, values in sections.items():
            config.setdefault(name, {}).update(values)
        self.config = root / "config.toml"
        self.config.write_text(
            "".join(
                f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
                for name, values in config.items()
            )
        )

    def spawn(self, *args: str, wrapper: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [*wrapper, sys.executable, "-m", "feedd", "-c", str(self.config), *args],
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=self.root,
                env=clean_env(),
            )

    def run_daemon(self, wrapper: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        return self.spawn("run", wrapper=wrapper)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "feedd", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            env=clean_env(),
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"feedd {args} exited {proc.returncode}: {proc.stderr}")
        return proc

    def export(self) -> str:
        return self.cli("export").stdout

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=60)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def drop(self, name: str, data: bytes, mtime: float | None = None) -> Path:
        """Land a dump the way a scraper should: write aside, then rename."""
        part = self.dumps / f"{name}.part"
        part.write_bytes(data)
        if mtime is not None:
            os.utime(part, (mtime, mtime))
        target = self.dumps / name
        os.replace(part, target)
        return target


def db_rows(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows of a read-only query; [] while the database or its schema does not exist."""
    if not db.exists():
        return []
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


def ingested_count(db: Path) -> int:
    rows = db_rows(db, "SELECT count(*) FROM dumps WHERE status = 'ingested'")
    return int(rows[0][0]) if rows else 0


def parse_feed_files(public: Path, ignore: frozenset[str] = frozenset()) -> dict[str, bytes]:
    """Every feed file in the folder, each checked to be whole, well-formed XML."""
    out: dict[str, bytes] = {}
    if not public.is_dir():
        return out
    for path in sorted(public.iterdir()):
        if path.name in ignore:
            continue
        if path.name.startswith("."):
            # A temporary file of a write that was killed: never served, and
            # removed by a later publish once it is stale.
            assert re.fullmatch(r"\.(feed|updates)\.(rss|atom)\..+\.tmp", path.name), path
            continue
        data = path.read_bytes()
        root = ET.fromstring(data)  # raises on a truncated or garbled file
        assert root.tag in FEED_ROOTS, (path, root.tag)
        out[path.name] = data
    return out


# --- a stream of dumps ------------------------------------------------------------


def seed_items() -> list[str]:
    items: list[str] = []
    for path in seed_files():
        for item in parse_dump(path.read_bytes()).items:
            if item.text not in items:
                items.append(item.text)
    return items


def generate_dumps(out: Path, count: int, seed: int) -> list[Path]:
    """A listing that evolves: new articles on top, edits, repeats, noise lines.

    Deterministic for a seed. Files get whole-second mtimes, 5 minutes apart.
    """
    rng = random.Random(seed)
    fresh = seed_items()
    rng.shuffle(fresh)
    sentences = sorted({s for t in fresh for s in re.split(r"(?<=[。！？])", t) if len(s) >= 12})
    history: list[list[str]] = []  # article -> its texts, the shown one last
    shown: list[int] = []  # the listing, newest first
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        for _ in range(rng.choice((0, 1, 1, 2))):
            if fresh:
                body = fresh.pop()
            else:
                body = "".join(rng.sample(sentences, rng.randint(2, 3)))
            history.append([body])
            shown.insert(0, len(history) - 1)
        if shown and rng.random() < 0.35:
            article = history[rng.choice(shown)]
            current = article[-1]
            edit = rng.randrange(4)
            if edit == 0 and len(current) > 20:
                at = rng.randrange(10, len(current) - 5)
                new = current[:at] + rng.choice("的了是在有和") + current[at + 1 :]
            elif edit == 1:
                new = current + rng.choice(sentences)
            elif edit == 2 and len(current) > 60:
                new = current[: int(len(current) * 0.8)] + "…"
            else:
                new = article[0]  # back to the first text
            article.append(new)
        del shown[15:]
        lines = []
        for position, index in enumerate(shown):
            if position % 4 == 1:
                lines.append(rng.choice(("科技", "学习笔记", "新闻")))
            if position % 5 == 2:
                lines.append(f"2025-{1 + n % 12:02d}-{1 + position:02d}")
            lines.append(history[index][-1])
        if rng.random() < 0.5:
            lines.append("1 2 3 … 9 下一页")
        path = out / f"{n:03d}_{rng.getrandbits(64):016x}.txt"
        path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
        os.utime(path, (BASE_MTIME + 300 * n, BASE_MTIME + 300 * n))
        paths.append(path)
    return paths


@dataclass
class Corpus:
    files: list[Path]
    items: dict[str, int]  # item lines per dump, as the parser sees them
    # `feedd export` of an uninterrupted run. It holds no time that depends on
    # when a dump was ingested (sightings are dated by the file's mtime, kept by
    # copy2), so runs are compared whole, byte for byte.
    export: str
    feeds: dict[str, bytes]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("corpus")
    files = generate_dumps(root / "dumps", 200, seed=6)
    items = {p.name: len(parse_dump(p.read_bytes()).items) for p in files}
    reference = Feedd(root / "reference")
    app = build(load_config(reference.config, env={}))
    try:
        results = app.ingester.ingest_paths(files)
        app.publish()
    finally:
        app.close()
    assert [r.status for r in results] == ["ingested"] * len(files)
    totals = {k: sum(getattr(r, k) for r in results) for k in ("new", "repeat", "update")}
    # A stream with all three kinds in bulk (its re-cut edits are repeats since
    # re-cuts stopped being revisions, so updates are the rarest kind).
    assert min(totals["new"], totals["repeat"]) > 100 and totals["update"] > 50, totals
    return Corpus(files, items, reference.export(), parse_feed_files(reference.public))


def assert_consistent(feedd: Feedd, corpus: Corpus) -> int:
    """Whole dumps only, in dump order; whole feed files. Returns dumps ingested."""
    if feedd.db.exists():
        assert db_rows(feedd.db, "PRAGMA integrity_check") == [("ok",)]
    rows = db_rows(
        feedd.db,
        "SELECT d.name, d.status, d.item_count, "
        "(SELECT count(*) FROM sightings s WHERE s.dump_id = d.id) FROM dumps d ORDER BY d.id",
    )
    names = [p.name for p in corpus.files[: len(rows)]]
    assert [r[0] for r in rows] == names, "dumps ingested out of order, twice, or with a gap"
    for name, status, item_count, sighted in rows:
        assert (status, item_count, sighted) == ("ingested", corpus.items[name], item_count), name
    orphans = db_rows(
        feedd.db,
        "SELECT count(*) FROM articles a "
        "WHERE NOT EXISTS (SELECT 1 FROM sightings s WHERE s.article_id = a.id)",
    )
    assert orphans in ([], [(0,)]), "an article without its sighting: a half-written dump"
    parse_feed_files(feedd.public)
    return len(rows)


def kill_hard(proc: subprocess.Popen[bytes], feedd: Feedd) -> None:
    assert proc.poll() is None, f"exited by itself ({proc.returncode}):\n{feedd.log_text()[-3000:]}"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


KILLS = 20


# --- the daemon ---------------------------------------------------------------------


def test_daemon_killed_at_random_points_ends_like_an_uninterrupted_run(
    corpus: Corpus, tmp_path: Path
) -> None:
    rng = random.Random(20)
    feedd = Feedd(tmp_path / "daemon", ingest={"archive_dir": "archive"})
    files = corpus.files
    landed = 0

    def land(upto: int) -> None:
        # Only the next few dumps are in the folder when a run starts, so the
        # kills also land in feed writes and archive moves, not only in ingests.
        nonlocal landed
        for src in files[landed:upto]:
            part = feedd.dumps / f"{src.name}.part"
            shutil.copy2(src, part)  # keeps the mtime, which dates the sightings
            os.replace(part, feedd.dumps / src.name)
        landed = max(landed, upto)

    targets = sorted(rng.sample(range(1, len(files) - 10), KILLS - 1))
    progress = []
    for target in [None, *targets]:
        if target is None:  # the first kill: during start-up and schema creation
            land(rng.randint(5, 15))
            proc = feedd.run_daemon()
            time.sleep(rng.uniform(0.05, 1.0))
        else:
            land(min(len(files), target + rng.randint(1, 12)))
            proc = feedd.run_daemon()
            wait_for(lambda t=target: ingested_count(feedd.db) >= t, what=f"{target} dumps")
            time.sleep(rng.uniform(0, 0.15))
        kill_hard(proc, feedd)
        progress.append(assert_consistent(feedd, corpus))
    assert progress[-1] >= targets[-1]

    land(len(files))
    proc = feedd.run_daemon()
    wait_for(lambda: ingested_count(feedd.db) == len(files), timeout=60, what="all dumps")
    assert feedd.stop(proc) == 0
    assert assert_consistent(feedd, corpus) == len(files)
    assert feedd.export() == corpus.export
    assert parse_feed_files(feedd.public) == corpus.feeds
    archived = sorted(p.name for p in (feedd.root / "archive").iterdir())
    assert archived == [p.name for p in files], "every dump archived exactly once"
    assert list(feedd.dumps.iterdir()) == [] and not feedd.quarantine.exists()
    assert "Traceback" not in feedd.log_text()


def test_a_restart_publishes_what_a_crash_left_unpublished(tmp_path: Path) -> None:
    # The state a kill between an ingest's commit and the feed write leaves:
    # the database is ahead of the feeds, and no new dump is coming.
    feedd = Feedd(tmp_path)
    seeds = seed_files()
    feedd.cli("backfill", str(seeds[0]))
    assert parse_feed_files(feedd.public)["feed.atom"].count(b"<entry>") == 12
    feedd.cli("backfill", "--no-feeds", *map(str, seeds[1:]))
    proc = feedd.run_daemon()
    try:
        wait_for(
            lambda: (feedd.public / "feed.atom").read_bytes().count(b"<entry>") == 47,
            what="the feeds to catch up with the database",
        )
    finally:
        code = feedd.stop(proc)
    assert code == 0


def test_backfill_again_publishes_what_a_killed_backfill_left_unpublished(
    tmp_path: Path,
) -> None:
    feedd = Feedd(tmp_path)
    feedd.cli("backfill", "--no-feeds", *map(str, seed_files()))
    feedd.cli("backfill", *map(str, seed_files()))
    assert parse_feed_files(feedd.public)["feed.atom"].count(b"<entry>") == 47


def test_publish_removes_temporary_files_left_by_a_killed_writer(tmp_path: Path) -> None:
    feedd = Feedd(tmp_path)
    feedd.public.mkdir()
    old = feedd.public / ".feed.atom.k1ll3d.tmp"
    old.write_bytes(b"<feed><entry>half a fe")
    stale = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(old, (stale, stale))
    young = feedd.public / ".feed.rss.wr1t1ng.tmp"  # another worker, writing now
    young.write_bytes(b"<rss>")
    unrelated = feedd.public / ".keep.tmp"
    unrelated.write_bytes(b"")
    os.utime(unrelated, (stale, stale))
    feedd.cli("backfill", str(seed_files()[0]))
    assert not old.exists()
    assert young.exists() and unrelated.exists()
    assert sorted(p.name for p in feedd.public.iterdir()) == [
        ".feed.rss.wr1t1ng.tmp",
        ".keep.tmp",
        "feed.atom",
        "feed.rss",
    ]


# --- backfill -------------------------------------------------------------------------


def test_backfill_killed_at_random_points_ends_like_an_uninterrupted_run(
    corpus: Corpus, tmp_path: Path
) -> None:
    rng = random.Random(21)
    feedd = Feedd(tmp_path / "backfill")
    folder = str(corpus.files[0].parent)
    targets = sorted(rng.sample(range(1, len(corpus.files) - 20), KILLS - 1))
    for target in [None, *targets]:
        proc = feedd.spawn("backfill", folder)
        if target is None:
            time.sleep(rng.uniform(0.05, 1.0))
        else:
            wait_for(lambda t=target: ingested_count(feedd.db) >= t, what=f"{target} dumps")
            time.sleep(rng.uniform(0, 0.06))  # it must not finish first
        kill_hard(proc, feedd)
        assert_consistent(feedd, corpus)

    feedd.cli("backfill", folder)
    assert assert_consistent(feedd, corpus) == len(corpus.files)
    assert feedd.export() == corpus.export
    assert parse_feed_files(feedd.public) == corpus.feeds


# --- schema upgrades ----------------------------------------------------------------

UPGRADE_CHILD = """
import sys
from pathlib import Path
from feedd.store import migrate
from feedd.store.engine import make_engine
migrate.upgrade(make_engine(sys.argv[1]), location=Path(sys.argv[2]))
"""


def _scripts(where: Path, pause: str) -> Path:
    location = where / "migrations"
    shutil.copytree(migrate.script_location(), location)
    (location / "versions" / "0099_test.py").write_text(
        TEST_MIGRATION.format(head=migrate.head_revision(), tail=pause)
    )
    return location


def _counts(url: str) -> tuple[int, ...]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(
                conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (dumps, articles, revisions, sightings)
            )
    finally:
        engine.dispose()


def _schema(url: str) -> tuple[str | None, set[str], set[str]]:
    """(revision, tables, columns of articles)."""
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return (
            migrate.current_revision(engine),
            set(found.get_table_names()),
            {c["name"] for c in found.get_columns("articles")},
        )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "engine_name", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_schema_upgrade_killed_half_way_leaves_the_old_schema(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'feedd.db'}"
        if engine_name == "sqlite"
        else request.getfixturevalue("pg_server").database("killed_upgrade")
    )
    overrides = {"database.url": url, "feed.output_dir": str(tmp_path / "public")}
    app = build(load_config(None, env={}, overrides=overrides))
    app.ingester.ingest_paths(seed_files())
    app.close()
    before = _counts(url)
    assert before[1:] == (47, 47, 60)
    head = migrate.head_revision()

    marker = tmp_path / "in-the-middle"
    sleepy = _scripts(
        tmp_path / "sleepy", f"Path({str(marker)!r}).write_text('now'); time.sleep(120)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", UPGRADE_CHILD, url, str(sleepy)], cwd=ROOT, env=clean_env()
    )
    try:
        wait_for(marker.exists, timeout=60, what="the migration to reach its pause")
    finally:
        child.kill()
    assert child.wait(timeout=30) == -signal.SIGKILL

    if engine_name == "sqlite":
        assert db_rows(tmp_path / "feedd.db", "PRAGMA integrity_check") == [("ok",)]
    revision, tables, columns = _schema(url)
    assert revision == head
    assert "note" not in columns
    assert not any(t.startswith("_alembic_tmp") for t in tables), tables
    assert _counts(url) == before

    # The next start (the real one, to head) works on what the kill left...
    app = build(load_config(None, env={}, overrides=overrides))
    assert app.store.totals().articles == 47
    app.close()
    # ...and so does the interrupted upgrade, run again to the end.
    engine = make_engine(url)
    migrate.upgrade(engine, location=_scripts(tmp_path / "fixed", "pass"))
    engine.dispose()
    revision, _, columns = _schema(url)
    assert revision == "0099" and "note" in columns
    assert _counts(url) == before, "the batch rebuild must not lose child rows"
