"""`pitr setup`: the pgBackRest stanza, WAL archiving and the first full backup.

Setup compares what it wants with what is there and lists every change before it
makes one; run again, it finds nothing to change. Its settings go to two files of
pgBackRest's include folder, `conf.d/odoo-dr-<stanza>.conf` and, readable by the
OS user only, `conf.d/odoo-dr-<stanza>.secrets.conf` with the cipher passphrase and
object-storage keys, so the user's own pgbackrest.conf is never rewritten.
"""

from __future__ import annotations

import configparser
import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from odoo_dr.errors import RejectedError
from odoo_dr.pg.binaries import find_program
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.pgbackrest import PgBackRest

log = logging.getLogger(__name__)

CIPHER_VARIABLE = "ODOO_DR_PITR_CIPHER_PASS"
_HEADER = (
    "# Written by odoo-dr pitr setup, which rewrites this file; change the setup's "
    "options instead.\n"
)


@dataclass(frozen=True)
class RepoSettings:
    """The pgBackRest repository of base backups and WAL: a folder or an S3 bucket."""

    location: str
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_verify_tls: bool = True
    cipher_pass: str | None = field(default=None, repr=False)
    retention_full: int = 2

    def options(self) -> dict[str, str]:
        values: dict[str, str] = {}
        if self.location.startswith("s3://"):
            bucket, _, prefix = self.location[5:].partition("/")
            if not bucket:
                raise RejectedError(
                    f"invalid --pitr-repo {self.location!r}: no bucket",
                    hint="write s3://BUCKET/PREFIX",
                )
            endpoint = self.s3_endpoint or os.environ.get("AWS_ENDPOINT_URL")
            region = (
                self.s3_region
                or os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION")
            )
            if not endpoint or not region:
                raise RejectedError(
                    f"--pitr-repo {self.location}: pgBackRest needs the S3 endpoint "
                    "and region",
                    hint="pass --s3-endpoint and --s3-region, or set "
                    "AWS_ENDPOINT_URL and AWS_REGION",
                )
            host = endpoint.split("://", 1)[-1].rstrip("/")
            values.update(
                {
                    "repo1-type": "s3",
                    "repo1-path": "/" + prefix.strip("/"),
                    "repo1-s3-bucket": bucket,
                    "repo1-s3-region": region,
                    "repo1-s3-uri-style": "path",
                }
            )
            host_name, colon, port = host.rpartition(":")
            if colon and port.isdigit():
                values["repo1-s3-endpoint"] = host_name
                values["repo1-storage-port"] = port
            else:
                values["repo1-s3-endpoint"] = host
            if not self.s3_verify_tls:
                values["repo1-storage-verify-tls"] = "n"
        else:
            path = Path(self.location)
            if not path.is_absolute():
                raise RejectedError(
                    f"--pitr-repo {self.location!r} is not an absolute path",
                    hint="give the folder as an absolute path, such as "
                    "/var/lib/pgbackrest",
                )
            values["repo1-path"] = str(path)
        if self.cipher_pass:
            values["repo1-cipher-type"] = "aes-256-cbc"
        values["repo1-retention-full"] = str(self.retention_full)
        return values

    def secrets(self) -> dict[str, str]:
        values: dict[str, str] = {}
        if self.cipher_pass:
            values["repo1-cipher-pass"] = self.cipher_pass
        if self.location.startswith("s3://"):
            key = os.environ.get("AWS_ACCESS_KEY_ID")
            secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
            if not key or not secret:
                raise RejectedError(
                    f"--pitr-repo {self.location}: pgBackRest needs S3 keys",
                    hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; setup "
                    "writes them to a file only the OS user can read",
                )
            values["repo1-s3-key"] = key
            values["repo1-s3-key-secret"] = secret
        return values


@dataclass(frozen=True)
class SetupOptions:
    repo: RepoSettings
    pg_data: Path | None = None
    archive_timeout: int = 60
    log_path: Path | None = None
    lock_path: Path | None = None
    restart: bool = False


@dataclass
class Change:
    """One change setup makes, described before it is made."""

    description: str
    apply: Callable[[], None] = field(repr=False)


@dataclass
class SetupPlan:
    changes: list[Change]
    restart_needed: list[str]
    stanza_exists: bool
    has_backup: bool
    pg_data: Path


@dataclass
class SetupResult:
    done: list[str]
    restart_pending: list[str]
    backup: str | None


def _ini(section: str, values: dict[str, str]) -> str:
    lines = [_HEADER, f"[{section}]"]
    lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str, backrest: PgBackRest, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(partial, mode)
    if backrest.os_user is not None:
        backrest.os_user.give(partial)
    os.replace(partial, path)


