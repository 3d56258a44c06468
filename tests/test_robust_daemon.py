"""The daemon and backfill under odd files, bursts, signals and lost databases.

Each test drives a real `feedd` process (or the real ingest code) on real files
and a real SQLite database, and each reproduces a defect found at 2af2388
(issue 13): the numbers in the test names' comments are the issue's items.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from feedd.app import build
from feedd.config import load_config
from feedd.ingest import source
from tests.support import dump_bytes, generate_stream, seed_files
from tests.test_crash import Feedd, clean_env, db_rows, ingested_count, wait_for

BAD_NAME = os.fsdecode(b"\xff\xfe-latin1-\xe9.txt")  # not UTF-8


def exported(feedd: Feedd) -> list[tuple[str, list[str], list[tuple[str, int, str]]]]:
    """Each article: id, revision texts, sightings (dump, line, kind)."""
    out = []
    for line in feedd.export().splitlines():
        row = json.loads(line)
        out.append(
            (
                row["id"],
                [r["text"] for r in row["revisions"]],
                [(s["dump"], s["line"], s["kind"]) for s in row["sightings"]],
            )
        )
    return out


def rejected(db: Path) -> dict[str, str]:
    return dict(db_rows(db, "SELECT name, error FROM dumps WHERE status = 'rejected'"))


# --- 2: one odd directory entry must not stop the pipeline -------------------


def make_odd_entries(folder: Path) -> None:
    (folder / "loop.txt").symlink_to("loop.txt")  # a symlink loop
    (folder / "a.txt").symlink_to("b.txt")
    (folder / "b.txt").symlink_to("a.txt")  # a loop of two
    (folder / BAD_NAME).write_bytes(seed_files()[2].read_bytes())


def test_odd_entries_are_set_aside_and_the_daemon_goes_on(tmp_path: Path) -> None:
    feedd = Feedd(tmp_path)
    make_odd_entries(feedd.dumps)
    feedd.drop(seed_files()[0].name, seed_files()[0].read_bytes())
    daemon = feedd.run_daemon()
    try:
        wait_for(lambda: ingested_count(feedd.db) == 1, what="the good dump")
        wait_for(lambda: len(rejected(feedd.db)) == 4, what="four rejections")
        reasons = rejected(feedd.db)
        assert reasons["loop.txt"].startswith("symlink")
        printable = "\\xff\\xfe-latin1-\\xe9.txt"
        assert "not valid UTF-8" in reasons[printable]
        # All four set aside with a reason; the printable name in quarantine.
        wait_for(lambda: sorted(os.listdir(feedd.dumps)) == [seed_files()[0].name])
        assert (feedd.quarantine / f"{printable}.reason.txt").is_file()
        assert (feedd.quarantine / printable).read_bytes() == seed_files()[2].read_bytes()
        # The daemon goes on with the next dump, and status answers.
        feedd.drop(seed_files()[1].name, seed_files()[1].read_bytes())
        wait_for(lambda: ingested_count(feedd.db) == 2, what="the next dump")
        make_odd_entries(feedd.dumps)  # odd entries present while status looks
        status = json.loads(feedd.cli("status", "--json").stdout)
        assert status["totals"]["dumps"] == 2
        assert daemon.poll() is None
    finally:
        assert feedd.stop(daemon) == 0
    # 19: one warning per rejected dump, not two.
    warnings = [line for line in feedd.log_text().splitlines() if "WARNING" in line]
    assert sum("loop.txt" in line for line in warnings) == 1, warnings


def test_backfill_sets_odd_entries_aside_and_keeps_the_good_dumps(tmp_path: Path) -> None:
    feedd = Feedd(tmp_path)
    make_odd_entries(feedd.dumps)
    for seed in seed_files()[:3]:
        (feedd.dumps / seed.name).write_bytes(seed.read_bytes())
    proc = feedd.cli("backfill", "--json", str(feedd.dumps))
    summary = json.loads(proc.stdout)
    assert summary["ingested"] == 3, proc.stderr
    assert sorted(r["name"] for r in summary["rejected"]) == sorted(
        ["a.txt", "b.txt", "loop.txt", "\\xff\\xfe-latin1-\\xe9.txt"]
    )
    assert ingested_count(feedd.db) == 3
    assert (feedd.dumps / BAD_NAME).exists(), "backfill never moves files"


# --- 3: a burst is taken whole, in dump order ---------------------------------


def test_a_burst_gives_the_history_and_ids_of_a_backfill(tmp_path: Path) -> None:
    stream = generate_stream(240, seed=3)
    staging = tmp_path / "staging"
    staging.mkdir()
    for name, data in stream:
        (staging / name).write_bytes(data)
    reference = Feedd(tmp_path / "backfill")
    reference.cli("backfill", str(staging))

    # Written long ago (mv keeps mtimes), moved in out of order, in two waves
    # with a pause of more than a scan: the first scan sees only later dumps.
    old = time.time() - 3600
    for path in staging.iterdir():
        os.utime(path, (old, old))
    feedd = Feedd(tmp_path / "daemon", daemon={"scan_interval": 0.1, "settle_seconds": 1.0})
    daemon = feedd.run_daemon()
    try:
        wait_for(lambda: (feedd.public / "feed.atom").exists(), what="the daemon to start")
        names = sorted(p.name for p in staging.iterdir())
        for wave in (names[120:][::-1], names[:120][::-1]):
            for name in wave:
                os.rename(staging / name, feedd.dumps / name)
            time.sleep(0.5)
        wait_for(lambda: ingested_count(feedd.db) == 240, timeout=120, what="the burst")
        assert exported(feedd) == exported(reference)

        # A dump that arrives after a later-numbered one: ingested, logged as late.
        late = "100_00000000000000ff.txt"
        feedd.drop(late, dump_bytes("迟到的一条:这篇文章在后面的编号之后才到达,按到达顺序收录。"))
        wait_for(lambda: ingested_count(feedd.db) == 241, what="the late dump")
        assert f"{late} arrived late" in feedd.log_text()
    finally:
        assert feedd.stop(daemon) == 0


# --- 5: a dump with a future mtime --------------------------------------------


def test_a_future_mtime_is_dated_at_ingest_time_with_a_warning(tmp_path: Path) -> None:
    future = time.mktime((2400, 1, 1, 0, 0, 0, 0, 0, 0))
    feedd = Feedd(tmp_path)
    daemon = feedd.run_daemon()
    try:
        feedd.drop(seed_files()[0].name, seed_files()[0].read_bytes(), mtime=future)
        wait_for(lambda: ingested_count(feedd.db) == 1, what="the future dump")
        assert "modification time in the future" in feedd.log_text()
    finally:
        assert feedd.stop(daemon) == 0
    # backfill reads it through the same path
    other = Feedd(tmp_path / "backfill")
    path = other.dumps / seed_files()[1].name
    path.write_bytes(seed_files()[1].read_bytes())
    os.utime(path, (future, future))
    proc = other.cli("backfill", str(other.dumps))
    assert "modification time in the future" in proc.stderr
    for db in (feedd.db, other.db):
        (seen,) = db_rows(db, "SELECT max(observed_at) FROM dumps")[0]
        assert seen < "2100", seen
    assert b"2400" not in (other.public / "feed.atom").read_bytes()


# --- 8: SIGTERM during a long dump ---------------------------------------------


def big_dump(lines: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    return dump_bytes(
        *(f"{n}号:" + "".join(rng.choices(alphabet, k=60)) + "..." for n in range(lines))
    )


def lock_heartbeat(feedd: Feedd) -> str | None:
    try:
        return str(json.loads(Path(f"{feedd.db}.lock").read_text())["heartbeat_at"])
    except (OSError, ValueError, KeyError):
        return None


def test_sigterm_in_a_long_dump_stops_promptly_and_rolls_it_back(tmp_path: Path) -> None:
    feedd = Feedd(tmp_path, daemon={"scan_interval": 0.2, "heartbeat_stale_seconds": 4})
    daemon = feedd.run_daemon()
    try:
        wait_for(lambda: (feedd.public / "feed.atom").exists(), what="the daemon to start")
        feedd.drop("000_0000000000000000.txt", big_dump(30_000))
        time.sleep(2)  # settled, read, and well into its transaction
        before = lock_heartbeat(feedd)
        time.sleep(2.5)
        during = lock_heartbeat(feedd)
        assert before and during and during > before, "the heartbeat stays alive"
        assert daemon.poll() is None and ingested_count(feedd.db) == 0, "still in the dump"
        asked = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
        assert time.monotonic() - asked < 5, "stopped within seconds"
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert "rolled back" in feedd.log_text()
    # 19: ticks that find the scan still running are normal, not warnings.
    assert "maximum number of running instances" not in feedd.log_text()
    assert db_rows(feedd.db, "SELECT count(*) FROM dumps") == [(0,)], "as if never started"
    assert db_rows(feedd.db, "SELECT count(*) FROM articles") == [(0,)]
    assert (feedd.dumps / "000_0000000000000000.txt").exists(), "pending for the next start"


# --- 10: SIGHUP re-renders the feeds --------------------------------------------


def test_sighup_shows_new_feed_settings_at_once(tmp_path: Path) -> None:
    feedd = Feedd(tmp_path, feed={"title": "old title"})
    daemon = feedd.run_daemon()
    try:
        feedd.drop(seed_files()[0].name, seed_files()[0].read_bytes())
        atom = feedd.public / "feed.atom"
        # The dump's entries, not the empty feed of the first scan (the dump
        # still settling then): the reload must cut them down to max_items.
        wait_for(lambda: atom.exists() and atom.read_bytes().count(b"<entry>") > 3)
        assert b"old title" in atom.read_bytes()
        text = feedd.config.read_text().replace('"old title"', '"new title"')
        feedd.config.write_text(text.replace("[feed]\n", "[feed]\nmax_items = 3\n", 1))
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: b"new title" in atom.read_bytes(), what="the new title")
        assert atom.read_bytes().count(b"<entry>") == 3
    finally:
        assert feedd.stop(daemon) == 0


# --- 11: the database deleted under a running daemon ----------------------------


def test_a_deleted_database_stops_the_daemon_with_a_clear_error(tmp_path: Path) -> None:
    feedd = Feedd(tmp_path)
    daemon = feedd.run_daemon()
    try:
        feedd.drop(seed_files()[0].name, seed_files()[0].read_bytes())
        wait_for(lambda: ingested_count(feedd.db) == 1)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{feedd.db}{suffix}").unlink(missing_ok=True)
        feedd.drop(seed_files()[1].name, seed_files()[1].read_bytes())
        assert daemon.wait(timeout=30) == 1
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert "was deleted while feedd was running" in feedd.log_text()
    assert (feedd.dumps / seed_files()[1].name).exists(), "the later dump is not lost"


# --- 12: the backfill helper dies with its parent --------------------------------


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the helper runs only with 2+ CPUs")
def test_the_backfill_helper_dies_with_a_killed_backfill(tmp_path: Path) -> None:
    feedd = Feedd(tmp_path)
    for name, data in generate_stream(400, seed=5):
        (feedd.dumps / name).write_bytes(data)
    proc = feedd.spawn("backfill", "--no-feeds", str(feedd.dumps))
    try:
        helpers = wait_for(lambda: children(proc.pid), timeout=60, what="the helper process")
        assert proc.poll() is None, "the backfill is still running"
        proc.kill()
        proc.wait(timeout=10)
        wait_for(lambda: not any(alive(p) for p in helpers), timeout=5, what="the helper to die")
    finally:
        if proc.poll() is None:
            proc.kill()


# --- 14: after the lock clears, the next tick ingests -----------------------------


def test_after_the_lock_clears_the_next_tick_ingests(tmp_path: Path) -> None:
    feedd = Feedd(tmp_path, database={"busy_timeout_ms": 100}, daemon={"scan_interval": 0.2})
    daemon = feedd.run_daemon()
    try:
        wait_for(lambda: (feedd.public / "feed.atom").exists(), what="the daemon to start")
        with closing(sqlite3.connect(feedd.db, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            feedd.drop(seed_files()[0].name, seed_files()[0].read_bytes())
            time.sleep(4)  # many failed ticks: exponential backoff would reach 6 s
            assert "locked" in feedd.log_text()
            holder.execute("ROLLBACK")
        released = time.monotonic()
        wait_for(lambda: ingested_count(feedd.db) == 1, what="the dump after the lock")
        assert time.monotonic() - released < 1.5, "the next tick, not a backoff"
    finally:
        assert feedd.stop(daemon) == 0


# --- 15: a rejected file with a long name is set aside ----------------------------


def test_a_rejected_file_with_a_long_name_is_set_aside(tmp_path: Path) -> None:
    feedd = Feedd(tmp_path)
    name = "长" * 81 + ".txt"  # 247 bytes: its .reason.txt would be 258
    assert len(name.encode()) >= 245
    daemon = feedd.run_daemon()
    try:
        (feedd.dumps / name).write_bytes(b"\x89PNG\r\n\x1a\n not a dump")
        wait_for(lambda: not (feedd.dumps / name).exists(), what="it to be set aside")
        reasons = [p for p in feedd.quarantine.iterdir() if p.name.endswith(".reason.txt")]
        assert len(reasons) == 1
        kept = Path(str(reasons[0])[: -len(".reason.txt")])
        assert kept.read_bytes().startswith(b"\x89PNG")
        assert name in reasons[0].read_text(encoding="utf-8"), "the reason names the file"
        assert all(len(p.name.encode()) <= 255 for p in feedd.quarantine.iterdir())
        assert daemon.poll() is None
    finally:
        assert feedd.stop(daemon) == 0


# --- 16: files that vanish in the middle of a backfill ----------------------------


def test_files_that_vanish_during_a_backfill_are_not_rejections(tmp_path: Path) -> None:
    app = build(
        load_config(None, env={}, overrides={"database.url": f"sqlite:///{tmp_path / 'v.db'}"})
    )
    folder = tmp_path / "dumps"
    folder.mkdir()
    for name, data in generate_stream(40, seed=9):
        (folder / name).write_bytes(data)
    try:
        listed = source.list_paths([folder], app.config.ingest)
        for dump in listed[10:20]:  # gone between the listing and the reading
            dump.path.unlink()
        results = list(app.ingester.ingest_listed(listed))
        assert Counter(r.status for r in results) == {"ingested": 30}
        assert app.store.totals().rejected == 0
    finally:
        app.close()


def test_a_real_backfill_with_files_vanishing_records_no_phantoms(tmp_path: Path) -> None:
    feedd = Feedd(tmp_path, ingest={"prepare_ahead": False})
    names = []
    for name, data in generate_stream(600, seed=11):
        (feedd.dumps / name).write_bytes(data)
        names.append(name)
    command = ["backfill", "--json", "--no-feeds", str(feedd.dumps)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "feedd", "-c", str(feedd.config), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=feedd.root,
        env=clean_env(),
    )
    removed = 0

    def remove() -> None:
        nonlocal removed
        wait_for(lambda: ingested_count(feedd.db) > 0, timeout=60)
        for name in names[::-1][:60]:  # from the end: not read yet
            (feedd.dumps / name).unlink()
            removed += 1

    thread = threading.Thread(target=remove)
    thread.start()
    out, err = proc.communicate(timeout=120)
    thread.join()
    summary = json.loads(out)
    assert proc.returncode == 0, err
    assert summary["rejected"] == [], "a vanished file is not a rejected dump"
    assert rejected(feedd.db) == {}
    assert summary["ingested"] < 600, "files really vanished in the middle of the run"
    assert summary["ingested"] + removed >= 600
