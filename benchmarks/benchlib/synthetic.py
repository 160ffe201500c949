"""Synthetic but valid snapshot manifests and drill records, for benchmarks that
need a repository of many tenants without backing up real databases.

Every manifest refers to blobs the caller stored once, so the repository contains
almost only the documents the benchmark reads.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from odoo_dr import __version__
from odoo_dr.repository.manifest import (
    BackupStats,
    CheckResult,
    DatabaseInfo,
    DrillRecord,
    DumpFile,
    FilestoreSummary,
    OdooInfo,
    PostgresInfo,
    SnapshotManifest,
    StoredBlob,
)
from odoo_dr.repository.store import new_id


def synthetic_manifest(
    tenant: str,
    moment: datetime,
    toc_blob: StoredBlob,
    index_blob: StoredBlob | None = None,
    day: int = 0,
    labels: dict[str, str] | None = None,
) -> SnapshotManifest:
    """Return a manifest of `tenant` at `moment` whose sizes and row counts grow
    with `day`, dumping `toc_blob` and indexing the filestore in `index_blob`."""
    dump_bytes = 50_000_000 + day * 100_000
    return SnapshotManifest(
        id=new_id(moment),
        tenant=tenant,
        started_at=moment,
        snapshot_time=moment,
        finished_at=moment + timedelta(seconds=90),
        lsn="0/16B3748",
        database=DatabaseInfo(
            name=tenant,
            encoding="UTF8",
            collate="C.UTF-8",
            ctype="C.UTF-8",
            size_bytes=dump_bytes * 3,
        ),
        postgres=PostgresInfo(
            server_version="15.10",
            server_major=15,
            pg_dump_version="15.10",
            pg_dump_major=15,
        ),
        odoo=OdooInfo(
            version="17.0", uuid=None, modules={"base": "17.0.1.3", "sale": "17.0.1.2"}
        ),
        row_counts={"res_partner": 1200 + day, "sale_order": 800 + day},
        dump=[DumpFile(name="toc.dat", size=toc_blob.size, chunks=toc_blob.chunks)],
        filestore=FilestoreSummary(
            index=index_blob or toc_blob,
            referenced_files=2000 + day,
            referenced_bytes=dump_bytes * 4,
        ),
        stats=BackupStats(
            seconds=90.0,
            dump_bytes=dump_bytes,
            files_read=20,
            files_reused=2000,
            bytes_read=1_000_000,
            new_objects=30,
            new_bytes=2_000_000,
        ),
        tool_version=__version__,
        labels=labels or {},
    )


def synthetic_drill(tenant: str, finished: datetime, passed: bool) -> DrillRecord:
    """Return a drill record of `tenant` that finished at `finished`."""
    started = finished - timedelta(minutes=10)
    return DrillRecord(
        id=new_id(finished),
        snapshot_id=new_id(started - timedelta(hours=2)),
        tenant=tenant,
        started_at=started,
        finished_at=finished,
        scratch_database=f"odoo-dr-drill-{tenant}",
        scratch_filestore=f"/tmp/odoo-dr-drill-{tenant}",
        kept=False,
        passed=passed,
        rto_seconds=600.0,
        rpo_seconds=7200.0,
        steps={"restore database and files": 540.0, "checks": 60.0},
        checks=[CheckResult(name="row counts", passed=passed, summary="synthetic")],
        tool_version=__version__,
    )
