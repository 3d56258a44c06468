"""Faults around the daemon: a locked or restarted database, a full disk, and
configuration mistakes. Each one is logged, nothing is lost, and the daemon
recovers by itself once the fault is gone."""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from feedd.app import build
from feedd.config import load_config
from feedd.daemon import Daemon
from tests.support import IN_CI, PG_URL, seed_files
from tests.test_crash import Feedd, clean_env, db_rows, parse_feed_files, wait_for

SEEDS = seed_files()
NEW_PER_SEED = (12, 12, 9, 7, 7)  # new articles each seed adds, in order


def entries(feedd: Feedd) -> int:
    path = feedd.public / "feed.atom"
    return path.read_bytes().count(b"<entry>") if path.exists() else -1


def articles_sqlite(feedd: Feedd) -> int:
    rows = db_rows(feedd.db, "SELECT count(*) FROM articles")
    return int(rows[0][0]) if rows else 0


# --- SQLite locked by another writer ---------------------------------------------------


def test_a_locked_sqlite_database_is_waited_for_then_retried(tmp_path: Path) -> None:
    busy_ms = 1500
    feedd = Feedd(
        tmp_path,
        database={"busy_timeout_ms": busy_ms},
        daemon={"scan_interval": 0.3, "settle_seconds": 0.1, "max_backoff_seconds": 2.0},
    )
    proc = feedd.run_daemon()
    try:
        wait_for(lambda: entries(feedd) == 0, what="the daemon to start")
        feedd.drop(SEEDS[0].name, SEEDS[0].read_bytes())
        wait_for(lambda: entries(feedd) == 12, what="the first dump")

        with closing(sqlite3.connect(feedd.db, isolation_level=None)) as other:
            # Shorter than busy_timeout: the daemon waits, and nothing is logged.
            other.execute("BEGIN IMMEDIATE")
            feedd.drop(SEEDS[1].name, SEEDS[1].read_bytes())
            time.sleep(busy_ms / 1000 * 0.6)
            other.execute("COMMIT")
            wait_for(lambda: entries(feedd) == 24, what="the dump behind a short lock")
            assert "database unavailable" not in feedd.log_text()

            # Longer than busy_timeout: logged, retried, and ingested once free.
            other.execute("BEGIN IMMEDIATE")
            landed = time.monotonic()
            feedd.drop(SEEDS[2].name, SEEDS[2].read_bytes())
            wait_for(
                lambda: "database unavailable" in feedd.log_text(),
                what="the daemon to give up waiting",
            )
            waited = time.monotonic() - landed
            assert waited >= busy_ms / 1000, f"gave up after {waited:.2f} s, before busy_timeout"
            log = feedd.log_text()
            assert "locked by another writer" in log and "files stay pending" in log
            wait_for(
                lambda: feedd.log_text().count("database unavailable") >= 2,
                what="a retry at a later tick",
            )
            assert articles_sqlite(feedd) == 24, "nothing written while locked"
            other.execute("COMMIT")

        wait_for(lambda: entries(feedd) == 33, what="the dump after the lock was released")
        assert proc.poll() is None
        rows = db_rows(feedd.db, "SELECT name, status, item_count FROM dumps ORDER BY id")
        assert rows == [(p.name, "ingested", 12) for p in SEEDS[:3]], "each dump exactly once"
    finally:
        code = feedd.stop(proc)
    assert code == 0
    assert "Traceback" not in feedd.log_text()


# --- PostgreSQL restarted ------------------------------------------------------------------


def _local_cluster() -> tuple[str, str]:
    """(version, name) of the cluster behind PG_URL, or skip (fail under CI=true)."""

    def unavailable(reason: str) -> None:
        if IN_CI:
            pytest.fail(f"CI=true, so the PostgreSQL restart test must run, but {reason}")
        pytest.skip(reason)

    url = make_url(PG_URL)
    if url.host not in ("127.0.0.1", "localhost") or (url.port or 5432) != 5432:
        unavailable(f"FEEDD_TEST_PG_URL is not the local server on port 5432 ({url.host})")
    if os.geteuid() != 0:
        unavailable("restarting PostgreSQL needs root")
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        unavailable("pg_ctlcluster is not installed (postgresql-common)")
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "5432" and fields[3] == "online":
            return fields[0], fields[1]
    unavailable(f"no online cluster on port 5432 in pg_lsclusters:\n{listing}")
    raise AssertionError("unreachable")


