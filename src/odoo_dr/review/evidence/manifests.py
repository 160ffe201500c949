"""Manifests as evidence: Kubernetes objects, compose services, odoo.conf, alert rules.

Every object keeps the file and line it came from. Workloads of Kubernetes and of
docker-compose are read into one shape, so rules about Odoo, PostgreSQL and Redis
apply to both.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odoo_dr.review.yamlio import (
    Location,
    YamlError,
    line_at,
    load_documents,
    walk_files,
)

YAML_SUFFIXES = (".yaml", ".yml", ".json")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Job"}


@dataclass
class K8sObject:
    kind: str
    api_version: str
    name: str
    namespace: str | None
    data: Any
    location: Location

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    def get(self, *path: str | int, default: Any = None) -> Any:
        node = self.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return node

    def at(self, *path: str | int) -> Location:
        """Return the location of the value at `path` (or its nearest parent)."""
        line = line_at(self.data, path)
        return Location(self.location.file, line or self.location.line)

    @property
    def ref(self) -> str:
        namespace = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{namespace}{self.name}"


@dataclass
class Volume:
    name: str
    kind: str
    claim: str | None = None


@dataclass
class Container:
    name: str
    image: str
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)
    mounts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def command_text(self) -> str:
        return " ".join(self.command)


@dataclass
class Workload:
    """A Kubernetes workload or a compose service."""

    kind: str
    name: str
    namespace: str | None
    replicas: int
    containers: list[Container]
    volumes: dict[str, Volume]
    location: Location
    labels: dict[str, str] = field(default_factory=dict)
    claim_templates: list[str] = field(default_factory=list)
    schedule: str | None = None
    source: K8sObject | None = None

    @property
    def ref(self) -> str:
        namespace = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{namespace}{self.name}"

    def _matches(self, words: tuple[str, ...]) -> bool:
        for container in self.containers:
            image = container.image.lower().rsplit("/", 1)[-1]
            if any(word in image for word in words):
                return True
        return False

    @property
    def is_odoo(self) -> bool:
        return self._matches(("odoo",)) or any(
            "odoo-bin" in c.command_text or c.command_text.startswith("odoo")
            for c in self.containers
        )

    @property
    def is_postgres(self) -> bool:
        return self._matches(("postgres", "postgis", "timescale"))

    @property
    def is_redis(self) -> bool:
        return self._matches(("redis", "valkey", "keydb"))


@dataclass
class OdooConf:
    """The `[options]` of one odoo.conf, with the line of each option."""

    location: Location
    options: dict[str, str]
    lines: dict[str, int]

    def at(self, key: str) -> Location:
        line = self.lines.get(key)
        if line is None:
            return self.location
        base = self.location.line or 1
        return Location(self.location.file, base + line - 1)

    def flag(self, key: str) -> bool | None:
        value = self.options.get(key)
        if value is None:
            return None
        return value.strip().lower() not in {"false", "0", "no", "off", "none", ""}


@dataclass
class AlertRule:
    name: str
    expr: str
    duration: str | None
    labels: dict[str, str]
    location: Location


@dataclass
class ManifestSet:
    objects: list[K8sObject] = field(default_factory=list)
    compose: list[Workload] = field(default_factory=list)
    odoo_confs: list[OdooConf] = field(default_factory=list)
    alerts: list[AlertRule] = field(default_factory=list)
    compose_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def of_kind(self, *kinds: str, group: str | None = None) -> list[K8sObject]:
        return [
            item
            for item in self.objects
            if item.kind in kinds and (group is None or item.group.startswith(group))
        ]

    def workloads(self) -> list[Workload]:
        found = [
            _workload(item, item.get("spec", "template", "spec", default={}))
            for item in self.objects
            if item.kind in WORKLOAD_KINDS - {"Pod"}
        ]
        found += [
            _workload(item, item.get("spec", default={}))
            for item in self.objects
            if item.kind == "Pod"
        ]
        return found + self.compose

    def cronjobs(self) -> list[Workload]:
        jobs = []
        for item in self.of_kind("CronJob"):
            spec = item.get(
                "spec", "jobTemplate", "spec", "template", "spec", default={}
            )
            workload = _workload(item, spec)
            workload.schedule = item.get("spec", "schedule")
            jobs.append(workload)
        return jobs

    @property
    def empty(self) -> bool:
        return not (self.objects or self.compose or self.odoo_confs or self.alerts)


def _text_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value, posix=True) if value.strip() else []
    return [str(item) for item in value]


def _containers(spec: Any) -> list[Container]:
    containers = []
    for raw in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(raw, dict):
            continue
        env = {
            str(item.get("name")): str(item.get("value", ""))
            for item in raw.get("env") or []
            if isinstance(item, dict)
        }
        ports = [
            int(item["containerPort"])
            for item in raw.get("ports") or []
            if isinstance(item, dict) and str(item.get("containerPort", "")).isdigit()
        ]
        mounts = [
            (str(item.get("name")), str(item.get("mountPath")))
            for item in raw.get("volumeMounts") or []
            if isinstance(item, dict)
        ]
        containers.append(
            Container(
                name=str(raw.get("name", "")),
                image=str(raw.get("image", "")),
                command=_text_list(raw.get("command")) + _text_list(raw.get("args")),
                env=env,
                ports=ports,
                mounts=mounts,
            )
        )
    return containers


def _volumes(spec: Any) -> dict[str, Volume]:
    volumes = {}
    for raw in spec.get("volumes") or []:
        if not isinstance(raw, dict):
            continue
        name = str(raw.get("name"))
        kind = next((key for key in raw if key != "name"), "other")
        claim = None
        if kind == "persistentVolumeClaim":
            claim = str((raw.get(kind) or {}).get("claimName"))
        volumes[name] = Volume(name, kind, claim)
    return volumes


def _workload(item: K8sObject, spec: Any) -> Workload:
    spec = spec if isinstance(spec, dict) else {}
    replicas = item.get("spec", "replicas")
    templates = [
        str(template.get("metadata", {}).get("name"))
        for template in item.get("spec", "volumeClaimTemplates", default=[]) or []
        if isinstance(template, dict)
    ]
    return Workload(
        kind=item.kind,
        name=item.name,
        namespace=item.namespace,
        replicas=int(replicas) if isinstance(replicas, int) else 1,
        containers=_containers(spec),
        volumes=_volumes(spec),
        location=item.location,
        labels=dict(item.get("metadata", "labels", default={}) or {}),
        claim_templates=templates,
        source=item,
    )


_OPTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*[=:]\s*(.*?)\s*$")


def parse_odoo_conf(text: str, location: Location) -> OdooConf | None:
    """Read the `[options]` section of odoo.conf text; None if it has none."""
    options: dict[str, str] = {}
    lines: dict[str, int] = {}
    section = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            continue
        match = _OPTION.match(line)
        if section == "options" and match:
            options[match.group(1)] = match.group(2)
            lines[match.group(1)] = number
    if section is None and not options:
        return None
    return OdooConf(location, options, lines)


def _compose_workloads(document: Any, location: Location, into: ManifestSet) -> None:
    for name, service in (document.get("services") or {}).items():
        if not isinstance(service, dict):
            continue
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(
                str(item).split("=", 1) if "=" in str(item) else (str(item), "")
                for item in environment
            )
        volumes = {}
        mounts = []
        for index, raw in enumerate(service.get("volumes") or []):
            source, _, target = str(raw).partition(":")
            kind = "hostPath" if source.startswith(("/", ".", "~")) else "namedVolume"
            volumes[f"volume-{index}"] = Volume(f"volume-{index}", kind, source)
            mounts.append((f"volume-{index}", target.split(":")[0]))
        ports = []
        for raw in service.get("ports") or []:
            target = str(raw).rsplit(":", 1)[-1].split("/")[0]
            if target.isdigit():
                ports.append(int(target))
        labels = service.get("labels") or {}
        if isinstance(labels, list):
            labels = dict(
                str(item).split("=", 1) for item in labels if "=" in str(item)
            )
        labels = {str(key): str(value) for key, value in labels.items()}
        into.compose_labels[str(name)] = labels
        replicas = (service.get("deploy") or {}).get("replicas", 1)
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
                        command=_text_list(service.get("command")),
                        env={str(k): str(v) for k, v in dict(environment).items()},
                        ports=ports,
                        mounts=mounts,
                    )
                ],
                volumes=volumes,
                location=Location(location.file, line_at(document, ("services", name))),
                labels=labels,
            )
        )


def _alerts(document: Any, location: Location, into: ManifestSet) -> None:
    groups = document.get("groups") or []
    for group_index, group in enumerate(groups):
        for rule_index, raw in enumerate((group or {}).get("rules") or []):
            if not isinstance(raw, dict) or "alert" not in raw:
                continue
            into.alerts.append(
                AlertRule(
                    name=str(raw["alert"]),
                    expr=str(raw.get("expr", "")),
                    duration=str(raw["for"]) if "for" in raw else None,
                    labels={
                        str(k): str(v) for k, v in (raw.get("labels") or {}).items()
                    },
                    location=Location(
                        location.file,
                        line_at(document, ("groups", group_index, "rules", rule_index)),
                    ),
                )
            )


def _embedded_confs(item: K8sObject, into: ManifestSet) -> None:
    """Find odoo.conf texts inside ConfigMaps and Secrets."""
    sections = ["data", "stringData"] if item.kind == "Secret" else ["data"]
    for section in sections:
        for key, value in (item.get(section) or {}).items():
            text = str(value)
            if item.kind == "Secret" and section == "data":
                try:
                    text = base64.b64decode(text).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    continue
            if "[options]" not in text:
                continue
            location = item.at(section, key)
            conf = parse_odoo_conf(
                text, Location(location.file, (location.line or 0) + 1)
            )
            if conf is not None:
                into.odoo_confs.append(conf)


def _add_document(document: Any, location: Location, into: ManifestSet) -> None:
    if not isinstance(document, dict):
        return
    if "kind" in document and "apiVersion" in document:
        if document["kind"] == "List":
            for index, item in enumerate(document.get("items") or []):
                line = line_at(document, ("items", index))
                _add_document(item, Location(location.file, line), into)
            return
        metadata = document.get("metadata") or {}
        item = K8sObject(
            kind=str(document["kind"]),
            api_version=str(document["apiVersion"]),
            name=str(metadata.get("name", "")),
            namespace=metadata.get("namespace"),
            data=document,
            location=Location(location.file, line_at(document, ()) or location.line),
        )
        into.objects.append(item)
        if item.kind == "PrometheusRule":
            _alerts(item.get("spec", default={}), item.location, into)
        if item.kind in {"ConfigMap", "Secret"}:
            _embedded_confs(item, into)
    elif isinstance(document.get("services"), dict):
        _compose_workloads(document, location, into)
    elif isinstance(document.get("groups"), list):
        _alerts(document, location, into)


def load_manifests(paths: list[Path], odoo_confs: list[Path] = ()) -> ManifestSet:
    """Read every manifest, compose file, rule file and odoo.conf below `paths`."""
    found = ManifestSet()
    for root in paths:
        if not root.exists():
            found.problems.append(f"{root}: not found")
            continue
        for path in walk_files(root, (*YAML_SUFFIXES, ".conf")):
            found.files.append(str(path))
            if path.suffix.lower() == ".conf":
                _add_conf(path, found)
                continue
            try:
                documents = load_documents(path)
            except YamlError as exc:
                found.problems.append(str(exc))
                continue
            for document in documents:
                _add_document(
                    document, Location(str(path), line_at(document, ())), found
                )
    for path in odoo_confs:
        _add_conf(path, found)
    return found


def _add_conf(path: Path, into: ManifestSet) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        into.problems.append(f"{path}: cannot read: {exc}")
        return
    conf = parse_odoo_conf(text, Location(str(path), 1))
    if conf is not None and conf.options:
        into.odoo_confs.append(conf)
