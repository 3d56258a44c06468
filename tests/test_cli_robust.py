"""The CLI under a held lock, a killed daemon, a missing database and user
mistakes (issue 13, items 7, 9 and 19): real processes, real files."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from feedd import cli as cli_module
from feedd.config import load_config
from feedd.core.fingerprint import fingerprint, text_key
from feedd.core.parse import parse_dump
from feedd.ingest import article_uid
from feedd.store import migrate
from feedd.store.engine import make_engine
from tests.support import SEEDS, dump_bytes, seed_files

FEEDD = [sys.executable, "-m", "feedd"]


def _env(tmp_path: Path, url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}
    return {
        **env,
        "FEEDD_DATABASE_URL": url or f"sqlite:///{tmp_path / 'feedd.db'}",
        "FEEDD_FEED_OUTPUT_DIR": str(tmp_path / "public"),
        "FEEDD_INGEST_WATCH_DIR": str(tmp_path / "watch"),
        **extra,
    }


def feedd(
    tmp_path: Path, *args: str, url: str | None = None, timeout: float = 120, **extra: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "watch").mkdir(exist_ok=True)
    return subprocess.run(
        [*FEEDD, *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path, url, **extra),
        cwd=tmp_path,
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (proc.args, proc.returncode, proc.stderr)
    return proc


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    """A SQLite database at tmp_path/feedd.db holding the seed dumps."""
    ok(feedd(tmp_path, "-q", "backfill", str(SEEDS)))
    return tmp_path / "feedd.db"


@contextmanager
def write_lock_held(db: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process holding SQLite's write lock (BEGIN IMMEDIATE) on ``db``."""
    code = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "c.execute('DELETE FROM workers')\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait(10)


# item 7: a held write lock ----------------------------------------------------
def test_readers_read_while_another_process_holds_the_write_lock(
    tmp_path: Path, seeded: Path
) -> None:
    uid = json.loads(ok(feedd(tmp_path, "export")).stdout.splitlines()[0])["id"]
    text = parse_dump(seed_files()[0].read_bytes()).items[0].text
    readers = [
        ["status"],
        ["status", "--json"],
        ["export"],
        ["articles"],
        ["history", uid[:8]],
        ["feed", "--format", "rss"],
        ["explain", "--text", text],
        ["explain", str(seed_files()[1])],
        ["rejected"],
        ["db", "current"],
    ]
    with write_lock_held(seeded):
        for args in readers:
            started = time.monotonic()
            proc = ok(feedd(tmp_path, *args))
            assert "locked" not in proc.stderr, args
            assert time.monotonic() - started < 30, args
        assert json.loads(feedd(tmp_path, "status", "--json").stdout)["totals"]["articles"] == 47


def test_a_writer_waits_busy_timeout_then_says_who_holds_the_lock(
    tmp_path: Path, seeded: Path
) -> None:
    more = tmp_path / "more"
    more.mkdir()
    (more / "900_00000000000009aa.txt").write_bytes(dump_bytes("新的一条:" + "字" * 40 + "。"))
    with write_lock_held(seeded):
        started = time.monotonic()
        proc = feedd(tmp_path, "backfill", str(more), FEEDD_DATABASE_BUSY_TIMEOUT_MS="700")
        waited = time.monotonic() - started
        assert proc.returncode == 1, proc.stderr
        line = one_line(proc)
        assert "locked by another writer" in line and "feedd run" in line, line
        assert "config:" not in line and "try again when it stops" in line, line
        assert "pid" not in line, line  # no daemon runs: none to name
        assert waited >= 0.7
        # A daemon runs: its lock file names its pid.
        with running_daemon(tmp_path) as daemon:
            proc = feedd(
                tmp_path, "rejected", "clear", "--all", FEEDD_DATABASE_BUSY_TIMEOUT_MS="300"
            )
            assert proc.returncode == 1, proc.stderr
            line = one_line(proc)
            assert f"pid {daemon.pid} on {socket.gethostname()} holds {seeded}.lock" in line
    ok(feedd(tmp_path, "-q", "backfill", str(more)))  # once the lock is gone


