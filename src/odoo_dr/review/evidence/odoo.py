"""The Odoo servers of an environment and the options each one runs with.

An option comes from the odoo.conf the server mounts (a ConfigMap, a Secret or a
bind-mounted file), else from an odoo.conf that names the server's tenant, else from
the odoo.conf files nothing mounts. The command line overrides them, as it does in
Odoo. The official image's entrypoint also turns
`HOST`, `PORT`, `USER` and `PASSWORD` into database options, and Bitnami's image reads
`ODOO_DATABASE_*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from odoo_dr.review.evidence import classify
from odoo_dr.review.evidence.manifests import (
    Container,
    ManifestSet,
    OdooConf,
    Workload,
    memoized,
)
from odoo_dr.review.evidence.network import same_namespace
from odoo_dr.review.yamlio import Location

# The official image's odoo.conf sets data_dir to /var/lib/odoo, and Bitnami's image
# keeps it below /bitnami/odoo.
DEFAULT_DATA_DIR = "/var/lib/odoo"
BITNAMI_DATA_DIR = "/bitnami/odoo"
DEFAULT_HTTP_PORT = 8069
DEFAULT_GEVENT_PORT = 8072
SERVER_KINDS = {
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Pod",
    "ComposeService",
}

# Command-line options and the odoo.conf key each sets. A tuple gives the value a
# flag without argument stands for.
_OPTIONS: dict[str, str | tuple[str, str]] = {
    "--workers": "workers",
    "--proxy-mode": ("proxy_mode", "True"),
    "--no-database-list": ("list_db", "False"),
    "--db-filter": "dbfilter",
    "--data-dir": "data_dir",
    "-D": "data_dir",
    "--gevent-port": "gevent_port",
    "--longpolling-port": "gevent_port",
    "--http-port": "http_port",
    "-p": "http_port",
    "--database": "db_name",
    "-d": "db_name",
    "--db_user": "db_user",
    "-r": "db_user",
    "--db_host": "db_host",
    "--db_port": "db_port",
    "--load": "server_wide_modules",
    "--config": "config",
    "-c": "config",
    "--no-http": ("http_enable", "False"),
}
_OFFICIAL_ENV = {"HOST": "db_host", "PORT": "db_port", "USER": "db_user"}
_BITNAMI_ENV = {
    "ODOO_DATABASE_HOST": "db_host",
    "ODOO_DATABASE_PORT_NUMBER": "db_port",
    "ODOO_DATABASE_USER": "db_user",
}
# Modules that keep attachments in object storage instead of the filestore, when
# loaded server-wide, and the variable camptocamp's attachment_s3 reads its bucket
# from. NOTE: OCA's fs_attachment is configured in the database, which manifests do
# not show, so a platform using it alone is not recognised.
_OBJECT_STORAGE_MODULES = (
    "attachment_s3",
    "attachment_azure",
    "attachment_swift",
    "base_attachment_object_storage",
    "fs_attachment",
)
_OBJECT_STORAGE_ENV = ("AWS_BUCKETNAME",)
_VERSION = re.compile(r"(?<![\d.])(\d{1,2})\.0(?!\d)")


@dataclass(frozen=True)
class Setting:
    """An option's value and where it is set: `odoo.conf`, `command line` or
    `environment`."""

    value: str
    location: Location
    origin: str


def _image_name(image: str) -> str:
    return classify.image_name(image)


def is_odoo_container(container: Container) -> bool:
    return classify.is_odoo_container(container)


def command_options(container: Container) -> dict[str, Setting]:
    """Read the Odoo options on a container's command line."""
    found: dict[str, Setting] = {}
    location = container.command_location or container.location
    tokens = classify.command_tokens(container.command)
    for index, token in enumerate(tokens):
        name, equals, value = token.partition("=")
        key = _OPTIONS.get(name)
        if key is None:
            continue
        if isinstance(key, tuple):
            key, value = key
        elif not equals:
            if index + 1 >= len(tokens):
                continue
            value = tokens[index + 1]
        found[key] = Setting(value, location, "command line")
    return found


