"""Decisions and exports identical before and after: old feedd against new, same dumps.

    python bench/identical.py                             # HEAD against the working tree
    python bench/identical.py --base 016c173 --lines 20000 --only jbranchaud-til
    python bench/identical.py --lines 300 --only jbranchaud-til --limit-dumps 50 --json

A check, not a benchmark (so not in bench/run_all.py): its exit status is 0 when
every export is identical and 1 on any difference (or when a run fails).

The old code is the tree of ``--base`` (default: ``git rev-parse HEAD``),
extracted with ``git archive`` into a temporary folder; nothing is installed.
Both trees run with this venv's python, ``PYTHONPATH`` set to the tree and
``python -m feedd``, through a three-line bootstrap that takes the editable
install's import hook out of ``sys.meta_path`` (it would map
``feedd.migrations`` onto this checkout's migrations/, so the old code would
run the new schema) and checks that ``feedd`` was imported from the tree. The
new code is this checkout as it is, uncommitted changes included.

On each data set, each tree runs as a user does: ``feedd backfill DIR
--no-feeds`` on a fresh SQLite file in a temporary folder (built-in defaults: no
config file, no FEEDD_* variable), then ``feedd export``. The data sets:

- ``stream``: the first ``--lines`` item lines (default 100,000; 0 skips it) of
  bench/stream.py, written as dump files dated by their observation times (moved
  back as a whole if the last one would lie in the future, which feedd would
  date at ingest time instead);
- every shared corpus of ../shared/corpora (``--only NAME``, repeatable, picks;
  ``--no-corpora`` skips them), unpacked once into ``--work`` as
  bench/detection/corpora.py does, optionally cut to its first
  ``--limit-dumps`` dumps.

What ``feedd export`` emits (README, "Export format"): per article its ``id``,
title, first and last seen, revisions (number, text, simhash, first seen) and
sightings (dump, line, revision, kind, seen_at, shown). None of it is random
per run: the id is a uuid5 of the first revision's simhash, the dump's content
hash and the line, and every time is a dump's observation time (its mtime).
So everything is compared, in two passes:

1. decisions: for every sighting (dump, line), the article it went to, named by
   the article's first sighting (so the grouping is compared even where ids
   would differ), its kind and its revision number;
2. the rows: each article's whole export row (id included), matched by that
   first sighting, field by field.

Reported per data set: identical or different, the counts on each side, the
first ``--show`` differing decisions and rows, and both trees' backfill wall times (and their
ratio: a by-product, not a target; one run each, so noisy).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream  # noqa: E402
from common import REPO_ROOT, Report  # noqa: E402

DEFAULT_CORPORA = REPO_ROOT.parent / "shared" / "corpora"
if not DEFAULT_CORPORA.is_dir():  # a checkout with shared/ inside rather than beside it
    DEFAULT_CORPORA = REPO_ROOT / "shared" / "corpora"
DEFAULT_WORK = REPO_ROOT / "bench" / "out" / "corpora"

# Runs `python -m feedd` from the tree in argv[1], whatever is installed.
BOOTSTRAP = """\
import runpy, sys
tree = sys.argv.pop(1)
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path.insert(0, tree)
import feedd
if not feedd.__file__.startswith(tree):
    raise SystemExit(f"feedd came from {feedd.__file__}, not from {tree}")
