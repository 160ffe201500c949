"""docker-compose services read into workloads, with their mounts, ports and labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from odoo_dr.review.evidence.objects import (
    Container,
    PublishedPort,
    Volume,
    Workload,
)
from odoo_dr.review.evidence.workloads import as_dict, as_list, text_list
from odoo_dr.review.yamlio import Location, line_at

if TYPE_CHECKING:
    from odoo_dr.review.evidence.manifests import ManifestSet


def _environment(service: dict) -> tuple[dict[str, str], dict[str, str], list[Any]]:
    """Return the variables, which of them come from the shell environment (`${X}` or
    a bare name), and the keys to find each line with."""
    raw = service.get("environment")
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    keys: list[Any] = []
    if isinstance(raw, list):
        for index, item in enumerate(raw):
            name, equals, value = str(item).partition("=")
            values[name] = value
            if not equals or "$" in value:
                sources[name] = "environment"
            keys.append((name, index))
    elif isinstance(raw, dict):
        for name, value in raw.items():
            values[str(name)] = "" if value is None else str(value)
            if value is None or "$" in str(value):
                sources[str(name)] = "environment"
            keys.append((str(name), name))
    return values, sources, keys


def _mounts(
    document: Any, path: tuple, file: str
) -> tuple[dict[str, Volume], list[tuple[str, str]]]:
    service = document["services"][path[1]]
    volumes: dict[str, Volume] = {}
    mounts: list[tuple[str, str]] = []

    def add(kind: str, source: str | None, target: str, key: tuple) -> None:
        name = f"volume-{len(volumes)}"
        location = Location(file, line_at(document, (*path, *key)))
        volumes[name] = Volume(name, kind, source, location=location)
        mounts.append((name, target))

    for index, raw in enumerate(as_list(service.get("volumes"))):
        key = ("volumes", index)
        if isinstance(raw, dict):
            kind = str(raw.get("type", "volume"))
            source = raw.get("source")
            target = str(raw.get("target", ""))
            if kind == "bind":
                add("hostPath", str(source), target, key)
            elif kind == "tmpfs":
                add("tmpfs", None, target, key)
            else:
                kind = "namedVolume" if source else "anonymousVolume"
                add(kind, source, target, key)
            continue
        source, colon, rest = str(raw).partition(":")
        if not colon:
            add("anonymousVolume", None, source, key)
        elif source.startswith(("/", ".", "~", "$")):
            add("hostPath", source, rest.split(":")[0], key)
        else:
            add("namedVolume", source, rest.split(":")[0], key)
    tmpfs = service.get("tmpfs")
    for target in [tmpfs] if isinstance(tmpfs, str) else as_list(tmpfs):
        add("tmpfs", None, str(target).split(":")[0], ("tmpfs",))
    return volumes, mounts


def _port(raw: Any, location: Location) -> PublishedPort | None:
    """Read a `ports` entry: `8069`, `8069:8069`, `127.0.0.1:5432:5432/tcp`,
    `[::1]:5432:5432` or the long form with `target`, `published` and `host_ip`."""
    if isinstance(raw, dict):
        target = str(raw.get("target", ""))
        return PublishedPort(
            int(target) if target.isdigit() else None,
            str(raw.get("published", "")),
            str(raw.get("host_ip", "")),
            location,
        )
    text = str(raw).split("/")[0]
    host_ip = ""
    if text.startswith("["):
        host_ip, _, text = text[1:].partition("]")
        text = text.lstrip(":")
    parts = text.split(":")
    target = parts[-1]
    published = parts[-2] if len(parts) >= 2 else ""
    if len(parts) >= 3:
        host_ip = ":".join(parts[:-2])
    return PublishedPort(
        int(target) if target.isdigit() else None, published, host_ip, location
    )


def _labels(service: dict) -> list[tuple[str, str, tuple]]:
    """Return `(label, value, path)` for the service's and its `deploy` labels."""
    found = []
    sources = (
        (("labels",), service.get("labels")),
        (("deploy", "labels"), as_dict(service.get("deploy")).get("labels")),
    )
    for base, raw in sources:
        if isinstance(raw, list):
            for index, item in enumerate(raw):
                key, equals, value = str(item).partition("=")
                if equals:
                    found.append((key.strip(), value.strip(), (*base, index)))
        elif isinstance(raw, dict):
            for key, value in raw.items():
                found.append((str(key), str(value), (*base, key)))
    return found


def add_compose_services(document: Any, location: Location, into: ManifestSet) -> None:
    """Add each service of a compose file as a `ComposeService` workload."""
    file = location.file
    for name, service in as_dict(document.get("services")).items():
        if not isinstance(service, dict):
            continue
        path = ("services", name)
        values, sources, keys = _environment(service)
        volumes, mounts = _mounts(document, path, file)
        published = []
        for index, raw in enumerate(as_list(service.get("ports"))):
            port = _port(
                raw, Location(file, line_at(document, (*path, "ports", index)))
            )
            if port is not None:
                published.append(port)
        if service.get("network_mode") == "host":
            where = Location(file, line_at(document, (*path, "network_mode")))
            published.append(PublishedPort(None, "every port", "", where))
        exposed = [
            int(str(item).split("/")[0])
            for item in as_list(service.get("expose"))
            if str(item).split("/")[0].isdigit()
        ]
        labels = {}
        label_locations = {}
        for key, value, label_path in _labels(service):
            labels[key] = value
            label_locations[key] = Location(
                file, line_at(document, (*path, *label_path))
            )
        into.compose_labels[str(name)] = labels
        replicas = as_dict(service.get("deploy")).get("replicas", 1)
        command_key = "command" if "command" in service else "entrypoint"
        into.compose.append(
            Workload(
                kind="ComposeService",
                name=str(name),
                namespace=None,
                replicas=int(replicas) if isinstance(replicas, int) else 1,
                containers=[
                    Container(
                        name=str(name),
                        image=str(service.get("image", "")),
                        # The entrypoint is the program and `command` its
                        # arguments, as `command` and `args` in Kubernetes.
                        command=text_list(service.get("entrypoint"))
                        + text_list(service.get("command")),
                        env=values,
                        ports=[
                            *(port.target for port in published if port.target),
                            *exposed,
                        ],
                        mounts=mounts,
                        env_sources=sources,
                        env_locations={
                            key: Location(
                                file, line_at(document, (*path, "environment", item))
                            )
                            for key, item in keys
                        },
                        location=Location(file, line_at(document, path)),
                        image_location=Location(
                            file, line_at(document, (*path, "image"))
                        ),
                        command_location=Location(
                            file, line_at(document, (*path, command_key))
                        ),
                    )
                ],
                volumes=volumes,
                location=Location(file, line_at(document, path)),
                labels=labels,
                published=published,
                label_locations=label_locations,
            )
        )
