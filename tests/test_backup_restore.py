"""Backup and restore round trips through the command line, on the real server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import query, tree_digest
from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.repository.store import Repository


def backup(cli, repository: Repository, name: str, root: Path, *extra: str):
    result = cli(
        "backup",
        name,
        "--repo",
        repository.location,
        "--filestore-root",
        str(root),
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha1(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_backup_prints_snapshot_id(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    snapshot_id = backup(cli, repository, summary.database, filestore_root)
    manifest = repository.find_snapshot(snapshot_id)
    assert manifest.tenant == summary.database
    assert manifest.filestore.referenced_files == summary.files
    assert manifest.filestore.attachments_in_database == 1
    assert manifest.row_counts["stock_move"] > 0
    assert manifest.odoo.modules["stock"] == "17.0.1.1"
    assert manifest.postgres.server_major == manifest.postgres.pg_dump_major
    assert manifest.lsn


def test_restore_copy_round_trip(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    snapshot_id = backup(cli, repository, summary.database, filestore_root)
    target = summary.database + "_copy"
    database_names.append(target)
    restored_root = tmp_path / "restored"
    result = cli(
        "restore",
        snapshot_id,
        "--target",
        target,
        "--copy",
        "--filestore-root",
        str(restored_root),
        "--repo",
        repository.location,
    )
    assert result.returncode == 0, result.stderr
    for table in ("stock_move", "account_move_line", "ir_attachment", "res_partner"):
        source = query(summary.database, f"SELECT count(*) FROM {table}")
        copy = query(target, f"SELECT count(*) FROM {table}")
        assert source == copy, table
    assert file_hashes(restored_root / target) == file_hashes(
        filestore_root / summary.database
    )


def test_second_backup_stores_no_files(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    backup(cli, repository, summary.database, filestore_root)
    second = repository.find_snapshot(
        backup(cli, repository, summary.database, filestore_root)
    )
    assert second.stats.files_read == 0
    assert second.stats.files_reused == summary.files
    # Only pg_dump's table of contents, which records the dump time, is new.
    assert second.stats.new_objects <= 2


def test_unchanged_file_is_read_with_read_all(
    cli, repository, odoo_database, filestore_root
):
    summary = odoo_database()
    backup(cli, repository, summary.database, filestore_root)
    again = backup(cli, repository, summary.database, filestore_root, "--read-all")
    manifest = repository.find_snapshot(again)
    assert manifest.stats.files_read == summary.files
    assert manifest.stats.new_objects <= 2


def test_restore_leaves_repository_unchanged(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    snapshot_id = backup(cli, repository, summary.database, filestore_root)
    before = tree_digest(Path(repository.location))
    for target in (summary.database + "_a", summary.database + "_b"):
        database_names.append(target)
        result = cli(
            "restore",
            snapshot_id,
            "--target",
            target,
            "--move",
            "--filestore-root",
            str(tmp_path / "restored"),
            "--repo",
            repository.location,
        )
        assert result.returncode == 0, result.stderr
    assert tree_digest(Path(repository.location)) == before


def test_unreferenced_files_are_kept(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    content = b"uploaded after the snapshot"
    sha1 = hashlib.sha1(content).hexdigest()
    stray = filestore_root / summary.database / sha1[:2] / sha1
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(content)
    snapshot_id = backup(cli, repository, summary.database, filestore_root)
    manifest = repository.find_snapshot(snapshot_id)
    assert manifest.filestore.extra_files == 1
    target = summary.database + "_x"
    database_names.append(target)
    result = cli(
        "restore",
        snapshot_id,
        "--target",
        target,
        "--copy",
        "--filestore-root",
        str(tmp_path / "out"),
        "--repo",
        repository.location,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / target / sha1[:2] / sha1).read_bytes() == content


def test_misnamed_files_stored_when_used(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    """Leave out only an unreferenced file whose content differs from its SHA-1 name.

    A damaged referenced file and files named otherwise are stored."""
    summary = odoo_database()
    folder = filestore_root / summary.database
    (store_fname,) = query(
        summary.database,
        "SELECT store_fname FROM ir_attachment WHERE store_fname IS NOT NULL LIMIT 1",
    )[0]
    damaged = (folder / store_fname).read_bytes() + b" changed"
    (folder / store_fname).write_bytes(damaged)
    others = {
        "custom/report.pdf": b"stored under a name of its own",
        "AB/AB" + "0" * 38: b"upper-case name",
        "ab/ab" + "0" * 37: b"39 hex digits",
    }
    for name, content in others.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(content)
    upload = folder / "ab" / ("ab" + "0" * 38)
    upload.write_bytes(b"half written")

    result = cli("backup", summary.database, "--repo", repository.location,
                 "--filestore-root", str(filestore_root))  # fmt: skip
    assert result.returncode == 1, result.stderr
    manifest = repository.find_snapshot(result.stdout.strip())
    problems = [(p.store_fname, p.reason) for p in manifest.filestore.problems]
    assert problems == [(store_fname, "checksum mismatch")]
    assert manifest.filestore.extra_files == len(others)
    target = summary.database + "_misnamed"
    database_names.append(target)
    restored = tmp_path / "out" / target
    result = cli("restore", manifest.id, "--target", target, "--copy",
                 "--filestore-root", str(tmp_path / "out"),
                 "--repo", repository.location)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"{store_fname} as checksum mismatch" in result.stderr
    assert (restored / store_fname).read_bytes() == damaged
    for name, content in others.items():
        assert (restored / name).read_bytes() == content, name
    assert not (restored / "ab" / upload.name).exists()


def test_checklist_markers_not_stored(
    repository, odoo_database, filestore_root, settings
):
    summary = odoo_database()
    marker = filestore_root / summary.database / "checklist" / "ab" / ("a" * 40)
    marker.parent.mkdir(parents=True)
    marker.touch()
    manifest = run_backup(
        repository, settings, BackupOptions(summary.database, filestore_root)
    )
    assert manifest.filestore.checklist_markers == 1
    assert manifest.filestore.extra_files == 0


def test_snapshots_json_lists_sizes(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    first = backup(cli, repository, summary.database, filestore_root)
    second = backup(cli, repository, summary.database, filestore_root)
    result = cli(
        "snapshots",
        "--json",
        "--repo",
        repository.location,
        "--tenant",
        summary.database,
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [item["id"] for item in listed] == [first, second]
    assert listed[0]["stats"]["new_bytes"] > listed[1]["stats"]["new_bytes"]
    assert listed[0]["filestore"]["referenced_files"] == summary.files


def test_snapshots_table_names_tenant(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    snapshot_id = backup(cli, repository, summary.database, filestore_root)
    result = cli("snapshots", "--repo", repository.location)
    assert result.returncode == 0, result.stderr
    assert snapshot_id in result.stdout
    assert summary.database in result.stdout


def test_large_file_is_chunked(
    repository, odoo_database, filestore_root, settings, database_names, tmp_path
):
    summary = odoo_database()
    content = hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32)
    content = (
        bytes(b ^ (i % 251) for i, b in enumerate(content[: 2 * 1024 * 1024])) + content
    )
    checksum = hashlib.sha1(content).hexdigest()
    path = filestore_root / summary.database / checksum[:2] / checksum
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    query(
        summary.database,
        "INSERT INTO ir_attachment (name, type, store_fname, checksum, file_size,"
        " res_model, res_id)"
        " VALUES ('video.mp4', 'binary', %s, %s, %s, 'stock.picking', 1)",
        (f"{checksum[:2]}/{checksum}", checksum, len(content)),
    )
    manifest = run_backup(
        repository, settings, BackupOptions(summary.database, filestore_root)
    )
    assert not manifest.filestore.problems
    from odoo_dr.engine.restore import load_index

    entry = next(
        item for item in load_index(repository, manifest) if item.sha1 == checksum
    )
    assert len(entry.chunks) > 1
    assert repository.blobs.read_blob(entry) == content
