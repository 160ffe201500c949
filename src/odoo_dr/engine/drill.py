"""Restore drills: restore a snapshot as a neutralized copy, check it, time it.

A drill measures the recovery time objective it achieved (restore plus checks, wall
time, per step) and the recovery point of the snapshot (its age when the drill
began), and records both in the repository.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from odoo_dr import __version__
from odoo_dr.engine.checks import run_checks
from odoo_dr.engine.restore import RestoreOptions, execute_restore, plan_restore
from odoo_dr.errors import OdooDrError, RestoreFailed
from odoo_dr.odoo.neutralize import DEFAULT_CRON_ALLOW_LIST
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.server import drop_database
from odoo_dr.repository.manifest import DrillRecord, SnapshotManifest
from odoo_dr.repository.store import Repository, new_id
from odoo_dr.timing import StepTimer

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "odoo-dr-drill-"


@dataclass(frozen=True)
class DrillOptions:
    keep: bool = False
    jobs: int = 2
    temp_dir: Path | None = None
    cron_allow_list: tuple[str, ...] = DEFAULT_CRON_ALLOW_LIST


def scratch_name(manifest: SnapshotManifest) -> str:
    return f"{SCRATCH_PREFIX}{manifest.id}-{uuid.uuid4().hex[:4]}"


def run_drill(
    repository: Repository,
    settings: PgSettings,
    manifest: SnapshotManifest,
    options: DrillOptions,
) -> DrillRecord:
    """Drill `manifest` and return the record saved in the repository.

    Raises `RejectedError` when a pre-check fails and `RestoreFailed` when the restore
    itself fails; the drill record is saved in both the passed and failed cases.
    """
    started_at = datetime.now(UTC)
    target = scratch_name(manifest)
    scratch_root = Path(tempfile.mkdtemp(prefix="odoo-dr-drill-", dir=options.temp_dir))
    restore_options = RestoreOptions(
        target=target,
        filestore_root=scratch_root,
        mode="copy",
        neutralize=True,
        force=False,
        jobs=options.jobs,
        temp_dir=options.temp_dir,
        cron_allow_list=options.cron_allow_list,
    )
    timer = StepTimer()
    checks = []
    error = None
    restored = False
    try:
        plan = plan_restore(repository, settings, manifest, restore_options)
        try:
            result = execute_restore(repository, settings, plan, timer)
            restored = True
        except RestoreFailed as exc:
            error = str(exc)
        if restored:
            with timer.step("checks"), settings.connect(target) as connection:
                checks = run_checks(
                    connection,
                    manifest,
                    result.row_counts,
                    scratch_root / target,
                    options.jobs,
                    options.cron_allow_list,
                )
                connection.rollback()
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
    if error is not None:
        raise RestoreFailed(
            f"drill {record.id} of snapshot {manifest.id} failed: {error}"
        )
    return record


def _drop_scratch(settings: PgSettings, target: str, scratch_root: Path) -> None:
    try:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            drop_database(connection, target)
    except OdooDrError as exc:
        log.error("could not drop scratch database %r: %s", target, exc)
    shutil.rmtree(scratch_root, ignore_errors=True)
