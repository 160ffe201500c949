"""Live collectors against real PostgreSQL clusters, Redis servers, moto's S3
server and an odoo-dr repository holding a real backup and drill."""

from __future__ import annotations

import pytest
from tests.review.live_servers import free_port, refresh_archive

from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.engine.drill import DrillOptions, run_drill
from odoo_dr.review.evidence.live import (
    EvidenceUnavailable,
    collect_bucket,
    collect_live,
    collect_postgres,
    collect_redis,
    collect_repository,
)
from odoo_dr.review.inventory import EvidenceSources, S3Evidence


def test_postgres_archiving_primary(pg_archiving):
    refresh_archive(pg_archiving)
    facts = collect_postgres(pg_archiving.dsn)
    assert facts.archiving
    assert facts.settings["wal_level"] == "replica"
    assert facts.settings["archive_command"].startswith("cp %p ")
    assert facts.archiver["archived_count"] >= 1
    assert facts.archive_age_seconds is not None
    assert facts.archive_age_seconds < 60
    assert facts.recovery_settings == {
        "restore_command": facts.settings["restore_command"]
    }
    assert not facts.in_recovery
    assert facts.replication_visible
    assert [replica["state"] for replica in facts.replicas] == ["streaming"]
    assert facts.replicas[0]["replay_lag_bytes"] is not None
    assert facts.databases == ["acme"]
    assert facts.database_sizes["acme"] > 0
    assert facts.superusers == ["postgres"]
    assert facts.current_user_superuser
    assert facts.problems == []


def test_postgres_role_without_pg_monitor(pg_archiving):
    facts = collect_postgres(pg_archiving.dsn.replace("user=postgres", "user=reviewer"))
    assert facts.current_user == "reviewer"
    assert not facts.current_user_superuser
    assert facts.settings["archive_mode"] == "on"
    assert not facts.replication_visible
    assert len(facts.replicas) == 1
    problems = " ".join(facts.problems)
    assert "replicas are hidden" in problems
    assert "pg_monitor" in problems


def test_postgres_failing_archiver(pg_broken_archiver):
    facts = collect_postgres(pg_broken_archiver.dsn)
    assert facts.archiving
    assert facts.archiver["failed_count"] >= 1
    assert facts.archiver["last_failed_time"] is not None
    assert facts.archiver["archived_count"] == 0
    assert facts.archive_age_seconds is None


def test_postgres_recovery_settings_and_roles(pg_plain):
    facts = collect_postgres(pg_plain.dsn)
    assert not facts.archiving
    assert set(facts.recovery_settings) == {"restore_command", "recovery_target_time"}
    assert facts.superusers == ["odoo_admin", "postgres"]
    assert facts.databases == ["acme", "forgotten_copy"]
    assert facts.replicas == []


def test_postgres_unreachable():
    with pytest.raises(EvidenceUnavailable) as raised:
        collect_postgres(f"host=127.0.0.1 port={free_port()} user=postgres")
    assert "PostgreSQL" in str(raised.value)
    assert "cannot connect" in str(raised.value)


def test_redis_persistent(redis_persistent):
    facts = collect_redis(redis_persistent.url)
    assert facts.aof_enabled
    assert facts.rdb_enabled
    assert facts.config["save"] == "900 1 60 100"
    assert facts.config["appendfsync"] == "everysec"
    assert facts.persistence["rdb_last_bgsave_status"] == "ok"
    assert facts.replication["role"] == "master"
    assert facts.problems == []


def test_redis_user_without_config(redis_volatile):
    url = redis_volatile.url.replace("://", "://reviewer:review-secret@")
    facts = collect_redis(url)
    assert facts.config == {}
    assert facts.rdb_enabled is None
    assert not facts.aof_enabled
    assert len(facts.problems) == 1
    assert "CONFIG GET failed" in facts.problems[0]
    assert "review-secret" not in facts.problems[0]


def test_redis_volatile_and_broken(redis_volatile, redis_broken):
    volatile = collect_redis(redis_volatile.url)
    assert volatile.rdb_enabled is False
    assert not volatile.aof_enabled
    broken = collect_redis(redis_broken.url)
    assert broken.rdb_enabled
    assert broken.persistence["rdb_last_bgsave_status"] == "err"
    assert broken.persistence["rdb_changes_since_last_save"] >= 1


def test_redis_unreachable_hides_password():
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(EvidenceUnavailable) as raised:
        collect_redis(url)
    assert "hunter2" not in str(raised.value)
    assert "redis://***@127.0.0.1" in str(raised.value)


