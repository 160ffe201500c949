"""Archives crafted to get past import's checks, each of which must fail safely.

A plain dump is a psql script. The check before PostgreSQL finds psql
meta-commands only at the start of a line outside COPY data. psql itself must
reject the others: one after a statement on the same line, and one on a line that
a string containing `COPY ... FROM stdin;` hides from the check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import run_cli
from odoo_dr.odoo.archives import PLAIN_HEADER, PLAIN_TRAILER
from odoo_dr.repository.crypto import KdfParameters
from odoo_dr.repository.store import Repository
from test_import_export import database_list

HIDDEN_COMMANDS = {
    "after a statement": b"SELECT 1; \\! touch {marker}\n",
    "after a string holding COPY": (
        b"SELECT '\nCOPY t FROM stdin;\n';\n\\! touch {marker}\n\\.\n"
    ),
}


@pytest.mark.parametrize("case", list(HIDDEN_COMMANDS))
def test_hidden_meta_command_rejected(case, repository: Repository, tmp_path: Path):
    marker = tmp_path / "ran"
    body = HIDDEN_COMMANDS[case].replace(b"{marker}", str(marker).encode())
    dump = tmp_path / "hidden.sql"
    dump.write_bytes(PLAIN_HEADER + b"\n" + body + PLAIN_TRAILER + b"\n")
    before = database_list()
    result = run_cli(
        "import", str(dump), "--tenant", "hidden", "--repo", repository.location
    )
    assert not marker.exists(), "psql ran the dump's shell command"
    assert result.returncode == 3, result.stderr
    assert "hidden.sql" in result.stderr
    assert "backslash commands are restricted" in result.stderr
    assert database_list() - before == set()
    assert repository.list_snapshots() == []


@pytest.mark.parametrize("command", ["import", "backup", "restore", "drill"])
def test_temp_dir_in_encrypted_repository_rejected(
    command, odoo_database, filestore_root: Path, tmp_path: Path
):
    """A --temp-dir inside an encrypted repository would put clear data in it."""
    root = tmp_path / "repo"
    kdf = KdfParameters(memory_cost=8 * 1024, iterations=1, lanes=1)
    Repository.init(str(root), secret=b"passphrase", kdf=kdf)
    secret = {"ODOO_DR_PASSPHRASE": "passphrase"}
    scratch = root / "scratch"
    scratch.mkdir()
    database = odoo_database().database
    backed_up = run_cli(
        "backup",
        database,
        "--filestore-root",
        str(filestore_root),
        "--repo",
        str(root),
        env=secret,
    )
    assert backed_up.returncode == 0, backed_up.stderr
    snapshot = backed_up.stdout.strip()
    dump = tmp_path / "small.sql"
    dump.write_bytes(PLAIN_HEADER + b"\nSELECT 1;\n" + PLAIN_TRAILER + b"\n")
    arguments = {
        "import": ["import", str(dump), "--tenant", "scratch"],
        "backup": ["backup", database, "--filestore-root", str(filestore_root)],
        "restore": [
            "restore",
            snapshot,
            "--target",
            f"{database}_copy",
            "--filestore-root",
            str(tmp_path),
            "--copy",
        ],
        "drill": ["drill", snapshot],
    }[command]
    before = database_list()
    result = run_cli(
        *arguments, "--repo", str(root), "--temp-dir", str(scratch), env=secret
    )
    assert result.returncode == 2, result.stderr
    assert f"--temp-dir {scratch} is inside the encrypted repository" in result.stderr
    assert "hint:" in result.stderr
    assert list(scratch.iterdir()) == []
    assert database_list() - before == set()
    repository = Repository.open(str(root), secret=b"passphrase")
    assert [item.id for item in repository.list_snapshots()] == [snapshot]
    assert list(repository.list_drills()) == []


def test_import_rejects_named_pipe(repository: Repository, tmp_path: Path):
    """A named pipe would be opened and read more than once, and block."""
    pipe = tmp_path / "backup.zip"
    os.mkfifo(pipe)
    before = database_list()
    result = run_cli(
        "import",
        str(pipe),
        "--tenant",
        "pipe",
        "--repo",
        repository.location,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"{pipe} is not a regular file or folder" in result.stderr
    assert "hint:" in result.stderr
    assert database_list() - before == set()
    assert repository.list_snapshots() == []


def test_long_line_read_in_pieces(tmp_path: Path):
    """A dump line of 1 GiB (a large bytea row, or a crafted file) fits in 400 MiB."""
    dump = tmp_path / "long.sql"
    with open(dump, "wb") as handle:
        handle.write(PLAIN_HEADER + b"\nSELECT '")
        handle.seek(2**30)
        handle.write(b"';\n" + PLAIN_TRAILER + b"\n")
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from odoo_dr.odoo import archives\n"
        "limit = 400 * 1024 * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "path = Path(sys.argv[1])\n"
        "archives.check_plain_dump(path, path.name)\n"
        "size = sum(len(piece) for piece in archives.restricted_script(path, 'k'))\n"
        "print(size)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(dump)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) == dump.stat().st_size + len(b"\\restrict k\n")


MANIFEST_CASES = {
    "list": (b"[1, 2]", "manifest.json of odd.zip is not a JSON object"),
    "too large": (b" " * (16 * 1024 * 1024 + 1), "far more than Odoo writes"),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_odd_manifest_rejected_with_hint(case, repository: Repository, tmp_path):
    content, message = MANIFEST_CASES[case]
    path = tmp_path / "odd.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("dump.sql", PLAIN_HEADER + b"\n" + PLAIN_TRAILER + b"\n")
        archive.writestr("manifest.json", content)
    before = database_list()
    result = run_cli(
        "import", str(path), "--tenant", "odd", "--repo", repository.location
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "hint:" in result.stderr
    assert database_list() - before == set()
