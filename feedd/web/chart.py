"""The "new per day" chart: activity buckets drawn as an SVG bar chart.

Pure functions over plain data: no database, no clock. The page embeds the
SVG inline, so the output obeys its CSP: no script, no ``style`` attributes
(presentation attributes such as ``fill=`` instead, which a stylesheet may
still override through the class names). Every text is escaped.

The DOM contract that the browser tests read, per bucket::

    <rect class="bar new" data-bucket="2026-03-04" data-count="5" ...>
    <rect class="bar update" data-bucket="2026-03-04" data-count="1" ...>

``data-bucket`` is the bucket's start in UTC, ``YYYY-MM-DD`` (days, weeks and
months: the first day) or ``YYYY-MM-DDTHH`` (hours). Every bucket has both
rects, a zero count included; the ``<svg>``'s ``data-unit`` says which unit
the bars ended up in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

__all__ = ["MAX_BUCKETS", "UNITS", "Bucket", "aggregate", "render_svg"]

# More bars than this get too thin to see or hover on the chart's 720 units of
# width (under 6 each): coarser units take over, day -> week -> month.
MAX_BUCKETS = 120
UNITS = ("hour", "day", "week", "month")

# Geometry, in SVG user units (the viewBox; CSS may scale the whole).
WIDTH = 720
HEIGHT = 220
LEFT = 44  # room for the count labels
RIGHT = 8
TOP = 28  # room for the legend
BOTTOM = 24  # room for the date labels
X_LABELS = 6  # at most, so that dates never overlap
Y_TICKS = 4  # at most, above zero
BAR_FILL = 0.8  # of a bucket's slot; the rest is the gap between bars
COLOURS = {"new": "#2563eb", "update": "#f59e0b"}
AXIS_COLOUR = "#6b7280"
GRID_COLOUR = "#e5e7eb"


@dataclass(frozen=True)
class Bucket:
    """New articles and updates in the bucket that starts at ``start`` (UTC)."""

    start: datetime
    new: int
    updates: int

    @property
    def total(self) -> int:
        return self.new + self.updates


def floor(value: datetime, unit: str) -> datetime:
    """The start of the ``unit`` holding ``value``; weeks start on Monday (ISO)."""
    start = value.replace(minute=0, second=0, microsecond=0)
    if unit == "hour":
        return start
    start = start.replace(hour=0)
    if unit == "day":
        return start
    if unit == "week":
        return start - timedelta(days=start.weekday())
    if unit == "month":
        return start.replace(day=1)
    raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")


def aggregate(
    buckets: Sequence[Bucket], unit: str, *, max_buckets: int = MAX_BUCKETS
) -> tuple[list[Bucket], str]:
    """The buckets in the finest unit, ``unit`` or coarser, that needs at most
    ``max_buckets`` of them (or months, the coarsest), and that unit.

    Sums are kept: each coarse bucket holds the sum of the fine ones in it, so
    the chart's totals always equal the database's.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")
    out = list(buckets)
    for coarser in UNITS[UNITS.index(unit) + 1 :]:
        if len(out) <= max_buckets:
            break
        # From the given buckets, never from weeks: a week can straddle two months.
        out, unit = _regroup(buckets, coarser), coarser
    return out, unit


def _regroup(buckets: Sequence[Bucket], unit: str) -> list[Bucket]:
    sums: dict[datetime, list[int]] = {}
    for b in buckets:
        got = sums.setdefault(floor(b.start, unit), [0, 0])
        got[0] += b.new
        got[1] += b.updates
    return [Bucket(start, new, updates) for start, (new, updates) in sorted(sums.items())]


def bucket_key(start: datetime, unit: str) -> str:
    """The ``data-bucket`` value: the start date, with the hour for hours."""
    return start.strftime("%Y-%m-%dT%H" if unit == "hour" else "%Y-%m-%d")


def bucket_label(start: datetime, unit: str) -> str:
    """How a bucket is named in its tooltip."""
    if unit == "hour":
        return start.strftime("%Y-%m-%d %H:00 UTC")
    if unit == "week":
        return "week of " + start.strftime("%Y-%m-%d")
    if unit == "month":
        return start.strftime("%Y-%m")
    return start.strftime("%Y-%m-%d")


def _axis_label(start: datetime, unit: str) -> str:
    if unit == "hour":
        return start.strftime("%m-%d %H:00")
    if unit == "month":
        return start.strftime("%Y-%m")
    return start.strftime("%Y-%m-%d")


def nice_ticks(top: int, most: int = Y_TICKS) -> list[int]:
    """Round tick values from 0 up to at least ``top``: steps of 1, 2 or 5 times
    a power of ten, at most ``most`` of them above zero."""
    if top <= 0:
        return [0, 1]
    step = 1
    while True:
        for factor in (1, 2, 5):
            candidate = step * factor
            if math.ceil(top / candidate) <= most:
                return [candidate * k for k in range(math.ceil(top / candidate) + 1)]
        step *= 10


