"""The platform description: environments, tenants, objectives and where evidence is.

The inventory is a YAML file (`odoo-dr review schema` prints its JSON Schema).
Errors name the file, the line and the field. Durations are written as `30s`, `15m`,
`4h`, `1d` or `2w`, or as a number of seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from odoo_dr.engine.business_checks import BusinessCheck, check_names_unique
from odoo_dr.review.yamlio import Location, YamlError, line_at, load_documents

_DURATION_PART = r"(\d+(?:\.\d+)?)\s*(min|[smhdw])"
_DURATION = re.compile(rf"^\s*(?:{_DURATION_PART}\s*)+$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
# 100 years. A schedule adds a duration to a date, and Python's dates end in the
# year 9999, so a larger one would make every command that reads it fail.
MAX_DURATION = 36500 * 86400


def parse_duration(value: Any) -> Any:
    """Turn `15m`-style text (or several parts, such as `1h30min`) into seconds;
    leave numbers for pydantic to check."""
    if isinstance(value, bool):
        # YAML reads `true` and `false` as booleans, which pydantic would take as
        # 1 and 0 seconds.
        raise ValueError(
            f"invalid duration {value!r}: write a number and a unit, such as 30s, "
            "15m, 90min, 4h, 1h30m, 1d or 2w"
        )
    if isinstance(value, str):
        if _DURATION.match(value) is None:
            raise ValueError(
                f"invalid duration {value!r}: write a number and a unit, such as 30s, "
                "15m, 90min, 4h, 1h30m, 1d or 2w"
            )
        parts = re.findall(_DURATION_PART, value)
        return round(sum(float(number) * _UNITS[unit] for number, unit in parts))
    return value


def _check_duration_range(seconds: int) -> int:
    if seconds < 0:
        raise ValueError(
            f"invalid duration {seconds}: a duration is a number of seconds of 0 or "
            "more, or numbers with units, such as 15m or 4h"
        )
    if seconds > MAX_DURATION:
        raise ValueError(
            f"invalid duration {format_duration(seconds)}: the maximum is 36500d "
            "(100 years)"
        )
    return seconds


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    AfterValidator(_check_duration_range),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": r"^\s*(\d+(\.\d+)?\s*(min|[smhdw])\s*)+$",
                },
                {"type": "integer", "minimum": 0, "maximum": MAX_DURATION},
            ],
            "description": "seconds, or numbers with units: 30s, 15m (or 15min), "
            "4h, 1h30m, 1d, 2w",
        }
    ),
]

# Units a duration is printed in, largest first.
_PRINT_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def format_duration(seconds: float | None) -> str:
    """Print a duration the way an inventory writes it: `45s`, `15min`, `4h`,
    `3d`, `2w`, and `1h30min` or `1d2h30min` when no single unit fits.

    A duration that is a whole number of the largest unit it reaches prints in that
    unit. Any other prints as days, hours and minutes, or as minutes and seconds
    below an hour, rounded to the smallest unit it shows.
    """
    if seconds is None:
        return "unknown"
    sign = "-" if seconds < 0 else ""
    total = abs(seconds)
    whole = round(total)
    if whole < 60:
        return f"{sign}{whole}s"
    unit, size = next(item for item in _PRINT_UNITS if item[1] <= whole)
    if whole % size == 0:
        return f"{sign}{whole // size}{unit}"
    # Below an hour, show seconds; from an hour, round to the minute.
    step = 1 if total < 3600 else 60
    remaining = round(total / step) * step
    parts = []
    for unit, size in _PRINT_UNITS[1:]:
        if size < step:
            break
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Disruption(StrEnum):
    COMPONENT_FAILURE = "component_failure"
    ZONE_LOSS = "zone_loss"
    REGION_LOSS = "region_loss"
    LOGICAL_CORRUPTION = "logical_corruption"


class Hosting(StrEnum):
    DEDICATED = "dedicated"
    MULTI_TENANT = "multi-tenant"
    HYBRID = "hybrid"


class RedisRole(StrEnum):
    CACHE = "cache"
    SESSIONS = "sessions"
    QUEUE = "queue"


class Level(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class EnvironmentKind(StrEnum):
    PRODUCTION = "production"
    STAGING = "staging"
    ANALYTICS = "analytics"
    PARTNER = "partner-facing"
    DEVELOPMENT = "development"
    DISASTER_RECOVERY = "disaster-recovery"


class Objective(Strict):
    rto: Duration = Field(description="recovery time objective")
    rpo: Duration = Field(description="recovery point objective")


class Schedule(Strict):
    """How often `odoo-dr run` performs each task; a field left out takes the
    tier's value, then the default that `effective_schedule` gives."""

    backup: Duration | None = Field(
        default=None,
        gt=0,
        description="time between snapshot backups; default: the logical-corruption "
        "RPO between 15min and 1d, or 1d where the tier needs point-in-time recovery",
    )
    verify: Duration | None = Field(
        default=None, gt=0, description="time between verify runs; default 1d"
    )
    prune: Duration | None = Field(
        default=None,
        gt=0,
        description="time between prune runs under the environment's retention; "
        "default 1d",
    )
    copy_every: Duration | None = Field(
        default=None,
        gt=0,
        alias="copy",
        description="time between copies to the environment's offsite repository; "
        "default: the backup interval",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Tier(Strict):
    """What a criticality tier promises, and how often it must be proven."""

    objectives: dict[Disruption, Objective] = Field(default_factory=dict)
    drill_every: Duration = Field(
        gt=0, description="a drill counts as tested recovery for this long"
    )
    needs_pitr: bool = Field(
        default=False, description="point-in-time recovery (WAL archiving) required"
    )
    min_replicas: int = Field(
        default=1, ge=1, description="PostgreSQL instances required"
    )
    schedule: Schedule = Field(default_factory=Schedule)


def _objectives(values: dict[str, tuple[str, str]]) -> dict[Disruption, Objective]:
    return {
        Disruption(kind): Objective(rto=parse_duration(rto), rpo=parse_duration(rpo))
        for kind, (rto, rpo) in values.items()
    }


# The tiers every inventory has, unless it redefines them. `critical` is the
# strictest; a folder reviewed without an inventory assumes it.
DEFAULT_TIERS: dict[str, Tier] = {
    "critical": Tier(
        objectives=_objectives(
            {
                "component_failure": ("15m", "5m"),
                "zone_loss": ("1h", "5m"),
                "region_loss": ("4h", "15m"),
                "logical_corruption": ("4h", "15m"),
            }
        ),
        drill_every=parse_duration("30d"),
        needs_pitr=True,
        min_replicas=2,
    ),
    "high": Tier(
        objectives=_objectives(
            {
                "component_failure": ("1h", "15m"),
                "zone_loss": ("4h", "1h"),
                "region_loss": ("8h", "4h"),
                "logical_corruption": ("8h", "4h"),
            }
        ),
        drill_every=parse_duration("90d"),
        needs_pitr=True,
        min_replicas=2,
    ),
    "standard": Tier(
        objectives=_objectives(
            {
                "component_failure": ("4h", "24h"),
                "zone_loss": ("8h", "24h"),
                "region_loss": ("24h", "24h"),
                "logical_corruption": ("24h", "24h"),
            }
        ),
        drill_every=parse_duration("180d"),
    ),
    "low": Tier(
        objectives=_objectives(
            {
                "component_failure": ("24h", "7d"),
                "zone_loss": ("3d", "7d"),
                "region_loss": ("7d", "7d"),
                "logical_corruption": ("7d", "7d"),
            }
        ),
        drill_every=parse_duration("365d"),
    ),
}
STRICTEST_TIER = "critical"


class Integration(Strict):
    kind: str = Field(description="edi, carrier, barcode, api, or another word")
    name: str


class Retention(Strict):
    keep_last: int | None = Field(default=None, ge=0)
    daily: int | None = Field(default=None, ge=0)
    weekly: int | None = Field(default=None, ge=0)
    monthly: int | None = Field(default=None, ge=0)
    yearly: int | None = Field(default=None, ge=0)
    legal_min: Duration | None = Field(
        default=None, description="the shortest time the law requires backups kept"
    )


# Messages about the live sources' addresses never repeat them, because they may
# contain a password.


def _check_dsn(value: str | None) -> str | None:
    if value is None:
        return value
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(value)
    except ProgrammingError:
        raise ValueError(
            "not a libpq connection string or URI: write key=value pairs, such as "
            "'host=db.example user=odoo_dr_review', or a URI, such as "
            "'postgresql://odoo_dr_review@db.example:5432/'"
        ) from None
    return value


def _check_redis_url(value: str | None) -> str | None:
    if value is None:
        return value
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        raise ValueError("the port of the Redis URL is not a number") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            "not a Redis URL: write redis://HOST:PORT/DB, rediss:// for TLS, or "
            "unix://PATH"
        )
    return value


