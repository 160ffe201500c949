"""Manifests as evidence: Kubernetes objects, compose services, odoo.conf, alert rules.

Every object keeps the file and line it came from. Workloads of Kubernetes and of
docker-compose are read into one shape, so rules about Odoo, PostgreSQL and Redis
apply to both.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odoo_dr.review.evidence.compose import add_compose_services
from odoo_dr.review.evidence.nginx import looks_like_nginx, mounted_configs, parse
from odoo_dr.review.evidence.objects import (
    Container,
    K8sObject,
    PublishedPort,
    Volume,
    Workload,
)
from odoo_dr.review.evidence.operators import is_odoo_resource, operator_workload
from odoo_dr.review.evidence.workloads import (
    WORKLOAD_KINDS,
    as_dict,
    as_list,
    build_workload,
    workload_of,
)
from odoo_dr.review.yamlio import (
    LiteralText,
    Location,
    YamlError,
    display_path,
    line_at,
    load_valid_documents,
    read_text,
    walk_files,
)

# The data classes are defined in `objects`; rules import them from here.
__all__ = [
    "AlertRule",
    "Container",
    "K8sObject",
    "ManifestSet",
    "OdooConf",
    "PostgresConf",
    "PublishedPort",
    "Volume",
    "Workload",
    "load_manifests",
    "parse_odoo_conf",
]

YAML_SUFFIXES = (".yaml", ".yml", ".json")


# Where an odoo.conf comes from when it is neither a file nor in a ConfigMap or a
# Secret: the custom resource of an Odoo operator.
CONF_HOLDERS = ("file", "ConfigMap", "Secret")


@dataclass
class OdooConf:
    """The `[options]` of one odoo.conf, with the line of each option."""

    location: Location
    options: dict[str, str]
    lines: dict[str, int]
    # `file`, or the kind of the object holding it: `ConfigMap`, `Secret`, or the
    # custom resource of an Odoo operator (`OdooInstance`, ...).
    origin: str = "file"
    holder: K8sObject | None = None
    # How findings name it: its file relative to the review root, or the custom
    # resource that sets its options.
    resource: str = ""

    def at(self, key: str) -> Location:
        line = self.lines.get(key)
        if line is None:
            return self.location
        base = self.location.line or 1
        return Location(self.location.file, base + line - 1)

    @property
    def from_operator(self) -> bool:
        """Whether an operator writes this odoo.conf from a custom resource, so an
        option the resource does not set takes the operator's default."""
        return self.origin not in CONF_HOLDERS

    def flag(self, key: str) -> bool | None:
        value = self.options.get(key)
        if value is None:
            return None
        return value.strip().lower() not in {"false", "0", "no", "off", "none", ""}


@dataclass
class PostgresConf:
    """A postgresql.conf text: a file, or a ConfigMap value (`holder`)."""

    text: str
    location: Location
    holder: K8sObject | None = None


@dataclass
class AlertRule:
    name: str
    expr: str
    duration: str | None
    labels: dict[str, str]
    location: Location


def memoized(function: Callable[..., Any]) -> Callable[..., Any]:
    """Cache what `function(manifests, ...)` returns on the ManifestSet.

    Rules ask for the same objects, workloads and claims once per tenant, and a
    scan of every object each time would make a review cost the square of the
    platform's size. The cache is valid until evidence is added (the sizes of the
    lists change). Callers get a copy of a list or dict, so they may change it.
    """

    @functools.wraps(function)
    def wrapper(manifests: ManifestSet, *args: Any, **kwargs: Any) -> Any:
        sizes = (
            len(manifests.objects),
            len(manifests.compose),
            len(manifests.odoo_confs),
            len(manifests.operated),
        )
        cache = manifests.__dict__.setdefault("_memo", {})
        key = (function.__qualname__, args, tuple(sorted(kwargs.items())))
        hit = cache.get(key)
        if hit is None or hit[0] != sizes:
            hit = (sizes, function(manifests, *args, **kwargs))
            cache[key] = hit
        value = hit[1]
        return type(value)(value) if isinstance(value, (list, dict)) else value

    return wrapper