def _num(value: float) -> str:
    # Two decimals are finer than a screen pixel; fixed formatting keeps the
    # output byte-identical for the same data.
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _attrs(**values: object) -> str:
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(str(v))}"' for name, v in values.items()
    )


def render_svg(buckets: Sequence[Bucket], *, id: str, title: str, unit: str) -> str:
    """The chart as an ``<svg class="chart">`` element, stacked bars (new below,
    updates above) scaled to the busiest bucket. ``unit`` is the buckets' unit
    ("hour", "day", "week" or "month"); more than MAX_BUCKETS are summed into
    weeks or months first. Same input, same bytes. Raises ValueError for an
    unknown unit.
    """
    shown, unit = aggregate(buckets, unit)
    title_id, desc_id = f"{id}-title", f"{id}-desc"
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    ticks = nice_ticks(max((b.total for b in shown), default=0))
    scale = plot_h / ticks[-1]

    parts = [
        "<svg"
        + _attrs(
            xmlns="http://www.w3.org/2000/svg",
            class_="chart",
            id=id,
            role="img",
            aria_labelledby=f"{title_id} {desc_id}",
            viewBox=f"0 0 {WIDTH} {HEIGHT}",
            width=WIDTH,
            height=HEIGHT,
            data_unit=unit,
            font_family="sans-serif",
            font_size=10,
        )
        + ">",
        f"<title{_attrs(id=title_id)}>{escape(title)}</title>",
        f"<desc{_attrs(id=desc_id)}>{escape(_summary(shown, unit))}</desc>",
    ]
    parts.append('<g class="legend">')
    x = LEFT
    for kind, label in (("new", "new articles"), ("update", "updates")):
        parts.append(
            f"<rect{_attrs(class_=f'swatch {kind}', x=x, y=8, width=10, height=10)}"
            f"{_attrs(fill=COLOURS[kind])}/>"
            f"<text{_attrs(x=x + 14, y=17)}>{escape(label)}</text>"
        )
        x += 110
    parts.append("</g>")

    parts.append('<g class="axis y">')
    for tick in ticks:
        y = _num(base - tick * scale)
        colour = AXIS_COLOUR if tick == 0 else GRID_COLOUR
        parts.append(
            f"<line{_attrs(x1=LEFT, x2=WIDTH - RIGHT, y1=y, y2=y, stroke=colour)}/>"
            f"<text{_attrs(x=LEFT - 4, y=y, text_anchor='end', dominant_baseline='middle')}>"
            f"{tick}</text>"
        )
    parts.append("</g>")

    if not shown:
        middle = _attrs(x=_num(LEFT + plot_w / 2), y=_num(TOP + plot_h / 2), text_anchor="middle")
        parts.append(f"<text{middle}>no articles yet</text></svg>")
        return "".join(parts)

    slot = plot_w / len(shown)
    bar_w = _num(max(slot * BAR_FILL, 1.0))
    every = math.ceil(len(shown) / X_LABELS)
    parts.append('<g class="axis x">')
    for i in range(0, len(shown), every):
        cx = _num(LEFT + (i + 0.5) * slot)
        parts.append(
            f"<text{_attrs(x=cx, y=HEIGHT - 8, text_anchor='middle')}>"
            f"{escape(_axis_label(shown[i].start, unit))}</text>"
        )
    parts.append("</g>")

    parts.append('<g class="bars">')
    for i, b in enumerate(shown):
        key = bucket_key(b.start, unit)
        name = bucket_label(b.start, unit)
        x_text = _num(LEFT + i * slot + (slot - float(bar_w)) / 2)
        new_h = b.new * scale
        upd_h = b.updates * scale
        for kind, count, top, height, what in (
            ("new", b.new, base - new_h, new_h, "new"),
            ("update", b.updates, base - new_h - upd_h, upd_h, "updates"),
        ):
            parts.append(
                f"<rect{_attrs(class_=f'bar {kind}', data_bucket=key, data_count=count)}"
                f"{_attrs(x=x_text, y=_num(top), width=bar_w, height=_num(height))}"
                f"{_attrs(fill=COLOURS[kind])}>"
                f"<title>{escape(f'{name}: {count} {what}')}</title></rect>"
            )
    parts.append("</g></svg>")
    return "".join(parts)


def _summary(buckets: Sequence[Bucket], unit: str) -> str:
    if not buckets:
        return "No articles yet."
    new = sum(b.new for b in buckets)
    updates = sum(b.updates for b in buckets)
    first = bucket_label(buckets[0].start, unit)
    last = bucket_label(buckets[-1].start, unit)
    return f"{new} new articles and {updates} updates, {first} to {last}, per {unit}."
