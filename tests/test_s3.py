"""The S3 backend against moto's server over HTTP, with the real PostgreSQL.

Repositories live under a fresh prefix of the buckets that `s3_endpoint` creates.
The ransomware test starts a second moto process that enforces IAM policies.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from conftest import (
    BUCKET_REGION,
    LOCKED_BUCKET,
    PLAIN_BUCKET,
    VERSIONED_BUCKET,
    free_port,
    query,
    restore_copy,
    run_cli,
)
from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.errors import RejectedError, RepositoryError
from odoo_dr.repository.backend import DeleteDenied
from odoo_dr.repository.s3 import S3Backend
from odoo_dr.repository.store import Repository
from s3_servers import fault_proxy, iam_enforcing_moto
from test_backup_restore import file_hashes

DOCS = Path(__file__).resolve().parent.parent / "docs" / "s3.md"


@pytest.fixture
def s3_environment(s3_endpoint, monkeypatch) -> dict[str, str]:
    """Point boto3 in this process and in odoo-dr children at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return {"AWS_ENDPOINT_URL": s3_endpoint}


@pytest.fixture
def raw_s3(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name=BUCKET_REGION)


def location(bucket: str, unique: str) -> str:
    return f"s3://{bucket}/repo-{unique}"


def keys_under(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix + "/"
    )
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# -- round trip through the command line


def test_s3_backup_restore_drill_round_trip(
    s3_environment, odoo_database, filestore_root, database_names, tmp_path, unique
):
    summary = odoo_database()
    repo = location(VERSIONED_BUCKET, unique)
    ok(run_cli("init", "--repo", repo))

    snapshot_id = ok(
        run_cli(
            "backup",
            summary.database,
            "--filestore-root",
            str(filestore_root),
            env={"ODOO_DR_REPO": repo},
        )
    )
    listed = json.loads(ok(run_cli("snapshots", "--json", "--repo", repo)))
    assert [item["id"] for item in listed] == [snapshot_id]

    target = summary.database + "_s3"
    database_names.append(target)
    restored = tmp_path / "restored"
    restore_copy(repo, snapshot_id, target, restored)
    for table in ("stock_move", "account_move_line", "res_partner"):
        source = query(summary.database, f"SELECT count(*) FROM {table}")
        assert query(target, f"SELECT count(*) FROM {table}") == source, table
    assert file_hashes(restored / target) == file_hashes(
        filestore_root / summary.database
    )

    record = json.loads(ok(run_cli("drill", snapshot_id, "--json", "--repo", repo)))
    assert record["passed"] is True
    assert len(Repository.open(repo).list_drills(summary.database)) == 1


# -- backend behaviour


def test_init_needs_no_folder_and_rejects_second(s3_environment, unique, tmp_path):
    repo = location(PLAIN_BUCKET, unique)
    repository = Repository.init(repo)
    assert repository.location == repo
    assert Repository.open(repo).config.id == repository.config.id
    with pytest.raises(RejectedError, match="already exists"):
        Repository.init(repo)


def test_open_without_config_names_it(s3_environment, unique):
    S3Backend(PLAIN_BUCKET, f"repo-{unique}").write("packs/aa/one", b"data")
    with pytest.raises(RepositoryError, match="its config.json is missing"):
        Repository.open(location(PLAIN_BUCKET, unique))
    with pytest.raises(RepositoryError, match="no odoo-dr repository at"):
        Repository.open(location(PLAIN_BUCKET, unique + "-empty"))


