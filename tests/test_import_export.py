"""Import of Odoo's backup archives, and export of snapshots in their layouts.

The source database is the Odoo-shaped sample, whose attachments are the real files
of an Odoo 16 filestore. The truncated plain dump is the real Odoo 9 one. Rejected
archives must leave PostgreSQL untouched, which each test checks by listing
pg_database before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

import odoo9
from conftest import admin_connection, clone_demo, drop_leftovers, query, run_cli
from odoo_dr.engine.importer import ImportOptions, run_import
from odoo_dr.errors import RejectedError
from odoo_dr.odoo.archives import PLAIN_HEADER, PLAIN_TRAILER
from odoo_dr.pg import temporary
from odoo_dr.pg.binaries import find_tools
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.store import Repository

MANIFEST_KEYS = {
    "odoo_dump",
    "db_name",
    "version",
    "version_info",
    "major_version",
    "pg_version",
    "modules",
}


def database_list() -> set[str]:
    """Return the temporary databases in pg_database that no live process uses.

    Import and export create databases only under the temporary names of
    `pg.temporary`. Other tests share the server and create databases of their
    own, so the list leaves out every other name and the temporary databases
    that a live odoo-dr still marks or is creating. Callers check that no
    database appeared: one may disappear, because an import drops the leftovers
    of killed runs.
    """
    with admin_connection() as connection:
        rows = connection.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE datname LIKE 'odoo-dr-restore-%'"
        ).fetchall()
        names = set()
        for name, comment in rows:
            if not re.fullmatch(r"odoo-dr-restore-[0-9a-f]{12}", name):
                continue
            if temporary.in_use(comment) or being_created(connection, name, comment):
                continue
            names.add(name)
    return names


def being_created(connection, name: str, comment: str | None) -> bool:
    """Return whether an unmarked temporary database's creator still holds its lock."""
    if comment is not None or not name.startswith(temporary.RESTORE_PREFIX):
        return False
    key = temporary.creation_lock_key(name)
    if not connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        return True
    connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
    return False


