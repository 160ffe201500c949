"""Inputs that broke other Odoo and PostgreSQL backup tools, each kept as a test."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import (
    SMALL,
    accept_manifests,
    admin_connection,
    database_exists,
    query,
    tree_digest,
)
from mounts import odoo_dr, run_in_namespace, tmpfs
from odoo_dr.demo.builder import DemoScale
from odoo_dr.pg.connection import PgSettings

HOST = socket.gethostname()
MEDIUM = DemoScale(
    partners=60,
    products=30,
    sale_orders=120,
    purchase_orders=30,
    messages=200,
    generated_files=400,
    generated_file_bytes=150_000,
)
# The small database with 4 MB more of files.
FILES_4MB = replace(SMALL, generated_files=40, generated_file_bytes=100_000)


def backup_args(repository, name: str, root: Path, *extra: str) -> list[str]:
    return [
        "backup",
        name,
        "--repo",
        repository.location,
        "--filestore-root",
        str(root),
        *extra,
    ]


def restore_args(
    repository, snapshot: str, target: str, root: Path, *extra: str
) -> list[str]:
    return [
        "restore", snapshot, "--target", target, "--filestore-root", str(root),
        "--repo", repository.location, *extra,
    ]  # fmt: skip


# -- a killed backup (SIGKILL halfway), then started again


def test_killed_backup_publishes_nothing(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database(scale=MEDIUM)
    first = cli(*backup_args(repository, summary.database, filestore_root))
    assert first.returncode == 0, first.stderr
    good = first.stdout.strip()
    packs = Path(repository.location) / "packs"
    packs_before = tree_digest(packs)

    # New files make the second backup write packs for a while.
    for index in range(300):
        path = filestore_root / summary.database / "zz" / f"{index:040x}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(200_000))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "odoo_dr",
            *backup_args(repository, summary.database, filestore_root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum(1 for _ in packs.rglob("*") if _.is_file()) >= len(packs_before) + 2:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()

    assert [
        path.stem for path in (Path(repository.location) / "snapshots").iterdir()
    ] == [good]
    assert list((Path(repository.location) / "locks").iterdir()), (
        "the killed run held a lock"
    )

    again = cli(*backup_args(repository, summary.database, filestore_root))
    assert again.returncode == 0, again.stderr
    assert "stale lock" in again.stderr
    # The packs the killed run finished are taken in, not written again.
    assert "packs that no index file listed" in again.stderr
    resumed = repository.find_snapshot(again.stdout.strip())
    assert resumed.stats.new_bytes < 300 * 200_000
    assert not list((Path(repository.location) / "tmp").iterdir())
    assert not list((Path(repository.location) / "locks").iterdir())
    # The packs of the first snapshot are untouched, and it still restores.
    after = tree_digest(packs)
    assert all(after[key] == value for key, value in packs_before.items())
    target = summary.database + "_good"
    database_names.append(target)
    restored = cli(
        *restore_args(repository, good, target, tmp_path / "restored", "--move")
    )
    assert restored.returncode == 0, restored.stderr
    assert not (tmp_path / "restored" / target / "zz").exists()


def test_lock_stops_second_backup(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    with repository.lock_tenant(summary.database, "backup"):
        result = cli(*backup_args(repository, summary.database, filestore_root))
    assert result.returncode == 2
    assert f"pid {os.getpid()}" in result.stderr
    assert repository.snapshot_ids() == []


def test_lock_is_per_tenant(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    with repository.lock_tenant("another tenant", "backup"):
        result = cli(*backup_args(repository, summary.database, filestore_root))
    assert result.returncode == 0, result.stderr


# -- a small temporary folder, a larger filestore, a disk that runs out


def test_small_temp_dir_backs_up_larger_filestore(
    repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database(scale=FILES_4MB)
    assert summary.file_bytes > 4 * 2**20
    temp = tmp_path / "temp"
    temp.mkdir()
    # Room for the dump (under 1 MiB), not for a copy of the filestore.
    script = f"""
{tmpfs(temp, 2**20)}
code=0
{odoo_dr(*backup_args(repository, summary.database, filestore_root,
                      "--temp-dir", str(temp)))} || code=$?