def test_bucket_protected(s3_endpoint):
    facts = collect_bucket("dr-protected", s3_endpoint, "eu-west-1", "odoo/")
    assert facts.versioning == "Enabled"
    assert facts.object_lock["ObjectLockEnabled"] == "Enabled"
    assert facts.object_lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert facts.lifecycle_rules[0]["Transitions"][0]["StorageClass"] == "GLACIER"
    algorithm = facts.encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert algorithm["SSEAlgorithm"] == "AES256"
    assert facts.replication["Rules"][0]["Destination"]["Bucket"].endswith("dr-replica")
    assert facts.region == "eu-west-1"
    # Both versions of odoo/base/1 count; other/file is outside the prefix.
    assert facts.sizes_by_class == {"STANDARD": 4000, "STANDARD_IA": 2000}
    assert facts.objects == 3
    assert facts.size_complete
    assert facts.unknown == set()


def test_bucket_plain(s3_endpoint):
    facts = collect_bucket("dr-plain", s3_endpoint, "eu-west-1")
    assert facts.versioning is None
    assert facts.object_lock is None
    assert facts.lifecycle_rules is None
    assert facts.encryption is None
    assert facts.replication is None
    assert facts.sizes_by_class == {"STANDARD": 4096}


def test_bucket_missing(s3_endpoint):
    with pytest.raises(EvidenceUnavailable) as raised:
        collect_bucket("no-such-bucket", s3_endpoint, "eu-west-1")
    assert "no-such-bucket" in str(raised.value)
    assert "NoSuchBucket" in str(raised.value)


def test_repository_real_backup_and_drill(
    odoo_database, settings, filestore_root, repository
):
    demo = odoo_database()
    manifest = run_backup(
        repository, settings, BackupOptions(demo.database, filestore_root)
    )
    run_drill(repository, settings, manifest, DrillOptions())
    facts = collect_repository(repository.location)
    assert [item.id for item in facts.snapshots] == [manifest.id]
    assert facts.snapshots[0].filestore.referenced_files > 0
    assert len(facts.drills) == 1
    assert facts.drills[0].passed
    assert any(
        check.name == "neutralized" and check.passed for check in facts.drills[0].checks
    )
    assert facts.size_bytes > manifest.stats.new_bytes
    assert facts.unreadable == {}

    (repository.backend.root / "drills" / "damaged.json").write_text("{")
    damaged = collect_repository(repository.location)
    assert len(damaged.drills) == 1
    assert list(damaged.unreadable) == ["drills/damaged.json"]


def test_repository_missing(tmp_path):
    with pytest.raises(EvidenceUnavailable) as raised:
        collect_repository(str(tmp_path / "nothing"))
    assert "no odoo-dr repository" in str(raised.value)


def test_collect_live_never_raises(tmp_path):
    port = free_port()
    sources = EvidenceSources(
        postgres_dsn=f"host=127.0.0.1 port={port} user=postgres",
        redis_url=f"redis://127.0.0.1:{port}/0",
        s3=S3Evidence(bucket="dr", endpoint_url=f"http://127.0.0.1:{port}"),
        repository="missing-repository",
    )
    evidence = collect_live(sources, tmp_path, "production")
    assert evidence.postgres is None
    assert evidence.redis is None
    assert evidence.bucket is None
    assert evidence.repository is None
    assert len(evidence.problems) == 4
    assert all(item.startswith("production: ") for item in evidence.problems)


def test_collect_live_keeps_partial_problems(pg_archiving, tmp_path):
    sources = EvidenceSources(
        postgres_dsn=pg_archiving.dsn.replace("user=postgres", "user=reviewer")
    )
    evidence = collect_live(sources, tmp_path, "staging")
    assert evidence.postgres is not None
    assert any(
        item.startswith("staging: ") and "pg_monitor" in item
        for item in evidence.problems
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hun@ter2@127.0.0.1:{port}/0",
        "redis://127.0.0.1:{port}/0?password=hunter2",
        "redis://:hun/ter2@127.0.0.1:{port}/0",
    ],
)
def test_redis_password_never_shown(url):
    with pytest.raises(EvidenceUnavailable) as raised:
        collect_redis(url.format(port=free_port()))
    assert "hunter2" not in str(raised.value)
    assert "ter2" not in str(raised.value)
    assert "127.0.0.1" in str(raised.value)


def test_unusable_addresses_are_evidence_not_read(tmp_path):
    # The inventory rejects these; built directly, they are still no crash.
    sources = EvidenceSources.model_construct(
        postgres_dsn="host=127.0.0.1 sslpassword=hunter2",
        redis_url="http://:hunter2@127.0.0.1:6379",
        s3=S3Evidence.model_construct(
            bucket="dr", prefix="", endpoint_url="not a url", region=None
        ),
        repository=None,
    )
    evidence = collect_live(sources, tmp_path, "production")
    assert len(evidence.problems) == 3
    text = "\n".join(evidence.problems)
    assert "hunter2" not in text
    assert "evidence failed" not in text
    assert "--dsn" not in text
