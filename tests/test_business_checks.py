"""Business checks: defaults on the demo database, user checks, read-only guards."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError

from conftest import query
from odoo_dr.engine.business_checks import (
    DEFAULT_CHECKS,
    BusinessCheck,
    Expectation,
    load_checks_file,
    run_business_checks,
)
from odoo_dr.engine.sql_guard import validate_select
from odoo_dr.engine.stock_totals import check_stock_totals, read_stock_totals
from odoo_dr.errors import RejectedError
from odoo_dr.repository.manifest import SnapshotManifest
from odoo_dr.review.inventory import InventoryError, load_inventory


def results_by_name(dbname: str, checks: list[BusinessCheck]) -> dict:
    with psycopg.connect(dbname=dbname) as connection:
        results = run_business_checks(connection, checks)
    return {result.name: result for result in results}


def test_defaults_pass_on_demo(odoo_database):
    summary = odoo_database()
    results = results_by_name(summary.database, DEFAULT_CHECKS)
    assert list(results) == [check.name for check in DEFAULT_CHECKS]
    for result in results.values():
        assert result.passed, result
        assert result.summary == "no rows, as expected", result
        assert result.seconds >= 0


def test_defaults_name_offending_rows(odoo_database):
    database = odoo_database().database
    # A warehouse whose view location is archived.
    query(
        database, "UPDATE stock_location SET active = false WHERE complete_name = 'ANR'"
    )
    # An open receipt into an archived location.
    query(
        database,
        "INSERT INTO stock_location (name, complete_name, usage, company_id, active)"
        " VALUES ('Old dock', 'RTM/Old dock', 'internal', 1, false)",
    )
    (picking,) = query(
        database,
        "UPDATE stock_picking SET location_dest_id = (SELECT id FROM stock_location"
        " WHERE complete_name = 'RTM/Old dock') WHERE id = (SELECT min(id) FROM"
        " stock_picking WHERE state = 'assigned') RETURNING name",
    )
    # Odoo 16 and 17 check barcodes in Python, without a unique constraint.
    query(
        database,
        "ALTER TABLE product_product DROP CONSTRAINT product_product_barcode_key",
    )
    query(
        database,
        "UPDATE product_product SET barcode = (SELECT barcode FROM product_product"
        " WHERE id = 1) WHERE id = 2",
    )
    query(database, "UPDATE stock_quant SET quantity = -5 WHERE id = 1")

    results = results_by_name(database, DEFAULT_CHECKS)

    warehouse = results["warehouse locations"]
    assert not warehouse.passed
    assert warehouse.summary == "1 rows, expected none"
    assert "warehouse=Antwerp cross-dock" in warehouse.problems[0]
    assert "kind=view location" in warehouse.problems[0]
    assert "problem=archived" in warehouse.problems[0]
    transfer = results["open transfer locations"]
    assert not transfer.passed
    assert f"picking={picking[0]}" in transfer.problems[0]
    assert "side=destination" in transfer.problems[0]
    barcodes = results["unique barcodes"]
    assert not barcodes.passed
    assert "product_id=1, other_product_id=2" in barcodes.problems[0]
    negative = results["no negative quants"]
    assert not negative.passed
    assert "quant_id=1" in negative.problems[0]
    assert "quantity=-5" in negative.problems[0]
    assert results["confirmed sale orders have lines"].passed
    assert results["confirmed purchase orders have lines"].passed

    every_partner = BusinessCheck(
        name="every partner", sql="SELECT id FROM res_partner", expect={"rows": 0}
    )
    (capped,) = results_by_name(database, [every_partner]).values()
    (count,) = query(database, "SELECT count(*) FROM res_partner")
    assert not capped.passed
    assert len(capped.problems) == 21
    assert capped.problems[-1] == f"... and {count[0] - 20:,} more rows"


VALUE_CASES = [
    (
        "SELECT count(*) FROM stock_warehouse",
        {"value": 2},
        True,
        "returned 2, as expected",
    ),
    (
        "SELECT count(*) FROM stock_warehouse",
        {"value": 3},
        False,
        "returned 2, expected 3",
    ),
    (
        "SELECT code FROM stock_warehouse WHERE id = 1",
        {"value": "RTM"},
        True,
        "returned RTM, as expected",
    ),
    (
        "SELECT count(*) FROM stock_quant",
        {"min": 1, "max": 1000},
        True,
        "returned 60, as expected",
    ),
    (
        "SELECT count(*) FROM stock_quant",
        {"max": 10},
        False,
        "returned 60, above the maximum 10",
    ),
    (
        "SELECT id FROM stock_warehouse",
        {"value": 1},
        False,
        "returned 2 rows of 1 columns, expected one value (value 1)",
    ),
]


def test_value_expectations(odoo_database):
    database = odoo_database().database
    checks = [
        BusinessCheck(name=f"case {number}", sql=sql, expect=expect)
        for number, (sql, expect, _passed, _summary) in enumerate(VALUE_CASES)
    ]
    results = list(results_by_name(database, checks).values())
    for result, (sql, _expect, passed, summary) in zip(
        results, VALUE_CASES, strict=True
    ):
        assert result.passed is passed, sql
        assert result.summary == summary, sql


def test_missing_tables_skip_checks(database_names, unique):
    name = f"odoo_dr_test_empty_{unique}"
    database_names.append(name)
    query("postgres", f'CREATE DATABASE "{name}"')
    results = results_by_name(name, DEFAULT_CHECKS)
    assert results["warehouse locations"].passed
    assert results["warehouse locations"].summary == "skipped: no table stock_warehouse"
    assert results["no negative quants"].summary == "skipped: no table stock_location"
    assert results["unique barcodes"].summary == "skipped: no table product_product"
    with psycopg.connect(dbname=name) as connection, connection.cursor() as cursor:
        assert read_stock_totals(cursor) is None

    slow = BusinessCheck(
        name="slow",
        sql="SELECT count(*) FROM generate_series(1, 1000000000)",
        expect={"min": 0},
        timeout=1,
    )
    (result,) = results_by_name(name, [slow]).values()
    assert not result.passed
    assert "statement timeout" in result.summary


def test_changed_stock_total_fails(cli, repository, odoo_database, filestore_root):
    database = odoo_database().database
    result = cli(
        "backup", database, "--repo", repository.location,
        "--filestore-root", str(filestore_root),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = repository.load_snapshot(result.stdout.strip())
    assert manifest.stock_totals is not None
    assert manifest.stock_totals.quants == 60
    assert [location.name for location in manifest.stock_totals.locations] == [
        "RTM/Stock",
        "ANR/Stock",
    ]
    with psycopg.connect(dbname=database) as connection:
        assert check_stock_totals(connection, manifest).passed
    query(
        database,
        "UPDATE stock_quant SET quantity = quantity + 0.5 WHERE id = (SELECT min(q.id)"
        " FROM stock_quant q JOIN stock_location l ON l.id = q.location_id"
        " WHERE l.complete_name = 'ANR/Stock')",
    )
    with psycopg.connect(dbname=database) as connection:
        changed = check_stock_totals(connection, manifest)
    assert not changed.passed
    assert len(changed.problems) == 1
    assert changed.problems[0].startswith("location 7 (ANR/Stock): 30 quants totalling")
    assert "snapshot had 30 quants totalling" in changed.problems[0]

    # Manifests written before stock totals were recorded still load.
    data = manifest.model_dump(mode="json")
    del data["stock_totals"]
    old = SnapshotManifest.model_validate(data)
    assert old.stock_totals is None
    with psycopg.connect(dbname=database) as connection:
        skipped = check_stock_totals(connection, old)
    assert skipped.passed
    assert skipped.summary == "skipped: the snapshot recorded no stock totals"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_drill_runs_user_checks(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    database = odoo_database().database
    backup = cli(
        "backup", database, "--repo", repository.location,
        "--filestore-root", str(filestore_root),
    )  # fmt: skip
    assert backup.returncode == 0, backup.stderr
    snapshot = backup.stdout.strip()
    checks = write(
        tmp_path / "checks.yaml",
        """
        - name: two warehouses
          sql: SELECT count(*) FROM stock_warehouse
          expect: {value: 2}
        - name: no quants
          sql: |
            SELECT q.id, q.quantity FROM stock_quant q WHERE q.quantity > -1
          expect:
            rows: 0
        """,
    )
    result = cli(
        "drill", snapshot, "--checks", str(checks), "--json",
        "--repo", repository.location,
    )  # fmt: skip
    assert result.returncode == 5, result.stdout + result.stderr
    record = json.loads(result.stdout)
    checks_by_name = {check["name"]: check for check in record["checks"]}
    assert list(checks_by_name)[6:] == [
        *(check.name for check in DEFAULT_CHECKS),
        "two warehouses",
        "no quants",
        "stock totals",
    ]
    assert checks_by_name["two warehouses"]["passed"]
    failed = checks_by_name["no quants"]
    assert not failed["passed"]
    assert failed["summary"] == "60 rows, expected none"
    assert len(failed["problems"]) == 21
    assert all(check["passed"] for check in record["checks"] if check is not failed)
    assert checks_by_name["stock totals"]["summary"].startswith("60 quants in 2 ")

    only_own = write(
        tmp_path / "own.yaml",
        """
        - name: two warehouses
          sql: SELECT count(*) FROM stock_warehouse
          expect: {min: 2, max: 2}
        """,
    )
    result = cli(
        "drill", snapshot, "--checks", str(only_own), "--no-default-checks", "--json",
        "--repo", repository.location,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    names = [check["name"] for check in json.loads(result.stdout)["checks"]]
    assert names[6:] == ["two warehouses"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            """
            - name: wipe
              sql: DELETE FROM res_partner
              expect: {rows: 0}
            """,
            2,
            "the query starts with 'DELETE'",
        ),
        (
            """
            - name: fine
              sql: SELECT 1
              expect: {value: 1}
            - name: two
              sql: SELECT 1; SELECT 2
              expect: {value: 1}
            """,
            5,
            "write a single statement",
        ),
        (
            """
            - name: broken
              sql: SELECT 1
              expect: {value: 1
            """,
            4,
            "invalid YAML",
        ),
        (
            """
            - name: typo
              sql: SELECT 1
              expect:
                rows: 0
                equals: 1
            """,
            5,
            "unknown key 'equals'",
        ),
    ],
    ids=["not-select", "two-statements", "bad-yaml", "unknown-expect-key"],
)
def test_invalid_checks_file_rejected(tmp_path, text, line, message):
    path = write(tmp_path / "checks.yaml", text)
    with pytest.raises(RejectedError) as raised:
        load_checks_file(path)
    assert raised.value.exit_code == 2
    assert f"{path}:{line}" in str(raised.value)
    assert message in str(raised.value)


def test_drill_rejects_invalid_checks_file(cli, tmp_path):
    path = write(
        tmp_path / "checks.yaml",
        """
        - name: two
          sql: SELECT 1; SELECT 2
          expect: {value: 1}
        """,
    )
    result = cli(
        "drill", "any", "--checks", str(path), "--repo", str(tmp_path / "none")
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}:2: [0].sql: write a single statement" in result.stderr


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "WITH x AS (DELETE FROM res_partner RETURNING id) SELECT count(*) FROM x",
            "'DELETE'",
        ),
        ("SELECT * INTO copy_of_partners FROM res_partner", "'INTO'"),
        ("SELECT nextval('res_partner_id_seq')", "calls nextval()"),
        ("SELECT \"setval\"('res_partner_id_seq', 1)", "calls setval()"),
        ("SELECT id FROM res_partner FOR UPDATE", "'UPDATE'"),
        ("SELECT 1 /* ; */ ; DROP TABLE res_partner", "single statement"),
        ("SELECT $$;$$; VACUUM", "single statement"),
    ],
)
def test_writing_sql_rejected(sql, message):
    with pytest.raises(ValueError) as raised:
        validate_select(sql)
    assert message in str(raised.value)


def test_literals_do_not_trip_the_guard():
    text = "SELECT 'delete; drop' AS note, $x$ update $x$ -- insert\n FROM res_partner;"
    assert validate_select(text) == text[:-1]


def test_writes_fail_in_read_only_transaction(odoo_database):
    database = odoo_database().database
    query(
        database,
        "CREATE FUNCTION wipe_partners() RETURNS bigint LANGUAGE sql AS"
        " 'DELETE FROM res_partner WHERE id > 2 RETURNING id'",
    )
    (before,) = query(database, "SELECT count(*) FROM res_partner")
    by_function = BusinessCheck(
        name="by function", sql="SELECT wipe_partners()", expect={"rows": 0}
    )
    # A check built without validation, as if the text check had been fooled.
    by_cte = BusinessCheck.model_construct(
        name="by cte",
        sql="WITH x AS (DELETE FROM res_partner RETURNING id) SELECT count(*) FROM x",
        expect=Expectation(rows=0),
        needs_tables=[],
        timeout=30,
    )
    results = results_by_name(database, [by_function, by_cte])
    assert not results["by function"].passed
    assert "read-only transaction" in results["by function"].summary
    assert not results["by cte"].passed
    assert "data-modifying" in results["by cte"].summary
    assert query(database, "SELECT count(*) FROM res_partner") == [before]


def test_expectation_needs_one_kind():
    with pytest.raises(ValidationError, match="expect one of"):
        Expectation.model_validate({"rows": 0, "value": 1})
    with pytest.raises(ValidationError, match="expect one of"):
        Expectation.model_validate({})
    with pytest.raises(ValidationError):
        Expectation.model_validate({"rows": 3})


def test_checks_file_rejects_duplicate_names(tmp_path):
    path = write(
        tmp_path / "checks.yaml",
        """
        - {name: same, sql: SELECT 1, expect: {value: 1}}
        - {name: same, sql: SELECT 2, expect: {value: 2}}
        """,
    )
    with pytest.raises(RejectedError, match="two checks are named 'same'"):
        load_checks_file(path)


def test_inventory_tenant_checks(tmp_path):
    inventory = write(
        tmp_path / "inventory.yaml",
        """
        environments:
          - name: prod
            tenants:
              - name: acme
                default_checks: false
                checks:
                  - name: two warehouses
                    sql: SELECT count(*) FROM stock_warehouse
                    expect: {value: 2}
        """,
    )
    loaded, _root = load_inventory(inventory)
    tenant = loaded.environments[0].tenants[0]
    assert tenant.default_checks is False
    assert [check.name for check in tenant.checks] == ["two warehouses"]

    broken = write(
        tmp_path / "broken.yaml",
        """
        environments:
          - name: prod
            tenants:
              - name: acme
                checks:
                  - name: wipe
                    sql: TRUNCATE res_partner
                    expect: {rows: 0}
        """,
    )
    with pytest.raises(InventoryError) as raised:
        load_inventory(broken)
    assert f"{broken}:7:" in str(raised.value)
    assert "the query starts with 'TRUNCATE'" in str(raised.value)