def closed_port() -> str:
    """Return a local TCP port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def tools():
    with admin_connection() as connection:
        major = connection.info.server_version // 10000
    return find_tools(major, "the import and export tests")


def tree_hashes(folder: Path) -> dict[str, str]:
    """Return the SHA-256 of every file below `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def odoo_manifest(dbname: str) -> dict:
    modules = dict(
        query(
            dbname,
            "SELECT name, latest_version FROM ir_module_module"
            " WHERE state = 'installed'",
        )
    )
    return {
        "odoo_dump": "1",
        "db_name": dbname,
        "version": "17.0",
        "version_info": [17, 0, 0, "final", 0, ""],
        "major_version": "17.0",
        "pg_version": "15.0",
        "modules": modules,
    }


def pg_dump(dbname: str, target: Path, *extra: str) -> None:
    subprocess.run(
        [tools().pg_dump, "--no-owner", *extra, f"--file={target}", dbname],
        check=True,
        env={**os.environ, "PGDATABASE": dbname},
    )


def write_odoo_zip(
    path: Path, dump_sql: Path | None, filestore: Path | None, manifest: dict
) -> None:
    """Write a zip as Odoo's database manager does (dump.sql, filestore/, manifest)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if dump_sql is not None:
            archive.write(dump_sql, "dump.sql")
        archive.writestr("manifest.json", json.dumps(manifest, indent=4))
        if filestore is not None:
            for file in sorted(filestore.rglob("*")):
                if file.is_file():
                    archive.write(file, f"filestore/{file.relative_to(filestore)}")


@pytest.fixture(scope="module")
def source(tmp_path_factory, small_template):
    """The sample database, a backup zip of it as Odoo writes one, and its folder."""
    root = tmp_path_factory.mktemp("source")
    name = f"odoo_dr_impexp_{uuid.uuid4().hex[:6]}"
    summary = clone_demo(PgSettings.from_options(), small_template, name, root / "fs")
    dump_sql = root / "dump.sql"
    pg_dump(name, dump_sql)
    good_zip = root / "good.zip"
    write_odoo_zip(good_zip, dump_sql, summary.filestore, odoo_manifest(name))
    yield {"name": name, "folder": summary.filestore, "zip": good_zip, "root": root}
    drop_leftovers([name])


def import_cli(repository: Repository, path: Path, tenant: str, *extra: str):
    return run_cli(
        "import", str(path), "--tenant", tenant, "--repo", repository.location, *extra
    )


def make_zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def symlink_member() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("filestore/ab/link")
    info.create_system = 3
    info.external_attr = (0o120777 << 16) & 0xFFFF0000
    return info


def declare_size(path: Path, member: str, size: int) -> None:
    """Make the central directory declare `size` bytes uncompressed for `member`.

    A size above 4 GiB goes into a zip64 extra field, as a zip of a member that
    large would have it, and the end record is updated for the longer directory.
    """
    data = path.read_bytes()
    end = data.rfind(b"PK\x05\x06")
    directory_size, offset = struct.unpack_from("<II", data, end + 12)
    directory = data[offset : offset + directory_size]
    rewritten = bytearray()
    position = 0
    while position < len(directory):
        name_length, extra_length, comment_length = struct.unpack_from(
            "<HHH", directory, position + 28
        )
        stop = position + 46 + name_length + extra_length + comment_length
        entry = bytearray(directory[position:stop])
        matches = bytes(entry[46 : 46 + name_length]) == member.encode()
        if matches and size < 2**32:
            struct.pack_into("<I", entry, 24, size)
        elif matches:
            zip64 = struct.pack("<HHQ", 0x0001, 8, size)
            struct.pack_into("<I", entry, 24, 0xFFFFFFFF)
            struct.pack_into("<H", entry, 30, extra_length + len(zip64))
            at = 46 + name_length + extra_length
            entry[at:at] = zip64
        rewritten += entry
        position = stop
    record = bytearray(data[end:])
    struct.pack_into("<I", record, 12, len(rewritten))
    path.write_bytes(data[:offset] + bytes(rewritten) + bytes(record))


def rejected_archive(case: str, source: dict, folder: Path) -> Path:
    """Build and return the archive of one rejection case."""
    good = source["zip"].read_bytes()
    if case == "truncated zip":
        path = folder / "cut.zip"
        path.write_bytes(good[:-1024])
    elif case == "zip without dump.sql":
        path = folder / "nodump.zip"
        write_odoo_zip(path, None, source["folder"], {"odoo_dump": "1"})
    elif case == "random file named .zip":
        path = folder / "random.zip"
        path.write_bytes(os.urandom(50_000))
    elif case == "member with ..":
        path = make_zip(
            folder / "dotdot.zip",
            [("dump.sql", b"x"), ("filestore/../../escape", b"x")],
        )
    elif case == "absolute member":
        path = make_zip(
            folder / "absolute.zip", [("dump.sql", b"x"), ("/tmp/evil", b"x")]
        )
    elif case == "symbolic link member":
        path = make_zip(
            folder / "link.zip", [("dump.sql", b"x"), (symlink_member(), b"/etc")]
        )
    elif case == "truncated plain dump":
        path = folder / "odoo9.zip"
        write_odoo_zip(path, odoo9.DUMP, None, {"odoo_dump": "1"})
    elif case == "psql meta-command":
        path = folder / "shell.sql"
        path.write_bytes(
            PLAIN_HEADER + b"\n\\! touch hacked\n" + PLAIN_TRAILER + b"\n--\n"
        )
    elif case == "unreadable custom dump":
        path = folder / "broken.dump"
        path.write_bytes(b"PGDMP" + os.urandom(4000))
    elif case == "zip bomb":
        path = folder / "bomb.zip"
        make_zip(path, [("manifest.json", b"{}"), ("dump.sql", PLAIN_HEADER)])
        declare_size(path, "dump.sql", 2**50)
    elif case == "member larger than declared":
        path = folder / "liar.zip"
        make_zip(path, [("dump.sql", PLAIN_HEADER + b"\n" * 1000)])
        declare_size(path, "dump.sql", 10)
    else:
        raise AssertionError(case)
    return path


REJECTIONS = {
    "truncated zip": "is a truncated or damaged zip archive",
    "zip without dump.sql": "contains a filestore/ folder but no dump.sql",
    "random file named .zip": "is not a zip archive",
    "member with ..": "leads out of the archive's folder",
    "absolute member": "its path is absolute",
    "symbolic link member": "it is a symbolic link",
    "truncated plain dump": "dump.sql of odoo9.zip is truncated",
    "psql meta-command": "shell.sql runs the psql meta-command \\! on line 2",
    "unreadable custom dump": "cannot be read by pg_restore",
    "zip bomb": "declares 1,125,899,906,842,624 bytes uncompressed",
    "member larger than declared": "member 'dump.sql' of liar.zip is damaged",
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_import_rejects_before_postgres(case, source, repository, tmp_path):
    path = rejected_archive(case, source, tmp_path)
    before = database_list()
    result = import_cli(repository, path, "rejected")
    after = database_list()
    assert result.returncode == 2, result.stderr
    assert REJECTIONS[case] in result.stderr
    assert "hint:" in result.stderr
    assert after - before == set()
    assert repository.list_snapshots() == []
    assert list((Path(repository.location) / "tmp").iterdir()) == []
    # The same rejection without a reachable server shows that none was contacted.
    offline = PgSettings.from_options(dsn=f"host=127.0.0.1 port={closed_port()}")
    with pytest.raises(RejectedError) as raised:
        run_import(repository, offline, ImportOptions(path, "rejected"))
    assert REJECTIONS[case] in raised.value.message


def test_rejection_messages_differ():
    assert len(set(REJECTIONS.values())) == len(REJECTIONS)


def click_odoo_folder(source: dict, folder: Path) -> Path:
    """Write a click-odoo-backupdb folder: db.dump, filestore/, manifest.json."""
    folder.mkdir()
    pg_dump(source["name"], folder / "db.dump", "--format=c")
    shutil.copytree(source["folder"], folder / "filestore")
    (folder / "manifest.json").write_text(
        json.dumps(odoo_manifest(source["name"]), indent=4)
    )
    return folder


def snapshot_files(repository: Repository, manifest) -> dict[str, str]:
    raw = repository.blobs.read_blob(manifest.filestore.index)
    return {entry["path"]: entry["sha1"] for entry in json.loads(raw)}


def source_files(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha1(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).parts[0] != "checklist"
    }


def test_folder_imported_twice_unchanged(source, repository, tmp_path):
    folder = click_odoo_folder(source, tmp_path / "backup-2026")
    dumped_by = datetime.now(UTC)
    hashes = tree_hashes(folder)
    before = database_list()
    ids = []
    for tenant in ("first", "second"):
        result = import_cli(repository, folder, tenant)
        assert result.returncode == 0, result.stderr
        ids.append(result.stdout.strip())
    assert database_list() - before == set()
    assert tree_hashes(folder) == hashes
    expected_files = source_files(source["folder"])
    expected_rows = {
        table: rows
        for table, rows in repository.load_snapshot(ids[0]).row_counts.items()
    }
    for snapshot_id, tenant in zip(ids, ("first", "second"), strict=True):
        manifest = repository.load_snapshot(snapshot_id)
        assert manifest.tenant == tenant
        assert manifest.database.name == source["name"]
        assert manifest.labels["imported-from"] == "backup-2026"
        assert manifest.labels["imported-format"] == "click-odoo-folder"
        time_source = manifest.labels["imported-time-from"]
        assert time_source == "creation time in the dump's header"
        assert manifest.snapshot_time <= dumped_by
        assert manifest.warnings == []
        assert snapshot_files(repository, manifest) == expected_files
        assert manifest.row_counts == expected_rows
    counted = query(source["name"], "SELECT count(*) FROM res_partner")[0][0]
    assert expected_rows["res_partner"] == counted


def test_imported_snapshot_drills(source, repository, tmp_path):
    result = import_cli(repository, source["zip"], "zipped")
    assert result.returncode == 0, result.stderr
    manifest = repository.load_snapshot(result.stdout.strip())
    assert manifest.labels["imported-from"] == "good.zip"
    assert manifest.labels["imported-time-from"] == "time of dump.sql in the zip"
    assert manifest.lsn is None
    assert snapshot_files(repository, manifest) == source_files(source["folder"])
    drill = run_cli("drill", manifest.id, "--repo", repository.location, "--json")
    assert drill.returncode == 0, drill.stderr
    assert json.loads(drill.stdout)["passed"] is True


def test_plain_dump_with_filestore(source, repository, tmp_path):
    dump_sql = tmp_path / "dump.sql"
    shutil.copyfile(source["root"] / "dump.sql", dump_sql)
    # A modification time in 2099, as a clock set wrong would leave it.
    future = 4_070_908_800
    os.utime(dump_sql, (future, future))
    started = datetime.now(UTC)
    result = import_cli(
        repository, dump_sql, "plain", "--filestore", str(source["folder"])
    )
    assert result.returncode == 0, result.stderr
    manifest = repository.load_snapshot(result.stdout.strip())
    assert manifest.labels["imported-from"] == "dump.sql"
    assert manifest.labels["imported-format"] == "plain-sql"
    time_source = manifest.labels["imported-time-from"]
    assert time_source == "import time (archive time unknown or later)"
    assert started <= manifest.snapshot_time <= datetime.now(UTC)
    # A plain dump names no database, so the tenant is recorded.
    assert manifest.database.name == "plain"
    assert snapshot_files(repository, manifest) == source_files(source["folder"])


@pytest.fixture
def backed_up(source, repository) -> str:
    result = run_cli(
        "backup",
        source["name"],
        "--repo",
        repository.location,
        "--filestore-root",
        str(source["folder"].parent),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def export_cli(repository: Repository, snapshot: str, fmt: str, output: Path):
    return run_cli(
        "export",
        snapshot,
        "--format",
        fmt,
        "--output",
        str(output),
        "--repo",
        repository.location,
    )


@pytest.mark.parametrize("fmt", ["zip", "folder", "dump"])
def test_export_imports_back(fmt, backed_up, repository, tmp_path):
    original = repository.load_snapshot(backed_up)
    output = tmp_path / f"export-{fmt}"
    before = database_list()
    result = export_cli(repository, backed_up, fmt, output)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(output)
    assert database_list() - before == set()
    assert sorted(path.name for path in tmp_path.iterdir()) == [output.name, "repo"]

    imported = import_cli(repository, output, f"back-{fmt}")
    manifest = repository.load_snapshot(imported.stdout.strip())
    assert manifest.row_counts == original.row_counts
    assert manifest.odoo.modules == original.odoo.modules
    if fmt == "dump":
        # A custom-format file has no filestore: the files are reported missing.
        assert imported.returncode == 1, imported.stderr
        assert snapshot_files(repository, manifest) == {}
        assert len(manifest.filestore.problems) == original.filestore.referenced_files
    else:
        assert imported.returncode == 0, imported.stderr
        assert snapshot_files(repository, manifest) == snapshot_files(
            repository, original
        )


def test_export_zip_layout(backed_up, repository, tmp_path):
    original = repository.load_snapshot(backed_up)
    output = tmp_path / "odoo.zip"
    assert export_cli(repository, backed_up, "zip", output).returncode == 0
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
        archive.extract("dump.sql", tmp_path)
    assert "dump.sql" in names
    files = {name.removeprefix("filestore/") for name in names if "/" in name}
    assert files == set(snapshot_files(repository, original))
    assert set(manifest) == MANIFEST_KEYS
    assert manifest["odoo_dump"] == "1"
    assert manifest["db_name"] == original.database.name
    assert manifest["version"] == "17.0"
    assert manifest["major_version"] == "17.0"
    assert manifest["version_info"] == [17, 0, 0, "final", 0, ""]
    assert manifest["pg_version"] == f"{original.postgres.server_major}.0"
    assert manifest["modules"] == original.odoo.modules


def test_export_zip_loads_with_psql(backed_up, repository, tmp_path, database_names):
    original = repository.load_snapshot(backed_up)
    output = tmp_path / "odoo.zip"
    assert export_cli(repository, backed_up, "zip", output).returncode == 0
    with zipfile.ZipFile(output) as archive:
        archive.extract("dump.sql", tmp_path)
    name = f"odoo_dr_psql_{uuid.uuid4().hex[:6]}"
    database_names.append(name)
    odoo9.create_database(name)
    # Odoo's database manager runs `psql --dbname=DB -q -f dump.sql`; ON_ERROR_STOP
    # also fails the test on errors that psql alone would pass over.
    result = subprocess.run(
        [tools().psql, "-X", "--quiet", "--set=ON_ERROR_STOP=1", "--file=dump.sql"],
        cwd=tmp_path,
        env={**os.environ, "PGDATABASE": name},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for table, rows in original.row_counts.items():
        assert query(name, f'SELECT count(*) FROM "{table}"')[0][0] == rows, table


def test_export_rejects_existing_output(backed_up, repository, tmp_path):
    output = tmp_path / "taken.zip"
    output.write_bytes(b"keep")
    result = export_cli(repository, backed_up, "zip", output)
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert output.read_bytes() == b"keep"


@pytest.mark.parametrize("where", ["root", "tmp", "link"])
def test_export_rejects_output_in_repository(where, backed_up, repository, tmp_path):
    root = Path(repository.location)
    if where == "link":
        (tmp_path / "link").symlink_to(root)
        output = tmp_path / "link" / "x.zip"
    else:
        output = (root if where == "root" else root / "tmp") / "x.zip"
    before = sorted(str(path) for path in root.rglob("*"))
    result = export_cli(repository, backed_up, "zip", output)
    assert result.returncode == 2, result.stderr
    assert f"{output} is inside the repository" in result.stderr
    assert "hint:" in result.stderr
    assert sorted(str(path) for path in root.rglob("*")) == before


def test_export_rejects_missing_output_folder(backed_up, repository, tmp_path):
    output = tmp_path / "missing" / "x.zip"
    result = export_cli(repository, backed_up, "zip", output)
    assert result.returncode == 2, result.stderr
    assert f"folder {output.parent} of --output not found" in result.stderr
    assert "hint:" in result.stderr
    assert not output.parent.exists()


def test_import_labels_follow_label_rules(source, repository, tmp_path):
    """Labels taken from the archive's name and manifest.json obey --label's rules."""
    folder = tmp_path / "odd"
    folder.mkdir()
    path = folder / ("acme\nprod " + "x" * 220 + ".zip")
    manifest = odoo_manifest(source["name"])
    manifest["version"] = "17.0\nimported-from: forged" + "y" * 300
    dump_sql = source["root"] / "dump.sql"
    write_odoo_zip(path, dump_sql, source["folder"], manifest)
    result = import_cli(repository, path, "odd-labels")
    assert result.returncode == 0, result.stderr
    (snapshot,) = repository.list_snapshots()
    labels = snapshot.labels
    assert labels["imported-format"] == "odoo-zip"
    assert "imported-odoo-version" not in labels
    assert labels["imported-from"].startswith("acme?prod xxx")
    for value in labels.values():
        assert len(value) <= 200
        assert all(ord(char) >= 32 for char in value)


@pytest.mark.parametrize("layout", ["zip", "folder"])
def test_dump_format_read_from_content(layout, source, repository, tmp_path):
    """A dump whose name says the other format is loaded by what it contains."""
    if layout == "zip":
        dump = tmp_path / "custom.dump"
        pg_dump(source["name"], dump, "--format=custom")
        path = tmp_path / "custom-inside.zip"
        write_odoo_zip(path, dump, source["folder"], odoo_manifest(source["name"]))
    else:
        path = tmp_path / "plain-inside"
        path.mkdir()
        shutil.copy(source["root"] / "dump.sql", path / "db.dump")
        shutil.copytree(source["folder"], path / "filestore")
        manifest = json.dumps(odoo_manifest(source["name"]))
        (path / "manifest.json").write_text(manifest)
    before = database_list()
    result = import_cli(repository, path, "by-content")
    assert result.returncode == 0, result.stderr
    assert database_list() - before == set()
    (snapshot,) = repository.list_snapshots()
    assert snapshot.database.name == source["name"]
    assert snapshot.labels["imported-from"] == path.name


def test_concurrent_exports_keep_one_output(backed_up, repository, tmp_path):
    """Two exports to one output: one writes it, the other never replaces it."""
    output = tmp_path / "once.zip"
    command = [
        sys.executable,
        "-m",
        "odoo_dr",
        "export",
        backed_up,
        "--format",
        "zip",
        "--output",
        str(output),
        "--repo",
        repository.location,
    ]
    runs = [
        subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    codes = sorted(run.wait() for run in runs)
    messages = [run.stderr.read() for run in runs]
    assert codes == [0, 2], messages
    assert any(f"{output} already exists" in message for message in messages)
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ["once.zip", "repo"]
