"""Point-in-time drills and restores: a cluster recovered to a time, tenant by tenant.

Both recover the whole cluster with pgBackRest into a private temporary folder (see
`pg.recovery`), with the filestore of each tenant assembled from the filestore
journal as it was at the target time. A drill then neutralizes and checks each
tenant where it was recovered; a restore backs the one tenant up from there into the
repository, labelled source=pitr, and restores that snapshot into the running server
with the rules of any tenant restore.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from odoo_dr import __version__, tempfiles
from odoo_dr.engine import filestore_sync
from odoo_dr.engine.backup import BackupOptions, run_backup
from odoo_dr.engine.business_checks import (
    BusinessCheck,
    checks_to_run,
    run_business_checks,
)
from odoo_dr.engine.checks import (
    check_filestore,
    check_neutralized,
    check_sequences,
    timed,
)
from odoo_dr.engine.disk_space import SpaceNeed, check_space
from odoo_dr.engine.pitr import CONSISTENCY_MARGIN, BaseBackup, PitrStatus
from odoo_dr.engine.restore import RestoreOptions, RestoreResult, run_restore
from odoo_dr.engine.restore_plan import check_target
from odoo_dr.errors import OdooDrError, RejectedError, RestoreFailed
from odoo_dr.odoo import inspect
from odoo_dr.odoo.identity import apply_copy_identity, read_identity
from odoo_dr.odoo.neutralize import DEFAULT_CRON_ALLOW_LIST, neutralize
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.names import validate_database_name
from odoo_dr.pg.pgbackrest import PgBackRest
from odoo_dr.pg.recovery import RecoveryServer
from odoo_dr.repository.manifest import CheckResult, DrillRecord
from odoo_dr.repository.store import Repository, new_id
from odoo_dr.timing import StepTimer

log = logging.getLogger(__name__)

# Room for the WAL replayed and the files written, beyond the base backup's size.
SPACE_MARGIN = 256 * 1024 * 1024
_TIME_HINT = (
    "write an ISO 8601 time with its zone, such as 2026-12-05T10:42:00Z or "
    "'2026-12-05 10:42:00+01:00'"
)


def parse_target_time(text: str) -> datetime:
    """Return `--target-time` as an aware UTC time; a time without zone is refused."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RejectedError(
            f"invalid --target-time {text!r}", hint=_TIME_HINT
        ) from None
    if moment.tzinfo is None:
        raise RejectedError(
            f"--target-time {text!r} has no time zone: the same clock time names "
            "different moments in different zones",
            hint=_TIME_HINT,
        )
    return moment.astimezone(UTC)


def _window_text(status: PitrStatus) -> str:
    if status.window is None:
        return "the stanza has no recoverable window"
    return (
        f"recoverable window {status.window.start.isoformat()} to "
        f"{status.window.end.isoformat()}"
    )


def choose_backup(status: PitrStatus, target: datetime) -> BaseBackup:
    """Return the newest base backup that recovers to `target`, or refuse the target.

    Everything is checked against the pgBackRest repository before anything is
    restored: a target in the future, at or after the last archived commit, before
    the oldest backup, or beyond a gap in the WAL is refused with exit code 2. A
    target equal to the last commit fails too, because PostgreSQL ends a recovery
    to a time only at a commit later than the target.
    """
    now = datetime.now(UTC)
    window = _window_text(status)
    latest = status.window.end.isoformat() if status.window else "none"
    if target > now:
        raise RejectedError(
            f"target time {target.isoformat()} is in the future (now "
            f"{now.isoformat()}); latest reachable time {latest}, {window}",
            hint="choose a time inside the window",
        )
    usable = []
    for backup in status.backups:
        chain = status.chain_of(backup.label)
        start = backup.finished_at + CONSISTENCY_MARGIN
        if chain.latest_reachable is not None and start <= target < (
            chain.latest_reachable
        ):
            usable.append(backup)
    if usable:
        return max(usable, key=lambda backup: backup.finished_at)
    gaps = [
        chain
        for chain in status.chains
        if not chain.continuous
        and chain.latest_reachable is not None
        and target >= chain.latest_reachable
    ]
    if gaps:
        gap = gaps[-1]
        reach = gap.latest_reachable.isoformat() if gap.latest_reachable else "none"
        raise RejectedError(
            f"target time {target.isoformat()} is beyond a gap in the WAL archive: "
            f"segment {gap.first_missing} is missing after base backup {gap.backup}, "
            f"whose latest reachable time is {reach}; {window}",
            hint="choose a time before the gap, or take a new full backup "
            "(pgbackrest backup --type=full) to start a new unbroken chain",
        )
    if status.window is not None and target >= status.window.end:
        raise RejectedError(
            f"target time {target.isoformat()} is at or later than the last archived "
            f"commit: latest reachable time {latest}, {window}, end excluded",
            hint="choose a time inside the window; a time after the last commit "
            "needs WAL that is not archived yet (check archiving with odoo-dr pitr "
            "status)",
        )
    raise RejectedError(
        f"target time {target.isoformat()} is outside the {window}",
        hint="choose a time inside the window; the window starts when the oldest "
        "base backup ended",
    )


