"""The Grafana dashboard of `odoo-dr grafana render`: the metrics of `odoo-dr serve`
per environment, tier and tenant.

The dashboard reads one Prometheus data source, chosen by the template variable
`DS_PROMETHEUS`, and filters by the variables `environment`, `tier` and `tenant`,
which list the label values of `odoo_dr_tenant_info`. Every expression uses only
names from `status/metric_names.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from odoo_dr.status import metric_names as m

SCHEMA_VERSION = 39
DASHBOARD_UID = "odoo-dr"
DATASOURCE_VARIABLE = "DS_PROMETHEUS"
DATASOURCE = {"type": "prometheus", "uid": "${" + DATASOURCE_VARIABLE + "}"}

# Label matchers of the template variables. A variable set to All matches `.*`,
# which includes the empty `tier` of a tenant outside the inventory.
_TENANT_FILTER = 'environment=~"$environment",tier=~"$tier",tenant=~"$tenant"'
_TIER_FILTER = 'environment=~"$environment",tier=~"$tier"'
_ENVIRONMENT_FILTER = 'environment=~"$environment"'
_TENANT_LEGEND = "{{environment}}/{{tenant}}"

GRID_WIDTH = 24


def _tenant(metric: str) -> str:
    return f"{metric}{{{_TENANT_FILTER}}}"


def _of_shown_tenants(metric: str) -> str:
    """Return a repository metric limited to the repositories of the tenants that
    the variables select."""
    return f"{metric} and on(repository) {_tenant(m.TENANT_INFO)}"


# Value mappings of the 1/0 gauges.
_PASSED_FAILED = [
    {
        "type": "value",
        "options": {
            "1": {"text": "passed", "color": "green", "index": 0},
            "0": {"text": "failed", "color": "red", "index": 1},
        },
    }
]
_YES_NO = [
    {
        "type": "value",
        "options": {
            "1": {"text": "yes", "color": "green", "index": 0},
            "0": {"text": "no", "color": "red", "index": 1},
        },
    }
]


@dataclass
class Panel:
    """One panel before layout: its kind, size and queries as (expr, legend)."""

    title: str
    kind: str
    targets: list[tuple[str, str]]
    description: str
    unit: str | None = None
    width: int = 12
    height: int = 8
    mappings: list[dict] = field(default_factory=list)
    thresholds: list[tuple[float | None, str]] = field(
        default_factory=lambda: [(None, "green")]
    )
    minimum: float | None = None
    maximum: float | None = None


@dataclass
class Row:
    title: str
    panels: list[Panel]


def _rows() -> list[Row]:
    return [
        Row(
            "Backups",
            [
                Panel(
                    "Backup age and interval",
                    "timeseries",
                    [
                        (_tenant(m.LAST_SNAPSHOT_AGE_SECONDS), _TENANT_LEGEND + " age"),
                        (
                            _tenant(m.BACKUP_INTERVAL_SECONDS),
                            _TENANT_LEGEND + " interval",
                        ),
                    ],
                    "Age of each tenant's last snapshot beside its backup interval.",
                    unit="s",
                ),
                Panel(
                    "Backup age / interval",
                    "bargauge",
                    [
                        (
                            f"{_tenant(m.LAST_SNAPSHOT_AGE_SECONDS)} / "
                            f"{_tenant(m.BACKUP_INTERVAL_SECONDS)}",
                            _TENANT_LEGEND,
                        )
                    ],
                    "Above 100% a backup is late; OdooDrBackupStale fires from "
                    "125% (at least 10 minutes past the interval).",
                    unit="percentunit",
                    thresholds=[(None, "green"), (1.0, "orange"), (1.25, "red")],
                    minimum=0,
                ),
                Panel(
                    "Missing files in the last snapshot",
                    "timeseries",
                    [(_tenant(m.LAST_SNAPSHOT_MISSING_FILES), _TENANT_LEGEND)],
                    "Attachment files the database refers to that the last "
                    "snapshot lacks.",
                    unit="short",
                    thresholds=[(None, "green"), (1, "red")],
                    minimum=0,
                ),
                Panel(
                    "Snapshot size and new bytes",
                    "timeseries",
                    [
                        (_tenant(m.LAST_SNAPSHOT_SIZE_BYTES), _TENANT_LEGEND + " size"),
                        (_tenant(m.LAST_SNAPSHOT_NEW_BYTES), _TENANT_LEGEND + " new"),
                    ],
                    "Dump plus filestore bytes of the last snapshot, and the "
                    "compressed bytes it added to the repository.",
                    unit="bytes",
                ),
            ],
        ),
        Row(
            "Drills",
            [
                Panel(
                    "Last drill result",
                    "stat",
                    [(_tenant(m.LAST_DRILL_SUCCESS), _TENANT_LEGEND)],
                    "Whether each tenant's last restore drill passed.",
                    mappings=_PASSED_FAILED,
                    thresholds=[(None, "red"), (1, "green")],
                    width=8,
                ),
                Panel(
                    "Last drill age and drill interval",
                    "timeseries",
                    [
                        (_tenant(m.LAST_DRILL_AGE_SECONDS), _TENANT_LEGEND + " age"),
                        (
                            _tenant(m.DRILL_INTERVAL_SECONDS),
                            _TENANT_LEGEND + " interval",
                        ),
                    ],
                    "Age of the last drill beside the tier's drill_every.",
                    unit="s",
                    width=16,
                ),
                Panel(
                    "RTO: last drill and objective",
                    "timeseries",
                    [
                        (
                            _tenant(m.LAST_DRILL_RTO_SECONDS),
                            _TENANT_LEGEND + " measured",
                        ),
                        (
                            _tenant(m.OBJECTIVE_RTO_SECONDS),
                            _TENANT_LEGEND + " objective",
                        ),
                    ],
                    "Restore plus checks time of the last drill beside the "
                    "logical-corruption RTO.",
                    unit="s",
                ),
                Panel(
                    "RPO: last drill and objective",
                    "timeseries",
                    [
                        (
                            _tenant(m.LAST_DRILL_RPO_SECONDS),
                            _TENANT_LEGEND + " measured",
                        ),
                        (
                            _tenant(m.OBJECTIVE_RPO_SECONDS),
                            _TENANT_LEGEND + " objective",
                        ),
                    ],
                    "Age of the drilled snapshot when the drill began beside the "
                    "logical-corruption RPO.",
                    unit="s",
                ),
                Panel(
                    "Objectives met",
                    "state-timeline",
                    [(_tenant(m.OBJECTIVE_MET), _TENANT_LEGEND + " {{objective}}")],
                    "Per tenant: backup fresh, RPO, RTO and drill within the tier's "
                    "window; no value where nothing measures it yet.",
                    mappings=_YES_NO,
                    thresholds=[(None, "red"), (1, "green")],
                    width=24,
                ),
            ],
        ),
        Row(
            "Repositories",
            [
                Panel(
                    "Repository size",
                    "timeseries",
                    [
                        (
                            _of_shown_tenants(m.REPOSITORY_STORED_BYTES),
                            "{{repository}} stored",
                        ),
                        (
                            _of_shown_tenants(m.REPOSITORY_LOGICAL_BYTES),
                            "{{repository}} logical",
                        ),
                    ],
                    "Bytes of packs stored beside the sum of the snapshots' sizes.",
                    unit="bytes",
                ),
                Panel(
                    "Deduplication ratio",
                    "timeseries",
                    [(_of_shown_tenants(m.REPOSITORY_DEDUP_RATIO), "{{repository}}")],
                    "Logical bytes divided by stored bytes.",
                    unit="none",
                ),
                Panel(
                    "Repository readable",
                    "stat",
                    [(_of_shown_tenants(m.REPOSITORY_UP), "{{repository}}")],
                    "Whether odoo-dr serve could read each repository.",
                    mappings=_YES_NO,
                    thresholds=[(None, "red"), (1, "green")],
                ),
                Panel(
                    "Snapshots",
                    "timeseries",
                    [
                        (
                            _of_shown_tenants(m.REPOSITORY_SNAPSHOTS),
                            "{{repository}}",
                        ),
                        (_tenant(m.SNAPSHOTS), _TENANT_LEGEND),
                    ],
                    "Snapshots per repository and per tenant.",
                    unit="short",
                ),
            ],
        ),
        Row(
            "Point-in-time recovery",
            [
                Panel(
                    "Recoverable window",
                    "timeseries",
                    [
                        (
                            f"{m.PITR_WINDOW_END_TIMESTAMP_SECONDS}"
                            f"{{{_ENVIRONMENT_FILTER}}} - "
                            f"{m.PITR_WINDOW_START_TIMESTAMP_SECONDS}"
                            f"{{{_ENVIRONMENT_FILTER}}}",
                            "{{environment}}/{{stanza}}",
                        )
                    ],
                    "Length of the window that pgBackRest can recover to: from the "
                    "oldest base backup to the newest archived WAL.",
                    unit="s",
                    width=8,
                ),
                Panel(
                    "WAL archive age",
                    "timeseries",
                    [
                        (
                            f"{m.PITR_ARCHIVE_AGE_SECONDS}{{{_ENVIRONMENT_FILTER}}}",
                            "{{environment}}/{{stanza}}",
                        )
                    ],
                    "Age of the newest archived WAL segment: the data a recovery "
                    "now would lose.",
                    unit="s",
                    width=8,
                ),
                Panel(
                    "WAL gap",
                    "stat",
                    [
                        (
                            f"{m.PITR_WAL_GAP}{{{_ENVIRONMENT_FILTER}}}",
                            "{{environment}}/{{stanza}}",
                        )
                    ],
                    "1 when a segment is missing from the archived WAL chain.",
                    thresholds=[(None, "green"), (1, "red")],
                    width=8,
                ),
            ],
        ),
        Row(
            "Review",
            [
                Panel(
                    "Review score",
                    "bargauge",
                    [
                        (
                            f"{m.REVIEW_SCORE}{{{_TIER_FILTER}}}",
                            "{{environment}} {{tier}}",
                        )
                    ],
                    "The review's resilience score per environment and tier.",
                    unit="none",
                    thresholds=[(None, "red"), (60, "orange"), (80, "green")],
                    minimum=0,
                    maximum=100,
                    width=8,
                ),
                Panel(
                    "Objectives met per tier",
                    "stat",
                    [
                        (
                            f"{m.REVIEW_OBJECTIVES_MET}{{{_TIER_FILTER}}}",
                            "{{environment}} {{tier}}",
                        )
                    ],
                    "Whether every tenant of the tier meets its RTO, RPO and drill "
                    "window.",
                    mappings=_YES_NO,
                    thresholds=[(None, "red"), (1, "green")],
                    width=8,
                ),
                Panel(
                    "Time since the last review",
                    "stat",
                    [(f"time() - {m.REVIEW_TIMESTAMP_SECONDS}", "review")],
                    "Age of the review whose scorecard the panels show.",
                    unit="s",
                    width=8,
                ),
            ],
        ),
        Row(
            "odoo-dr serve",
            [
                Panel(
                    "Time since the last refresh",
                    "stat",
                    [(f"time() - {m.STATUS_REFRESH_TIMESTAMP_SECONDS}", "refresh")],
                    "Age of the status that every other panel shows; "
                    "OdooDrStatusStale fires after 10 minutes by default.",
                    unit="s",
                    thresholds=[(None, "green"), (600, "red")],
                    width=8,
                ),
                Panel(
                    "Refresh duration",
                    "timeseries",
                    [(m.STATUS_REFRESH_DURATION_SECONDS, "refresh")],
                    "Time the last status refresh took.",
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Refresh errors per hour",
                    "timeseries",
                    [(f"increase({m.STATUS_REFRESH_ERRORS_TOTAL}[1h])", "errors")],
                    "Failed status refreshes in the last hour.",
                    unit="short",
                    thresholds=[(None, "green"), (1, "red")],
                    width=8,
                ),
            ],
        ),
    ]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    defaults: dict = {
        "thresholds": {
            "mode": "absolute",
            "steps": [
                {"value": value, "color": color} for value, color in panel.thresholds
            ],
        },
        "mappings": panel.mappings,
    }
    if panel.unit is not None:
        defaults["unit"] = panel.unit
    if panel.minimum is not None:
        defaults["min"] = panel.minimum
    if panel.maximum is not None:
        defaults["max"] = panel.maximum
    if panel.kind in ("stat", "bargauge", "state-timeline") and not panel.mappings:
        defaults["color"] = {"mode": "thresholds"}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
            }
            for index, (expr, legend) in enumerate(panel.targets)
        ],
    }


def _layout(rows: list[Row]) -> list[dict]:
    """Place rows and panels on Grafana's 24-column grid, left to right and top to
    bottom, and number them from 1."""
    panels: list[dict] = []
    y = 0
    for row in rows:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1},
                "panels": [],
            }
        )
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                y += line_height
                x = 0
                line_height = 0
            panels.append(_panel_json(panel, len(panels) + 1, x, y))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return panels


def _query_variable(name: str, label: str, query: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _variables() -> list[dict]:
    info = m.TENANT_INFO
    return [
        {
            "name": DATASOURCE_VARIABLE,
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "refresh": 1,
            "current": {},
        },
        _query_variable(
            "environment", "Environment", f"label_values({info}, environment)"
        ),
        _query_variable(
            "tier", "Tier", f"label_values({info}{{{_ENVIRONMENT_FILTER}}}, tier)"
        ),
        _query_variable(
            "tenant", "Tenant", f"label_values({info}{{{_TIER_FILTER}}}, tenant)"
        ),
    ]


def build_dashboard() -> dict:
    """Return the dashboard as Grafana's JSON model."""
    return {
        "uid": DASHBOARD_UID,
        "title": "odoo-dr backups and drills",
        "description": "Backups, restore drills, repositories, point-in-time "
        "recovery and review scores exported by odoo-dr serve.",
        "tags": ["odoo-dr", "backup"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "timezone": "utc",
        "templating": {"list": _variables()},
        "annotations": {"list": []},
        "links": [],
        "panels": _layout(_rows()),
    }
