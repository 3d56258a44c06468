"""What the benchmark scripts share: the report format, percentiles, the machine.

Every benchmark prints its figures for people, or with ``--json`` one JSON object::

    {"benchmark": "throughput", "machine": {...}, "params": {...},
     "figures": [{"name": ..., "value": ..., "unit": ...}, ...],
     "targets": [{"name": ..., "value": ..., "target": ..., "met": true}, ...]}

``bench/run_all.py`` reads these objects and prints one table. Targets are
reported, never asserted: a benchmark that misses one still exits 0.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Report:
    benchmark: str
    params: dict[str, Any] = field(default_factory=dict)
    figures: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=lambda: machine())

    def figure(self, name: str, value: Any, unit: str = "") -> None:
        self.figures.append({"name": name, "value": value, "unit": unit})

    def target(self, name: str, value: float, target: str, met: bool, unit: str = "") -> None:
        self.targets.append(
            {"name": name, "value": value, "unit": unit, "target": target, "met": bool(met)}
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def emit(self, as_json: bool) -> None:
        if as_json:
            print(json.dumps(self.as_dict(), ensure_ascii=False))
        else:
            print(format_report(self.as_dict()))


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"== {report['benchmark']} " + " ".join(f"{k}={v}" for k, v in report["params"].items())
    ]
    width = max((len(f["name"]) for f in report["figures"]), default=10)
    for f in report["figures"]:
        lines.append(f"  {f['name']:<{width}}  {fmt(f['value'])} {f['unit']}".rstrip())
    for t in report["targets"]:
        verdict = "met" if t["met"] else "MISSED"
        lines.append(
            f"  target {t['name']}: {fmt(t['value'])} {t['unit']} (target {t['target']}): {verdict}"
        )
    lines += [f"  note: {n}" for n in report["notes"]]
    return "\n".join(lines)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


class MemorySampler:
    """Peak memory of this process and its children together, sampled.

    RSS counts a page in every process that maps it, so a forked helper's
    RSS repeats the pages it still shares with its parent, and adding the two
    peaks counts those twice. PSS (Linux, /proc/PID/smaps_rollup) splits each
    shared page between the processes that share it: the sum over the
    processes is the memory they take together. Sampled every ``interval``
    seconds from a thread; ``peak_mb`` is None where /proc has no PSS."""

    def __init__(self, interval: float = 0.5) -> None:
        import threading

        self.interval = interval
        self.peak_mb: float | None = None
        self.peak_rss_mb: float | None = None  # RSS summed over the same processes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        pss = rss = 0.0
        for pid in _self_and_children():
            got = _rollup(pid)
            if got is None:
                if pid == os.getpid():
                    return  # no PSS on this system
                continue  # a child that just exited
            pss += got[0]
            rss += got[1]
        self.peak_mb = max(self.peak_mb or 0.0, pss / 1024)
        self.peak_rss_mb = max(self.peak_rss_mb or 0.0, rss / 1024)


def _self_and_children() -> list[int]:
    pids = [os.getpid()]
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as fh:
                pids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    return pids


def _rollup(pid: int) -> tuple[float, float] | None:
    """(Pss, Rss) in KiB, or None."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        return float(fields["Pss"].split()[0]), float(fields["Rss"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss is in KiB on Linux)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / (1024 * 1024)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(terse=True),
        # Other work on the machine shows in the tail latencies: say how busy it was.
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "feedd"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if head:
            info["commit"] = head + ("+uncommitted feedd changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return info


def sqlite_size(path: Path) -> int:
    """The database file plus its WAL and shared-memory files, in bytes."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            total += p.stat().st_size
    return total


def quiet_feedd_logs() -> None:
    """Ingest logs one INFO line per dump; a benchmark must not time the terminal."""
    import logging

    logging.getLogger("feedd").setLevel(logging.WARNING)
