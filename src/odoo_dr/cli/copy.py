"""`odoo-dr copy`: copy snapshots to a second repository."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, errors, print_json, size
from odoo_dr.engine.copy import CopyOptions, CopyReport, SnapshotCopy, run_copy
from odoo_dr.errors import BackupFailed, ExitCode, KeyRejected
from odoo_dr.repository import crypto
from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)


def copy(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Path of the repository to copy into (created with odoo-dr init).",
            show_default=False,
        ),
    ],
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only snapshots of this tenant.")
    ] = None,
    snapshot: Annotated[
        str | None,
        typer.Option(
            "--snapshot",
            help="Only this snapshot, by id or a unique prefix of its id.",
            show_default=False,
        ),
    ] = None,
    repo: opt.RepoOption = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            max=64,
            help="Threads that read, compress and store blobs.",
        ),
    ] = opt.default_jobs(),
    allow_unencrypted: Annotated[
        bool,
        typer.Option(
            "--allow-unencrypted",
            help="Copy from an encrypted repository into one that is not encrypted, "
            "storing the snapshots in clear.",
        ),
    ] = False,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Copy snapshots and their drill records from --repo to --to, incrementally."""
    opt.apply_verbosity(verbose, quiet)
    source = opt.open_repository(repo)
    target = open_target(to)
    report = run_copy(
        source,
        target,
        CopyOptions(
            tenant=tenant,
            snapshot=snapshot,
            jobs=jobs,
            allow_unencrypted=allow_unencrypted,
        ),
        on_snapshot=None if as_json else _print_progress,
    )
    for snapshot_id, message in report.unreadable.items():
        errors.print(f"warning: snapshot {snapshot_id} is unreadable: {message}")
    if as_json:
        print_json(_as_json(report))
    else:
        console.out(_summary(report))
    failed = report.failed
    if failed:
        listed = "; ".join(f"{item.manifest.id}: {item.error}" for item in failed)
        raise BackupFailed(
            f"{len(failed)} snapshot(s) could not be copied, because their data is "
            f"missing or damaged in {report.source}: {listed}",
            hint="run 'odoo-dr verify' on the source; the other snapshots were copied",
        )
    if report.unreadable:
        raise typer.Exit(ExitCode.WARNINGS)


def open_target(location: str) -> Repository:
    """Open the target, with its own key if the ODOO_DR_TARGET_* variables give one."""
    try:
        return Repository.open(location, secret=_target_secret())
    except KeyRejected as exc:
        raise KeyRejected(
            f"cannot open the target of the copy: {exc.message}",
            hint=f"set ${crypto.TARGET_KEY_FILE_VARIABLE} to the target's key file or "
            f"${crypto.TARGET_PASSPHRASE_VARIABLE} to its passphrase; without them "
            "the target is opened with the source's key",
        ) from None


def _target_secret() -> bytes | None:
    """Return the target's own secret, or None to unlock it like the source."""
    variables = (crypto.TARGET_KEY_FILE_VARIABLE, crypto.TARGET_PASSPHRASE_VARIABLE)
    if not any(os.environ.get(name) for name in variables):
        return None
    return crypto.secret_from_environment(variables=variables)


def _print_progress(item: SnapshotCopy) -> None:
    manifest = item.manifest
    if item.status == "present" and not item.drills:
        # Most snapshots of a repeated copy are already there; the summary counts
        # them, and -v logs each.
        log.debug("snapshot %s is already in the target", manifest.id)
        return
    if item.status == "present":
        line = f"snapshot {manifest.id} of {manifest.tenant!r}: already in the target"
    elif item.status == "failed":
        line = f"snapshot {manifest.id} of {manifest.tenant!r}: failed: {item.error}"
    else:
        stats = item.stats
        line = (
            f"snapshot {manifest.id} of {manifest.tenant!r}: copied, sent "
            f"{stats.blobs_sent:,} blobs ({size(stats.bytes_sent)}), reused "
            f"{stats.blobs_reused:,}"
        )
    if item.drills:
        line += f", {item.drills} drill record(s)"
    errors.print(line)


def _summary(report: CopyReport) -> str:
    stats = report.stats
    return (
        f"copied {report.count('copied')} snapshot(s) to {report.target}, "
        f"{report.count('present')} already there, {report.count('failed')} failed; "
        f"sent {stats.blobs_sent:,} blobs ({size(stats.bytes_sent)}), reused "
        f"{stats.blobs_reused:,}; {report.drills} drill record(s)"
    )


def _as_json(report: CopyReport) -> dict:
    stats = report.stats
    return {
        "source": report.source,
        "target": report.target,
        "copied": report.count("copied"),
        "present": report.count("present"),
        "failed": report.count("failed"),
        "blobs_sent": stats.blobs_sent,
        "bytes_sent": stats.bytes_sent,
        "blobs_reused": stats.blobs_reused,
        "bytes_read": stats.bytes_read,
        "drills": report.drills,
        "snapshots": [
            {
                "id": item.manifest.id,
                "tenant": item.manifest.tenant,
                "status": item.status,
                "blobs_sent": item.stats.blobs_sent,
                "bytes_sent": item.stats.bytes_sent,
                "blobs_reused": item.stats.blobs_reused,
                "drills": item.drills,
                "error": item.error,
            }
            for item in report.snapshots
        ],
        "unreadable": report.unreadable,
    }
