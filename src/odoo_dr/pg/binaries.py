"""Find the pg_dump, pg_restore and psql that fit a server's major version.

pg_dump refuses to dump a server newer than itself, and pg_restore cannot read an
archive written by a newer pg_dump. odoo-dr therefore picks binaries of the server's
major version (or, failing that, the oldest newer one) before it starts any work.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from odoo_dr.errors import RejectedError

log = logging.getLogger(__name__)

BINDIR_VARIABLE = "ODOO_DR_PG_BINDIR"
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class PgTools:
    """One set of client binaries of a single major version."""

    bindir: Path
    version: str
    major: int

    @property
    def pg_dump(self) -> str:
        return str(self.bindir / "pg_dump")

    @property
    def pg_restore(self) -> str:
        return str(self.bindir / "pg_restore")

    @property
    def psql(self) -> str:
        return str(self.bindir / "psql")


def _candidate_bindirs(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit)]
    found: list[Path] = []
    debian_root = Path("/usr/lib/postgresql")
    if debian_root.is_dir():
        for entry in sorted(debian_root.iterdir()):
            if (entry / "bin" / "pg_dump").exists():
                found.append(entry / "bin")
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(os.path.realpath(on_path)).parent)
    unique: list[Path] = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def read_version(binary: Path) -> tuple[str, int] | None:
    """Run `binary --version` and return its version text and major number."""
    try:
        result = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("cannot run %s --version: %s", binary, exc)
        return None
    match = _VERSION.search(result.stdout)
    if result.returncode != 0 or not match:
        log.debug("unexpected output of %s --version: %r", binary, result.stdout)
        return None
    version = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
    return version, int(match.group(1))


def find_tools(required_major: int, purpose: str) -> PgTools:
    """Return binaries whose major version is at least `required_major`.

    The exact major version is preferred; a newer one is the fallback. When only older
    binaries exist, raise a `RejectedError` that names every version found.
    """
    explicit = os.environ.get(BINDIR_VARIABLE)
    candidates: list[PgTools] = []
    for bindir in _candidate_bindirs(explicit):
        missing = [
            name
            for name in ("pg_dump", "pg_restore", "psql")
            if not (bindir / name).exists()
        ]
        if missing:
            log.debug("skipping %s: no %s", bindir, ", ".join(missing))
            continue
        parsed = read_version(bindir / "pg_dump")
        if parsed:
            candidates.append(
                PgTools(bindir=bindir, version=parsed[0], major=parsed[1])
            )

    fitting = sorted(
        (tools for tools in candidates if tools.major >= required_major),
        key=lambda tools: tools.major,
    )
    if fitting:
        chosen = fitting[0]
        log.debug(
            "using %s (version %s) for %s", chosen.bindir, chosen.version, purpose
        )
        return chosen

    where = (
        f"{BINDIR_VARIABLE}={explicit}"
        if explicit
        else "the PATH and /usr/lib/postgresql"
    )
    if candidates:
        found = ", ".join(f"{tools.version} in {tools.bindir}" for tools in candidates)
        message = (
            f"{purpose} needs pg_dump/pg_restore of PostgreSQL {required_major} or "
            f"newer, but only older ones were found: {found}"
        )
    else:
        message = f"{purpose} needs pg_dump, pg_restore and psql, none found in {where}"
    raise RejectedError(
        message,
        hint=f"install postgresql-client-{required_major} or point {BINDIR_VARIABLE} "
        "at the bin folder of a matching PostgreSQL",
    )


def find_newest_tools(purpose: str) -> PgTools:
    """Return the newest client binaries found, without asking any server.

    pg_restore reads archives of its own and every older pg_dump, so the newest
    one can list any archive before odoo-dr connects to a server.
    """
    explicit = os.environ.get(BINDIR_VARIABLE)
    candidates: list[PgTools] = []
    for bindir in _candidate_bindirs(explicit):
        if not all((bindir / name).exists() for name in ("pg_restore", "pg_dump")):
            continue
        parsed = read_version(bindir / "pg_dump")
        if parsed:
            candidates.append(
                PgTools(bindir=bindir, version=parsed[0], major=parsed[1])
            )
    if not candidates:
        raise RejectedError(
            f"{purpose} needs pg_restore, but none was found",
            hint=f"install postgresql-client or point {BINDIR_VARIABLE} at the bin "
            "folder of a PostgreSQL installation",
        )
    return max(candidates, key=lambda tools: tools.major)


def find_program(name: str, major: int) -> str:
    """Return PostgreSQL program `name` (pg_waldump, postgres) of version `major`."""
    explicit = os.environ.get(BINDIR_VARIABLE)
    folders = _candidate_bindirs(explicit)
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    if not explicit and debian not in folders:
        folders.insert(0, debian)
    for bindir in folders:
        program = bindir / name
        if not program.exists():
            continue
        parsed = read_version(program)
        if parsed is not None and parsed[1] == major:
            return str(program)
    raise RejectedError(
        f"{name} of PostgreSQL {major} not found in "
        f"{'$' + BINDIR_VARIABLE if explicit else 'the PATH and /usr/lib/postgresql'}",
        hint=f"install postgresql-{major} (the server package holds {name}) or "
        f"point {BINDIR_VARIABLE} at its bin folder",
    )
