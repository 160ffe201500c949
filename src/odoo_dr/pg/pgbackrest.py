"""Running pgBackRest: its commands, its JSON output, the user it runs as.

odoo-dr drives the real pgBackRest for a cluster's base backups and WAL archive; it
never reads or writes pgBackRest's repository itself. Every command gets the same
`--config-path` and `--stanza`, so the settings that `pitr setup` wrote (and the
secrets pgBackRest reads from its own files or `PGBACKREST_*` variables) apply.

PostgreSQL refuses to run as root, and pgBackRest's files must belong to the user
that runs `archive-push` inside the server. Run as root, odoo-dr therefore runs
pgBackRest (and a recovered server) as the cluster's OS user, as pg_ctlcluster does.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odoo_dr.errors import RejectedError, RestoreFailed
from odoo_dr.processes import dying_with_parent

log = logging.getLogger(__name__)

BINARY_VARIABLE = "ODOO_DR_PGBACKREST"
DEFAULT_CONFIG_PATH = Path("/etc/pgbackrest")
DEFAULT_OS_USER = "postgres"
_STANZA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# "ERROR: [055]: unable to load info file ..." on pgBackRest's stderr.
_ERROR_LINE = re.compile(r"(?:ERROR|ASSERT): \[(\d+)\]: (.*)")
# pgBackRest's code for a stanza it finds no info files of.
MISSING_STANZA_CODES = {"055"}
# `pgbackrest info` status code for any error other than a missing stanza or
# backup, such as info files it cannot decrypt.
OTHER_STATUS_CODE = 99


class PgBackRestError(RejectedError):
    """A pgBackRest command failed; `code` is pgBackRest's error number."""

    def __init__(self, message: str, hint: str | None = None, code: str = "") -> None:
        super().__init__(message, hint)
        self.code = code


def validate_stanza(name: str) -> str:
    if not _STANZA_NAME.match(name):
        raise RejectedError(
            f"invalid pgBackRest stanza name {name!r}",
            hint="use letters, digits, '_', '.' and '-', starting with a letter or "
            "digit, such as 'main' or 'eu-prod'",
        )
    return name


def find_binary() -> str:
    explicit = os.environ.get(BINARY_VARIABLE)
    found = explicit or shutil.which("pgbackrest")
    if not found or not Path(found).exists():
        where = f"{BINARY_VARIABLE}={explicit}" if explicit else "the PATH"
        raise RejectedError(
            f"point-in-time recovery needs pgBackRest, but none was found in {where}",
            hint="install it (Debian and Ubuntu: apt-get install pgbackrest) or set "
            f"{BINARY_VARIABLE} to its path",
        )
    return found


@dataclass(frozen=True)
class OsUser:
    """The OS account pgBackRest and a recovered server run as."""

    name: str
    uid: int
    gid: int

    @classmethod
    def resolve(cls, requested: str | None) -> OsUser | None:
        """Return the account to switch to, or None to run as this process.

        Root switches to `requested` (default: postgres). Any other user runs as
        itself and may not ask for another account.
        """
        if os.geteuid() != 0:
            current = pwd.getpwuid(os.geteuid()).pw_name
            if requested and requested != current:
                raise RejectedError(
                    f"--os-user {requested}: only root can run pgBackRest as another "
                    f"user (this is {current})",
                    hint=f"run odoo-dr as {requested}, or leave --os-user out",
                )
            return None
        name = requested or DEFAULT_OS_USER
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise RejectedError(
                f"OS user {name!r} not found: run as root, odoo-dr runs pgBackRest "
                "and PostgreSQL as the cluster's OS user",
                hint="pass --os-user with the user that owns the data folder",
            ) from None
        if entry.pw_uid == 0:
            return None
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def give(self, path: Path) -> None:
        """Make `path` belong to this user (a folder it must write to)."""
        os.chown(path, self.uid, self.gid)

    def check_writable(self, folder: Path, purpose: str) -> None:
        """Give `folder` to this user and check that it can reach and write it.

        A folder under one this user cannot enter, such as /root, stays closed
        to it even when it owns the folder itself.
        """
        self.give(folder)
        result = subprocess.run(
            ["test", "-w", str(folder), "-a", "-x", str(folder)],
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            check=False,
        )
        if result.returncode != 0:
            raise RejectedError(
                f"OS user {self.name} cannot write to {folder}, where {purpose}",
                hint=f"pass --temp-dir with a folder {self.name} can reach, such as "
                "/var/tmp",
            )


