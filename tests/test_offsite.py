"""An off-site repository end to end: S3, encryption and Object Lock together.

A backup goes to an encrypted repository in a bucket with Object Lock, is
restored and drilled from there, and prune leaves its locked snapshots in place.
"""

from __future__ import annotations

import json
import subprocess

import boto3
import pytest

from conftest import BUCKET_REGION, LOCKED_BUCKET, query, restore_copy, run_cli
from test_backup_restore import file_hashes

PASSPHRASE = "correct horse battery staple for the off-site test"


@pytest.fixture
def offsite(s3_endpoint, monkeypatch, unique) -> str:
    """Return an s3:// location in the locked bucket, with boto3 and the key set."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("ODOO_DR_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("ODOO_DR_KEY_FILE", raising=False)
    return f"s3://{LOCKED_BUCKET}/offsite-{unique}"


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def stored_objects(endpoint: str, location: str) -> dict[str, bytes]:
    bucket, prefix = location.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3", endpoint_url=endpoint, region_name=BUCKET_REGION)
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix + "/"
    )
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {
        key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys
    }


def test_encrypted_locked_s3_round_trip(
    offsite, s3_endpoint, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    ok(run_cli("init", "--repo", offsite, "--encrypt", "--lock-days", "2"))
    snapshot_id = ok(
        run_cli(
            "backup",
            summary.database,
            "--filestore-root",
            str(filestore_root),
            "--repo",
            offsite,
        )
    )

    objects = stored_objects(s3_endpoint, offsite)
    tenant = summary.database.encode()
    leaking = [key for key, data in objects.items() if tenant in data]
    assert leaking == [], "the tenant name is stored in clear"
    assert not any(summary.database in key for key in objects)

    target = summary.database + "_offsite"
    database_names.append(target)
    restored = tmp_path / "restored"
    restore_copy(offsite, snapshot_id, target, restored)
    for table in ("stock_move", "account_move_line", "res_partner"):
        source = query(summary.database, f"SELECT count(*) FROM {table}")
        assert query(target, f"SELECT count(*) FROM {table}") == source, table
    assert file_hashes(restored / target) == file_hashes(
        filestore_root / summary.database
    )

    record = json.loads(ok(run_cli("drill", snapshot_id, "--json", "--repo", offsite)))
    assert record["passed"] is True
    verified = run_cli("verify", "--read-data", "--repo", offsite)
    assert verified.returncode == 0, verified.stderr


def test_prune_leaves_locked_snapshots(
    offsite, odoo_database, filestore_root, database_names
):
    summary = odoo_database()
    ok(run_cli("init", "--repo", offsite, "--encrypt", "--lock-days", "2"))
    snapshots = [
        ok(
            run_cli(
                "backup",
                summary.database,
                "--filestore-root",
                str(filestore_root),
                "--repo",
                offsite,
            )
        )
        for _attempt in range(2)
    ]
    result = run_cli("prune", "--keep-last", "1", "--repo", offsite)
    assert result.returncode == 0, result.stderr
    assert "locked until" in result.stdout
    listed = json.loads(ok(run_cli("snapshots", "--json", "--repo", offsite)))
    assert sorted(item["id"] for item in listed) == sorted(snapshots)


def test_wrong_passphrase_on_s3_changes_nothing(
    offsite, s3_endpoint, odoo_database, filestore_root, monkeypatch
):
    summary = odoo_database()
    ok(run_cli("init", "--repo", offsite, "--encrypt"))
    before = stored_objects(s3_endpoint, offsite)
    result = run_cli(
        "backup",
        summary.database,
        "--filestore-root",
        str(filestore_root),
        "--repo",
        offsite,
        env={"ODOO_DR_PASSPHRASE": "not the passphrase"},
    )
    assert result.returncode == 2, result.stderr
    assert PASSPHRASE not in result.stderr
    assert "not the passphrase" not in result.stderr
    assert stored_objects(s3_endpoint, offsite) == before


def test_copy_reencrypts_to_s3(
    offsite, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    local = str(tmp_path / "local-repo")
    local_key = {"ODOO_DR_PASSPHRASE": "the local repository's own passphrase"}
    ok(run_cli("init", "--repo", local, "--encrypt", env=local_key))
    snapshot_id = ok(
        run_cli(
            "backup",
            summary.database,
            "--filestore-root",
            str(filestore_root),
            "--residency",
            "eu",
            "--repo",
            local,
            env=local_key,
        )
    )
    ok(run_cli("init", "--repo", offsite, "--encrypt", "--region", "eu-west-1"))
    target_key = {**local_key, "ODOO_DR_TARGET_PASSPHRASE": PASSPHRASE}
    ok(run_cli("copy", "--to", offsite, "--repo", local, env=target_key))

    listed = json.loads(ok(run_cli("snapshots", "--json", "--repo", offsite)))
    assert [item["id"] for item in listed] == [snapshot_id]
    record = json.loads(ok(run_cli("drill", snapshot_id, "--json", "--repo", offsite)))
    assert record["passed"] is True

    again = json.loads(
        ok(run_cli("copy", "--to", offsite, "--repo", local, "--json", env=target_key))
    )
    assert again["copied"] == 0
    assert again["present"] == 1
    assert again["bytes_sent"] == 0

    wrong = run_cli(
        "copy",
        "--to",
        offsite,
        "--repo",
        local,
        env={**local_key, "ODOO_DR_TARGET_PASSPHRASE": "not the target's passphrase"},
    )
    assert wrong.returncode == 2, wrong.stderr


def test_export_and_import_through_s3(
    offsite, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    ok(run_cli("init", "--repo", offsite, "--encrypt"))
    snapshot_id = ok(
        run_cli(
            "backup",
            summary.database,
            "--filestore-root",
            str(filestore_root),
            "--repo",
            offsite,
        )
    )
    archive = tmp_path / "exported.zip"
    ok(
        run_cli(
            "export",
            snapshot_id,
            "--format",
            "zip",
            "--output",
            str(archive),
            "--repo",
            offsite,
        )
    )
    imported = json.loads(
        ok(
            run_cli(
                "import",
                str(archive),
                "--tenant",
                "imported-offsite",
                "--json",
                "--repo",
                offsite,
            )
        )
    )
    record = json.loads(
        ok(run_cli("drill", imported["id"], "--json", "--repo", offsite))
    )
    assert record["passed"] is True
    assert record["tenant"] == "imported-offsite"
