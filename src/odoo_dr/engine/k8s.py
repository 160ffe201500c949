"""Kubernetes manifests that run odoo-dr on a cluster: a Kustomize base of CronJobs,
a ServiceAccount, a NetworkPolicy per environment and the inventory as a ConfigMap.

Two modes:

- `run` (the default): one CronJob per environment runs `odoo-dr run` every few
  minutes, which performs whatever is due. It takes the environment's run lock, so
  it is not sharded: `--jobs` sets the tenants worked on at once.
- `tasks`: CronJobs per environment, tier and task. Backups and drills are Indexed
  Jobs, one pod per shard, and each pod reads an inventory that holds only its
  shard's tenants. Verify, prune and copy work on the whole repository, so they
  run once per environment.

Secrets are referenced by name (`envFrom` of the Secret `odoo-dr-<environment>`),
never rendered. The inventory in the ConfigMap keeps only what the jobs read: tiers,
tenants, retention, offsite, and the repository of each environment.
"""

from __future__ import annotations

import ipaddress
import math
import re
import zlib
from dataclasses import dataclass, field

import yaml

from odoo_dr.errors import RejectedError
from odoo_dr.review.inventory import (
    Disruption,
    Environment,
    Inventory,
    Tenant,
    effective_schedule,
)

APP_LABEL = "app.kubernetes.io/name"
APP = "odoo-dr"
ENVIRONMENT_LABEL = "odoo-dr.io/environment"
TIER_LABEL = "odoo-dr.io/tier"
TASK_LABEL = "odoo-dr.io/task"

INVENTORY_MOUNT = "/etc/odoo-dr"
FILESTORE_MOUNT = "/var/lib/odoo/filestore"
RUN_AS = 10001
CRON_TIME_ZONE = "Etc/UTC"

# Kubernetes adds 11 characters to a CronJob's name for its Jobs, and Job names are
# at most 63 characters long.
MAX_CRONJOB_NAME = 52

# Private address ranges (RFC 1918), left out of the default object-store rule so
# that the pods reach nothing inside the cluster network through it.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")

RESOURCES = {
    "requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "1Gi"},
    "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "20Gi"},
}
TMP_SIZE = "20Gi"

MODES = ("run", "tasks")


@dataclass(frozen=True)
class PostgresTarget:
    """The PostgreSQL destination of the NetworkPolicy: CIDRs, or a namespace with
    an optional pod selector."""

    port: int = 5432
    cidrs: tuple[str, ...] = ()
    namespace: str | None = None
    pod_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderOptions:
    namespace: str = "odoo-dr"
    image: str = "odoo-dr:latest"
    mode: str = "run"
    shards: int = 1
    jobs: int = 2
    # Pass interval of the run mode, in minutes.
    run_every: int | None = None
    postgres: PostgresTarget | None = None
    object_store_cidrs: tuple[str, ...] = ()
    object_store_port: int = 443
    filestore_claim: str | None = None
    repository_claim: str = "odoo-dr-repository"
    offsite_claim: str = "odoo-dr-offsite"


@dataclass
class Rendered:
    """The files of the Kustomize base, by name, and warnings for the user."""

    files: dict[str, str]
    warnings: list[str]


# -- names ----------------------------------------------------------------------