@dataclass(frozen=True)
class PitrOptions:
    target_time: datetime
    tenants: tuple[str, ...] = ()
    jobs: int = 2
    temp_dir: Path | None = None
    database_user: str = "postgres"
    recovery_timeout: float = 24 * 3600
    cron_allow_list: tuple[str, ...] = DEFAULT_CRON_ALLOW_LIST
    checks: tuple[BusinessCheck, ...] = ()
    default_checks: bool = True


@dataclass
class Recovered:
    """A cluster recovered to a time, running in `server.folder` until cleaned up."""

    server: RecoveryServer
    backup: BaseBackup
    target: datetime
    recovered_to: datetime | None
    timer: StepTimer
    work: Path
    filestores: Path = field(init=False)

    def __post_init__(self) -> None:
        self.filestores = self.work / "filestore"


@contextmanager
def recovered_cluster(
    backrest: PgBackRest, status: PitrStatus, options: PitrOptions
) -> Iterator[Recovered]:
    """Restore and recover the cluster to the target time; remove it on exit."""
    backup = choose_backup(status, options.target_time)
    tempfiles.remove_stale(options.temp_dir)
    work = tempfiles.make_folder(options.temp_dir, "pitr")
    server: RecoveryServer | None = None
    try:
        if backrest.os_user is not None:
            backrest.os_user.check_writable(work, "the cluster is recovered")
        check_space(
            [
                SpaceNeed(
                    work,
                    "the recovered cluster",
                    "--temp-dir",
                    (backup.size_bytes + SPACE_MARGIN,),
                    0,
                )
            ]
        )
        server = RecoveryServer(
            work,
            int(status.postgres_version.split(".")[0]),
            backrest.os_user,
            options.database_user,
        )
        timer = StepTimer()
        with timer.step("restore base backup"):
            backrest.restore(
                server.data,
                backup.label,
                options.target_time.isoformat(sep=" "),
                work / "tablespaces",
                options.jobs,
            )
        with timer.step("replay WAL"):
            server.start()
            server.wait_until_promoted(options.recovery_timeout)
        recovered_to = server.last_replayed()
        log.info(
            "recovered stanza %s from %s to %s (last transaction %s)",
            backrest.stanza,
            backup.label,
            options.target_time.isoformat(),
            recovered_to.isoformat() if recovered_to else "none",
        )
        yield Recovered(server, backup, options.target_time, recovered_to, timer, work)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def odoo_databases(settings: PgSettings) -> list[str]:
    """Return the databases of a recovered cluster that hold an Odoo schema."""
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT datname FROM pg_database WHERE datallowconn"
                " AND NOT datistemplate AND datname <> 'postgres' ORDER BY datname"
            )
        ]
    found = []
    for name in names:
        with settings.connect(name, autocommit=True) as connection:
            row = connection.execute(
                "SELECT to_regclass('ir_module_module') IS NOT NULL"
            ).fetchone()
        if row and row[0]:
            found.append(name)
    return found


def assemble_filestore(
    repository: Repository,
    tenant: str,
    connection: psycopg.Connection,
    target: datetime,
    folder: Path,
    jobs: int,
) -> tuple[int, int, list[str]]:
    """Write the tenant's files as they were at `target` into `folder`.

    Files the recovered database refers to but that the journal first saw after
    the target (a sync that ran later) are written too: a file's name is its
    content's SHA-1, so any record of it is the right one.
    """
    everything = filestore_sync.journal_entries(repository, tenant)
    present = filestore_sync.files_at(repository, tenant, target)
    refs, _in_database = inspect.read_attachments(connection)
    connection.rollback()
    wanted = {ref.store_fname for ref in refs}
    late = [name for name in wanted if name not in present]
    warnings = []
    if not everything and wanted:
        warnings.append(
            f"the repository holds no filestore journal of {tenant!r}, so none of "
            f"its {len(wanted):,} referenced files can be restored: run odoo-dr "
            "filestore sync for it continuously"
        )
    if late:
        found = {name: everything[name] for name in late if name in everything}
        if found:
            warnings.append(
                f"{len(found)} referenced files were first recorded after the target "
                "time (the filestore sync ran later); they were restored from that "
                "record"
            )
        present = {**present, **found}
    folder.mkdir(parents=True, exist_ok=True)
    files, size = filestore_sync.write_files(repository, present.values(), folder, jobs)
    return files, size, warnings


