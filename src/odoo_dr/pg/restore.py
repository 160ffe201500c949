"""Run pg_restore and judge its errors against an explicit list of harmless ones.

pg_restore goes on after a failed statement and reports each one. A restore by a role
that is not a superuser, into a server that lacks the dump's roles, meets a few
errors that change nothing in the restored data. Every other error fails the restore
with PostgreSQL's own message.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from odoo_dr.pg.binaries import PgTools
from odoo_dr.pg.connection import PgSettings
from odoo_dr.processes import dying_with_parent

log = logging.getLogger(__name__)

_QUERY_ERROR = re.compile(
    r"^pg_restore: error: could not execute query: (?:ERROR|FATAL):\s+(?P<message>.*)$"
)
_OTHER_ERROR = re.compile(r"^pg_restore: (?:error|fatal): (?P<message>.*)$")


@dataclass(frozen=True)
class HarmlessError:
    """A statement and a PostgreSQL message that together change nothing."""

    command: re.Pattern[str]
    message: re.Pattern[str]
    reason: str


# The explicit list of errors a restore tolerates. Each is harmless because the
# statement only sets a comment, or creates something every new database has.
HARMLESS_ERRORS = (
    HarmlessError(
        re.compile(r"^COMMENT ON EXTENSION "),
        re.compile(r"^must be owner of extension "),
        "a comment on an extension that the restoring role does not own",
    ),
    HarmlessError(
        re.compile(r"^COMMENT ON SCHEMA public "),
        re.compile(r"^must be owner of schema public$"),
        "a comment on schema public, which the restoring role does not own",
    ),
    HarmlessError(
        re.compile(r"^CREATE SCHEMA public;"),
        re.compile(r'^schema "public" already exists$'),
        "schema public exists in every new database",
    ),
)


@dataclass(frozen=True)
class RestoreError:
    message: str
    command: str = ""
    hint: str = ""

    def harmless_reason(self) -> str | None:
        for known in HARMLESS_ERRORS:
            if known.command.search(self.command) and known.message.search(
                self.message
            ):
                return known.reason
        return None


def parse_errors(stderr: str) -> list[RestoreError]:
    """Return the failed statements (and other errors) that pg_restore reported.

    pg_restore prints each failed statement as `could not execute query: ERROR: ...`,
    then PostgreSQL's DETAIL and HINT lines, then `Command was: <statement>`.
    """
    errors: list[RestoreError] = []
    lines = stderr.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        query = _QUERY_ERROR.match(line)
        if query is None:
            other = _OTHER_ERROR.match(line)
            if other:
                errors.append(RestoreError(other.group("message").strip()))
            continue
        hints: list[str] = []
        command = ""
        while index < len(lines) and not lines[index].startswith("pg_restore: "):
            following = lines[index]
            index += 1
            if following.startswith("Command was: "):
                command = following.removeprefix("Command was: ").strip()
                break
            if following.startswith(("HINT:", "DETAIL:")):
                hints.append(following.strip())
        errors.append(
            RestoreError(query.group("message").strip(), command, " ".join(hints))
        )
    return errors


def run_restore(
    tools: PgTools,
    settings: PgSettings,
    dbname: str,
    folder: Path,
    jobs: int,
    dump_format: str = "directory",
) -> tuple[int, str]:
    """Run pg_restore of the dump at `folder` (a directory-format dump) into `dbname`.

    `dump_format="custom"` reads a custom-format file at `folder` instead.
    """
    command = [
        tools.pg_restore,
        f"--format={dump_format}",
        f"--jobs={jobs}",
        "--no-owner",
        "--no-privileges",
        f"--dbname={settings.conninfo(dbname)}",
        str(folder),
    ]
    log.debug("running %s", " ".join(command[:5]))
    result = subprocess.run(
        dying_with_parent(command),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        env=settings.subprocess_env(),
        check=False,
    )
    return result.returncode, result.stderr