@dataclass(frozen=True)
class PgBackRest:
    """One stanza of one pgBackRest configuration."""

    stanza: str
    config_path: Path = DEFAULT_CONFIG_PATH
    os_user: OsUser | None = None

    def command(
        self, name: str, *options: str, arguments: tuple[str, ...] = ()
    ) -> list[str]:
        return [
            find_binary(),
            f"--config-path={self.config_path}",
            f"--stanza={self.stanza}",
            "--log-level-console=off",
            "--log-level-stderr=warn",
            *options,
            name,
            *arguments,
        ]

    def archive_push_command(self) -> str:
        """Return the archive_command that makes the server push WAL to this stanza."""
        binary = find_binary()
        return (
            f"{shlex.quote(binary)} --config-path={shlex.quote(str(self.config_path))} "
            f"--stanza={self.stanza} archive-push %p"
        )

    def run(
        self,
        name: str,
        *options: str,
        arguments: tuple[str, ...] = (),
        timeout: float | None = None,
        purpose: str | None = None,
    ) -> str:
        """Run pgBackRest command `name` and return its standard output."""
        args = self.command(name, *options, arguments=arguments)
        log.debug("running %s", " ".join(args))
        user = self.os_user
        try:
            result = subprocess.run(
                dying_with_parent(args),
                capture_output=True,
                # pgBackRest may echo bytes of an encrypted file it failed to read.
                encoding="utf-8",
                errors="replace",
                timeout=timeout,
                check=False,
                cwd="/",
                user=user.uid if user else None,
                group=user.gid if user else None,
                extra_groups=[] if user else None,
            )
        except subprocess.TimeoutExpired:
            raise PgBackRestError(
                f"pgBackRest {name} of stanza {self.stanza!r} did not finish within "
                f"{timeout:.0f} s",
                hint="check that the repository is reachable",
            ) from None
        except OSError as exc:
            raise PgBackRestError(
                f"cannot run pgBackRest: {exc.strerror or exc}",
                hint=f"check {BINARY_VARIABLE} or the PATH",
            ) from None
        if result.returncode != 0:
            raise self._error(name, result, purpose)
        return result.stdout

    def _error(
        self, name: str, result: subprocess.CompletedProcess[str], purpose: str | None
    ) -> PgBackRestError:
        found = _ERROR_LINE.findall(result.stderr)
        code, text = found[-1] if found else ("", _last_line(result.stderr))
        what = purpose or f"pgBackRest {name}"
        if code in MISSING_STANZA_CODES:
            hint = (
                f"create the stanza first: odoo-dr pitr setup --stanza {self.stanza} "
                f"(pgBackRest configuration in {self.config_path})"
            )
        else:
            hint = (
                f"check the pgBackRest configuration in {self.config_path} and its "
                "log; run pgbackrest check for the stanza"
            )
        message = f"{what} of stanza {self.stanza!r} failed"
        if code:
            message += f" (pgBackRest error {code})"
        return PgBackRestError(f"{message}: {text}", hint=hint, code=code)

    def info(self) -> dict[str, Any] | None:
        """Return pgBackRest's JSON about the stanza, or None when it has no stanza."""
        output = self.run("info", "--output=json", "--log-level-file=off", timeout=300)
        try:
            # strict=False: a message may quote control bytes of a damaged file.
            stanzas = json.loads(output, strict=False)
        except json.JSONDecodeError:
            raise PgBackRestError(
                f"pgBackRest info of stanza {self.stanza!r} printed no JSON",
                hint="check that /usr/bin/pgbackrest is pgBackRest 2.x",
            ) from None
        for stanza in stanzas:
            if stanza.get("name") == self.stanza:
                # Status 1 is "missing stanza path": no stanza-create yet.
                status = stanza.get("status") or {}
                if status.get("code") == 1:
                    return None
                if status.get("code") == OTHER_STATUS_CODE:
                    messages = [
                        (repo.get("status") or {}).get("message", "")
                        for repo in stanza.get("repo") or []
                    ]
                    reason = next((m for m in messages if m), status.get("message"))
                    raise PgBackRestError(
                        f"pgBackRest cannot read the repository of stanza "
                        f"{self.stanza!r}: {_printable(reason or 'no message')}",
                        hint=f"check the repository settings in {self.config_path}, "
                        "the cipher passphrase above all, and run pgbackrest info",
                    )
                return stanza
        return None

    def list_files(self, path: str) -> dict[str, dict[str, Any]]:
        """Return the files under `path` of the repository, by relative name."""
        output = self.run(
            "repo-ls",
            "--output=json",
            "--recurse",
            "--log-level-file=off",
            arguments=(path,),
            timeout=600,
        )
        listing = json.loads(output) if output.strip() else {}
        return {
            name: entry
            for name, entry in listing.items()
            if entry.get("type") == "file"
        }

    def archive_get(self, segment: str, destination: Path) -> None:
        """Copy WAL file `segment` from the archive to `destination`, uncompressed."""
        self.run(
            "archive-get",
            "--log-level-file=off",
            arguments=(segment, str(destination)),
            timeout=600,
            purpose=f"fetching WAL segment {segment} from the archive",
        )

    def restore(
        self,
        pg_path: Path,
        backup_set: str,
        target_time: str,
        tablespaces: Path,
        jobs: int,
    ) -> None:
        """Restore base backup `backup_set` into `pg_path`, set to recover to a time.

        The restored server gets archive_mode=off and every tablespace goes under
        `tablespaces`, so nothing of it points back at production paths.
        """
        try:
            self.run(
                "restore",
                f"--pg1-path={pg_path}",
                f"--set={backup_set}",
                "--type=time",
                f"--target={target_time}",
                "--target-action=promote",
                "--archive-mode=off",
                f"--tablespace-map-all={tablespaces}",
                f"--process-max={jobs}",
                "--log-level-file=off",
                purpose=f"restoring base backup {backup_set}",
            )
        except PgBackRestError as exc:
            raise RestoreFailed(exc.message, exc.hint) from None


def _printable(text: str, limit: int = 300) -> str:
    """Return `text` with "?" for each character outside printable ASCII, cut."""
    cleaned = "".join(
        char if char.isascii() and char.isprintable() else "?" for char in text
    )
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
