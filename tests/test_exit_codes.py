"""Every exit code of the README's table, each from a real run."""

from __future__ import annotations

import pytest

from conftest import damage_blob, query
from odoo_dr.errors import ExitCode


def test_exit_code_values():
    assert [code.value for code in ExitCode] == [0, 1, 2, 3, 4, 5]


def test_exit_0_success(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    result = cli("backup", summary.database, "--repo", repository.location,
                 "--filestore-root", str(filestore_root))  # fmt: skip
    assert result.returncode == ExitCode.OK


def test_exit_1_warnings(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    (store_fname,) = query(
        summary.database,
        "SELECT store_fname FROM ir_attachment WHERE store_fname IS NOT NULL LIMIT 1",
    )[0]
    (filestore_root / summary.database / store_fname).unlink()
    result = cli("backup", summary.database, "--repo", repository.location,
                 "--filestore-root", str(filestore_root))  # fmt: skip
    assert result.returncode == ExitCode.WARNINGS
    assert "warning:" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backup"], "name the database to back up"),
        (["backup", "x", "--no-such-option"], "No such option"),
        (["snapshots", "--repo", "/nonexistent/odoo-dr"], "no odoo-dr repository"),
        (["backup", "no_such_database_here"], "not found"),
        (
            ["restore", "zz", "--target", "t", "--copy", "--filestore-root", "/tmp"],
            "no snapshot or tenant named 'zz'",
        ),
        (["prune"], "no retention policy given"),
        (["prune", "--keep-last", "1", "--min-age", "soon"], "invalid --min-age"),
    ],
)
def test_exit_2_rejected(cli, repository, args, message):
    if "--repo" not in args:
        args = [*args, "--repo", repository.location]
    result = cli(*args)
    assert result.returncode == ExitCode.REJECTED
    assert message in result.stderr


def test_exit_2_not_odoo(cli, repository, database_names, unique):
    name = f"plain_{unique}"
    database_names.append(name)
    query("postgres", f'CREATE DATABASE "{name}"')
    result = cli("backup", name, "--repo", repository.location)
    assert result.returncode == ExitCode.REJECTED
    assert "is not an Odoo database" in result.stderr


def test_exit_3_pg_dump_failed(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    # A pg_dump that reports the right version but fails when it runs.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real = "/usr/lib/postgresql"
    for name in ("pg_restore", "psql"):
        (bindir / name).symlink_to(
            next(p for p in __import__("pathlib").Path(real).glob(f"*/bin/{name}"))
        )
    server = query("postgres", "SHOW server_version")[0][0].split()[0]
    script = bindir / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = --version ] && echo "pg_dump (PostgreSQL) {server}" && exit 0\n'
        'echo "pg_dump: error: simulated failure" >&2\nexit 1\n'
    )
    script.chmod(0o755)
    result = cli("backup", summary.database, "--repo", repository.location,
                 "--filestore-root", str(filestore_root),
                 env={"ODOO_DR_PG_BINDIR": str(bindir)})  # fmt: skip
    assert result.returncode == ExitCode.BACKUP_FAILED
    assert "simulated failure" in result.stderr
    assert repository.snapshot_ids() == []
    assert not list((repository.backend.root / "tmp").iterdir())
    assert not list((repository.backend.root / "locks").iterdir())


def test_exit_4_restore_failed(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    snapshot = cli("backup", summary.database, "--repo", repository.location,
                   "--filestore-root", str(filestore_root)).stdout.strip()  # fmt: skip
    manifest = repository.find_snapshot(snapshot)
    # Damage the content of the largest table file: the object is still there, so the
    # pre-checks pass, and the restore finds the damage while reading it.
    largest = max(manifest.dump, key=lambda item: item.size)
    damage_blob(repository, largest.chunks[0])
    target = summary.database + "_broken"
    result = cli("restore", snapshot, "--target", target, "--copy",
                 "--filestore-root", str(tmp_path / "out"),
                 "--repo", repository.location)  # fmt: skip
    assert result.returncode == ExitCode.RESTORE_FAILED
    assert "damaged" in result.stderr
    assert largest.chunks[0] in result.stderr
    assert query(
        "postgres", "SELECT count(*) FROM pg_database WHERE datname = %s", (target,)
    ) == [(0,)]


def test_exit_5_verification_failed(cli, repository, odoo_database, filestore_root):
    summary = odoo_database()
    query(summary.database, "SELECT setval('sale_order_id_seq', 1)")
    snapshot = cli("backup", summary.database, "--repo", repository.location,
                   "--filestore-root", str(filestore_root)).stdout.strip()  # fmt: skip
    result = cli("drill", snapshot, "--repo", repository.location)
    assert result.returncode == ExitCode.VERIFICATION_FAILED
    assert "FAILED" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["init"],
        ["backup", "any_database", "--filestore-root", "/nonexistent"],
        ["snapshots"],
        ["restore", "x", "--target", "t", "--copy", "--filestore-root", "/nonexistent"],
        ["drill", "x"],
        ["verify"],
        ["prune", "--keep-last", "1"],
        ["demo", "--database", "odoo_dr_never_built"],
    ],
    ids=lambda command: command[0],
)
@pytest.mark.parametrize("kind", ["file", "folder"])
def test_exit_2_repo_not_a_repository(cli, tmp_path, command, kind):
    path = tmp_path / "not a repository"
    if kind == "file":
        path.write_text("a backup log, say\n")
    else:
        path.mkdir()
        (path / "notes.txt").write_text("something else\n")
    result = cli(*command, "--repo", str(path))
    assert result.returncode == ExitCode.REJECTED, result.stderr
    assert str(path) in result.stderr
    assert "unexpected" not in result.stderr
    if kind == "file":
        assert "is a file, not a folder" in result.stderr or (
            "exists and is not a folder" in result.stderr
        )
    elif command[0] in {"init", "demo"}:
        assert f"folder {path} is not empty" in result.stderr
    else:
        assert f"folder {path} is not an odoo-dr repository" in result.stderr
