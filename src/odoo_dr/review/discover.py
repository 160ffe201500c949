"""Discover the contents of a starting inventory: environments, tenants, evidence.

`odoo-dr review init` reads a folder of manifests, compose files, odoo.conf files and
Prometheus rule files, and optionally a live PostgreSQL server. It groups the files
into environments by the words in their paths and Kubernetes namespaces
(`production`, `staging`, ...), takes tenants from `db_name`, literal `dbfilter`
patterns, Odoo and odoo-dr command lines and the Odoo databases of the live server,
and records where each fact came from so the written inventory can say so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from odoo_dr.errors import OdooDrError, RejectedError
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.review.evidence.manifests import (
    YAML_SUFFIXES,
    ManifestSet,
    OdooConf,
    Workload,
    load_manifests,
)
from odoo_dr.review.inventory import EnvironmentKind
from odoo_dr.review.mechanisms import odoo_dr_databases

# Folders never worth reading for manifests.
SKIPPED_FOLDERS = {"node_modules", "__pycache__", "venv", "site-packages"}

# Databases that cloud providers and PostgreSQL itself create for administration.
MAINTENANCE_DATABASES = {MAINTENANCE_DATABASE, "rdsadmin", "azure_maintenance"}
MAINTENANCE_DATABASES |= {"azure_sys", "cloudsqladmin", "_dodb"}

# Words in a path or namespace that name an environment, and the kind each implies.
ENVIRONMENT_WORDS = {
    **dict.fromkeys(("production", "prod", "prd", "live"), EnvironmentKind.PRODUCTION),
    **dict.fromkeys(
        ("staging", "stage", "stg", "preprod", "uat", "qa", "test"),
        EnvironmentKind.STAGING,
    ),
    **dict.fromkeys(("development", "dev"), EnvironmentKind.DEVELOPMENT),
    **dict.fromkeys(("analytics", "reporting"), EnvironmentKind.ANALYTICS),
    **dict.fromkeys(("partner", "sandbox"), EnvironmentKind.PARTNER),
    **dict.fromkeys(("dr", "disaster-recovery"), EnvironmentKind.DISASTER_RECOVERY),
}
# Short spellings written out, so `prod/` and `production/` land in one environment.
CANONICAL_NAMES = {"prod": "production", "prd": "production", "live": "production"}
CANONICAL_NAMES |= {"stage": "staging", "stg": "staging", "dev": "development"}
DEFAULT_ENVIRONMENT = "production"

MANIFESTS = "manifests"
COMPOSE = "compose"
ODOO_CONF = "odoo_conf"
PROMETHEUS_RULES = "prometheus_rules"
CATEGORIES = (MANIFESTS, COMPOSE, ODOO_CONF, PROMETHEUS_RULES)


@dataclass
class DiscoveredTenant:
    name: str
    sources: list[str] = field(default_factory=list)


@dataclass
class DiscoveredService:
    name: str
    kind: str
    source: str


@dataclass
class DiscoveredEnvironment:
    name: str
    kind: EnvironmentKind | None
    files: dict[str, list[Path]] = field(
        default_factory=lambda: {category: [] for category in CATEGORIES}
    )
    tenants: dict[str, DiscoveredTenant] = field(default_factory=dict)
    services: list[DiscoveredService] = field(default_factory=list)
    shared_odoo: bool = False
    dbfilters: list[str] = field(default_factory=list)
    postgres_dsn: str | None = None
    notes: list[str] = field(default_factory=list)

    def add_tenant(self, name: str, source: str) -> None:
        tenant = self.tenants.setdefault(name, DiscoveredTenant(name))
        if source not in tenant.sources:
            tenant.sources.append(source)


@dataclass
class LiveDatabase:
    name: str
    odoo_version: str | None
    modules: int
    size: int


@dataclass
class Discovery:
    folder: Path
    environments: list[DiscoveredEnvironment]
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def environment_word(text: str) -> str | None:
    """Return the environment name that `text` (a folder, file stem or namespace)
    names, or None."""
    lowered = text.lower()
    if lowered in ENVIRONMENT_WORDS:
        return CANONICAL_NAMES.get(lowered, lowered)
    words = [word for word in re.split(r"[-_.]", lowered) if word]
    named = [word for word in words if word in ENVIRONMENT_WORDS]
    if not named:
        return None
    if len(named) == len(words):
        # Every word names an environment (`partner-sandbox`): keep the whole name.
        return CANONICAL_NAMES.get(lowered, lowered)
    return CANONICAL_NAMES.get(named[0], named[0])


def environment_kind(name: str) -> EnvironmentKind | None:
    for word in re.split(r"[-_.]", name):
        if word in ENVIRONMENT_WORDS:
            return ENVIRONMENT_WORDS[word]
    return ENVIRONMENT_WORDS.get(name)


def walk(folder: Path) -> list[Path]:
    """Return the YAML, JSON and .conf files below `folder`, skipping hidden folders
    and dependency folders."""
    found = []
    for directory, folders, files in os.walk(folder):
        folders[:] = sorted(
            name
            for name in folders
            if not name.startswith(".") and name not in SKIPPED_FOLDERS
        )
        for name in sorted(files):
            path = Path(directory) / name
            if path.suffix.lower() in (*YAML_SUFFIXES, ".conf"):
                found.append(path)
    return found


def _category(path: Path, manifests: ManifestSet) -> str | None:
    """Return what `path` contributes as evidence, or None when it contributes
    nothing (a Chart.yaml, a package.json, an nginx .conf)."""
    name = str(path)
    if any(item.location.file == name for item in manifests.objects):
        return MANIFESTS
    if any(item.location.file == name for item in manifests.compose):
        return COMPOSE
    if any(item.location.file == name for item in manifests.odoo_confs):
        return ODOO_CONF
    if any(item.location.file == name for item in manifests.alerts):
        return PROMETHEUS_RULES
    return None


def _path_environment(path: Path, folder: Path) -> str | None:
    relative = path.relative_to(folder)
    for part in [*relative.parts[:-1], relative.stem]:
        name = environment_word(part)
        if name is not None:
            return name
    return None


def _namespace_environment(path: Path, manifests: ManifestSet) -> str | None:
    for item in manifests.objects:
        if item.location.file == str(path) and item.namespace:
            name = environment_word(str(item.namespace))
            if name is not None:
                return name
    return None


def _collapse(files: list[Path], owned: set[Path], folder: Path, all_files: dict):
    """Replace files by the highest folder below `folder` whose every evidence file
    is in `owned`; files that contribute nothing do not count."""
    chosen: list[Path] = []
    for path in files:
        best = path
        parent = path.parent
        while True:
            inside = [
                other
                for other, category in all_files.items()
                if category is not None and parent in other.parents
            ]
            if not all(other in owned for other in inside):
                break
            best = parent
            if parent == folder:
                break
            parent = parent.parent
        if best not in chosen:
            chosen.append(best)
    return [
        path
        for path in chosen
        if not any(other != path and other in path.parents for other in chosen)
    ]


def _odoo_args_databases(workload: Workload) -> list[str]:
    """Return database names on an Odoo command line (`-d NAME`, `--database=NAME`)."""
    names = []
    for container in workload.containers:
        tokens = container.command
        for index, token in enumerate(tokens):
            value = None
            if token in ("-d", "--database") and index + 1 < len(tokens):
                value = tokens[index + 1]
            elif token.startswith("--database="):
                value = token.split("=", 1)[1]
            if value:
                names.extend(name for name in value.split(",") if name)
        bitnami = container.env.get("ODOO_DATABASE_NAME")
        if bitnami:
            names.append(bitnami)
    return names


def _odoo_dr_databases(workload: Workload) -> list[str]:
    """Return the databases of `odoo-dr backup NAME` and `odoo-dr drill NAME`, in a
    command line or in a loop over database names."""
    text = " ".join(container.command_text for container in workload.containers)
    if workload.kind == "ComposeService":
        # docker-compose writes a literal `$` as `$$`.
        text = text.replace("$$", "$")
    return sorted(odoo_dr_databases(text, ("backup", "drill")))


PLACEHOLDERS = {"%d": "[A-Za-z0-9-]+", "%h": "[A-Za-z0-9.-]+"}


def dbfilter_pattern(dbfilter: str) -> re.Pattern[str] | None:
    """Compile a dbfilter the way Odoo applies it (re.match, %d and %h replaced by
    what a host name allows); None when it is not a valid pattern."""
    text = dbfilter
    for placeholder, pattern in PLACEHOLDERS.items():
        text = text.replace(placeholder, pattern)
    try:
        return re.compile(text)
    except re.error:
        return None


def literal_dbfilter(dbfilter: str) -> str | None:
    """Return the one database name a dbfilter such as `^acme$` allows, else None."""
    match = re.fullmatch(r"\^?([A-Za-z0-9_][A-Za-z0-9_-]*)\$", dbfilter.strip())
    return match.group(1) if match else None


def _conf_tenants(conf: OdooConf, environment: DiscoveredEnvironment) -> None:
    where = str(conf.at("db_name"))
    names = [
        name.strip()
        for name in conf.options.get("db_name", "").split(",")
        if name.strip() and name.strip() not in ("False", "None")
    ]
    for name in names:
        environment.add_tenant(name, f"db_name in {where}")
    dbfilter = conf.options.get("dbfilter", "").strip()
    if dbfilter and dbfilter not in ("False", "None"):
        environment.dbfilters.append(dbfilter)
        literal = literal_dbfilter(dbfilter)
        if literal is not None:
            environment.add_tenant(literal, f"dbfilter in {conf.at('dbfilter')}")
        elif not names:
            environment.shared_odoo = True
            environment.notes.append(
                f"dbfilter {dbfilter} ({conf.at('dbfilter')}) serves every database "
                "it matches: list each one it serves"
            )
    if len(names) > 1:
        environment.shared_odoo = True


def _services(
    workloads: list[Workload], manifests: ManifestSet, files: set[Path]
) -> list[DiscoveredService]:
    services = []
    for cluster in manifests.of_kind("Cluster", group="postgresql.cnpg.io"):
        if Path(cluster.location.file) in files:
            source = f"CloudNativePG Cluster ({cluster.location})"
            services.append(DiscoveredService(cluster.name, "postgres", source))
    for workload in workloads:
        if workload.is_postgres:
            kind = "postgres"
        elif workload.is_redis:
            kind = "redis"
        else:
            continue
        services.append(
            DiscoveredService(
                workload.name, kind, f"{workload.kind} ({workload.location})"
            )
        )
    return services


def discover_files(folder: Path) -> Discovery:
    """Read the evidence files below `folder` and group them into environments."""
    files = walk(folder)
    manifests = load_manifests(files)
    categories = {path: _category(path, manifests) for path in files}
    for path in files:
        if categories[path] is None and _unreadable(path, manifests.problems):
            # A YAML file that does not parse stays in the evidence, so every review
            # reports it, unless it is a template that must be rendered first.
            if not _is_template(path) and path.suffix.lower() in (".yaml", ".yml"):
                categories[path] = MANIFESTS
    environments: dict[str, DiscoveredEnvironment] = {}
    owners: dict[Path, str] = {}
    for path, category in categories.items():
        if category is None:
            continue
        name = _path_environment(path, folder)
        if name is None and category == MANIFESTS:
            name = _namespace_environment(path, manifests)
        # An environment named by no word gets no kind: the inventory marks it TODO.
        kind = environment_kind(name) if name else None
        name = name or DEFAULT_ENVIRONMENT
        environment = environments.setdefault(name, DiscoveredEnvironment(name, kind))
        if environment.kind is None and kind is not None:
            environment.kind = kind
        environment.files[category].append(path)
        owners[path] = name

    for name, environment in environments.items():
        for category, paths in environment.files.items():
            if category == ODOO_CONF:
                continue
            owned = {path for path in paths if categories[path] == category}
            environment.files[category] = _collapse(paths, owned, folder, categories)
        in_environment = {path for path, owner in owners.items() if owner == name}
        for conf in manifests.odoo_confs:
            if Path(conf.location.file) in in_environment:
                _conf_tenants(conf, environment)
        workloads = [
            item
            for item in manifests.workloads()
            if Path(item.location.file) in in_environment
        ]
        for workload in workloads:
            if workload.is_odoo:
                for database in _odoo_args_databases(workload):
                    environment.add_tenant(
                        database, f"{workload.ref} command ({workload.location})"
                    )
        jobs = [*manifests.cronjobs(), *workloads]
        for job in jobs:
            if Path(job.location.file) in in_environment:
                for database in _odoo_dr_databases(job):
                    environment.add_tenant(database, f"{job.ref} ({job.location})")
        environment.services = _services(workloads, manifests, in_environment)
    if not environments:
        environments[DEFAULT_ENVIRONMENT] = DiscoveredEnvironment(
            DEFAULT_ENVIRONMENT, None
        )
        environments[DEFAULT_ENVIRONMENT].notes.append(
            "no manifest, compose file, odoo.conf or rule file was read: list "
            "where this environment's evidence is"
        )
    discovery = Discovery(folder, list(environments.values()))
    # Each unrendered chart and template file is listed there with the command
    # that renders it.
    discovery.problems = list(manifests.problems)
    return discovery


def _unreadable(path: Path, problems: list[str]) -> bool:
    return any(problem.startswith(f"{path}:") for problem in problems)


def _is_template(path: Path) -> bool:
    """Return whether `path` contains Go template actions (`{{ ... }}`), as Helm
    charts do."""
    try:
        return "{{" in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def live_databases(
    settings: PgSettings,
) -> tuple[list[LiveDatabase], str, list[str]]:
    """Return the Odoo databases of the live server, its connection string without
    a password, and notes on databases that could not be read.

    Raises OdooDrError when the server cannot be reached."""
    if "connect_timeout" not in settings.params:
        params = {**settings.params, "connect_timeout": "10"}
        settings = PgSettings(params, settings.password)
    notes = []
    try:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT datname, pg_database_size(oid) FROM pg_database"
                " WHERE NOT datistemplate AND datallowconn ORDER BY datname"
            ).fetchall()
            info = connection.info
            keywords = (
                ("host", info.host),
                ("port", info.port),
                ("user", info.user),
                ("sslmode", settings.params.get("sslmode")),
                ("service", settings.params.get("service")),
            )
    except psycopg.Error as exc:
        raise RejectedError(
            f"cannot list the databases of {settings.describe()}: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from None
    described = " ".join(f"{key}={value}" for key, value in keywords if value)
    found = []
    for name, size in rows:
        if name in MAINTENANCE_DATABASES or name.startswith("odoo-dr-"):
            continue
        try:
            with settings.connect(name, autocommit=True) as connection:
                if (
                    connection.execute(
                        "SELECT to_regclass('public.ir_module_module')"
                    ).fetchone()[0]
                    is None
                ):
                    continue
                version, modules = connection.execute(
                    "SELECT max(latest_version) FILTER (WHERE name = 'base'),"
                    " count(*) FILTER (WHERE state = 'installed')"
                    " FROM ir_module_module"
                ).fetchone()
        except OdooDrError as exc:
            notes.append(f"database {name} not read: {exc.message}")
            continue
        except psycopg.Error as exc:
            first_line = str(exc).strip().splitlines()[0]
            notes.append(f"database {name} not read: {first_line}")
            continue
        found.append(LiveDatabase(name, version, int(modules), int(size)))
    return found, described, notes


def _filter_score(dbfilter: str) -> int:
    """Return how specific a dbfilter is: the number of its characters that are not
    a placeholder, so `^nordwind_%d_staging$` wins over `^nordwind_%d$`."""
    text = dbfilter
    for placeholder in PLACEHOLDERS:
        text = text.replace(placeholder, "")
    return len(text)


def add_live_databases(
    discovery: Discovery, databases: list[LiveDatabase], described: str
) -> None:
    """Put each live Odoo database into the environment whose db_name or dbfilter
    names it; databases that none names go to the production environment."""
    if not discovery.environments:
        discovery.environments.append(DiscoveredEnvironment(DEFAULT_ENVIRONMENT, None))
    for database in databases:
        version = f"Odoo {database.odoo_version}, " if database.odoo_version else ""
        source = (
            f"live PostgreSQL {described} ({version}{database.modules} modules "
            f"installed, {_size(database.size)})"
        )
        target = next(
            (env for env in discovery.environments if database.name in env.tenants),
            None,
        )
        if target is None:
            matches = []
            for environment in discovery.environments:
                for dbfilter in environment.dbfilters:
                    pattern = dbfilter_pattern(dbfilter)
                    if pattern is not None and pattern.match(database.name):
                        matches.append((_filter_score(dbfilter), environment))
            if matches:
                target = max(matches, key=lambda item: item[0])[1]
        if target is None:
            target = next(
                (
                    env
                    for env in discovery.environments
                    if env.name == DEFAULT_ENVIRONMENT
                ),
                discovery.environments[0],
            )
            if len(discovery.environments) > 1:
                source += (
                    "; no db_name or dbfilter names it: move it to its environment"
                )
        target.add_tenant(database.name, source)
        target.postgres_dsn = described


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
