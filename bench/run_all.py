"""Every benchmark, then one table of their figures and targets.

    python bench/run_all.py             # the full run (`make bench`), about an hour on 2 cores
                                        # (the first also builds web.py's 100k database, ~30 min)
    python bench/run_all.py --quick     # small sizes, about 3 minutes
    python bench/run_all.py --only throughput,lookup --json --out results.json

Each benchmark runs as its own process with ``--json``; its progress goes to
stderr as it runs, and its figures come back into the table (markdown, so it
can go straight into docs/performance.md). A benchmark that fails is listed as
failed and the others still run; the exit status is 1 when any failed.
Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, machine  # noqa: E402

HERE = Path(__file__).resolve().parent

# name -> (script, full-run arguments, --quick arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "fingerprint": ("fingerprint.py", ["--items", "2000"], ["--items", "300"]),
    "throughput": (
        "throughput.py",
        ["--lines", "1000000", "--engine", "both"],
        ["--lines", "30000", "--slice", "10000", "--engine", "both", "--baseline-lines", "10000"],
    ),
    "lookup": (
        "lookup.py",
        ["--sizes", "10000,100000,1000000", "--queries", "2000"],
        ["--sizes", "10000,100000", "--queries", "300"],
    ),
    "latency": ("latency.py", ["--dumps", "30"], ["--dumps", "5", "--history", "200"]),
    "startup": ("startup.py", ["--runs", "30"], ["--runs", "5", "--dumps", "10"]),
    "search": (
        "search.py",
        ["--articles", "100000", "--queries", "200"],
        ["--articles", "3000", "--queries", "50"],
    ),
    "http_load": (
        "http_load.py",
        ["--requests", "2000", "--connections", "50"],
        ["--requests", "300", "--connections", "10"],
    ),
    "detection": ("detection/run.py", [], ["--dumps", "40", "--articles", "40"]),
    # Every shared corpus, four systems; --quick: two corpora, their first 200 dumps.
    "corpora": (
        "detection/corpora.py",
        [],
        [
            *("--only", "jbranchaud-til", "--only", "iosweekly-recut"),
            *("--limit-dumps", "200", "--systems", "feedd,textbook,minhash"),
        ],
    ),
    # 4 `feedd run` workers against 1 on one PostgreSQL (skips without a server).
    "workers": ("workers.py", ["--dumps", "300"], ["--dumps", "60"]),
    # The database is built once and kept in bench/out/ (git-ignored).
    "web": ("web.py", ["--articles", "100000"], ["--articles", "5000", "--requests", "50"]),
}
# Leaves of the detection report worth a row in the table (it has many more).
_DETECTION_KEYS = ("precision", "recall", "f1", "accuracy", "purity", "mistakes")


def run_one(name: str, quick: bool, tmp: Path) -> tuple[dict[str, Any] | None, float, str]:
    script, full, small = BENCHMARKS[name]
    path = HERE / script
    if not path.is_file():
        return None, 0.0, f"{script} not present"
    args = [sys.executable, str(path), *(small if quick else full), "--json"]
    if name == "detection":
        args += ["--out", str(tmp / "detection")]
    print(f"run_all: {name}: {' '.join(args[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    try:
        result = json.loads(done.stdout[done.stdout.index("{") :])
    except ValueError:
        return None, seconds, f"exit {done.returncode}, no JSON report"
    status = "ok" if done.returncode == 0 else f"exit {done.returncode}"
    return result, seconds, status


def rows_of(name: str, result: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """(figure rows, target rows) of one benchmark's JSON report."""
    if "figures" in result:
        figures = [
            [name, f["name"], f"{fmt(f['value'])} {f['unit']}".strip()] for f in result["figures"]
        ]
        targets = [
            [
                name,
                t["name"],
                f"{fmt(t['value'])} {t['unit']}".strip(),
                t["target"],
                "met" if t["met"] else "**missed**",
            ]
            for t in result["targets"]
        ]
        return figures, targets
    if name == "http_load":
        keys = ("requests_per_second", "p50_ms", "p95_ms", "p99_ms", "errors", "split_ok")
        return [[name, k, fmt(result[k])] for k in keys if k in result], []
    # Another format (the detection report): its scores, found by name.
    rows = []
    for path, value in _leaves(result):
        last = path.rsplit(".", 1)[-1].lower()
        if isinstance(value, (int, float)) and any(k in last for k in _DETECTION_KEYS):
            rows.append([name, path, fmt(value)])
    return rows[:40], []


def _leaves(value: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    if depth > 4:
        return []
    if isinstance(value, dict):
        out = []
        for key, inner in value.items():
            out += _leaves(inner, f"{prefix}.{key}" if prefix else str(key), depth + 1)
        return out
    return [(prefix, value)]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(header), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, rows)]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", action="store_true", help="print all reports as JSON")
    parser.add_argument("--out", type=Path, help="also save all reports as JSON here")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}")

    started = time.perf_counter()
    results: dict[str, Any] = {}
    figures: list[list[str]] = []
    targets: list[list[str]] = []
    runs: list[list[str]] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="feedd-run-all-") as tmp:
        for name in names:
            result, seconds, status = run_one(name, args.quick, Path(tmp))
            runs.append([name, status, f"{seconds:.0f} s"])
            failed = failed or (status != "ok" and not status.endswith("not present"))
            if result is None:
                continue
            results[name] = result
            f_rows, t_rows = rows_of(name, result)
            figures += f_rows
            targets += t_rows
    total = time.perf_counter() - started
    everything = {
        "machine": machine(),
        "quick": args.quick,
        "seconds": total,
        "runs": runs,
        "reports": results,
    }
    if args.out:
        args.out.write_text(json.dumps(everything, ensure_ascii=False, indent=2))
    if args.json:
        print(json.dumps(everything, ensure_ascii=False))
        return 1 if failed else 0
    m = everything["machine"]
    print(
        f"\nfeedd benchmarks{' (--quick)' if args.quick else ''}: {m.get('cpus')} cores "
        f"({m.get('cpu', '?')}), {m.get('memory_gib', '?')} GiB, Python {m['python']}, "
        f"SQLite {m['sqlite']}, load {m['loadavg_1m']}; {total / 60:.1f} min in all\n"
    )
    print(table(["benchmark", "status", "time"], runs))
    print()
    print(table(["benchmark", "figure", "value"], figures))
    print()
    if targets:
        print(table(["benchmark", "target", "value", "wanted", "verdict"], targets))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
