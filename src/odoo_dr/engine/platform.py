"""Whole-environment backups, restores and drills, tenant by tenant in tier order.

An environment of the inventory is recovered as a platform: its tenants' databases
and filestores, the Redis data that keeps sessions or queues, and the configuration
that ran. Tenants go in the order of their tiers (the shortest region-loss RTO
first), with at most `jobs` tenants at once inside a tier. One tenant's failure is
recorded and the others go on; the record lists which tenants are back, which are
not, and why.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from odoo_dr import tempfiles
from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.engine.drill import DrillOptions, run_drill
from odoo_dr.engine.restore import RestoreOptions, run_restore
from odoo_dr.errors import OdooDrError, RejectedError
from odoo_dr.pg.connection import PgSettings
from odoo_dr.platform import configuration as config_state
from odoo_dr.platform import redis as redis_data
from odoo_dr.platform.redis_server import TemporaryRedis, find_binary
from odoo_dr.repository.manifest import MANIFEST_VERSION
from odoo_dr.repository.store import Repository, dump_json, new_id
from odoo_dr.review.inventory import (
    Disruption,
    Environment,
    Inventory,
    RedisRole,
    Tenant,
)

log = logging.getLogger(__name__)

RECORDS = "platform/records/"
# A platform recovery is what a region loss calls for: its objectives apply.
DISRUPTION = Disruption.REGION_LOSS
Kind = Literal["backup", "restore", "drill"]


class TenantOutcome(BaseModel):
    tenant: str
    tier: str
    status: Literal["ok", "failed"]
    error: str | None = None
    hint: str | None = Field(default=None, description="what to do about the error")
    snapshot_id: str | None = None
    drill_id: str | None = None
    started_after: float = Field(description="seconds from the start of the run")
    finished_after: float = Field(
        description="seconds from the start of the run until the tenant was back "
        "(for a drill: its checks passed, before its scratch copy was removed)"
    )
    seconds: float = Field(description="time the tenant held its job slot")


class RedisOutcome(BaseModel):
    role: str
    status: Literal["captured", "restored", "not backed up", "skipped", "failed"]
    detail: str
    snapshot: dict | None = None


class TierOutcome(BaseModel):
    tier: str
    tenants: list[str]
    recovered: int
    objective_rto_seconds: float | None
    done_after_seconds: float | None = Field(
        description="seconds from the start until the tier's last tenant was back, "
        "None while one is not"
    )
    met: bool | None


class PlatformRecord(BaseModel):
    format: Literal["odoo-dr-platform"] = "odoo-dr-platform"
    version: int = MANIFEST_VERSION
    id: str
    kind: Kind
    platform: str
    environment: str
    started_at: datetime
    finished_at: datetime
    jobs: int
    source: str | None = Field(
        default=None, description="id of the platform backup restored or drilled"
    )
    tenants: list[TenantOutcome]
    tiers: list[TierOutcome] = Field(default_factory=list)
    redis: list[RedisOutcome] = Field(default_factory=list)
    configuration: str | None = Field(
        default=None, description="repository key of the configuration state"
    )
    configuration_commit: str | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def failed(self) -> list[TenantOutcome]:
        return [item for item in self.tenants if item.status != "ok"]

    @property
    def seconds(self) -> float:
        return round((self.finished_at - self.started_at).total_seconds(), 3)


def find_environment(inventory: Inventory, name: str) -> Environment:
    for environment in inventory.environments:
        if environment.name == name:
            return environment
    known = ", ".join(item.name for item in inventory.environments)
    raise RejectedError(
        f"environment {name!r} not found in the inventory",
        hint=f"choose one of: {known}",
    )


def find_populated_environment(inventory: Inventory, name: str) -> Environment:
    """Return the environment `name`, rejecting one without tenants.

    A run over no tenant would record a backup, restore or drill of nothing,
    and a drill of nothing would count as the platform's last proof.
    """
    environment = find_environment(inventory, name)
    if not environment.tenants:
        raise RejectedError(
            f"environment {name!r} has no tenants in the inventory",
            hint="list its databases under tenants: in the inventory",
        )
    return environment


def _chosen(environment: Environment, only: frozenset[str] | None) -> set[str]:
    return {
        tenant.name
        for tenant in environment.tenants
        if only is None or tenant.name in only
    }


def tier_order(
    inventory: Inventory, environment: Environment
) -> list[tuple[str, list[Tenant]]]:
    """Return the environment's tenants grouped by tier, the most urgent tier first.

    A tier's urgency is the shortest region-loss RTO among its tenants (a tenant
    may override its tier's objectives); tiers without one come last.
    """
    groups: dict[str, list[Tenant]] = {}
    for tenant in environment.tenants:
        groups.setdefault(tenant.tier, []).append(tenant)

    def urgency(item: tuple[str, list[Tenant]]) -> tuple[float, str]:
        rtos = [
            objective.rto
            for tenant in item[1]
            if (objective := inventory.objective(tenant, DISRUPTION)) is not None
        ]
        return (min(rtos) if rtos else float("inf"), item[0])

    return sorted(groups.items(), key=urgency)


def _objective_rto(inventory: Inventory, tenants: list[Tenant]) -> float | None:
    rtos = [
        objective.rto
        for tenant in tenants
        if (objective := inventory.objective(tenant, DISRUPTION)) is not None
    ]
    return min(rtos) if rtos else None


@dataclass
class _Run:
    """The clock and results of one platform run."""

    started: float = field(default_factory=time.monotonic)
    outcomes: list[TenantOutcome] = field(default_factory=list)

    def offset(self) -> float:
        return round(time.monotonic() - self.started, 3)


# Returns the snapshot id, the drill id, and the seconds after which the tenant
# was back when that is before `work` returned (a drill's clean-up comes later).
Work = Callable[[Tenant], tuple[str | None, str | None, float | None]]
# Starts a scratch Redis with at least N databases; returns its URL and a stopper.
ScratchRedis = Callable[[int], tuple[str, Callable[[], None]]]


def _run_tiers(
    inventory: Inventory,
    environment: Environment,
    jobs: int,
    work: Work,
    only: set[str] | None = None,
) -> tuple[list[TenantOutcome], list[TierOutcome]]:
    """Run `work` on every tenant, tier after tier, `jobs` tenants at a time.

    `work` returns (snapshot id, drill id, seconds until the tenant was back);
    any OdooDrError it raises is that tenant's failure, and the others go on.
    """
    run = _Run()
    tiers = []
    for tier, tenants in tier_order(inventory, environment):
        chosen = [tenant for tenant in tenants if only is None or tenant.name in only]
        if not chosen:
            continue

        def one(tenant: Tenant, tier: str = tier) -> TenantOutcome:
            started = run.offset()
            snapshot_id = drill_id = error = hint = ready = None
            try:
                snapshot_id, drill_id, ready = work(tenant)
            except OdooDrError as exc:
                error = exc.message
                hint = exc.hint
            except Exception as exc:  # noqa: BLE001 - one tenant must not stop the rest
                log.exception("tenant %r failed", tenant.name)
                error = f"{type(exc).__name__}: {exc}"
            ended = run.offset()
            finished = ended if ready is None else round(started + ready, 3)
            if error:
                log.error("tenant %r failed: %s", tenant.name, error)
            return TenantOutcome(
                tenant=tenant.name,
                tier=tier,
                status="failed" if error else "ok",
                error=error,
                hint=hint,
                snapshot_id=snapshot_id,
                drill_id=drill_id,
                started_after=started,
                finished_after=finished,
                seconds=round(ended - started, 3),
            )

        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix=tier) as pool:
            results = list(pool.map(one, chosen))
        run.outcomes.extend(results)
        recovered = [item for item in results if item.status == "ok"]
        objective = _objective_rto(inventory, chosen)
        done = (
            max(item.finished_after for item in results)
            if len(recovered) == len(results)
            else None
        )
        tiers.append(
            TierOutcome(
                tier=tier,
                tenants=[tenant.name for tenant in chosen],
                recovered=len(recovered),
                objective_rto_seconds=objective,
                done_after_seconds=done,
                met=None
                if objective is None
                else (done is not None and done <= objective),
            )
        )
    return run.outcomes, tiers


@dataclass(frozen=True)
class PlatformOptions:
    location: str
    settings: PgSettings
    filestore_root: Path
    jobs: int = 2
    tenant_jobs: int = 1
    temp_dir: Path | None = None
    redis_url: str | None = None
    only: frozenset[str] | None = None


def redis_roles(environment: Environment) -> set[RedisRole]:
    """Return the Redis roles the environment's tenants and services declare."""
    roles = {role for tenant in environment.tenants for role in tenant.redis_role}
    for service in environment.services:
        if service.kind == "redis" and service.role:
            for word in service.role.replace(",", " ").split():
                if word in RedisRole.__members__.values():
                    roles.add(RedisRole(word))
    return roles


