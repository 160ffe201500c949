"""Faults a demanding user runs into: tampered settings, storage that goes away.

Each test reproduces one fault that once ended in an unexpected error or a wrong
exit code, with real repositories, a real moto S3 server and real PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import LOCKED_BUCKET, PLAIN_BUCKET, run_cli
from odoo_dr.engine.release import (
    RestorePoint,
    load_restore_point,
    save_restore_point,
)
from odoo_dr.errors import BackupFailed, KeyRejected, RejectedError, RepositoryError
from odoo_dr.repository.crypto import KdfParameters
from odoo_dr.repository.store import Repository
from s3_servers import fault_proxy

FAST_KDF = KdfParameters(memory_cost=8 * 1024, iterations=1, lanes=1)


def _encrypted(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    Repository.init(str(root), secret=b"break test", kdf=FAST_KDF)
    return root


def _edit_slot(root: Path, **changes: object) -> None:
    config = json.loads((root / "config.json").read_text())
    config["key_slots"][0].update(changes)
    (root / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("memory_cost", 2**31),
        ("memory_cost", 0),
        ("iterations", 10**9),
        ("iterations", 0),
        ("lanes", 0),
        ("lanes", 2**20),
    ],
)
def test_tampered_key_slot_costs_are_rejected(tmp_path, field, value):
    # A config.json whose key slot requests 2 TiB of memory or a billion passes
    # must not run out of memory or hang: it is named as damaged.
    root = _encrypted(tmp_path)
    _edit_slot(root, **{field: value})
    with pytest.raises(RepositoryError) as raised:
        Repository.open(str(root), secret=b"break test")
    assert field in raised.value.message
    assert str(value) in raised.value.message
    assert "config.json" in raised.value.hint


def test_invalid_config_names_the_field(tmp_path):
    root = _encrypted(tmp_path)
    config = json.loads((root / "config.json").read_text())
    del config["key_slots"][0]["salt"]
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(RepositoryError) as raised:
        Repository.open(str(root), secret=b"break test")
    assert "key_slots.0.salt" in raised.value.message
    assert raised.value.hint and "config.json" in raised.value.hint


def test_invalid_config_json_is_named(tmp_path):
    root = _encrypted(tmp_path)
    (root / "config.json").write_text("{not json")
    with pytest.raises(RepositoryError) as raised:
        Repository.open(str(root), secret=b"break test")
    assert "config.json" in raised.value.message
    assert raised.value.hint


def test_lost_endpoint_keeps_backup_error(s3_endpoint, monkeypatch, unique):
    # A backup whose object store goes away fails with BackupFailed (exit 3). The
    # lock that it then cannot remove must not replace that error by a read error.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with fault_proxy(s3_endpoint, failures=0) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        location = f"s3://{PLAIN_BUCKET}/repo-{unique}"
        repository = Repository.init(location)
        with (
            pytest.raises(BackupFailed, match="the store went away"),
            repository.lock_tenant("Acme-Prod 2024", "backup"),
        ):
            proxy.failures_left = 10**6
            raise BackupFailed("the store went away")
        proxy.failures_left = 0
        # The lock stayed behind; it is taken over once its process is gone.
        reopened = Repository.open(location)
        assert any(key.startswith("locks/") for key in reopened.backend.list("locks/"))


def test_post_deploy_wrong_root_and_quoted_hint(
    repository, odoo_database, filestore_root, tmp_path
):
    # The tenant's name has a space and capitals, and the filestore root does not
    # contain its folder. Post-deploy must not fail the release (and advise a
    # rollback) for a wrong root. Its hints must survive copy and paste.
    summary = odoo_database(f"Brk Acme-Prod {uuid.uuid4().hex[:6]}")
    database = summary.database
    options = ["--repo", repository.location]
    env = {"ODOO_DR_RELEASE": "R 1"}
    pre = run_cli("guard", "pre-deploy", database, "--take", *options,
                  "--filestore-root", str(filestore_root), env=env)  # fmt: skip
    assert pre.returncode == 0, pre.stderr

    wrong_root = tmp_path / "elsewhere"
    wrong_root.mkdir()
    wrong = run_cli("guard", "post-deploy", database, "--release", "R 1", *options,
                    "--filestore-root", str(wrong_root))  # fmt: skip
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert str(wrong_root / database) in wrong.stderr
    assert "--filestore-root" in wrong.stderr
    assert "rollback" not in wrong.stderr

    (filestore_root / database / "zz").mkdir()
    victim = sorted(p for p in (filestore_root / database).rglob("*") if p.is_file())
    victim[0].unlink()
    failed = run_cli("guard", "post-deploy", database, "--release", "R 1", *options,
                     "--filestore-root", str(filestore_root))  # fmt: skip
    assert failed.returncode == 5, failed.stdout + failed.stderr
    hint = failed.stderr.split("odoo-dr rollback", 1)[1].splitlines()[0]
    words = shlex.split("odoo-dr rollback" + hint)
    assert words[2] == database
    assert words[words.index("--to-release") + 1] == "R 1"
    assert words[words.index("--repo") + 1] == repository.location


def test_copy_target_key_hint_names_target_variables(tmp_path):
    # A target with another key than the source's: the error must point at the
    # ODOO_DR_TARGET_* variables, not at the source's, which did work.
    source = tmp_path / "source"
    target = tmp_path / "target"
    Repository.init(str(source), secret=b"source key", kdf=FAST_KDF)
    Repository.init(str(target), secret=b"target key", kdf=FAST_KDF)
    key_file = tmp_path / "source.key"
    key_file.write_bytes(b"source key")
    env = {"ODOO_DR_KEY_FILE": str(key_file)}
    for extra in ({}, {"ODOO_DR_TARGET_PASSPHRASE": "wrong"}):
        result = run_cli("copy", "--repo", str(source), "--to", str(target),
                         env={**env, **extra})  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert str(target) in result.stderr
        assert "ODOO_DR_TARGET_KEY_FILE" in result.stderr
        assert "ODOO_DR_TARGET_PASSPHRASE" in result.stderr


def test_key_change_retires_every_slot_of_old_key(tmp_path):
    # A key added twice, then changed: "the old key stops working" must hold for
    # every slot it opened, and adding a key that already works adds nothing.
    root = _encrypted(tmp_path)
    repository = Repository.open(str(root), secret=b"break test")
    repository.add_key(b"second key", kdf=FAST_KDF)
    with pytest.raises(RejectedError, match="already unlocks"):
        repository.add_key(b"second key", kdf=FAST_KDF)
    assert len(repository.config.key_slots) == 2

    # An older odoo-dr let a key be added twice: write the duplicate by hand.
    config = json.loads((root / "config.json").read_text())
    config["key_slots"].append(dict(config["key_slots"][1], id="dup00001"))
    (root / "config.json").write_text(json.dumps(config))
    repository = Repository.open(str(root), secret=b"second key")
    repository.change_key(b"second key", b"third key", kdf=FAST_KDF)
    assert len(repository.config.key_slots) == 2
    with pytest.raises(KeyRejected):
        Repository.open(str(root), secret=b"second key")
    assert Repository.open(str(root), secret=b"third key").encrypted
    assert Repository.open(str(root), secret=b"break test").encrypted

    # Changing to a key that already has a slot only retires the old key.
    repository.change_key(b"third key", b"break test", kdf=FAST_KDF)
    assert len(repository.config.key_slots) == 1
    with pytest.raises(KeyRejected):
        Repository.open(str(root), secret=b"third key")


def test_key_add_on_plain_repository_says_not_encrypted(tmp_path):
    Repository.init(str(tmp_path / "plain"))
    key_file = tmp_path / "new.key"
    key_file.write_bytes(b"new key")
    result = run_cli("key", "add", "--repo", str(tmp_path / "plain"),
                     env={"ODOO_DR_NEW_KEY_FILE": str(key_file)})  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "is not encrypted" in result.stderr


def test_encrypted_restore_point_names_are_keyed(tmp_path):
    # In an encrypted repository a restore point's path must not let anyone
    # holding the files confirm a guessed tenant or release name.
    root = _encrypted(tmp_path)
    repository = Repository.open(str(root), secret=b"break test")
    tenant, release = "Acme-Prod 2024", "v1.2.3"
    point = RestorePoint(
        tenant=tenant,
        release=release,
        release_source="--release",
        snapshot_id="20261204-160057-02f2a4ef",
        database=tenant,
        snapshot_time=datetime.now(UTC),
        recorded_at=datetime.now(UTC),
        drill_id="20261204-160100-0badc0de",
        modules={"base": "17.0.1.3"},
    )
    save_restore_point(repository, point)
    (stored,) = (root / "releases").rglob("*.json")
    for name in (tenant, release):
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        assert digest not in str(stored.relative_to(root))
    loaded = load_restore_point(repository, tenant, release)
    assert loaded is not None
    assert loaded.snapshot_id == point.snapshot_id


def test_lock_mode_without_lock_days_rejected(tmp_path):
    # --lock-mode compliance alone used to create a repository without any lock.
    result = run_cli("init", "--repo", str(tmp_path / "repo"),
                     "--lock-mode", "compliance")  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--lock-days" in result.stderr
    assert not (tmp_path / "repo").exists()


def test_lock_days_beyond_limit_rejected(s3_endpoint, monkeypatch, unique):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    location = f"s3://{LOCKED_BUCKET}/repo-{unique}"
    with pytest.raises(RejectedError) as raised:
        Repository.init(location, lock_days=100_000_000)
    assert "100000000" in raised.value.message
    assert "36500" in raised.value.hint
    result = run_cli("init", "--repo", location, "--lock-days", "36501")
    assert result.returncode == 2, result.stderr
    assert "unexpected" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["prune", "--keep-last", "1", "--min-age", "99999999999w", "--dry-run"],
        ["guard", "pre-deploy", "acme", "--release", "r1", "--max-age", "99999999999d"],
    ],
)
def test_huge_durations_rejected(repository, command):
    result = run_cli(*command, "--repo", repository.location)
    assert result.returncode == 2, result.stderr
    assert "99999999999" in result.stderr
    assert "unexpected" not in result.stderr


def test_huge_policy_min_age_rejected(repository, tmp_path):
    policy = tmp_path / "retention.yaml"
    policy.write_text(
        "policies:\n  - {match: {}, keep_last: 1, min_age: 99999999999w}\n"
    )
    result = run_cli("prune", "--policy", str(policy), "--dry-run",
                     "--repo", repository.location)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"{policy}:2" in result.stderr
    assert "unexpected" not in result.stderr


@pytest.mark.parametrize("tenant", ["", " ", "\x7f"])
def test_blank_tenant_rejected(repository, filestore_root, odoo_database, tenant):
    # An unset shell variable (--tenant "$TENANT") must not file the snapshot under
    # the database name without a word, nor under a name made of blanks.
    summary = odoo_database()
    result = run_cli("backup", summary.database, "--tenant", tenant,
                     "--filestore-root", str(filestore_root),
                     "--repo", repository.location)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"invalid tenant name {tenant!r}" in result.stderr
    assert repository.snapshot_ids() == []


def test_manifest_under_another_id_is_damaged(
    repository, filestore_root, odoo_database
):
    # A manifest copied over another snapshot's file (a swap, or a botched manual
    # repair) showed one snapshot twice and hid the other without a word. Prune
    # would then delete by the id inside the file.
    summary = odoo_database()
    options = ["--filestore-root", str(filestore_root), "--repo", repository.location]
    first = run_cli("backup", summary.database, *options)
    second = run_cli("backup", summary.database, *options)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    hidden, shown = first.stdout.strip(), second.stdout.strip()
    root = Path(repository.location)
    (root / "snapshots" / f"{hidden}.json").write_bytes(
        (root / "snapshots" / f"{shown}.json").read_bytes()
    )

    listing = run_cli("snapshots", "--repo", repository.location)
    assert listing.returncode == 1, listing.stderr
    assert listing.stdout.count(shown) == 1
    assert hidden in listing.stderr
    assert shown in listing.stderr

    restore = run_cli("restore", hidden, "--target", f"{summary.database}_x",
                      "--copy", *options)  # fmt: skip
    assert restore.returncode == 2, restore.stderr
    assert f"snapshots/{hidden}.json" in restore.stderr

    prune = run_cli("prune", "--keep-last", "1", "--repo", repository.location)
    assert prune.returncode == 2, prune.stderr
    assert (root / "snapshots" / f"{shown}.json").exists()


def test_prune_keeps_latest_restore_point(repository, filestore_root, odoo_database):
    # A release's restore point is the snapshot a rollback needs: prune must not
    # delete it while that release is the tenant's latest.
    summary = odoo_database()
    database = summary.database
    options = ["--filestore-root", str(filestore_root), "--repo", repository.location]
    env = {"ODOO_DR_RELEASE": "v 2.0"}
    pre = run_cli("guard", "pre-deploy", database, "--take", *options, env=env)
    assert pre.returncode == 0, pre.stderr
    point = load_restore_point(repository, database, "v 2.0")
    assert point is not None
    for _ in range(2):
        backup = run_cli("backup", database, *options)
        assert backup.returncode == 0, backup.stderr
    drill = run_cli("drill", database, "--repo", repository.location)
    assert drill.returncode == 0, drill.stderr

    prune = run_cli("prune", "--keep-last", "1", "--repo", repository.location)
    assert prune.returncode == 0, prune.stderr
    assert "restore point of release 'v 2.0'" in prune.stdout
    assert point.snapshot_id in repository.snapshot_ids()
    assert len(repository.snapshot_ids()) == 2

    # A restore point whose snapshot is gone anyway (removed by hand, or by an
    # older odoo-dr) is named as such by rollback.
    (Path(repository.location) / "snapshots" / f"{point.snapshot_id}.json").unlink()
    rollback = run_cli("rollback", database, "--to-release", "v 2.0", "--yes",
                       *options)  # fmt: skip
    assert rollback.returncode == 2, rollback.stderr
    assert "v 2.0" in rollback.stderr
    assert point.snapshot_id in rollback.stderr
    assert "guard pre-deploy" in rollback.stderr


def test_snapshots_of_unknown_tenant_named(repository):
    result = run_cli("snapshots", "--tenant", "Acme-Prod 2024",
                     "--repo", repository.location)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no snapshots of tenant 'Acme-Prod 2024'" in result.stdout


def test_copy_of_unknown_tenant_rejected(repository, tmp_path):
    target = Repository.init(str(tmp_path / "target"))
    result = run_cli("copy", "--tenant", "Acme-Prod 2024", "--to", target.location,
                     "--repo", repository.location)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no snapshots of tenant 'Acme-Prod 2024'" in result.stderr


def test_copy_encrypted_into_plain_needs_consent(
    tmp_path, filestore_root, odoo_database
):
    # An off-site copy of an encrypted repository must not land in clear at the
    # third party because its target was created without --encrypt.
    summary = odoo_database(f"Brk Secret {uuid.uuid4().hex[:6]}")
    source = tmp_path / "source"
    target = tmp_path / "target"
    key_file = tmp_path / "repo.key"
    key_file.write_bytes(b"break test")
    env = {"ODOO_DR_KEY_FILE": str(key_file)}
    Repository.init(str(source), secret=b"break test", kdf=FAST_KDF)
    Repository.init(str(target))
    backup = run_cli("backup", summary.database, "--repo", str(source),
                     "--filestore-root", str(filestore_root), env=env)  # fmt: skip
    assert backup.returncode == 0, backup.stderr

    rejected = run_cli("copy", "--repo", str(source), "--to", str(target), env=env)
    assert rejected.returncode == 2, rejected.stderr
    assert "--allow-unencrypted" in rejected.stderr
    assert list((target / "snapshots").iterdir()) == []

    allowed = run_cli("copy", "--repo", str(source), "--to", str(target),
                      "--allow-unencrypted", env=env)  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    assert len(list((target / "snapshots").iterdir())) == 1


def test_verify_finds_truncated_pack_without_reading(
    repository, filestore_root, odoo_database
):
    # A pack cut short (a full disk, an interrupted sync) is visible from its size
    # alone, as restic's check finds it, without --read-data.
    summary = odoo_database()
    backup = run_cli("backup", summary.database, "--filestore-root",
                     str(filestore_root), "--repo", repository.location)  # fmt: skip
    assert backup.returncode == 0, backup.stderr
    packs = sorted(
        Path(repository.location, "packs").rglob("*"), key=lambda p: p.stat().st_size
    )
    largest = [p for p in packs if p.is_file()][-1]
    with largest.open("r+b") as pack:
        pack.truncate(largest.stat().st_size // 2)

    result = run_cli("verify", "--repo", repository.location)
    assert result.returncode == 5, result.stdout + result.stderr
    assert f"truncated (pack {largest.name} has" in result.stdout
    assert backup.stdout.strip() in result.stdout


def test_s3_pack_sizes_listed(s3_endpoint, monkeypatch, unique):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    repository = Repository.init(f"s3://{PLAIN_BUCKET}/repo-{unique}")
    content = b"odoo-dr pack size" * 1000
    blob_id, _stats = repository.blobs.put(content)
    repository.blobs.flush()
    where = repository.blobs.index.get(blob_id)
    sizes = repository.blobs.index.pack_sizes()
    assert sizes is not None
    assert sizes[where.pack] >= where.offset + where.length