@contextmanager
def running_daemon(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`feedd run` on tmp_path/feedd.db, once its lock file shows its heartbeat."""
    (tmp_path / "watch").mkdir(exist_ok=True)
    daemon = subprocess.Popen(
        [*FEEDD, "run", "--scan-interval", "0.2"],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lock = tmp_path / "feedd.db.lock"
    try:
        _wait_for(lambda: lock.is_file() and str(daemon.pid) in lock.read_text(), "lock", daemon)
        yield daemon
    finally:
        daemon.kill()
        daemon.wait(10)


def test_read_only_commands_never_upgrade_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine, "0002")
    proc = feedd(tmp_path, "status", url=url)
    assert proc.returncode == 1 and "feedd db upgrade" in one_line(proc), proc.stderr
    assert migrate.current_revision(engine) == "0002"
    assert ok(feedd(tmp_path, "db", "current", url=url)).stdout.startswith("0002 ")
    ok(feedd(tmp_path, "db", "upgrade", url=url))
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


# item 9: a daemon killed with kill -9 ------------------------------------------
def test_status_reports_a_killed_daemon_as_not_running_at_once(tmp_path: Path) -> None:
    (tmp_path / "watch").mkdir()
    daemon = subprocess.Popen(
        [*FEEDD, "run", "--scan-interval", "0.2"],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert daemon.poll() is None, "the daemon exited"
            if (tmp_path / "feedd.db").exists():
                proc = feedd(tmp_path, "status", "--json")
                if proc.returncode == 0 and json.loads(proc.stdout)["daemon"]["alive"]:
                    break
            assert time.monotonic() < deadline, "the daemon never reported running"
            time.sleep(0.2)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
    report = json.loads(ok(feedd(tmp_path, "status", "--json")).stdout)["daemon"]
    assert report["alive"] is False and report["stale"] is True, report
    assert report["pid"] == daemon.pid and str(daemon.pid) in report["stale_reason"]
    assert "daemon: not running" in ok(feedd(tmp_path, "status")).stdout


# item 19: article references ---------------------------------------------------
def _twin_dumps() -> tuple[bytes, bytes, str]:
    """Two one-item dumps of different articles whose uids share 4 characters."""
    settings = load_config(None, env={}).fingerprint
    texts = [i.text for i in parse_dump(seed_files()[0].read_bytes()).items][:2]
    fps = [fingerprint(t, settings, text_key(t)) for t in texts]

    def dump(text: str, n: int) -> bytes:  # a category line keeps the item on line 5
        return dump_bytes(f"分类{n}", text)

    def uid(k: int, n: int) -> str:
        data = dump(texts[k], n)
        import hashlib

        return article_uid(fps[k], hashlib.sha256(data).hexdigest(), 5)

    first = uid(0, 0)
    for n in range(1, 2_000_000):
        if uid(1, n).startswith(first[:4]):
            return dump(texts[0], 0), dump(texts[1], n), first[:4]
    raise AssertionError("no twin found")


def test_history_takes_uids_only_and_says_why_a_reference_fails(tmp_path: Path) -> None:
    a, b, prefix = _twin_dumps()
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "001_0000000000000001.txt").write_bytes(a)
    (folder / "002_0000000000000002.txt").write_bytes(b)
    ok(feedd(tmp_path, "-q", "backfill", str(folder)))
    uids = [json.loads(x)["id"] for x in ok(feedd(tmp_path, "export")).stdout.splitlines()]
    assert len(uids) == 2 and all(u.startswith(prefix) for u in uids), (uids, prefix)

    proc = feedd(tmp_path, "history", prefix)
    line = one_line(proc)
    assert proc.returncode == 1 and f"ambiguous: 2 articles start with {prefix}" in line
    assert all(u in line for u in uids), line
    for short in (prefix[:3], "80", "1"):
        proc = feedd(tmp_path, "history", short)
        assert proc.returncode == 1 and "at least 4 characters" in one_line(proc), proc.stderr
    proc = feedd(tmp_path, "history", "#1")
    assert proc.returncode == 1 and "not an article uid" in one_line(proc)
    # Digits are uid characters, never an article number (article 1 exists).
    proc = feedd(tmp_path, "history", "0001")
    assert proc.returncode == 1 and "no article '0001'" in one_line(proc)
    for u in uids:
        hist = json.loads(ok(feedd(tmp_path, "history", "--json", u[:8])).stdout)
        assert hist["id"] == u
    assert json.loads(ok(feedd(tmp_path, "history", "--json", uids[0].upper())).stdout)


# item 19: explain's arguments ----------------------------------------------------
def test_explain_takes_a_file_or_text_and_refuses_the_rest(tmp_path: Path, seeded: Path) -> None:
    text = parse_dump(seed_files()[0].read_bytes()).items[0].text
    out = json.loads(ok(feedd(tmp_path, "explain", "--json", "--text", text)).stdout)
    assert [r["decision"] for r in out] == ["repeat"]
    out = json.loads(ok(feedd(tmp_path, "explain", "--json", str(seed_files()[0]))).stdout)
    assert len(out) == 12 and {r["decision"] for r in out} == {"repeat"}

    (tmp_path / "folder").mkdir()
    refused = {
        ("explain", str(tmp_path / "mistyped.txt")): "no file",
        ("explain", str(tmp_path / "folder")): "is a folder",
        ("explain", text): "use --text",  # text where a path belongs
        ("explain", "--text", ""): "empty",
        ("explain", "--text", "   "): "empty",
        ("explain", "--text", "NLP"): "category line",
        ("explain", "--text", "2026-11-30"): "date line",
        ("explain", "--text", "1 2 3 下一页"): "pagination line",
        ("explain",): "PATH or --text",
        ("explain", str(seed_files()[0]), "--text", text): "PATH or --text",
    }
    for args, needle in refused.items():
        proc = feedd(tmp_path, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert proc.stdout == "", args


# item 19: read-only commands and a missing database ----------------------------------
READ_ONLY = [
    ["status"],
    ["status", "--json"],
    ["articles"],
    ["history", "abcd1234"],
    ["export"],
    ["feed"],
    ["explain", "--text", "一条足够长的文章摘要,说明它不是噪声行,而是一篇文章。"],
    ["serve", "--listen", "127.0.0.1:0"],
    ["rejected"],
    ["rejected", "clear", "--all"],
    ["db", "current"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a[:2]))
def test_read_only_commands_never_create_a_database(tmp_path: Path, args: list[str]) -> None:
    proc = feedd(tmp_path, *args, timeout=60)
    db = tmp_path / "feedd.db"
    assert proc.returncode == 1, proc.stderr
    assert (
        one_line(proc) == f"feedd: no database at {db}; run `feedd backfill` or `feedd run` first"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["watch"]


@pytest.mark.postgres
def test_read_only_commands_leave_an_empty_postgres_database_empty(
    tmp_path: Path, pg_server: Any
) -> None:
    url = pg_server.database("readonly")
    for args in (["status"], ["export"], ["rejected"]):
        proc = feedd(tmp_path, *args, url=url)
        assert proc.returncode == 1 and "holds no feedd database yet" in one_line(proc)
    engine = make_engine(url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    ok(feedd(tmp_path, "db", "upgrade", url=url))
    assert json.loads(ok(feedd(tmp_path, "status", "--json", url=url)).stdout)["totals"]


def test_backfill_and_db_upgrade_create_the_database(tmp_path: Path) -> None:
    ok(feedd(tmp_path, "db", "upgrade"))
    assert (tmp_path / "feedd.db").is_file()
    other = tmp_path / "other"
    other.mkdir()
    ok(feedd(other, "-q", "backfill", str(SEEDS)))
    assert (other / "feedd.db").is_file()


# item 19: the progress bar and the log lines ----------------------------------------
def _on_a_terminal(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run feedd with stderr on a pseudo-terminal: (exit code, stdout, stderr)."""
    (tmp_path / "watch").mkdir(parents=True, exist_ok=True)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*FEEDD, *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**_env(tmp_path), "COLUMNS": "120"},
        cwd=tmp_path,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(30), out, b"".join(chunks).decode(errors="replace")


