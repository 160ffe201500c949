"""Backups and drills of real data: an Odoo 9 dump and an Odoo 16 filestore sample."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import odoo9
from conftest import query
from odoo_dr.demo.builder import sample_files, sample_folder
from odoo_dr.engine.business_checks import DEFAULT_CHECKS
from odoo_dr.engine.restore import load_index
from odoo_dr.odoo.filestore import CHECKLIST

# The 18 tables that the dump's 85 complete COPY blocks fill, with their row counts.
ODOO9_ROWS = {
    "account_account": 29,
    "account_account_account_tag": 8,
    "account_account_financial_report_type": 14,
    "account_account_tag": 3,
    "account_account_template": 26,
    "account_account_template_account_tag": 8,
    "account_account_type": 16,
    "account_chart_template": 1,
    "account_financial_report": 8,
    "account_journal": 6,
    "account_journal_inbound_payment_method_rel": 6,
    "account_journal_outbound_payment_method_rel": 6,
    "account_payment_method": 2,
    "account_payment_term": 3,
    "account_payment_term_line": 3,
    "account_tax": 2,
    "account_tax_group": 1,
    "account_tax_template": 2,
}
DRILL_CHECKS = [
    "row counts",
    "filestore",
    "sequences",
    "modules",
    "neutralized",
    "copy identity",
]
# The business checks every drill runs by default, after the checks above.
BUSINESS_CHECKS = [check.name for check in DEFAULT_CHECKS]
# Parameters a drill's copy gains: a new identity, then the neutralization flag.
COPY_PARAMETERS = {
    "database.uuid",
    "database.secret",
    "database.create_date",
    "database.is_neutralized",
}
SAMPLE_FILES = 96
SAMPLE_MARKERS = 89


def table_row_counts(dbname: str) -> dict[str, int]:
    """Return the row count of every table in schema public, children excluded."""
    with psycopg.connect(dbname=dbname, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r'"
            " AND relnamespace = 'public'::regnamespace ORDER BY relname"
        ).fetchall()
        counts = {}
        for (table,) in tables:
            statement = sql.SQL("SELECT count(*) FROM ONLY {}").format(
                sql.Identifier("public", table)
            )
            counts[table] = connection.execute(statement).fetchone()[0]
    return counts


def backup_snapshot(cli, repository, name: str, root: Path) -> str:
    result = cli(
        "backup",
        name,
        "--repo",
        repository.location,
        "--filestore-root",
        str(root),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def drill_json(cli, repository, name: str, *extra: str):
    """Drill the latest snapshot of `name` and return the result and its record."""
    result = cli("drill", name, "--repo", repository.location, "--json", *extra)
    assert result.stdout, result.stderr
    return result, json.loads(result.stdout)


def checks_by_name(record: dict) -> dict[str, dict]:
    return {check["name"]: check for check in record["checks"]}


@pytest.fixture
def odoo9_name(database_names: list[str], unique: str) -> str:
    name = f"Odoo9 Real {unique}"
    database_names.append(name)
    return name


def test_odoo9_dump_complete_part():
    part = odoo9.complete_part()
    assert len(part.copied_tables) == 85
    assert part.copied_tables[0] == "account_account"
    assert part.copied_tables[-1] == "account_unreconcile"
    assert part.incomplete_table == "accounting_report"
    assert part.removed == {"default_with_oids": 1, "owner": 577, "setval": 0}
    assert "COPY accounting_report" not in part.text
    assert odoo9.ROLE not in part.text.replace("Owner: odoouser", "")
    assert part.text.count("SELECT pg_catalog.setval(") == 55


def test_odoo9_load_matches_dump(odoo9_name):
    odoo9.load(odoo9_name, odoo9.complete_part())
    counts = table_row_counts(odoo9_name)
    assert len(counts) == 329
    assert {table: rows for table, rows in counts.items() if rows} == ODOO9_ROWS
    assert counts["ir_attachment"] == 0
    assert counts["ir_module_module"] == 0
    constraints = query(
        odoo9_name,
        "SELECT contype, count(*) FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace GROUP BY contype",
    )
    # Primary keys, unique constraints and foreign keys were in the missing tail.
    assert constraints == [("c", 10)]


def test_odoo9_backup_and_drill(
    cli, repository, odoo9_name, filestore_root, database_names, tmp_path
):
    odoo9.load(odoo9_name, odoo9.complete_part())
    source_counts = table_row_counts(odoo9_name)
    # ir_attachment is empty, so no file is referenced and the folder is absent.
    assert not (filestore_root / odoo9_name).exists()
    snapshot_id = backup_snapshot(cli, repository, odoo9_name, filestore_root)
    manifest = repository.find_snapshot(snapshot_id)
    assert manifest.tenant == odoo9_name
    assert manifest.warnings == []
    assert manifest.filestore.referenced_files == 0
    assert manifest.filestore.extra_files == 0
    assert manifest.filestore.attachments_in_database == 0
    assert manifest.filestore.problems == []
    assert manifest.odoo.modules == {}
    assert manifest.odoo.uuid is None
    assert manifest.row_counts["account_account"] == 29
    assert manifest.row_counts["account_journal"] == 6
    assert {
        table: source_counts[table] for table in manifest.row_counts
    } == manifest.row_counts

    result, record = drill_json(
        cli, repository, odoo9_name, "--keep", "--temp-dir", str(tmp_path)
    )
    copy = record["scratch_database"]
    database_names.append(copy)
    assert result.returncode == 0, result.stderr
    assert record["snapshot_id"] == snapshot_id
    assert record["passed"] is True
    checks = checks_by_name(record)
    names = list(checks)
    assert names[: len(DRILL_CHECKS)] == DRILL_CHECKS
    assert names[len(DRILL_CHECKS) :][: len(BUSINESS_CHECKS)] == BUSINESS_CHECKS
    for name, check in checks.items():
        assert check["passed"], (name, check["problems"])
    # 235 sequences are owned by a column. The other 8 (ir_sequence_001 to 008) number
    # Odoo documents and belong to no column, so the check skips them.
    assert checks["sequences"]["summary"].startswith("235 sequences")
    assert checks["filestore"]["summary"].startswith("0 referenced files")

    copy_counts = table_row_counts(copy)
    assert copy_counts.pop("ir_config_parameter") == len(COPY_PARAMETERS)
    assert source_counts.pop("ir_config_parameter") == 0
    assert copy_counts == source_counts
    parameters = {row[0] for row in query(copy, "SELECT key FROM ir_config_parameter")}
    assert parameters == COPY_PARAMETERS


def test_odoo9_drill_names_sequences_behind(
    cli, repository, odoo9_name, filestore_root
):
    """Load the dump without its setval calls, leaving 13 sequences behind."""
    part = odoo9.complete_part(keep_setval=False)
    assert part.removed["setval"] == 55
    odoo9.load(odoo9_name, part)
    # Independent of odoo-dr: the tables with rows whose id column has a sequence.
    rows = query(
        odoo9_name,
        "SELECT c.relname, pg_get_serial_sequence(quote_ident(c.relname), 'id')"
        " FROM pg_class c"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'id'"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)",
        (list(ODOO9_ROWS),),
    )
    expected = {f"{table}.id" for table, sequence in rows if sequence}
    assert len(expected) == 13

    backup_snapshot(cli, repository, odoo9_name, filestore_root)
    result, record = drill_json(cli, repository, odoo9_name)
    assert result.returncode == 5, result.stderr
    assert record["passed"] is False
    checks = checks_by_name(record)
    sequences = checks["sequences"]
    assert not sequences["passed"]
    assert sequences["summary"] == "13 of 235 sequences would reuse existing ids"
    named = {problem.split(":")[0] for problem in sequences["problems"]}
    assert named == expected
    assert (
        "account_account.id: sequence account_account_id_seq would return 1, "
        "column max is 29" in sequences["problems"]
    )
    for name in DRILL_CHECKS:
        if name != "sequences":
            assert checks[name]["passed"], (name, checks[name]["problems"])


def test_odoo9_neutralize_payment_acquirer(
    cli, repository, odoo9_name, filestore_root, database_names, tmp_path
):
    odoo9.load(odoo9_name, odoo9.complete_part())
    # The truncated dump has no payment_acquirer rows, so add a live one.
    query(
        odoo9_name,
        "INSERT INTO payment_acquirer (name, provider, company_id, view_template_id,"
        " auto_confirm, environment, website_published)"
        " VALUES ('Paypal', 'paypal', 1, 1, 'at_pay_confirm', 'prod', true)",
    )
    snapshot_id = backup_snapshot(cli, repository, odoo9_name, filestore_root)
    target = f"{odoo9_name} neutralized"
    database_names.append(target)
    result = cli(
        "restore",
        snapshot_id,
        "--target",
        target,
        "--copy",
        "--neutralize",
        "--filestore-root",
        str(tmp_path / "restored"),
        "--repo",
        repository.location,
    )
    assert result.returncode == 0, result.stderr
    live = query(target, "SELECT name FROM payment_acquirer WHERE environment = 'prod'")
    assert live == []


def test_sample_filestore_backup_and_drill(
    cli, repository, odoo_database, filestore_root
):
    summary = odoo_database()
    assert summary.files == SAMPLE_FILES
    # Keep only the attachments of the sample files: the builder also adds one kept in
    # the database and one URL, neither with a file.
    query(summary.database, "DELETE FROM ir_attachment WHERE store_fname IS NULL")
    folder = filestore_root / summary.database
    shutil.copytree(sample_folder(), folder, dirs_exist_ok=True)
    markers = [path for path in (folder / CHECKLIST).rglob("*") if path.is_file()]
    assert len(markers) == SAMPLE_MARKERS
    sample_paths = {str(path.relative_to(sample_folder())) for path in sample_files()}
    rows = query(
        summary.database, "SELECT store_fname, checksum, file_size FROM ir_attachment"
    )
    assert {store_fname for store_fname, _checksum, _size in rows} == sample_paths
    assert len(rows) == SAMPLE_FILES
    for store_fname, checksum, size in rows:
        content = (folder / store_fname).read_bytes()
        assert store_fname == f"{checksum[:2]}/{checksum}"
        assert hashlib.sha1(content).hexdigest() == checksum
        assert len(content) == size

    snapshot_id = backup_snapshot(cli, repository, summary.database, filestore_root)
    manifest = repository.find_snapshot(snapshot_id)
    assert manifest.warnings == []
    assert manifest.filestore.problems == []
    assert manifest.filestore.referenced_files == SAMPLE_FILES
    assert manifest.filestore.extra_files == 0
    assert manifest.filestore.checklist_markers == SAMPLE_MARKERS
    assert manifest.filestore.attachments_in_database == 0
    assert manifest.filestore.referenced_bytes == sum(size for _, _, size in rows)
    stored = {entry.path for entry in load_index(repository, manifest)}
    assert stored == sample_paths

    result, record = drill_json(cli, repository, summary.database)
    assert result.returncode == 0, result.stderr
    assert record["passed"] is True
    checks = checks_by_name(record)
    names = list(checks)
    assert names[: len(DRILL_CHECKS)] == DRILL_CHECKS
    assert names[len(DRILL_CHECKS) :][: len(BUSINESS_CHECKS)] == BUSINESS_CHECKS
    for name, check in checks.items():
        assert check["passed"], (name, check["problems"])
    assert checks["filestore"]["summary"].startswith(f"{SAMPLE_FILES} referenced files")
