"""`odoo-dr prune`: remove the snapshots retention lets go, and unused packs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from odoo_dr.cli import options as opt
from odoo_dr.cli import pitr as pitr_options
from odoo_dr.cli.output import console, errors, print_json, size
from odoo_dr.engine.filestore_sync import parse_moment
from odoo_dr.engine.pitr import oldest_base_backup
from odoo_dr.engine.prune import PruneResult, TenantPlan, prune
from odoo_dr.engine.retention import RetentionPolicy, load_policies
from odoo_dr.errors import ExitCode, RejectedError


def prune_command(
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what would go and what stays; change nothing."
        ),
    ] = False,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="Remove snapshots of this tenant only (unused packs of all "
            "tenants are still deleted).",
            show_default=False,
        ),
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="YAML file of retention policies chosen by label (see "
            "docs/retention.md).",
            show_default=False,
        ),
    ] = None,
    keep_last: Annotated[
        int | None,
        typer.Option("--keep-last", min=0, help="Keep the N newest snapshots."),
    ] = None,
    keep_daily: Annotated[
        int | None,
        typer.Option(
            "--keep-daily", min=0, help="Keep the newest snapshot of the last N days."
        ),
    ] = None,
    keep_weekly: Annotated[
        int | None,
        typer.Option(
            "--keep-weekly",
            min=0,
            help="Keep the newest snapshot of the last N ISO weeks.",
        ),
    ] = None,
    keep_monthly: Annotated[
        int | None,
        typer.Option(
            "--keep-monthly",
            min=0,
            help="Keep the newest snapshot of the last N months.",
        ),
    ] = None,
    keep_yearly: Annotated[
        int | None,
        typer.Option(
            "--keep-yearly", min=0, help="Keep the newest snapshot of the last N years."
        ),
    ] = None,
    min_age: Annotated[
        str | None,
        typer.Option(
            "--min-age",
            help="Keep every snapshot younger than this, such as 12h, 7d or 2w.",
            show_default=False,
        ),
    ] = None,
    repack: Annotated[
        str | None,
        typer.Option(
            "--repack",
            help="Also rewrite each kept pack whose unused share of bytes exceeds "
            "this percentage, such as 50%, keeping only its used chunks.",
            show_default=False,
        ),
    ] = None,
    filestore_keep_since: Annotated[
        str | None,
        typer.Option(
            "--filestore-keep-since",
            metavar="TIME",
            help="Drop filestore journal entries of files gone before TIME, an ISO "
            "8601 time (UTC unless it names a time zone) or an age such as 30d. "
            "Default: keep every journal entry.",
            show_default=False,
        ),
    ] = None,
    pitr_stanza: Annotated[
        str | None,
        typer.Option(
            "--pitr-stanza",
            help="Keep the filestore journal entries that point-in-time recovery of "
            "this pgBackRest stanza may need: drop only files gone before its oldest "
            "base backup began.",
            show_default=False,
        ),
    ] = None,
    pgbackrest_config_path: pitr_options.ConfigPathOption = None,
    os_user: pitr_options.OsUserOption = None,
    ignore_damaged: Annotated[
        bool,
        typer.Option(
            "--ignore-damaged",
            help="Prune although some manifests cannot be read; packs only they "
            "need are deleted.",
        ),
    ] = False,
    repo: opt.RepoOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Remove snapshots that the retention policy lets go, then unused packs.

    A tenant's newest snapshot, its newest snapshot with a passing drill, and
    locked snapshots always stay. Exit 1 when --ignore-damaged skipped damaged
    manifests.
    """
    opt.apply_verbosity(verbose, quiet)
    flags = {
        "keep_last": keep_last,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
        "keep_yearly": keep_yearly,
        "min_age": min_age,
    }
    given = {name: value for name, value in flags.items() if value is not None}
    if policy_file is not None and given:
        raise RejectedError(
            "--policy and --keep-*/--min-age exclude each other",
            hint="put every rule into the policy file, or give only the flags",
        )
    if policy_file is not None:
        policies = load_policies(policy_file)
    elif given:
        try:
            policies = [RetentionPolicy(**given)]
        except ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise RejectedError(f"invalid --min-age: {message}") from None
    else:
        raise RejectedError(
            "no retention policy given",
            hint="give --policy FILE, or flags such as --keep-last 7 --keep-daily 14",
        )
    repack_share = _parse_share(repack) if repack is not None else None
    keep_since = None
    if filestore_keep_since is not None:
        keep_since = parse_moment(filestore_keep_since, "--filestore-keep-since")
    if pitr_stanza is not None:
        oldest = oldest_base_backup(
            pitr_options.backrest_from_options(
                pitr_stanza, pgbackrest_config_path, os_user
            )
        )
        # Of two limits, the earlier one keeps more.
        if keep_since is None or (oldest is not None and oldest < keep_since):
            keep_since = oldest
    repository = opt.open_repository(repo)
    result = prune(
        repository,
        policies,
        tenant=tenant,
        dry_run=dry_run,
        ignore_damaged=ignore_damaged,
        repack=repack_share,
        keep_since=keep_since,
    )
    if as_json:
        print_json(_as_json(result))
    else:
        _print_result(result)
    if result.damaged or result.damaged_journals:
        raise typer.Exit(ExitCode.WARNINGS)


