"""Coverage rules on their pass and fail fixtures."""

from __future__ import annotations

import pytest
from tests.review.rule_cases import check_case, fixture_cases, rule_findings

from odoo_dr.review.engine import ReviewOptions, build_context, run_review
from odoo_dr.review.rules.coverage import schedule_offset

CASES = fixture_cases("COV-")


@pytest.mark.parametrize(("rule_id", "case"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_rule_fixture(materialize, rule_id, case):
    check_case(materialize, rule_id, case)


@pytest.mark.parametrize(
    ("database", "files", "offset"),
    [
        ("0 2 * * *", "0 2 * * *", 0),
        ("0 2 * * *", "10 2 * * *", 600),
        ("0 2 * * *", "30 5 * * *", 12600),
        ("0 * * * *", "30 5 * * *", 1800),
        ("0 2 * * *", "0 2 * * 0", 0),
        ("0 2 * * *", "nonsense", None),
    ],
)
def test_schedule_offset(database, files, offset):
    assert schedule_offset(database, files) == offset


def test_cluster_wide_backup_covers_every_database(pg_plain, tmp_path):
    inventory = tmp_path / "inventory.yaml"
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "backup.yaml").write_text(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: full}\n"
        "spec:\n  schedule: '0 1 * * *'\n  jobTemplate:\n    spec:\n      template:\n"
        "        spec:\n          containers:\n            - name: b\n"
        "              image: pgbackrest\n"
        "              command: [pgbackrest, --stanza=main, backup]\n"
    )
    inventory.write_text(
        "environments:\n  - name: p\n    evidence:\n"
        f"      postgres_dsn: '{pg_plain.dsn}'\n      manifests: [manifests]\n"
        "    tenants: [{name: acme}]\n"
    )
    result = run_review(inventory, ReviewOptions(live=True))
    findings = rule_findings(result, "COV-003")
    assert {f.outcome.resource for f in findings} == {
        "database/acme",
        "database/forgotten_copy",
    }
    assert all(f.passed for f in findings)
    assert all("pgbackrest CronJob" in f.outcome.message for f in findings)


COMPOSE_BACKUPS = {
    "odoo-dr in a loop": (
        "  backup:\n    image: registry.example.com/odoo-dr:0.9\n"
        "    entrypoint: [/bin/sh, -c]\n"
        "    command:\n      - >-\n        while true; do\n"
        '        for db in acme beta; do odoo-dr backup "$$db" '
        "--odoo-config /etc/odoo/odoo.conf; done;\n"
        "        sleep $$(( (86400 + 7200 - $$(date +%s) % 86400) % 86400 ));\n"
        "        done\n"
        "    volumes:\n      - ./odoo.conf:/etc/odoo/odoo.conf:ro\n"
        "      - filestore:/var/lib/odoo:ro\n",
        "odoo-dr loop",
        86400,
    ),
    "pg_dump from cron": (
        "  backup:\n    image: postgres:16\n"
        "    command: >-\n      sh -c \"echo '30 1 * * * pg_dump -h db -Fc -d acme "
        "-f /backups/acme.dump' | crontab - && crond -f\"\n",
        "pg_dump cron",
        86400,
    ),
    "pg_dumpall with sleep": (
        "  backup:\n    image: postgres:16\n"
        "    command: [sh, -c, 'while :; do pg_dumpall -h db > /b/all.sql; "
        "sleep 6h; done']\n",
        "pg_dumpall loop",
        21600,
    ),
    "backup image with a schedule": (
        "  backup:\n    image: prodrigestivill/postgres-backup-local:16\n"
        "    environment:\n      POSTGRES_HOST: db\n      POSTGRES_DB: acme\n"
        "      SCHEDULE: '@every 1h'\n",
        "pg_dump postgres-backup-local",
        None,
    ),
}


def compose_platform(folder, backup: str) -> None:
    (folder / "docker-compose.yml").write_text(
        "services:\n  db:\n    image: postgres:16\n"
        "  web:\n    image: odoo:17.0\n"
        "    volumes:\n      - filestore:/var/lib/odoo\n"
        "      - ./odoo.conf:/etc/odoo/odoo.conf:ro\n"
        + backup
        + "volumes:\n  filestore:\n"
    )
    (folder / "odoo.conf").write_text("[options]\ndb_name = acme\nlist_db = False\n")
    (folder / "inventory.yaml").write_text(
        "environments:\n  - name: p\n"
        "    evidence: {compose: [docker-compose.yml], odoo_conf: [odoo.conf]}\n"
        "    tenants: [{name: acme, tier: standard}]\n"
    )


@pytest.mark.parametrize("case", sorted(COMPOSE_BACKUPS))
def test_compose_backup_service_found(tmp_path, case):
    backup, kind, interval = COMPOSE_BACKUPS[case]
    compose_platform(tmp_path, backup)
    result = run_review(tmp_path, ReviewOptions(live=False))
    [database] = rule_findings(result, "COV-001")
    assert database.passed, database.outcome.message
    assert kind in database.outcome.message
    context = build_context(tmp_path, ReviewOptions(live=False))
    [mechanism] = [m for m in context.environments[0].mechanisms if m.kind == kind]
    assert mechanism.interval == interval
    assert mechanism.workload.name == "backup"


def test_odoo_dr_loop_databases_and_filestore(tmp_path):
    backup, _kind, _interval = COMPOSE_BACKUPS["odoo-dr in a loop"]
    compose_platform(tmp_path, backup)
    result = run_review(tmp_path, ReviewOptions(live=False))
    [filestore] = rule_findings(result, "COV-002")
    assert filestore.passed
    [rpo] = rule_findings(result, "OBJ-002")
    assert rpo.passed
    assert "odoo-dr loop runs every 1d at most" in rpo.outcome.message
    context = build_context(tmp_path, ReviewOptions(live=False))
    [mechanism] = context.environments[0].mechanisms
    assert mechanism.databases == {"acme", "beta"}
    # The backup service mounts odoo.conf and the filestore, but is no Odoo server.
    servers = {f.outcome.resource for f in rule_findings(result, "FS-001")}
    assert servers == {"ComposeService/web"}


def test_backup_run_once_is_not_scheduled(tmp_path):
    compose_platform(
        tmp_path,
        "  backup:\n    image: postgres:16\n"
        "    command: [pg_dump, -h, db, -d, acme, -f, /b/acme.dump]\n",
    )
    result = run_review(tmp_path, ReviewOptions(live=False))
    [database] = rule_findings(result, "COV-001")
    assert not database.passed


def test_restic_loop_of_filestore_volume(tmp_path):
    compose_platform(
        tmp_path,
        "  files:\n    image: restic/restic:0.17\n"
        "    entrypoint: [/bin/sh, -c]\n"
        "    command: ['while true; do restic backup /data; sleep 3600; done']\n"
        "    volumes:\n      - filestore:/data:ro\n",
    )
    result = run_review(tmp_path, ReviewOptions(live=False))
    [filestore] = rule_findings(result, "COV-002")
    assert filestore.passed, filestore.outcome.message
    assert "file copy loop" in filestore.outcome.message
