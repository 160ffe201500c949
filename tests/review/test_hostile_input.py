"""Hostile and odd input: every problem names its file, line and field, and
nothing stops the review with an unexpected error."""

from __future__ import annotations

from pathlib import Path

import pytest

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.evidence.manifests import load_manifests
from odoo_dr.review.inventory import InventoryError, load_inventory
from odoo_dr.review.yamlio import MAX_VALUES, YamlError, _check_size, load_documents

OFFLINE = ReviewOptions(live=False)

# Nine nested levels of nine aliases each: 9**9 strings once expanded.
LAUGHS = "".join(
    [
        'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n',
        *(
            f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n"
            for level in range(1, 9)
        ),
    ]
)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def inventory(folder: Path, evidence: str = "", extra: str = "") -> Path:
    return write(
        folder / "inventory.yaml",
        f"{extra}environments:\n  - name: production\n"
        f"    evidence: {{{evidence}}}\n    tenants: [{{name: acme}}]\n",
    )


def test_alias_bomb_in_manifest_is_skipped(tmp_path):
    data = "".join(f"  {line}\n" for line in LAUGHS.splitlines())
    write(
        tmp_path / "k8s" / "bomb.yaml",
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bomb}}\ndata:\n{data}",
    )
    write(
        tmp_path / "k8s" / "fine.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n",
    )
    manifests = load_manifests([tmp_path / "k8s"])
    assert [item.name for item in manifests.objects] == ["fine"]
    (problem,) = manifests.problems
    assert problem.startswith(f"{tmp_path / 'k8s' / 'bomb.yaml'}:1: invalid YAML: ")
    assert f"more than {MAX_VALUES:,} values" in problem


def test_alias_bomb_in_inventory_rejected(tmp_path):
    path = inventory(tmp_path, extra=LAUGHS.replace("a", "x-a"))
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    (problem,) = raised.value.problems
    assert problem.startswith(f"{path}:1: invalid YAML: its aliases expand it")


def test_aliases_within_the_limit_are_read(tmp_path):
    # Compose files share settings through anchors and merge keys.
    path = write(
        tmp_path / "compose.yaml",
        "x-env: &env {PGHOST: db}\nservices:\n"
        "  odoo: {image: odoo, environment: *env}\n"
        "  cron: {image: odoo, environment: {<<: *env, EXTRA: '1'}}\n",
    )
    (document,) = load_documents(path)
    assert document["services"]["cron"]["environment"]["PGHOST"] == "db"


def test_cyclic_document_refused():
    cyclic: list = ["a"]
    cyclic.append(cyclic)
    assert _check_size({"key": cyclic}) == (
        "an alias names a value that contains it; remove the alias"
    )


def test_deep_nesting_is_an_error_not_a_crash(tmp_path):
    write(
        tmp_path / "k8s" / "deep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: "
        + "[" * 5000
        + "]" * 5000
        + "\n",
    )
    manifests = load_manifests([tmp_path / "k8s"])
    (problem,) = manifests.problems
    assert problem.startswith(f"{tmp_path / 'k8s' / 'deep.yaml'}")
    assert "invalid YAML" in problem
    assert "nest" in problem
    path = write(tmp_path / "inventory.yaml", "version: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(InventoryError, match="invalid YAML: .*nest"):
        load_inventory(path)


def test_document_holding_itself_is_skipped(tmp_path):
    write(
        tmp_path / "k8s" / "self.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: self}\n"
        "data: &data\n  self: *data\n",
    )
    manifests = load_manifests([tmp_path / "k8s"])
    assert manifests.objects == []
    (problem,) = manifests.problems
    assert "an alias names a value that contains it" in problem


def test_file_not_utf8_names_line(tmp_path):
    write(
        tmp_path / "k8s" / "latin1.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n".encode(
            "latin-1"
        ),
    )
    write(tmp_path / "k8s" / "odoo.conf", b"[options]\ndb_name = caf\xe9\n")
    manifests = load_manifests([tmp_path / "k8s"])
    assert sorted(manifests.problems) == [
        f"{tmp_path / 'k8s' / 'latin1.yaml'}:3: cannot read: byte 0xe9 is not UTF-8 "
        "text; save the file as UTF-8",
        f"{tmp_path / 'k8s' / 'odoo.conf'}:2: cannot read: byte 0xe9 is not UTF-8 "
        "text; save the file as UTF-8",
    ]


def test_invalid_date_is_text(tmp_path):
    # A value shaped like a date that is none (month 13) stays text, rather than
    # stopping the reading of the file.
    path = write(tmp_path / "cm.yaml", "a: 2026-13-01\nb: 2026-12-01\n")
    (document,) = load_documents(path)
    assert document["a"] == "2026-13-01"
    assert str(document["b"]) == "2026-12-01"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            "postgres_dsn: 'host=db password=hunter2 oops'",
            "evidence.postgres_dsn: not a libpq connection string or URI",
        ),
        (
            "redis_url: 'http://:hunter2@cache:6379'",
            "evidence.redis_url: not a Redis URL",
        ),
        (
            "redis_url: 'redis://:hunter2@cache:port/0'",
            "evidence.redis_url: the port of the Redis URL is not a number",
        ),
        (
            "s3: {bucket: b, endpoint_url: 'http://KEY:hunter2@127.0.0.1:9000'}",
            "evidence.s3.endpoint_url: credentials do not belong in the URL",
        ),
        (
            "s3: {bucket: b, endpoint_url: 'minio:9000'}",
            "evidence.s3.endpoint_url: not a URL",
        ),
    ],
)
def test_live_addresses_checked_without_quoting_them(tmp_path, fields, message):
    path = inventory(tmp_path, fields)
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    (problem,) = raised.value.problems
    assert problem.startswith(f"{path}:3: environments[0].{message}")
    assert "hunter2" not in problem
    assert "oops" not in problem