def _save(repository: Repository, record: PlatformRecord) -> None:
    repository.write_document(
        f"{RECORDS}{record.id}.json", dump_json(record.model_dump(mode="json"))
    )


def list_records(
    repository: Repository,
    environment: str | None = None,
    kind: Kind | None = None,
    damaged: dict[str, str] | None = None,
) -> list[PlatformRecord]:
    """Return the platform records, oldest first.

    A record that cannot be read is logged, noted in `damaged` when given, and
    left out, so that one damaged record never blocks a recovery.
    """
    records = []
    for key in sorted(repository.backend.list(RECORDS)):
        try:
            record = PlatformRecord.model_validate_json(repository.read_document(key))
        except (OdooDrError, ValueError) as exc:
            message = exc.message if isinstance(exc, OdooDrError) else str(exc)
            reason = message.splitlines()[0]
            log.warning("platform record %s cannot be read: %s", key, reason)
            if damaged is not None:
                damaged[key] = reason
            continue
        if environment is not None and record.environment != environment:
            continue
        if kind is not None and record.kind != kind:
            continue
        records.append(record)
    return sorted(records, key=lambda item: item.started_at)


def find_backup(
    repository: Repository,
    environment: str,
    reference: str | None,
    tenants: set[str] | None = None,
) -> PlatformRecord:
    """Return the platform backup `reference` (an id), else the newest one.

    Without `reference`, the newest backup that worked on every one of `tenants`
    wins over a newer one taken with `--tenant` for fewer of them. A tenant whose
    backup failed counts as worked on, so a failure never brings back an older
    snapshot unnoticed.
    """
    backups = list_records(repository, environment, "backup")
    if reference is not None:
        for record in backups:
            if record.id == reference:
                return record
        raise RejectedError(
            f"platform backup {reference!r} of environment {environment!r} not found",
            hint="list them with: odoo-dr platform list ENV",
        )
    if not backups:
        raise RejectedError(
            f"no platform backup of environment {environment!r} in the repository",
            hint=f"take one first: odoo-dr platform backup {environment}",
        )
    if tenants:
        covering = [
            record
            for record in backups
            if tenants <= {item.tenant for item in record.tenants}
        ]
        if covering:
            return covering[-1]
    return backups[-1]


