"""Archives crafted to get past import's checks, each of which must fail safely.

A plain dump is a psql script. The check before PostgreSQL finds psql
meta-commands only at the start of a line outside COPY data. psql itself must
reject the others: one after a statement on the same line, and one on a line that
a string containing `COPY ... FROM stdin;` hides from the check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from odoo_dr.odoo.archives import PLAIN_HEADER, PLAIN_TRAILER
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
