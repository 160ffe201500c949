"""Faults found by trying to break odoo-dr: kills, damage, hostile input, odd setups."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
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
from odoo_dr.engine.restore_plan import parse_owner
from odoo_dr.errors import RejectedError
from odoo_dr.pg import temporary


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

    def restore_process(comment: str | None) -> bool:
        # Only the databases of an odoo-dr restore process count: tests running
        # beside this one create marked databases of other pids on purpose.
        mark = temporary.parse_mark(comment)
        if mark is None or mark["host"] != temporary.HOST:
            return False
        try:
            command = Path(f"/proc/{mark['pid']}/cmdline").read_bytes()
        except OSError:
            return False
        return b"odoo_dr" in command and b"restore" in command

    def watch() -> None:
        with admin_connection() as connection:
            while not stop.is_set():
                # Odoo lists databases that allow connections and are not
                # templates (odoo.service.db.list_dbs).
                seen.extend(
                    hidden
                    for hidden, comment in connection.execute(
                        "SELECT datistemplate OR NOT datallowconn,"
                        " shobj_description(oid, 'pg_database') FROM pg_database"
                        " WHERE datname LIKE 'odoo-dr-restore-%'"
                    )
                    if restore_process(comment)
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
    assert b"interrupted by SIGTERM" in err
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


def test_sigint_backup_reports_interruption(repository, odoo_database, filestore_root):
    from test_cases import MEDIUM

    summary = odoo_database(scale=MEDIUM)
    locks = Path(repository.location) / "locks"
    process = subprocess.Popen(
        [sys.executable, "-m", "odoo_dr", "backup", summary.database,
         "--filestore-root", str(filestore_root), "--repo", repository.location],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(locks.iterdir()):
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted by SIGINT" in err
    assert out == ""
    assert repository.snapshot_ids() == []
    assert list(locks.iterdir()) == []


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

    pack = repository.blobs.location(shared["chunks"][0]).pack
    delete_pack_of(repository, shared["chunks"][0])
    missing = cli("verify", "--json", "--repo", repository.location)
    assert missing.returncode == 5
    problems = json.loads(missing.stdout)["snapshots"][0]["problems"]
    assert (
        f"filestore file {shared['path']}: object {shared['chunks'][0]} missing "
        f"(its pack {pack} is gone)"
    ) in problems


def test_verify_reads_unindexed_packs(cli, repository, odoo_database, filestore_root):
    """Restores read packs from their headers when the index is lost; so does verify."""
    summary = odoo_database()
    backup(cli, repository, summary.database, filestore_root)
    for index_file in (Path(repository.location) / "index").iterdir():
        index_file.write_text("{not json")

    for extra in ((), ("--read-data",)):
        result = cli("verify", *extra, "--json", "--repo", repository.location)
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["unindexed_packs"] > 0
        assert all(item["ok"] for item in report["snapshots"])
    text = cli("verify", "--repo", repository.location)
    assert text.returncode == 0, text.stdout
    assert "every snapshot can be restored" in text.stdout
    assert "listed by no index file" in text.stderr


@dataclass
class Role:
    """A login role, and the databases where the test granted it privileges."""

    name: str
    databases: set[str] = field(default_factory=set)

    def grant(self, dbname: str, statement: str) -> None:
        text = sql.SQL(statement).format(role=sql.Identifier(self.name))
        query(dbname, text.as_string(None))
        self.databases.add(dbname)


@pytest.fixture
def limited_role(unique):
    """A login role with no privileges; the test grants what it needs."""
    role = Role(f"odoo_dr_limited_{unique}")
    identifier = sql.Identifier(role.name)
    with admin_connection() as connection:
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(identifier))
    yield role
    for dbname in role.databases:
        if database_exists(dbname):
            drop = sql.SQL("DROP OWNED BY {}").format(identifier)
            query(dbname, drop.as_string(None))
    with admin_connection() as connection:
        connection.execute(sql.SQL("DROP ROLE {}").format(identifier))


def test_unreadable_table_rejected_before_backup(
    cli, repository, odoo_database, filestore_root, limited_role
):
    summary = odoo_database()
    for statement in (
        "GRANT USAGE ON SCHEMA public TO {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
        "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        "REVOKE SELECT ON res_users, sale_order_id_seq FROM {role}",
    ):
        limited_role.grant(summary.database, statement)
    result = backup(cli, repository, summary.database, filestore_root,
                    env={"PGUSER": limited_role.name})  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert (
        f"role {limited_role.name!r} may not read 2 table(s) or sequence(s) of "
        f"database {summary.database!r}" in result.stderr
    )
    assert "table public.res_users (no SELECT)" in result.stderr
    assert "sequence public.sale_order_id_seq (no SELECT)" in result.stderr
    assert "hint: grant what is missing" in result.stderr
    assert "unexpected" not in result.stderr
    assert repository.snapshot_ids() == []
    assert list((Path(repository.location) / "locks").iterdir()) == []


def test_missing_schema_usage_rejected(
    cli, repository, odoo_database, filestore_root, limited_role
):
    summary = odoo_database()
    query(summary.database, "REVOKE ALL ON SCHEMA public FROM PUBLIC")
    limited_role.grant(summary.database, "GRANT SELECT ON ir_attachment TO {role}")
    result = backup(cli, repository, summary.database, filestore_root,
                    env={"PGUSER": limited_role.name})  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "table public.ir_attachment (no USAGE on its schema)" in result.stderr
    assert " more" in result.stderr


def test_missing_connect_privilege_named(
    cli, repository, odoo_database, filestore_root, limited_role
):
    summary = odoo_database()
    query(
        "postgres",
        sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC")
        .format(sql.Identifier(summary.database))
        .as_string(None),
    )
    result = backup(cli, repository, summary.database, filestore_root,
                    env={"PGUSER": limited_role.name})  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert (
        f"may not connect to database {summary.database!r}: the role lacks the "
        "CONNECT privilege" in result.stderr
    )
    assert f'GRANT CONNECT ON DATABASE "{summary.database}"' in result.stderr


def test_restore_needs_data_dir_or_root(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    conf = tmp_path / "odoo.conf"
    conf.write_text("[options]\ndb_host = 127.0.0.1\ndb_user = postgres\n")
    target = summary.database + "_no_data_dir"
    database_names.append(target)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "ODOO_DR_FILESTORE_ROOT": str(tmp_path)}
    result = cli("restore", snapshot_id, "--target", target, "--copy",
                 "--odoo-config", str(conf), "--repo", repository.location,
                 env=env)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"{conf} sets no data_dir" in result.stderr
    assert "--filestore-root" in result.stderr
    assert "~/.local/share/Odoo of the user it runs as" in result.stderr
    assert not database_exists(target)
    assert list(home.iterdir()) == []

    # --filestore-root settles it; data_dir in odoo.conf does too.
    given = cli("restore", snapshot_id, "--target", target, "--copy",
                "--odoo-config", str(conf), "--filestore-root", str(tmp_path / "fs"),
                "--repo", repository.location)  # fmt: skip
    assert given.returncode == 0, given.stderr
    assert (tmp_path / "fs" / target).is_dir()


def test_backup_names_default_filestore_root(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    conf = tmp_path / "odoo.conf"
    conf.write_text("[options]\ndb_host = 127.0.0.1\ndb_user = postgres\n")
    home = tmp_path / "home"
    result = cli("backup", summary.database, "--odoo-config", str(conf),
                 "--repo", repository.location,
                 env={"HOME": str(home), "XDG_DATA_HOME": ""})  # fmt: skip
    assert result.returncode == 2, result.stderr
    expected = home / ".local/share/Odoo/filestore" / summary.database
    assert f"filestore folder {expected} not found" in result.stderr
    assert (
        "the root comes from Odoo's default data_dir of the user running odoo-dr, "
        f"since {conf} sets no data_dir" in result.stderr
    )


def test_database_change_under_tenant_warned(
    cli, repository, odoo_database, filestore_root, unique
):
    first = odoo_database(f"odoo_dr_test_{unique}_a")
    second = odoo_database(f"odoo_dr_test_{unique}_b")
    old = backup(cli, repository, first.database, filestore_root, "--tenant", "acme")
    assert old.returncode == 0, old.stderr
    same = backup(cli, repository, first.database, filestore_root, "--tenant", "acme")
    assert same.returncode == 0, same.stderr
    assert "warning" not in same.stderr
    changed = backup(cli, repository, second.database, filestore_root,
                     "--tenant", "acme", "--json")  # fmt: skip
    assert changed.returncode == 1, changed.stderr
    manifest = json.loads(changed.stdout)
    (warning,) = manifest["warnings"]
    assert (
        f"tenant 'acme' was backed up from database {first.database!r} until "
        f"snapshot {same.stdout.strip()}, and now from database "
        f"{second.database!r}" in warning
    )
    assert "give each its own --tenant" in warning
    assert f"warning: {warning}" in changed.stderr
    # The files of the other database are read, not taken from its snapshot.
    assert manifest["stats"]["files_reused"] == 0
    assert manifest["stats"]["files_read"] == second.files


def test_snapshots_table_shows_database(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    backup(cli, repository, summary.database, filestore_root, "--tenant", "eu/odoo")
    result = cli("snapshots", "--repo", repository.location)
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["id", "tenant", "database"]
    assert row.split()[1:3] == ["eu/odoo", summary.database]


def test_owner_gets_created_filestore_root(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    """Under umask 077 a filestore root that the restore creates must not stop the
    owner from reaching its files."""
    import pwd

    summary = odoo_database()
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    target = summary.database + "_umask"
    database_names.append(target)
    nobody = pwd.getpwnam("nobody")
    root = tmp_path / "data" / "filestore"
    previous = os.umask(0o077)
    try:
        result = restore(cli, repository, snapshot_id, target, root, "--copy",
                         "--owner", "nobody")  # fmt: skip
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    for path in [tmp_path / "data", root, root / target]:
        assert path.stat().st_uid == nobody.pw_uid, path
    assert tmp_path.stat().st_uid != nobody.pw_uid


def test_numeric_owner_of_restored_files(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    import pwd

    summary = odoo_database()
    snapshot_id = backup(
        cli, repository, summary.database, filestore_root
    ).stdout.strip()
    # A uid and gid without an entry on this host, as in many Odoo containers.
    uid = next(uid for uid in range(40000, 41000) if not _has_user(pwd, uid))
    target = summary.database + "_uid"
    database_names.append(target)
    result = restore(cli, repository, snapshot_id, target, tmp_path / "out",
                     "--copy", "--owner", f"{uid}:{uid + 1}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "out" / target
    for path in [folder, *folder.rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (uid, uid + 1), path

    wrong = restore(cli, repository, snapshot_id, target + "x", tmp_path / "out",
                    "--copy", "--owner", str(uid))  # fmt: skip
    assert wrong.returncode == 2
    assert (
        f"invalid --owner '{uid}': uid {uid} has no entry on this host, so its "
        "group is unknown" in wrong.stderr
    )
    assert f"--owner {uid}:{uid}" in wrong.stderr
    assert not database_exists(target + "x")


@pytest.mark.parametrize(
    ("owner", "message"),
    [
        ("nobody:", "expected USER or USER:GROUP"),
        (":nogroup", "expected USER or USER:GROUP"),
        ("no_such_user_here", "no such user 'no_such_user_here'"),
        ("nobody:no_such_group_here", "no such group 'no_such_group_here'"),
        ("99999999999", "uid 99999999999 is out of range"),
        ("0:99999999999", "gid 99999999999 is out of range"),
    ],
)
def test_invalid_owner_rejected(owner, message):
    with pytest.raises(RejectedError) as raised:
        parse_owner(owner)
    assert raised.value.message.startswith(f"invalid --owner {owner!r}: {message}")


def test_owner_names_and_numbers():
    import pwd

    nobody = pwd.getpwnam("nobody")
    assert parse_owner("nobody") == (nobody.pw_uid, nobody.pw_gid)
    assert parse_owner(str(nobody.pw_uid)) == (nobody.pw_uid, nobody.pw_gid)
    assert parse_owner("nobody:0") == (nobody.pw_uid, 0)
    assert parse_owner("40000:40001") == (40000, 40001)


def _has_user(pwd, uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_verbosity_after_command(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    quiet = backup(cli, repository, summary.database, filestore_root, "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert "INFO" not in quiet.stderr
    verbose = backup(cli, repository, summary.database, filestore_root, "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert "DEBUG" in verbose.stderr
    # -v wins over -q, wherever each one is.
    both = cli("-q", "snapshots", "--repo", str(filestore_root), "-v")
    assert both.returncode == 2
    assert "DEBUG error details" in both.stderr