def _check_endpoint(value: str | None) -> str | None:
    if value is None:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not a URL: write http:// or https:// and the host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "credentials do not belong in the URL: give them through "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile"
        )
    return value


class S3Evidence(Strict):
    bucket: str
    prefix: str = ""
    endpoint_url: Annotated[str | None, AfterValidator(_check_endpoint)] = None
    region: str | None = None


class EvidenceSources(Strict):
    """Where the review finds how the platform really is; paths are relative to the
    inventory file."""

    manifests: list[str] = Field(
        default_factory=list,
        description="folders or files of Kubernetes manifests or rendered Helm output",
    )
    compose: list[str] = Field(default_factory=list)
    odoo_conf: list[str] = Field(default_factory=list)
    prometheus_rules: list[str] = Field(default_factory=list)
    postgres_dsn: Annotated[str | None, AfterValidator(_check_dsn)] = Field(
        default=None, description="libpq connection string of the live server"
    )
    redis_url: Annotated[str | None, AfterValidator(_check_redis_url)] = None
    s3: S3Evidence | None = None
    repository: str | None = Field(
        default=None, description="an odoo-dr repository holding this environment"
    )
    git_repository: str | None = Field(
        default=None, description="where the manifests are versioned (URL or path)"
    )
    pgbackrest_stanza: str | None = Field(
        default=None,
        description="the pgBackRest stanza that archives this environment's WAL",
    )
    pgbackrest_config_path: str | None = Field(
        default=None,
        description="pgBackRest's configuration folder for that stanza; default "
        "/etc/pgbackrest",
    )