runpy.run_module("feedd", run_name="__main__", alter_sys=True)
"""

Decisions = dict[tuple[str, int], tuple[tuple[str, int], str, int]]


def _corpora_module() -> ModuleType:
    unique = "bench_detection_corpora"
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(
        unique, REPO_ROOT / "bench" / "detection" / "corpora.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    spec.loader.exec_module(module)
    return module


# --- trees ------------------------------------------------------------------------------


def resolve(rev: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"identical: no commit {rev!r}: {done.stderr.strip()}")
    return done.stdout.strip()


def extract(commit: str, into: Path) -> Path:
    """The tree of commit, from git archive (read-only for the repository)."""
    into.mkdir(parents=True)
    proc = subprocess.Popen(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        tar.extractall(into, filter="data")
    if proc.wait() != 0:
        raise SystemExit(f"identical: git archive {commit} failed ({proc.returncode})")
    if not (into / "feedd" / "__init__.py").is_file():
        raise SystemExit(f"identical: {commit} has no feedd package")
    return into


@dataclass
class Side:
    name: str  # "old" or "new"
    tree: Path

    def feedd(self, args: Sequence[str], cwd: Path, db: Path, **kw: Any) -> Any:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}
        env["PYTHONPATH"] = str(self.tree)
        env["FEEDD_DATABASE_URL"] = f"sqlite:///{db}"
        return subprocess.run(
            [sys.executable, "-c", BOOTSTRAP, str(self.tree), *args],
            cwd=cwd,  # so that no ./config.toml is picked up
            env=env,
            check=False,
            **kw,
        )


@dataclass
class Export:
    rows: list[dict[str, Any]]
    seconds: float  # the backfill's wall time


def run_side(side: Side, dumps: Path, scratch: Path, log: Path) -> Export:
    folder = Path(tempfile.mkdtemp(prefix=f"{side.name}-", dir=scratch))
    db = folder / "feedd.db"
    with open(log, "w", encoding="utf-8") as out:
        started = time.perf_counter()
        done = side.feedd(
            ["-q", "backfill", str(dumps), "--no-feeds"],
            folder,
            db,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"identical: {side.name} backfill exited {done.returncode}; see {log}")
    exported = side.feedd(["export"], folder, db, capture_output=True, text=True)
    if exported.returncode != 0:
        raise SystemExit(f"identical: {side.name} export failed: {exported.stderr[-2000:]}")
    shutil.rmtree(folder, ignore_errors=True)
    rows = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    return Export(rows, seconds)


# --- data sets --------------------------------------------------------------------------


def write_stream(folder: Path, lines: int, seed: int) -> int:
    """The first ``lines`` item lines of bench/stream.py as dump files; their count."""
    folder.mkdir(parents=True)
    written = []
    for dump in stream.dumps(stream.StreamSettings(lines=lines, seed=seed)):
        written.append((stream.write_dump(folder, dump), dump.observed_at))
    last = written[-1][1] if written else None
    now = datetime.now(UTC)
    if last is not None and last > now - timedelta(hours=1):
        shift = last - (now - timedelta(hours=1))
        for path, observed in written:
            stamp = (observed - shift).timestamp()
            os.utime(path, (stamp, stamp))
    return len(written)


def corpus_folder(corpora_dir: Path, work: Path, name: str, limit: int | None, scratch: Path):
    corpora = _corpora_module()
    folder: Path = corpora.unpack(corpora_dir, name, work)
    if limit is None:
        return folder
    cut = scratch / f"{name}.first{limit}"
    cut.mkdir()
    for path in sorted(folder.glob("*.txt"))[:limit]:
        shutil.copy2(path, cut / path.name)  # the mtimes stay
    return cut


# --- comparing --------------------------------------------------------------------------


def _spot(sighting: dict[str, Any]) -> tuple[str, int]:
    return Path(str(sighting["dump"])).name, int(sighting["line"])


def _key(row: dict[str, Any]) -> tuple[str, int]:
    """An article named by its first sighting: the same in both runs if the grouping is."""
    return min(_spot(s) for s in row["sightings"])


def decisions(rows: list[dict[str, Any]]) -> Decisions:
    out: Decisions = {}
    for row in rows:
        key = _key(row)
        for s in row["sightings"]:
            out[_spot(s)] = (key, s["kind"], s["revision"])
    return out


def _paths(old: Any, new: Any, at: str) -> Iterator[str]:
    """Where two JSON values differ, as paths."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if k not in old or k not in new:
                yield f"{at}.{k} only in {'new' if k in new else 'old'}"
            else:
                yield from _paths(old[k], new[k], f"{at}.{k}")
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            yield f"{at}: {len(old)} items old, {len(new)} new"
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            yield from _paths(a, b, f"{at}[{i}]")
    elif old != new:
        yield f"{at}: old {_short(old)}, new {_short(new)}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class Comparison:
    name: str
    old: Export
    new: Export
    decisions_differing: int = 0
    rows_differing: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.decisions_differing == 0 and self.rows_differing == 0


def compare(name: str, old: Export, new: Export, show: int) -> Comparison:
    result = Comparison(name, old, new)
    shown = {"decision": 0, "row": 0}  # up to `show` of each

    def note(kind: str, text: str) -> None:
        if shown[kind] < show:
            shown[kind] += 1
            result.differences.append(f"{name}: {text}")

    d_old, d_new = decisions(old.rows), decisions(new.rows)
    for spot in sorted(set(d_old) | set(d_new)):
        a, b = d_old.get(spot), d_new.get(spot)
        if a != b:
            result.decisions_differing += 1
            note("decision", f"{spot[0]}:{spot[1]}: old {_decision(a)}, new {_decision(b)}")
    r_old = {_key(r): r for r in old.rows}
    r_new = {_key(r): r for r in new.rows}
    for key in sorted(set(r_old) | set(r_new)):
        a, b = r_old.get(key), r_new.get(key)
        if a == b:
            continue
        result.rows_differing += 1
        where = f"article first seen at {key[0]}:{key[1]}"
        if a is None or b is None:
            note("row", f"{where}: only in {'new' if a is None else 'old'}")
            continue
        for path in list(_paths(a, b, "row"))[:3]:
            note("row", f"{where}: {path}")
    return result