def test_backfill_on_a_terminal_shows_the_bar_and_a_summary_not_a_line_per_dump(
    tmp_path: Path,
) -> None:
    code, out, err = _on_a_terminal(tmp_path / "a", "backfill", str(SEEDS))
    assert code == 0 and "47 new" in out, err
    assert "ingesting" in err and "5/5" in err, err
    assert "backfilled 5/5 dumps, 60 item lines: 47 new, 13 repeat, 0 update" in err, err
    assert "INFO feedd.ingest: ingested" not in err, err

    code, _, err = _on_a_terminal(tmp_path / "b", "-q", "backfill", str(SEEDS))
    assert code == 0 and "ingesting" not in err and err.strip() == "", err

    code, _, err = _on_a_terminal(tmp_path / "c", "--log-format", "json", "backfill", str(SEEDS))
    assert code == 0 and "ingesting" not in err, err
    events = [json.loads(line) for line in err.splitlines() if line.strip()]
    [final] = [e for e in events if e.get("event") == "backfilled"]
    assert (final["dumps"], final["total"], final["new"], final["items"]) == (5, 5, 47, 60)


def test_backfill_off_a_terminal_prints_no_bar_label(tmp_path: Path) -> None:
    proc = ok(feedd(tmp_path, "backfill", str(SEEDS)))
    assert "ingesting" not in proc.stderr, proc.stderr
    assert "backfilled 5/5 dumps" in proc.stderr