@pytest.mark.parametrize(
    ("extra", "tenant", "message"),
    [
        (
            "",
            "{name: acme, objectives: {zone_loss: {rto: 1h, rpo: -60}}}",
            "objectives.zone_loss.rpo: invalid duration -60",
        ),
        ("tiers:\n  t: {drill_every: 0}\n", "{name: acme, tier: t}", "drill_every"),
        (
            "tiers:\n  t: {drill_every: 1d, min_replicas: 0}\n",
            "{name: acme, tier: t}",
            "min_replicas",
        ),
    ],
)
def test_impossible_numbers_rejected(tmp_path, extra, tenant, message):
    path = write(
        tmp_path / "inventory.yaml",
        f"{extra}environments:\n  - name: p\n    tenants: [{tenant}]\n",
    )
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    (problem,) = raised.value.problems
    assert message in problem
    assert not problem.split(": ", 2)[2].startswith("Value error")


def test_retention_counts_not_negative(tmp_path):
    path = write(
        tmp_path / "inventory.yaml",
        "environments:\n  - name: p\n    retention: {daily: -1}\n",
    )
    with pytest.raises(InventoryError) as raised:
        load_inventory(path)
    assert raised.value.problems == [
        f"{path}:3: environments[0].retention.daily: Input should be greater than "
        "or equal to 0"
    ]


@pytest.mark.parametrize("schedule", ["[0, 2, '*', '*', '*']", "1.5", "{at: 2}"])
def test_schedule_of_odd_type_read_as_none(tmp_path, schedule):
    write(
        tmp_path / "k8s" / "backups.yaml",
        "apiVersion: postgresql.cnpg.io/v1\nkind: ScheduledBackup\n"
        f"metadata: {{name: nightly}}\nspec:\n  schedule: {schedule}\n"
        "  cluster: {name: pg}\n"
        "---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: dump}\n"
        f"spec:\n  schedule: {schedule}\n  jobTemplate:\n    spec:\n      template:\n"
        "        spec:\n          containers:\n"
        "            - {name: dump, image: postgres:16, command: [pg_dump, acme]}\n",
    )
    inventory(tmp_path, "manifests: [k8s]")
    result = run_review(tmp_path, OFFLINE)
    rpo = [item for item in result.findings if item.rule.id == "OBJ-002"]
    assert rpo
    assert result.evidence_problems == []


def test_suppression_expiry_with_time_rejected(tmp_path):
    from odoo_dr.review.suppressions import SuppressionError, load_suppressions

    path = write(
        tmp_path / "accepted.yaml",
        "- {rule: SEC-001, reason: ok, expires: 2026-06-30}\n"
        "- {rule: SEC-001, reason: ok, expires: 2026-06-30T10:00:00}\n",
    )
    with pytest.raises(SuppressionError) as raised:
        load_suppressions(path)
    assert str(raised.value) == (
        f"{path}:2: invalid expires '2026-06-30 10:00:00': write a date as "
        "YYYY-MM-DD, without a time"
    )


def test_suppression_expiry_invalid_date(tmp_path):
    from odoo_dr.review.suppressions import SuppressionError, load_suppressions

    path = write(
        tmp_path / "accepted.yaml",
        "- {rule: SEC-001, reason: ok, expires: 2026-13-01}\n",
    )
    with pytest.raises(SuppressionError) as raised:
        load_suppressions(path)
    assert str(raised.value) == (
        f"{path}:1: invalid expires '2026-13-01': write a date as YYYY-MM-DD"
    )


def test_yaml_error_carries_location(tmp_path):
    path = write(tmp_path / "x.yaml", "a: [\n")
    with pytest.raises(YamlError) as raised:
        load_documents(path)
    assert raised.value.location.file == str(path)


def test_file_listed_twice_read_once(tmp_path):
    write(tmp_path / "k8s" / "odoo.conf", "[options]\ndb_name = acme\nlist_db = True\n")
    inventory(tmp_path, "manifests: [k8s, k8s/odoo.conf], odoo_conf: [k8s/odoo.conf]")
    result = run_review(tmp_path, OFFLINE)
    list_db = [item for item in result.findings if item.rule.id == "SEC-001"]
    assert len(list_db) == 1
    assert list_db[0].outcome.passed is False