def dns_label(text: str, max_length: int = 63) -> str:
    """Turn `text` into a DNS-1123 label of at most `max_length` characters.

    A label that had to be shortened ends in a hash of `text`, so two long names
    stay distinct."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    if len(label) <= max_length and label == text:
        return label
    if len(label) > max_length:
        digest = f"{zlib.crc32(text.encode()):08x}"
        label = label[: max_length - 9].rstrip("-") + "-" + digest
    return label


def _name(*parts: str) -> str:
    return dns_label("-".join(["odoo-dr", *parts]), MAX_CRONJOB_NAME)


def _spread(name: str, modulo: int) -> int:
    """Return a stable number below `modulo` picked from `name`: start times differ
    between jobs but stay the same from one render to the next."""
    return zlib.crc32(name.encode()) % modulo


# -- schedules ------------------------------------------------------------------

_MINUTE_STEPS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_HOUR_STEPS = (1, 2, 3, 4, 6, 8, 12)
DAY = 86400


def cron_schedule(interval: int, name: str) -> str:
    """Return a cron expression that runs at least once every `interval` seconds.

    Cron cannot express every interval, so the interval is rounded down to one it
    can: a divisor of an hour or of a day, a day, a week, twice a month (days D and
    D+15), a month, three, six or twelve months. Runs are therefore never further
    apart than the interval, and may be closer. The minute, hour, weekday and day
    of month come from a hash of `name`, so jobs do not all start together.
    """
    minute = _spread(name, 60)
    hour = _spread(name + "/hour", 24)
    if interval < 3600:
        minutes = max(interval // 60, 1)
        step = max(s for s in _MINUTE_STEPS if s <= minutes)
        if step == 1:
            return "* * * * *"
        return f"{minute % step}-59/{step} * * * *"
    if interval < DAY:
        hours = interval // 3600
        step = max(s for s in _HOUR_STEPS if s <= hours)
        if step == 1:
            return f"{minute} * * * *"
        return f"{minute} {hour % step}-23/{step} * * *"
    day = 1 + _spread(name + "/day", 15)
    if interval < 7 * DAY:
        return f"{minute} {hour} * * *"
    if interval < 16 * DAY:
        return f"{minute} {hour} * * {_spread(name + '/weekday', 7)}"
    # Maximum gaps: 16 days from day D+15 to day D of the next month, 31 days for a
    # month, 92 for three months (July to October), 184 for six (July to January).
    if interval < 31 * DAY:
        return f"{minute} {hour} {day},{day + 15} * *"
    if interval < 92 * DAY:
        return f"{minute} {hour} {day} * *"
    first_month = 1 + _spread(name + "/month", 3)
    if interval < 184 * DAY:
        return f"{minute} {hour} {day} {first_month}-12/3 *"
    if interval < 366 * DAY:
        return f"{minute} {hour} {day} {first_month}-12/6 *"
    return f"{minute} {hour} {day} {first_month} *"


def starting_deadline(interval: int) -> int:
    """Seconds a missed start may still happen: half the interval, at most an hour."""
    return max(60, min(interval // 2, 3600))


def run_interval_minutes(inventory: Inventory, environment: Environment) -> int:
    """Return the default pass interval of the run mode: a quarter of the shortest
    backup interval of the environment, between 5 and 60 minutes."""
    shortest = min(
        effective_schedule(inventory, tenant).backup for tenant in environment.tenants
    )
    minutes = max(5, min(60, shortest // 240))
    return max(s for s in (*_MINUTE_STEPS, 60) if s <= minutes)


# -- the inventory the pods read --------------------------------------------------


def _absolute_location(value: str, where: str) -> str:
    if "://" in value or value.startswith("/"):
        return value
    raise RejectedError(
        f"{where} {value!r} is a relative path, which pods cannot resolve",
        hint="give an absolute path of a mounted volume, or s3://bucket/prefix",
    )


# Tenant fields that only the review reads.
_REVIEW_ONLY_TENANT_FIELDS = {
    "integrations",
    "customization",
    "integration_load",
    "sla",
    "runbook",
}


def job_inventory(
    inventory: Inventory, environment: Environment, tenants: list[Tenant]
) -> dict:
    """Return the inventory a job reads: the tiers, and the one environment with
    `tenants`, without the review's evidence (paths, connection strings, URLs)."""
    document = inventory.model_dump(
        mode="json",
        by_alias=True,
        exclude_none=True,
        exclude_defaults=True,
        include={"version", "platform", "tiers"},
    )
    env = environment.model_dump(
        mode="json",
        by_alias=True,
        exclude_none=True,
        exclude={"evidence", "tenants", "services", "runbooks"},
    )
    evidence = {}
    if environment.evidence.repository:
        evidence["repository"] = _absolute_location(
            environment.evidence.repository,
            f"evidence.repository of environment {environment.name!r}",
        )
    if evidence:
        env["evidence"] = evidence
    if environment.offsite is not None and environment.offsite.repository:
        env["offsite"]["repository"] = _absolute_location(
            environment.offsite.repository,
            f"offsite.repository of environment {environment.name!r}",
        )
    env["tenants"] = [
        tenant.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            exclude_defaults=True,
            exclude=_REVIEW_ONLY_TENANT_FIELDS,
        )
        for tenant in tenants
    ]
    document["environments"] = [env]
    return document


