"""Several `feedd run` workers on one PostgreSQL database against one, on the same burst.

    python bench/workers.py                       # 300 dumps, 4 workers against 1
    python bench/workers.py --dumps 60 --json
    python bench/workers.py --workers 2 --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test

The burst is the first ``--dumps`` dumps of bench/stream.py (14 item lines
each), written as files with their observation times as mtimes. For each run
(1 worker, then ``--workers`` workers) a fresh database
``feedd_bench_<random>`` is created beside the one in ``--pg-url`` and a fresh
folder gets a config.toml (the watch folder, the feed folder, a 0.2 s scan
interval and settle time); the workers (``python -m feedd --log-format json run``,
as README "PostgreSQL and several workers" runs them) are started and waited for
until each has logged "feedd running". Then the burst lands: every file is
renamed into the watch folder at once, and the clock runs from the first rename
until the workers' logs hold one "ingested" line per dump (each dump is
ingested by exactly one worker). The workers are then stopped with SIGTERM and
``feedd export`` reads each database.

Reported: wall time of each run and the speed-up; dumps per worker; the CPU
time the workers spent during the burst (from /proc: every worker reads and
prepares every dump it sees, and only the one that wins the decision lock
records it, so the others' work on that dump is thrown away); and the decision
lock (``pg_advisory_xact_lock``, taken by every ingest transaction), sampled
every ``--sample`` seconds from ``pg_locks``: the share of the burst it was held,
the mean number of workers waiting for it, the worker-seconds spent waiting.
From the 1-worker run, the share of the burst spent holding the lock is the
serial part s of the work; Amdahl's law, 1 / (s + (1 - s) / n), bounds the
speed-up on n cores, and 1 / s is the bound however many cores there are.

The two databases must end with the same history: the same article texts, the
same counts of new, repeat and update sightings (and the exports are compared
whole too).

Target (reported, not asserted): the burst >= 1.5x faster with 4 workers than
with 1, with the same history. Without a reachable PostgreSQL the benchmark says
so and exits 0 with no figures. The databases are dropped at the end, also
after SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream  # noqa: E402
from common import REPO_ROOT, Report  # noqa: E402

PG_URL = os.environ.get("FEEDD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TARGET_SPEEDUP = 1.5
LISTING = stream.StreamSettings.listing
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- databases ------------------------------------------------------------------------


class Databases:
    """Fresh databases beside the one in the admin URL; all dropped by drop_all()."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.admin_url = make_url(admin_url)
        self.names: list[str] = []

    def _admin(self) -> Any:
        from sqlalchemy import create_engine

        return create_engine(self.admin_url, isolation_level="AUTOCOMMIT")

    def check(self) -> str | None:
        """None when the server answers, else why not."""
        from sqlalchemy import text

        try:
            engine = self._admin()
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
            return f"PostgreSQL at {self.admin_url.render_as_string()} unreachable: {exc}"
        return None

    def create(self) -> str:
        from sqlalchemy import text

        name = f"feedd_bench_{uuid.uuid4().hex[:10]}"
        self.names.append(name)  # before CREATE: a half-made one is dropped too
        engine = self._admin()
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        from sqlalchemy import text

        while self.names:
            name = self.names.pop()
            for attempt in range(5):
                try:
                    engine = self._admin()
                    with engine.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    engine.dispose()
                    break
                except Exception as exc:  # noqa: BLE001
                    if attempt == 4:
                        print(f"workers: could not drop {name}: {exc}", file=sys.stderr)
                    time.sleep(1)


