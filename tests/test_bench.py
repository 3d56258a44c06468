"""Smoke tests of the performance benchmarks in bench/: each runs on tiny input and
prints its figures. Nothing here looks at how fast anything was; the figures
belong in docs/performance.md, measured by ``make bench``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support import IN_CI, PG_URL

BENCH = Path(__file__).resolve().parents[1] / "bench"
CORPORA = BENCH.parent.parent / "shared" / "corpora"
if not CORPORA.is_dir():  # a checkout with shared/ inside rather than beside it
    CORPORA = BENCH.parent / "shared" / "corpora"
SMALL_CORPUS = "jbranchaud-til"  # short posts: the cheapest to backfill
needs_seeds = pytest.mark.skipif(
    not (BENCH.parent.parent / "shared" / "seeds").is_dir()
    and not (BENCH.parent / "shared" / "seeds").is_dir(),
    reason="no seed dumps in shared/seeds",
)
pytestmark = needs_seeds


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(script: str, *args: str, timeout: float = 120) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    assert report["figures"], report
    for figure in report["figures"]:
        assert set(figure) == {"name", "value", "unit"}
    for target in report["targets"]:
        assert set(target) == {"name", "value", "unit", "target", "met"}
        assert isinstance(target["met"], bool)
    assert report["machine"]["cpus"]
    return {f["name"]: f["value"] for f in report["figures"]}


def test_stream_is_deterministic_and_shaped_like_a_listing() -> None:
    stream = _load("stream")
    settings = stream.StreamSettings(lines=600, seed=7)
    first = list(stream.dumps(settings))
    again = list(stream.dumps(settings))
    assert [d.data for d in first] == [d.data for d in again]
    assert sum(d.items for d in first) == 600
    assert first[0].new == 14 and all(1 <= d.new <= 2 for d in first[1:])
    other = list(stream.dumps(stream.StreamSettings(lines=600, seed=8)))
    assert [d.data for d in other] != [d.data for d in first]
    texts = {
        line
        for d in first
        for line in d.data.decode("utf-8").split("\n")[3:]
        if line and not stream.is_noise(line)
    }
    # Most lines are repeats: a new dump adds one or two articles to fourteen.
    assert len(texts) < 600 / 4
    assert all(len(t) >= 100 for t in texts)
    assert all(d.data.startswith(b"INCOMING TRANSMISSION\n\nLATEST UPDATES\n") for d in first)


def test_stream_writes_dump_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "stream.py"), "--lines", "100", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(done.stdout)
    files = sorted(tmp_path.glob("*.txt"))
    assert summary["items"] == 100 and len(files) == summary["dumps"]
    assert not list(tmp_path.glob("*.part"))


def test_throughput_runs_and_reports(tmp_path: Path) -> None:
    profile = tmp_path / "ingest.prof"
    report = _run(
        "throughput.py",
        "--lines",
        "600",
        "--slice",
        "300",
        "--baseline-lines",
        "300",
        "--profile",
        str(profile),
    )
    figures = _figures(report)
    assert figures["sqlite lines/s (whole run)"] > 0
    assert figures["baseline lines/s"] > 0
    assert "sqlite / baseline" in figures and "sqlite peak RSS" in figures
    assert "sqlite database size" in figures
    assert {t["name"] for t in report["targets"]} == {
        "sqlite / baseline lines/s",
        "sqlite flat first->last slice",
        "sqlite peak memory with the helper (PSS of both processes)",
    }
    # PSS sampled from /proc: this process's share at least, under its RSS.
    pss = figures["sqlite peak PSS, ingest process and helper together"]
    assert (
        0 < pss <= figures["sqlite peak RSS, ingest process and helper summed (shared pages twice)"]
    )
    assert profile.stat().st_size > 0
    result = report["params"]["results"]["feedd"]["sqlite"]
    assert result["lines"] == 600 and len(result["slices"]) == 2
    # The physical limit, measured over the same 600 lines in the same run.
    limit = report["params"]["results"]["limit"]
    assert limit["python"]["lines"] == limit["sha1sum"]["lines"] == 600
    assert limit["python"]["hashed_lines"] >= 600
    assert figures["limit: hashlib sha1 of every line, lines/s"] > 0
    assert figures["limit: sha1sum (C) lines/s"] > 0
    assert figures["hashlib pass / sqlite lines/s"] > 0
    assert figures["sha1sum / sqlite lines/s"] > 0


@pytest.mark.postgres
def test_throughput_on_postgres() -> None:
    report = _run(
        "throughput.py",
        "--engine",
        "postgres",
        "--lines",
        "300",
        "--baseline-lines",
        "100",
        "--pg-url",
        PG_URL,
    )
    assert _figures(report)["postgres lines/s (whole run)"] > 0


def test_lookup_runs_and_reports() -> None:
    report = _run("lookup.py", "--sizes", "500,2000", "--queries", "30")
    figures = _figures(report)
    for size in ("500", "2,000"):
        for system in ("feedd", "textbook"):
            assert f"{size}: {system} near-dup p99" in figures
            assert f"{size}: {system} miss p50" in figures
    # A near duplicate is found: it is within 3 bits of a stored fingerprint.
    assert figures["2,000: feedd near-dup candidates/query"] >= 1
    assert figures["2,000: textbook near-dup candidates/query"] >= 1


def test_fingerprint_runs_and_values_match_the_reference() -> None:
    report = _run("fingerprint.py", "--items", "40", "--repeat", "1")
    figures = _figures(report)
    assert figures["values different from the reference"] == 0
    assert figures["values identical to the reference"] == 40
    assert figures["fingerprint (new-text path)"] > 0


@pytest.mark.timeout(120)
def test_latency_runs_the_daemon_and_reports() -> None:
    report = _run(
        "latency.py", "--dumps", "2", "--history", "20", "--max-pause", "0.1", timeout=100
    )
    figures = _figures(report)
    assert figures["dumps measured"] == 2 and figures["timeouts"] == 0
    assert 0 < figures["p50"] <= figures["p95"] <= figures["max"]
    assert report["params"]["settle"] == 1.0
    for part in ("wait", "ingest", "publish", "notice"):
        assert figures[f"{part} p50"] <= figures[f"{part} p95"], part
    # Each part is a share of the latency beyond the settle (the 5 ms poll aside).
    assert figures["publish p95"] < figures["max"] * 1000
    [target] = report["targets"]
    assert target["target"] == "<= 1.2 s"


@pytest.mark.timeout(120)
def test_startup_times_the_commands_and_reports() -> None:
    report = _run("startup.py", "--runs", "1", "--dumps", "3", timeout=100)
    figures = _figures(report)
    for command in ("python -c pass", "feedd --help", "feedd --version", "feedd status"):
        assert 0 < figures[f"{command} median"] <= figures[f"{command} p95"], command
    assert "sqlalchemy" not in figures["feedd --help loads"]
    assert "sqlalchemy" in figures["feedd status loads"]
    assert {t["name"] for t in report["targets"]} == {"feedd --help median", "feedd status median"}


@pytest.mark.timeout(180)
def test_web_serves_a_small_history_and_reports(tmp_path: Path) -> None:
    report = _run(
        "web.py", "--articles", "300", "--requests", "5", "--out", str(tmp_path), timeout=170
    )
    figures = _figures(report)
    # A heavy edit may be taken for a new article: a few more than were made.
    assert 300 <= figures["articles"] <= 305
    assert figures["articles with updates"] > 0
    assert figures["build lines/s"] > 0
    for page in ("/", "/articles/<uid>", "/feed.atom (floor)"):
        assert figures[f"{page} errors"] == 0
        assert 0 < figures[f"{page} p50"] <= figures[f"{page} p95"] <= figures[f"{page} max"]
    targets = {t["name"] for t in report["targets"]}
    assert {"/ p95", "/articles/<uid> p95"} <= targets
    # The database is kept for the next run, named by size, seed and schema.
    (kept,) = tmp_path.glob("web-300a-s1-r*.db")
    again = _run("web.py", "--articles", "300", "--requests", "2", "--out", str(tmp_path))
    assert "build lines/s" not in _figures(again) and again["params"]["db"] == str(kept)


def test_search_runs_and_reports(tmp_path: Path) -> None:
    args = ("--articles", "300", "--queries", "10", "--cache-dir", str(tmp_path))
    report = _run("search.py", *args)
    figures = _figures(report)
    assert figures["articles"] == 300 and figures["revisions"] == 315  # 5% edited
    for kind in ("2 chars", "3 chars", "6 chars", "2-char miss", "3-char miss"):
        assert 0 < figures[f"{kind}: feedd p50"] <= figures[f"{kind}: feedd p95"]
        assert figures[f"{kind}: baseline LIKE p95"] > 0
        # The index finds exactly what the plain scan finds.
        assert figures[f"{kind}: results differing from the baseline"] == 0
    assert figures["2 chars: matching articles (median)"] >= 1
    assert figures["2-char miss: matching articles (median)"] == 0
    assert "database built in" in figures
    # The second run finds the database built by the first.
    assert "database built in" not in _figures(_run("search.py", *args))


@pytest.mark.postgres
def test_search_on_postgres() -> None:
    report = _run("search.py", "--articles", "200", "--queries", "5", "--pg-url", PG_URL)
    figures = _figures(report)
    assert figures["articles"] == 200 and report["params"]["engine"] == "postgres"
    for kind in ("2 chars", "3 chars", "6 chars", "2-char miss", "3-char miss"):
        assert figures[f"{kind}: results differing from the baseline"] == 0


def _needs_corpus() -> None:
    if not (CORPORA / f"{SMALL_CORPUS}.tar.gz").is_file() or not (CORPORA / "score.py").is_file():
        message = f"the real corpora are missing: expected {CORPORA}/{SMALL_CORPUS}.tar.gz"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.mark.timeout(180)
def test_corpora_reports_figures_and_targets(tmp_path: Path) -> None:
    _needs_corpus()
    report = _run(
        "detection/corpora.py",
        *("--only", SMALL_CORPUS, "--limit-dumps", "20", "--work", str(tmp_path)),
        *("--systems", "feedd,textbook,minhash"),
        timeout=170,
    )
    assert report["benchmark"] == "corpora"
    figures = _figures(report)
    for system in ("feedd (end to end)", "textbook", "MinHash"):
        assert figures[f"{SMALL_CORPUS}: {system} lines/s"] > 0
    assert figures[f"{SMALL_CORPUS}: feedd / MinHash lines/s"] > 0
    targets = {t["name"] for t in report["targets"]}
    assert {
        f"{SMALL_CORPUS}: feedd / textbook lines/s",  # the old target, kept
        f"{SMALL_CORPUS}: feedd >= 10x textbook lines/s",
        f"{SMALL_CORPUS}: feedd >= 10x MinHash lines/s",
        f"{SMALL_CORPUS}: feedd lost (beyond the README's empty lines) + spurious",
    } <= targets
    assert report["params"]["results"] and (tmp_path / "report-first20.json").is_file()


def test_run_all_knows_the_corpora_and_workers_benchmarks() -> None:
    run_all = _load("run_all")
    for name, script in (("corpora", "detection/corpora.py"), ("workers", "workers.py")):
        path, full, quick = run_all.BENCHMARKS[name]
        assert path == script and (BENCH / path).is_file()
        assert full != quick
    assert "--limit-dumps" in run_all.BENCHMARKS["corpora"][2]


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_workers_on_postgres(pg_server: object) -> None:
    report = _run("workers.py", "--dumps", "12", "--workers", "2", "--pg-url", PG_URL, timeout=230)
    figures = _figures(report)
    assert figures["1 worker: dumps per worker"] == "12"
    assert sum(map(int, figures["2 workers: dumps per worker"].split("/"))) == 12
    assert figures["same article texts"] and figures["same new/repeat/update counts"]
    assert figures["speed-up, 2 workers over 1"] > 0
    assert figures["1 worker: lock samples"] > 0
    same = next(t for t in report["targets"] if t["name"] == "2 workers: same history as 1")
    assert same["met"]
    # Every database it made is gone.
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL)
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM pg_database WHERE datname LIKE 'feedd_bench_%'")
        ).scalar_one()
    engine.dispose()
    assert left == 0


def test_workers_skips_without_postgres() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "workers.py"), "--dumps", "2", "--json"]
        + ["--pg-url", "postgresql+psycopg://postgres@127.0.0.1:1/test"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped" in done.stderr and "unreachable" in done.stderr
    report = json.loads(done.stdout)
    assert report["figures"] == [] and report["notes"][0].startswith("skipped")


@pytest.mark.timeout(240)
def test_identical_against_head(tmp_path: Path) -> None:
    _needs_corpus()
    done = subprocess.run(
        [sys.executable, str(BENCH / "identical.py"), "--lines", "300", "--only", SMALL_CORPUS]
        + ["--limit-dumps", "40", "--work", str(tmp_path / "work"), "--json"],
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    report = json.loads(done.stdout)
    assert done.returncode == 0, (report["notes"], done.stderr[-3000:])
    figures = _figures(report)
    for name in ("stream", SMALL_CORPUS):
        assert figures[f"{name}: sightings decided differently"] == 0
        assert figures[f"{name}: export rows differing"] == 0
    assert figures["stream: sightings (new)"] == 300
    assert [t["met"] for t in report["targets"]] == [True, True]


def test_identical_finds_a_different_decision() -> None:
    identical = _load("identical")

    def row(uid: str, *sightings: tuple[str, int, str]) -> dict[str, Any]:
        return {
            "id": uid,
            "sightings": [
                {"dump": d, "line": n, "kind": k, "revision": 1} for d, n, k in sightings
            ],
        }

    old = [row("a", ("000000_x.txt", 4, "new"), ("000001_y.txt", 4, "repeat"))]
    new = [row("a", ("000000_x.txt", 4, "new")), row("b", ("000001_y.txt", 4, "new"))]
    same = identical.compare("t", identical.Export(old, 1.0), identical.Export(old, 1.0), 5)
    assert same.identical and not same.differences
    found = identical.compare("t", identical.Export(old, 1.0), identical.Export(new, 1.0), 5)
    assert not found.identical and found.decisions_differing == 1
    assert found.differences[0].startswith("t: 000001_y.txt:4: old repeat")
    # The same grouping under other ids is a row difference, not a decision one.
    renamed = [dict(old[0], id="z")]
    ids = identical.compare("t", identical.Export(old, 1.0), identical.Export(renamed, 1.0), 5)
    assert ids.decisions_differing == 0 and ids.rows_differing == 1
    assert "row.id" in ids.differences[0]


def test_run_all_prints_one_table(tmp_path: Path) -> None:
    out = tmp_path / "all.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--quick",
            "--only",
            "fingerprint,http_load",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| benchmark   | figure" in done.stdout
    assert "| fingerprint | identical simhash values" in done.stdout
    assert "requests_per_second" in done.stdout
    saved = json.loads(out.read_text())
    assert set(saved["reports"]) == {"fingerprint", "http_load"}