def _pg_ctl(cluster: tuple[str, str], action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.postgres
@pytest.mark.postgres_restart
def test_the_daemon_survives_postgresql_restarts(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    cluster = _local_cluster()
    pg_server: Any = request.getfixturevalue("pg_server")
    url = pg_server.database("restarted")
    engine = create_engine(url, poolclass=NullPool)

    def articles() -> int:
        try:
            with engine.connect() as conn:
                return int(conn.execute(text("SELECT count(*) FROM articles")).scalar_one())
        except Exception:  # noqa: BLE001 - the server is down or the schema not there yet
            return -1

    feedd = Feedd(
        tmp_path,
        database={"url": url},
        daemon={"scan_interval": 0.3, "settle_seconds": 0.1, "max_backoff_seconds": 1.0},
    )
    proc = feedd.run_daemon()
    stopped = False
    try:
        wait_for(lambda: entries(feedd) == 0, what="the daemon to start")
        feedd.drop(SEEDS[0].name, SEEDS[0].read_bytes())
        wait_for(lambda: articles() == 12, what="the first dump")

        # A restart as the package does it, while a dump is landing.
        feedd.drop(SEEDS[1].name, SEEDS[1].read_bytes())
        _pg_ctl(cluster, "restart")
        wait_for(lambda: articles() == 24, timeout=60, what="the dump of the restart")

        # Down for a while: dumps land meanwhile, then the server comes back.
        _pg_ctl(cluster, "stop")
        stopped = True
        feedd.drop(SEEDS[2].name, SEEDS[2].read_bytes())
        feedd.drop(SEEDS[3].name, SEEDS[3].read_bytes())
        wait_for(
            lambda: "database unavailable" in feedd.log_text(),
            what="the daemon to notice the server is gone",
        )
        assert proc.poll() is None
        _pg_ctl(cluster, "start")
        stopped = False
        wait_for(lambda: articles() == 12 + 12 + 9 + 7, timeout=60, what="the dumps of the outage")
        wait_for(lambda: entries(feedd) == 40, what="the feeds")
        with engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM dumps ORDER BY id")).scalars().all()
        assert names == [p.name for p in SEEDS[:4]], "each dump exactly once, in order"
        assert proc.poll() is None
    finally:
        if stopped:
            _pg_ctl(cluster, "start")
        # Pooled connections of this session died with the server.
        pg_server.admin.dispose()
        code = feedd.stop(proc)
        engine.dispose()
    assert code == 0
    log = feedd.log_text()
    assert "Traceback" not in log
    assert all(re.match(r"\d{4}-\d\d-\d\dT", line) for line in log.splitlines()), "one-line logs"


# --- a full disk ---------------------------------------------------------------------------


FILLER = ".filler"


def _fill(folder: Path) -> Path:
    """Fill the filesystem of folder until a write fails with ENOSPC."""
    filler = folder / FILLER
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs at tmp_path/public, when this process may mount one."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        pytest.skip("mounting a tmpfs needs root; test_a_failing_feed_write_... covers it")
    point = tmp_path / "public"
    point.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=1m,mode=0755", "feedd-test", str(point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield point
    finally:
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], check=True)


def test_a_full_disk_keeps_the_old_feed_and_the_daemon_running(tiny_tmpfs: Path) -> None:
    feedd = Feedd(tiny_tmpfs.parent, daemon={"scan_interval": 0.3, "settle_seconds": 0.1})
    assert feedd.public == tiny_tmpfs
    proc = feedd.run_daemon()
    try:
        wait_for(lambda: entries(feedd) == 0, what="the daemon to start")
        feedd.drop(SEEDS[0].name, SEEDS[0].read_bytes())
        wait_for(lambda: entries(feedd) == 12, what="the first dump")
        before = parse_feed_files(feedd.public)

        filler = _fill(tiny_tmpfs)
        assert filler.name == FILLER
        feedd.drop(SEEDS[1].name, SEEDS[1].read_bytes())
        wait_for(lambda: "No space left on device" in feedd.log_text(), what="the failed write")
        wait_for(
            lambda: feedd.log_text().count("No space left on device") >= 2,
            what="a retry at the next tick",
        )
        assert proc.poll() is None
        assert parse_feed_files(feedd.public, ignore=frozenset({FILLER})) == before, "intact"
        assert sorted(p.name for p in tiny_tmpfs.iterdir()) == [
            ".filler",
            "feed.atom",
            "feed.rss",
        ], "no temporary file left behind"
        assert articles_sqlite(feedd) == 24, "the ingest itself is kept"

        filler.unlink()  # space again: the next tick writes, with no new dump
        wait_for(lambda: entries(feedd) == 24, what="the feeds after space came back")
    finally:
        code = feedd.stop(proc)
    assert code == 0
    assert "Traceback" not in feedd.log_text()