def _decision(d: tuple[tuple[str, int], str, int] | None) -> str:
    if d is None:
        return "no sighting"
    (dump, line), kind, revision = d
    return f"{kind}, article first seen at {dump}:{line}, revision {revision}"


# --- main -------------------------------------------------------------------------------


def run(args: argparse.Namespace, out: Path) -> tuple[Report, list[Comparison]]:
    commit = resolve(args.base)
    report = Report(
        "identical",
        params={
            "base": commit[:12],
            "new": "working tree",
            "lines": args.lines,
            "limit_dumps": args.limit_dumps,
        },
    )
    comparisons: list[Comparison] = []
    with tempfile.TemporaryDirectory(prefix="feedd-identical-") as tmp:
        scratch = Path(tmp)
        sides = (Side("old", extract(commit, scratch / "old-tree")), Side("new", REPO_ROOT))
        sets: list[tuple[str, Path]] = []
        if args.lines > 0:
            folder = scratch / "stream"
            made = write_stream(folder, args.lines, args.seed)
            print(f"identical: stream: {args.lines:,} lines, {made:,} dumps", file=sys.stderr)
            sets.append(("stream", folder))
        if not args.no_corpora:
            corpora = _corpora_module()
            available = corpora.corpus_names(args.corpora)
            names = args.only or available
            unknown = sorted(set(names) - set(available))
            if unknown:
                raise SystemExit(f"identical: unknown corpora {unknown}; there are {available}")
            for name in names:
                sets.append(
                    (
                        name,
                        corpus_folder(args.corpora, args.work, name, args.limit_dumps, scratch),
                    )
                )
        for name, folder in sets:
            exports = {}
            for side in sides:
                print(f"identical: {name}: {side.name} ...", file=sys.stderr, flush=True)
                exports[side.name] = run_side(
                    side, folder, scratch, out / f"{name}.{side.name}.log"
                )
            comparisons.append(compare(name, exports["old"], exports["new"], args.show))
    for c in comparisons:
        sightings = sum(len(r["sightings"]) for r in c.new.rows)
        report.figure(f"{c.name}: articles old/new", f"{len(c.old.rows)}/{len(c.new.rows)}")
        report.figure(f"{c.name}: sightings (new)", sightings)
        report.figure(f"{c.name}: sightings decided differently", c.decisions_differing)
        report.figure(f"{c.name}: export rows differing", c.rows_differing)
        report.figure(f"{c.name}: old backfill wall time", c.old.seconds, "s")
        report.figure(f"{c.name}: new backfill wall time", c.new.seconds, "s")
        if c.new.seconds:
            report.figure(f"{c.name}: old / new wall time", c.old.seconds / c.new.seconds, "x")
        report.target(f"{c.name}: identical", c.identical, "identical", c.identical)
        report.notes += c.differences
    return report, comparisons


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the old code's revision (default HEAD)")
    parser.add_argument("--lines", type=int, default=100_000, help="stream item lines (0: none)")
    parser.add_argument("--seed", type=int, default=1, help="the stream's seed")
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="the *.tar.gz")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="unpacked corpora")
    parser.add_argument("--only", action="append", metavar="NAME", help="a corpus (repeatable)")
    parser.add_argument("--no-corpora", action="store_true", help="the stream only")
    parser.add_argument("--limit-dumps", type=int, metavar="N", help="each corpus's first N dumps")
    parser.add_argument("--show", type=int, default=10, help="differences to show per data set")
    parser.add_argument("--out", type=Path, help="keep the feedd logs here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.limit_dumps is not None and args.limit_dumps < 1:
        parser.error("--limit-dumps wants a positive number")
    with tempfile.TemporaryDirectory(prefix="feedd-identical-logs-") as logs:
        out = args.out or Path(logs)
        out.mkdir(parents=True, exist_ok=True)
        report, comparisons = run(args, out)
    if not comparisons:
        report.notes.append("nothing compared: --lines 0 and no corpora")
    report.emit(args.json)
    same = all(c.identical for c in comparisons)
    print(
        f"identical: {'yes' if same else 'NO'}: "
        + ", ".join(f"{c.name} {'same' if c.identical else 'DIFFERENT'}" for c in comparisons),
        file=sys.stderr,
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
