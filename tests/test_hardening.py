"""Faults found by trying to break odoo-dr: kills, damage, hostile input, odd setups."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import (
    admin_connection,
    damage_blob,
    database_exists,
    delete_pack_of,
    query,
)
from odoo_dr.engine import snapshot
from odoo_dr.engine.backup import BackupOptions, run_backup


def backup(cli, repository, name: str, root: Path, *extra: str, **kwargs):
    return cli("backup", name, "--repo", repository.location,
               "--filestore-root", str(root), *extra, **kwargs)  # fmt: skip


def restore(cli, repository, snapshot_id: str, target: str, root: Path, *extra: str):
    return cli("restore", snapshot_id, "--target", target, "--filestore-root",
               str(root), "--repo", repository.location, *extra)  # fmt: skip


def add_attachment(dbname: str, root: Path, store_fname: str, content: bytes) -> None:
    import hashlib

    path = root / dbname / store_fname
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    query(
        dbname,
        "INSERT INTO ir_attachment (name, type, store_fname, checksum, file_size,"
        " res_model, res_id)"
        " VALUES ('odd.bin', 'binary', %s, %s, %s, 'res.partner', 3)",
        (store_fname, hashlib.sha1(content).hexdigest(), len(content)),
    )


def test_backslash_names_round_trip(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    add_attachment(
        summary.database, filestore_root, "ab\\cd", b"stored by a Windows share"
    )
    stray = filestore_root / summary.database / "desktop.ini\\x"
    stray.write_bytes(b"dropped by a sync client")
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    target = summary.database + "_bs"
    database_names.append(target)
    result = restore(cli, repository, snapshot_id, target, tmp_path / "out", "--copy")
    assert result.returncode == 0, result.stderr
    assert (
        tmp_path / "out" / target / "ab\\cd"
    ).read_bytes() == b"stored by a Windows share"
    assert (tmp_path / "out" / target / "desktop.ini\\x").exists()
    assert cli("drill", snapshot_id, "--repo", repository.location).returncode == 0


def test_damaged_object_rewritten_by_backup(
    cli, repository, odoo_database, filestore_root
):
    summary = odoo_database()
    first = backup(cli, repository, summary.database, filestore_root).stdout.strip()
    manifest = repository.find_snapshot(first)
    # pg_dump's table of contents records the dump time, so it differs each time;
    # a table's data file does not.
    tables = [item for item in manifest.dump if item.name != "toc.dat"]
    victim = max(tables, key=lambda item: item.size).chunks[0]
    damage_blob(repository, victim)
    assert cli("drill", first, "--repo", repository.location).returncode == 5

    second = backup(cli, repository, summary.database, filestore_root)
    assert second.returncode == 0, second.stderr
    assert f"object {victim} is damaged; rewriting it" in second.stderr
    # The rewritten object repairs the older snapshot too.
    assert cli("drill", first, "--repo", repository.location).returncode == 0
    assert (
        cli("drill", second.stdout.strip(), "--repo", repository.location).returncode
        == 0
    )


def test_drill_of_damaged_snapshot_recorded(
    cli, repository, odoo_database, filestore_root
):
    summary = odoo_database()
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    victim = repository.find_snapshot(snapshot_id).dump[0].chunks[0]
    delete_pack_of(repository, victim)
    result = cli("drill", snapshot_id, "--json", "--repo", repository.location)
    assert result.returncode == 5
    record = json.loads(result.stdout)
    assert record["passed"] is False
    assert "objects missing" in record["error"]
    assert [drill.passed for drill in repository.list_drills()] == [False]


def test_dump_name_traversal_rejected(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    path = Path(repository.location) / "snapshots" / f"{snapshot_id}.json"
    manifest = json.loads(path.read_text())
    planted = tmp_path / "planted"
    manifest["dump"].append({**manifest["dump"][0], "name": str(planted)})
    path.write_text(json.dumps(manifest))
    result = restore(
        cli, repository, snapshot_id, "never_created", tmp_path / "o", "--copy"
    )
    assert result.returncode == 2
    assert "invalid dump file name" in result.stderr
    assert not planted.exists()
    assert not database_exists("never_created")


def test_force_replaces_target_in_use(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    target = summary.database + "_busy"
    database_names.append(target)
    first = restore(cli, repository, snapshot_id, target, tmp_path / "out", "--move")
    assert first.returncode == 0, first.stderr
    query(target, "CREATE TABLE from_before (id int)")
    session = psycopg.connect(dbname=target, autocommit=True)
    try:
        forced = restore(cli, repository, snapshot_id, target, tmp_path / "out",
                         "--move", "--force")  # fmt: skip
        assert forced.returncode == 0, forced.stderr
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    finally:
        session.close()
    assert query(target, "SELECT to_regclass('from_before') IS NULL") == [(True,)]
    leftovers = query("postgres", "SELECT datname FROM pg_database"
                      " WHERE datname LIKE 'odoo-dr-replaced-%'")  # fmt: skip
    assert leftovers == []


def test_temporary_database_hidden_from_odoo(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    target = summary.database + "_hidden"
    database_names.append(target)
    seen: list[bool] = []
    stop = threading.Event()

    def watch() -> None:
        with admin_connection() as connection:
            while not stop.is_set():
                # Odoo lists databases that allow connections and are not
                # templates (odoo.service.db.list_dbs).
                seen.extend(
                    row[0]
                    for row in connection.execute(
                        "SELECT datistemplate OR NOT datallowconn FROM pg_database"
                        " WHERE datname LIKE 'odoo-dr-restore-%'"
                    )
                )
                time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    result = restore(cli, repository, snapshot_id, target, tmp_path / "out", "--copy")
    stop.set()
    watcher.join()
    assert result.returncode == 0, result.stderr
    assert seen, "the watcher never saw the temporary database"
    assert all(seen)
    assert query("postgres", "SELECT datistemplate, datallowconn FROM pg_database"
                 " WHERE datname = %s", (target,)) == [(False, True)]  # fmt: skip


def test_sigterm_restore_leaves_nothing(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    from test_cases import MEDIUM

    summary = odoo_database(scale=MEDIUM)
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    target = summary.database + "_term"
    database_names.append(target)
    temp = tmp_path / "temp"
    temp.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "odoo_dr", "restore", snapshot_id, "--target", target,
         "--copy", "--filestore-root", str(tmp_path / "out"), "--temp-dir", str(temp),
         "--repo", repository.location],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(temp.iterdir()):
        time.sleep(0.005)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert list(temp.iterdir()) == []
    assert not database_exists(target)
    leftovers = query(
        "postgres",
        "SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database')"
        " LIKE %s",
        (f"odoo-dr % of pid {process.pid} %",),
    )
    assert leftovers == []
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.fixture
def read_only_role(unique):
    role = f"odoo_dr_reader_{unique}"
    with admin_connection() as connection:
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        connection.execute(
            sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(role))
        )
    yield role
    with admin_connection() as connection:
        connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_read_only_role_backs_up(
    cli, repository, odoo_database, filestore_root, read_only_role
):
    summary = odoo_database()
    result = backup(cli, repository, summary.database, filestore_root,
                    env={"PGUSER": read_only_role})  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "could not hold off Odoo's filestore garbage collector" in result.stderr
    assert "permission denied" in result.stderr
    manifest = repository.find_snapshot(result.stdout.strip())
    assert manifest.filestore.referenced_files == summary.files
    assert cli("drill", manifest.id, "--repo", repository.location).returncode == 0


def test_busy_garbage_collector_waited_for(
    repository, odoo_database, filestore_root, settings, monkeypatch
):
    summary = odoo_database()
    monkeypatch.setattr(snapshot, "GC_LOCK_TIMEOUT", "1s")
    with psycopg.connect(dbname=summary.database) as collector:
        collector.execute("LOCK ir_attachment IN SHARE MODE")
        manifest = run_backup(
            repository, settings, BackupOptions(summary.database, filestore_root)
        )
    assert any("lock timeout" in warning for warning in manifest.warnings)
    assert manifest.filestore.referenced_files == summary.files


def test_missing_filestore_folder_rejected(cli, repository, odoo_database, tmp_path):
    summary = odoo_database()
    result = backup(cli, repository, summary.database, tmp_path / "wrong")
    assert result.returncode == 2
    assert (
        f"filestore folder {tmp_path / 'wrong' / summary.database} not found"
        in result.stderr
    )
    assert "--filestore-root" in result.stderr
    assert repository.snapshot_ids() == []


def test_odoo_config_without_data_dir(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    conf = tmp_path / "odoo.conf"
    conf.write_text("[options]\ndb_host = 127.0.0.1\ndb_user = postgres\n")
    result = cli("backup", summary.database, "--odoo-config", str(conf),
                 "--repo", repository.location,
                 env={"ODOO_DR_FILESTORE_ROOT": str(filestore_root)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = repository.find_snapshot(result.stdout.strip())
    assert manifest.filestore.referenced_files == summary.files


def test_symlinked_attachment_not_followed(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    secret = tmp_path / "host-secret"
    secret.write_text("ROOT-ONLY SECRET CONTENT")
    secret.chmod(0o600)
    link = filestore_root / summary.database / "aa" / ("a" * 40)
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(secret)
    query(
        summary.database,
        "INSERT INTO ir_attachment (name, type, store_fname, res_model, res_id)"
        " VALUES ('link', 'binary', %s, 'res.partner', 3)",
        (f"aa/{'a' * 40}",),
    )
    result = backup(cli, repository, summary.database, filestore_root)
    assert result.returncode == 1
    assert "not a regular file" in result.stderr
    snapshot_id = result.stdout.strip()
    target = summary.database + "_nolink"
    database_names.append(target)
    restored = restore(cli, repository, snapshot_id, target, tmp_path / "out", "--copy")
    assert restored.returncode == 1
    assert not (tmp_path / "out" / target / "aa" / ("a" * 40)).exists()
    for path in Path(repository.location).rglob("*"):
        if path.is_file():
            assert b"ROOT-ONLY SECRET" not in path.read_bytes()


def test_restore_warns_of_recorded_problems(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    (store_fname,) = query(summary.database, "SELECT store_fname FROM ir_attachment"
                           " WHERE store_fname IS NOT NULL LIMIT 1")[0]  # fmt: skip
    (filestore_root / summary.database / store_fname).unlink()
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    target = summary.database + "_warned"
    database_names.append(target)
    result = restore(cli, repository, snapshot_id, target, tmp_path / "out", "--copy")
    assert result.returncode == 1
    assert f"filestore file {store_fname} as missing" in result.stderr


def test_markup_in_name_printed_verbatim(cli, repository, filestore_root):
    result = backup(cli, repository, "brk_[red]x[bold]", filestore_root)
    assert result.returncode == 2
    assert "'brk_[red]x[bold]' not found" in result.stderr


def test_allow_cron_adds_to_default(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    result = cli("drill", snapshot_id, "--json", "--allow-cron", "base.no_such_job",
                 "--repo", repository.location)  # fmt: skip
    assert result.returncode == 0, result.stdout
    record = json.loads(result.stdout)
    assert record["warnings"] == [
        "--allow-cron base.no_such_job: no scheduled action with this XML id"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dsn", "host=127.0.0.1 connect_timeout=abc"],
            "invalid connection settings",
        ),
        (["--dsn", "host=127.0.0.1 sslpassword=x"], "must not contain sslpassword"),
        (["--temp-dir", "/nonexistent/odoo-dr"], "does not exist"),
        (["--odoo-config", "/tmp"], "is a directory"),
    ],
)
def test_bad_option_values_rejected(cli, repository, filestore_root, args, message):
    result = backup(cli, repository, "any_database", filestore_root, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_tenant_option_separates_snapshots(
    cli, repository, odoo_database, filestore_root
):
    summary = odoo_database()
    eu = backup(
        cli, repository, summary.database, filestore_root, "--tenant", "eu/odoo"
    )
    us = backup(
        cli, repository, summary.database, filestore_root, "--tenant", "us/odoo"
    )
    assert eu.returncode == 0, eu.stderr
    assert us.returncode == 0, us.stderr
    assert [m.id for m in repository.list_snapshots("eu/odoo")] == [eu.stdout.strip()]
    assert repository.find_snapshot(us.stdout.strip()).database.name == summary.database
    drill = cli("drill", "us/odoo", "--json", "--repo", repository.location)
    assert json.loads(drill.stdout)["snapshot_id"] == us.stdout.strip()


def test_iap_accounts_neutralized(
    cli, repository, odoo_database, filestore_root, database_names
):
    summary = odoo_database()
    query(summary.database, "CREATE TABLE iap_account (id serial PRIMARY KEY,"
          " service_name varchar, account_token varchar)")  # fmt: skip
    query(summary.database, "INSERT INTO iap_account (service_name, account_token)"
          " VALUES ('sms', 'tok-123'), ('ocr', 'tok-456+old')")  # fmt: skip
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    result = cli(
        "drill", snapshot_id, "--keep", "--json", "--repo", repository.location
    )
    assert result.returncode == 0, result.stdout
    scratch = json.loads(result.stdout)["scratch_database"]
    database_names.append(scratch)
    assert query(scratch, "SELECT account_token FROM iap_account ORDER BY id") == [
        ("tok-123+disabled",),
        ("tok-456+disabled",),
    ]
    assert os.environ.get("PGHOST")


def test_owner_of_restored_files(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    import pwd

    summary = odoo_database()
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    target = summary.database + "_owned"
    database_names.append(target)
    nobody = pwd.getpwnam("nobody")
    result = restore(cli, repository, snapshot_id, target, tmp_path / "out", "--copy",
                     "--owner", "nobody")  # fmt: skip
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "out" / target
    for path in [folder, *folder.rglob("*")]:
        assert path.stat().st_uid == nobody.pw_uid, path
    wrong = restore(cli, repository, snapshot_id, target + "x", tmp_path / "out",
                    "--copy", "--owner", "no_such_user_here")  # fmt: skip
    assert wrong.returncode == 2
    assert "no such user" in wrong.stderr


def test_verify_names_broken_snapshots(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    first = backup(cli, repository, summary.database, filestore_root).stdout.strip()
    second = backup(cli, repository, summary.database, filestore_root).stdout.strip()
    clean = cli("verify", "--read-data", "--repo", repository.location)
    assert clean.returncode == 0, clean.stdout
    assert "every snapshot can be restored" in clean.stdout

    manifest = repository.find_snapshot(first)
    index = json.loads(repository.blobs.read_blob(manifest.filestore.index))
    shared = index[0]
    damage_blob(repository, shared["chunks"][0], flip=0x01)

    structure = cli("verify", "--repo", repository.location)
    assert structure.returncode == 0, structure.stdout
    result = cli("verify", "--read-data", "--json", "--repo", repository.location)
    assert result.returncode == 5
    report = json.loads(result.stdout)
    broken = {item["id"]: item["problems"] for item in report["snapshots"]}
    assert set(broken) == {first, second}
    for snapshot_id in (first, second):
        assert broken[snapshot_id] == [
            f"filestore file {shared['path']}: object {shared['chunks'][0]} damaged "
            "(decompression error: Restored data doesn't match checksum)"
        ]

    delete_pack_of(repository, shared["chunks"][0])
    missing = cli("verify", "--json", "--repo", repository.location)
    assert missing.returncode == 5
    problems = json.loads(missing.stdout)["snapshots"][0]["problems"]
    assert (
        f"filestore file {shared['path']}: object {shared['chunks'][0]} missing"
        in problems
    )