ls -A {shlex.quote(str(temp))}
exit $code
"""  # fmt: skip
    result = run_in_namespace(script)
    assert result.returncode == 0, result.stderr
    # The snapshot id, then the empty listing of the temporary folder.
    (snapshot_id,) = result.stdout.split()
    manifest = repository.find_snapshot(snapshot_id)
    assert manifest.filestore.referenced_files == summary.files
    assert manifest.filestore.referenced_bytes == summary.file_bytes


def assert_nothing_published(repository) -> None:
    root = Path(repository.location)
    assert repository.snapshot_ids() == []
    assert list((root / "tmp").iterdir()) == []
    assert list((root / "locks").iterdir()) == []


def test_full_temp_dir_fails_backup_cleanly(
    repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    temp = tmp_path / "temp"
    temp.mkdir()
    script = f"""
{tmpfs(temp, 64 * 1024)}
code=0
{odoo_dr(*backup_args(repository, summary.database, filestore_root,
                      "--temp-dir", str(temp)))} || code=$?
ls -A {shlex.quote(str(temp))}
exit $code
"""  # fmt: skip
    result = run_in_namespace(script)
    assert result.returncode == 3, result.stderr
    assert "No space left on device" in result.stderr
    assert f"free space on the disk of {temp}/" in result.stderr
    assert result.stdout.split() == []
    assert_nothing_published(repository)


def test_full_repository_fails_backup_cleanly(odoo_database, filestore_root, tmp_path):
    summary = odoo_database()
    disk = tmp_path / "disk"
    disk.mkdir()
    repo = disk / "repo"
    # The dump goes to --temp-dir: the packs of the filestore fill the repository.
    script = f"""
{tmpfs(disk, 256 * 1024)}
{odoo_dr("init", "--repo", str(repo))} > /dev/null
code=0
{odoo_dr("backup", summary.database, "--repo", str(repo), "--filestore-root",
         str(filestore_root), "--temp-dir", str(tmp_path))} || code=$?
ls -A {shlex.quote(str(repo / "snapshots"))} {shlex.quote(str(repo / "tmp"))} \
  {shlex.quote(str(repo / "locks"))}