def check_module_states(connection: psycopg.Connection) -> CheckResult:
    """Check that no module was caught half-way through an install or upgrade."""
    with connection.cursor() as cursor:
        if "state" not in inspect.table_columns(cursor, "ir_module_module"):
            return CheckResult(name="modules", passed=True, summary="no module table")
        cursor.execute(
            "SELECT name, state FROM ir_module_module WHERE state IN"
            " ('to install', 'to upgrade', 'to remove') ORDER BY name"
        )
        pending = [f"{name}: {state}" for name, state in cursor.fetchall()]
        cursor.execute(
            "SELECT count(*) FROM ir_module_module WHERE state = 'installed'"
        )
        installed = cursor.fetchone()[0]
    return CheckResult(
        name="modules",
        passed=not pending,
        summary=(
            f"{installed} modules installed, none half-way through a change"
            if not pending
            else f"{len(pending)} modules caught half-way through a change"
        ),
        problems=pending,
    )


def _uuid(connection: psycopg.Connection) -> str | None:
    with connection.cursor() as cursor:
        return read_identity(cursor).get("database.uuid")


def _identity_check(original: str | None, current: str | None) -> CheckResult:
    passed = not original or current != original
    return CheckResult(
        name="copy identity",
        passed=passed,
        summary=(
            "the copy has its own database.uuid"
            if passed
            else "the copy passes for the original database"
        ),
        problems=[] if passed else [f"database.uuid is still the original {original}"],
    )


def _drill_tenant(
    repository: Repository,
    recovered: Recovered,
    tenant: str,
    options: PitrOptions,
    started_at: datetime,
) -> DrillRecord:
    timer = StepTimer()
    settings = recovered.server.settings()
    folder = recovered.filestores / tenant
    checks: list[CheckResult] = []
    warnings: list[str] = []
    error = None
    try:
        with settings.connect(tenant) as connection:
            with timer.step("filestore"):
                _files, _size, notes = assemble_filestore(
                    repository,
                    tenant,
                    connection,
                    recovered.target,
                    folder,
                    options.jobs,
                )
                warnings.extend(notes)
            with (
                timer.step("identity and neutralization"),
                connection.cursor() as cursor,
            ):
                original = read_identity(cursor).get("database.uuid")
                neutralize(cursor, options.cron_allow_list)
                apply_copy_identity(cursor)
                connection.commit()
            with timer.step("checks"):
                allowed = options.cron_allow_list
                checks = [
                    timed(lambda: check_filestore(connection, folder, options.jobs)),
                    timed(lambda: check_sequences(connection)),
                    timed(lambda: check_module_states(connection)),
                    timed(lambda: check_neutralized(connection, allowed)),
                    timed(lambda: _identity_check(original, _uuid(connection))),
                ]
                connection.rollback()
                checks += run_business_checks(
                    connection, checks_to_run(options.checks, options.default_checks)
                )
    except (OdooDrError, psycopg.Error) as exc:
        error = str(exc).strip().splitlines()[0]
    shared = recovered.timer.steps
    steps = {**shared, **timer.steps}
    target = recovered.target
    return _record(
        recovered,
        tenant,
        started_at,
        scratch_filestore=str(folder),
        passed=error is None and bool(checks) and all(c.passed for c in checks),
        error=error,
        warnings=warnings,
        rto_seconds=round(sum(steps.values()), 3),
        rpo_seconds=round(
            (target - (recovered.recovered_to or target)).total_seconds(), 3
        ),
        steps=steps,
        checks=checks,
    )


