"""/metrics: feedd's numbers in the Prometheus text format (prometheus_client).

Two sources:

- the database, read at scrape time by ``StoreCollector`` in one query over
  the dumps table: ingest counters by kind, dumps ingested and rejected, the
  ingest latency histogram (from dumps.duration_ms) and the time of the last
  ingest. So ``feedd serve`` reports what a ``feedd run`` in another process
  (or on another host) ingested, and a restart loses nothing;
- this process: feed writes and HTTP requests, counted as they happen.

Each ``Metrics`` owns its registry, never prometheus_client's global one:
several apps live in one test process, and the global registry would also
export the process and GC collectors of whichever app imported it first.

Counters read from the database go down when rows are deleted (``feedd
rejected --clear``); Prometheus takes that for a counter reset, which
``rate()`` and ``increase()`` handle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from feedd.errors import StorageError
from feedd.store.sql import IngestStats, SqlStore

__all__ = [
    "FULL_SCAN_EVERY",
    "INGEST_BUCKETS",
    "MAX_ROUTES",
    "OTHER_ROUTE",
    "Metrics",
    "StoreCollector",
]

log = logging.getLogger(__name__)

# Seconds. A seed dump ingests in 5-50 ms; a 400k-line backfill dump in tens
# of seconds: the buckets span both.
INGEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Distinct route labels kept; later ones count under OTHER_ROUTE. The app has
# a dozen routes: the cap only matters when a raw path is passed by mistake,
# and then it keeps Prometheus from a new time series per article.
MAX_ROUTES = 64
# How long the collector's running sums of the dumps table are trusted before
# it sums the whole table again (a safety net; see StoreCollector).
FULL_SCAN_EVERY = timedelta(hours=1)
OTHER_ROUTE = "other"


def utcnow() -> datetime:
    return datetime.now(UTC)


class StoreCollector(Collector):
    """The database's part of /metrics, read in one query at each scrape.

    The histogram is bucketed in SQL too (one SUM(CASE) per bucket), so it
    needs no observations in this process. Summing every dumps row costs
    ~200 ms at 100k dumps, so the collector keeps the sums and each scrape
    adds the rows after the last one summed (~2 ms). Rows are only appended,
    except for deleted rejection records: when the table holds fewer rows
    than summed plus added, or the sums are older than ``full_every``, it sums
    the whole table again. An unreachable database is no failed scrape:
    ``feedd_database_up`` says 0 and the rest still shows.
    """

    def __init__(
        self,
        store: SqlStore,
        *,
        pending: Callable[[], int] | None = None,
        now: Callable[[], datetime] = utcnow,
        buckets: Sequence[float] = INGEST_BUCKETS,
        full_every: timedelta = FULL_SCAN_EVERY,
    ) -> None:
        self.store = store
        self.pending = pending
        self.now = now
        self.buckets = tuple(buckets)
        self.full_every = full_every
        self._bounds_ms = [round(b * 1000) for b in self.buckets]
        self._sums: IngestStats | None = None
        self._summed_at: datetime | None = None
        self._lock = threading.Lock()  # two scrapes at once must not add one delta twice

    def stats(self) -> IngestStats:
        """The sums over the whole dumps table, as of now. Raises StorageError."""
        with self._lock:
            now = self.now()
            sums = self._sums
            if sums is not None and self._summed_at is not None:
                if now - self._summed_at < self.full_every:
                    delta = self.store.ingest_stats(self._bounds_ms, after_id=sums.last_id)
                    if sums.rows + delta.rows == delta.table_rows:
                        self._sums = add(sums, delta)
                        return self._sums
            self._sums = self.store.ingest_stats(self._bounds_ms)
            self._summed_at = now
            return self._sums

    def describe(self) -> Iterable[Metric]:
        # No query at registration time: the families are made at scrape time.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "feedd_database_up", "Whether the last scrape could read the database (1) or not (0)."
        )
        try:
            stats = self.stats()
        except StorageError as exc:
            log.warning("metrics: cannot read the database: %s", exc)
            up.add_metric([], 0)
            yield up
            yield from self._pending()
            return
        up.add_metric([], 1)
        yield up

        kinds = CounterMetricFamily(
            "feedd_ingest_items",
            "Item lines of ingested dumps, by decision (new, repeat, update).",
            labels=["kind"],
        )
        for kind in ("new", "repeat", "update"):
            kinds.add_metric([kind], stats.kinds[kind])
        yield kinds

        dumps = CounterMetricFamily(
            "feedd_dumps", "Dumps recorded, by status (ingested, rejected).", labels=["status"]
        )
        dumps.add_metric(["ingested"], stats.ingested)
        dumps.add_metric(["rejected"], stats.rejected)
        yield dumps

        latency = HistogramMetricFamily(
            "feedd_ingest_duration_seconds",
            "Time to ingest one dump (dumps.duration_ms), over the ingested dumps.",
        )
        latency.add_metric(
            [],
            [(_le(b), n) for b, n in zip(self.buckets, stats.at_most, strict=True)]
            + [("+Inf", stats.ingested)],
            sum_value=stats.duration_ms / 1000,
        )
        yield latency

        last = stats.last_ingested_at
        stamp = GaugeMetricFamily(
            "feedd_last_ingest_timestamp_seconds",
            "When the newest ingested dump was ingested (Unix time); absent before the first.",
        )
        age = GaugeMetricFamily(
            "feedd_last_ingest_age_seconds",
            "Seconds since the newest ingested dump was ingested; absent before the first.",
        )
        if last is not None:
            stamp.add_metric([], last.timestamp())
            age.add_metric([], max(0.0, (self.now() - last).total_seconds()))
        yield stamp
        yield age
        yield from self._pending()

    def _pending(self) -> Iterator[Metric]:
        if self.pending is None:
            return
        gauge = GaugeMetricFamily(
            "feedd_pending_dumps", "Files in the watch folder not ingested yet."
        )
        try:
            gauge.add_metric([], self.pending())
        except (OSError, StorageError) as exc:
            log.warning("metrics: cannot count the pending dumps: %s", exc)
            return
        yield gauge


def add(sums: IngestStats, delta: IngestStats) -> IngestStats:
    """``sums`` with the later rows of ``delta`` added."""
    lasts = [t for t in (sums.last_ingested_at, delta.last_ingested_at) if t is not None]
    return IngestStats(
        ingested=sums.ingested + delta.ingested,
        rejected=sums.rejected + delta.rejected,
        kinds={k: sums.kinds[k] + delta.kinds[k] for k in sums.kinds},
        duration_ms=sums.duration_ms + delta.duration_ms,
        at_most=tuple(a + b for a, b in zip(sums.at_most, delta.at_most, strict=True)),
        last_ingested_at=max(lasts, default=None),
        rows=sums.rows + delta.rows,
        last_id=delta.last_id,
        table_rows=delta.table_rows,
    )


def _le(bound: float) -> str:
    # prometheus_client's own spelling of bucket bounds, so that ours and an
    # in-process Histogram's read alike ("0.005", "1.0").
    return repr(float(bound))


class Metrics:
    """/metrics for one app: the database's numbers and this process's."""

    def __init__(
        self,
        store: SqlStore,
        *,
        pending: Callable[[], int] | None = None,
        now: Callable[[], datetime] = utcnow,
        routes: Iterable[str] | None = None,
        max_routes: int = MAX_ROUTES,
    ) -> None:
        """``pending`` counts the dumps waiting in the watch folder (App.pending).
        ``routes``, when given, are the only route labels kept; any other
        counts as OTHER_ROUTE. Without it the first ``max_routes`` distinct
        routes are kept."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.collector = StoreCollector(store, pending=pending, now=now)
        self.registry.register(self.collector)
        self._feed_writes = Counter(
            "feedd_feed_writes",
            "Feed publications, by whether any feed file's bytes changed.",
            ["changed"],
            registry=self.registry,
        )
        self._requests = Counter(
            "feedd_http_requests",
            "HTTP requests, by route template and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self._request_seconds = Histogram(
            "feedd_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self._allowed = None if routes is None else frozenset(routes)
        self._max_routes = max_routes
        self._seen: set[str] = set()
        self._lock = threading.Lock()  # waitress answers from several threads

    def observe_feed_write(self, changed: bool) -> None:
        """One publication of the feeds; ``changed``: some file was rewritten."""
        self._feed_writes.labels(changed="true" if changed else "false").inc()

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """One answered request. ``route`` is the route's template
        ("/articles/{uid}"), never the raw path: each label value is a time
        series kept forever by Prometheus."""
        route = self._route(route)
        self._requests.labels(route=route, status=_status(status)).inc()
        self._request_seconds.labels(route=route).observe(max(0.0, seconds))

    def _route(self, route: str) -> str:
        if self._allowed is not None:
            return route if route in self._allowed else OTHER_ROUTE
        with self._lock:
            if route in self._seen:
                return route
            if len(self._seen) < self._max_routes:
                self._seen.add(route)
                return route
        return OTHER_ROUTE

    def render(self) -> tuple[bytes, str]:
        """The scrape's body and its Content-Type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _status(status: int) -> str:
    # Anything outside HTTP's range would be a bug upstream; one label for it
    # keeps the cardinality bounded all the same.
    return str(status) if 100 <= status <= 599 else "invalid"