def _missing_hint(backup: PlatformRecord, tenant: str) -> str:
    reason = (
        "its backup failed"
        if any(item.tenant == tenant for item in backup.tenants)
        else "it was left out of that backup by --tenant"
    )
    return (
        f"{reason}; give another platform backup with --from, or restore the "
        "tenant's latest snapshot with odoo-dr restore"
    )


def platform_backup(
    inventory: Inventory,
    inventory_folder: Path,
    environment_name: str,
    options: PlatformOptions,
) -> PlatformRecord:
    """Back up every tenant of an environment, its Redis data and configuration."""
    environment = find_populated_environment(inventory, environment_name)
    started_at = datetime.now(UTC)
    record_id = new_id(started_at)
    repository = Repository.open(options.location)
    repository.check_writable("platform", "a platform backup saves its record")
    warnings: list[str] = []

    def back_up(tenant: Tenant) -> tuple[str | None, str | None, float | None]:
        own = Repository.open(options.location)
        manifest = run_backup(
            own,
            options.settings,
            BackupOptions(
                database=tenant.name,
                filestore_root=options.filestore_root,
                jobs=options.tenant_jobs,
                temp_dir=options.temp_dir,
                labels={
                    "environment": environment.name,
                    "tier": tenant.tier,
                    "platform-backup": record_id,
                },
            ),
        )
        return manifest.id, None, None

    outcomes, tiers = _run_tiers(
        inventory, environment, options.jobs, back_up, options.only
    )
    redis = _capture_redis(repository, environment, options, warnings)
    key = commit = None
    try:
        state = config_state.capture_configuration(inventory_folder, environment)
        key = config_state.save_configuration(repository, state, record_id)
        commit = state.commit
    except OdooDrError as exc:
        log.warning("configuration not captured: %s", exc.message)
        warnings.append(f"configuration not captured: {exc.message}")
    record = PlatformRecord(
        id=record_id,
        kind="backup",
        platform=inventory.platform,
        environment=environment.name,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        jobs=options.jobs,
        tenants=outcomes,
        tiers=tiers,
        redis=redis,
        configuration=key,
        configuration_commit=commit,
        warnings=warnings,
    )
    _save(repository, record)
    return record


