"""Inline SVG charts of the dashboard: backup age, measured RTO and RPO over time,
and growth. No script and no external font, as in the review report's charts,
whose drawing helpers these reuse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from odoo_dr.review.inventory import format_duration
from odoo_dr.review.reports.charts import (
    BAR,
    LABEL,
    ROW,
    STATE_COLOURS,
    TICKS,
    WIDTH,
    _legend,
    _rect,
    _svg,
    _text,
    log_time_axis,
)

# Colours of the series of one time chart, in order, repeating after the last.
SERIES_COLOURS = (
    "#2b6cb0",
    "#2f855a",
    "#b7791f",
    "#6b46c1",
    "#c05621",
    "#2c7a7b",
    "#b83280",
    "#4a5568",
)
FAILED_COLOUR = STATE_COLOURS["missed"]
OBJECTIVE_COLOUR = "#4a5568"
# Plot area of a time chart inside the WIDTH-wide picture, in pixels.
PLOT_LEFT = 90
PLOT_RIGHT = WIDTH - 20
PLOT_TOP = 12
PLOT_HEIGHT = 180
# Characters of a row label that fit in LABEL pixels. Labels here name a tenant
# and its environment, shortened a little more than the review's.
LABEL_CHARS = 24
# An objective more than this many times the highest value is named in the
# legend instead of drawn, because drawing it would flatten every point.
OBJECTIVE_SPAN = 3
# Points a series keeps per pixel of plot width: a repository with thousands of
# snapshots draws one point per two pixels, the last of each, and every failure.
PIXELS_PER_POINT = 2


@dataclass
class AgeBar:
    """One tenant's bar in the backup-age chart (seconds)."""

    label: str
    age: float | None
    interval: float | None

    @property
    def state(self) -> str:
        if self.age is None or self.interval is None:
            return "unknown"
        return "met" if self.age <= self.interval else "missed"


@dataclass
class Point:
    moment: datetime
    value: float
    failed: bool = False


@dataclass
class Series:
    name: str
    points: list[Point] = field(default_factory=list)


def format_size(value: float) -> str:
    """Format a byte count with binary units: `512 B`, `1.5 MiB`."""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            break
        amount /= 1024
    return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"


def _label(y: float, text: str) -> str:
    """Return a row label right-aligned before the bars and shortened to fit.
    The full text shows on hover."""
    shown = text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
    return (
        f'<text x="{LABEL - 8}" y="{y + 12:.1f}" text-anchor="end">'
        f"<title>{escape(text)}</title>{escape(shown)}</text>"
    )


def backup_age_chart(bars: list[AgeBar]) -> Markup | None:
    """Draw each tenant's last backup age beside its backup interval, on a
    logarithmic time axis.

    The bar is green inside the interval, red past it, and grey when either is
    unknown. A dark tick on the bar marks the interval. Ages below a minute are
    drawn at one minute.
    """
    values = [
        float(value)
        for bar in bars
        for value in (bar.age, bar.interval)
        if value is not None
    ]
    if not bars:
        return None
    top, position = log_time_axis(values)

    body = []
    y = 24.0
    bottom = y + ROW * len(bars)
    for tick in TICKS:
        if tick > top:
            break
        x = position(tick)
        body.append(
            f'<line x1="{x:.1f}" y1="16" x2="{x:.1f}" y2="{bottom:.1f}" '
            'stroke="#e2e8f0"/>'
        )
        body.append(_text(x, 12, format_duration(tick), "middle"))
    for bar in bars:
        body.append(_label(y, bar.label))
        interval = format_duration(bar.interval) if bar.interval else "not scheduled"
        if bar.age is None:
            body.append(_text(LABEL + 4, y + 12, "no backup", extra=' fill="#718096"'))
        else:
            tip = (
                f"{bar.label}: last backup {format_duration(bar.age)} ago, "
                f"interval {interval} ({bar.state})"
            )
            width = max(position(bar.age) - LABEL, 2)
            body.append(_rect(LABEL, y, width, STATE_COLOURS[bar.state], tip))
        if bar.interval is not None:
            x = position(bar.interval)
            body.append(
                f'<line x1="{x:.1f}" y1="{y - 3:.1f}" x2="{x:.1f}" '
                f'y2="{y + BAR + 3:.1f}" stroke="{OBJECTIVE_COLOUR}" '
                'stroke-width="3"><title>'
                f"{escape(bar.label)}: backup interval {escape(interval)}"
                "</title></line>"
            )
        y += ROW
    legend_y = bottom + 14
    body += _legend(
        legend_y,
        [
            ("inside the interval", STATE_COLOURS["met"]),
            ("past the interval", STATE_COLOURS["missed"]),
            ("unknown", STATE_COLOURS["unknown"]),
            ("backup interval", OBJECTIVE_COLOUR),
        ],
    )
    return _svg(
        "Age of each tenant's last backup against its backup interval "
        "(logarithmic time axis)",
        int(legend_y + 8),
        body,
    )