exit $code
"""  # fmt: skip
    result = run_in_namespace(script)
    assert result.returncode == 3, result.stderr
    message = f"no space left on the device of repository path {repo}/"
    assert message in result.stderr
    assert "move the repository to a larger disk" in result.stderr
    # `ls` of three folders prints a header line for each and nothing else.
    listed = [line for line in result.stdout.splitlines() if line]
    assert all(line.endswith(":") for line in listed), listed
    assert list(tmp_path.glob("odoo-dr-*")) == []


# -- damaged snapshots, each rejected before PostgreSQL is touched


def test_damaged_snapshots_rejected_before_postgres(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshots = {}
    for damage in ("truncated", "no toc.dat", "random bytes"):
        result = cli(*backup_args(repository, summary.database, filestore_root,
                                  "--tenant", damage))  # fmt: skip
        snapshots[damage] = result.stdout.strip()
    folder = Path(repository.location) / "snapshots"
    truncated = folder / f"{snapshots['truncated']}.json"
    truncated.write_bytes(truncated.read_bytes()[:-1024])
    no_toc = folder / f"{snapshots['no toc.dat']}.json"
    manifest = json.loads(no_toc.read_bytes())
    manifest["dump"] = [item for item in manifest["dump"] if item["name"] != "toc.dat"]
    no_toc.write_text(json.dumps(manifest))
    accept_manifests(repository.location)
    (folder / f"{snapshots['random bytes']}.json").write_bytes(os.urandom(4096))

    expected = {
        "truncated": "is damaged",
        "no toc.dat": "its dump has no toc.dat",
        "random bytes": "is damaged",
    }
    messages = set()
    target = summary.database + "_never"
    for damage, snapshot_id in snapshots.items():
        # A server that cannot be reached: a connection attempt would be the error.
        result = cli(
            *restore_args(repository, snapshot_id, target, tmp_path / "out", "--copy"),
            env={"PGHOST": str(tmp_path / "no-server"), "PGPORT": "1"},
        )
        assert result.returncode == 2, result.stderr
        assert expected[damage] in result.stderr, damage
        assert f"{folder}/{snapshot_id}.json" in result.stderr, damage
        assert "cannot connect" not in result.stderr
        messages.add(result.stderr.splitlines()[0])
        assert not database_exists(target)
    assert len(messages) == 3
    assert not (tmp_path / "out").exists()
    verify = cli("verify", "--repo", repository.location)
    assert verify.returncode == 5
    assert f"{snapshots['no toc.dat']}: its dump has no toc.dat" in verify.stdout


# -- referenced files missing from the filestore


@pytest.fixture
def acme_with_missing_files(odoo_database, filestore_root):
    summary = odoo_database("Acme-Prod 2024")
    rows = query(
        summary.database,
        "SELECT id, store_fname, res_model, res_id FROM ir_attachment"
        " WHERE store_fname IS NOT NULL ORDER BY id LIMIT 3",
    )
    for _id, store_fname, _model, _res_id in rows:
        (filestore_root / summary.database / store_fname).unlink()
    return summary, rows


def test_missing_files_warn_on_backup(
    cli, repository, filestore_root, acme_with_missing_files
):
    summary, rows = acme_with_missing_files
    result = cli(*backup_args(repository, summary.database, filestore_root))
    assert result.returncode == 1, result.stderr
    manifest = repository.find_snapshot(result.stdout.strip())
    assert sorted(p.store_fname for p in manifest.filestore.problems) == sorted(
        r[1] for r in rows
    )
    assert {p.reason for p in manifest.filestore.problems} == {"missing"}
    for attachment_id, store_fname, model, res_id in rows:
        assert store_fname in result.stderr
        assert f"ir.attachment,{attachment_id} {model},{res_id}" in result.stderr


def test_missing_files_fail_strict_backup(
    cli, repository, filestore_root, acme_with_missing_files
):
    summary, _rows = acme_with_missing_files
    result = cli(*backup_args(repository, summary.database, filestore_root, "--strict"))
    assert result.returncode == 3
    assert "--strict" in result.stderr
    assert repository.snapshot_ids() == []


def test_drill_lists_missing_files(
    cli, repository, filestore_root, acme_with_missing_files
):
    summary, rows = acme_with_missing_files
    assert (
        cli(*backup_args(repository, summary.database, filestore_root)).returncode == 1
    )
    result = cli("drill", summary.database, "--repo", repository.location)
    assert result.returncode == 5, result.stderr
    assert "filestore" in result.stdout
    for attachment_id, store_fname, model, res_id in rows:
        line = (
            f"{store_fname}: missing (ir.attachment,{attachment_id} {model},{res_id})"
        )
        assert line in result.stdout


def test_corrupt_file_recorded_and_drill_fails(
    cli, repository, odoo_database, filestore_root
):
    summary = odoo_database()
    (store_fname,) = query(
        summary.database,
        "SELECT store_fname FROM ir_attachment WHERE store_fname IS NOT NULL LIMIT 1",
    )[0]
    path = filestore_root / summary.database / store_fname
    path.write_bytes(path.read_bytes()[:-1] + b"X")
    result = cli(*backup_args(repository, summary.database, filestore_root))
    assert result.returncode == 1
    manifest = repository.find_snapshot(result.stdout.strip())
    assert [p.reason for p in manifest.filestore.problems] == ["checksum mismatch"]
    drill = cli("drill", manifest.id, "--repo", repository.location)
    assert drill.returncode == 5
    assert f"{store_fname}: sha1" in drill.stdout


# -- one snapshot restored twice, under two names


def test_snapshot_restored_twice_unchanged(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    snapshot = cli(
        *backup_args(repository, summary.database, filestore_root)
    ).stdout.strip()
    root = Path(repository.location)
    before = content_digest(root)
    original = filestore_root / summary.database
    expected_files = file_contents(original)
    for target in (summary.database + "_one", summary.database + "_two"):
        database_names.append(target)
        result = cli(
            *restore_args(repository, snapshot, target, tmp_path / "out", "--copy")
        )
        assert result.returncode == 0, result.stderr
        assert file_contents(tmp_path / "out" / target) == expected_files
        for table in ("ir_attachment", "stock_move", "res_partner"):
            statement = f"SELECT count(*) FROM {table}"
            assert query(target, statement) == query(summary.database, statement)
    assert content_digest(root) == before


def content_digest(folder: Path) -> dict[str, tuple]:
    """Return path -> (SHA-256, size, mtime_ns, mode) of everything below `folder`."""
    digest = {}
    for path in sorted(folder.rglob("*")):
        stat = path.stat()
        content = ""
        if path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        digest[str(path.relative_to(folder))] = (
            content,
            stat.st_size,
            stat.st_mtime_ns,
            stat.st_mode,
        )
    return digest


def file_contents(folder: Path) -> dict[str, str]:
    """Return path -> SHA-256 of every file below `folder`, Odoo's checklist aside."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).parts[0] != "checklist"
    }