def _capture_redis(
    repository: Repository,
    environment: Environment,
    options: PlatformOptions,
    warnings: list[str],
) -> list[RedisOutcome]:
    roles = redis_roles(environment)
    outcomes = []
    if RedisRole.CACHE in roles:
        outcomes.append(
            RedisOutcome(
                role=RedisRole.CACHE.value,
                status="not backed up",
                detail="a cache is rebuilt after a recovery, never backed up",
            )
        )
    kept = sorted(role.value for role in roles if role is not RedisRole.CACHE)
    if not kept:
        return outcomes
    url = options.redis_url or environment.evidence.redis_url
    if not url:
        warnings.append(
            f"Redis holds {', '.join(kept)} but no Redis URL is known: pass "
            "--redis-url or set evidence.redis_url in the inventory"
        )
        return [
            *outcomes,
            RedisOutcome(role="+".join(kept), status="skipped", detail="no Redis URL"),
        ]
    work = tempfiles.make_folder(options.temp_dir, "redis")
    try:
        capture = redis_data.capture_rdb(url, work / "dump.rdb")
        snapshot = redis_data.store_rdb(repository, environment.name, kept[0], capture)
        outcomes.append(
            RedisOutcome(
                role="+".join(kept),
                status="captured",
                detail=f"RDB snapshot of {snapshot.size:,} bytes",
                snapshot=snapshot.model_dump(mode="json"),
            )
        )
    except OdooDrError as exc:
        log.warning("Redis %s not captured: %s", "+".join(kept), exc.message)
        outcomes.append(
            RedisOutcome(role="+".join(kept), status="failed", detail=exc.message)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return outcomes


@dataclass(frozen=True)
class RestoreTarget:
    settings: PgSettings
    filestore_root: Path
    mode: Literal["copy", "move"] = "move"
    neutralize: bool = False
    force: bool = False
    redis_url: str | None = None
    config_out: Path | None = None


def platform_restore(
    inventory: Inventory,
    environment_name: str,
    options: PlatformOptions,
    target: RestoreTarget,
    source: str | None = None,
) -> PlatformRecord:
    """Restore a platform backup into a target, tier by tier."""
    environment = find_populated_environment(inventory, environment_name)
    if target.config_out is not None and not target.force:
        _check_config_out(target.config_out)
    repository = Repository.open(options.location)
    backup = find_backup(
        repository, environment.name, source, _chosen(environment, options.only)
    )
    snapshots = {item.tenant: item.snapshot_id for item in backup.tenants}
    started_at = datetime.now(UTC)
    warnings: list[str] = []

    def restore(tenant: Tenant) -> tuple[str | None, str | None, float | None]:
        snapshot_id = snapshots.get(tenant.name)
        if snapshot_id is None:
            raise RejectedError(
                f"platform backup {backup.id} has no snapshot of {tenant.name!r}",
                hint=_missing_hint(backup, tenant.name),
            )
        own = Repository.open(options.location)
        manifest = own.load_snapshot(snapshot_id)
        try:
            run_restore(
                own,
                target.settings,
                manifest,
                RestoreOptions(
                    target=tenant.name,
                    filestore_root=target.filestore_root,
                    mode=target.mode,
                    neutralize=target.neutralize,
                    force=target.force,
                    jobs=options.tenant_jobs,
                    temp_dir=options.temp_dir,
                ),
            )
        except RejectedError as exc:
            # A platform restore keeps the tenants' names: --target is not its option.
            if "already exists" not in exc.message:
                raise
            raise RejectedError(
                exc.message,
                hint="pass --force to replace it, or restore into another server "
                "with --to",
            ) from None
        return snapshot_id, None, None

    outcomes, tiers = _run_tiers(
        inventory, environment, options.jobs, restore, options.only
    )
    redis = _restore_redis(
        repository, backup, target.redis_url, options.temp_dir, replace=target.force
    )
    if target.config_out is not None and backup.configuration:
        try:
            state = config_state.load_configuration(repository, backup.configuration)
            config_state.write_configuration(state, target.config_out)
        except (OdooDrError, OSError) as exc:
            message = exc.message if isinstance(exc, OdooDrError) else str(exc)
            warnings.append(f"configuration not written: {message}")
    return _save_replay(
        repository,
        "restore",
        inventory,
        options,
        backup,
        started_at,
        outcomes,
        tiers,
        redis,
        warnings,
    )


def _check_config_out(folder: Path) -> None:
    """Reject a `--config-out` folder that has files, before any tenant is restored."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise RejectedError(
            f"--config-out {folder} is not an empty folder, so the configuration "
            "would overwrite files in it",
            hint="name a new or empty folder, or pass --force to overwrite files "
            "of the same name",
        )


def _save_replay(
    repository: Repository,
    kind: Kind,
    inventory: Inventory,
    options: PlatformOptions,
    backup: PlatformRecord,
    started_at: datetime,
    outcomes: list[TenantOutcome],
    tiers: list[TierOutcome],
    redis: list[RedisOutcome],
    warnings: list[str],
) -> PlatformRecord:
    """Save and return the record of a restore or drill of platform backup `backup`."""
    record = PlatformRecord(
        id=new_id(started_at),
        kind=kind,
        platform=inventory.platform,
        environment=backup.environment,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        jobs=options.jobs,
        source=backup.id,
        tenants=outcomes,
        tiers=tiers,
        redis=redis,
        configuration=backup.configuration,
        configuration_commit=backup.configuration_commit,
        warnings=warnings,
    )
    _save(repository, record)
    return record


def _restore_redis(
    repository: Repository,
    backup: PlatformRecord,
    target_url: str | None,
    temp_dir: Path | None,
    replace: bool = False,
) -> list[RedisOutcome]:
    outcomes = []
    for item in backup.redis:
        if item.snapshot is None:
            outcomes.append(
                RedisOutcome(role=item.role, status=item.status, detail=item.detail)
            )
            continue
        if target_url is None:
            outcomes.append(
                RedisOutcome(
                    role=item.role,
                    status="skipped",
                    detail="no target Redis given (--redis-url)",
                )
            )
            continue
        snapshot = redis_data.RedisSnapshot.model_validate(item.snapshot)
        work = tempfiles.make_folder(temp_dir, "redis")
        try:
            result = redis_data.restore_rdb(
                repository, snapshot, target_url, work, replace=replace
            )
            outcomes.append(
                RedisOutcome(
                    role=item.role,
                    status="restored",
                    detail=f"{sum(result.keys.values()):,} keys restored",
                )
            )
        except OdooDrError as exc:
            log.error("Redis %s not restored: %s", item.role, exc.message)
            outcomes.append(
                RedisOutcome(role=item.role, status="failed", detail=exc.message)
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return outcomes


def platform_drill(
    inventory: Inventory,
    environment_name: str,
    options: PlatformOptions,
    source: str | None = None,
    scratch_redis: ScratchRedis | None = None,
) -> PlatformRecord:
    """Drill a platform backup: every tenant neutralized into scratch, in tier order.

    `scratch_redis`, when given, starts a scratch Redis with at least the given
    number of databases and returns its URL and a stopper. The backup's Redis
    data is restored there.
    """
    environment = find_populated_environment(inventory, environment_name)
    repository = Repository.open(options.location)
    backup = find_backup(
        repository, environment.name, source, _chosen(environment, options.only)
    )
    snapshots = {item.tenant: item.snapshot_id for item in backup.tenants}
    started_at = datetime.now(UTC)

    def drill(tenant: Tenant) -> tuple[str | None, str | None, float | None]:
        snapshot_id = snapshots.get(tenant.name)
        if snapshot_id is None:
            raise RejectedError(
                f"platform backup {backup.id} has no snapshot of {tenant.name!r}",
                hint=_missing_hint(backup, tenant.name),
            )
        own = Repository.open(options.location)
        record = run_drill(
            own,
            options.settings,
            own.load_snapshot(snapshot_id),
            DrillOptions(
                jobs=options.tenant_jobs,
                temp_dir=options.temp_dir,
                checks=tuple(tenant.checks),
                default_checks=tenant.default_checks,
            ),
        )
        if not record.passed:
            failed = [check.name for check in record.checks if not check.passed]
            raise RejectedError(
                f"drill {record.id} failed: "
                + (record.error or ", ".join(failed) or "no check ran")
            )
        # The tenant was back when its checks passed: removing its scratch copy
        # afterwards is not recovery time.
        return snapshot_id, record.id, record.rto_seconds

    outcomes, tiers = _run_tiers(
        inventory, environment, options.jobs, drill, options.only
    )
    redis = _drill_redis(repository, backup, options.temp_dir, scratch_redis)
    warnings = []
    if backup.configuration:
        state = config_state.load_configuration(repository, backup.configuration)
        folder = tempfiles.make_folder(options.temp_dir, "config")
        try:
            written = config_state.write_configuration(state, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if not written:
            warnings.append("the configuration state holds no file")
    else:
        warnings.append("the platform backup holds no configuration state")
    return _save_replay(
        repository,
        "drill",
        inventory,
        options,
        backup,
        started_at,
        outcomes,
        tiers,
        redis,
        warnings,
    )


def _drill_redis(
    repository: Repository,
    backup: PlatformRecord,
    temp_dir: Path | None,
    scratch_redis: ScratchRedis | None,
) -> list[RedisOutcome]:
    snapshots = [
        redis_data.RedisSnapshot.model_validate(item.snapshot)
        for item in backup.redis
        if item.snapshot is not None
    ]
    if scratch_redis is None or not snapshots:
        return _restore_redis(repository, backup, None, temp_dir)
    databases = max(redis_data.databases_needed(item) for item in snapshots)
    try:
        url, stop = scratch_redis(databases)
    except OdooDrError as exc:
        log.error("scratch redis-server not started: %s", exc.message)
        return [
            RedisOutcome(
                role=item.role,
                status="failed" if item.snapshot is not None else item.status,
                detail=exc.message if item.snapshot is not None else item.detail,
            )
            for item in backup.redis
        ]
    try:
        return _restore_redis(repository, backup, url, temp_dir)
    finally:
        stop()


def scratch_redis(temp_dir: Path | None) -> ScratchRedis:
    """Return a starter of a scratch redis-server on 127.0.0.1 for a drill.

    The server requires a random password, like the temporary server of a Redis
    restore, since it contains the sessions or jobs of production.
    """

    def start(databases: int) -> tuple[str, Callable[[], None]]:
        binary = find_binary("redis-server", redis_data.SERVER_VARIABLE, RejectedError)
        folder = tempfiles.make_folder(temp_dir, "scratch-redis")
        server = TemporaryRedis(binary, folder, "scratch.rdb", databases)

        def stop() -> None:
            server.stop()
            shutil.rmtree(folder, ignore_errors=True)

        try:
            server.start()
        except BaseException:
            stop()
            raise
        # The URL names no db, so each db of a snapshot keeps its number.
        return f"redis://:{server.password}@127.0.0.1:{server.port}", stop

    return start


def plan_platform_records(
    repository: Repository, remaining: set[str], damaged: dict[str, str]
) -> tuple[set[str], list[str]]:
    """Return the blobs platform backups still need, and the records that go.

    A platform backup stays, with its Redis snapshot and configuration, while one
    of its tenant snapshots remains; once prune removed them all, so does it. A
    backup without any tenant snapshot (every tenant failed) stays until a newer
    backup of its environment stays. Records of restores and drills stay as
    history. A record that cannot be read is noted in `damaged`, since its blobs
    are unknown.
    """
    backups: list[tuple[str, PlatformRecord]] = []
    for key in sorted(repository.backend.list(RECORDS)):
        try:
            record = PlatformRecord.model_validate_json(repository.read_document(key))
        except (OdooDrError, ValueError) as exc:
            message = exc.message if isinstance(exc, OdooDrError) else str(exc)
            damaged[key] = f"platform record cannot be read: {message.splitlines()[0]}"
            continue
        if record.kind == "backup":
            backups.append((key, record))

    def snapshots(record: PlatformRecord) -> set[str]:
        return {item.snapshot_id for item in record.tenants if item.snapshot_id}

    newest_kept: dict[str, datetime] = {}
    for _key, record in backups:
        if snapshots(record) & remaining:
            known = newest_kept.get(record.environment)
            if known is None or record.started_at > known:
                newest_kept[record.environment] = record.started_at
    needed: set[str] = set()
    doomed: list[str] = []
    for key, record in backups:
        taken = snapshots(record)
        newer = newest_kept.get(record.environment)
        if taken and not taken & remaining:
            doomed.append(key)
            continue
        if not taken and newer is not None and newer > record.started_at:
            doomed.append(key)
            continue
        for item in record.redis:
            if item.snapshot is not None:
                needed.update(
                    redis_data.RedisSnapshot.model_validate(item.snapshot).chunks
                )
    return needed, doomed


def remove_platform_records(repository: Repository, keys: list[str]) -> None:
    """Delete platform backup records and their configuration states."""
    for key in keys:
        record = PlatformRecord.model_validate_json(repository.read_document(key))
        if record.configuration:
            repository.backend.delete(record.configuration)
        repository.backend.delete(key)
        log.info("removed platform backup %s", record.id)