class _Dumper(yaml.SafeDumper):
    """A YAML dumper that writes shared dicts out in full, without anchors."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    # Files inside a ConfigMap read best as literal blocks.
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)


def _dump(document: dict | list) -> str:
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=88
    )


# -- pods -----------------------------------------------------------------------


def _labels(environment: str, task: str, tier: str | None = None) -> dict:
    labels = {
        APP_LABEL: APP,
        ENVIRONMENT_LABEL: dns_label(environment),
        TASK_LABEL: task,
    }
    if tier is not None:
        labels[TIER_LABEL] = dns_label(tier)
    return labels


def secret_name(environment: str) -> str:
    return dns_label(f"odoo-dr-{environment}", 253)


def _is_local(location: str | None) -> bool:
    return location is not None and "://" not in location


def _local_repositories(
    environment: Environment, options: RenderOptions
) -> list[tuple[str, str, str]]:
    """Return (volume, mount path, claim) of each repository that is a folder: the
    pods mount it from a PersistentVolumeClaim that the user creates."""
    volumes = []
    if _is_local(environment.evidence.repository):
        volumes.append(
            ("repository", environment.evidence.repository, options.repository_claim)
        )
    offsite = environment.offsite.repository if environment.offsite else None
    if _is_local(offsite):
        volumes.append(("offsite", offsite, options.offsite_claim))
    return volumes


def _pod_template(
    environment: Environment,
    labels: dict,
    args: list[str],
    options: RenderOptions,
    indexed: bool = False,
) -> dict:
    env = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "ODOO_DR_PROGRESS", "value": "0"},
        {"name": "ODOO_DR_FILESTORE_ROOT", "value": FILESTORE_MOUNT},
    ]
    if indexed:
        # The Job controller sets this variable too; declaring it makes the
        # $(JOB_COMPLETION_INDEX) in the arguments resolve on any version.
        annotation = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        env.append(
            {
                "name": "JOB_COMPLETION_INDEX",
                "valueFrom": {"fieldRef": {"fieldPath": annotation}},
            }
        )
    mounts = [
        {"name": "inventory", "mountPath": INVENTORY_MOUNT, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "filestore", "mountPath": FILESTORE_MOUNT},
    ]
    filestore_claim = options.filestore_claim or dns_label(
        f"{environment.name}-filestore", 253
    )
    volumes = [
        {"name": "inventory", "configMap": {"name": "odoo-dr-inventory"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}},
        {
            "name": "filestore",
            "persistentVolumeClaim": {"claimName": filestore_claim},
        },
    ]
    for name, location, claim in _local_repositories(environment, options):
        mounts.append({"name": name, "mountPath": location})
        volumes.append({"name": name, "persistentVolumeClaim": {"claimName": claim}})
    container = {
        "name": "odoo-dr",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": env,
        "envFrom": [{"secretRef": {"name": secret_name(environment.name)}}],
        "resources": RESOURCES,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    return {
        "metadata": {"labels": labels},
        "spec": {
            "serviceAccountName": "odoo-dr",
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": volumes,
        },
    }


def _cronjob(
    name: str,
    interval: int,
    labels: dict,
    pod: dict,
    options: RenderOptions,
    deadline: int,
    shards: int = 1,
) -> dict:
    job_spec: dict = {"activeDeadlineSeconds": deadline}
    if shards > 1:
        # One failing shard must not stop the others: each index fails on its own.
        job_spec |= {
            "completionMode": "Indexed",
            "completions": shards,
            "parallelism": shards,
            "backoffLimitPerIndex": 0,
            "backoffLimit": shards,
        }
    else:
        job_spec["backoffLimit"] = 0
    job_spec["template"] = pod
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": options.namespace, "labels": labels},
        "spec": {
            "schedule": cron_schedule(interval, name),
            "timeZone": CRON_TIME_ZONE,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": starting_deadline(interval),
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": labels}, "spec": job_spec},
        },
    }


# -- CronJobs of each mode --------------------------------------------------------

RUN_DEADLINE = DAY


def _run_cronjobs(
    inventory: Inventory, environment: Environment, options: RenderOptions
) -> dict[str, dict]:
    name = _name(environment.name, "run")
    labels = _labels(environment.name, "run")
    args = [
        "run",
        "--inventory",
        f"{INVENTORY_MOUNT}/{inventory_key(environment.name)}",
        "--jobs",
        str(options.jobs),
        # An environment named like an option ("--help") must stay an argument.
        "--",
        environment.name,
    ]
    minutes = options.run_every or run_interval_minutes(inventory, environment)
    pod = _pod_template(environment, labels, args, options)
    cronjob = _cronjob(name, minutes * 60, labels, pod, options, RUN_DEADLINE)
    return {f"cronjob-{name}.yaml": cronjob}


def inventory_key(environment: str, tier: str | None = None, shard: str = "") -> str:
    """Return the ConfigMap key (a file under /etc/odoo-dr) of a job's inventory."""
    parts = [dns_label(environment)]
    if tier is not None:
        parts += [dns_label(tier), shard]
    return ".".join(parts) + ".yaml"