class LockSampler(threading.Thread):
    """Samples pg_locks: is the decision lock held, how many backends wait for it."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.stop_event = threading.Event()
        self.samples = 0
        self.held = 0
        self.waiting = 0  # summed over samples
        self.error: str | None = None

    def run(self) -> None:
        from sqlalchemy import create_engine, text

        # Advisory locks of this database only; the only one taken during a burst
        # is the ingest lock (the migration lock is taken at start-up, before).
        query = text(
            "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted) "
            "FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        try:
            engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                while not self.stop_event.is_set():
                    granted, waiting = conn.execute(query).one()
                    self.samples += 1
                    self.held += 1 if granted else 0
                    self.waiting += waiting
                    self.stop_event.wait(self.interval)
            engine.dispose()
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on
            self.error = f"{type(exc).__name__}: {exc}"

    def result(self) -> dict[str, Any]:
        n = self.samples or 1
        return {
            "samples": self.samples,
            "held_share": self.held / n,
            "mean_waiting": self.waiting / n,
            "error": self.error,
        }


# --- one run ----------------------------------------------------------------------------


@dataclass
class Outcome:
    workers: int
    seconds: float
    per_worker: list[int]  # dumps each worker ingested
    ingest_ms: list[int]  # per dump, as the ingesting worker logged it
    cpu_seconds: float  # all workers' CPU time during the burst
    lock: dict[str, Any]
    export: str
    exit_codes: list[int]
    decisions: Counter[str] = field(default_factory=Counter)


def write_burst(folder: Path, dumps: int, seed: int) -> int:
    folder.mkdir(parents=True)
    made = 0
    for dump in stream.dumps(stream.StreamSettings(lines=dumps * LISTING, seed=seed)):
        stream.write_dump(folder, dump)
        made += 1
    return made


def _config(root: Path, url: str) -> Path:
    path = root / "config.toml"
    path.write_text(
        f"[database]\nurl = {json.dumps(url)}\n"
        "[ingest]\nwatch_dir = 'dumps'\n"
        "[feed]\noutput_dir = 'public'\n"
        "[daemon]\nscan_interval = 0.2\nsettle_seconds = 0.2\n",
        encoding="utf-8",
    )
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def _count_ingested(path: Path) -> int:
    return path.read_bytes().count(b'"event": "ingested"')


def _wait(predicate: Any, timeout: float, what: str, procs: Sequence[subprocess.Popen[bytes]]):
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a worker exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def _workers(config: Path, n: int, logs: list[Path]) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    handles = [log.open("wb") for log in logs]
    try:
        for handle in handles:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "feedd", "-c", str(config), "--log-format", "json"]
                    + ["run"],
                    cwd=config.parent,
                    env=_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=handle,
                )
            )
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for handle in handles:
            handle.close()


def run_burst(
    n: int, url: str, burst: Path, root: Path, *, sample: float, timeout: float
) -> Outcome:
    root.mkdir(parents=True)
    config = _config(root, url)
    (root / "dumps").mkdir()
    incoming = root / "incoming"  # on the same filesystem: the burst is renames
    shutil.copytree(burst, incoming)  # copy2: the mtimes stay
    names = sorted(p.name for p in incoming.iterdir())
    logs = [root / f"worker{i}.log" for i in range(n)]
    with _workers(config, n, logs) as procs:
        _wait(
            lambda: all(b"feedd running" in log.read_bytes() for log in logs),
            timeout,
            "the workers to start",
            procs,
        )
        sampler = LockSampler(url, sample)
        sampler.start()
        cpu_before = sum(_cpu_seconds(p.pid) for p in procs)
        started = time.perf_counter()
        for name in names:
            os.replace(incoming / name, root / "dumps" / name)
        _wait(
            lambda: sum(_count_ingested(log) for log in logs) >= len(names),
            timeout,
            f"{len(names)} dumps to be ingested",
            procs,
        )
        seconds = time.perf_counter() - started
        cpu = sum(_cpu_seconds(p.pid) for p in procs) - cpu_before
        sampler.stop_event.set()
        sampler.join(timeout=10)
    codes = [p.returncode for p in procs]
    per_worker = []
    ms = []
    for log in logs:
        ingested = [e for e in _log_events(log) if e.get("event") == "ingested"]
        per_worker.append(len(ingested))
        ms += [int(e.get("ms", 0)) for e in ingested]
    export = subprocess.run(
        [sys.executable, "-m", "feedd", "-c", str(config), "export"],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if export.returncode != 0:
        raise RuntimeError(f"feedd export failed: {export.stderr[-2000:]}")
    outcome = Outcome(n, seconds, per_worker, ms, cpu, sampler.result(), export.stdout, codes)
    for line in export.stdout.splitlines():
        for sighting in json.loads(line)["sightings"]:
            outcome.decisions[sighting["kind"]] += 1
    return outcome


def histories(export: str) -> tuple[list[list[str]], Counter[str]]:
    """Each article's revision texts (sorted), and the counts of each kind of sighting."""
    articles = []
    kinds: Counter[str] = Counter()
    for line in export.splitlines():
        row = json.loads(line)
        articles.append([r["text"] for r in row["revisions"]])
        kinds.update(s["kind"] for s in row["sightings"])
    return sorted(articles), kinds


# --- the report -------------------------------------------------------------------------


def amdahl(serial: float, cores: float) -> float:
    return 1 / (serial + (1 - serial) / cores) if cores else 0.0


