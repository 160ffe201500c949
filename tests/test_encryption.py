"""Encrypted repositories: round trips, stored bytes, keys, recovery, tampering."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import damage_blob, query
from odoo_dr.errors import CorruptObject, LockHeld, RejectedError, SnapshotDamaged
from odoo_dr.repository.crypto import KdfParameters
from odoo_dr.repository.readme import RECOVERY_SCRIPT
from odoo_dr.repository.store import Repository

# Cheap Argon2id costs for repositories that tests create in-process; each command
# run then unlocks in milliseconds. `init --encrypt` in the round trip uses the
# defaults.
FAST_KDF = KdfParameters(memory_cost=8 * 1024, iterations=1, lanes=1)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "encryption.md"
SECRET_VARIABLES = (
    "ODOO_DR_KEY_FILE",
    "ODOO_DR_PASSPHRASE",
    "ODOO_DR_NEW_KEY_FILE",
    "ODOO_DR_NEW_PASSPHRASE",
)


def run(*args: str, **secrets: str) -> subprocess.CompletedProcess:
    """Run odoo-dr with only the given secret variables, and stdin not a terminal."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    env.update(secrets)
    return subprocess.run(
        [sys.executable, "-m", "odoo_dr", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Return path -> content of every file below `root`."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def add_markers(database: str, folder: Path) -> dict[str, bytes]:
    """Put known strings into the database and a known file into its filestore."""
    marker = f"MarkerRow-{uuid.uuid4().hex}"
    query(database, "CREATE TABLE odoo_dr_marker (note text)")
    query(database, "INSERT INTO odoo_dr_marker VALUES (%s)", (marker,))
    partner = f"Partner-Marker-{uuid.uuid4().hex}"
    query(database, "UPDATE res_partner SET name = %s WHERE id = 1", (partner,))
    # Random bytes do not compress, so zstd stores them as they are: an unencrypted
    # repository contains them verbatim, which the control check relies on.
    content = os.urandom(8192)
    sha1 = hashlib.sha1(content).hexdigest()
    (folder / sha1[:2]).mkdir(exist_ok=True)
    (folder / sha1[:2] / sha1).write_bytes(content)
    return {
        "database row": marker.encode(),
        "partner name": partner.encode(),
        "filestore content": content[4000:4064],
    }


def needles(database: str, folder: Path, markers: dict[str, bytes]) -> dict:
    """Return what must not appear in an encrypted repository, by description."""
    found = dict(markers)
    found["tenant name"] = database.encode()
    found["tenant SHA-256"] = hashlib.sha256(database.encode()).hexdigest().encode()
    for path in folder.rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(folder))
            found[f"file name {relative}"] = path.name.encode()
            found[f"path {relative}"] = relative.encode()
            sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
            found[f"SHA-1 of {relative}"] = sha1.encode()
    return found


def occurrences(root: Path, searched: dict[str, bytes]) -> dict[str, list[str]]:
    """Return, for each needle found in any file below `root`, the files holding it."""
    found: dict[str, list[str]] = {}
    for name, data in tree_bytes(root).items():
        for description, needle in searched.items():
            if needle in data:
                found.setdefault(description, []).append(name)
    return found


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "repository.key"
    path.parent.mkdir()
    path.write_text(uuid.uuid4().hex + "\n")
    return path


def backup(repo: Path, database: str, root: Path, **secrets: str) -> str:
    result = run("backup", database, "--repo", str(repo), "--filestore-root",
                 str(root), **secrets)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_round_trip_backup_restore_drill(
    odoo_database, filestore_root, database_names, key_file, tmp_path
):
    repo = tmp_path / "repo"
    secret = {"ODOO_DR_KEY_FILE": str(key_file)}
    created = run("init", "--encrypt", "--repo", str(repo), **secret)
    assert created.returncode == 0, created.stderr
    assert "encrypted" in created.stdout
    summary = odoo_database()
    snapshot_id = backup(repo, summary.database, filestore_root, **secret)

    listed = run("snapshots", "--json", "--repo", str(repo), **secret)
    assert listed.returncode == 0, listed.stderr
    assert [item["tenant"] for item in json.loads(listed.stdout)] == [summary.database]

    target = summary.database + "_copy"
    database_names.append(target)
    restored_root = tmp_path / "restored"
    restored = run("restore", snapshot_id, "--target", target, "--copy",
                   "--filestore-root", str(restored_root), "--repo", str(repo),
                   **secret)  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    for table in ("stock_move", "account_move_line", "ir_attachment", "res_partner"):
        source = query(summary.database, f"SELECT count(*) FROM {table}")
        assert query(target, f"SELECT count(*) FROM {table}") == source, table
    assert tree_bytes(restored_root / target) == tree_bytes(
        filestore_root / summary.database
    )

    drill = run("drill", snapshot_id, "--json", "--repo", str(repo), **secret)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert json.loads(drill.stdout)["passed"] is True
    verified = run("verify", "--read-data", "--repo", str(repo), **secret)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    repository = Repository.open(str(repo), secret=key_file.read_bytes().strip())
    assert [record.tenant for record in repository.list_drills()] == [summary.database]
    assert "(encrypted)" in (repo / "README.md").read_text()


def test_no_plaintext_in_stored_files(
    odoo_database, filestore_root, key_file, tmp_path
):
    summary = odoo_database()
    markers = add_markers(summary.database, summary.filestore)
    searched = needles(summary.database, summary.filestore, markers)

    # Control: the same backup into an unencrypted repository shows the needles, so
    # the search below is able to find them.
    plain = tmp_path / "plain"
    Repository.init(str(plain))
    backup(plain, summary.database, filestore_root)
    # zstd may code the literals of text (the file index's SHA-1s among them), so
    # only these are certain to be seen in clear.
    in_clear = occurrences(plain, searched)
    for description in ("database row", "filestore content", "tenant name"):
        assert description in in_clear, description

    repo = tmp_path / "encrypted"
    secret = {"ODOO_DR_KEY_FILE": str(key_file)}
    Repository.init(str(repo), secret=key_file.read_bytes().strip(), kdf=FAST_KDF)
    backup(repo, summary.database, filestore_root, **secret)
    drill = run("drill", summary.database, "--repo", str(repo), **secret)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    stored = tree_bytes(repo)
    assert any(name.startswith("packs/") for name in stored)
    assert any(name.startswith("drills/") for name in stored)
    assert occurrences(repo, searched) == {}
    secret_bytes = key_file.read_bytes().strip()
    assert occurrences(repo, {"secret": secret_bytes}) == {}


def test_wrong_or_missing_key_changes_nothing(
    odoo_database, filestore_root, database_names, tmp_path
):
    repo = tmp_path / "repo"
    Repository.init(str(repo), secret=b"right passphrase", kdf=FAST_KDF)
    summary = odoo_database()
    snapshot_id = backup(repo, summary.database, filestore_root,
                         ODOO_DR_PASSPHRASE="right passphrase")  # fmt: skip
    before = tree_bytes(repo)

    target = summary.database + "_never"
    database_names.append(target)
    backup_command = (
        "backup", summary.database, "--filestore-root", str(filestore_root)
    )  # fmt: skip
    restore_command = (
        "restore", snapshot_id, "--target", target, "--copy",
        "--filestore-root", str(tmp_path / "restored"),
    )  # fmt: skip
    wrong = "wrong passphrase"

    cases = [
        (backup_command, {"ODOO_DR_PASSPHRASE": wrong}),
        (backup_command, {}),
        (restore_command, {"ODOO_DR_PASSPHRASE": wrong}),
        (restore_command, {}),
        (("drill", snapshot_id), {"ODOO_DR_PASSPHRASE": wrong}),
        (("key", "change"), {"ODOO_DR_PASSPHRASE": wrong}),
        (("snapshots",), {}),
    ]
    for command, secrets in cases:
        result = run(*command, "--repo", str(repo),
                     ODOO_DR_NEW_PASSPHRASE="another", **secrets)  # fmt: skip
        label = f"{command[0]} with {sorted(secrets) or 'no key'}"
        assert result.returncode == 2, label + result.stderr
        expected = "does not unlock" if secrets else "no key was given"
        assert expected in result.stderr, label + result.stderr
        assert wrong not in result.stdout + result.stderr, label

    assert tree_bytes(repo) == before
    assert not (tmp_path / "restored").exists()
    assert query("postgres", "SELECT 1 FROM pg_database WHERE datname = %s",
                 (target,)) == []  # fmt: skip


def test_key_change_and_add(odoo_database, filestore_root, key_file, tmp_path):
    repo = tmp_path / "repo"
    Repository.init(str(repo), secret=key_file.read_bytes().strip(), kdf=FAST_KDF)
    summary = odoo_database()
    old = {"ODOO_DR_KEY_FILE": str(key_file)}
    backup(repo, summary.database, filestore_root, **old)
    data_before = {
        name: data
        for name, data in tree_bytes(repo).items()
        if not name.startswith("config.json")
    }

    same = run("key", "change", "--repo", str(repo), **old,
               ODOO_DR_NEW_KEY_FILE=str(key_file))  # fmt: skip
    assert same.returncode == 2
    assert "same as the current" in same.stderr

    changed = run("key", "change", "--repo", str(repo), **old,
                  ODOO_DR_NEW_PASSPHRASE="new passphrase")  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    new = {"ODOO_DR_PASSPHRASE": "new passphrase"}
    rejected = run("snapshots", "--repo", str(repo), **old)
    assert rejected.returncode == 2
    assert "does not unlock" in rejected.stderr
    listed = run("snapshots", "--repo", str(repo), **new)
    assert listed.returncode == 0, listed.stderr
    assert summary.database in listed.stdout
    # The key slot changed; the data was not sealed again.
    after = tree_bytes(repo)
    assert {name: after[name] for name in data_before} == data_before
    assert len(json.loads(after["config.json"])["key_slots"]) == 1

    added = run("key", "add", "--repo", str(repo), **new,
                ODOO_DR_NEW_KEY_FILE=str(key_file))  # fmt: skip
    assert added.returncode == 0, added.stderr
    for secrets in (old, new):
        result = run("verify", "--repo", str(repo), **secrets)
        assert result.returncode == 0, result.stdout + result.stderr
    assert len(json.loads((repo / "config.json").read_text())["key_slots"]) == 2


def test_recovery_script_by_hand(odoo_database, filestore_root, key_file, tmp_path):
    docs = DOCS.read_text()
    script = re.findall(r"```python\n(.*?)```", docs, re.DOTALL)
    assert script == [RECOVERY_SCRIPT]
    repo = tmp_path / "repo"
    secret = key_file.read_bytes().strip()
    Repository.init(str(repo), secret=secret, kdf=FAST_KDF)
    assert "    " + RECOVERY_SCRIPT.splitlines()[0] in (repo / "README.md").read_text()
    summary = odoo_database()
    snapshot_id = backup(repo, summary.database, filestore_root,
                         ODOO_DR_KEY_FILE=str(key_file))  # fmt: skip
    path = tmp_path / "recover.py"
    path.write_text(script[0])
    # The script needs nothing from odoo-dr: only the standard library,
    # cryptography and zstandard.
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(script[0]))
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(ast.parse(script[0]))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - set(sys.stdlib_module_names) == {"cryptography", "zstandard"}
    env = {"PATH": "/usr/bin:/bin", "ODOO_DR_KEY_FILE": str(key_file)}

    listed = subprocess.run(
        [sys.executable, "-I", str(path), str(repo)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:2] == [snapshot_id, summary.database]

    out = tmp_path / "out"
    recovered = subprocess.run(
        [sys.executable, "-I", str(path), str(repo), snapshot_id, str(out)],
        env=env, capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert recovered.returncode == 0, recovered.stderr
    assert tree_bytes(out / "filestore") == tree_bytes(summary.filestore)
    repository = Repository.open(str(repo), secret=secret)
    manifest = repository.find_snapshot(snapshot_id)
    toc = next(item for item in manifest.dump if item.name == "toc.dat")
    toc_bytes = (out / "dump" / "toc.dat").read_bytes()
    assert toc_bytes == repository.blobs.read_blob(toc)
    assert toc_bytes.startswith(b"PGDMP")
    listing = subprocess.run(["pg_restore", "--list", str(out / "dump")],
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert "TABLE DATA public stock_move" in listing.stdout


def test_tampering_is_detected(odoo_database, filestore_root, tmp_path):
    repo = tmp_path / "repo"
    secret = b"tamper test"
    Repository.init(str(repo), secret=secret, kdf=FAST_KDF)
    summary = odoo_database()
    first = backup(repo, summary.database, filestore_root,
                   ODOO_DR_PASSPHRASE="tamper test")  # fmt: skip
    second = backup(repo, summary.database, filestore_root,
                    ODOO_DR_PASSPHRASE="tamper test")  # fmt: skip
    repository = Repository.open(str(repo), secret=secret)
    manifest = repository.find_snapshot(first)
    toc = next(item for item in manifest.dump if item.name == "toc.dat")
    blob_id = toc.chunks[0]
    repository.blobs.get(blob_id)
    damage_blob(repository, blob_id, flip=0x01)
    with pytest.raises(CorruptObject):
        repository.blobs.get(blob_id)
    verified = run("verify", "--read-data", "--repo", str(repo),
                   ODOO_DR_PASSPHRASE="tamper test")  # fmt: skip
    assert verified.returncode == 5, verified.stdout + verified.stderr
    assert blob_id in verified.stdout + verified.stderr

    # A manifest copied over another snapshot's name fails to open: the name is
    # part of what its seal authenticates.
    snapshots = repo / "snapshots"
    (snapshots / f"{second}.json").write_bytes(
        (snapshots / f"{first}.json").read_bytes()
    )
    with pytest.raises(SnapshotDamaged, match="is damaged"):
        repository.load_snapshot(second)
    damaged = bytearray((snapshots / f"{first}.json").read_bytes())
    damaged[40] ^= 0x01
    (snapshots / f"{first}.json").write_bytes(bytes(damaged))
    with pytest.raises(SnapshotDamaged):
        repository.load_snapshot(first)
    listed = run("snapshots", "--repo", str(repo), ODOO_DR_PASSPHRASE="tamper test")
    assert listed.returncode == 1
    assert "unreadable" in listed.stderr


def test_unencrypted_config_has_no_key_slots(tmp_path):
    Repository.init(str(tmp_path / "repo"))
    config = json.loads((tmp_path / "repo" / "config.json").read_text())
    assert config["encryption"] == "none"
    assert "key_slots" not in config
    with pytest.raises(RejectedError, match="not encrypted"):
        Repository.open(str(tmp_path / "repo")).add_key(b"any")


def test_unindexed_pack_read_from_sealed_header(tmp_path):
    root = tmp_path / "repo"
    repository = Repository.init(str(root), secret=b"pack test", kdf=FAST_KDF)
    content = os.urandom(4096)
    blob_id, _stats = repository.blobs.put(content)
    repository.blobs.flush()
    assert blob_id != hashlib.sha256(content).hexdigest()
    # A run killed before writing its index file leaves the pack alone.
    for index_file in (root / "index").glob("*.json"):
        index_file.unlink()
    reopened = Repository.open(str(root), secret=b"pack test")
    assert blob_id not in reopened.blobs.index
    assert reopened.blobs.index.add_unindexed_packs() == 1
    assert reopened.blobs.get(blob_id) == content


def test_lock_hides_tenant(tmp_path):
    root = tmp_path / "repo"
    repository = Repository.init(str(root), secret=b"lock test", kdf=FAST_KDF)
    tenant = f"tenant-{uuid.uuid4().hex}"
    with repository.lock_tenant(tenant, "backup"):
        (lock_file,) = (root / "locks").iterdir()
        stored = lock_file.read_bytes()
        assert tenant.encode() not in stored
        assert hashlib.sha256(tenant.encode()).hexdigest()[:32] not in lock_file.name
        # A second run reads the sealed lock back and names its holder.
        with pytest.raises(LockHeld, match=f"tenant {tenant!r} is locked: backup"):
            repository.lock_tenant(tenant, "backup").acquire()
    assert list((root / "locks").iterdir()) == []
