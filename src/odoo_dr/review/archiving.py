"""WAL archiving that the manifests declare, and the archive_timeout it runs with.

Archiving is declared by:

- a CloudNativePG cluster with a Barman object store or a WAL-archiver plugin;
- a Crunchy PGO cluster with a pgBackRest repository;
- a postgresql.conf (a file or a ConfigMap value), or a PostgreSQL command line,
  with archive_mode on and an archive_command or archive_library;
- a pgBackRest or WAL-G sidecar, or WAL-G's variables, in a PostgreSQL pod.

It shows what the configuration asks for, not that segments reach the archive,
which only the live server's pg_stat_archiver shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from odoo_dr.review.evidence import classify
from odoo_dr.review.evidence.manifests import (
    K8sObject,
    ManifestSet,
    PostgresConf,
    Workload,
)
from odoo_dr.review.evidence.network import same_namespace
from odoo_dr.review.evidence.workloads import as_dict, as_list
from odoo_dr.review.yamlio import Location

# CloudNativePG sets archive_timeout to 5 minutes unless the cluster's parameters
# change it (CloudNativePG 1.15.1 release notes).
CLOUDNATIVE_PG_ARCHIVE_TIMEOUT = 300

_ARCHIVE_MODE = re.compile(r"\barchive_mode\s*=\s*['\"]?(on|always)\b", re.IGNORECASE)
_ARCHIVE_COMMAND = re.compile(
    r"\barchive_(?:command|library)\s*=\s*(?:'([^'\n]*)'|\"([^\"\n]*)\"|(\S+))"
)
_ARCHIVE_TIMEOUT = re.compile(r"\barchive_timeout\s*=\s*['\"]?(\w+)")
_PG_TIME = re.compile(r"^\s*(\d+)\s*(ms|s|min|h|d)?\s*$")
_PG_TIME_UNITS = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400, None: 1}
# Variables that configure WAL-G or WAL-E to push WAL (as Spilo's image reads
# them), or pgBackRest's repository.
_ARCHIVER_VARIABLES = re.compile(
    r"^(WALG_\w*_PREFIX|WALE_\w*_PREFIX|WAL_S3_BUCKET|WAL_GS_BUCKET|USE_WALG_BACKUP"
    r"|PGBACKREST_REPO\d*_\w+)$"
)
_TOOLS = ("pgbackrest", "wal-g", "barman", "wal-e")


@dataclass
class DeclaredArchiving:
    """WAL archiving that a manifest declares."""

    tool: str
    location: Location | None
    detail: str
    archive_timeout: int | None = None
    timeout_location: Location | None = None
    # The archive_timeout is the operator's default, not set in the manifests.
    timeout_default: bool = False
    workload: Workload | None = None
    names: set[str] = field(default_factory=set)
    namespace: str | None = None
    # The operator also takes base backups, so the archive restores the cluster.
    base_backups: bool = False
    offsite: bool | None = None
    encrypted: bool | None = None

    @property
    def kind(self) -> str:
        return f"{self.tool} wal archiving" if self.tool else "wal archiving"


def pg_seconds(text: object) -> int | None:
    """Return the seconds of a PostgreSQL time setting such as `60`, `5min` or `1h`
    (a bare number counts as seconds, archive_timeout's unit)."""
    match = _PG_TIME.match(str(text))
    if match is None:
        return None
    return round(int(match.group(1)) * _PG_TIME_UNITS[match.group(2)])


def archiving_tool(command: str) -> str:
    """Return the archiver an archive_command or archive_library names, else ''."""
    lowered = command.lower()
    return next((tool for tool in _TOOLS if tool in lowered), "")


def _settings(text: str) -> tuple[str, int | None] | None:
    """Return the archiver and archive_timeout of a postgresql.conf or command line
    that turns archiving on; None when it does not."""
    if _ARCHIVE_MODE.search(text) is None:
        return None
    command = _ARCHIVE_COMMAND.search(text)
    if command is None:
        return None
    value = next(group for group in command.groups() if group is not None)
    if not value.strip() or value.strip() in ("/bin/true", "true", ":"):
        return None
    timeout = _ARCHIVE_TIMEOUT.search(text)
    seconds = pg_seconds(timeout.group(1)) if timeout else None
    return archiving_tool(value), seconds or None


def _line_of(text: str, pattern: re.Pattern[str], start: Location) -> Location:
    match = pattern.search(text)
    if match is None or start.line is None:
        return start
    return Location(start.file, start.line + text.count("\n", 0, match.start()))


def _cloudnative_pg(cluster: K8sObject) -> DeclaredArchiving | None:
    store = cluster.get("spec", "backup", "barmanObjectStore")
    plugins = [
        (index, as_dict(item))
        for index, item in enumerate(as_list(cluster.get("spec", "plugins")))
        if as_dict(item).get("isWALArchiver") is True
    ]
    if not store and not plugins:
        return None
    if store:
        tool = "cloudnative-pg barman"
        location = cluster.at("spec", "backup", "barmanObjectStore")
    else:
        index, plugin = plugins[0]
        tool = f"cloudnative-pg {plugin.get('name', 'plugin')}"
        location = cluster.at("spec", "plugins", index)
    found = DeclaredArchiving(
        tool,
        location,
        cluster.ref,
        names={cluster.name},
        namespace=cluster.namespace,
        base_backups=True,
        offsite=True,
    )
    if store:
        store = as_dict(store)
        found.encrypted = bool(store.get("s3Credentials") or store.get("data"))
    path = ("spec", "postgresql", "parameters", "archive_timeout")
    value = cluster.get(*path)
    seconds = pg_seconds(value) if value is not None else None
    if seconds is not None:
        found.archive_timeout = seconds or None
        found.timeout_location = cluster.at(*path)
    else:
        found.archive_timeout = CLOUDNATIVE_PG_ARCHIVE_TIMEOUT
        found.timeout_location = cluster.location
        found.timeout_default = True
    return found


def _crunchy_pgo(cluster: K8sObject) -> DeclaredArchiving | None:
    """Read a Crunchy PGO PostgresCluster, which archives WAL with pgBackRest
    whenever `spec.backups.pgbackrest` has a repository."""
    if not cluster.get("spec", "backups", "pgbackrest", "repos"):
        return None
    found = DeclaredArchiving(
        "pgbackrest",
        cluster.at("spec", "backups", "pgbackrest"),
        cluster.ref,
        names={cluster.name},
        namespace=cluster.namespace,
        base_backups=True,
    )
    path = ("spec", "patroni", "dynamicConfiguration", "postgresql", "parameters")
    value = as_dict(cluster.get(*path)).get("archive_timeout")
    if value is not None and pg_seconds(value):
        found.archive_timeout = pg_seconds(value)
        found.timeout_location = cluster.at(*path, "archive_timeout")
    return found


def _mounted_by(workload: Workload, conf: PostgresConf) -> bool:
    """Return whether the workload mounts the ConfigMap that contains `conf`."""
    holder = conf.holder
    if holder is None or not same_namespace(holder.namespace, workload.namespace):
        return False
    reference = f"ConfigMap/{holder.name}"
    return any(reference in volume.reference for volume in workload.volumes.values())


def _from_workload(
    workload: Workload, manifests: ManifestSet
) -> DeclaredArchiving | None:
    """Archiving a PostgreSQL workload declares: on its command line, in a
    postgresql.conf it mounts, by a pgBackRest or WAL-G sidecar, or by WAL-G's
    variables."""
    names = {workload.name}
    base = {"names": names, "namespace": workload.namespace, "workload": workload}
    for container in workload.containers:
        settings = _settings(" ".join(container.command))
        if settings is not None:
            tool, timeout = settings
            where = container.command_location or workload.location
            return DeclaredArchiving(
                tool, where, workload.ref, timeout, where if timeout else None, **base
            )
    for conf in manifests.postgres_confs:
        settings = _settings(conf.text)
        if settings is not None and _mounted_by(workload, conf):
            tool, timeout = settings
            where = _line_of(conf.text, _ARCHIVE_TIMEOUT, conf.location)
            return DeclaredArchiving(
                tool,
                _line_of(conf.text, _ARCHIVE_MODE, conf.location),
                workload.ref,
                timeout,
                where if timeout else None,
                **base,
            )
    for container in workload.containers:
        if classify.is_postgres_container(container):
            variables = [
                name for name in container.env if _ARCHIVER_VARIABLES.match(name)
            ]
            if variables:
                tool = (
                    "pgbackrest" if variables[0].startswith("PGBACKREST") else "wal-g"
                )
                where = container.env_locations.get(variables[0]) or workload.location
                return DeclaredArchiving(tool, where, workload.ref, **base)
            continue
        words = " ".join([classify.image_name(container.image), *container.command])
        tool = archiving_tool(words)
        if tool in ("pgbackrest", "wal-g"):
            where = container.location or workload.location
            return DeclaredArchiving(tool, where, workload.ref, **base)
    return None


def declared_archiving(manifests: ManifestSet) -> list[DeclaredArchiving]:
    """Return the WAL archiving each PostgreSQL cluster or workload declares, and
    that of postgresql.conf texts no workload mounts."""
    found = []
    for cluster in manifests.of_kind("Cluster", group="postgresql.cnpg.io"):
        item = _cloudnative_pg(cluster)
        if item is not None:
            found.append(item)
    for cluster in manifests.of_kind(
        "PostgresCluster", group="postgres-operator.crunchydata.com"
    ):
        item = _crunchy_pgo(cluster)
        if item is not None:
            found.append(item)
    workloads = [item for item in manifests.workloads() if item.is_postgres]
    for workload in workloads:
        item = _from_workload(workload, manifests)
        if item is not None:
            found.append(item)
    for conf in manifests.postgres_confs:
        settings = _settings(conf.text)
        if settings is None or any(_mounted_by(item, conf) for item in workloads):
            continue
        tool, timeout = settings
        where = _line_of(conf.text, _ARCHIVE_TIMEOUT, conf.location)
        detail = (
            conf.holder.ref if conf.holder else manifests.display(conf.location.file)
        )
        found.append(
            DeclaredArchiving(
                tool,
                _line_of(conf.text, _ARCHIVE_MODE, conf.location),
                detail,
                timeout,
                where if timeout else None,
                namespace=conf.holder.namespace if conf.holder else None,
            )
        )
    return found