def _environment_options(container: Container) -> dict[str, Setting]:
    found: dict[str, Setting] = {}
    image = container.image.lower()
    if _image_name(image) != "odoo":
        return found
    names = _BITNAMI_ENV if "bitnami" in image else _OFFICIAL_ENV
    for variable, key in names.items():
        if variable in container.env and variable not in container.env_sources:
            location = container.env_locations.get(variable) or container.location
            found[key] = Setting(container.env[variable], location, "environment")
    return found


def _conf_options(confs: list[OdooConf]) -> dict[str, Setting]:
    found: dict[str, Setting] = {}
    for conf in confs:
        for key, value in conf.options.items():
            name = "gevent_port" if key == "longpolling_port" else key
            found[name] = Setting(value, conf.at(key), "odoo.conf")
    return found


@dataclass
class OdooServer:
    """One Odoo server: a workload with its odoo.conf, or an odoo.conf alone."""

    workload: Workload | None
    container: Container | None
    confs: list[OdooConf] = field(default_factory=list)
    options: dict[str, Setting] = field(default_factory=dict)

    @property
    def resource(self) -> str:
        if self.workload is not None:
            return self.workload.ref
        return self.confs[0].location.file if self.confs else "odoo"

    @property
    def location(self) -> Location | None:
        if self.workload is not None:
            return self.workload.location
        return self.confs[0].location if self.confs else None

    def get(self, key: str) -> Setting | None:
        return self.options.get(key)

    def flag(self, key: str) -> bool | None:
        setting = self.options.get(key)
        if setting is None:
            return None
        return setting.value.strip().lower() not in {"false", "0", "no", "off", ""}

    def number(self, key: str) -> int | None:
        setting = self.options.get(key)
        if setting is None or not setting.value.strip().isdigit():
            return None
        return int(setting.value)

    @property
    def workers(self) -> int:
        return self.number("workers") or 0

    @property
    def gevent_port(self) -> int:
        return self.number("gevent_port") or DEFAULT_GEVENT_PORT

    @property
    def http_port(self) -> int:
        return self.number("http_port") or DEFAULT_HTTP_PORT

    @property
    def version(self) -> int | None:
        """Odoo's major version, read from the image tag (`17.0`, `16.0-2023...`)."""
        if self.container is None:
            return None
        reference = self.container.image.split("@")[0]
        tag = reference.rsplit(":", 1)[-1] if ":" in reference.rsplit("/")[-1] else ""
        match = _VERSION.search(tag)
        return int(match.group(1)) if match and 8 <= int(match.group(1)) <= 30 else None

    @property
    def data_dir(self) -> str:
        setting = self.options.get("data_dir")
        if setting is not None and setting.value.strip():
            return setting.value.strip().rstrip("/") or "/"
        if self.container is not None and "bitnami" in self.container.image:
            return BITNAMI_DATA_DIR
        return DEFAULT_DATA_DIR

    @property
    def object_storage(self) -> Setting | None:
        """What stores attachments in object storage, if anything does."""
        modules = self.options.get("server_wide_modules")
        if modules is not None and any(
            name in modules.value for name in _OBJECT_STORAGE_MODULES
        ):
            return modules
        if self.container is not None:
            for variable in _OBJECT_STORAGE_ENV:
                if variable in self.container.env:
                    location = self.container.env_locations.get(variable)
                    return Setting(
                        variable, location or self.container.location, "environment"
                    )
        return None


def main_container(workload: Workload) -> Container | None:
    """Return the Odoo container of a workload; for an Odoo that an operator runs,
    the container read from its custom resource."""
    if workload.operator_kind is not None:
        return workload.containers[0] if workload.containers else None
    for container in workload.containers:
        if not container.init and is_odoo_container(container):
            return container
    return None