def shard_tenants(tenants: list[Tenant], shards: int) -> list[list[Tenant]]:
    """Deal tenants, sorted by name, into at most `shards` groups of nearly equal
    size; there are no empty groups."""
    ordered = sorted(tenants, key=lambda tenant: tenant.name)
    count = min(shards, len(ordered))
    return [ordered[index::count] for index in range(count)]


def _tier_groups(environment: Environment) -> dict[str, list[Tenant]]:
    groups: dict[str, list[Tenant]] = {}
    for tenant in environment.tenants:
        groups.setdefault(tenant.tier, []).append(tenant)
    return groups


def _fleet_args(task: str, key: str, environment: str, jobs: int) -> list[str]:
    return [
        task,
        "--all",
        "--inventory",
        f"{INVENTORY_MOUNT}/{key}",
        # One token, so an environment named like an option stays its value.
        f"--environment={environment}",
        "--jobs",
        str(jobs),
    ]


def _drill_deadline(inventory: Inventory, tenants: list[Tenant], rounds: int) -> int:
    """Seconds a drill Job may run: the longest logical-corruption RTO among its
    tenants for each of `rounds` rounds, plus an hour of margin."""
    rtos = []
    for tenant in tenants:
        objective = inventory.objective(tenant, Disruption.LOGICAL_CORRUPTION)
        rtos.append(objective.rto if objective else DAY)
    return max(rtos) * rounds + 3600


def _tasks_cronjobs(
    inventory: Inventory,
    environment: Environment,
    options: RenderOptions,
    inventories: dict[str, str],
) -> dict[str, dict]:
    files: dict[str, dict] = {}
    for tier, tenants in _tier_groups(environment).items():
        shards = shard_tenants(tenants, options.shards)
        for index, group in enumerate(shards):
            key = inventory_key(environment.name, tier, str(index))
            inventories[key] = _dump(job_inventory(inventory, environment, group))
        schedules = [effective_schedule(inventory, tenant) for tenant in tenants]
        shard = "0" if len(shards) == 1 else "$(JOB_COMPLETION_INDEX)"
        key = inventory_key(environment.name, tier, shard)
        largest = max(len(group) for group in shards)
        jobs = min(options.jobs, largest)
        backup_interval = min(s.backup for s in schedules)
        tasks = {
            # A backup may run as long as its interval, at least an hour; the next
            # one waits for it (concurrencyPolicy: Forbid).
            "backup": (backup_interval, max(backup_interval, 3600)),
            "drill": (
                min(s.drill for s in schedules),
                _drill_deadline(inventory, tenants, math.ceil(largest / jobs)),
            ),
        }
        for task, (interval, deadline) in tasks.items():
            name = _name(environment.name, tier, task)
            labels = _labels(environment.name, task, tier)
            args = _fleet_args(task, key, environment.name, jobs)
            pod = _pod_template(
                environment, labels, args, options, indexed=len(shards) > 1
            )
            if f"cronjob-{name}.yaml" in files:
                raise RejectedError(
                    f"tiers of environment {environment.name!r} map to the same "
                    f"Kubernetes name ({name}), so one would replace the other",
                    hint="rename one of the tiers in the inventory so that their "
                    "lowercased names differ in more than case and punctuation",
                )
            files[f"cronjob-{name}.yaml"] = _cronjob(
                name, interval, labels, pod, options, deadline, shards=len(shards)
            )
    files |= _repository_cronjobs(inventory, environment, options)
    return files