def test_backfill_logs_a_summary_every_few_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "PROGRESS_SECONDS", 0.0)  # every dump is "a few seconds"
    monkeypatch.chdir(tmp_path)
    env = _env(tmp_path)
    (tmp_path / "watch").mkdir()
    result = CliRunner().invoke(
        cli_module.cli, ["--log-format", "json", "backfill", str(SEEDS)], env=env
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    progress = [e for e in events if e.get("event") == "backfill_progress"]
    assert [e["dumps"] for e in progress] == [1, 2, 3, 4, 5]
    assert all(
        {"total", "items", "new", "repeat", "update", "dumps_per_s"} <= set(e) for e in progress
    )
    assert progress[-1]["new"] == 47 and progress[-1]["repeat"] == 13
    assert not [e for e in events if e.get("event") == "ingested"]  # those are DEBUG now


# item 19: rejected dumps --------------------------------------------------------------
def test_rejected_lists_and_clears_and_status_drops_fixed_ones(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    good, bad = folder / "001_00000000000000aa.txt", folder / "002_00000000000000bb.txt"
    good.write_bytes(b"not a dump\n")
    bad.write_bytes(b"\x89PNG not a dump either\n")
    proc = feedd(tmp_path, "-q", "backfill", "--json", str(folder))
    assert proc.returncode == 1 and "every file was rejected (2)" in proc.stderr, proc.stderr
    assert len(json.loads(proc.stdout)["rejected"]) == 2
    status = json.loads(ok(feedd(tmp_path, "status", "--json")).stdout)
    assert {r["name"] for r in status["rejected"]} == {good.name, bad.name}

    shutil_copy(seed_files()[0], good)  # the file is fixed and ingested
    ok(feedd(tmp_path, "-q", "backfill", str(good)))
    status = json.loads(ok(feedd(tmp_path, "status", "--json")).stdout)
    assert [r["name"] for r in status["rejected"]] == [bad.name]
    assert status["rejected_open"] == 1
    assert "dumps: 1 ingested, 1 rejected (+1 since fixed)" in ok(feedd(tmp_path, "status")).stdout

    listed = json.loads(ok(feedd(tmp_path, "rejected", "--json")).stdout)
    assert [(r["name"], r["fixed"]) for r in listed] == [(bad.name, False), (good.name, True)]
    assert all(r["reason"] and "rejected_at" in r and "location" in r for r in listed)
    text = ok(feedd(tmp_path, "rejected")).stdout
    assert "binary" in text and "[fixed: ingested since]" in text

    proc = feedd(tmp_path, "rejected", "clear", "nope.txt")
    assert proc.returncode == 1 and "no rejected dump named 'nope.txt'" in one_line(proc)
    assert feedd(tmp_path, "rejected", "clear").returncode == 2
    assert feedd(tmp_path, "rejected", "clear", bad.name, "--all").returncode == 2
    assert "cleared 1 rejection record" in ok(feedd(tmp_path, "rejected", "clear", bad.name)).stdout
    assert [r["name"] for r in json.loads(feedd(tmp_path, "rejected", "--json").stdout)] == [
        good.name
    ]
    assert "cleared 1" in ok(feedd(tmp_path, "rejected", "clear", "--all")).stdout
    assert "no rejected dumps" in ok(feedd(tmp_path, "rejected")).stdout
    assert json.loads(ok(feedd(tmp_path, "status", "--json")).stdout)["totals"]["rejected"] == 0
    assert bad.read_bytes().startswith(b"\x89PNG") and good.is_file()  # files untouched


def shutil_copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())


# item 19: exit codes ---------------------------------------------------------------------
def test_backfill_where_some_files_are_rejected_still_exits_0(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    shutil_copy(seed_files()[0], folder / seed_files()[0].name)
    (folder / "zzz.txt").write_bytes(b"noise\n")
    summary = json.loads(ok(feedd(tmp_path, "backfill", "--json", str(folder))).stdout)
    assert summary["ingested"] == 1 and len(summary["rejected"]) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert proc.poll() is None, f"exited {proc.returncode} before {what}"
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_serve_exits_0_on_sigterm(tmp_path: Path, seeded: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [*FEEDD, "serve", "--listen", f"127.0.0.1:{port}"],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        _wait_for(healthy, "serving /healthz", server)
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert server.stderr is not None
    assert b"Traceback" not in server.stderr.read()
    server.stderr.close()


@pytest.mark.postgres
def test_a_server_turning_connections_away_is_waited_for_then_said_in_one_line(
    tmp_path: Path, pg_server: Any
) -> None:
    # A server at its connection limit is busy, not misconfigured: a command
    # waits up to database.busy_timeout_ms, then says so in one line, exit 1.
    # A role under a per-database CONNECTION LIMIT of 1 makes the limit real
    # (superusers are exempt from it).
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    role, name = "feedd_test_limited", f"{pg_server.prefix}_limited"
    with pg_server.admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        if exists.first() is None:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER "{role}" CONNECTION LIMIT 1'))
    pg_server.names.append(name)
    url = pg_server.admin_url.set(database=name, username=role).render_as_string(
        hide_password=False
    )
    assert feedd(tmp_path, "db", "upgrade", url=url).returncode == 0
    holder = create_engine(url, poolclass=NullPool)
    try:
        with holder.connect():  # the only connection the database allows
            busy = feedd(tmp_path, "status", url=url, FEEDD_DATABASE_BUSY_TIMEOUT_MS="600")
        assert busy.returncode == 1, busy.stderr
        assert busy.stderr.count("\n") == 1 and "busy" in busy.stderr, busy.stderr

        conn = holder.connect()
        proc = subprocess.Popen(
            [*FEEDD, "status", "--json"],
            env=_env(tmp_path, url, FEEDD_DATABASE_BUSY_TIMEOUT_MS="10000"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)  # status is retrying meanwhile
        conn.close()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert json.loads(out)["totals"]["articles"] == 0
    finally:
        holder.dispose()
        with pg_server.admin.connect() as admin:
            admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.execute(text(f'DROP ROLE IF EXISTS "{role}"'))


def test_a_port_that_is_not_a_database_server_is_a_config_mistake(tmp_path: Path) -> None:
    # Something listens but hangs up at once: the URL points at the wrong
    # place, which is a config mistake (exit 2, naming the key), not a busy
    # server to wait for.
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]

    def hang_up() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/feedd"
        started = time.monotonic()
        done = feedd(tmp_path, "status", url=url, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "database.url" in done.stderr, done.stderr
        assert time.monotonic() - started < 4  # no waiting out busy_timeout_ms
    finally:
        listener.close()
