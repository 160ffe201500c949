"""Pod specs read into workloads: containers, volumes and ports opened on nodes."""

from __future__ import annotations

import shlex
from typing import Any

from odoo_dr.review.evidence.objects import (
    Container,
    K8sObject,
    PublishedPort,
    Volume,
    Workload,
)
from odoo_dr.review.yamlio import Location, line_at, line_of

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Job"}


def text_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value, posix=True) if value.strip() else []
    return [str(item) for item in value]


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def env_source(value_from: dict) -> str:
    for key, kind in (("secretKeyRef", "secret"), ("configMapKeyRef", "configMap")):
        if key in value_from:
            ref = as_dict(value_from[key])
            return f"{kind} {ref.get('name')}/{ref.get('key')}"
    if "fieldRef" in value_from:
        return f"field {as_dict(value_from['fieldRef']).get('fieldPath')}"
    return "reference"


def _container(raw: dict, init: bool, file: str) -> Container:
    container = Container(
        name=str(raw.get("name", "")),
        image=str(raw.get("image", "")),
        command=text_list(raw.get("command")) + text_list(raw.get("args")),
        init=init,
        location=Location(file, line_of(raw)),
        image_location=Location(file, line_at(raw, ("image",))),
        command_location=Location(
            file,
            line_at(raw, ("args",)) if "args" in raw else line_at(raw, ("command",)),
        ),
    )
    for index, item in enumerate(as_list(raw.get("env"))):
        if not isinstance(item, dict) or "name" not in item:
            continue
        name = str(item["name"])
        container.env[name] = str(item.get("value", ""))
        if "valueFrom" in item:
            container.env_sources[name] = env_source(as_dict(item["valueFrom"]))
        container.env_locations[name] = Location(file, line_at(raw, ("env", index)))
    for item in as_list(raw.get("ports")):
        if isinstance(item, dict) and str(item.get("containerPort", "")).isdigit():
            port = int(item["containerPort"])
            container.ports.append(port)
            if item.get("name"):
                container.port_names[str(item["name"])] = port
    container.mounts = [
        (str(item.get("name")), str(item.get("mountPath")))
        for item in as_list(raw.get("volumeMounts"))
        if isinstance(item, dict)
    ]
    return container


def _containers(spec: dict, file: str) -> list[Container]:
    containers = []
    for key, init in (("initContainers", True), ("containers", False)):
        for raw in as_list(spec.get(key)):
            if isinstance(raw, dict):
                containers.append(_container(raw, init, file))
    return containers


def _volumes(spec: dict, file: str) -> dict[str, Volume]:
    volumes = {}
    for raw in as_list(spec.get("volumes")):
        if not isinstance(raw, dict):
            continue
        name = str(raw.get("name"))
        kind = next((key for key in raw if key != "name"), "other")
        body = as_dict(raw.get(kind))
        claim = None
        reference: tuple[str, ...] = ()
        if kind == "persistentVolumeClaim":
            claim = str(body.get("claimName"))
        elif kind == "configMap":
            reference = (f"ConfigMap/{body.get('name')}",)
        elif kind == "secret":
            reference = (f"Secret/{body.get('secretName')}",)
        elif kind == "projected":
            for source in as_list(body.get("sources")):
                source = as_dict(source)
                for key, prefix in (("configMap", "ConfigMap"), ("secret", "Secret")):
                    if key in source:
                        reference += (f"{prefix}/{as_dict(source[key]).get('name')}",)
        volumes[name] = Volume(
            name, kind, claim, reference, Location(file, line_of(raw))
        )
    return volumes


def _host_ports(spec: dict, containers: list[Container], at: Location) -> list:
    """Ports a pod opens on its node: `hostPort`s, or every port with hostNetwork."""
    published = []
    for raw in as_list(spec.get("containers")):
        for item in as_list(as_dict(raw).get("ports")):
            item = as_dict(item)
            if "hostPort" in item:
                target = item.get("containerPort")
                published.append(
                    PublishedPort(
                        int(target) if str(target).isdigit() else None,
                        str(item["hostPort"]),
                        str(item.get("hostIP", "")),
                        Location(at.file, line_of(item) or at.line),
                    )
                )
    if spec.get("hostNetwork") is True:
        where = Location(at.file, line_at(spec, ("hostNetwork",)) or at.line)
        ports = [port for container in containers for port in container.ports]
        published += [
            PublishedPort(port, str(port), "", where) for port in ports or [None]
        ]
    return published


def _pod_spec(item: K8sObject) -> tuple[Any, tuple[str, ...]]:
    if item.kind == "Pod":
        return item.get("spec", default={}), ("spec",)
    if item.kind == "CronJob":
        path = ("spec", "jobTemplate", "spec", "template")
    else:
        path = ("spec", "template")
    return item.get(*path, "spec", default={}), path


def build_workload(item: K8sObject) -> Workload:
    """Read a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod."""
    spec, path = _pod_spec(item)
    spec = as_dict(spec)
    replicas = item.get("spec", "replicas")
    templates = [
        str(as_dict(template.get("metadata")).get("name"))
        for template in as_list(item.get("spec", "volumeClaimTemplates"))
        if isinstance(template, dict)
    ]
    pod_labels = (
        item.get("metadata", "labels")
        if item.kind == "Pod"
        else item.get(*path, "metadata", "labels")
    )
    containers = _containers(spec, item.location.file)
    return Workload(
        kind=item.kind,
        name=item.name,
        namespace=item.namespace,
        replicas=int(replicas) if isinstance(replicas, int) else 1,
        containers=containers,
        volumes=_volumes(spec, item.location.file),
        location=item.location,
        labels={
            str(k): str(v) for k, v in as_dict(item.get("metadata", "labels")).items()
        },
        claim_templates=templates,
        schedule=_schedule(item) if item.kind == "CronJob" else None,
        source=item,
        pod_labels={str(k): str(v) for k, v in as_dict(pod_labels).items()},
        published=_host_ports(spec, containers, item.location),
    )


def _schedule(item: K8sObject) -> str | None:
    """Return the cron schedule of a CronJob; None when it is not text."""
    schedule = item.get("spec", "schedule")
    return schedule if isinstance(schedule, str) else None


def workload_of(item: K8sObject) -> Workload | None:
    """Return the workload of `item`, or None when its shape cannot be read (the
    problem is reported once, when the file is loaded)."""
    try:
        return build_workload(item)
    except (AttributeError, TypeError, ValueError, KeyError):
        return None