class OffsiteCopy(Strict):
    region: str
    account: str | None = None
    residency: str | None = None
    repository: str | None = Field(
        default=None,
        description="the odoo-dr repository that `odoo-dr run` copies snapshots to",
    )


def _check_name(value: str) -> str:
    """Reject a blank tenant or environment name, or one with a control character.

    An empty name would become an empty label in the alert rules, which
    Prometheus matches on every series that lacks the label.
    """
    if not value.strip():
        raise ValueError(f"invalid name {value!r}: it is empty or blank")
    if any(not character.isprintable() for character in value):
        raise ValueError(f"invalid name {value!r}: it contains a control character")
    return value


class Tenant(Strict):
    name: str = Field(description="the Odoo database name")
    tier: str = STRICTEST_TIER
    objectives: dict[Disruption, Objective] = Field(
        default_factory=dict, description="overrides the tier's objectives"
    )
    hosting: Hosting | None = None
    residency: str | None = None
    redis_role: list[RedisRole] = Field(default_factory=list)
    integrations: list[Integration] = Field(default_factory=list)
    customization: Level | None = None
    integration_load: Level | None = None
    regulated: bool = False
    sla: str | None = Field(default=None, description="the availability promised")
    runbook: str | None = Field(default=None, description="path or URL")
    checks: list[BusinessCheck] = Field(
        default_factory=list,
        description="SQL queries a drill of this tenant runs, with their expected "
        "result",
    )
    default_checks: bool = Field(
        default=True,
        description="run odoo-dr's default stock, sale and purchase checks too",
    )
    schedule: Schedule = Field(
        default_factory=Schedule, description="overrides the tier's schedule"
    )

    @field_validator("checks")
    @classmethod
    def _unique_check_names(cls, value: list[BusinessCheck]) -> list[BusinessCheck]:
        return check_names_unique(value)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value)


class Service(Strict):
    name: str
    kind: str = Field(description="postgres, redis, filestore, object-storage, ...")
    role: str | None = None


class Environment(Strict):
    name: str

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value)

    kind: EnvironmentKind = EnvironmentKind.PRODUCTION
    region: str | None = None
    zones: list[str] = Field(default_factory=list)
    hosting: Hosting = Hosting.DEDICATED
    residency: str | None = None
    evidence: EvidenceSources = Field(default_factory=EvidenceSources)
    tenants: list[Tenant] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    retention: Retention | None = None
    offsite: OffsiteCopy | None = None
    runbooks: list[str] = Field(default_factory=list)


