"""Restore drills: restore a snapshot as a neutralized copy, check it, time it.

A drill measures the recovery time objective it achieved (restore plus checks, wall
time, per step) and the recovery point of the snapshot (its age when the drill
began), and records both in the repository. A snapshot whose data is missing or
damaged fails its drill like one that fails a check.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from odoo_dr import __version__, tempfiles
from odoo_dr.engine.backup import check_temp_dir
from odoo_dr.engine.business_checks import (
    BusinessCheck,
    checks_to_run,
    run_business_checks,
)
from odoo_dr.engine.checks import run_checks
from odoo_dr.engine.restore import (
    RestoreOptions,
    clean_leftovers,
    execute_restore,
    plan_restore,
)
from odoo_dr.engine.stock_totals import check_stock_totals
from odoo_dr.errors import DamagedDataFound, OdooDrError, RestoreFailed, SnapshotDamaged
from odoo_dr.odoo.neutralize import DEFAULT_CRON_ALLOW_LIST
from odoo_dr.pg import temporary
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.repository.manifest import CheckResult, DrillRecord, SnapshotManifest
from odoo_dr.repository.store import Repository, new_id
from odoo_dr.timing import StepTimer

log = logging.getLogger(__name__)

SCRATCH_PREFIX = temporary.DRILL_PREFIX


@dataclass(frozen=True)
class DrillOptions:
    keep: bool = False
    jobs: int = 2
    temp_dir: Path | None = None
    cron_allow_list: tuple[str, ...] = DEFAULT_CRON_ALLOW_LIST
    checks: tuple[BusinessCheck, ...] = ()
    default_checks: bool = True


def scratch_name(manifest: SnapshotManifest) -> str:
    return f"{SCRATCH_PREFIX}{manifest.id}-{uuid.uuid4().hex[:4]}"


def _unknown_allowed_crons(
    connection: psycopg.Connection, allow_list: tuple[str, ...]
) -> list[str]:
    """Return a warning per --allow-cron XML id that names no scheduled action.

    The default allow-list is left out: the user did not type it, and a database
    without Odoo's autovacuum job (an old or partial one) needs no warning.
    """
    unknown = []
    for xml_id in allow_list:
        if xml_id in DEFAULT_CRON_ALLOW_LIST:
            continue
        module, _, name = xml_id.partition(".")
        row = connection.execute(
            "SELECT 1 FROM ir_model_data WHERE model = 'ir.cron'"
            " AND module = %s AND name = %s",
            (module, name),
        ).fetchone()
        if row is None:
            unknown.append(
                f"--allow-cron {xml_id}: no scheduled action with this XML id"
            )
    return unknown


def run_drill(
    repository: Repository,
    settings: PgSettings,
    manifest: SnapshotManifest,
    options: DrillOptions,
) -> DrillRecord:
    """Drill `manifest` and return the record saved in the repository.

    Raises `RejectedError` when the drill cannot start (the server or disk, not the
    snapshot, is at fault) and `RestoreFailed` when the restore fails for a reason
    other than damaged data; the record is saved in that case too.
    """
    started_at = datetime.now(UTC)
    target = scratch_name(manifest)
    repository.check_writable("drills", "a drill saves its record under drills/")
    check_temp_dir(repository, options.temp_dir)
    clean_leftovers(settings, None)
    tempfiles.remove_stale(options.temp_dir)
    scratch_root = tempfiles.make_folder(options.temp_dir, "drill")
    restore_options = RestoreOptions(
        target=target,
        filestore_root=scratch_root,
        mode="copy",
        neutralize=True,
        jobs=options.jobs,
        temp_dir=options.temp_dir,
        cron_allow_list=options.cron_allow_list,
        drill=True,
    )
    timer = StepTimer()
    checks: list[CheckResult] = []
    warnings: list[str] = []
    error = None
    failure: RestoreFailed | None = None
    restored = False
    try:
        try:
            plan = plan_restore(repository, settings, manifest, restore_options)
            result = execute_restore(repository, settings, plan, timer)
            restored = True
        except (SnapshotDamaged, DamagedDataFound) as exc:
            error = str(exc)
        except RestoreFailed as exc:
            error = str(exc)
            failure = exc
        if restored:
            with (
                temporary.kept_marked(settings, target, "drill"),
                timer.step("checks"),
                settings.connect(target) as connection,
            ):
                checks = run_checks(
                    connection,
                    manifest,
                    result.row_counts,
                    scratch_root / target,
                    options.jobs,
                    options.cron_allow_list,
                )
                warnings = _unknown_allowed_crons(connection, options.cron_allow_list)
                connection.rollback()
                checks += run_business_checks(
                    connection,
                    checks_to_run(options.checks, options.default_checks),
                )
                if options.default_checks:
                    checks.append(
                        _timed(lambda: check_stock_totals(connection, manifest))
                    )
                connection.rollback()
            if options.keep:
                _unmark_scratch(settings, target)
    finally:
        if not (options.keep and restored):
            _drop_scratch(settings, target, scratch_root)

    record = DrillRecord(
        id=new_id(started_at),
        snapshot_id=manifest.id,
        tenant=manifest.tenant,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        scratch_database=target,
        scratch_filestore=str(scratch_root / target),
        kept=options.keep and restored,
        passed=restored and all(check.passed for check in checks),
        error=error,
        warnings=warnings,
        rto_seconds=timer.total,
        rpo_seconds=round((started_at - manifest.snapshot_time).total_seconds(), 3),
        steps=timer.steps,
        checks=checks,
        tool_version=__version__,
    )
    repository.save_drill(record)
    log.info(
        "drill %s snapshot=%s passed=%s rto=%.1fs rpo=%.0fs",
        record.id,
        manifest.id,
        record.passed,
        record.rto_seconds,
        record.rpo_seconds,
    )
    if failure is not None:
        raise RestoreFailed(
            f"drill {record.id} of snapshot {manifest.id}: {failure.message}",
            failure.hint,
        )
    return record


def _timed(check: Callable[[], CheckResult]) -> CheckResult:
    started = time.monotonic()
    result = check()
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _unmark_scratch(settings: PgSettings, target: str) -> None:
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        temporary.clear_mark(connection, target)


def _drop_scratch(settings: PgSettings, target: str, scratch_root: Path) -> None:
    try:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            temporary.drop(connection, target)
    except (OdooDrError, psycopg.Error) as exc:
        log.error("could not drop scratch database %r: %s", target, exc)
    shutil.rmtree(scratch_root, ignore_errors=True)
