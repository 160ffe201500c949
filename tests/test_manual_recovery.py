"""The repository's README recipe gets the data out with jq, zstd and pg_restore."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from conftest import query

FIRST_LINE = (
    "repo=/path/to/this/repository; snap=$repo/snapshots/<id>.json; out=/restore"
)


def recipe(readme: str) -> str:
    """Return the indented shell blocks of the repository's README as one script."""
    blocks = re.findall(r"\n((?:    .*\n|\n)+)", readme)
    shell = [block for block in blocks if "$out" in block]
    return "\n".join(
        "\n".join(line[4:] for line in block.splitlines()) for block in shell
    )


def test_recipe_restores_by_hand(
    cli, repository, odoo_database, filestore_root, database_names, tmp_path
):
    summary = odoo_database()
    backup = cli("backup", summary.database, "--repo", repository.location,
                 "--filestore-root", str(filestore_root))  # fmt: skip
    snapshot_id = backup.stdout.strip()
    root = Path(repository.location)
    script = recipe((root / "README.md").read_text())
    assert FIRST_LINE in script
    out = tmp_path / "by-hand"
    target = summary.database + "_by_hand"
    database_names.append(target)
    script = script.replace(
        FIRST_LINE,
        f"repo={root}; snap=$repo/snapshots/{snapshot_id}.json; out={out}",
    ).replace(" restored", f" {target}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={"PATH": "/usr/bin:/bin", "PGHOST": "127.0.0.1", "PGUSER": "postgres"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    for table in ("stock_move", "ir_attachment", "res_partner"):
        expected = query(summary.database, f"SELECT count(*) FROM {table}")
        assert query(target, f"SELECT count(*) FROM {table}") == expected, table
    original = filestore_root / summary.database
    files = [
        p for p in original.rglob("*") if p.is_file() and "checklist" not in p.parts
    ]
    assert len(files) == summary.files
    for path in files:
        copy = out / "filestore" / path.relative_to(original)
        assert (
            hashlib.sha1(copy.read_bytes()).digest()
            == hashlib.sha1(path.read_bytes()).digest()
        )
