"""The "new per day" chart: SqlStore.activity over a really ingested database
(both engines), and the SVG that feedd.web.chart draws from it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from feedd.app import App
from feedd.web import chart
from feedd.web.chart import MAX_BUCKETS, Bucket, aggregate, floor, nice_ticks, render_svg
from tests.support import AppFactory, generate_stream

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)
EVERY = timedelta(hours=5)  # several dumps on most days, and empty hours
DUMPS = 40
LAST = START + (DUMPS - 1) * EVERY


def ingest_stream(app: App) -> None:
    for n, (name, data) in enumerate(generate_stream(DUMPS, seed=11)):
        result = app.ingester.ingest_bytes(name, data, START + n * EVERY)
        assert result.status == "ingested", result


def expected(app: App, unit: str) -> tuple[Counter[datetime], Counter[datetime]]:
    """New articles and updates per bucket, worked out from the full export
    rather than by the query under test."""
    new: Counter[datetime] = Counter()
    updates: Counter[datetime] = Counter()
    for article in app.store.export():
        new[floor(article.first_seen, unit)] += 1
        for revision in article.revisions:
            if revision.number > 1:
                updates[floor(revision.first_seen, unit)] += 1
    return new, updates


@pytest.fixture
def app(make_app: AppFactory) -> App:
    app = make_app()
    ingest_stream(app)
    return app


def bars(svg: str, kind: str) -> dict[str, int]:
    root = ET.fromstring(svg)
    found = root.findall(f".//{SVG}rect[@class='bar {kind}']")
    counts = {r.get("data-bucket", ""): int(r.get("data-count", "-1")) for r in found}
    assert len(counts) == len(found), "one bar of each kind per bucket"
    return counts


# the store ----------------------------------------------------------------


def test_activity_per_day_counts_every_article_and_update(app: App) -> None:
    rows = app.store.activity("day", None, LAST)
    new, updates = expected(app, "day")
    totals = app.store.totals()

    days = [start for start, _, _ in rows]
    assert days[0] == datetime(2026, 3, 1, tzinfo=UTC)
    assert days[-1] == datetime(2026, 3, 9, tzinfo=UTC)
    assert days == [days[0] + timedelta(days=i) for i in range(len(days))]
    assert {start: n for start, n, _ in rows} == {d: new[d] for d in days}
    assert {start: u for start, _, u in rows} == {d: updates[d] for d in days}
    assert sum(n for _, n, _ in rows) == totals.articles
    assert sum(u for _, _, u in rows) == totals.revisions - totals.articles
    assert sum(u for _, _, u in rows) > 0, "the stream edits some articles"


def test_activity_per_hour_fills_empty_hours_with_zeros(app: App) -> None:
    since = LAST - timedelta(hours=47)
    rows = app.store.activity("hour", since, LAST)
    new, updates = expected(app, "hour")

    assert len(rows) == 48
    assert rows[0][0] == floor(since, "hour") and rows[-1][0] == floor(LAST, "hour")
    assert [(n, u) for _, n, u in rows] == [(new[s], updates[s]) for s, _, _ in rows]
    # One dump every 5 hours: most hours saw nothing.
    assert sum(1 for _, n, u in rows if n == u == 0) >= 48 - 10
    assert sum(n for _, n, _ in rows) == sum(
        c for s, c in new.items() if floor(since, "hour") <= s <= LAST
    )


def test_activity_window_is_whole_buckets(app: App) -> None:
    # since late on 2 March still counts what came in early that day.
    rows = app.store.activity("day", datetime(2026, 3, 2, 23, 59, tzinfo=UTC), LAST)
    new, _ = expected(app, "day")
    assert rows[0][0] == datetime(2026, 3, 2, tzinfo=UTC)
    assert rows[0][1] == new[datetime(2026, 3, 2, tzinfo=UTC)]
    # A window after the last ingest: zeros, not nothing.
    later = app.store.activity("day", LAST + timedelta(days=3), LAST + timedelta(days=4))
    assert [(n, u) for _, n, u in later] == [(0, 0), (0, 0)]


def test_activity_of_an_empty_database(make_app: AppFactory) -> None:
    store = make_app().store
    assert store.activity("day", None, LAST) == []
    rows = store.activity("hour", LAST - timedelta(hours=47), LAST)
    assert len(rows) == 48 and all(n == u == 0 for _, n, u in rows)
    with pytest.raises(ValueError, match="unit"):
        store.activity("week", None, LAST)


# the SVG over the database --------------------------------------------------


def test_svg_counts_equal_the_database(app: App) -> None:
    for unit, since, key in (
        ("day", LAST - timedelta(days=89), "%Y-%m-%d"),
        ("day", None, "%Y-%m-%d"),
        ("hour", LAST - timedelta(hours=47), "%Y-%m-%dT%H"),
    ):
        rows = app.store.activity(unit, since, LAST)
        svg = render_svg([Bucket(*r) for r in rows], id=f"chart-{unit}", title="t", unit=unit)
        new, updates = expected(app, unit)
        assert bars(svg, "new") == {s.strftime(key): new[s] for s, _, _ in rows}
        assert bars(svg, "update") == {s.strftime(key): updates[s] for s, _, _ in rows}
        root = ET.fromstring(svg)
        assert root.get("class") == "chart" and root.get("id") == f"chart-{unit}"
        assert root.get("data-unit") == unit


# the SVG alone -----------------------------------------------------------------


def days(count: int, start: datetime = START) -> list[Bucket]:
    first = floor(start, "day")
    return [Bucket(first + timedelta(days=i), i % 5, i % 3) for i in range(count)]


def test_svg_contract_and_accessibility() -> None:
    svg = render_svg(days(3), id="c90", title="New per day", unit="day")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    labelled = root.get("aria-labelledby", "").split()
    ids = {e.get("id"): e for e in root.iter() if e.get("id")}
    assert labelled and all(i in ids for i in labelled)
    assert ids[labelled[0]].tag == f"{SVG}title" and ids[labelled[0]].text == "New per day"
    for rect in root.iter(f"{SVG}rect"):
        if "bar" in rect.get("class", "").split():
            tip = rect.find(f"{SVG}title")
            assert tip is not None and rect.get("data-count", "") in (tip.text or "")
    # The page's CSP blocks inline style and script.
    assert "style=" not in svg and "<script" not in svg


def test_svg_escapes_every_text() -> None:
    hostile = "</title><script>alert(1)</script>&\"'"
    svg = render_svg(days(2), id='x" onload="alert(1)', title=hostile, unit="day")
    root = ET.fromstring(svg)
    assert root.get("id") == 'x" onload="alert(1)'
    assert root.find(f"{SVG}title").text == hostile  # type: ignore[union-attr]
    assert not list(root.iter(f"{SVG}script"))
    assert "onload" not in root.attrib


def test_svg_is_deterministic_and_scaled_to_the_busiest_bucket() -> None:
    data = days(90)
    svg = render_svg(data, id="a", title="t", unit="day")
    assert svg == render_svg(list(data), id="a", title="t", unit="day")
    root = ET.fromstring(svg)
    heights = [
        float(r.get("height", "0"))
        + sum(
            float(u.get("height", "0"))
            for u in root.iter(f"{SVG}rect")
            if u.get("class") == "bar update" and u.get("data-bucket") == r.get("data-bucket")
        )
        for r in root.iter(f"{SVG}rect")
        if r.get("class") == "bar new"
    ]
    # The busiest bucket's stack reaches busiest / top tick of the plot's height.
    busiest = max(b.total for b in data)
    plot = chart.HEIGHT - chart.TOP - chart.BOTTOM
    assert max(heights) == pytest.approx(busiest / nice_ticks(busiest)[-1] * plot, abs=0.02)
    quiet = next(i for i, b in enumerate(data) if b.total == 0)
    assert heights[quiet] == 0


def test_all_time_with_many_days_is_summed_into_weeks_then_months() -> None:
    many = days(400, datetime(2025, 1, 1, tzinfo=UTC))  # a Wednesday
    svg = render_svg(many, id="all", title="t", unit="day")
    root = ET.fromstring(svg)
    assert root.get("data-unit") == "week"
    new = bars(svg, "new")
    assert len(new) <= MAX_BUCKETS
    assert sum(new.values()) == sum(b.new for b in many)
    assert sum(bars(svg, "update").values()) == sum(b.updates for b in many)
    # data-bucket is the week's start, a Monday, even before the first day.
    assert min(new) == "2024-12-30"
    assert all(datetime.fromisoformat(k).weekday() == 0 for k in new)

    years = days(365 * 4)
    shown, unit = aggregate(years, "day")
    assert unit == "month" and len(shown) == 48
    assert all(b.start.day == 1 for b in shown)
    assert sum(b.total for b in shown) == sum(b.total for b in years)
    # Each month holds its own days, not the weeks that began in it.
    march = sum(b.total for b in years if (b.start.year, b.start.month) == (2026, 3))
    assert shown[0].start == datetime(2026, 3, 1, tzinfo=UTC) and shown[0].total == march
    assert len(render_svg(years, id="y", title="t", unit="day")) < 40_000


def test_hours_keep_their_hour_in_data_bucket() -> None:
    first = floor(START, "hour")
    hours = [Bucket(first + timedelta(hours=i), 1, 0) for i in range(48)]
    keys = list(bars(render_svg(hours, id="h", title="t", unit="hour"), "new"))
    assert keys[0] == "2026-03-01T00" and keys[-1] == "2026-03-02T23"


def test_empty_chart_is_still_a_chart() -> None:
    svg = render_svg([], id="e", title="t", unit="day")
    root = ET.fromstring(svg)
    assert root.get("class") == "chart" and bars(svg, "new") == {}
    with pytest.raises(ValueError, match="unit"):
        render_svg([], id="e", title="t", unit="fortnight")


@pytest.mark.parametrize("top", [0, 1, 3, 4, 5, 7, 10, 11, 99, 101, 4321])
def test_nice_ticks(top: int) -> None:
    ticks = nice_ticks(top)
    assert ticks[0] == 0 and ticks[-1] >= max(top, 1)
    assert len(ticks) - 1 <= 4
    step = ticks[1]
    assert all(b - a == step for a, b in zip(ticks, ticks[1:], strict=False))
    assert str(step).strip("0") in ("1", "2", "5")