def test_multipart_upload_round_trip(s3_environment, raw_s3, unique):
    # S3 parts are at least 5 MiB, except the last.
    backend = S3Backend(
        VERSIONED_BUCKET,
        f"repo-{unique}",
        multipart_threshold=5 * 1024 * 1024,
        multipart_chunk=5 * 1024 * 1024,
    )
    data = bytes(range(256)) * (12 * 1024 * 1024 // 256)
    backend.write("packs/ab/big", data)
    head = raw_s3.head_object(
        Bucket=VERSIONED_BUCKET, Key=f"repo-{unique}/packs/ab/big"
    )
    # A multipart object's ETag ends with -<number of parts>.
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == len(data)
    assert backend.read("packs/ab/big") == data
    assert (
        backend.read_range("packs/ab/big", 5 * 1024 * 1024 - 3, 7)
        == data[5 * 1024 * 1024 - 3 : 5 * 1024 * 1024 + 4]
    )


def test_multipart_upload_is_locked(s3_environment, raw_s3, unique):
    backend = S3Backend(
        LOCKED_BUCKET,
        f"repo-{unique}",
        multipart_threshold=5 * 1024 * 1024,
        multipart_chunk=5 * 1024 * 1024,
    )
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    backend.write("packs/ab/big", b"x" * (6 * 1024 * 1024), retain_until=until)
    head = raw_s3.head_object(Bucket=LOCKED_BUCKET, Key=f"repo-{unique}/packs/ab/big")
    assert head["ETag"].strip('"').endswith("-2")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert backend.retained_until("packs/ab/big") == until


def test_read_range_past_end(s3_environment, unique):
    backend = S3Backend(PLAIN_BUCKET, f"repo-{unique}")
    backend.write("packs/cd/small", b"0123456789")
    assert backend.read_range("packs/cd/small", 8, 10) == b"89"
    assert backend.read_range("packs/cd/small", 20, 5) == b""


def test_create_exclusive_single_winner(s3_environment, unique):
    backend = S3Backend(VERSIONED_BUCKET, f"repo-{unique}")
    results: dict[int, bool] = {}
    barrier = threading.Barrier(8)

    def create(number: int) -> None:
        barrier.wait()
        results[number] = backend.create_exclusive("locks/one", str(number).encode())

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [number for number, created in results.items() if created]
    assert len(results) == 8
    assert len(winners) == 1
    assert backend.read("locks/one") == str(winners[0]).encode()


def test_create_exclusive_after_delete(s3_environment, unique):
    backend = S3Backend(VERSIONED_BUCKET, f"repo-{unique}")
    assert backend.create_exclusive("locks/two", b"first")
    assert not backend.create_exclusive("locks/two", b"second")
    backend.delete("locks/two")
    assert backend.create_exclusive("locks/two", b"third")
    assert backend.read("locks/two") == b"third"


def test_transient_errors_are_retried(s3_endpoint, monkeypatch, unique):
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    with fault_proxy(s3_endpoint, failures=3) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        backend = S3Backend(VERSIONED_BUCKET, f"repo-{unique}")
        backend.write("index/one.json", b"{}")
        assert proxy.failed == 3
        assert backend.read("index/one.json") == b"{}"
    assert proxy.forwarded == 2


def test_retries_give_up_with_clear_error(s3_endpoint, monkeypatch, unique):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with fault_proxy(s3_endpoint, failures=100) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        backend = S3Backend(VERSIONED_BUCKET, f"repo-{unique}")
        with pytest.raises(RepositoryError) as raised:
            backend.write("index/two.json", b"{}")
    assert proxy.failed == 2
    assert f"s3://{VERSIONED_BUCKET}/repo-{unique}/index/two.json" in str(raised.value)
    assert raised.value.hint


def test_missing_bucket_error(s3_environment):
    with pytest.raises(RepositoryError) as raised:
        Repository.open("s3://odoo-dr-no-such-bucket/repo")
    assert "bucket odoo-dr-no-such-bucket does not exist" in raised.value.message
    assert raised.value.hint


def test_unreachable_endpoint_error(s3_endpoint, monkeypatch):
    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(RepositoryError) as raised:
        Repository.open(f"s3://{PLAIN_BUCKET}/repo")
    assert f"endpoint http://127.0.0.1:{port} is unreachable" in raised.value.message
    assert "AWS_ENDPOINT_URL" in raised.value.hint


def test_missing_credentials_error(s3_endpoint, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    with pytest.raises(RepositoryError) as raised:
        Repository.open(f"s3://{PLAIN_BUCKET}/repo")
    assert "no AWS credentials found" in raised.value.message
    assert f"s3://{PLAIN_BUCKET}/repo/config.json" in raised.value.message


def test_unsupported_scheme_rejected():
    with pytest.raises(RejectedError, match="unsupported repository location"):
        Repository.open("gs://bucket/repo")


def test_cleanup_aborts_old_uploads_of_prefix(s3_environment, raw_s3, unique):
    # moto 5.2.5 lists every upload as started on 2010-11-10, so all count as old
    # here, and only the prefix decides.
    backend = S3Backend(VERSIONED_BUCKET, f"repo-{unique}")
    mine = f"repo-{unique}/packs/ef/partial"
    other = f"other-{unique}/packs/ef/partial"
    for key in (mine, other):
        raw_s3.create_multipart_upload(Bucket=VERSIONED_BUCKET, Key=key)
    assert backend.cleanup_stale_writes() == 1
    uploads = raw_s3.list_multipart_uploads(Bucket=VERSIONED_BUCKET).get("Uploads", [])
    left = {item["Key"] for item in uploads}
    assert mine not in left
    assert other in left


def test_local_runs_do_not_import_boto3(tmp_path):
    program = (
        "import sys\n"
        "from odoo_dr.cli.app import main\n"
        "from odoo_dr.repository.store import Repository\n"
        f"Repository.init({str(tmp_path / 'repo')!r})\n"
        f"Repository.open({str(tmp_path / 'repo')!r}).list_snapshots()\n"
        "print('boto3' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# -- Object Lock


def test_lock_needs_object_lock_bucket(s3_environment, unique, tmp_path):
    result = run_cli(
        "init", "--repo", location(PLAIN_BUCKET, unique), "--lock-days", "3"
    )
    assert result.returncode == 2
    assert f"bucket {PLAIN_BUCKET} does not have Object Lock enabled" in result.stderr
    with pytest.raises(RejectedError, match="needs an S3 bucket with Object Lock"):
        Repository.init(str(tmp_path / "repo"), lock_days=3)


def test_backup_objects_are_locked(
    s3_environment, raw_s3, odoo_database, filestore_root, settings, unique
):
    summary = odoo_database()
    repo = location(LOCKED_BUCKET, unique)
    before = datetime.now(UTC).replace(microsecond=0)
    ok(run_cli("init", "--repo", repo, "--lock-days", "2", "--lock-mode", "compliance"))
    repository = Repository.open(repo)
    assert repository.config.object_lock.days == 2
    manifest = run_backup(
        repository, settings, BackupOptions(summary.database, filestore_root)
    )
    after = datetime.now(UTC)
    keys = keys_under(raw_s3, LOCKED_BUCKET, f"repo-{unique}")
    locked = [key for key in keys if "/locks/" not in key and "/tmp/" not in key]
    assert f"repo-{unique}/snapshots/{manifest.id}.json" in locked
    assert any("/packs/" in key for key in locked)
    assert any("/index/" in key for key in locked)
    for key in locked:
        head = raw_s3.head_object(Bucket=LOCKED_BUCKET, Key=key)
        assert head.get("ObjectLockMode") == "COMPLIANCE", key
        until = head["ObjectLockRetainUntilDate"]
        assert before + timedelta(days=2) <= until <= after + timedelta(days=2), key
    relative = f"snapshots/{manifest.id}.json"
    assert repository.backend.retained_until(relative) == repository.retain_until()


def test_reused_packs_get_the_new_lock(
    s3_environment, odoo_database, filestore_root, settings, unique
):
    summary = odoo_database()
    repo = location(LOCKED_BUCKET, unique)
    Repository.init(repo, lock_days=1)
    first = run_backup(
        Repository.open(repo), settings, BackupOptions(summary.database, filestore_root)
    )
    repository = Repository.open(repo)
    first_packs = {key for key in repository.backend.list("packs/")}
    # A repository whose lock period was raised since the first backup.
    repository.config.object_lock.days = 5
    second = run_backup(
        repository, settings, BackupOptions(summary.database, filestore_root)
    )
    assert second.stats.files_reused == summary.files
    until = repository.retain_until()
    assert repository.backend.retained_until(f"snapshots/{second.id}.json") == until
    assert repository.backend.retained_until(f"snapshots/{first.id}.json") < until
    reused = {
        repository.blobs.index.get(chunk).pack
        for entry in json.loads(repository.blobs.read_blob(second.filestore.index))
        for chunk in entry["chunks"]
    }
    assert reused
    for pack_id in reused:
        key = f"packs/{pack_id[:2]}/{pack_id}"
        assert key in first_packs
        assert repository.backend.retained_until(key) == until, key
    assert repository.backend.retained_until("config.json") == until


def test_locked_version_cannot_be_deleted(s3_environment, raw_s3, unique):
    repo = location(LOCKED_BUCKET, unique)
    repository = Repository.init(repo, lock_days=1)
    repository.write_document("drills/one.json", b"{}")
    key = f"repo-{unique}/drills/one.json"
    version = raw_s3.head_object(Bucket=LOCKED_BUCKET, Key=key)["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        raw_s3.delete_object(Bucket=LOCKED_BUCKET, Key=key, VersionId=version)
    assert raised.value.response["Error"]["Code"] == "AccessDenied"
    body = raw_s3.get_object(Bucket=LOCKED_BUCKET, Key=key, VersionId=version)["Body"]
    assert body.read() == b"{}"


def test_as_of_view_ignores_later_versions(s3_environment, unique):
    repo = location(VERSIONED_BUCKET, unique)
    repository = Repository.init(repo)
    repository.backend.write("drills/one.json", b"original")
    _wait_for_next_second()
    moment = datetime.now(UTC).replace(microsecond=0)
    _wait_for_next_second()
    repository.backend.write("drills/one.json", b"replaced")
    repository.backend.write("drills/two.json", b"added later")
    view = Repository.open(f"{repo}?as-of={moment.isoformat()}")
    assert view.backend.read("drills/one.json") == b"original"
    assert not view.backend.exists("drills/two.json")
    assert list(view.backend.list("drills/")) == ["drills/one.json"]
    with pytest.raises(RejectedError, match="read-only"):
        view.backend.write("drills/three.json", b"{}")


def _wait_for_next_second() -> None:
    """Sleep until the wall clock enters a new second, so S3 times differ.

    S3 lists LastModified to the second, so a version written before this call
    and one written after it never share a listed time.
    """
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.05)


# -- append-only writer against IAM enforcement


def documented_policy(name: str, bucket: str, prefix: str) -> dict:
    """Return the policy `name` from docs/s3.md with the placeholders filled in."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(rf"<!-- policy: {name} -->\n```json\n(.*?)\n```", text, re.S)
    assert match, f"policy {name} not found in {DOCS}"
    filled = match.group(1).replace("BUCKET", bucket).replace("PREFIX", prefix)
    return json.loads(filled)


def attacks_on(client, bucket: str, key: str, version: str) -> dict:
    """Return the ways a writer credential might try to destroy one object."""
    return {
        "delete": lambda: client.delete_object(Bucket=bucket, Key=key),
        "delete version": lambda: client.delete_object(
            Bucket=bucket, Key=key, VersionId=version
        ),
        "shorten lock": lambda: client.put_object_retention(
            Bucket=bucket,
            Key=key,
            Retention={
                "Mode": "GOVERNANCE",
                "RetainUntilDate": datetime.now(UTC) + timedelta(seconds=1),
            },
            BypassGovernanceRetention=True,
        ),
        "delete version again": lambda: client.delete_object(
            Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True
        ),
        "overwrite": lambda: client.put_object(
            Bucket=bucket, Key=key, Body=b"encrypted by ransomware"
        ),
    }


def test_writer_cannot_destroy_locked_snapshot(
    odoo_database, filestore_root, database_names, tmp_path, unique
):
    summary = odoo_database()
    bucket, prefix = "odoo-dr-append-only", f"repo-{unique}"
    with iam_enforcing_moto(
        bucket,
        documented_policy("writer", bucket, prefix),
        documented_policy("pruner", bucket, prefix),
    ) as server:
        writer = server.writer.environment(server.endpoint)
        repo = f"s3://{bucket}/{prefix}"
        ok(run_cli("init", "--repo", repo, "--lock-days", "3", env=writer))
        snapshot_id = ok(
            run_cli(
                "backup",
                summary.database,
                "--filestore-root",
                str(filestore_root),
                "--repo",
                repo,
                env=writer,
            )
        )
        drill = run_cli("drill", snapshot_id, "--json", "--repo", repo, env=writer)
        assert json.loads(ok(drill))["passed"] is True
        _wait_for_next_second()
        before_attack = datetime.now(UTC).replace(microsecond=0)
        _wait_for_next_second()

        client = server.client(server.writer)
        keys = keys_under(client, bucket, prefix)
        protected = [key for key in keys if "/locks/" not in key]
        assert f"{prefix}/snapshots/{snapshot_id}.json" in protected
        rejected = []
        for key in protected:
            version = client.head_object(Bucket=bucket, Key=key)["VersionId"]
            attacks = attacks_on(client, bucket, key, version)
            for name, attack in attacks.items():
                try:
                    attack()
                except botocore.exceptions.ClientError:
                    rejected.append(name)
        bulk = [{"Key": key} for key in protected]
        try:
            client.delete_objects(Bucket=bucket, Delete={"Objects": bulk})
        except botocore.exceptions.ClientError:
            rejected.append("bulk delete")
        for protection in (
            lambda: client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}
            ),
            lambda: client.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration={
                    "Rules": [
                        {
                            "ID": "expire",
                            "Status": "Enabled",
                            "Filter": {"Prefix": ""},
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                        }
                    ]
                },
            ),
        ):
            with pytest.raises(botocore.exceptions.ClientError) as raised:
                protection()
            assert raised.value.response["Error"]["Code"] == "AccessDenied"
        assert rejected.count("delete") == len(protected)
        assert rejected.count("delete version") == len(protected)
        assert rejected.count("delete version again") == len(protected)

        # The overwrites did replace the current versions.
        current = run_cli("snapshots", "--repo", repo, env=writer)
        assert current.returncode != 0
        # Every original version is still there, unchanged, for the as-of view.
        view = f"{repo}?as-of={before_attack.isoformat()}"
        target = summary.database + "_recovered"
        database_names.append(target)
        restored = tmp_path / "restored"
        restore_copy(view, snapshot_id, target, restored, env=writer)
        source = query(summary.database, "SELECT count(*) FROM stock_move")
        assert query(target, "SELECT count(*) FROM stock_move") == source
        assert file_hashes(restored / target) == file_hashes(
            filestore_root / summary.database
        )

        # The pruner may delete; the writer gets a clear error saying who may.
        backend = S3Backend(bucket, prefix, client=server.client(server.writer))
        with pytest.raises(DeleteDenied) as denied:
            backend.delete(f"snapshots/{snapshot_id}.json")
        assert "this credential may not delete" in denied.value.message
        assert "pruning credential" in denied.value.hint
        assert server.writer.secret_access_key not in str(denied.value)
        pruner = S3Backend(bucket, prefix, client=server.client(server.pruner))
        pruner.delete("drills/nothing.json")

        # Outside its prefix the writer may not even write, and the error names where.
        elsewhere = S3Backend(bucket, "elsewhere", client=server.client(server.writer))
        with pytest.raises(RepositoryError) as raised:
            elsewhere.write("packs/aa/one", b"data")
        assert f"s3://{bucket}/elsewhere/packs/aa/one" in raised.value.message
        assert "access denied" in raised.value.message
        assert "docs/s3.md" in raised.value.hint
        assert server.writer.secret_access_key not in str(raised.value)