def _mounts_conf(workload: Workload, conf: OdooConf) -> bool:
    """Return whether the workload mounts the ConfigMap, Secret or file holding
    `conf`."""
    if conf.holder is not None:
        if conf.holder is workload.source:
            # The options an Odoo operator's custom resource sets.
            return True
        if workload.kind == "ComposeService":
            return False
        # A Secret or ConfigMap is mounted only by pods of its own namespace; each
        # tenant namespace may hold one of the same name.
        if not same_namespace(conf.holder.namespace, workload.namespace):
            return False
        reference = f"{conf.holder.kind}/{conf.holder.name}"
        return any(
            reference in volume.reference for volume in workload.volumes.values()
        )
    if workload.kind != "ComposeService":
        return False
    folder = Path(workload.location.file).parent
    path = Path(conf.location.file).resolve()
    for volume in workload.volumes.values():
        if volume.kind != "hostPath" or not volume.claim:
            continue
        source = (folder / volume.claim).resolve()
        if path == source or source in path.parents:
            return True
    return False


@memoized
def odoo_servers(manifests: ManifestSet) -> list[OdooServer]:
    """Return each Odoo server workload with its options, or, without workloads, one
    server per odoo.conf."""
    workloads = [
        item
        for item in manifests.workloads()
        if (item.kind in SERVER_KINDS or item.operator_kind is not None)
        and main_container(item) is not None
    ]
    if not workloads:
        return [
            OdooServer(None, None, [conf], _conf_options([conf]))
            for conf in manifests.odoo_confs
        ]

    linked = {
        id(workload): [
            conf for conf in manifests.odoo_confs if _mounts_conf(workload, conf)
        ]
        for workload in workloads
    }
    mounted = {id(conf) for confs in linked.values() for conf in confs}
    unmounted = [conf for conf in manifests.odoo_confs if id(conf) not in mounted]
    named = _confs_by_name(workloads, unmounted)
    claimed = {id(conf) for confs in named.values() for conf in confs}
    shared = [conf for conf in unmounted if id(conf) not in claimed]

    servers = []
    for workload in workloads:
        container = main_container(workload)
        # NOTE: several odoo.conf files that no workload mounts or names are merged
        # in file order, the later one winning, because the manifests do not show
        # which one applies.
        confs = linked[id(workload)] or named[id(workload)] or shared
        options = _conf_options(confs)
        options.update(_environment_options(container))
        options.update(command_options(container))
        servers.append(OdooServer(workload, container, confs, options))
    return servers


def _normalized(text: str) -> str:
    return text.lower().replace("-", "_").replace(".", "_")


def _conf_names(conf: OdooConf) -> set[str]:
    """Return the normalized names of the database an odoo.conf serves: its db_name,
    a literal dbfilter, and its file name."""
    keys = {Path(conf.location.file).stem}
    keys.update(conf.options.get("db_name", "").split(","))
    dbfilter = conf.options.get("dbfilter", "").strip().strip("^$")
    if re.fullmatch(r"[\w-]+", dbfilter):
        keys.add(dbfilter)
    return {_normalized(key.strip()) for key in keys if len(key.strip()) >= 3}


def _workload_words(workload: Workload) -> list[str]:
    words = [workload.namespace or "", workload.name]
    words += [*workload.labels.values(), *workload.pod_labels.values()]
    return [_normalized(word) for word in words if word]


def _token_runs(word: str) -> Iterator[str]:
    """Yield every run of whole `_`-separated tokens of `word`: for `odoo_acme_de`,
    `odoo`, `odoo_acme`, `odoo_acme_de`, `acme`, `acme_de` and `de`."""
    tokens = word.split("_")
    for start in range(len(tokens)):
        for end in range(start + 1, len(tokens) + 1):
            yield "_".join(tokens[start:end])