# -- client binaries older than the server


def fake_bindir(tmp_path: Path, version: str) -> Path:
    bindir = tmp_path / "fake-bin"
    bindir.mkdir()
    for name in ("pg_dump", "pg_restore", "psql"):
        script = bindir / name
        script.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
        script.chmod(0o755)
    return bindir


def test_old_pg_dump_rejected_before_work(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    server = query("postgres", "SHOW server_version")[0][0].split()[0]
    env = {"ODOO_DR_PG_BINDIR": str(fake_bindir(tmp_path, "11.22"))}
    result = cli(*backup_args(repository, summary.database, filestore_root), env=env)
    assert result.returncode == 2
    assert "11.22" in result.stderr
    assert f"PostgreSQL {server.split('.')[0]}" in result.stderr
    assert repository.snapshot_ids() == []
    assert not list((Path(repository.location) / "tmp").iterdir())
    assert not list((Path(repository.location) / "locks").iterdir())


def test_old_pg_restore_rejected_before_work(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot = cli(
        *backup_args(repository, summary.database, filestore_root)
    ).stdout.strip()
    env = {"ODOO_DR_PG_BINDIR": str(fake_bindir(tmp_path, "12.3"))}
    target = summary.database + "_old"
    result = cli(
        *restore_args(repository, snapshot, target, tmp_path / "out", "--copy"), env=env
    )
    assert result.returncode == 2
    assert "12.3" in result.stderr
    assert not database_exists(target)


# -- a restore by a role that is not a superuser, without the dump's owner role


@pytest.fixture
def roles(unique):
    names = {"prod": f"odoo_prod_{unique}", "drill": f"odoo_drill_{unique}"}
    yield names
    with admin_connection() as connection:
        for role in names.values():
            exists = connection.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
            ).fetchone()
            if not exists:
                continue
            for (dbname,) in connection.execute(
                "SELECT datname FROM pg_database WHERE datdba = %s::regrole", (role,)
            ).fetchall():
                connection.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                        sql.Identifier(dbname)
                    )
                )
            connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def create_role(name: str) -> None:
    with admin_connection() as connection:
        connection.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB NOSUPERUSER").format(
                sql.Identifier(name)
            )
        )