def _retention_args(environment: Environment) -> list[str] | None:
    retention = environment.retention
    if retention is None:
        return None
    args = []
    for flag, value in (
        ("--keep-last", retention.keep_last),
        ("--keep-daily", retention.daily),
        ("--keep-weekly", retention.weekly),
        ("--keep-monthly", retention.monthly),
        ("--keep-yearly", retention.yearly),
    ):
        if value is not None:
            args += [flag, str(value)]
    if retention.legal_min is not None:
        args += ["--min-age", f"{retention.legal_min}s"]
    return args or None


def _repository_cronjobs(
    inventory: Inventory, environment: Environment, options: RenderOptions
) -> dict[str, dict]:
    """Return the verify, prune and copy CronJobs of an environment: each works on
    the whole repository, at the shortest interval among the tenants."""
    schedules = [effective_schedule(inventory, t) for t in environment.tenants]
    repo = []
    if environment.evidence.repository:
        repo = ["--repo", environment.evidence.repository]
    commands: dict[str, tuple[list[str], int]] = {
        "verify": (["verify", *repo], min(s.verify for s in schedules)),
    }
    retention = _retention_args(environment)
    if retention is not None:
        commands["prune"] = (
            ["prune", *repo, *retention],
            min(s.prune for s in schedules),
        )
    offsite = environment.offsite.repository if environment.offsite else None
    if offsite:
        commands["copy"] = (
            ["copy", *repo, "--to", offsite],
            min(s.copy for s in schedules),
        )
    files = {}
    for task, (args, interval) in commands.items():
        name = _name(environment.name, task)
        labels = _labels(environment.name, task)
        pod = _pod_template(environment, labels, args, options)
        deadline = max(interval, 3600)
        files[f"cronjob-{name}.yaml"] = _cronjob(
            name, interval, labels, pod, options, deadline
        )
    return files


# -- ServiceAccount, NetworkPolicy ----------------------------------------------


def _service_account(options: RenderOptions) -> dict:
    # The jobs do not call the Kubernetes API, so there is no Role and no token.
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "odoo-dr", "namespace": options.namespace},
        "automountServiceAccountToken": False,
    }


def postgres_target_from_dsn(dsn: str | None) -> PostgresTarget | None:
    """Return where the libpq connection string points, when a NetworkPolicy can
    name it: an IP address, or a Service `NAME.NAMESPACE.svc[.DOMAIN]`."""
    if not dsn:
        return None
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "")
    port = int(params.get("port") or 5432)
    if not host or "," in host or host.startswith("/"):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        parts = host.split(".")
        if len(parts) >= 3 and parts[2].lower() == "svc":
            # DNS names ignore case, while namespace names are lower-case.
            return PostgresTarget(port=port, namespace=parts[1].lower())
        return None
    suffix = 32 if address.version == 4 else 128
    return PostgresTarget(port=port, cidrs=(f"{address}/{suffix}",))


# A DNS-1123 subdomain: the form Kubernetes requires of most object names,
# PersistentVolumeClaims' included.
DNS_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)


# The name part of a label key, and a non-empty label value (Kubernetes'
# "Labels and Selectors" syntax).
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
# A DNS-1123 label: the form of a namespace name.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _valid_label_key(key: str) -> bool:
    prefix, _slash, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and LABEL_NAME.fullmatch(name) is not None


def _valid_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and LABEL_NAME.fullmatch(value) is not None)