# Axis steps of a duration axis, in seconds: whole minutes, hours and days read
# better than powers of ten of seconds.
DURATION_STEPS = (
    1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800,
    3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400,
)  # fmt: skip


def decimal_step(raw: float) -> float:
    """Return the smallest 1, 2 or 5 times a power of ten at least `raw`."""
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def duration_step(raw: float) -> float:
    """Return the smallest of DURATION_STEPS at least `raw` seconds."""
    return next((step for step in DURATION_STEPS if step >= raw), decimal_step(raw))


def size_step(raw: float) -> float:
    """Return 1, 2 or 5 times a power of ten of the binary unit (KiB, MiB, ...)
    that `raw` bytes reach, so axis labels are round in that unit."""
    unit = 1024 ** max(math.floor(math.log(max(raw, 1), 1024)), 0)
    return decimal_step(raw / unit) * unit


def _time_ticks(start: datetime, end: datetime) -> list[datetime]:
    steps = 4
    return [start + (end - start) * index / steps for index in range(steps + 1)]


def _thin(ordered: list[Point], x_of: Callable[[datetime], float]) -> list[Point]:
    """Keep the last point of each PIXELS_PER_POINT-wide column, and every failed
    point, so a long history draws in bounded time and size."""
    kept: list[Point] = []
    column = None
    for point in ordered:
        current = int(x_of(point.moment) // PIXELS_PER_POINT)
        if kept and current == column and not kept[-1].failed:
            kept[-1] = point
        else:
            kept.append(point)
        column = current
    return kept


def time_chart(
    title: str,
    series: list[Series],
    value_text: Callable[[float], str],
    step_of: Callable[[float], float],
    objective: tuple[str, float] | None = None,
    failed_label: str | None = None,
) -> Markup | None:
    """Draw each series as points joined by a line on a linear time axis.

    `value_text` prints an axis value and `step_of` rounds up a raw axis step
    (`duration_step`, `size_step`). `objective` draws a dashed horizontal line
    with its label, or names it in the legend when it is far above every point.
    Points marked failed are drawn as red squares; `failed_label` names them in
    the legend.
    Returns None when no series has a point.
    """
    points = [point for item in series for point in item.points]
    if not points:
        return None
    start = min(point.moment for point in points)
    end = max(point.moment for point in points)
    if end - start < timedelta(hours=1):
        start -= timedelta(hours=12)
        end += timedelta(hours=12)
    values = [point.value for point in points]
    objective_label = None
    if objective is not None:
        label, value = objective
        if value > OBJECTIVE_SPAN * max(values):
            objective_label = f"{label} {value_text(value)}, above the chart"
            objective = None
        else:
            objective_label = label
            values.append(value)
    # About four steps up to the highest value, and one more above it.
    highest = max(max(values), 1.0)
    step = step_of(highest / 4)
    top = step * (math.floor(highest / step) + 1)
    plot_bottom = PLOT_TOP + PLOT_HEIGHT
    seconds = (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        share = (moment - start).total_seconds() / seconds
        return PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * share

    def y_of(value: float) -> float:
        return plot_bottom - PLOT_HEIGHT * value / top

    body = []
    tick = 0.0
    while tick <= top + step / 2:
        y = y_of(tick)
        body.append(
            f'<line x1="{PLOT_LEFT}" y1="{y:.1f}" x2="{PLOT_RIGHT}" y2="{y:.1f}" '
            'stroke="#e2e8f0"/>'
        )
        body.append(_text(PLOT_LEFT - 6, y + 4, value_text(tick), "end"))
        tick += step
    date_format = "%Y-%m-%d" if seconds >= 4 * 86400 else "%m-%d %H:%M"
    ticks = _time_ticks(start, end)
    for index, moment in enumerate(ticks):
        # The first and last labels align with the plot's edges to stay inside it.
        anchor = "middle"
        if index == 0:
            anchor = "start"
        elif index == len(ticks) - 1:
            anchor = "end"
        label = moment.strftime(date_format)
        body.append(_text(x_of(moment), plot_bottom + 16, label, anchor))
    if objective is not None:
        label, value = objective
        y = y_of(value)
        body.append(
            f'<line x1="{PLOT_LEFT}" y1="{y:.1f}" x2="{PLOT_RIGHT}" y2="{y:.1f}" '
            f'stroke="{OBJECTIVE_COLOUR}" stroke-width="2" stroke-dasharray="6 4">'
            f"<title>{escape(label)}: {escape(value_text(value))}</title></line>"
        )
    legend: list[tuple[str, str]] = []
    for index, item in enumerate(series):
        if not item.points:
            continue
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        legend.append((item.name, colour))
        ordered = _thin(sorted(item.points, key=lambda point: point.moment), x_of)
        if len(ordered) > 1:
            path = " ".join(
                f"{x_of(point.moment):.1f},{y_of(point.value):.1f}" for point in ordered
            )
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" '
                'stroke-width="1.5"/>'
            )
        for point in ordered:
            x, y = x_of(point.moment), y_of(point.value)
            tip = (
                f"{item.name}: {value_text(point.value)} at "
                f"{point.moment.strftime('%Y-%m-%d %H:%M')} UTC"
                + (" (failed)" if point.failed else "")
            )
            if point.failed:
                body.append(
                    f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
                    f'fill="{FAILED_COLOUR}"><title>{escape(tip)}</title></rect>'
                )
            else:
                body.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                    f"<title>{escape(tip)}</title></circle>"
                )
    if objective_label is not None:
        legend.append((objective_label, OBJECTIVE_COLOUR))
    if failed_label is not None and any(point.failed for point in points):
        legend.append((failed_label, FAILED_COLOUR))
    body += _legend_rows(plot_bottom + 40, legend)
    rows = math.ceil(len(legend) / _LEGEND_PER_ROW) if legend else 0
    return _svg(title, int(plot_bottom + 40 + 18 * max(rows - 1, 0) + 8), body)


# Legend entries per row of a time chart, whose series names vary in length.
_LEGEND_PER_ROW = 4


def _legend_rows(y: float, items: list[tuple[str, str]]) -> list[str]:
    """Lay out a legend in rows of up to _LEGEND_PER_ROW entries of equal width,
    shortening each name to fit. The full name shows on hover."""
    body = []
    columns = max(min(len(items), _LEGEND_PER_ROW), 1)
    width = (PLOT_RIGHT - PLOT_LEFT) / columns
    characters = int((width - 20) / 7)
    for index, (label, colour) in enumerate(items):
        row, column = divmod(index, columns)
        x = PLOT_LEFT + column * width
        top = y + row * 18
        shown = label if len(label) <= characters else label[: characters - 1] + "…"
        body.append(
            f'<rect x="{x:.1f}" y="{top - 10:.1f}" width="10" height="10" '
            f'fill="{colour}"/>'
        )
        body.append(
            f'<text x="{x + 14:.1f}" y="{top:.1f}"><title>{escape(label)}</title>'
            f"{escape(shown)}</text>"
        )
    return body
