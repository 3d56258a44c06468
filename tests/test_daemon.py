"""`feedd run` end to end: a real subprocess, a real folder, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import dump_bytes, seed_files

ENTRY = re.compile(rb"<entry>")


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


class Daemon:
    def __init__(self, root: Path, url: str = "sqlite:///feedd.db", **settings: object) -> None:
        self.root = root
        self.dumps = root / "dumps"
        self.public = root / "public"
        self.quarantine = root / "quarantine"
        self.dumps.mkdir(exist_ok=True)
        self.config = root / "config.toml"
        daemon = {"scan_interval": 1.0, "settle_seconds": 0.3, **settings}
        self.config.write_text(
            f"[database]\nurl = {json.dumps(url)}\n"
            "[ingest]\nwatch_dir = 'dumps'\nquarantine_dir = 'quarantine'\n"
            "[feed]\noutput_dir = 'public'\n"
            "[daemon]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in daemon.items())
        )
        self.log = root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        self.proc = self.spawn()
        return self.proc

    def spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "feedd", "-c", str(self.config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
            cwd=self.root,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "feedd", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=60,
            check=False,
        )
        # A failure names feedd's own message (and the daemon's log), not
        # only an exit status.
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        assert done.returncode == 0, (
            f"feedd {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}\n"
            f"daemon log tail: {log}"
        )
        return done

    def status(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.cli("status", "--json").stdout)  # type: ignore[no-any-return]

    def drop(self, name: str, data: bytes) -> None:
        part = self.dumps / f"{name}.part"
        part.write_bytes(data)
        os.replace(part, self.dumps / name)

    def entries(self) -> int:
        path = self.public / "feed.atom"
        return len(ENTRY.findall(path.read_bytes())) if path.exists() else -1

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


@pytest.fixture
def any_daemon(tmp_path: Path, db_url: str) -> Iterator[Daemon]:
    """A daemon on SQLite or on PostgreSQL (parametrised in conftest)."""
    d = Daemon(tmp_path, url=db_url)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def test_daemon_ingests_seeds_one_by_one_and_stops_cleanly(any_daemon: Daemon) -> None:
    daemon = any_daemon
    daemon.start()
    wait_for(lambda: (daemon.public / "feed.atom").exists(), what="initial feeds")
    expected = 0
    distinct: set[str] = set()
    for seed in seed_files():
        distinct |= {
            line for line in seed.read_text(encoding="utf-8").split("\n")[3:] if len(line) > 30
        }
        daemon.drop(seed.name, seed.read_bytes())
        expected = len(distinct)
        wait_for(
            lambda n=expected: daemon.entries() == n,  # type: ignore[misc]
            what=f"{expected} entries after {seed.name}",
        )
        status = daemon.status()
        assert status["last_ingest"]["name"] == seed.name
        assert status["daemon"]["alive"] is True
        assert status["pending"] == 0
        assert status["feeds"]["feed.atom"]["entries"] == expected
    assert expected == 47

    # A dump written slowly, in pieces, is read only once it is complete.
    items = [  # six new, different articles
        "量子计算入门:量子比特可以处于叠加态,这让某些算法在理论上获得指数级的加速。",
        "数据库索引为什么能加速查询?B树把有序的键分层存放,每次查找只需读取少数几个页面。",
        "分布式共识算法Raft通过领导者选举和日志复制,让多台机器对同一份状态达成一致。",
        "图神经网络在分子性质预测中表现突出,它把原子看作节点,把化学键看作边来学习表示。",
        "编译器的寄存器分配可以归约为图着色问题,启发式方法在实践中通常足够好。",
        "推荐系统的冷启动问题常用内容特征和探索策略来缓解,新用户也能很快得到合理的推荐。",
    ]
    data = dump_bytes(*items)
    slow = daemon.dumps / "005_00000000000000ff.txt"
    with slow.open("wb") as handle:
        for start in range(0, len(data), len(data) // 3 + 1):
            handle.write(data[start : start + len(data) // 3 + 1])
            handle.flush()
            time.sleep(0.15)
    wait_for(lambda: daemon.entries() == 50, what="the slow dump's items")
    status = daemon.status()
    assert status["last_ingest"]["items"] == 6 and status["last_ingest"]["new"] == 6
    assert status["totals"]["dumps"] == 6

    mtime = (daemon.public / "feed.atom").stat().st_mtime_ns
    assert daemon.stop() == 0
    assert (daemon.public / "feed.atom").stat().st_mtime_ns == mtime, "unchanged feeds stay put"
    status = daemon.status()
    assert status["daemon"]["alive"] is False
    if (daemon.root / "feedd.db").exists():
        with sqlite3.connect(daemon.root / "feedd.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    log = daemon.log.read_text()
    assert "ingested 000_d0e46117916ee2ce.txt: 12 item lines, 12 new, 0 repeat, 0 update" in log
    assert "Traceback" not in log


def test_bad_dumps_are_quarantined_and_the_daemon_goes_on(daemon: Daemon) -> None:
    daemon.start()
    wait_for(lambda: (daemon.public / "feed.atom").exists(), what="initial feeds")
    daemon.drop("001_aaaaaaaaaaaaaaaa.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    daemon.drop(
        "002_bbbbbbbbbbbbbbbb.txt",
        b"INCOMING TRANSMISSION\n\nLATEST UPDATES\n" + "ÀÉÎÕÜ".encode("latin-1") * 40,
    )
    good = seed_files()[0]
    daemon.drop("003_cccccccccccccccc.txt", good.read_bytes())
    wait_for(lambda: daemon.entries() == 12, what="the good dump after the bad ones")
    reasons = {p.name: p.read_text() for p in daemon.quarantine.glob("*.reason.txt")}
    assert set(reasons) == {
        "001_aaaaaaaaaaaaaaaa.txt.reason.txt",
        "002_bbbbbbbbbbbbbbbb.txt.reason.txt",
    }
    assert "binary" in reasons["001_aaaaaaaaaaaaaaaa.txt.reason.txt"]
    assert "cannot decode" in reasons["002_bbbbbbbbbbbbbbbb.txt.reason.txt"]
    assert (daemon.quarantine / "001_aaaaaaaaaaaaaaaa.txt").exists()
    assert not (daemon.dumps / "001_aaaaaaaaaaaaaaaa.txt").exists()
    status = daemon.status()
    assert status["quarantined"] == 2 and status["totals"]["articles"] == 12
    assert {r["name"] for r in status["rejected"]} == {
        "001_aaaaaaaaaaaaaaaa.txt",
        "002_bbbbbbbbbbbbbbbb.txt",
    }
    assert daemon.stop() == 0


def test_second_daemon_on_the_same_sqlite_database_refuses(daemon: Daemon) -> None:
    daemon.start()
    wait_for(lambda: (daemon.public / "feed.atom").exists(), what="first daemon up")
    second = subprocess.run(
        [sys.executable, "-m", "feedd", "-c", str(daemon.config), "run"],
        capture_output=True,
        text=True,
        cwd=daemon.root,
        timeout=60,
    )
    assert second.returncode == 1
    assert "already runs" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert daemon.stop() == 0


def test_sighup_reloads_and_a_bad_config_keeps_the_old(daemon: Daemon) -> None:
    daemon.start()
    wait_for(lambda: (daemon.public / "feed.atom").exists(), what="daemon up")
    good = daemon.config.read_text()
    daemon.config.write_text(good + "\n[feed]\nnot_a_key = 1\n")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "config reload failed" in daemon.log.read_text(), what="reload refusal")
    daemon.drop(seed_files()[0].name, seed_files()[0].read_bytes())
    wait_for(lambda: daemon.entries() == 12, what="ingest with the old config")
    daemon.config.write_text(good.replace("[feed]\n", "[feed]\ntitle = 'Reloaded'\n"))
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in daemon.log.read_text(), what="reload")
    daemon.drop(seed_files()[1].name, seed_files()[1].read_bytes())
    wait_for(lambda: b"Reloaded" in (daemon.public / "feed.atom").read_bytes(), what="new title")
    assert daemon.stop() == 0


def test_archive_dir_receives_ingested_dumps(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path)
    daemon.config.write_text(
        daemon.config.read_text().replace("[ingest]\n", "[ingest]\narchive_dir = 'archive'\n")
    )
    daemon.start()
    try:
        wait_for(lambda: (daemon.public / "feed.atom").exists(), what="daemon up")
        first = seed_files()[0]
        daemon.drop(first.name, first.read_bytes())
        wait_for(lambda: (tmp_path / "archive" / first.name).exists(), what="archived dump")
        assert not (daemon.dumps / first.name).exists()
        wait_for(lambda: daemon.entries() == 12, what="the feed")
        # The same dump delivered again is a no-op, and it is archived too.
        daemon.drop(first.name, first.read_bytes())
        wait_for(lambda: not (daemon.dumps / first.name).exists(), what="second copy archived")
        assert daemon.status()["totals"]["dumps"] == 1
        assert sorted(p.name for p in (tmp_path / "archive").iterdir()) == sorted(
            [first.name, first.name.replace(".txt", ".1.txt")]
        )
    finally:
        assert daemon.stop() == 0