def drop_database_and_role(dbname: str, role: str) -> None:
    with admin_connection() as connection:
        connection.execute(
            sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def build_as(role: str, name: str, root: Path):
    from conftest import SMALL
    from odoo_dr.demo.builder import build

    return build(PgSettings.from_options(dsn=f"user={role}"), name, root, SMALL)


def test_restore_as_other_role(
    cli, repository, filestore_root, database_names, roles, unique, tmp_path
):
    create_role(roles["prod"])
    name = f"owned_by_prod_{unique}"
    database_names.append(name)
    build_as(roles["prod"], name, filestore_root)
    query(name, "CREATE EXTENSION pg_trgm")
    snapshot = cli(*backup_args(repository, name, filestore_root)).stdout.strip()
    drop_database_and_role(name, roles["prod"])

    create_role(roles["drill"])
    as_drill = {"PGUSER": roles["drill"]}
    target = f"restored_by_drill_{unique}"
    result = cli(
        *restore_args(repository, snapshot, target, tmp_path / "out", "--copy"),
        env=as_drill,
    )
    assert result.returncode == 0, result.stderr
    owners = query(
        target, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
    )
    assert owners == [(roles["drill"],)]
    assert query(
        target, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'"
    ) == [(1,)]

    drill = cli("drill", snapshot, "--repo", repository.location, env=as_drill)
    assert drill.returncode == 0, drill.stdout + drill.stderr


def test_untolerated_restore_error_fails(
    cli, repository, filestore_root, database_names, roles, unique, tmp_path
):
    summary_name = f"with_dblink_{unique}"
    database_names.append(summary_name)
    from conftest import SMALL
    from odoo_dr.demo.builder import build

    build(PgSettings.from_options(), summary_name, filestore_root, SMALL)
    query(summary_name, "CREATE EXTENSION dblink")
    snapshot = cli(
        *backup_args(repository, summary_name, filestore_root)
    ).stdout.strip()

    create_role(roles["drill"])
    target = f"dblink_copy_{unique}"
    result = cli(
        *restore_args(repository, snapshot, target, tmp_path / "out", "--copy"),
        env={"PGUSER": roles["drill"]},
    )
    assert result.returncode == 4
    assert 'permission denied to create extension "dblink"' in result.stderr
    assert "CREATE EXTENSION" in result.stderr
    assert not database_exists(target)
    assert not (tmp_path / "out" / target).exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


# -- restoring over an existing database


def test_existing_target_rejected(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    snapshot = cli(
        *backup_args(repository, summary.database, filestore_root)
    ).stdout.strip()
    target = summary.database + "_existing"
    database_names.append(target)
    with admin_connection() as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
    query(target, "CREATE TABLE keep_me (id int)")

    result = cli(
        *restore_args(repository, snapshot, target, tmp_path / "out", "--copy")
    )
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert "--force" in result.stderr
    assert query(target, "SELECT to_regclass('keep_me') IS NOT NULL") == [(True,)]

    forced = cli(
        *restore_args(
            repository, snapshot, target, tmp_path / "out", "--copy", "--force"
        )
    )
    assert forced.returncode == 0, forced.stderr
    assert f"replacing existing database '{target}' (--force)" in forced.stderr
    assert query(target, "SELECT to_regclass('keep_me') IS NULL") == [(True,)]


def test_existing_folder_rejected(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    snapshot = cli(
        *backup_args(repository, summary.database, filestore_root)
    ).stdout.strip()
    target = summary.database + "_folder"
    database_names.append(target)
    stray = tmp_path / "out" / target / "old-file"
    stray.parent.mkdir(parents=True)
    stray.write_text("from an earlier database")

    result = cli(
        *restore_args(repository, snapshot, target, tmp_path / "out", "--copy")
    )
    assert result.returncode == 2
    assert "filestore folder" in result.stderr
    assert stray.exists()
    assert not database_exists(target)

    forced = cli(
        *restore_args(
            repository, snapshot, target, tmp_path / "out", "--copy", "--force"
        )
    )
    assert forced.returncode == 0, forced.stderr
    assert not stray.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [target]


# -- copy versus move identity


def identity_of(dbname: str) -> dict[str, str]:
    return dict(
        query(
            dbname,
            "SELECT key, value FROM ir_config_parameter WHERE key IN"
            " ('database.uuid', 'database.secret', 'database.create_date')",
        )
    )


def test_copy_and_move_identity(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    original = identity_of(summary.database)
    snapshot = cli(
        *backup_args(repository, summary.database, filestore_root)
    ).stdout.strip()
    copy_name, move_name = summary.database + "_c", summary.database + "_m"
    database_names.extend([copy_name, move_name])

    copied = cli(
        *restore_args(
            repository, snapshot, copy_name, tmp_path / "out", "--copy", "--json"
        )
    )
    assert copied.returncode == 0, copied.stderr
    report = json.loads(copied.stdout)["identity"]
    copy_identity = identity_of(copy_name)
    for key in ("database.uuid", "database.secret", "database.create_date"):
        assert copy_identity[key] != original[key], key
    assert report["database.uuid"] == {
        "before": original["database.uuid"],
        "after": copy_identity["database.uuid"],
    }
    assert report["database.secret"]["before"] != report["database.secret"]["after"]
    assert original["database.secret"] not in copied.stdout
    assert copy_identity["database.secret"] not in copied.stdout

    moved = cli(
        *restore_args(repository, snapshot, move_name, tmp_path / "out", "--move")
    )
    assert moved.returncode == 0, moved.stderr
    assert identity_of(move_name) == original
    assert original["database.uuid"] in moved.stdout


def test_restore_needs_copy_or_move(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot = cli(
        *backup_args(repository, summary.database, filestore_root)
    ).stdout.strip()
    neither = cli(*restore_args(repository, snapshot, "x_neither", tmp_path))
    assert neither.returncode == 2
    assert "--copy or --move" in neither.stderr
    both = cli(
        *restore_args(repository, snapshot, "x_both", tmp_path, "--copy", "--move")
    )
    assert both.returncode == 2
    assert not database_exists("x_neither")
    assert not database_exists("x_both")


# -- neutralization of a copy before anyone can connect


def test_drill_copy_is_neutralized(
    cli, repository, odoo_database, filestore_root, database_names
):
    summary = odoo_database()
    assert query(summary.database, "SELECT count(*) FROM ir_cron WHERE active") == [
        (4,)
    ]
    snapshot = cli(
        *backup_args(repository, summary.database, filestore_root)
    ).stdout.strip()
    result = cli("drill", snapshot, "--keep", "--json", "--repo", repository.location)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    scratch = record["scratch_database"]
    database_names.append(scratch)
    assert scratch != summary.database
    assert query(scratch, "SELECT count(*) FROM ir_mail_server WHERE active") == [(0,)]
    assert query(scratch, "SELECT count(*) FROM fetchmail_server WHERE active") == [
        (0,)
    ]
    assert query(
        scratch,
        "SELECT d.name FROM ir_cron c JOIN ir_model_data d"
        " ON d.model = 'ir.cron' AND d.res_id = c.id WHERE c.active",
    ) == [("autovacuum_job",)]
    assert query(scratch, "SELECT state FROM payment_provider") == [
        ("disabled",),
        ("disabled",),
    ]
    assert query(scratch, "SELECT bool_or(prod_environment) FROM delivery_carrier") == [
        (False,)
    ]
    assert query(
        scratch,
        "SELECT DISTINCT webhook_url FROM ir_act_server WHERE webhook_url IS NOT NULL",
    ) == [("https://neutralized.invalid/",)]
    assert query(
        scratch,
        "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'",
    ) == [("true",)]
    # The source keeps its mail servers and scheduled actions.
    assert query(
        summary.database, "SELECT count(*) FROM ir_mail_server WHERE active"
    ) == [(1,)]


def test_target_appears_only_neutralized(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    snapshot = cli(
        *backup_args(repository, summary.database, filestore_root)
    ).stdout.strip()
    target = summary.database + "_neutral"
    database_names.append(target)
    seen: list[str | None] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(dbname=target, connect_timeout=2) as connection:
                    row = connection.execute(
                        "SELECT value FROM ir_config_parameter"
                        " WHERE key = 'database.is_neutralized'"
                    ).fetchone()
                    seen.append(row[0] if row else None)
                    return
            except psycopg.OperationalError:
                time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    result = cli(
        *restore_args(
            repository, snapshot, target, tmp_path / "out", "--copy", "--neutralize"
        )
    )
    time.sleep(0.2)
    stop.set()
    watcher.join()
    assert result.returncode == 0, result.stderr
    assert seen == ["true"]


def test_neutralize_production_name_rejected(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot = cli(
        *backup_args(repository, summary.database, filestore_root)
    ).stdout.strip()
    result = cli(
        *restore_args(
            repository,
            snapshot,
            summary.database,
            tmp_path,
            "--move",
            "--neutralize",
            "--force",
        )
    )
    assert result.returncode == 2
    assert "neutralize" in result.stderr
    assert query(
        summary.database, "SELECT count(*) FROM ir_mail_server WHERE active"
    ) == [(1,)]


# -- database names with spaces, capitals, dots, quotes and non-ASCII letters


@pytest.mark.parametrize(
    "name",
    ["Acme-Prod 2024", "ACME_Prod", "odoo.prod.eu", "Café Ümlaut", 'O\'Brien "B"'],
)
def test_odd_name_round_trips(
    cli, repository, odoo_database, filestore_root, name, unique
):
    name = f"{name} {unique}"
    summary = odoo_database(name)
    original = identity_of(name)
    snapshot = cli(*backup_args(repository, name, filestore_root)).stdout.strip()
    manifest = repository.find_snapshot(snapshot)
    assert manifest.tenant == name

    # Failover: the original is gone, the move brings it back under its own name.
    with admin_connection() as connection:
        connection.execute(
            sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
        )
    folder = filestore_root / name
    files_before = tree_digest(folder)
    import shutil

    shutil.rmtree(folder)
    result = cli(*restore_args(repository, snapshot, name, filestore_root, "--move"))
    assert result.returncode == 0, result.stderr
    assert identity_of(name) == original
    assert sorted(tree_digest(folder)) == sorted(files_before)
    assert sorted(p.name for p in filestore_root.iterdir()) == [name]
    assert summary.files == len(files_before)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("x" * 64, "bytes long"),
        ("tenant/../../etc", "slash"),
        (".hidden", "starts with a dot"),
        ("tab\tname", "control character"),
    ],
)
def test_invalid_name_rejected(cli, repository, filestore_root, name, reason):
    result = cli(*backup_args(repository, name, filestore_root))
    assert result.returncode == 2
    assert reason in result.stderr


def test_killed_restore_cleaned_by_next(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database(scale=MEDIUM)
    snapshot = cli(
        *backup_args(repository, summary.database, filestore_root)
    ).stdout.strip()
    target = summary.database + "_killed"
    database_names.append(target)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "odoo_dr",
         *restore_args(repository, snapshot, target, out, "--copy")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    temporary = None
    deadline = time.monotonic() + 60
    while temporary is None and time.monotonic() < deadline:
        rows = query(
            "postgres",
            "SELECT datname FROM pg_database"
            " WHERE shobj_description(oid, 'pg_database') LIKE %s",
            (f"odoo-dr temporary database of pid {process.pid} on host {HOST} %",),
        )
        temporary = rows[0][0] if rows else None
        time.sleep(0.005)
    assert temporary is not None, "the restore never created its temporary database"
    database_names.append(temporary)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert database_exists(temporary)
    assert not database_exists(target)

    again = cli(*restore_args(repository, snapshot, target, out, "--copy"))
    assert again.returncode == 0, again.stderr
    # The next restore on this host, this one or one running beside it, drops it.
    assert not database_exists(temporary)
    assert sorted(p.name for p in out.iterdir()) == [target]