def report_of(alone: Outcome, together: Outcome, params: dict[str, Any]) -> Report:
    report = Report("workers", params=params)
    n = together.workers
    speedup = alone.seconds / together.seconds if together.seconds else 0.0
    for o in (alone, together):
        label = f"{o.workers} worker{'s' if o.workers > 1 else ''}"
        report.figure(f"{label}: burst wall time", o.seconds, "s")
        report.figure(f"{label}: dumps/s", sum(o.per_worker) / o.seconds, "dumps/s")
        lines = sum(o.decisions.values())
        report.figure(f"{label}: item lines/s", lines / o.seconds, "lines/s")
        report.figure(f"{label}: worker CPU during the burst", o.cpu_seconds, "s")
        report.figure(f"{label}: dumps per worker", "/".join(map(str, o.per_worker)))
        ms = sorted(o.ingest_ms)
        if ms:
            report.figure(f"{label}: logged ms per dump, median", ms[len(ms) // 2], "ms")
        lock = o.lock
        report.figure(f"{label}: decision lock held", 100 * lock["held_share"], "% of the burst")
        held_ms = 1000 * lock["held_share"] * o.seconds / max(1, sum(o.per_worker))
        report.figure(f"{label}: decision lock held per dump", held_ms, "ms")
        report.figure(f"{label}: workers waiting for the lock (mean)", lock["mean_waiting"])
        report.figure(
            f"{label}: worker-seconds waiting for the lock",
            lock["mean_waiting"] * o.seconds,
            "s",
        )
        report.figure(f"{label}: lock samples", lock["samples"])
        if lock["error"]:
            report.notes.append(f"{label}: lock sampling failed: {lock['error']}")
        d = o.decisions
        report.figure(f"{label}: new/repeat/update", f"{d['new']}/{d['repeat']}/{d['update']}")
    report.figure(f"speed-up, {n} workers over 1", speedup, "x")
    if alone.cpu_seconds:
        report.figure(
            f"worker CPU, {n} workers over 1", together.cpu_seconds / alone.cpu_seconds, "x"
        )
    # The serial share: the part of the 1-worker burst spent holding the lock.
    serial = alone.lock["held_share"]
    report.figure("serial share (lock held, 1 worker)", 100 * serial, "%")
    cores = os.cpu_count() or 1
    for c in sorted({2, 4, 8, cores}):
        report.figure(f"Amdahl bound on {c} cores", amdahl(serial, c), "x")
    report.figure(
        "bound with any number of cores (1 / serial share)", 1 / serial if serial else 0.0, "x"
    )

    texts_a, kinds_a = histories(alone.export)
    texts_b, kinds_b = histories(together.export)
    same = texts_a == texts_b and kinds_a == kinds_b
    report.figure("same article texts", texts_a == texts_b)
    report.figure("same new/repeat/update counts", kinds_a == kinds_b)
    report.figure("exports identical", alone.export == together.export)
    report.figure("articles", len(texts_a))
    report.target(
        f"{n} workers vs 1, burst wall time",
        speedup,
        f">= {TARGET_SPEEDUP:g}x",
        speedup >= TARGET_SPEEDUP,
        "x",
    )
    report.target(f"{n} workers: same history as 1", same, "same", same)
    if any(code != 0 for code in alone.exit_codes + together.exit_codes):
        report.notes.append(
            f"worker exit codes: 1 worker {alone.exit_codes}, {n} workers {together.exit_codes}"
        )
    report.notes.append(
        f"{cores} cores on this machine, shared by the workers, PostgreSQL and this script; "
        "every worker prepares (parses, fingerprints) each dump it sees before it waits for "
        "the lock, and a dump another worker ingested first is thrown away"
    )
    return report


def run(args: argparse.Namespace) -> Report:
    params = {"dumps": args.dumps, "workers": args.workers, "seed": args.seed}
    databases = Databases(args.pg_url)
    why = databases.check()
    if why:
        print(f"workers: skipped: {why}", file=sys.stderr)
        report = Report("workers", params=params)
        report.notes.append(f"skipped: {why}")
        return report
    try:
        with tempfile.TemporaryDirectory(prefix="feedd-bench-workers-") as tmp:
            burst = Path(tmp) / "burst"
            made = write_burst(burst, args.dumps, args.seed)
            params["item_lines"] = made * LISTING
            outcomes = []
            for n in (1, args.workers):
                print(f"workers: {n} worker(s), {made} dumps ...", file=sys.stderr, flush=True)
                url = databases.create()
                outcome = run_burst(
                    n, url, burst, Path(tmp) / f"w{n}", sample=args.sample, timeout=args.timeout
                )
                print(f"workers: {n}: {outcome.seconds:.1f} s", file=sys.stderr, flush=True)
                outcomes.append(outcome)
        return report_of(outcomes[0], outcomes[1], params)
    finally:
        databases.drop_all()


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: workers, databases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dumps", type=int, default=300, help="dumps in the burst")
    parser.add_argument("--workers", type=int, default=4, help="workers of the second run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL server (admin database)")
    parser.add_argument("--sample", type=float, default=0.05, help="seconds between lock samples")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a step")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.workers < 2 or args.dumps < 1:
        parser.error("--workers wants 2 or more, --dumps 1 or more")
    signal.signal(signal.SIGTERM, _terminate)
    run(args).emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