@dataclass
class ManifestSet:
    objects: list[K8sObject] = field(default_factory=list)
    compose: list[Workload] = field(default_factory=list)
    odoo_confs: list[OdooConf] = field(default_factory=list)
    alerts: list[AlertRule] = field(default_factory=list)
    compose_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    # `# Source:` of Helm-rendered documents, by (file, first line).
    templates: dict[tuple[str, int], str] = field(default_factory=dict)
    # nginx configuration texts, each with the location of its first line.
    nginx_configs: list[tuple[str, Location]] = field(default_factory=list)
    postgres_confs: list[PostgresConf] = field(default_factory=list)
    # Odoo servers that an operator runs, read from their custom resources.
    operated: list[Workload] = field(default_factory=list)
    # Unrendered Helm charts: the chart folder and the template files below it.
    charts: dict[str, list[str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # The review root that findings name files relative to (None: as given).
    root: Path | None = None

    def display(self, file: str) -> str:
        """Return `file` as findings name it: relative to the review root when it
        lies below it, else absolute."""
        return display_path(file, self.root)

    @memoized
    def of_kind(self, *kinds: str, group: str | None = None) -> list[K8sObject]:
        return [
            item
            for item in self.objects
            if item.kind in kinds and (group is None or item.group.startswith(group))
        ]

    @memoized
    def workloads(self) -> list[Workload]:
        found = []
        for item in self.objects:
            if item.kind in WORKLOAD_KINDS:
                workload = workload_of(item)
                if workload is not None:
                    found.append(workload)
        return found + self.compose + self.operated

    def cronjobs(self) -> list[Workload]:
        jobs = []
        for item in self.of_kind("CronJob"):
            workload = workload_of(item)
            if workload is not None:
                jobs.append(workload)
        return jobs

    @property
    def empty(self) -> bool:
        return not (self.objects or self.compose or self.odoo_confs or self.alerts)


_POSTGRESQL_SETTING = re.compile(
    r"^\s*(archive_mode|archive_command|archive_library|archive_timeout|wal_level"
    r"|shared_buffers|max_connections|listen_addresses|max_wal_senders)\s*=",
    re.MULTILINE,
)


def looks_like_postgresql_conf(text: str) -> bool:
    """Return whether `text` looks like a postgresql.conf: it sets two or more of
    the usual settings."""
    return len(set(_POSTGRESQL_SETTING.findall(text))) >= 2


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
    """Find odoo.conf texts inside ConfigMaps and Secrets, and nginx configurations
    inside ConfigMaps."""
    sections = ["data", "stringData"] if item.kind == "Secret" else ["data"]
    for section in sections:
        for key, value in as_dict(item.get(section)).items():
            text = str(value)
            encoded = item.kind == "Secret" and section == "data"
            if encoded:
                try:
                    text = base64.b64decode(text, validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    continue
            location = item.at(section, key)
            # Only a literal block (`key: |`) keeps the text's lines in the file,
            # starting one line below the key. Other values point at the key.
            literal = isinstance(value, LiteralText) and not encoded
            start = (
                Location(location.file, (location.line or 0) + 1)
                if literal
                else location
            )
            if "[options]" not in text:
                if item.kind == "ConfigMap" and looks_like_nginx(text):
                    _add_nginx(text, start, into)
                elif item.kind == "ConfigMap" and looks_like_postgresql_conf(text):
                    into.postgres_confs.append(PostgresConf(text, start, item))
                continue
            conf = parse_odoo_conf(text, start)
            if conf is None:
                continue
            if not literal:
                conf.lines = {}
            conf.origin = item.kind
            conf.holder = item
            into.odoo_confs.append(conf)


def _add_object(document: dict, location: Location, into: ManifestSet) -> None:
    metadata = as_dict(document.get("metadata"))
    namespace = metadata.get("namespace")
    item = K8sObject(
        kind=str(document["kind"]),
        api_version=str(document["apiVersion"]),
        name=str(metadata.get("name", "")),
        namespace=str(namespace) if namespace is not None else None,
        data=document,
        location=Location(location.file, line_at(document, ()) or location.line),
        template=into.templates.get((location.file, location.line)),
    )
    # Each step raises on a shape it cannot read, before the object is added.
    if item.kind in WORKLOAD_KINDS or item.kind == "CronJob":
        build_workload(item)
    if item.kind == "PrometheusRule":
        _alerts(as_dict(item.get("spec")), item.location, into)
    if item.kind in {"ConfigMap", "Secret"}:
        _embedded_confs(item, into)
    if "." in item.group and is_odoo_resource(item.kind):
        _add_operated(item, into)
    into.objects.append(item)


def _add_operated(item: K8sObject, into: ManifestSet) -> None:
    """Add the Odoo server an operator runs from `item`, and the odoo.conf options
    its custom resource sets."""
    workload, options, lines = operator_workload(item)
    into.operated.append(workload)
    if options:
        conf = OdooConf(Location(item.location.file, 1), options, lines)
        conf.origin = item.kind
        conf.holder = item
        conf.resource = item.ref
        into.odoo_confs.append(conf)


def _add_document(document: Any, location: Location, into: ManifestSet) -> None:
    if not isinstance(document, dict):
        return
    if "kind" in document and "apiVersion" in document:
        if str(document["kind"]).endswith("List") and "items" in document:
            for index, item in enumerate(as_list(document.get("items"))):
                line = line_at(document, ("items", index))
                _add_document(item, Location(location.file, line), into)
            return
        _add_object(document, location, into)
    elif isinstance(document.get("services"), dict):
        add_compose_services(document, location, into)
    elif isinstance(document.get("groups"), list):
        _alerts(document, location, into)


_HELM_SOURCE = re.compile(r"^#\s*Source:\s*(\S.*?)\s*$")


def _helm_sources(path: Path, documents: list[Any]) -> dict[tuple[str, int], str]:
    """Map each document's first line to the `# Source:` comment `helm template`
    writes above it, between the previous `---` and the document."""
    text = path.read_text(encoding="utf-8")
    found: dict[tuple[str, int], str] = {}
    source = None
    starts = {line_at(document, ()) for document in documents}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("---"):
            source = None
        match = _HELM_SOURCE.match(line)
        if match:
            source = match.group(1)
        elif number in starts and source is not None:
            found[(str(path), number)] = source
    return found


def load_manifests(
    paths: list[Path], odoo_confs: list[Path] = (), root: Path | None = None
) -> ManifestSet:
    """Read every manifest, compose file, rule file and odoo.conf below `paths`.

    A file that cannot be read, or a document that is invalid or whose shape cannot
    be read, is listed in `problems` and skipped, and the file's other documents
    are read. The templates of a Helm chart are not read: each chart is listed once
    in `problems`, with the command that renders it. `root` is the folder that
    findings name files relative to.
    """
    found = ManifestSet(root=root)
    # A file reached twice (listed under manifests and odoo_conf, or below two of
    # the paths) is read once, so that its findings are not counted twice.
    seen: set[Path] = set()
    for root_path in paths:
        if not root_path.exists():
            found.problems.append(f"{root_path}: not found")
            continue
        for path in walk_files(root_path, (*YAML_SUFFIXES, ".conf")):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            found.files.append(str(path))
            chart = chart_folder(path)
            if chart is not None:
                found.charts.setdefault(str(chart), []).append(str(path))
                continue
            if path.suffix.lower() == ".conf":
                _add_conf(path, found)
                continue
            _add_yaml(path, found)
    for path in odoo_confs:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        _add_conf(path, found)
    for workload in found.compose:
        for text, location in mounted_configs(workload):
            _add_nginx(text, location, found)
    for chart, files in found.charts.items():
        found.problems.append(unrendered_chart_problem(found.display(chart), files))
    for conf in found.odoo_confs:
        if not conf.resource:
            conf.resource = found.display(conf.location.file)
    files = [*found.files, *map(str, paths), *map(str, odoo_confs)]
    found.problems = [_relative_problem(item, files, found) for item in found.problems]
    return found


def _relative_problem(problem: str, files: list[str], found: ManifestSet) -> str:
    """Name the file a problem starts with relative to the review root."""
    for file in sorted(files, key=len, reverse=True):
        if problem.startswith(f"{file}:"):
            return found.display(file) + problem[len(file) :]
    return problem


def _add_yaml(path: Path, into: ManifestSet) -> None:
    try:
        documents, errors = load_valid_documents(path)
    except YamlError as exc:
        into.problems.append(str(exc))
        return
    if errors and _has_template_actions(path):
        into.problems.append(
            f"{errors[0].location}: contains template actions ({{{{ ... }}}}) and is "
            "not valid YAML: render it first (for a Helm template, with `helm "
            "template`), and review the rendered file"
        )
    else:
        into.problems += [str(error) for error in errors]
    into.templates.update(_helm_sources(path, documents))
    for document in documents:
        location = Location(str(path), line_at(document, ()))
        try:
            _add_document(document, location, into)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            into.problems.append(
                f"{location}: cannot read this document, a value has an "
                f"unexpected type ({type(exc).__name__}: {exc})"
            )


# Files of a Helm chart folder that only `helm template` reads: the chart's
# metadata, its values, its templates and the charts it depends on.
_CHART_PARTS = ("templates", "charts", "crds")


def chart_folder(path: Path) -> Path | None:
    """Return the Helm chart folder `path` belongs to as a source file (Chart.yaml,
    values*.yaml, or a file below templates/, charts/ or crds/), else None."""
    if path.name in ("Chart.yaml", "Chart.lock") or (
        path.name.startswith("values") and (path.parent / "Chart.yaml").is_file()
    ):
        return path.parent if (path.parent / "Chart.yaml").is_file() else None
    for parent in path.parents:
        if parent.name in _CHART_PARTS and (parent.parent / "Chart.yaml").is_file():
            return parent.parent
    return None


def unrendered_chart_problem(chart: str, files: list[str]) -> str:
    """Describe an unrendered Helm chart and the command that renders it."""
    templates = [
        Path(file).name for file in files if f"{os.sep}templates{os.sep}" in file
    ]
    listed = ", ".join(templates[:5]) + (
        f" and {len(templates) - 5} more" if len(templates) > 5 else ""
    )
    folder = "the chart's folder" if chart == "." else chart
    rendered = "rendered.yaml" if chart == "." else f"{chart}/rendered.yaml"
    return (
        f"{chart}: a Helm chart, whose templates"
        + (f" ({listed})" if listed else "")
        + " the review cannot read before they are rendered: in "
        f"{folder}, run `helm template NAME . -f values.yaml > rendered.yaml`, and "
        f"list {rendered} under the environment's manifests"
    )


def _has_template_actions(path: Path) -> bool:
    """Return whether `path` contains Go template actions (`{{ ... }}`), as Helm
    charts do."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"\{\{.*?\}\}", text, re.DOTALL) is not None


def _add_conf(path: Path, into: ManifestSet) -> None:
    try:
        text = read_text(path)
    except YamlError as exc:
        into.problems.append(str(exc))
        return
    conf = parse_odoo_conf(text, Location(str(path), 1))
    if conf is not None and conf.options:
        into.odoo_confs.append(conf)
    elif looks_like_nginx(text):
        _add_nginx(text, Location(str(path), 1), into)
    elif looks_like_postgresql_conf(text):
        into.postgres_confs.append(PostgresConf(text, Location(str(path), 1)))


def _add_nginx(text: str, location: Location, into: ManifestSet) -> None:
    if any(known == location for _, known in into.nginx_configs):
        return
    try:
        parse(text)
    except ValueError as exc:
        into.problems.append(f"{location}: invalid nginx configuration: {exc}")
        return
    into.nginx_configs.append((text, location))
