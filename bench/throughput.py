"""Backfill throughput, end to end with persistence, against the textbook pipeline.

    python bench/throughput.py                          # 1,000,000 lines into SQLite
    python bench/throughput.py --lines 100000 --engine both --json
    python bench/throughput.py --lines 100000 --profile /tmp/ingest.prof

The stream of ``bench/stream.py`` is fed dump by dump to
``app.ingester.ingest_bytes(name, data, observed_at)``: parsing, fingerprints,
decisions and every write, ``ingest.backfill_batch`` dumps per transaction as
in ``feedd backfill``; only the file read is left out. Reported: item lines/s
of each slice of ``--slice`` lines (only the ingest calls are timed, not the
generator), peak RSS, and the database size
(SQLite file plus WAL; PostgreSQL ``pg_database_size``).

The baseline is measured in the same run on the first ``--baseline-lines``
lines of the same stream: ``simhash.Simhash(text)`` looked up in a
``simhash.SimhashIndex(k=3)`` in memory, without persistence (the textbook
pipeline of ``bench/detection/baseline.py``, fed from the same bytes).

Each measurement runs in its own child process, so that peak RSS is that
engine's alone. PostgreSQL gets a fresh database ``feedd_bench_<random>``
beside the one in ``--pg-url``, dropped afterwards; when the server cannot be
reached, ``--engine both`` reports SQLite only and says so.

The physical limit is measured in the same run, over the same stream, in a
child of its own: reading the stream's bytes and hashing every line after the
three header lines with ``hashlib.sha1`` (a sha1sum-like pass in Python: the
item lines plus the few noise lines, so a little more work than the items
alone; only the pass is timed, not the generator), and the ``sha1sum`` program
itself (C) over the same bytes written to one temporary file (wall time of the
process, start included, best of three, the file in the page cache). Both are
given as item lines/s, and feedd's distance from each as their ratio (how many
times faster than feedd the limit is).

Targets (reported, not asserted): SQLite >= 20x the baseline's lines/s;
throughput flat within +-20% from the first to the last slice; peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream  # noqa: E402
from common import (  # noqa: E402
    MemorySampler,
    Report,
    peak_rss_mb,
    quiet_feedd_logs,
    sqlite_size,
)

PG_URL = os.environ.get("FEEDD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BASELINE_PATH = Path(__file__).resolve().parent / "detection" / "baseline.py"
TARGET_RATIO = 20.0
TARGET_FLAT = 0.20
TARGET_RSS_MB = 300.0


# --- children: one measurement each ------------------------------------------------


def measure_feedd(url: str, settings: stream.StreamSettings, slice_lines: int, profile: str | None):
    from feedd.app import build
    from feedd.config import load_config
    from feedd.errors import StorageError

    quiet_feedd_logs()
    app = build(load_config(None, env={}, overrides={"database.url": url}))
    profiler = cProfile.Profile() if profile else None
    slices: list[dict[str, Any]] = []
    totals = {"lines": 0, "dumps": 0, "new": 0, "repeat": 0, "update": 0}
    truth = {"new": 0, "edits": 0}
    slice_lines_done = 0
    slice_seconds = 0.0
    slice_cpu = 0.0
    ingest_seconds = 0.0
    started = time.perf_counter()
    # As `feedd backfill` does: Ingester.ingest (with its helper process
    # that parses and fingerprints ahead) inside SqlStore.batch
    # (ingest.backfill_batch dumps per transaction). The stream is generated
    # lazily, inside that loop; its time is measured and taken out.
    batch = app.config.ingest.backfill_batch
    made = {"seconds": 0.0, "cpu": 0.0}
    sources: deque[Any] = deque()  # the stream's dumps, in order, until their result is counted

    def feed() -> Iterator[Any]:
        from feedd.ingest import DumpBytes

        dumps = stream.dumps(settings)
        while True:
            t0, c0 = time.perf_counter(), time.process_time()
            dump = next(dumps, None)
            made["seconds"] += time.perf_counter() - t0
            made["cpu"] += time.process_time() - c0
            if dump is None:
                return
            sources.append(dump)
            yield DumpBytes(dump.name, dump.data, dump.observed_at)

    def mark() -> tuple[float, float]:
        return (
            time.perf_counter() - made["seconds"],
            time.process_time() - made["cpu"],
        )

    def count(result: Any, dump: Any, seconds: float, cpu: float) -> None:
        nonlocal slice_lines_done, slice_seconds, slice_cpu, ingest_seconds
        if result.status != "ingested":
            raise SystemExit(f"throughput: {dump.name} was {result.status}: {result.reason}")
        ingest_seconds += seconds
        slice_seconds += seconds
        slice_cpu += cpu
        slice_lines_done += result.items
        totals["lines"] += result.items
        totals["dumps"] += 1
        for kind in ("new", "repeat", "update"):
            totals[kind] += getattr(result, kind)
        truth["new"] += dump.new
        truth["edits"] += dump.edits
        if slice_lines_done >= slice_lines:
            slices.append(_slice(totals["lines"], slice_lines_done, slice_seconds, slice_cpu))
            print(
                f"  {url.split(':')[0]}: {totals['lines']:>9,} lines  "
                f"{slices[-1]['lines_per_s']:>8,.0f} lines/s in this slice  "
                f"rss {peak_rss_mb():.0f} MB",
                file=sys.stderr,
                flush=True,
            )
            slice_lines_done, slice_seconds, slice_cpu = 0, 0.0, 0.0

    if profiler:
        profiler.enable()
    sampler = MemorySampler()
    try:
        with sampler, app.store.batch(batch, seconds=float("inf")):
            t_prev, c_prev = mark()
            for result in app.ingester.ingest(feed()):
                t_now, c_now = mark()
                count(result, sources.popleft(), t_now - t_prev, c_now - c_prev)
                t_prev, c_prev = t_now, c_now
        # The final commit belongs to the last slice.
        t_now, c_now = mark()
        ingest_seconds += t_now - t_prev
        slice_seconds += t_now - t_prev
        slice_cpu += c_now - c_prev
    except StorageError as exc:
        raise SystemExit(f"throughput: {exc}") from exc
    finally:
        if profiler:
            profiler.disable()
    if slice_lines_done:
        slices.append(_slice(totals["lines"], slice_lines_done, slice_seconds, slice_cpu))
    wall = time.perf_counter() - started
    size = _database_size(app)
    store_totals = app.store.totals()
    app.close()
    if profiler and profile:
        profiler.dump_stats(profile)
    return {
        "engine": app.store.dialect,
        "lines": totals["lines"],
        "dumps": totals["dumps"],
        "seconds": ingest_seconds,
        "wall_seconds": wall,
        "lines_per_s": totals["lines"] / ingest_seconds if ingest_seconds else 0.0,
        "slices": slices,
        "peak_rss_mb": peak_rss_mb(),
        # The helper has exited (ingest shut it down), so it is counted here.
        "helper_cpu_seconds": _children().ru_utime + _children().ru_stime,
        "helper_rss_mb": _children().ru_maxrss / 1024,
        # Both processes together, sampled: PSS summed (shared pages once) and
        # RSS summed (shared pages in both).
        "both_pss_mb": sampler.peak_mb,
        "both_rss_mb": sampler.peak_rss_mb,
        "db_bytes": size,
        "decisions": {k: totals[k] for k in ("new", "repeat", "update")},
        "truth": truth,
        "stored": {"articles": store_totals.articles, "revisions": store_totals.revisions},
    }


def _children() -> Any:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN)


def _slice(upto: int, lines: int, seconds: float, cpu: float) -> dict[str, Any]:
    return {
        "upto": upto,
        "lines": lines,
        "seconds": seconds,
        "lines_per_s": lines / seconds if seconds else 0.0,
        # Per CPU-second of this process: what history costs, without the time
        # other processes on a shared machine took (or that the database server,
        # a separate process for PostgreSQL, spent).
        "lines_per_cpu_s": lines / cpu if cpu else 0.0,
    }


def _database_size(app: Any) -> int:
    from sqlalchemy import text

    engine = app.store.engine
    if engine.dialect.name == "sqlite":
        return sqlite_size(Path(engine.url.database))
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def _load_baseline() -> Any:
    spec = importlib.util.spec_from_file_location("bench_detection_baseline", BASELINE_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def measure_baseline(settings: stream.StreamSettings) -> dict[str, Any]:
    """The textbook pipeline over the same dump bytes, in memory."""
    import simhash

    textbook = _load_baseline()
    index = simhash.SimhashIndex([], k=textbook.K)
    latest: dict[str, str] = {}  # article -> its latest text
    fingerprints: dict[str, list[simhash.Simhash]] = {}
    counts = {"new": 0, "repeat": 0, "update": 0}
    lines = 0
    seconds = 0.0
    cpu = 0.0
    for dump in stream.dumps(settings):
        c0 = time.process_time()
        t0 = time.perf_counter()
        for raw in dump.data.decode("utf-8").split("\n")[textbook.HEADER_LINES :]:
            text = raw.rstrip("\r")
            if textbook.is_noise(text):
                continue
            lines += 1
            fp = textbook.fingerprint(text)
            hits = index.get_near_dups(fp)
            if hits:
                article = min(
                    hits, key=lambda a: (min(fp.distance(o) for o in fingerprints[a]), int(a[1:]))
                )
                if text == latest[article]:
                    counts["repeat"] += 1
                    continue
                counts["update"] += 1
            else:
                article = f"b{len(latest) + 1}"
                counts["new"] += 1
                fingerprints[article] = []
            latest[article] = text
            index.add(article, fp)
            fingerprints[article].append(fp)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
    return {
        "engine": "textbook (simhash + SimhashIndex in memory)",
        "lines": lines,
        "seconds": seconds,
        "lines_per_s": lines / seconds if seconds else 0.0,
        "lines_per_cpu_s": lines / cpu if cpu else 0.0,
        "peak_rss_mb": peak_rss_mb(),
        "decisions": counts,
    }


def measure_limit(settings: stream.StreamSettings, scratch: Path) -> dict[str, Any]:
    """The physical limit: hashlib over every line, then sha1sum over the same bytes."""
    import hashlib
    import shutil

    sha1 = hashlib.sha1
    lines = 0
    hashed = 0
    size = 0
    seconds = 0.0
    cpu = 0.0
    path = scratch / "stream.bin"
    with open(path, "wb") as out:
        for dump in stream.dumps(settings):
            out.write(dump.data)  # for sha1sum, outside the timed pass
            c0 = time.process_time()
            t0 = time.perf_counter()
            for line in dump.data.split(b"\n")[stream.HEADER.count("\n") :]:
                if line:
                    sha1(line).digest()
                    hashed += 1
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
            lines += dump.items
            size += len(dump.data)
    out_python = {
        "lines": lines,
        "hashed_lines": hashed,
        "bytes": size,
        "seconds": seconds,
        "lines_per_s": lines / seconds if seconds else 0.0,
        "lines_per_cpu_s": lines / cpu if cpu else 0.0,
    }
    program = shutil.which("sha1sum")
    out_c: dict[str, Any] = {"lines": lines, "bytes": size, "program": program}
    if program:
        runs = []
        for _ in range(3):  # the first also warms the page cache, if writing did not
            t0 = time.perf_counter()
            subprocess.run([program, str(path)], stdout=subprocess.DEVNULL, check=True)
            runs.append(time.perf_counter() - t0)
        best = min(runs)
        out_c.update(seconds=best, runs=runs, lines_per_s=lines / best if best else 0.0)
    path.unlink()
    return {"python": out_python, "sha1sum": out_c}


# --- the parent ---------------------------------------------------------------------


def _child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"throughput: child {' '.join(args[:3])} failed ({done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _create_pg_database(admin_url: str) -> tuple[str | None, str]:
    """(url of a fresh database, or None; why not)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"feedd_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return None, f"PostgreSQL at {admin_url} unreachable ({type(exc).__name__})"
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, ""