def _read_ini(path: Path, section: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(path.read_text())
    except (OSError, configparser.Error):
        return {}
    return dict(parser[section]) if parser.has_section(section) else {}


def _check_cipher_kept(
    stanza: str,
    files: tuple[Path, Path],
    stanza_values: dict[str, str],
    secrets: dict[str, str],
) -> None:
    """Reject a setup that would change the cipher of the stanza's repository.

    pgBackRest encrypts every file of a repository with one passphrase and cannot
    re-encrypt it: with another cipher setting, archive-push fails and nothing
    already archived can be read. The passphrase in the secrets file may also be
    its only copy on this host, so setup never removes or replaces it.
    """
    config_file, secrets_file = files
    present = _read_ini(config_file, stanza)
    location = ("repo1-type", "repo1-path", "repo1-s3-bucket")
    if not present or any(
        present.get(key) != stanza_values.get(key) for key in location
    ):
        return
    was_encrypted = "repo1-cipher-type" in present
    encrypted = "repo1-cipher-type" in stanza_values
    where = f"stanza {stanza!r} repository {present.get('repo1-path')}"
    if was_encrypted and not encrypted:
        raise RejectedError(
            f"{where} is encrypted, and this setup without --encrypt would remove "
            f"its cipher passphrase from {secrets_file}",
            hint="run setup with --encrypt and the same passphrase; to stop "
            "encrypting, set up a new, empty --pitr-repo",
        )
    if encrypted and not was_encrypted:
        raise RejectedError(
            f"{where} is not encrypted, and pgBackRest cannot encrypt a repository "
            "that already holds a stanza",
            hint="leave --encrypt out, or set up a new, empty --pitr-repo for an "
            "encrypted repository",
        )
    present_pass = _read_ini(secrets_file, stanza).get("repo1-cipher-pass")
    if encrypted and present_pass != secrets.get("repo1-cipher-pass"):
        raise RejectedError(
            f"{where}: the cipher passphrase given differs from the one in "
            f"{secrets_file}, which encrypts everything already archived",
            hint="give the same passphrase (ODOO_DR_PITR_CIPHER_PASS or "
            "--cipher-pass-file); a new passphrase needs a new, empty --pitr-repo",
        )


def _server_values(settings: PgSettings) -> dict[str, tuple[str, bool]]:
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT name, setting, pending_restart FROM pg_settings WHERE name IN"
            " ('archive_mode', 'archive_command', 'archive_timeout', 'wal_level',"
            " 'data_directory', 'unix_socket_directories', 'port')"
        ).fetchall()
        superuser = connection.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    if not superuser or not superuser[0]:
        raise RejectedError(
            f"{settings.describe()} is not a superuser: setup changes archive "
            "settings with ALTER SYSTEM",
            hint="connect as a superuser (--dsn user=postgres) for the setup; status "
            "and drills need less",
        )
    return {name: (value, pending) for name, value, pending in rows}


