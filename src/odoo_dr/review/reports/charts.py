"""Inline SVG charts for the HTML report: no script, no external font or image.

Each chart is one `<svg>` element with a `<title>` for screen readers, and a
`<title>` on every bar so a browser shows its value on hover.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from markupsafe import Markup, escape

from odoo_dr.review.inventory import format_duration
from odoo_dr.review.reports.common import PARTS, objective_state
from odoo_dr.review.scorecard import ScoreLine, TenantObjectives

WIDTH = 720
LABEL = 190
# About as many characters of a 12px sans-serif font as fit in LABEL pixels.
LABEL_CHARS = 28
ROW = 26
BAR = 16
FONT = 'font-family="system-ui, sans-serif" font-size="12"'
PART_COLOURS = {
    "compliance": "#2b6cb0",
    "tested_recovery": "#2f855a",
    "alarms": "#b7791f",
    "runbooks": "#6b46c1",
}
STATUS_COLOURS = {
    "fail": "#c53030",
    "suppressed": "#a0aec0",
    "not-evaluated": "#ecc94b",
    "pass": "#38a169",
}
# The statuses of the severity chart, in bar order, with their legend labels.
STATUS_LABELS = (
    ("fail", "failed"),
    ("suppressed", "suppressed"),
    ("not-evaluated", "not evaluated"),
    ("pass", "passed"),
)
STATE_COLOURS = {"met": "#38a169", "missed": "#c53030", "unknown": "#a0aec0"}
DECLARED_COLOUR = "#4a5568"


def _svg(title: str, height: int, body: list[str]) -> Markup:
    head = (
        f'<svg class="chart" role="img" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" {FONT}>'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def _rect(
    x: float, y: float, width: float, colour: str, tip: str, height: float = BAR
) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width, 0):.1f}" '
        f'height="{height:.0f}" fill="{colour}"><title>{escape(tip)}</title></rect>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>'
        f"{escape(text)}</text>"
    )


def _label(y: float, text: str) -> str:
    """Return a row label right-aligned before the bars, shortened to fit; the
    full text shows on hover."""
    shown = text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "\u2026"
    return (
        f'<text x="{LABEL - 8}" y="{y + 12:.1f}" text-anchor="end">'
        f"<title>{escape(text)}</title>{escape(shown)}</text>"
    )


def _legend(y: float, items: list[tuple[str, str]]) -> list[str]:
    body = []
    x = float(LABEL)
    for label, colour in items:
        body.append(
            f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="10" height="10" '
            f'fill="{colour}"/>'
        )
        body.append(_text(x + 14, y, label))
        x += 24 + 7 * len(label)
    return body


def scorecard_chart(lines: list[ScoreLine]) -> Markup:
    """Stack each line's points per part on a 0-100 bar, with its score and grade."""
    scale = (WIDTH - LABEL - 70) / 100
    body = []
    for index, line in enumerate(lines):
        y = 10 + index * ROW
        body.append(_label(y, f"{line.environment} / {line.tier}"))
        body.append(
            f'<rect x="{LABEL}" y="{y}" width="{100 * scale:.1f}" height="{BAR}" '
            'fill="none" stroke="#cbd5e0"/>'
        )
        x = float(LABEL)
        for part in PARTS:
            points = line.points(part.key)
            measured = "" if part.key not in line.unmeasured else " (not measured)"
            tip = f"{part.label}: {points:.1f} of {part.weight} points{measured}"
            body.append(_rect(x, y, points * scale, PART_COLOURS[part.key], tip))
            x += points * scale
        body.append(
            _text(
                LABEL + 100 * scale + 8,
                y + 12,
                f"{line.score:.0f} {line.grade}",
                extra=' font-weight="bold"',
            )
        )
    legend_y = 10 + len(lines) * ROW + 14
    body += _legend(
        legend_y,
        [(f"{p.label} ({p.weight})", PART_COLOURS[p.key]) for p in PARTS],
    )
    return _svg("Resilience score per environment and tier", legend_y + 8, body)


