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

from tests.support import PG_URL

BENCH = Path(__file__).resolve().parents[1] / "bench"
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
        "sqlite peak RSS",
    }
    assert profile.stat().st_size > 0
    result = report["params"]["results"]["feedd"]["sqlite"]
    assert result["lines"] == 600 and len(result["slices"]) == 2


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