def _parse_share(text: str) -> float:
    """Return a percentage such as '50%' or '50' as a share from 0 to 1."""
    try:
        percent = float(text.strip().removesuffix("%"))
    except ValueError:
        percent = -1.0
    if not 0 <= percent < 100:
        raise RejectedError(
            f"invalid --repack {text!r}",
            hint="give a percentage from 0 (up to 99.9), such as 50%",
        )
    return percent / 100


def _policy_name(plan: TenantPlan) -> str:
    if plan.policy is None:
        return "no policy matches"
    labels = ", ".join(f"{key}={value}" for key, value in plan.policy.match.items())
    return (
        f"policy {plan.policy_number + 1} ({labels or 'any labels'}): "
        f"{plan.policy.describe()}"
    )


def _print_result(result: PruneResult) -> None:
    verb = "would remove" if result.dry_run else "remove"
    for plan in result.tenants:
        console.out(f"tenant {plan.tenant!r}: {_policy_name(plan)}")
        for decision in plan.decisions:
            snapshot = decision.snapshot
            when = snapshot.time.strftime("%Y-%m-%d %H:%M UTC")
            if decision.keep:
                console.out(
                    f"  keep   {snapshot.id}  {when}  {'; '.join(decision.reasons)}"
                )
            else:
                console.out(f"  {verb} {snapshot.id}  {when}")
    for snapshot_id, message in sorted(result.damaged.items()):
        errors.print(
            f"warning: snapshot {snapshot_id} is damaged and stays ({message}); the "
            "packs only it needs are deleted"
        )
    drop = "would drop" if result.dry_run else "dropped"
    for journal in result.journals:
        console.out(
            f"filestore journal of {journal.tenant!r}: keep {len(journal.kept):,} "
            f"entries ({size(journal.kept_bytes)}), {drop} {len(journal.dropped):,} "
            f"({size(journal.dropped_bytes)})"
        )
    for folder, message in sorted(result.damaged_journals.items()):
        errors.print(
            f"warning: filestore journal {folder} is damaged ({message}); the packs "
            "only it needs are deleted"
        )
    for pack_id, until in sorted(result.locked_packs.items()):
        console.out(f"pack {pack_id} is unused but locked until {until.isoformat()}")
    for key, until in sorted(result.locked_index_files.items()):
        console.out(f"index file {key} stays, locked until {until.isoformat()}")
    for pack_id, message in sorted(result.repack_failed.items()):
        errors.print(f"warning: pack {pack_id} was not repacked: {message}")
    for pack_id in result.unreadable_packs:
        errors.print(
            f"warning: pack {pack_id} is in no index file and its header cannot be "
            "read; it stays"
        )
    packs = len(result.packs_to_delete)
    if result.dry_run:
        console.out(
            f"would remove {len(result.snapshots_removed)} snapshot(s) and delete "
            f"{packs} pack(s) ({size(result.bytes_to_delete)}); "
            f"{result.packs_kept} pack(s) stay"
        )
        if result.packs_to_repack:
            console.out(f"would repack {len(result.packs_to_repack)} pack(s)")
    else:
        if result.packs_to_repack:
            repacked = len(result.packs_to_repack) - len(result.repack_failed)
            console.out(
                f"repacked {repacked} pack(s) into {result.packs_written} new pack(s)"
            )
        console.out(
            f"removed {len(result.snapshots_removed)} snapshot(s), deleted "
            f"{result.packs_deleted} pack(s) ({size(result.bytes_to_delete)}) and "
            f"{result.index_files_deleted} older index file(s); "
            f"{result.packs_kept} pack(s) stay"
        )


def _as_json(result: PruneResult) -> dict:
    return {
        "dry_run": result.dry_run,
        "tenants": [
            {
                "tenant": plan.tenant,
                "policy": plan.policy_number,
                "snapshots": [
                    {
                        "id": decision.snapshot.id,
                        "time": decision.snapshot.time.isoformat(),
                        "keep": decision.keep,
                        "reasons": decision.reasons,
                    }
                    for decision in plan.decisions
                ],
            }
            for plan in result.tenants
        ],
        "snapshots_removed": result.snapshots_removed,
        "packs_to_delete": len(result.packs_to_delete),
        "bytes_to_delete": result.bytes_to_delete,
        "packs_deleted": result.packs_deleted,
        "packs_kept": result.packs_kept,
        "packs_to_repack": sorted(result.packs_to_repack),
        "repack_failed": result.repack_failed,
        "packs_written": result.packs_written,
        "locked_packs": {
            pack_id: until.isoformat() for pack_id, until in result.locked_packs.items()
        },
        "unreadable_packs": result.unreadable_packs,
        "damaged": result.damaged,
        "journals": [
            {
                "tenant": journal.tenant,
                "kept_entries": len(journal.kept),
                "kept_bytes": journal.kept_bytes,
                "dropped_entries": len(journal.dropped),
                "dropped_bytes": journal.dropped_bytes,
            }
            for journal in result.journals
        ],
        "damaged_journals": result.damaged_journals,
        "journals_rewritten": result.journals_rewritten,
    }
