"""Several `feedd run` workers on one PostgreSQL and one watch folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import generate_stream

pytestmark = pytest.mark.postgres


def _config(root: Path, url: str) -> Path:
    path = root / "config.toml"
    path.write_text(
        f"[database]\nurl = {json.dumps(url)}\n"
        "[ingest]\nwatch_dir = 'dumps'\n"
        "[feed]\noutput_dir = 'public'\n"
        "[daemon]\nscan_interval = 0.5\nsettle_seconds = 0.2\n"
    )
    return path


def _feedd(config: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "feedd", "-c", str(config), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout


def test_four_workers_ingest_each_dump_once_like_one_worker(
    tmp_path: Path, pg_server: object
) -> None:
    stream = generate_stream(300)
    shared = tmp_path / "shared"
    (shared / "dumps").mkdir(parents=True)
    config = _config(shared, pg_server.database("workers"))  # type: ignore[attr-defined]
    logs = [(shared / f"worker{n}.log").open("wb") for n in range(4)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "feedd", "-c", str(config), "run"], stderr=log, cwd=shared
        )
        for log in logs
    ]
    try:
        start = time.time() - len(stream)
        for n, (name, data) in enumerate(stream):
            part = shared / "dumps" / f"{name}.part"
            part.write_bytes(data)
            # Distinct, increasing mtimes: the dumps' observation times.
            os.utime(part, (start + n, start + n))
            os.replace(part, shared / "dumps" / name)
            if n % 25 == 0:
                time.sleep(0.2)  # dumps keep landing while the workers run
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            proc = subprocess.run(
                [sys.executable, "-m", "feedd", "-c", str(config), "status", "--json"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if proc.returncode != 0:
                # Until the first worker has made the schema, a read-only
                # command refuses (it never creates one) and says so.
                assert "no feedd database yet" in proc.stderr, proc.stderr
                time.sleep(0.5)
                continue
            status = json.loads(proc.stdout)
            if status["totals"]["dumps"] == len(stream):
                break
            time.sleep(0.5)
        assert status["totals"]["dumps"] == len(stream)
        assert status["daemon"]["workers"] == 4
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=60) for worker in workers]
        for log in logs:
            log.close()
    assert codes == [0, 0, 0, 0]
    together = _feedd(config, "export")

    # The same dumps, one process, a fresh database.
    alone = tmp_path / "alone"
    alone.mkdir()
    single = _config(alone, pg_server.database("single"))  # type: ignore[attr-defined]
    _feedd(single, "backfill", "--no-feeds", str(shared / "dumps"))
    assert together == _feedd(single, "export")

    rows = [json.loads(line) for line in together.splitlines()]
    sightings = [(s["dump"], s["line"]) for r in rows for s in r["sightings"]]
    assert len(sightings) == len(set(sightings)) == 300 * 12
    kinds = {s["kind"] for r in rows for s in r["sightings"]}
    assert kinds == {"new", "repeat", "update"}
    # Each dump was ingested by exactly one worker.
    ingested = "".join((shared / f"worker{n}.log").read_text() for n in range(4)).count(
        "feedd.ingest: ingested "
    )
    assert ingested == len(stream)
