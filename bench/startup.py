"""Command-line start-up: `feedd --help`, `feedd --version` and `feedd status`.

    python bench/startup.py                      # 30 runs of each command
    python bench/startup.py --runs 5 --dumps 10 --json

Each command is the installed console script (``.venv/bin/feedd``, else
``python -m feedd``) in a fresh process, timed by wall clock from spawn to
exit, as a person at a terminal or a monitoring script meets it. The rounds
are interleaved (one run of each command per round, after one unmeasured
round that warms the bytecode and file caches), so that a busy moment of the
machine hits every command alike.

Baselines from the same run: ``python -c pass`` (the interpreter alone),
``python -c "import click"`` (the floor of any click command line) and
``python -c "import sqlalchemy"`` (the floor of a command that reads the
store, as status does); a command's cost is best read as its distance from
them. Every figure grows with the machine's load: SQLAlchemy's import
alone took 250 to 360 ms at a load average of 4 on 2 cores. Each command's
CPU time (user + system, the kernel's accounting of the child) is reported
too; it leaves out the waits for a core, though not the slowdown of a core
shared with other work, so compare commands within one run.

``feedd status`` reads a small real database: ``--dumps`` dumps of the
benchmark stream (bench/stream.py), backfilled by ``feedd backfill`` into a
temporary folder, which also writes the feed files that status reads.

One more run of each command under ``python -X importtime`` says which of the
heavy dependencies it loaded (figures "<command> loads"): the targets are met
by importing only what each command needs.

Targets (reported, never asserted): median ``feedd --help`` <= 150 ms and
median ``feedd status`` <= 300 ms.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream  # noqa: E402
from common import Report, percentile  # noqa: E402

TARGETS_MS = {"feedd --help": 150.0, "feedd status": 300.0}
# The dependencies that cost most to import, and the commands that need them.
HEAVY = ("sqlalchemy", "alembic", "numpy", "feedgen", "lxml", "apscheduler", "waitress", "jinja2")
RUN_TIMEOUT = 60.0


def feedd_command() -> list[str]:
    """The console script next to this interpreter, as installed; else -m."""
    script = Path(sys.executable).with_name("feedd")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "feedd"]


def make_database(root: Path, dumps: int, seed: int) -> Path:
    """A config.toml over a database that ``feedd backfill`` filled with ``dumps`` dumps."""
    folder = root / "dumps"
    folder.mkdir()
    source = stream.dumps(stream.StreamSettings(lines=10**9, seed=seed))
    for _ in range(dumps):
        stream.write_dump(folder, next(source))
    config = root / "config.toml"
    config.write_text(
        "[database]\nurl = 'sqlite:///feedd.db'\n"
        "[ingest]\nwatch_dir = 'watch'\n"
        "[feed]\noutput_dir = 'public'\n"
    )
    (root / "watch").mkdir()
    subprocess.run(
        [*feedd_command(), "-q", "-c", str(config), "backfill", str(folder)],
        cwd=root,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    return config


def time_once(args: Sequence[str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds from spawn to exit; raises when the command fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, timeout=RUN_TIMEOUT, check=False, env=_env()
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(
            f"startup: {' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-500:]}"
        )
    return seconds, cpu


def loaded(args: Sequence[str], cwd: Path) -> list[str]:
    """The HEAVY packages that ``args`` imported (one run under -X importtime)."""
    env = {**_env(), "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env, check=False
    )
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return [name for name in HEAVY if name in names]


def _env() -> dict[str, str]:
    # No FEEDD_* from the caller's shell: the config file says everything.
    return {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}


def run(runs: int, dumps: int, seed: int) -> Report:
    report = Report("startup", params={"runs": runs, "dumps": dumps, "seed": seed})
    feedd = feedd_command()
    with tempfile.TemporaryDirectory(prefix="feedd-startup-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        config = make_database(root, dumps, seed)
        report.figure("database build (backfill)", time.perf_counter() - started, "s")
        commands: dict[str, list[str]] = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import click'": [sys.executable, "-c", "import click"],
            "python -c 'import sqlalchemy'": [sys.executable, "-c", "import sqlalchemy"],
            "feedd --help": [*feedd, "--help"],
            "feedd --version": [*feedd, "--version"],
            "feedd status": [*feedd, "-c", str(config), "status"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(runs + 1):
            for name, args in commands.items():
                seconds, used = time_once(args, root)
                if round_:  # the first round only warms the caches
                    times[name].append(seconds)
                    cpu[name].append(used)
        for name, values in times.items():
            values.sort()
            report.figure(f"{name} median", statistics.median(values) * 1000, "ms")
            report.figure(f"{name} p95", percentile(values, 0.95) * 1000, "ms")
            report.figure(f"{name} CPU median", statistics.median(cpu[name]) * 1000, "ms")
        for name, args in commands.items():
            if name.startswith("feedd"):
                report.figure(f"{name} loads", ", ".join(loaded(args, root)) or "none")
    for name, target in TARGETS_MS.items():
        median = statistics.median(times[name]) * 1000
        report.target(f"{name} median", median, f"<= {target:g} ms", median <= target, "ms")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="measured runs of each command")
    parser.add_argument("--dumps", type=int, default=50, help="dumps in the status database")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.dumps < 1:
        parser.error("--runs and --dumps must be at least 1")
    run(args.runs, args.dumps, args.seed).emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