def severity_chart(rows: list[dict]) -> Markup:
    """Bar per severity: failed, suppressed, not evaluated and passed findings side
    by side."""
    largest = max(
        (sum(row[key] for key, _ in STATUS_LABELS) for row in rows), default=0
    )
    # Leave room after the longest bar for its "N failed of M" label.
    scale = (WIDTH - LABEL - 120) / max(largest, 1)
    body = []
    for index, row in enumerate(rows):
        y = 10 + index * ROW
        body.append(_label(y, row["severity"]))
        x = float(LABEL)
        for key, label in STATUS_LABELS:
            count = row[key]
            tip = f"{row['severity']}: {count} {label}"
            body.append(_rect(x, y, count * scale, STATUS_COLOURS[key], tip))
            x += count * scale
        total = sum(row[key] for key, _ in STATUS_LABELS)
        body.append(_text(x + 6, y + 12, f"{row['fail']} failed of {total}"))
    legend_y = 10 + len(rows) * ROW + 14
    body += _legend(
        legend_y, [(label, STATUS_COLOURS[key]) for key, label in STATUS_LABELS]
    )
    return _svg("Findings by severity and status", legend_y + 8, body)


# Ticks of the logarithmic time axis, in seconds.
TICKS = (60, 900, 3600, 4 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400)


def log_time_axis(values: list[float]) -> tuple[float, Callable[[float], float]]:
    """Return the top tick of a logarithmic time axis that shows `values`, and the
    function giving the x position of a number of seconds on it."""
    low = TICKS[0]
    high = max([*values, TICKS[2]])
    top = next((tick for tick in TICKS if tick >= high), high)
    span = WIDTH - LABEL - 90

    def position(seconds: float) -> float:
        seconds = min(max(seconds, low), top)
        return LABEL + span * math.log(seconds / low) / math.log(top / low)

    return top, position


def _objective_values(items: list[tuple[str, TenantObjectives]]) -> list[float]:
    values = []
    for _environment, item in items:
        for value in (
            item.declared_rto,
            item.measured_rto,
            item.declared_rpo,
            item.measured_rpo,
        ):
            if value is not None:
                values.append(float(value))
    return values


def objectives_chart(items: list[tuple[str, TenantObjectives]]) -> Markup | None:
    """Declared against measured RTO and RPO per tenant, on a logarithmic time axis.

    A measured bar is green when it meets the declared objective, red when it does
    not, and grey when either value is unknown. Values below a minute are drawn at
    one minute, and every bar is at least 2 pixels wide.
    """
    values = _objective_values(items)
    if not items or not values:
        return None
    top, position = log_time_axis(values)

    body = []
    y = 24.0
    bottom = y + 2 * ROW * len(items)
    for tick in TICKS:
        if tick > top:
            break
        x = position(tick)
        body.append(
            f'<line x1="{x:.1f}" y1="16" x2="{x:.1f}" y2="{bottom:.1f}" '
            'stroke="#e2e8f0"/>'
        )
        body.append(_text(x, 12, format_duration(tick), "middle"))
    for environment, item in items:
        for part, declared, measured in (
            ("RTO", item.declared_rto, item.measured_rto),
            ("RPO", item.declared_rpo, item.measured_rpo),
        ):
            label = f"{environment}/{item.tenant} {part}"
            body.append(_label(y, label))
            if declared is not None:
                tip = f"{label} declared: {format_duration(declared)}"
                width = max(position(declared) - LABEL, 2)
                body.append(_rect(LABEL, y, width, DECLARED_COLOUR, tip, BAR / 2))
            if measured is not None:
                state = objective_state(item, part.lower())
                tip = f"{label} measured: {format_duration(measured)} ({state})"
                width = max(position(measured) - LABEL, 2)
                colour = STATE_COLOURS[state]
                body.append(_rect(LABEL, y + BAR / 2, width, colour, tip, BAR / 2))
            else:
                body.append(
                    _text(LABEL + 4, y + BAR, "not measured", extra=' fill="#718096"')
                )
            y += ROW
    legend_y = bottom + 14
    body += _legend(
        legend_y,
        [
            ("declared", DECLARED_COLOUR),
            ("measured, met", STATE_COLOURS["met"]),
            ("missed", STATE_COLOURS["missed"]),
            ("unknown", STATE_COLOURS["unknown"]),
        ],
    )
    return _svg(
        "Declared and measured RTO and RPO per tenant (logarithmic time axis)",
        int(legend_y + 8),
        body,
    )