def _check_postgres_target(target: PostgresTarget) -> None:
    """Reject a namespace or pod label the API server would reject."""
    namespace = target.namespace
    if namespace is not None and (
        len(namespace) > 63 or not DNS_LABEL.fullmatch(namespace)
    ):
        raise RejectedError(
            f"invalid PostgreSQL namespace {namespace!r} (from --postgres-namespace "
            "or evidence.postgres_dsn)",
            hint="a namespace is lower-case letters, digits and '-', at most 63 "
            "characters",
        )
    for key, value in target.pod_labels.items():
        if not _valid_label_key(key) or not _valid_label_value(value):
            raise RejectedError(
                f"invalid --postgres-pod-selector {key}={value}: Kubernetes "
                "rejects it as a label",
                hint="a label name and value are at most 63 letters, digits, '-', "
                "'_' and '.', starting and ending with a letter or digit; a key "
                "may have a DNS prefix such as cnpg.io/",
            )


def _postgres_peers(target: PostgresTarget) -> list[dict]:
    _check_postgres_target(target)
    peers: list[dict] = [{"ipBlock": {"cidr": cidr}} for cidr in target.cidrs]
    if target.namespace is not None:
        peer: dict = {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": target.namespace}
            }
        }
        if target.pod_labels:
            peer["podSelector"] = {"matchLabels": dict(target.pod_labels)}
        peers.append(peer)
    return peers


def _uses_object_store(environment: Environment) -> bool:
    """Return whether the jobs may use an object store: for an s3:// repository or
    offsite repository, or a repository left to $ODOO_DR_REPO, which may be one."""
    repository = environment.evidence.repository
    offsite = environment.offsite.repository if environment.offsite else None
    if repository is None or not _is_local(repository):
        return True
    return offsite is not None and not _is_local(offsite)


def _network_policy(
    environment: Environment, options: RenderOptions, warnings: list[str]
) -> dict:
    target = options.postgres or postgres_target_from_dsn(
        environment.evidence.postgres_dsn
    )
    if target is None or not (target.cidrs or target.namespace):
        dsn = environment.evidence.postgres_dsn
        reason = (
            "its evidence.postgres_dsn names no IP address or Service "
            "NAME.NAMESPACE.svc"
            if dsn
            else "it has no evidence.postgres_dsn"
        )
        raise RejectedError(
            "missing PostgreSQL address for the NetworkPolicy of environment "
            f"{environment.name!r}: {reason}",
            hint="pass --postgres-cidr or --postgres-namespace",
        )
    egress = [
        {
            "to": _postgres_peers(target),
            "ports": [{"protocol": "TCP", "port": target.port}],
        },
        {
            "to": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                    },
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [
                {"protocol": "UDP", "port": 53},
                {"protocol": "TCP", "port": 53},
            ],
        },
    ]
    if _uses_object_store(environment):
        if options.object_store_cidrs:
            peers = [{"ipBlock": {"cidr": c}} for c in options.object_store_cidrs]
        else:
            peers = [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}]
        egress.append(
            {
                "to": peers,
                "ports": [{"protocol": "TCP", "port": options.object_store_port}],
            }
        )
    if environment.evidence.redis_url or any(t.redis_role for t in environment.tenants):
        warnings.append(
            f"environment {environment.name!r}: the NetworkPolicy allows no Redis; "
            "odoo-dr run and backup do not capture Redis (odoo-dr platform backup "
            "does)"
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": _name(environment.name),
            "namespace": options.namespace,
        },
        "spec": {
            "podSelector": {
                "matchLabels": {
                    APP_LABEL: APP,
                    ENVIRONMENT_LABEL: dns_label(environment.name),
                }
            },
            # No ingress rule: the jobs accept no connections.
            "policyTypes": ["Ingress", "Egress"],
            "egress": egress,
        },
    }


# -- the whole base ---------------------------------------------------------------

# The API server rejects a ConfigMap whose data is larger than this.
MAX_CONFIG_MAP_BYTES = 1024 * 1024


def _check_claims(options: RenderOptions) -> None:
    claims = {
        "--filestore-claim": options.filestore_claim,
        "repository claim": options.repository_claim,
        "offsite claim": options.offsite_claim,
    }
    for option, claim in claims.items():
        if claim is None:
            continue
        if len(claim) > 253 or not DNS_SUBDOMAIN.fullmatch(claim):
            raise RejectedError(
                f"invalid {option} {claim!r}: Kubernetes rejects it as the name "
                "of a PersistentVolumeClaim",
                hint="use lower-case letters, digits, '-' and '.', starting and "
                "ending with a letter or digit, at most 253 characters",
            )


