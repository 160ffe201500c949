"""`odoo-dr alerts render` and `odoo-dr grafana render`.

The rules are checked and unit-tested with the real `promtool` (Debian's
`prometheus` package): `promtool test rules` feeds input series through them, so
the tests show which alerts fire at which moment, not only that the YAML parses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from odoo_dr.review.inventory import load_inventory
from odoo_dr.status import alerts, metric_names
from odoo_dr.status.grafana import build_dashboard

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed"
)

EXAMPLES = sorted(Path(__file__).parent.parent.glob("examples/*/inventory.yaml"))

# The metric names that `odoo-dr serve` exports, as the exporter, the rules and the
# dashboard agree on them.
CONTRACT = {
    "odoo_dr_tenant_info",
    "odoo_dr_last_snapshot_timestamp_seconds",
    "odoo_dr_last_snapshot_age_seconds",
    "odoo_dr_last_snapshot_size_bytes",
    "odoo_dr_last_snapshot_new_bytes",
    "odoo_dr_last_snapshot_missing_files",
    "odoo_dr_snapshots",
    "odoo_dr_backup_interval_seconds",
    "odoo_dr_drill_interval_seconds",
    "odoo_dr_objective_rto_seconds",
    "odoo_dr_objective_rpo_seconds",
    "odoo_dr_last_drill_timestamp_seconds",
    "odoo_dr_last_drill_age_seconds",
    "odoo_dr_last_drill_success",
    "odoo_dr_last_drill_rto_seconds",
    "odoo_dr_last_drill_rpo_seconds",
    "odoo_dr_objective_met",
    "odoo_dr_repository_up",
    "odoo_dr_repository_stored_bytes",
    "odoo_dr_repository_logical_bytes",
    "odoo_dr_repository_dedup_ratio",
    "odoo_dr_repository_snapshots",
    "odoo_dr_repository_damaged_documents",
    "odoo_dr_pitr_window_start_timestamp_seconds",
    "odoo_dr_pitr_window_end_timestamp_seconds",
    "odoo_dr_pitr_archive_age_seconds",
    "odoo_dr_pitr_wal_gap",
    "odoo_dr_review_score",
    "odoo_dr_review_objectives_met",
    "odoo_dr_review_timestamp_seconds",
    "odoo_dr_status_refresh_timestamp_seconds",
    "odoo_dr_status_refresh_duration_seconds",
    "odoo_dr_status_refresh_errors_total",
}

PROD = 'prod "eu"'
STANZA = "main\\stanza"
# A tenant name with a quote, a backslash, regular-expression characters and a Go
# template delimiter.
ODD = 'odd "name" \\ with .* (regex) | {{ braces }}'
ODD_RUNBOOK = "https://wiki.example/{{ x }}"

EDGE_INVENTORY = {
    "version": 1,
    "platform": "Edge cases",
    "tiers": {
        "nightly": {
            "drill_every": "7d",
            "objectives": {"logical_corruption": {"rto": "8h", "rpo": "2d"}},
            "schedule": {"backup": "6h"},
        }
    },
    "environments": [
        {
            "name": PROD,
            "evidence": {"pgbackrest_stanza": STANZA},
            "runbooks": ["https://wiki.example/restore"],
            "tenants": [
                {
                    "name": ODD,
                    "tier": "standard",
                    "runbook": ODD_RUNBOOK,
                    "schedule": {"backup": "2h"},
                },
                {"name": "hourly", "tier": "standard", "schedule": {"backup": "1h"}},
                {"name": "daily", "tier": "standard"},
                {"name": "ledger", "tier": "critical"},
                {"name": "nightly_one", "tier": "nightly"},
                {
                    "name": "nightly_fast",
                    "tier": "nightly",
                    "schedule": {"backup": "3h"},
                },
            ],
        },
        {
            "name": "staging",
            "tenants": [
                {"name": "hourly", "tier": "low", "schedule": {"backup": "1h"}}
            ],
        },
    ],
}


@pytest.fixture(scope="module")
def edge_inventory_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edge") / "inventory.yaml"
    path.write_text(yaml.safe_dump(EDGE_INVENTORY, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def edge_rules(edge_inventory_path: Path) -> Path:
    """The edge inventory's rules, rendered by the command line."""
    out = edge_inventory_path.parent / "rules.yaml"
    result = run_cli(
        "alerts", "render", "--inventory", str(edge_inventory_path), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    return out


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def quoted(value: str) -> str:
    """Quote a label value for PromQL and promtool; JSON's escapes are Go's."""
    return json.dumps(value, ensure_ascii=False)


def series(metric: str, **labels: str) -> str:
    """Return a series in promtool's notation, with labels sorted by name."""
    inner = ",".join(f"{key}={quoted(value)}" for key, value in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def tenant_labels(environment: str, tenant: str, tier: str) -> dict[str, str]:
    return {"environment": environment, "tenant": tenant, "tier": tier}


def firing(alertname: str, severity: str, state: str = "firing", **labels: str):
    """Return promtool's expected ALERTS sample of one alert."""
    return {
        "labels": series(
            "ALERTS",
            alertname=alertname,
            alertstate=state,
            severity=severity,
            **labels,
        ),
        "value": 1,
    }


def alerts_at(alertname: str, eval_time: str, expected: list[dict]) -> dict:
    """Return a promql_expr_test: exactly `expected` alerts of that name exist."""
    return {
        "expr": f'ALERTS{{alertname="{alertname}"}}',
        "eval_time": eval_time,
        "exp_samples": expected,
    }


def run_promtool_test(rules: Path, tmp_path: Path, test: dict) -> None:
    document = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", **test}],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, width=1000))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# Thresholds.


def test_stale_after_grace() -> None:
    assert alerts.stale_after(900) == 900 + 600
    assert alerts.stale_after(3600) == 3600 + 900
    assert alerts.stale_after(86400) == 86400 + 21600


def test_thresholds_follow_schedule(edge_inventory_path: Path) -> None:
    inventory, _folder = load_inventory(edge_inventory_path)
    production = inventory.environments[0]
    by_name = {
        tenant.name: alerts.tenant_alerting(inventory, production, tenant)
        for tenant in production.tenants
    }
    # The tenant's own schedule, the tier's schedule, the tier's RPO, and the
    # default daily backups of a tier that needs point-in-time recovery.
    assert by_name[ODD].stale_after == 2 * 3600 + 1800
    assert by_name["hourly"].stale_after == 3600 + 900
    assert by_name["daily"].stale_after == 86400 + 21600
    assert by_name["nightly_one"].stale_after == 6 * 3600 + 5400
    assert by_name["nightly_fast"].stale_after == 3 * 3600 + 2700
    assert by_name["ledger"].stale_after == 86400 + 21600
    assert by_name["nightly_one"].drill_every == 7 * 86400
    assert by_name["nightly_one"].rpo == 2 * 86400
    assert by_name["ledger"].relies_on_wal
    assert by_name["ledger"].severity == "critical"
    assert by_name["daily"].severity == "warning"
    assert by_name[ODD].runbook == ODD_RUNBOOK
    assert by_name["hourly"].runbook == "https://wiki.example/restore"


def test_archive_rpo_is_strictest_pitr_tenant(edge_inventory_path: Path) -> None:
    inventory, _folder = load_inventory(edge_inventory_path)
    # `ledger` is the only tenant whose tier needs point-in-time recovery.
    assert alerts.archive_rpo(inventory, inventory.environments[0]) == 900
    assert alerts.archive_rpo(inventory, inventory.environments[1]) == 7 * 86400


def test_prometheus_duration() -> None:
    assert alerts.prometheus_duration(600) == "10m"
    assert alerts.prometheus_duration(108000) == "1d6h"
    assert alerts.prometheus_duration(4545) == "1h15m45s"


# The rule file.


def test_rules_sorted_and_grouped(edge_rules: Path) -> None:
    document = yaml.safe_load(edge_rules.read_text())
    names = [group["name"] for group in document["groups"]]
    assert names == [
        "odoo-dr",
        f"odoo-dr environment {PROD}",
        "odoo-dr environment staging",
    ]
    tenants = [
        rule["labels"].get("tenant")
        for rule in document["groups"][1]["rules"]
        if rule["alert"] == "OdooDrBackupStale"
    ]
    names = sorted([ODD, "hourly", "daily", "ledger", "nightly_one", "nightly_fast"])
    assert tenants == [alerts.template_text(name) for name in names]


def test_rules_stable(edge_inventory_path: Path) -> None:
    inventory, _folder = load_inventory(edge_inventory_path)
    first = alerts.render_rules(inventory)
    inventory.environments.reverse()
    for environment in inventory.environments:
        environment.tenants.reverse()
    assert alerts.render_rules(inventory) == first


def test_rules_escape_names(edge_rules: Path) -> None:
    document = yaml.safe_load(edge_rules.read_text())
    rules = [
        rule
        for rule in document["groups"][1]["rules"]
        if rule["labels"].get("tenant") == alerts.template_text(ODD)
    ]
    assert rules
    for rule in rules:
        assert f"tenant={quoted(ODD)}" in rule["expr"]
        assert f"environment={quoted(PROD)}" in rule["expr"]
        assert rule["annotations"]["runbook_url"] == alerts.template_text(ODD_RUNBOOK)
        assert rule["alert"].startswith("OdooDr")


def test_no_snapshot_rpo_rule_for_pitr_tier(edge_rules: Path) -> None:
    text = edge_rules.read_text()
    document = yaml.safe_load(text)
    rpo_tenants = {
        rule["labels"]["tenant"]
        for group in document["groups"]
        for rule in group["rules"]
        if rule["alert"] == "OdooDrRpoAtRisk"
    }
    assert "ledger" not in rpo_tenants
    assert "daily" in rpo_tenants
    assert f"odoo_dr_pitr_archive_age_seconds{{environment={quoted(PROD)}" in text


def test_rule_metric_names_in_contract(edge_rules: Path) -> None:
    used = set(re.findall(r"\bodoo_dr_[a-z0-9_]+", edge_rules.read_text()))
    assert used
    assert used <= CONTRACT, used - CONTRACT


def test_metric_names_module_matches_contract() -> None:
    assert metric_names.ALL == CONTRACT


@needs_promtool
@pytest.mark.parametrize("inventory", EXAMPLES, ids=lambda path: path.parent.name)
def test_example_rules_pass_promtool(inventory: Path, tmp_path: Path) -> None:
    out = tmp_path / "rules.yaml"
    result = run_cli("alerts", "render", "--inventory", str(inventory), "-o", str(out))
    assert result.returncode == 0, result.stderr
    check = promtool("check", "rules", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    # Production's tiers need point-in-time recovery, and no environment of either
    # example names a pgBackRest stanza; staging's `low` tier does not need it.
    assert "no RPO rule for tenant" in result.stderr
    assert "_staging'" not in result.stderr
    assert "sandbox_" not in result.stderr


@needs_promtool
def test_edge_rules_pass_promtool(edge_rules: Path) -> None:
    check = promtool("check", "rules", str(edge_rules))
    assert check.returncode == 0, check.stdout + check.stderr


# The rules fed with series by `promtool test rules`.


@needs_promtool
def test_stale_threshold_follows_schedule(edge_rules: Path, tmp_path: Path) -> None:
    hourly = tenant_labels(PROD, "hourly", "standard")
    odd = tenant_labels(PROD, ODD, "standard")
    daily = tenant_labels(PROD, "daily", "standard")
    # Backups every 50 minutes: never stale.
    fresh = tenant_labels("staging", "hourly", "low")
    age = "0+60x300"
    metric = metric_names.LAST_SNAPSHOT_AGE_SECONDS
    run_promtool_test(
        edge_rules,
        tmp_path,
        {
            "input_series": [
                {"series": series(metric, **hourly), "values": age},
                {"series": series(metric, **odd), "values": age},
                {"series": series(metric, **daily), "values": age},
                {
                    "series": series(metric, **fresh),
                    "values": " ".join(["0+60x49"] * 6),
                },
            ],
            "promql_expr_test": [
                # 70 minutes: inside the hourly tenant's 1h15min.
                alerts_at("OdooDrBackupStale", "70m", []),
                # 80 minutes: only the hourly tenant; the 2h tenant has 2h30min.
                alerts_at(
                    "OdooDrBackupStale",
                    "80m",
                    [firing("OdooDrBackupStale", "warning", **hourly)],
                ),
                alerts_at(
                    "OdooDrBackupStale",
                    "155m",
                    [
                        firing("OdooDrBackupStale", "warning", **hourly),
                        firing("OdooDrBackupStale", "warning", **odd),
                    ],
                ),
            ],
        },
    )


@needs_promtool
def test_odd_tenant_alert_texts(edge_rules: Path, tmp_path: Path) -> None:
    odd = tenant_labels(PROD, ODD, "standard")
    run_promtool_test(
        edge_rules,
        tmp_path,
        {
            "input_series": [
                {
                    "series": series(metric_names.LAST_SNAPSHOT_AGE_SECONDS, **odd),
                    "values": "9300",
                }
            ],
            "alert_rule_test": [
                {
                    "eval_time": "0m",
                    "alertname": "OdooDrBackupStale",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning", **odd},
                            "exp_annotations": {
                                "summary": f"Last backup of {ODD} in {PROD} is stale",
                                "description": "The last snapshot is 2h 35m 0s old. "
                                "Backups are due every 2h, and this alert fires after "
                                "2h30min, the interval plus a grace.",
                                "runbook_url": ODD_RUNBOOK,
                            },
                        }
                    ],
                }
            ],
        },
    )


@needs_promtool
def test_rpo_at_risk_waits(edge_rules: Path, tmp_path: Path) -> None:
    daily = tenant_labels(PROD, "daily", "standard")
    ledger = tenant_labels(PROD, "ledger", "critical")
    metric = metric_names.LAST_SNAPSHOT_AGE_SECONDS
    # The age passes the 24h RPO at about 7 minutes.
    age = "86000+60x60"
    run_promtool_test(
        edge_rules,
        tmp_path,
        {
            "input_series": [
                {"series": series(metric, **daily), "values": age},
                {"series": series(metric, **ledger), "values": age},
            ],
            "promql_expr_test": [
                alerts_at("OdooDrRpoAtRisk", "5m", []),
                alerts_at(
                    "OdooDrRpoAtRisk",
                    "10m",
                    [firing("OdooDrRpoAtRisk", "warning", "pending", **daily)],
                ),
                # The ledger's RPO rests on the WAL archive: no snapshot RPO rule.
                alerts_at(
                    "OdooDrRpoAtRisk",
                    "20m",
                    [firing("OdooDrRpoAtRisk", "warning", **daily)],
                ),
            ],
        },
    )


@needs_promtool
def test_backup_and_drill_missing(edge_rules: Path, tmp_path: Path) -> None:
    hourly = tenant_labels(PROD, "hourly", "standard")
    daily = tenant_labels(PROD, "daily", "standard")
    info = {"repository": "/srv/odoo-dr"}
    run_promtool_test(
        edge_rules,
        tmp_path,
        {
            "input_series": [
                {
                    "series": series(metric_names.TENANT_INFO, **hourly, **info),
                    "values": "1x120",
                },
                {
                    "series": series(metric_names.TENANT_INFO, **daily, **info),
                    "values": "1x120",
                },
                # Only `daily` has a snapshot and a drill.
                {
                    "series": series(
                        metric_names.LAST_SNAPSHOT_TIMESTAMP_SECONDS, **daily
                    ),
                    "values": "0x120",
                },
                {
                    "series": series(
                        metric_names.LAST_DRILL_TIMESTAMP_SECONDS, **daily
                    ),
                    "values": "0x120",
                },
            ],
            "promql_expr_test": [
                alerts_at(
                    "OdooDrBackupMissing",
                    "70m",
                    [
                        firing(
                            "OdooDrBackupMissing",
                            "warning",
                            "pending",
                            **hourly,
                            **info,
                        )
                    ],
                ),
                # The hourly tenant's stale threshold is 1h15min.
                alerts_at(
                    "OdooDrBackupMissing",
                    "80m",
                    [firing("OdooDrBackupMissing", "warning", **hourly, **info)],
                ),
                alerts_at(
                    "OdooDrDrillMissing",
                    "61m",
                    [firing("OdooDrDrillMissing", "warning", **hourly, **info)],
                ),
            ],
        },
    )


@needs_promtool
def test_drill_overdue_and_failed(edge_rules: Path, tmp_path: Path) -> None:
    daily = tenant_labels(PROD, "daily", "standard")
    nightly = tenant_labels(PROD, "nightly_one", "nightly")
    ledger = tenant_labels(PROD, "ledger", "critical")
    age = metric_names.LAST_DRILL_AGE_SECONDS
    success = metric_names.LAST_DRILL_SUCCESS
    run_promtool_test(
        edge_rules,
        tmp_path,
        {
            "input_series": [
                # 181 days against the standard tier's 180.
                {"series": series(age, **daily), "values": str(181 * 86400)},
                # 6 days against the nightly tier's 7.
                {"series": series(age, **nightly), "values": str(6 * 86400)},
                {"series": series(success, **daily), "values": "1"},
                {"series": series(success, **ledger), "values": "0"},
            ],
            "promql_expr_test": [
                alerts_at(
                    "OdooDrDrillOverdue",
                    "0m",
                    [firing("OdooDrDrillOverdue", "warning", **daily)],
                ),
                alerts_at(
                    "OdooDrDrillFailed",
                    "0m",
                    [firing("OdooDrDrillFailed", "critical", **ledger)],
                ),
            ],
        },
    )


@needs_promtool
def test_missing_files_alert(edge_rules: Path, tmp_path: Path) -> None:
    daily = tenant_labels(PROD, "daily", "standard")
    hourly = tenant_labels(PROD, "hourly", "standard")
    metric = metric_names.LAST_SNAPSHOT_MISSING_FILES
    run_promtool_test(
        edge_rules,
        tmp_path,
        {
            "input_series": [
                {"series": series(metric, **daily), "values": "3"},
                {"series": series(metric, **hourly), "values": "0"},
            ],
            "promql_expr_test": [
                alerts_at(
                    "OdooDrSnapshotMissingFiles",
                    "0m",
                    [firing("OdooDrSnapshotMissingFiles", "warning", **daily)],
                )
            ],
        },
    )


@needs_promtool
def test_pitr_archive_and_gap(edge_rules: Path, tmp_path: Path) -> None:
    stanza = {"environment": PROD, "stanza": STANZA}
    run_promtool_test(
        edge_rules,
        tmp_path,
        {
            "input_series": [
                # The ledger's 15min RPO is the environment's strictest: passed at
                # about 5 minutes.
                {
                    "series": series(metric_names.PITR_ARCHIVE_AGE_SECONDS, **stanza),
                    "values": "600+60x30",
                },
                {
                    "series": series(metric_names.PITR_WAL_GAP, **stanza),
                    "values": "0 0 1x30",
                },
            ],
            "promql_expr_test": [
                alerts_at("OdooDrPitrArchiveStale", "4m", []),
                alerts_at(
                    "OdooDrPitrArchiveStale",
                    "6m",
                    [firing("OdooDrPitrArchiveStale", "critical", **stanza)],
                ),
                alerts_at(
                    "OdooDrPitrWalGap",
                    "5m",
                    [firing("OdooDrPitrWalGap", "critical", "pending", **stanza)],
                ),
                alerts_at(
                    "OdooDrPitrWalGap",
                    "13m",
                    [firing("OdooDrPitrWalGap", "critical", **stanza)],
                ),
            ],
        },
    )


@needs_promtool
def test_server_rules(edge_rules: Path, tmp_path: Path) -> None:
    up = {"repository": "s3://backups/odoo"}
    run_promtool_test(
        edge_rules,
        tmp_path,
        {
            "input_series": [
                {"series": series(metric_names.REPOSITORY_UP, **up), "values": "0x30"},
                {
                    "series": series(
                        metric_names.REPOSITORY_UP, repository="/srv/odoo-dr"
                    ),
                    "values": "1x30",
                },
                # The last refresh finished at time 0 and none followed.
                {
                    "series": metric_names.STATUS_REFRESH_TIMESTAMP_SECONDS,
                    "values": "0x30",
                },
            ],
            "promql_expr_test": [
                alerts_at(
                    "OdooDrRepositoryUnreadable",
                    "11m",
                    [firing("OdooDrRepositoryUnreadable", "critical", **up)],
                ),
                alerts_at("OdooDrStatusStale", "9m", []),
                alerts_at(
                    "OdooDrStatusStale",
                    "11m",
                    [firing("OdooDrStatusStale", "critical")],
                ),
                alerts_at("OdooDrStatusAbsent", "11m", []),
            ],
        },
    )


@needs_promtool
def test_damaged_documents_rule(edge_rules: Path, tmp_path: Path) -> None:
    damaged = {"repository": "/srv/odoo-dr"}
    run_promtool_test(
        edge_rules,
        tmp_path,
        {
            "input_series": [
                {
                    "series": series(
                        metric_names.REPOSITORY_DAMAGED_DOCUMENTS, **damaged
                    ),
                    "values": "2x10",
                },
                {
                    "series": series(
                        metric_names.REPOSITORY_DAMAGED_DOCUMENTS, repository="/r"
                    ),
                    "values": "0x10",
                },
            ],
            "promql_expr_test": [
                alerts_at(
                    "OdooDrRepositoryDamagedDocuments",
                    "1m",
                    [firing("OdooDrRepositoryDamagedDocuments", "warning", **damaged)],
                )
            ],
        },
    )


@needs_promtool
def test_status_absent(edge_rules: Path, tmp_path: Path) -> None:
    run_promtool_test(
        edge_rules,
        tmp_path,
        {
            "input_series": [
                {
                    "series": series(metric_names.REPOSITORY_UP, repository="/r"),
                    "values": "1x10",
                }
            ],
            "promql_expr_test": [
                alerts_at(
                    "OdooDrStatusAbsent",
                    "6m",
                    [firing("OdooDrStatusAbsent", "critical")],
                )
            ],
        },
    )


# The command line.


def test_render_to_stdout_matches_file(
    edge_inventory_path: Path, edge_rules: Path
) -> None:
    result = run_cli("alerts", "render", "--inventory", str(edge_inventory_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == edge_rules.read_text()


def test_render_rejects_duplicate_tenant(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "environments": [
                    {"name": "prod", "tenants": [{"name": "a"}, {"name": "a"}]}
                ]
            }
        )
    )
    result = run_cli("alerts", "render", "--inventory", str(path))
    assert result.returncode == 2
    assert "tenant 'a' appears twice in environment 'prod'" in result.stderr


def test_render_rejects_bad_status_max_age(edge_inventory_path: Path) -> None:
    result = run_cli(
        "alerts",
        "render",
        "--inventory",
        str(edge_inventory_path),
        "--status-max-age",
        "soon",
    )
    assert result.returncode == 2
    assert "--status-max-age" in result.stderr


def test_render_rejects_unwritable_out(
    edge_inventory_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "missing-folder" / "rules.yaml"
    result = run_cli(
        "alerts", "render", "--inventory", str(edge_inventory_path), "--out", str(out)
    )
    assert result.returncode == 2
    assert f"failed to write {out}" in result.stderr
    assert not out.parent.exists()


def test_render_into_pipe_keeps_it(edge_inventory_path: Path, tmp_path: Path) -> None:
    # `--out /dev/null` or a named pipe is written to, not replaced by a file: a
    # rename into place would turn the device or pipe into a regular file.
    pipe = tmp_path / "rules.pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(
        target=lambda: received.append(pipe.read_bytes()), daemon=True
    )
    reader.start()
    result = run_cli(
        "alerts", "render", "--inventory", str(edge_inventory_path), "--out", str(pipe)
    )
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert yaml.safe_load(received[0])["groups"]
    assert [path.name for path in tmp_path.iterdir()] == ["rules.pipe"]


def test_render_status_max_age_seconds(edge_inventory_path: Path) -> None:
    inventory, _folder = load_inventory(edge_inventory_path)
    document = alerts.build_rules(inventory, 1800)
    stale = next(
        rule
        for rule in document["groups"][0]["rules"]
        if rule["alert"] == "OdooDrStatusStale"
    )
    assert stale["expr"].endswith("> 1800")


# The Grafana dashboard.


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The dashboard, written by the command line to a file."""
    folder = tmp_path_factory.mktemp("grafana")
    out = folder / "dashboard.json"
    result = run_cli("grafana", "render", "--out", str(out))
    assert result.returncode == 0, result.stderr
    # Written under a temporary name, then renamed: nothing else is left.
    assert [path.name for path in folder.iterdir()] == ["dashboard.json"]
    return json.loads(out.read_text())


def _targets(dashboard: dict) -> list[dict]:
    return [
        target
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_dashboard_render_matches_module(dashboard: dict) -> None:
    assert dashboard == build_dashboard()
    assert dashboard["schemaVersion"] == 39


def test_dashboard_variables(dashboard: dict) -> None:
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    assert set(variables) == {"DS_PROMETHEUS", "environment", "tier", "tenant"}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for name in ("environment", "tier", "tenant"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert "odoo_dr_tenant_info" in variables[name]["definition"]


def test_dashboard_panels(dashboard: dict) -> None:
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


def test_dashboard_panels_do_not_overlap(dashboard: dict) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        position = panel["gridPos"]
        for x in range(position["x"], position["x"] + position["w"]):
            for y in range(position["y"], position["y"] + position["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


def test_dashboard_shows_required_metrics(dashboard: dict) -> None:
    exprs = " ".join(target["expr"] for target in _targets(dashboard))
    for metric in (
        "odoo_dr_last_snapshot_age_seconds",
        "odoo_dr_backup_interval_seconds",
        "odoo_dr_last_drill_success",
        "odoo_dr_last_drill_rto_seconds",
        "odoo_dr_objective_rto_seconds",
        "odoo_dr_last_snapshot_missing_files",
        "odoo_dr_repository_stored_bytes",
        "odoo_dr_repository_dedup_ratio",
        "odoo_dr_pitr_window_start_timestamp_seconds",
        "odoo_dr_pitr_archive_age_seconds",
        "odoo_dr_review_score",
    ):
        assert metric in exprs


def test_dashboard_metric_names_in_contract(dashboard: dict) -> None:
    text = json.dumps(dashboard)
    used = set(re.findall(r"\bodoo_dr_[a-z0-9_]+", text))
    assert used
    assert used <= CONTRACT, used - CONTRACT


@needs_promtool
def test_dashboard_queries_parse(dashboard: dict, tmp_path: Path) -> None:
    """Check every panel query with promtool, as recording rules, after putting
    the values of All in place of the variables."""
    rules = []
    for index, target in enumerate(_targets(dashboard)):
        expr = re.sub(r"\$(environment|tier|tenant)\b", ".*", target["expr"])
        assert "$" not in expr, expr
        rules.append({"record": f"odoo_dr_dashboard_query_{index}", "expr": expr})
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = promtool("check", "rules", "--lint=none", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
