"""/metrics: scrape after real ingests (both engines) and read the text back
with prometheus_client's own parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from feedd.app import App
from feedd.store.engine import make_engine
from feedd.store.sql import SqlStore
from feedd.web.metrics import INGEST_BUCKETS, MAX_ROUTES, OTHER_ROUTE, Metrics
from tests.support import AppFactory, dump_bytes, seed_files

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def scrape(metrics: Metrics) -> dict[str, list[Any]]:
    """Samples by metric family name (counters without their _total)."""
    body, content_type = metrics.render()
    assert content_type == CONTENT_TYPE_LATEST and content_type.startswith("text/plain;")
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}


def value(samples: list[Any], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return float(found[0])


@pytest.fixture
def app(make_app: AppFactory) -> App:
    app = make_app()
    results = app.ingester.ingest_paths(seed_files())
    assert [r.status for r in results] == ["ingested"] * len(results)
    rejected = app.ingester.ingest_bytes("999_bad.txt", b"\xff\xfe not a dump", NOW)
    assert rejected.status == "rejected"
    return app


def test_ingest_counters_equal_the_database(app: App) -> None:
    metrics = Metrics(app.store, pending=lambda: 3, now=lambda: NOW)
    families = scrape(metrics)
    totals = app.store.totals()
    assert totals.dumps == len(seed_files()) and totals.rejected == 1

    kinds = families["feedd_ingest_items"]
    for kind in ("new", "repeat", "update"):
        assert value(kinds, "feedd_ingest_items_total", kind=kind) == totals.kinds[kind]
    assert totals.kinds["new"] == totals.articles > 0

    dumps = families["feedd_dumps"]
    assert value(dumps, "feedd_dumps_total", status="ingested") == totals.dumps
    assert value(dumps, "feedd_dumps_total", status="rejected") == totals.rejected
    assert value(families["feedd_database_up"], "feedd_database_up") == 1
    assert value(families["feedd_pending_dumps"], "feedd_pending_dumps") == 3


def test_ingest_latency_histogram_holds_every_ingested_dump(app: App) -> None:
    families = scrape(Metrics(app.store, now=lambda: NOW))
    latency = families["feedd_ingest_duration_seconds"]
    ingested = app.store.dumps(status="ingested")
    count = value(latency, "feedd_ingest_duration_seconds_count")
    assert count == len(ingested) == app.store.totals().dumps
    total_ms = sum(d.duration_ms for d in ingested)
    assert value(latency, "feedd_ingest_duration_seconds_sum") == pytest.approx(total_ms / 1000)

    buckets = [(s.labels["le"], s.value) for s in latency if s.name.endswith("_bucket")]
    assert [le for le, _ in buckets] == [repr(b) for b in INGEST_BUCKETS] + ["+Inf"]
    assert buckets[-1][1] == count
    assert [v for _, v in buckets] == sorted(v for _, v in buckets), "cumulative"
    for (le, got), bound in zip(buckets, INGEST_BUCKETS, strict=False):
        assert got == sum(d.duration_ms <= round(bound * 1000) for d in ingested), le


def test_age_of_the_last_ingest(app: App, make_app: AppFactory) -> None:
    families = scrape(Metrics(app.store, now=lambda: NOW))
    last = app.store.dumps(status="ingested", limit=1)[0].ingested_at
    age = value(families["feedd_last_ingest_age_seconds"], "feedd_last_ingest_age_seconds")
    assert age == pytest.approx(max(0.0, (NOW - last).total_seconds()))
    later = scrape(Metrics(app.store, now=lambda: last + timedelta(seconds=90)))
    assert value(
        later["feedd_last_ingest_age_seconds"], "feedd_last_ingest_age_seconds"
    ) == pytest.approx(90)
    stamp = later["feedd_last_ingest_timestamp_seconds"]
    assert value(stamp, "feedd_last_ingest_timestamp_seconds") == pytest.approx(last.timestamp())


def test_an_empty_database_scrapes_zeros(make_app: AppFactory) -> None:
    families = scrape(Metrics(make_app().store, now=lambda: NOW))
    assert value(families["feedd_dumps"], "feedd_dumps_total", status="ingested") == 0
    latency = families["feedd_ingest_duration_seconds"]
    assert value(latency, "feedd_ingest_duration_seconds_count") == 0
    # No ingest yet: no age at all rather than a made-up one.
    assert families["feedd_last_ingest_age_seconds"] == []


def test_another_process_ingesting_shows_at_the_next_scrape(app: App) -> None:
    # As `feedd serve` beside `feedd run`: nothing is counted in this process.
    metrics = Metrics(app.store, now=lambda: NOW)
    before = value(scrape(metrics)["feedd_dumps"], "feedd_dumps_total", status="ingested")
    result = app.ingester.ingest_bytes("500_more.txt", dump_bytes("一条全新的文章。" * 8), NOW)
    assert result.status == "ingested" and result.new == 1
    families = scrape(metrics)
    assert value(families["feedd_dumps"], "feedd_dumps_total", status="ingested") == before + 1
    assert (
        value(families["feedd_ingest_items"], "feedd_ingest_items_total", kind="new")
        == app.store.totals().kinds["new"]
    )


def test_running_sums_equal_a_full_scan_through_appends_and_deletions(app: App) -> None:
    metrics = Metrics(app.store, now=lambda: NOW)
    bounds = [round(b * 1000) for b in INGEST_BUCKETS]

    def full() -> Any:
        return app.store.ingest_stats(bounds)

    assert metrics.collector.stats() == full()
    for n in range(3):
        text = f"第{n}条追加的文章，用来检查增量求和是否与全表求和一致。" * 4
        app.ingester.ingest_bytes(f"6{n:02d}_more.txt", dump_bytes(text), NOW)
        app.ingester.ingest_bytes(f"7{n:02d}_bad.txt", f"bad {n}".encode(), NOW)
        assert metrics.collector.stats() == full()
    before = metrics.collector.stats()
    assert before.rejected == 4
    # Deleted rows are not "after" anything: the row count tells, and it sums again.
    assert app.store.clear_rejected() == 4
    after = metrics.collector.stats()
    assert after == full() and after.rejected == 0 and after.ingested == before.ingested
    families = scrape(metrics)
    assert value(families["feedd_dumps"], "feedd_dumps_total", status="rejected") == 0


def test_feed_writes_and_requests(app: App) -> None:
    metrics = Metrics(app.store)
    metrics.observe_feed_write(True)
    metrics.observe_feed_write(False)
    metrics.observe_feed_write(False)
    metrics.observe_request("/articles/{uid}", 200, 0.004)
    metrics.observe_request("/articles/{uid}", 404, 0.001)
    metrics.observe_request("/feed.rss", 304, 0.0005)
    families = scrape(metrics)
    writes = families["feedd_feed_writes"]
    assert value(writes, "feedd_feed_writes_total", changed="true") == 1
    assert value(writes, "feedd_feed_writes_total", changed="false") == 2
    requests = families["feedd_http_requests"]
    route = "/articles/{uid}"
    assert value(requests, "feedd_http_requests_total", route=route, status="200") == 1
    assert value(requests, "feedd_http_requests_total", route=route, status="404") == 1
    seconds = families["feedd_http_request_duration_seconds"]
    assert value(seconds, "feedd_http_request_duration_seconds_count", route=route) == 2


def test_the_apps_publishes_reach_its_web_metrics(app: App) -> None:
    # As in `feedd run` with server.listen: the daemon publishes, /metrics counts.
    web = app.wsgi()
    app.publish()  # writes the feeds
    app.publish()  # nothing changed
    writes = scrape(web.metrics)["feedd_feed_writes"]
    assert value(writes, "feedd_feed_writes_total", changed="true") == 1
    assert value(writes, "feedd_feed_writes_total", changed="false") == 1


def test_request_labels_stay_bounded_with_raw_paths(app: App) -> None:
    metrics = Metrics(app.store)
    for n in range(1000):
        metrics.observe_request(f"/articles/{n:08x}-raw-path", 200, 0.001)
    requests = scrape(metrics)["feedd_http_requests"]
    routes = {s.labels["route"] for s in requests if s.name == "feedd_http_requests_total"}
    assert len(routes) == MAX_ROUTES + 1 and OTHER_ROUTE in routes
    assert sum(s.value for s in requests if s.name == "feedd_http_requests_total") == 1000
    assert (
        value(requests, "feedd_http_requests_total", route=OTHER_ROUTE, status="200")
        == 1000 - MAX_ROUTES
    )

    # With the app's route table, anything else is "other" from the start.
    strict = Metrics(app.store, routes=["/", "/articles/{uid}"])
    for n in range(1000):
        strict.observe_request(f"/{n}", 404, 0.001)
    strict.observe_request("/articles/{uid}", 200, 0.001)
    strict.observe_request("/", 999, 0.001)
    requests = scrape(strict)["feedd_http_requests"]
    labels = {
        (s.labels["route"], s.labels["status"])
        for s in requests
        if s.name == "feedd_http_requests_total"
    }
    assert labels == {(OTHER_ROUTE, "404"), ("/articles/{uid}", "200"), ("/", "invalid")}


def test_each_metrics_owns_its_registry(app: App) -> None:
    first, second = Metrics(app.store), Metrics(app.store)  # no "duplicated timeseries"
    first.observe_feed_write(True)
    assert scrape(second)["feedd_feed_writes"] == []
    assert value(scrape(first)["feedd_feed_writes"], "feedd_feed_writes_total", changed="true")
    # Nothing of prometheus_client's global registry (process, GC, platform).
    assert not any(name.startswith(("process_", "python_")) for name in scrape(first))


def test_an_unreachable_database_still_scrapes(tmp_path: Path) -> None:
    store = SqlStore(make_engine(f"sqlite:///{tmp_path / 'missing' / 'feedd.db'}"))
    try:
        metrics = Metrics(store, pending=lambda: 2)
        metrics.observe_feed_write(True)
        families = scrape(metrics)
    finally:
        store.close()
    assert value(families["feedd_database_up"], "feedd_database_up") == 0
    assert value(families["feedd_pending_dumps"], "feedd_pending_dumps") == 2
    assert value(families["feedd_feed_writes"], "feedd_feed_writes_total", changed="true") == 1
    assert "feedd_dumps" not in families
