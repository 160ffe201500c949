"""The repository's README recipe gets the data out with jq, zstd and pg_restore."""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
from pathlib import Path

from conftest import delete_pack_of, query
from odoo_dr.repository.store import Repository

FIRST_LINE = (
    "repo='/path/to/this/repository'; snap=\"$repo/snapshots/<id>.json\"; "
    "out='/restore'"
)


def recipe(readme: str) -> str:
    """Return the indented shell blocks of the repository's README as one script."""
    blocks = re.findall(r"\n((?:    .*\n|\n)+)", readme)
    shell = [block for block in blocks if "$out" in block]
    return "\n".join(
        "\n".join(line[4:] for line in block.splitlines()) for block in shell
    )


def run_recipe(
    root: Path, snapshot_id: str, out: Path, target: str
) -> subprocess.CompletedProcess:
    """Run the README's script on `root`, as a user would after setting its paths.

    No shell options are given on the command line: the script sets its own.
    """
    script = recipe((root / "README.md").read_text())
    assert script.lstrip().startswith("set -euo pipefail\n")
    assert FIRST_LINE in script
    script = script.replace(
        FIRST_LINE,
        f"repo={shlex.quote(str(root))}; "
        f'snap="$repo/snapshots/{snapshot_id}.json"; '
        f"out={shlex.quote(str(out))}",
    ).replace(" restored", f" {target}")
    return subprocess.run(
        ["bash", "-c", script],
        env={"PATH": "/usr/bin:/bin", "PGHOST": "127.0.0.1", "PGUSER": "postgres"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_recipe_restores_by_hand(
    cli, odoo_database, filestore_root, database_names, tmp_path
):
    # Spaces in every path: the recipe must quote each one.
    root = tmp_path / "backup disk" / "odoo dr repo"
    repository = Repository.init(str(root))
    summary = odoo_database()
    backup = cli("backup", summary.database, "--repo", repository.location,
                 "--filestore-root", str(filestore_root))  # fmt: skip
    assert backup.returncode == 0, backup.stderr
    snapshot_id = backup.stdout.strip()
    # A second backup adds a second index file for the recipe to read.
    (filestore_root / summary.database / "zz").mkdir()
    (filestore_root / summary.database / "zz" / "added file").write_bytes(b"x" * 5000)
    again = cli("backup", summary.database, "--repo", repository.location,
                "--filestore-root", str(filestore_root))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert len(list((root / "index").glob("*.json"))) >= 2

    out = tmp_path / "by hand" / "out put"
    target = summary.database + "_by_hand"
    database_names.append(target)
    result = run_recipe(root, snapshot_id, out, target)
    assert result.returncode == 0, result.stderr

    for table in ("stock_move", "ir_attachment", "res_partner"):
        expected = query(summary.database, f"SELECT count(*) FROM {table}")
        assert query(target, f"SELECT count(*) FROM {table}") == expected, table
    original = filestore_root / summary.database
    files = [
        p
        for p in original.rglob("*")
        if p.is_file() and "checklist" not in p.parts and "zz" not in p.parts
    ]
    assert len(files) == summary.files
    for path in files:
        copy = out / "filestore" / path.relative_to(original)
        assert (
            hashlib.sha1(copy.read_bytes()).digest()
            == hashlib.sha1(path.read_bytes()).digest()
        )
    assert not (out / "filestore" / "zz").exists()


def test_recipe_stops_on_missing_chunk(
    cli, odoo_database, filestore_root, database_names, tmp_path
):
    root = tmp_path / "odoo dr repo"
    repository = Repository.init(str(root))
    summary = odoo_database()
    backup = cli("backup", summary.database, "--repo", repository.location,
                 "--filestore-root", str(filestore_root))  # fmt: skip
    snapshot_id = backup.stdout.strip()
    manifest = repository.find_snapshot(snapshot_id)
    delete_pack_of(repository, manifest.dump[0].chunks[0])

    target = summary.database + "_never"
    database_names.append(target)
    result = run_recipe(root, snapshot_id, tmp_path / "out", target)
    assert result.returncode != 0
    assert "No such file" in result.stderr
    # The script stops at the first failure, before it creates the database.
    assert query(
        "postgres", "SELECT count(*) FROM pg_database WHERE datname = %s", (target,)
    ) == [(0,)]