class PriceTable(Strict):
    """Monthly price per GB stored, by storage class; change it to your provider's."""

    currency: str = "USD"
    per_gb_month: dict[str, float] = Field(
        default_factory=lambda: {
            "standard": 0.023,
            "infrequent": 0.0125,
            "archive": 0.004,
        }
    )


class Inventory(Strict):
    version: int = 1
    platform: str = Field(default="odoo platform", description="a name for reports")
    tiers: dict[str, Tier] = Field(default_factory=dict)
    environments: list[Environment]
    price_table: PriceTable = Field(default_factory=PriceTable)

    def tier(self, name: str) -> Tier:
        return self.tiers.get(name) or DEFAULT_TIERS[name]

    def objective(self, tenant: Tenant, disruption: Disruption) -> Objective | None:
        return tenant.objectives.get(disruption) or self.tier(
            tenant.tier
        ).objectives.get(disruption)


# Bounds of the default backup interval of a tenant without point-in-time recovery.
MIN_DEFAULT_BACKUP = 15 * 60
MAX_DEFAULT_BACKUP = 86400
DEFAULT_TASK_INTERVAL = 86400


@dataclass(frozen=True)
class EffectiveSchedule:
    """The intervals, in seconds, at which a tenant's tasks are due."""

    backup: int
    drill: int
    verify: int
    prune: int
    copy: int


def effective_schedule(inventory: Inventory, tenant: Tenant) -> EffectiveSchedule:
    """Return the tenant's task intervals: its own schedule, else its tier's, else
    the defaults (backups sized to the logical-corruption RPO)."""
    tier = inventory.tier(tenant.tier)
    own, shared = tenant.schedule, tier.schedule
    backup = own.backup or shared.backup
    if backup is None:
        if tier.needs_pitr:
            backup = MAX_DEFAULT_BACKUP
        else:
            objective = inventory.objective(tenant, Disruption.LOGICAL_CORRUPTION)
            rpo = objective.rpo if objective else MAX_DEFAULT_BACKUP
            backup = min(max(rpo, MIN_DEFAULT_BACKUP), MAX_DEFAULT_BACKUP)
    return EffectiveSchedule(
        backup=backup,
        drill=tier.drill_every,
        verify=own.verify or shared.verify or DEFAULT_TASK_INTERVAL,
        prune=own.prune or shared.prune or DEFAULT_TASK_INTERVAL,
        copy=own.copy_every or shared.copy_every or backup,
    )


def json_schema() -> dict:
    return Inventory.model_json_schema()


class InventoryError(ValueError):
    """An inventory that cannot be read, with every problem at its file and line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _field_path(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def load_inventory(path: Path) -> tuple[Inventory, Path]:
    """Read and check the inventory at `path`; return it and its folder."""
    try:
        documents = load_documents(path)
    except YamlError as exc:
        raise InventoryError([str(exc)]) from None
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise InventoryError(
            [f"{path}: an inventory is one YAML mapping with `environments`"]
        )
    document = documents[0]
    try:
        inventory = Inventory.model_validate(document)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(
                part for part in error["loc"] if not str(part).startswith("function-")
            )
            line = line_at(document, loc)
            where = Location(str(path), line)
            # pydantic starts the messages of validators with "Value error, ".
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {_field_path(loc) or 'inventory'}: {message}")
        raise InventoryError(problems) from None
    problems = []
    for env_index, environment in enumerate(inventory.environments):
        for tenant_index, tenant in enumerate(environment.tenants):
            if tenant.tier not in inventory.tiers and tenant.tier not in DEFAULT_TIERS:
                loc = ("environments", env_index, "tenants", tenant_index, "tier")
                where = Location(str(path), line_at(document, loc))
                known = sorted({*inventory.tiers, *DEFAULT_TIERS})
                problems.append(
                    f"{where}: {_field_path(loc)}: unknown tier {tenant.tier!r}; "
                    f"known tiers: {', '.join(known)}"
                )
    if problems:
        raise InventoryError(problems)
    return inventory, path.parent