def _confs_by_name(
    workloads: list[Workload], confs: list[OdooConf]
) -> dict[int, list[OdooConf]]:
    """Map each workload to the odoo.conf files whose database it names in its
    namespace, name or labels, as with one namespace or Deployment per tenant.

    A name matches whole `_`/`-`/`.`-separated words first (`acme` in `odoo-acme`,
    but `tenant_1` not in `tenant_10`), found through an index so that a platform
    of thousands of tenants costs time in proportion to its size. Only a workload
    that no name matches that way is compared by plain substring (`acme` in
    `acmeodoo`).
    """
    names = [(conf, _conf_names(conf)) for conf in confs]
    order = {id(conf): position for position, conf in enumerate(confs)}
    index: dict[str, list[OdooConf]] = {}
    for conf, keys in names:
        for key in keys:
            index.setdefault(key, []).append(conf)
    matches: dict[int, list[OdooConf]] = {}
    for workload in workloads:
        words = _workload_words(workload)
        found: dict[int, OdooConf] = {}
        for word in words:
            for run in _token_runs(word):
                for conf in index.get(run, ()):
                    found.setdefault(id(conf), conf)
        if not found:
            for conf, keys in names:
                if any(key in word for key in keys for word in words):
                    found.setdefault(id(conf), conf)
        matches[id(workload)] = sorted(found.values(), key=lambda conf: order[id(conf)])
    return matches


def max_replicas(workload: Workload, manifests: ManifestSet) -> tuple[int, Location]:
    """Return the maximum number of replicas the workload runs, counting a
    HorizontalPodAutoscaler that scales it, and where that number is set."""
    count, location = workload.replicas, workload.location
    if workload.source is not None:
        replicas = workload.source.at("spec", "replicas")
        location = replicas
    for item in manifests.of_kind("HorizontalPodAutoscaler"):
        target = item.get("spec", "scaleTargetRef", default={}) or {}
        maximum = item.get("spec", "maxReplicas")
        if (
            target.get("kind") == workload.kind
            and target.get("name") == workload.name
            and item.namespace == workload.namespace
            and isinstance(maximum, int)
            and maximum > count
        ):
            count, location = maximum, item.at("spec", "maxReplicas")
    return count, location


# Images whose entrypoint makes POSTGRES_USER (default `postgres`) a superuser.
OFFICIAL_POSTGRES_IMAGES = ("postgres", "postgis", "timescaledb", "timescaledb-ha")


def database_user(server: OdooServer) -> Setting | None:
    """Return the role an Odoo server connects as: db_user, else `odoo` for the
    official image, whose entrypoint connects as `odoo` unless USER is set, else
    PGUSER, which libpq reads when Odoo names no user. None when unknown."""
    setting = server.get("db_user")
    if setting is not None and setting.value.strip() not in ("", "False"):
        return setting
    container = server.container
    if container is None:
        return None
    if server.workload is not None and server.workload.operator_kind is not None:
        # The operator writes odoo.conf; its default role is unknown here.
        return None
    if _image_name(container.image) == "odoo" and "bitnami" not in container.image:
        if "USER" in container.env_sources:
            return None
        return Setting("odoo", server.location, "the image's default")
    user = container.env.get("PGUSER")
    if user and "PGUSER" not in container.env_sources:
        location = container.env_locations.get("PGUSER") or server.location
        return Setting(user, location, "environment")
    return None


def manifest_superusers(manifests: ManifestSet) -> dict[str, Location]:
    """Return the roles the manifests make superusers, with where each is set: the
    POSTGRES_USER of the official postgres image (`postgres` when unset), and the
    `postgres` role of a CloudNativePG cluster. A POSTGRES_USER taken from a Secret
    or the shell is unknown and left out."""
    found: dict[str, Location] = {}
    for workload in manifests.workloads():
        if not workload.is_postgres:
            continue
        for container in workload.containers:
            if _image_name(container.image) not in OFFICIAL_POSTGRES_IMAGES:
                continue
            found.setdefault("postgres", workload.location)
            if "POSTGRES_USER" in container.env_sources:
                continue
            name = container.env.get("POSTGRES_USER") or "postgres"
            found[name] = container.env_locations.get(
                "POSTGRES_USER", workload.location
            )
    for cluster in manifests.of_kind("Cluster", group="postgresql.cnpg.io"):
        found.setdefault("postgres", cluster.location)
    return found