def test_a_failing_feed_write_keeps_the_old_feed_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The same, in process, where no tmpfs can be mounted: the data reaches the
    # disk at fsync, and a full disk says so there. (settle 0: a scan takes
    # what it sees at once.)
    feedd = Feedd(tmp_path, daemon={"settle_seconds": 0})
    config = load_config(feedd.config, env={})
    daemon = Daemon(config)
    daemon.app = build(config)
    try:
        old = time.time() - 60
        feedd.drop(SEEDS[0].name, SEEDS[0].read_bytes(), mtime=old)
        daemon.scan()
        assert entries(feedd) == 12
        before = parse_feed_files(feedd.public)

        def no_space(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", no_space)
        feedd.drop(SEEDS[1].name, SEEDS[1].read_bytes(), mtime=old)
        with caplog.at_level(logging.ERROR, logger="feedd"):
            daemon.scan()  # must not raise
            daemon.scan()
        assert caplog.text.count("No space left on device") == 2, "logged, and retried"
        assert parse_feed_files(feedd.public) == before
        assert sorted(p.name for p in feedd.public.iterdir()) == ["feed.atom", "feed.rss"]
        assert daemon.app.store.totals().articles == 24

        monkeypatch.undo()
        daemon.scan()
        assert entries(feedd) == 24
    finally:
        daemon.app.close()


# --- configuration mistakes for `feedd run` ---------------------------------------------------

RUN_MISTAKES = [
    ("[daemon]\nscan_intervall = 1\n", {}, "unknown key daemon.scan_intervall"),
    ("[daemon]\nscan_interval = 'often'\n", {}, "daemon.scan_interval must be a number"),
    ("[daemon]\nscan_interval = -1\n", {}, "daemon.scan_interval must be greater than 0"),
    ("", {"FEEDD_DAEMON_SCAN_INTERVAL": "often"}, "$FEEDD_DAEMON_SCAN_INTERVAL"),
    ("[ingest]\nfollow_symlinks = 'maybe'\n", {}, "ingest.follow_symlinks must be true or false"),
    ("[ingest]\nwatch_dir = 'missing'\n", {}, "ingest.watch_dir: folder"),
    ("[ingest]\nwatch_dir = 'a_file'\n", {}, "ingest.watch_dir: folder"),
    ("[database]\nurl = 'sqlite:///missing/feedd.db'\n", {}, "database.url: folder"),
    ("[database]\nurl = 'sqlite:///a_file/feedd.db'\n", {}, "database.url: folder"),
    ("[database]\nurl = 'postgresql+psycopg://u@127.0.0.1:1/x'\n", {}, "database.url: cannot use"),
    ("[database]\nurl = 'mysql://x/y'\n", {}, "database.url: unsupported database"),
    ("[database]\nurl = 'not a url'\n", {}, "database.url"),
    ("[server]\nlisten = 'everywhere'\n", {}, "server.listen must look like"),
    ("[log]\nlevel = 'loud'\n", {}, "log.level must be one of"),
    # Values that passed the checks but broke the daemon (issue 13, item 6).
    ("[ingest]\nquarantine_dir = 'dumps'\n", {}, "ingest.quarantine_dir must not be the watch"),
    ("[ingest]\narchive_dir = './dumps/'\n", {}, "ingest.archive_dir must not be the watch"),
    ("[daemon]\nsettle_seconds = nan\n", {}, "daemon.settle_seconds must be a finite number"),
    ("[daemon]\nscan_interval = nan\n", {}, "daemon.scan_interval must be a finite number"),
    ("", {"FEEDD_DAEMON_SCAN_INTERVAL": "inf"}, "$FEEDD_DAEMON_SCAN_INTERVAL) must be a finite"),
    ("[feed]\nmax_items = 100000000000\n", {}, "feed.max_items must be at most"),
    ("[ingest]\npattern = ''\n", {}, "ingest.pattern must not be empty"),
    ("[server]\nlisten = '127.0.0.1:99999'\n", {}, "server.listen: port must be 1 to 65535"),
    ("[server]\nlisten = ':8080'\n", {}, "server.listen must look like"),
    ("[server]\nlisten = 'no-such-host.invalid:8080'\n", {}, "server.listen"),
    ("", {"FEEDD_FEED_MAX_ITEM": "100"}, "unknown environment variable $FEEDD_FEED_MAX_ITEM"),
    ("[daemon\n", {}, "is not valid TOML"),
]


@pytest.mark.parametrize(("config", "env", "needle"), RUN_MISTAKES)
def test_run_refuses_a_config_mistake_in_one_line(
    tmp_path: Path, config: str, env: dict[str, str], needle: str
) -> None:
    (tmp_path / "dumps").mkdir()
    (tmp_path / "a_file").write_text("")
    path = tmp_path / "config.toml"
    path.write_text(config)
    # A config that is wrongly accepted would start the daemon: the timeout says so.
    proc = subprocess.run(
        [sys.executable, "-m", "feedd", "-c", str(path), "run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**clean_env(), **env},
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "missing").exists(), "nothing created for a wrong path"


def test_run_refuses_a_listen_port_in_use_in_one_line(tmp_path: Path) -> None:
    import socket

    (tmp_path / "dumps").mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "config.toml").write_text(f"[server]\nlisten = '127.0.0.1:{port}'\n")
        proc = subprocess.run(
            [sys.executable, "-m", "feedd", "-c", str(tmp_path / "config.toml"), "run"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=clean_env(),
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    assert "server.listen" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_run_refuses_a_missing_config_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "feedd", "-c", str(tmp_path / "nope.toml"), "run"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "nope.toml does not exist" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
