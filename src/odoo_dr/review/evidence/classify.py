"""What a container runs: Odoo, PostgreSQL, Redis, a metrics exporter or a backup job.

Each is read from the image reference (`registry:5000/team/name:tag@sha256:...`),
the command line, and for Odoo also from an odoo.conf mounted into the container.
An exporter (`prometheuscommunity/postgres-exporter`, `oliver006/redis_exporter`)
is never the server it watches, and a backup job that mounts odoo.conf (odoo-dr,
pg_dump, restic) is never an Odoo server.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from odoo_dr.review.evidence.objects import Container

POSTGRESQL = "postgresql"
REDIS = "redis"

_POSTGRES_WORDS = ("postgres", "postgis", "timescale")
_REDIS_WORDS = ("redis", "valkey", "keydb")
# Images named after a database that do not run it: clients, operators, web UIs
# and backup tools.
_NOT_DATABASE_WORDS = ("exporter", "backup", "operator", "commander", "insight")
# Words in an image name that contain `odoo` but are no Odoo server.
_NOT_ODOO_WORDS = ("odoo-dr", "exporter", "backup", "proxy", "nginx", "pgbouncer")
_ODOO_COMMANDS = {"odoo", "odoo-bin", "openerp-server"}
# Programs found only on an Odoo server's command line, wherever they appear.
_ODOO_PROGRAMS = {"odoo-bin", "openerp-server"}
# Words after which the next word is the program a shell or wrapper runs.
_COMMAND_PREFIXES = {"exec", "&&", "||", ";", "|", "then", "do", "else", "nohup"}
_COMMAND_PREFIXES |= {"python", "python3", "sudo", "time", "--", "tini", "dumb-init"}
# Wrappers that take a user before the program: `gosu odoo odoo`.
_USER_WRAPPERS = {"gosu", "su-exec"}
# Options only an Odoo server's command line carries.
SERVER_OPTIONS = {
    "--workers",
    "--max-cron-threads",
    "--proxy-mode",
    "--db-filter",
    "--gevent-port",
    "--longpolling-port",
    "--no-database-list",
    "--addons-path",
}
ODOO_PORTS = (8069, 8072)
# Backup programs; a container running one is a backup job, whatever its image.
BACKUP_PROGRAMS = re.compile(
    r"(?<![\w-])(odoo-dr|pg_dump|pg_dumpall|pg_basebackup|pgbackrest|wal-g|restic"
    r"|borg|click-odoo-backupdb|barman-cloud-backup)(?![\w-])"
)


def image_name(image: str) -> str:
    """Return the last path part of an image reference, without tag or digest."""
    return image.split("@")[0].rsplit("/", 1)[-1].split(":")[0].lower()


def image_folders(image: str) -> list[str]:
    """Return the path parts of an image reference before its name, registry
    included: `registry.example.com/odoo` for `registry.example.com/odoo/erp:17`."""
    return image.split("@")[0].lower().split("/")[:-1]


def command_tokens(command: list[str]) -> list[str]:
    """Split the command into words, including a shell command given as one word."""
    tokens = []
    for word in command:
        if " " in word or "\n" in word:
            try:
                tokens += shlex.split(word)
            except ValueError:
                tokens += word.split()
        else:
            tokens.append(word)
    return tokens


def programs(command: list[str]) -> list[str]:
    """Return the base names of the programs a command line runs: its first word,
    and each word after a shell separator, `exec` or a wrapper such as `gosu USER`."""
    tokens = command_tokens(command)
    found = []
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index >= 1 else None
        before = tokens[index - 2] if index >= 2 else None
        starts = (
            previous is None
            or previous in _COMMAND_PREFIXES
            or previous.endswith((";", "entrypoint.sh"))
            or previous.rsplit("/", 1)[-1] in _COMMAND_PREFIXES
            or (before is not None and before.rsplit("/", 1)[-1] in _USER_WRAPPERS)
        )
        if starts:
            found.append(token.rsplit("/", 1)[-1])
    return found


def runs_backup(container: Container) -> bool:
    """Return whether the container runs a backup program (odoo-dr, pg_dump,
    restic, ...)."""
    return BACKUP_PROGRAMS.search(" ".join(container.command)) is not None


def exporter_of(container: Container) -> str | None:
    """Return what a metrics exporter watches (`postgresql`, `redis` or its image
    name), or None when the container is no exporter."""
    name = image_name(container.image)
    if "exporter" not in name:
        return None
    if any(word in name for word in _REDIS_WORDS):
        return REDIS
    if any(word in name for word in _POSTGRES_WORDS):
        return POSTGRESQL
    return name


def _database_image(container: Container, words: tuple[str, ...]) -> bool:
    name = image_name(container.image)
    return any(word in name for word in words) and not any(
        word in name for word in _NOT_DATABASE_WORDS
    )


def is_postgres_container(container: Container) -> bool:
    return not container.init and _database_image(container, _POSTGRES_WORDS)


def is_redis_container(container: Container) -> bool:
    return not container.init and _database_image(container, _REDIS_WORDS)


def mounts_odoo_conf(container: Container) -> bool:
    """Return whether an odoo.conf is mounted where Odoo reads it."""
    for _name, target in container.mounts:
        path = target.rstrip("/")
        if path.endswith(("/odoo.conf", "/openerp-server.conf")) or path == "/etc/odoo":
            return True
    return False


def is_odoo_container(container: Container) -> bool:
    """Recognise an Odoo server: by its image name, its command line (`odoo`,
    `odoo-bin`, `openerp-server`, server options), an odoo.conf mounted, or Odoo's
    port in an image stored below an `odoo` folder. Exporters, databases, proxies
    and backup jobs are never Odoo servers."""
    name = image_name(container.image)
    if any(word in name for word in _NOT_ODOO_WORDS) or runs_backup(container):
        return False
    if _database_image(container, _POSTGRES_WORDS + _REDIS_WORDS):
        return False
    if "odoo" in name or "openerp" in name:
        return True
    tokens = command_tokens(container.command)
    if any(token.rsplit("/", 1)[-1] in _ODOO_PROGRAMS for token in tokens):
        return True
    if any(program in _ODOO_COMMANDS for program in programs(container.command)):
        return True
    if any(token.partition("=")[0] in SERVER_OPTIONS for token in tokens):
        return True
    if mounts_odoo_conf(container):
        return True
    in_odoo_folder = any("odoo" in folder for folder in image_folders(container.image))
    return in_odoo_folder and any(port in container.ports for port in ODOO_PORTS)