def _record(
    recovered: Recovered, tenant: str, started_at: datetime, **fields: object
) -> DrillRecord:
    """Return the drill record of one tenant of a recovered cluster."""
    return DrillRecord(
        id=new_id(started_at),
        snapshot_id=f"pitr-{recovered.backup.label}",
        tenant=tenant,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        scratch_database=tenant,
        kept=False,
        tool_version=__version__,
        kind="pitr",
        target_time=recovered.target,
        recovered_to=recovered.recovered_to,
        base_backup=recovered.backup.label,
        **fields,  # type: ignore[arg-type]
    )


def run_pitr_drill(
    repository: Repository,
    backrest: PgBackRest,
    status: PitrStatus,
    options: PitrOptions,
) -> list[DrillRecord]:
    """Recover the cluster to the target time and drill each tenant; save records."""
    for tenant in options.tenants:
        validate_database_name(tenant)
    repository.check_writable("drills", "a drill saves its record under drills/")
    started_at = datetime.now(UTC)
    records = []
    with recovered_cluster(backrest, status, options) as recovered:
        available = odoo_databases(recovered.server.settings())
        tenants = list(options.tenants) or available
        if not tenants:
            raise RestoreFailed(
                "the cluster recovered to "
                f"{options.target_time.isoformat()} contains no Odoo database",
                hint="check the stanza; pass --tenant to name databases",
            )
        for tenant in tenants:
            if tenant not in available:
                record = _missing_tenant(recovered, tenant, started_at)
            else:
                record = _drill_tenant(
                    repository, recovered, tenant, options, started_at
                )
            repository.save_drill(record)
            records.append(record)
            log.info(
                "point-in-time drill %s tenant=%s passed=%s rto=%.1fs rpo=%.1fs",
                record.id,
                tenant,
                record.passed,
                record.rto_seconds,
                record.rpo_seconds,
            )
    return records


def _missing_tenant(
    recovered: Recovered, tenant: str, started_at: datetime
) -> DrillRecord:
    return _record(
        recovered,
        tenant,
        started_at,
        scratch_filestore="",
        passed=False,
        error=(
            f"database {tenant!r} does not exist in the cluster recovered to "
            f"{recovered.target.isoformat()}"
        ),
        rto_seconds=recovered.timer.total,
        rpo_seconds=0.0,
        steps=dict(recovered.timer.steps),
        checks=[],
    )


@dataclass(frozen=True)
class PitrRestoreResult:
    snapshot_id: str
    base_backup: str
    target_time: datetime
    recovered_to: datetime | None
    restore: RestoreResult
    steps: dict[str, float]


def run_pitr_restore(
    repository: Repository,
    backrest: PgBackRest,
    status: PitrStatus,
    settings: PgSettings,
    tenant: str,
    options: PitrOptions,
    restore_options: RestoreOptions,
) -> PitrRestoreResult:
    """Recover the cluster to a time and restore one tenant of it into `settings`."""
    validate_database_name(tenant)
    # The recovery may take hours: whatever the restore would refuse, refuse first.
    check_target(settings, restore_options, {tenant})
    repository.check_writable("snapshots", "a point-in-time restore stores a snapshot")
    with recovered_cluster(backrest, status, options) as recovered:
        cluster = recovered.server.settings()
        if tenant not in odoo_databases(cluster):
            raise RestoreFailed(
                f"database {tenant!r} does not exist in the cluster recovered to "
                f"{options.target_time.isoformat()}",
                hint="check the name and its case; the database may have been "
                "created after the target time",
            )
        folder = recovered.filestores / tenant
        with recovered.timer.step("filestore"), cluster.connect(tenant) as connection:
            assemble_filestore(
                repository,
                tenant,
                connection,
                options.target_time,
                folder,
                options.jobs,
            )
        with recovered.timer.step("snapshot of the recovered tenant"):
            manifest = run_backup(
                repository,
                cluster,
                BackupOptions(
                    database=tenant,
                    filestore_root=folder.parent,
                    filestore_folder=folder,
                    tenant=tenant,
                    jobs=options.jobs,
                    temp_dir=options.temp_dir,
                    snapshot_time=recovered.recovered_to or options.target_time,
                    labels={
                        "source": "pitr",
                        "target-time": options.target_time.isoformat(),
                        "base-backup": recovered.backup.label,
                    },
                ),
            )
    timer = recovered.timer
    with timer.step("restore into the server"):
        result = run_restore(repository, settings, manifest, restore_options)
    return PitrRestoreResult(
        snapshot_id=manifest.id,
        base_backup=recovered.backup.label,
        target_time=options.target_time,
        recovered_to=recovered.recovered_to,
        restore=result,
        steps=dict(timer.steps),
    )