def _drop_pg_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    for attempt in range(5):  # the server may be restarting under other work
        try:
            admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
            return
        except Exception as exc:  # noqa: BLE001
            if attempt == 4:
                print(f"throughput: could not drop {name}: {exc}", file=sys.stderr)
            time.sleep(2)


def run(
    lines: int,
    engines: Sequence[str],
    *,
    slice_lines: int,
    baseline_lines: int,
    seed: int,
    pg_url: str,
    pg_lines: int | None = None,
    profile: str | None = None,
) -> Report:
    report = Report(
        "throughput",
        params={
            "lines": lines,
            "engines": "+".join(engines),
            "pg_lines": pg_lines or lines,
            "slice": slice_lines,
            "baseline_lines": baseline_lines,
            "seed": seed,
        },
    )
    common = ["--seed", str(seed), "--slice", str(slice_lines)]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="feedd-bench-") as tmp:
        for engine in engines:
            n = lines if engine == "sqlite" else (pg_lines or lines)
            print(f"throughput: {engine}, {n:,} lines ...", file=sys.stderr, flush=True)
            extra = ["--lines", str(n), *common]
            if profile and engine == engines[0]:
                extra += ["--profile", profile]
            if engine == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                results[engine] = _child(["--child", "feedd", "--url", url, *extra])
                continue
            pg, why = _create_pg_database(pg_url)
            if pg is None:
                if len(engines) == 1:
                    raise SystemExit(f"throughput: {why}")
                report.notes.append(f"postgres skipped: {why}")
                continue
            try:
                results[engine] = _child(["--child", "feedd", "--url", pg, *extra])
            except SystemExit as exc:
                if len(engines) == 1:
                    raise
                report.notes.append(f"postgres failed: {exc}")
            finally:
                _drop_pg_database(pg_url, pg)
    print(f"throughput: baseline, {baseline_lines:,} lines ...", file=sys.stderr, flush=True)
    base = _child(["--child", "baseline", "--lines", str(baseline_lines), "--seed", str(seed)])
    report.figure("baseline lines/s", base["lines_per_s"], "lines/s")
    report.figure("baseline lines per CPU-second", base["lines_per_cpu_s"], "lines/s")
    report.figure("baseline peak RSS", base["peak_rss_mb"], "MB")
    report.figure(
        "baseline decisions new/repeat/update",
        "/".join(str(base["decisions"][k]) for k in ("new", "repeat", "update")),
    )
    # Over --lines: the limit's rate hardly depends on the length of the stream.
    print(f"throughput: physical limit, {lines:,} lines ...", file=sys.stderr, flush=True)
    limit = _child(["--child", "limit", "--lines", str(lines), "--seed", str(seed)])
    hashed, c_pass = limit["python"], limit["sha1sum"]
    report.figure("limit: hashlib sha1 of every line, lines/s", hashed["lines_per_s"], "lines/s")
    report.figure(
        "limit: hashlib sha1 pass, MB/s",
        hashed["bytes"] / hashed["seconds"] / 1e6 if hashed["seconds"] else 0.0,
        "MB/s",
    )
    if c_pass.get("lines_per_s"):
        report.figure("limit: sha1sum (C) lines/s", c_pass["lines_per_s"], "lines/s")
        report.figure("limit: sha1sum (C) MB/s", c_pass["bytes"] / c_pass["seconds"] / 1e6, "MB/s")
    else:
        report.notes.append("no sha1sum program on PATH: its limit is not measured")
    for engine, r in results.items():
        first, last = r["slices"][0], r["slices"][-1]
        drift = last["lines_per_s"] / first["lines_per_s"] - 1 if first["lines_per_s"] else 0.0
        ratio = r["lines_per_s"] / base["lines_per_s"] if base["lines_per_s"] else 0.0
        report.figure(f"{engine} lines/s (whole run)", r["lines_per_s"], "lines/s")
        for s in r["slices"]:
            report.figure(f"{engine} lines/s up to {s['upto']:,}", s["lines_per_s"], "lines/s")
        report.figure(f"{engine} ingest seconds", r["seconds"], "s")
        report.figure(f"{engine} first->last slice", 100 * drift, "%")
        cpu_first, cpu_last = first["lines_per_cpu_s"], last["lines_per_cpu_s"]
        report.figure(
            f"{engine} first->last slice, per CPU-second",
            100 * (cpu_last / cpu_first - 1) if cpu_first else 0.0,
            "%",
        )
        slowest = min(x["lines_per_s"] for x in r["slices"])
        report.figure(
            f"{engine} slowest slice vs first", 100 * (slowest / first["lines_per_s"] - 1), "%"
        )
        report.figure(f"{engine} / baseline", ratio, "x")
        if r["lines_per_s"]:
            # How far feedd is from the floor: the limit's lines/s over feedd's.
            report.figure(
                f"hashlib pass / {engine} lines/s", hashed["lines_per_s"] / r["lines_per_s"], "x"
            )
            if c_pass.get("lines_per_s"):
                report.figure(
                    f"sha1sum / {engine} lines/s", c_pass["lines_per_s"] / r["lines_per_s"], "x"
                )
        # On a shared machine the two runs get different shares of a core;
        # per CPU-second of each process is the fair comparison (for SQLite,
        # where the database works inside the process).
        # The helper process that prepares dumps ahead (ingest.prepare_ahead)
        # has its own CPU time; the slices count the ingest process only.
        cpu_s = sum(x["lines"] / x["lines_per_cpu_s"] for x in r["slices"] if x["lines_per_cpu_s"])
        cpu_s += r.get("helper_cpu_seconds", 0.0)
        cpu_lines = r["lines"] / cpu_s if cpu_s else 0.0
        report.figure(f"{engine} lines per CPU-second (both processes)", cpu_lines, "lines/s")
        report.figure(f"{engine} helper process CPU", r.get("helper_cpu_seconds", 0.0), "s")
        if base.get("lines_per_cpu_s"):
            report.figure(
                f"{engine} / baseline, per CPU-second", cpu_lines / base["lines_per_cpu_s"], "x"
            )
        if abs(first["upto"] - base["lines"]) <= 0.01 * base["lines"] + 20:
            same = first["lines_per_s"] / base["lines_per_s"] if base["lines_per_s"] else 0.0
            report.figure(f"{engine} / baseline, same first slice", same, "x")
        report.figure(f"{engine} peak RSS", r["peak_rss_mb"], "MB")
        report.figure(f"{engine} helper process peak RSS", r.get("helper_rss_mb", 0.0), "MB")
        if r.get("both_pss_mb") is not None:
            report.figure(
                f"{engine} peak PSS, ingest process and helper together", r["both_pss_mb"], "MB"
            )
            report.figure(
                f"{engine} peak RSS, ingest process and helper summed (shared pages twice)",
                r["both_rss_mb"],
                "MB",
            )
        report.figure(f"{engine} database size", r["db_bytes"] / 2**20, "MiB")
        report.figure(
            f"{engine} bytes per line", r["db_bytes"] / r["lines"] if r["lines"] else 0, "B"
        )
        d, t = r["decisions"], r["truth"]
        report.figure(
            f"{engine} decisions new/repeat/update", f"{d['new']}/{d['repeat']}/{d['update']}"
        )
        report.figure(f"{engine} generator truth new/edits", f"{t['new']}/{t['edits']}")
        report.figure(
            f"{engine} stored articles/revisions",
            f"{r['stored']['articles']}/{r['stored']['revisions']}",
        )
        if engine == "sqlite":
            report.target(
                "sqlite / baseline lines/s", ratio, f">= {TARGET_RATIO:.0f}x", ratio >= TARGET_RATIO
            )
        if len(r["slices"]) > 1:
            report.target(
                f"{engine} flat first->last slice",
                100 * drift,
                f"within +-{100 * TARGET_FLAT:.0f}%",
                abs(drift) <= TARGET_FLAT,
                "%",
            )
        # The target counts the helper in. Its RSS repeats the pages
        # it shares with the ingest process (it is forked), so the two are
        # taken together as PSS where /proc has it, else the RSS peaks added.
        if r.get("both_pss_mb") is not None:
            memory, how = r["both_pss_mb"], "PSS of both processes"
        else:
            memory, how = r["peak_rss_mb"] + r.get("helper_rss_mb", 0.0), "RSS peaks added"
        report.target(
            f"{engine} peak memory with the helper ({how})",
            memory,
            f"<= {TARGET_RSS_MB:.0f} MB",
            memory <= TARGET_RSS_MB,
            "MB",
        )
    report.params["results"] = {"feedd": results, "baseline": base, "limit": limit}
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="item lines to ingest")
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--slice", type=int, default=100_000, help="lines per reported slice")
    parser.add_argument(
        "--baseline-lines", type=int, default=100_000, help="lines for the textbook baseline"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL server (admin database)")
    parser.add_argument("--pg-lines", type=int, help="lines for PostgreSQL (default: --lines)")
    parser.add_argument("--profile", help="write cProfile stats of the ingest calls here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--child", choices=("feedd", "baseline", "limit"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        settings = stream.StreamSettings(lines=args.lines, seed=args.seed)
        if args.child == "feedd":
            out = measure_feedd(args.url, settings, args.slice, args.profile)
        elif args.child == "limit":
            with tempfile.TemporaryDirectory(prefix="feedd-bench-limit-") as scratch:
                out = measure_limit(settings, Path(scratch))
        else:
            out = measure_baseline(settings)
        print(json.dumps(out))
        return 0

    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    report = run(
        args.lines,
        engines,
        slice_lines=args.slice,
        baseline_lines=min(args.baseline_lines, args.lines),
        seed=args.seed,
        pg_url=args.pg_url,
        pg_lines=args.pg_lines,
        profile=args.profile,
    )
    if not args.json:
        report.params.pop("results")
    report.emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