def _claim_names(owners: dict[str, str], names: list[str], environment: str) -> None:
    """Record the file names and ConfigMap keys of `environment` in `owners`.

    Names are lowercased and cut to DNS labels, so two environments (or an
    environment and tier joined by a dash) can map to one object, and the later
    one would silently replace the earlier.
    """
    for name in names:
        other = owners.setdefault(name, environment)
        if other != environment:
            raise RejectedError(
                f"environments {other!r} and {environment!r} map to the same "
                f"Kubernetes name ({name}), so one would replace the other",
                hint="rename one of the environments (or tiers) in the inventory "
                "so that their lowercased names differ in more than case, "
                "punctuation and dashes",
            )


def _check_config_map_size(inventories: dict[str, str]) -> None:
    size = sum(
        len(key) + len(text.encode("utf-8")) for key, text in inventories.items()
    )
    if size > MAX_CONFIG_MAP_BYTES:
        raise RejectedError(
            f"the inventory ConfigMap would hold {size} bytes, over the 1 MiB "
            f"({MAX_CONFIG_MAP_BYTES} bytes) Kubernetes accepts",
            hint="split the tenants over several inventories and render each "
            "into its own base and namespace, or use --mode run, whose ConfigMap "
            "holds each tenant once",
        )


def _environment_resources(
    inventory: Inventory,
    environment: Environment,
    options: RenderOptions,
    warnings: list[str],
) -> tuple[dict[str, dict], dict[str, str]]:
    """Return the objects (by file name) and the ConfigMap inventories (by key)
    of one environment."""
    resources: dict[str, dict] = {}
    inventories = {
        inventory_key(environment.name): _dump(
            job_inventory(inventory, environment, environment.tenants)
        )
    }
    policy = _network_policy(environment, options, warnings)
    resources[f"networkpolicy-{policy['metadata']['name']}.yaml"] = policy
    if options.mode == "run":
        resources |= _run_cronjobs(inventory, environment, options)
    else:
        resources |= _tasks_cronjobs(inventory, environment, options, inventories)
    return resources, inventories


def render(inventory: Inventory, options: RenderOptions) -> Rendered:
    """Render the Kustomize base for every environment of the inventory that has
    tenants."""
    if options.mode not in MODES:
        raise RejectedError(
            f"invalid mode {options.mode!r}", hint="choose run or tasks"
        )
    if options.mode == "run" and options.shards > 1:
        raise RejectedError(
            "--shards works only with --mode tasks: odoo-dr run takes one lock per "
            "environment, so a second shard would skip its pass",
            hint="use --jobs to work on more tenants at once, or --mode tasks",
        )
    _check_claims(options)

    environments = [e for e in inventory.environments if e.tenants]
    if not environments:
        raise RejectedError(
            "the inventory has no environment with tenants",
            hint="add tenants to an environment of the inventory",
        )

    warnings: list[str] = []
    resources: dict[str, dict] = {"serviceaccount.yaml": _service_account(options)}
    inventories: dict[str, str] = {}
    owners: dict[str, str] = {}
    for environment in environments:
        own_resources, own_inventories = _environment_resources(
            inventory, environment, options, warnings
        )
        _claim_names(owners, [*own_resources, *own_inventories], environment.name)
        resources |= own_resources
        inventories |= own_inventories
    _check_config_map_size(inventories)

    resources["configmap-inventory.yaml"] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "odoo-dr-inventory", "namespace": options.namespace},
        "data": inventories,
    }
    files = {name: _dump(document) for name, document in sorted(resources.items())}

    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": options.namespace,
        "labels": [
            {
                "pairs": {"app.kubernetes.io/part-of": APP},
                "includeSelectors": False,
            }
        ],
        "resources": sorted(files),
    }
    files["kustomization.yaml"] = _dump(kustomization)
    return Rendered(files=files, warnings=warnings)