def plan_setup(
    backrest: PgBackRest, settings: PgSettings, options: SetupOptions
) -> SetupPlan:
    """Compare the wanted configuration with the present one; change nothing."""
    current = _server_values(settings)
    pg_data = options.pg_data or Path(current["data_directory"][0])
    socket = current["unix_socket_directories"][0].split(",")[0].strip()
    stanza_values = {
        "pg1-path": str(pg_data),
        "pg1-port": current["port"][0],
        "pg1-socket-path": socket,
        "compress-type": "zst",
        "start-fast": "y",
        **options.repo.options(),
    }
    user = settings.params.get("user")
    if user:
        stanza_values["pg1-user"] = user
    if options.log_path is not None:
        stanza_values["log-path"] = str(options.log_path)
    if options.lock_path is not None:
        stanza_values["lock-path"] = str(options.lock_path)
    folder = backrest.config_path / "conf.d"
    config_file = folder / f"odoo-dr-{backrest.stanza}.conf"
    secrets_file = folder / f"odoo-dr-{backrest.stanza}.secrets.conf"
    secrets = options.repo.secrets()
    info = None
    info_error = None
    try:
        info = backrest.info()
    except RejectedError as exc:
        info_error = exc
        log.debug("no stanza information yet: %s", exc)
    if info is not None or info_error is not None:
        _check_cipher_kept(
            backrest.stanza, (config_file, secrets_file), stanza_values, secrets
        )
    changes: list[Change] = []
    wanted = _ini(backrest.stanza, stanza_values)
    if not config_file.exists() or config_file.read_text() != wanted:
        verb = "rewrite" if config_file.exists() else "write"
        changes.append(
            Change(
                f"{verb} {config_file}: "
                + ", ".join(f"{k}={v}" for k, v in stanza_values.items()),
                lambda: _write_private(config_file, wanted, backrest, 0o640),
            )
        )
    if secrets:
        secret_text = _ini(backrest.stanza, secrets)
        if not secrets_file.exists() or secrets_file.read_text() != secret_text:
            changes.append(
                Change(
                    f"write {secrets_file} (mode 0600): "
                    + ", ".join(f"{key}=<secret>" for key in secrets),
                    lambda: _write_private(secrets_file, secret_text, backrest, 0o600),
                )
            )
    elif secrets_file.exists():
        changes.append(Change(f"remove {secrets_file}", lambda: secrets_file.unlink()))

    wanted_server = {
        "archive_mode": "on",
        "archive_command": backrest.archive_push_command(),
        "archive_timeout": str(options.archive_timeout),
    }
    if current["archive_mode"][0] == "always":
        wanted_server.pop("archive_mode")
    if current["wal_level"][0] == "minimal":
        wanted_server["wal_level"] = "replica"
    restart_needed = []
    for name, value in wanted_server.items():
        present, pending = current[name]
        if name in ("archive_mode", "wal_level") and pending:
            restart_needed.append(name)
        if present == value:
            continue
        if name in ("archive_mode", "wal_level"):
            restart_needed.append(name)
        changes.append(
            Change(
                f"ALTER SYSTEM SET {name} = {value!r} (was {present!r})",
                _alter(settings, name, value),
            )
        )
    has_backup = bool(info and info.get("backup"))
    return SetupPlan(
        changes=changes,
        restart_needed=sorted(set(restart_needed)),
        stanza_exists=info is not None,
        has_backup=has_backup,
        pg_data=pg_data,
    )


def _alter(settings: PgSettings, name: str, value: str) -> Callable[[], None]:
    def apply() -> None:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            connection.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(name), sql.Literal(value)
                )
            )
            connection.execute("SELECT pg_reload_conf()")

    return apply


def _restart(backrest: PgBackRest, pg_data: Path, major: int) -> None:
    pg_ctl = find_program("pg_ctl", major)
    user = backrest.os_user
    # The restarted server inherits pg_ctl's output: a file, never a pipe that
    # would stay open as long as the server runs.
    log_folder = pg_data / "log"
    log_folder.mkdir(mode=0o700, exist_ok=True)
    if user is not None:
        user.give(log_folder)
    server_log = log_folder / "pg_ctl-restart.log"
    result = subprocess.run(
        [
            pg_ctl,
            "restart",
            "-D",
            str(pg_data),
            "-m",
            "fast",
            "-w",
            "-t",
            "300",
            "-l",
            str(server_log),
        ],  # fmt: skip
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd="/",
        user=user.uid if user else None,
        group=user.gid if user else None,
        extra_groups=[] if user else None,
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise RejectedError(
            f"pg_ctl restart of {pg_data} failed: "
            f"{lines[-1] if lines else 'no output'}",
            hint="restart PostgreSQL the way it is managed here (pg_ctlcluster, "
            "systemctl, the operator), then run pitr setup again",
        )


def apply_setup(
    backrest: PgBackRest,
    settings: PgSettings,
    plan: SetupPlan,
    options: SetupOptions,
    major: int,
) -> SetupResult:
    """Make the planned changes, then create the stanza, check it, back it up."""
    done = []
    for change in plan.changes:
        change.apply()
        done.append(change.description)
        log.debug("done: %s", change.description)
    if plan.restart_needed:
        if not options.restart:
            return SetupResult(done, plan.restart_needed, None)
        _restart(backrest, plan.pg_data, major)
        done.append(f"restarted PostgreSQL ({', '.join(plan.restart_needed)})")
    if not plan.stanza_exists:
        backrest.run("stanza-create", timeout=600, purpose="pgBackRest stanza-create")
        done.append(f"created stanza {backrest.stanza}")
    backrest.run("check", timeout=900, purpose="pgBackRest check")
    done.append("pgBackRest check passed: WAL reaches the archive")
    label = None
    if not plan.has_backup:
        backrest.run("backup", "--type=full", purpose="the first full backup")
        info = backrest.info() or {}
        backups = info.get("backup") or []
        label = backups[-1]["label"] if backups else None
        done.append(f"took the first full backup {label}")
    return SetupResult(done, [], label)
