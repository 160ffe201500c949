"""Odoo run by an operator: a custom resource whose kind names Odoo.

Operators such as those with `OdooInstance` or `OdooDeployment` resources render the
Deployment, odoo.conf and filestore claim at run time, so the manifests hold only the
resource. It is read into a workload with one container, best effort, from the field
names such resources commonly use: the image, the number of replicas, the database
connection, the odoo.conf options and the filestore's storage. Fields under other
names are not read.
"""

from __future__ import annotations

import re
from typing import Any

from odoo_dr.review.evidence.objects import Container, K8sObject, Volume, Workload
from odoo_dr.review.evidence.workloads import as_dict, as_list
from odoo_dr.review.yamlio import Location

# Kinds that name Odoo but describe a task or a part, not a running server.
_NOT_SERVER_WORDS = (
    "backup",
    "restore",
    "job",
    "upgrade",
    "snapshot",
    "refresh",
    "migration",
    "clone",
    "module",
    "addon",
    "operator",
    "list",
)
_IMAGE_PATHS = (("image",), ("odoo", "image"), ("web", "image"))
_VERSION_PATHS = (("version",), ("odooVersion",), ("odoo", "version"))
_REPLICA_PATHS = (("replicas",), ("size",), ("instances",), ("web", "replicas"))
_DATABASE_KEYS = ("database", "db", "postgres", "postgresql")
_CONFIG_KEYS = ("configOptions", "config", "odooConfig", "options", "odooConf")
_STORAGE_KEYS = ("filestore", "odooFilestore", "storage", "persistence")
# The odoo.conf option each common database field sets.
_DATABASE_FIELDS = {
    "db_host": ("host", "hostname", "server", "cluster", "serviceName"),
    "db_port": ("port",),
    "db_user": ("user", "username", "role", "owner"),
    "db_name": ("name", "dbname", "databaseName"),
}
_ADMIN_PASSWORD_KEYS = ("adminPassword", "admin_passwd", "masterPassword")
DEFAULT_DATA_DIR = "/var/lib/odoo"


def is_odoo_resource(kind: str) -> bool:
    """Whether a custom resource kind describes an Odoo server (`OdooInstance`,
    `OdooDeployment`, `Odoo`), not a task such as `OdooBackupJob`."""
    lowered = kind.lower()
    return "odoo" in lowered and not any(word in lowered for word in _NOT_SERVER_WORDS)


def _first(spec: dict, paths: tuple[tuple[str, ...], ...]) -> tuple[Any, tuple]:
    """Return the first value present at one of `paths` below `spec`, and its path."""
    for path in paths:
        node: Any = spec
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and node != "":
            return node, path
    return None, ()


def _snake_case(name: str) -> str:
    """Turn a field name such as `dataDir` or `proxyMode` into the odoo.conf key."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def _image(spec: dict) -> tuple[str, tuple]:
    value, path = _first(spec, _IMAGE_PATHS)
    if isinstance(value, dict):
        repository = value.get("repository") or value.get("name") or ""
        tag = value.get("tag")
        digest = value.get("digest")
        text = str(repository)
        if tag:
            text += f":{tag}"
        if digest:
            text += f"@{digest}"
        return text, path
    if value is not None:
        return str(value), path
    return "", ()


def _options(item: K8sObject, spec: dict) -> tuple[dict[str, str], dict[str, int]]:
    """Read the odoo.conf options the resource sets, with the line of each."""
    options: dict[str, str] = {}
    lines: dict[str, int] = {}

    def add(key: str, value: Any, path: tuple) -> None:
        options[key] = _option_text(value)
        lines[key] = item.at("spec", *path).line or item.location.line or 1

    for key in _CONFIG_KEYS:
        config = spec.get(key)
        if not isinstance(config, dict):
            continue
        for name, value in config.items():
            if isinstance(value, dict):
                continue
            add(_snake_case(str(name)), value, (key, name))
        break
    for key in _DATABASE_KEYS:
        database = spec.get(key)
        if not isinstance(database, dict):
            continue
        for option, names in _DATABASE_FIELDS.items():
            for name in names:
                value = database.get(name)
                if isinstance(value, str | int) and value != "":
                    add(option, value, (key, name))
                    break
        break
    for key in _ADMIN_PASSWORD_KEYS:
        value = spec.get(key)
        if isinstance(value, str | int) and value != "":
            add("admin_passwd", value, (key,))
            break
    return options, lines


def _filestore(
    item: K8sObject, spec: dict, data_dir: str
) -> tuple[Volume | None, dict[str, tuple[dict, Location]]]:
    """Read the filestore storage the resource requests: a claim the operator
    creates, or an existing one it mounts."""
    for key in _STORAGE_KEYS:
        storage = spec.get(key)
        if not isinstance(storage, dict):
            continue
        location = item.at("spec", key)
        if storage.get("enabled") is False:
            # No persistent storage: the files live as long as the pod.
            return Volume("filestore", "emptyDir", location=location), {}
        existing = storage.get("existingClaim") or storage.get("claimName")
        claim = str(existing) if existing else f"{item.name}-filestore"
        volume = Volume("filestore", "persistentVolumeClaim", claim, location=location)
        if existing:
            return volume, {}
        modes = storage.get("accessModes") or storage.get("accessMode")
        storage_class = storage.get("storageClassName") or storage.get("storageClass")
        declared = {
            "accessModes": [str(mode) for mode in as_list(modes)]
            if isinstance(modes, list)
            else ([str(modes)] if modes else []),
            "storageClassName": storage_class,
        }
        return volume, {claim: (declared, location)}
    return None, {}


def operator_workload(item: K8sObject) -> tuple[Workload, dict[str, str], dict]:
    """Read an Odoo custom resource into a workload; return it with the odoo.conf
    options the resource sets and the line of each."""
    spec = as_dict(item.get("spec"))
    image, image_path = _image(spec)
    if not image:
        version, _ = _first(spec, _VERSION_PATHS)
        # NOTE: the operator's own image is unknown; `odoo:VERSION` only carries the
        # version for rules that need it.
        image = f"odoo:{version}" if version is not None else ""
    replicas, _ = _first(spec, _REPLICA_PATHS)
    options, lines = _options(item, spec)
    data_dir = options.get("data_dir") or DEFAULT_DATA_DIR
    volume, declared = _filestore(item, spec, data_dir)
    container = Container(
        name="odoo",
        image=image,
        ports=[8069, 8072],
        location=item.location,
        image_location=item.at("spec", *image_path) if image_path else item.location,
        mounts=[(volume.name, data_dir)] if volume is not None else [],
    )
    workload = Workload(
        kind=item.kind,
        name=item.name,
        namespace=item.namespace,
        replicas=int(replicas) if isinstance(replicas, int) else 1,
        containers=[container],
        volumes={volume.name: volume} if volume is not None else {},
        location=item.location,
        labels={
            str(k): str(v) for k, v in as_dict(item.get("metadata", "labels")).items()
        },
        source=item,
        operator_kind=item.kind,
        declared_claims=declared,
    )
    return workload, options, lines
