"""`odoo-dr guard pre-deploy`, `guard post-deploy` and `rollback`: guarded releases."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.table import Table

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, duration, errors, local_time, print_json
from odoo_dr.engine import migration
from odoo_dr.engine.post_deploy import LiveCheckOptions, run_live_checks
from odoo_dr.engine.release import (
    PreDeployOptions,
    RestorePoint,
    choose_snapshot,
    load_restore_point,
    parse_duration,
    record_restore_point,
    resolve_release,
)
from odoo_dr.engine.rollback import RollbackOptions, RollbackResult, run_rollback
from odoo_dr.errors import RejectedError, VerificationFailed
from odoo_dr.odoo import inspect
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.manifest import CheckResult, SnapshotManifest

log = logging.getLogger(__name__)

guard_app = typer.Typer(
    help="Check a tenant's backups before a release and its state after it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

TenantArgument = Annotated[
    str, typer.Argument(metavar="TENANT", help="Tenant the snapshots are filed under.")
]
ReleaseOption = Annotated[
    str | None,
    typer.Option(
        "--release",
        help="Release name (a Git tag or commit). Default: $ODOO_DR_RELEASE, "
        "$CI_COMMIT_TAG, $GITHUB_REF_NAME of a tag, $CI_COMMIT_SHA, $GITHUB_SHA.",
        show_default=False,
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database of the tenant. Default: the database its snapshots came from.",
        show_default=False,
    ),
]
AddonsPathOption = Annotated[
    list[str] | None,
    typer.Option(
        "--addons-path",
        help="Addons folders of the release, separated by commas as in Odoo's "
        "addons_path (repeatable). Each module's __manifest__.py is parsed, not run.",
        show_default=False,
    ),
]
ModulesFileOption = Annotated[
    Path | None,
    typer.Option(
        "--modules-file",
        exists=True,
        dir_okay=False,
        help="Modules the release installs: a JSON object or 'name version' lines.",
        show_default=False,
    ),
]
InstallOption = Annotated[
    list[str] | None,
    typer.Option(
        "--install",
        help="Module the release installs besides upgrading the installed ones "
        "(with --addons-path; repeatable).",
        show_default=False,
    ),
]
CheckSqlOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--check-sql",
        exists=True,
        dir_okay=False,
        help="File of queries, each ending with ';', that must return no rows "
        "(repeatable).",
        show_default=False,
    ),
]


def _addons_folders(values: list[str] | None) -> list[Path]:
    folders = []
    for value in values or ():
        folders.extend(Path(part.strip()) for part in value.split(",") if part.strip())
    return folders


def _release_modules(
    before: dict[str, str | None],
    base_version: str | None,
    addons_path: list[str] | None,
    modules_file: Path | None,
    install: list[str] | None,
) -> tuple[dict[str, str | None], str] | None:
    """Return the modules the release installs and where they came from, or None."""
    folders = _addons_folders(addons_path)
    if folders and modules_file is not None:
        raise RejectedError("give --addons-path or --modules-file, not both")
    series = migration.odoo_series(base_version)
    if folders:
        available = migration.modules_from_addons_path(folders, series)
        after = migration.release_modules(before, available, install or [], True)
        return after, "--addons-path " + ",".join(str(folder) for folder in folders)
    if install:
        raise RejectedError("--install needs --addons-path")
    if modules_file is not None:
        return dict(migration.modules_from_file(modules_file, series)), str(
            modules_file
        )
    return None


def _table_map(
    settings: PgSettings, database: str, manifest: SnapshotManifest
) -> migration.TableMap:
    tables = set(manifest.row_counts)
    try:
        with settings.connect(database) as connection:
            found = migration.tables_from_database(connection, tables)
    except (psycopg.Error, RejectedError) as exc:
        log.info("cannot read ir_model of %r (%s); matching tables by name", database,
                 str(exc).strip().splitlines()[0])  # fmt: skip
        found = None
    if found is not None:
        return found
    return migration.tables_by_prefix(set(manifest.odoo.modules), tables)


def pre_deploy(
    tenant: TenantArgument,
    max_age: Annotated[
        str,
        typer.Option(
            "--max-age", help="Oldest acceptable snapshot, such as 15m, 2h or 1d."
        ),
    ] = "15m",
    take: Annotated[
        bool,
        typer.Option(
            "--take", help="Back up and drill the tenant when no snapshot qualifies."
        ),
    ] = False,
    release: ReleaseOption = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Record a new restore point when the release has one."
        ),
    ] = False,
    database: DatabaseOption = None,
    addons_path: AddonsPathOption = None,
    modules_file: ModulesFileOption = None,
    install: InstallOption = None,
    large_rows: Annotated[
        int,
        typer.Option(
            "--large-rows", min=1, help="Row count from which a table is large."
        ),
    ] = 1_000_000,
    filestore_root: opt.FilestoreRootOption = None,
    odoo_config: opt.OdooConfigOption = None,
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    jobs: opt.JobsOption = opt.default_jobs(),
    temp_dir: opt.TempDirOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Record the restore point of a release, or block it (non-zero exit).

    The tenant needs a snapshot no older than --max-age whose drill passed; --take
    backs up and drills it when it has none. Exit 2 when no snapshot qualifies, 3
    when the backup of --take fails, 5 when its drill fails.
    """
    opt.apply_verbosity(verbose, quiet)
    name, source = resolve_release(release)
    age = parse_duration(max_age)
    config = opt.load_odoo_config(odoo_config)
    repository = opt.open_repository(repo)
    settings = opt.pg_settings(dsn, config)
    existing = load_restore_point(repository, tenant, name)
    if existing is not None and not replace:
        errors.print(
            f"release {name!r} of {tenant!r} already has its restore point: snapshot "
            f"{existing.snapshot_id}, recorded {local_time(existing.recorded_at)}; "
            "kept (--replace records a new one)"
        )
        _print_point(existing, as_json, reused=True)
        return
    root, root_source = (None, None)
    if take:
        root, root_source = opt.filestore_root(filestore_root, config)
    options = PreDeployOptions(
        tenant=tenant,
        release=name,
        release_source=source,
        max_age=age,
        take=take,
        database=database,
        filestore_root=root,
        filestore_root_source=root_source,
        jobs=jobs,
        temp_dir=temp_dir,
    )
    manifest, drill = choose_snapshot(repository, settings, options)
    plan = None
    modules = _release_modules(
        manifest.odoo.modules, manifest.odoo.version, addons_path, modules_file, install
    )
    if modules is not None:
        after, modules_source = modules
        plan = migration.plan_migration(
            manifest.odoo.modules,
            after,
            modules_source,
            manifest.row_counts,
            _table_map(settings, database or manifest.database.name, manifest),
            large_rows,
        )
    point = record_restore_point(repository, options, manifest, drill, plan)
    _print_point(point, as_json, reused=False)


def _print_point(point: RestorePoint, as_json: bool, reused: bool) -> None:
    if as_json:
        data = point.model_dump(mode="json")
        data["reused"] = reused
        print_json(data)
    else:
        console.out(
            f"restore point of release {point.release!r} ({point.release_source}) of "
            f"{point.tenant!r}: snapshot {point.snapshot_id} taken "
            f"{local_time(point.snapshot_time)}, drill {point.drill_id} passed"
        )
        if point.migration is not None:
            _print_migration(point.migration)
    if point.migration is not None:
        for warning in point.migration.warnings:
            errors.print(f"warning: {warning}")


def _print_migration(plan: migration.MigrationPlan) -> None:
    if not plan.changes:
        console.out(f"no module changes version ({plan.source})")
        return
    console.out(f"modules that change ({plan.source}):")
    table = Table(box=None, pad_edge=False)
    for column in ("module", "change", "from", "to", "recorded tables"):
        table.add_column(column)
    for item in plan.changes:
        tables = ", ".join(f"{name} {rows:,}" for name, rows in item.tables.items())
        table.add_row(
            item.name, item.change, item.before or "-", item.after or "-", tables
        )
    console.print(table)
    console.out(f"tables matched to modules by {plan.table_method}")


def print_checks(checks: list[CheckResult]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("check", "result", "time", "summary"):
        table.add_column(column, justify="right" if column == "time" else "left")
    for check in checks:
        table.add_row(
            check.name,
            "ok" if check.passed else "FAILED",
            duration(check.seconds),
            check.summary,
        )
    console.print(table)
    for check in checks:
        for problem in check.problems:
            console.out(f"  {check.name}: {problem}")


def post_deploy(
    tenant: TenantArgument,
    release: ReleaseOption = None,
    database: DatabaseOption = None,
    addons_path: AddonsPathOption = None,
    modules_file: ModulesFileOption = None,
    install: InstallOption = None,
    check_sql: CheckSqlOption = None,
    filestore_root: opt.FilestoreRootOption = None,
    odoo_config: opt.OdooConfigOption = None,
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    jobs: opt.JobsOption = opt.default_jobs(),
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Check a tenant after a release; exit 5 when a check fails.

    Expected module versions come from --addons-path or --modules-file, else from
    the restore point that pre-deploy recorded with them.
    """
    opt.apply_verbosity(verbose, quiet)
    config = opt.load_odoo_config(odoo_config)
    settings = opt.pg_settings(dsn, config)
    repository = opt.open_repository(repo)
    point = None
    try:
        name, source = resolve_release(release)
    except RejectedError:
        # No release named: the checks run without a restore point's versions.
        name, source = None, None
    if name is not None:
        point = load_restore_point(repository, tenant, name)
    if point is None and release is not None:
        raise RejectedError(
            f"release {release!r} of {tenant!r} has no restore point",
            hint="run 'odoo-dr guard pre-deploy' before the deployment",
        )
    if point is None and name is not None:
        log.warning(
            "release %r (from %s) of %r has no restore point; checking without "
            "its module versions",
            name,
            source,
            tenant,
        )
    if database is None:
        latest = repository.latest_snapshot(tenant)
        if point is not None:
            database = point.database
        elif latest is not None:
            database = latest.database.name
        else:
            database = tenant
    root, root_source = opt.filestore_root(filestore_root, config)
    expected = None
    with settings.connect(database) as connection:
        with connection.cursor() as cursor:
            inspect.require_odoo_database(cursor, database)
            installed = inspect.read_modules(cursor)
            _require_filestore_folder(cursor, database, root / database, root_source)
        connection.rollback()
        before = point.modules if point is not None else installed
        modules = _release_modules(
            before, before.get("base"), addons_path, modules_file, install
        )
        if modules is not None:
            expected = modules[0]
        elif point is not None and point.migration is not None:
            expected = point.migration.expected
        checks = run_live_checks(
            connection,
            LiveCheckOptions(
                filestore_folder=root / database,
                expected_modules=expected,
                check_sql=check_sql or [],
                jobs=jobs,
            ),
        )
    passed = all(check.passed for check in checks)
    if as_json:
        print_json(
            {
                "tenant": tenant,
                "database": database,
                "release": point.release if point is not None else None,
                "passed": passed,
                "checks": [check.model_dump(mode="json") for check in checks],
            }
        )
    else:
        verdict = "PASSED" if passed else "FAILED"
        console.out(
            f"post-deploy checks of {tenant!r} (database {database!r}): {verdict}"
        )
        print_checks(checks)
    if not passed:
        failed = ", ".join(check.name for check in checks if not check.passed)
        hint = "fix the release, or roll back"
        if point is not None:
            words = ["odoo-dr", "rollback", tenant, "--to-release", point.release]
            words += ["--repo", repository.location, "--yes"]
            hint += ": " + shlex.join(words)
        raise VerificationFailed(f"post-deploy checks failed: {failed}", hint=hint)


def _require_filestore_folder(
    cursor: psycopg.Cursor, database: str, folder: Path, root_source: str
) -> None:
    """Reject a filestore root without the tenant's folder, as a backup does.

    Every referenced file missing at once means a wrong root far more often than a
    release that deleted the folder, and failing the checks would advise a rollback.
    """
    if folder.is_dir():
        return
    cursor.execute(
        "SELECT count(*) FROM ir_attachment"
        " WHERE store_fname IS NOT NULL AND store_fname <> ''"
    )
    referenced = cursor.fetchone()[0]
    if referenced:
        raise RejectedError(
            f"filestore folder {folder} not found, but {referenced:,} attachments of "
            f"{database!r} are stored in the filestore (the root comes from "
            f"{root_source})",
            hint="pass --filestore-root (the folder holding one folder per database, "
            "Odoo's <data_dir>/filestore) or --odoo-config with the right data_dir",
        )


def rollback(
    tenant: TenantArgument,
    to_release: Annotated[
        str,
        typer.Option("--to-release", help="Release whose restore point to go back to."),
    ],
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", help="Roll back without asking (required without a terminal)."
        ),
    ] = False,
    database: DatabaseOption = None,
    safety_snapshot: Annotated[
        bool,
        typer.Option(
            "--safety-snapshot/--no-safety-snapshot",
            help="Back up the current state first, so what the rollback discards "
            "stays in the repository.",
        ),
    ] = True,
    check_sql: CheckSqlOption = None,
    filestore_root: opt.FilestoreRootOption = None,
    odoo_config: opt.OdooConfigOption = None,
    repo: opt.RepoOption = None,
    dsn: opt.DsnOption = None,
    jobs: opt.JobsOption = opt.default_jobs(),
    temp_dir: opt.TempDirOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Restore the restore point of a release over the tenant, then check it.

    Takes a safety snapshot, restores as a move (database.uuid and secret kept),
    filestore included, and runs the post-deploy checks. Exit 5 when a check fails.
    """
    opt.apply_verbosity(verbose, quiet)
    config = opt.load_odoo_config(odoo_config)
    root = opt.restore_filestore_root(filestore_root, config)
    repository = opt.open_repository(repo)
    point = load_restore_point(repository, tenant, to_release)
    if point is None:
        raise RejectedError(
            f"release {to_release!r} of {tenant!r} has no restore point in "
            f"{repository.location}",
            hint="give the release that 'odoo-dr guard pre-deploy' recorded",
        )
    target = database or point.database
    if not yes:
        if not sys.stdin.isatty():
            raise RejectedError(
                f"rollback of {target!r} to release {to_release!r} needs --yes when "
                "not run from a terminal",
                hint="add --yes once the Odoo server of the tenant is stopped",
            )
        typer.confirm(
            f"Replace database {target!r} and its filestore with snapshot "
            f"{point.snapshot_id} of release {to_release!r}?",
            abort=True,
        )
    result = run_rollback(
        repository,
        opt.pg_settings(dsn, config),
        point,
        RollbackOptions(
            filestore_root=root,
            database=database,
            safety_snapshot=safety_snapshot,
            check_sql=check_sql or [],
            jobs=jobs,
            temp_dir=temp_dir,
        ),
    )
    if as_json:
        print_json(rollback_json(result))
    else:
        print_rollback(result)
    if not result.passed:
        failed = ", ".join(check.name for check in result.checks if not check.passed)
        raise VerificationFailed(
            f"rollback of {result.database!r} finished, but checks failed: {failed}",
            hint="inspect the database before reopening it to users",
        )


def rollback_json(result: RollbackResult) -> dict:
    return {
        "tenant": result.point.tenant,
        "database": result.database,
        "release": result.point.release,
        "restored_snapshot": result.point.snapshot_id,
        "safety_snapshot": result.safety_snapshot,
        "passed": result.passed,
        "checks": [check.model_dump(mode="json") for check in result.checks],
        "discarded_rows": {
            change.table: {
                "discarded": change.discarded,
                "restore_point": change.restore_point,
                "difference": change.difference,
            }
            for change in result.discarded_rows
        },
        "discarded_files": (
            None
            if result.discarded_files is None
            else {
                "discarded": result.discarded_files[0],
                "restore_point": result.discarded_files[1],
            }
        ),
        "steps": result.steps,
        "restore_steps": result.restore_steps,
    }


def print_rollback(result: RollbackResult) -> None:
    point = result.point
    console.out(
        f"rolled {result.database!r} back to release {point.release!r}: snapshot "
        f"{point.snapshot_id} of {local_time(point.snapshot_time)}"
    )
    if result.safety_snapshot is None:
        console.out("no safety snapshot: what the rollback replaced was not kept")
    else:
        console.out(
            f"safety snapshot of the replaced state: {result.safety_snapshot} "
            f"(odoo-dr restore {result.safety_snapshot} --copy ... reads it back)"
        )
        if result.discarded_rows:
            console.out(
                "rows that differ from the restore point (re-enter the transactions "
                "made after it):"
            )
            table = Table(box=None, pad_edge=False)
            for column in ("table", "discarded state", "restore point", "difference"):
                table.add_column(
                    column, justify="left" if column == "table" else "right"
                )
            for change in result.discarded_rows:
                table.add_row(
                    change.table,
                    f"{change.discarded:,}",
                    f"{change.restore_point:,}",
                    f"{change.difference:+,}",
                )
            console.print(table)
        else:
            console.out("no recorded table's row count differs from the restore point")
        if result.discarded_files is not None:
            before, after = result.discarded_files
            console.out(f"filestore: {before:,} referenced files replaced by {after:,}")
    print_checks(result.checks)
    steps = ", ".join(
        f"{name} {duration(seconds)}" for name, seconds in result.steps.items()
    )
    restore_steps = ", ".join(
        f"{name} {duration(seconds)}" for name, seconds in result.restore_steps.items()
    )
    console.out(f"steps: {steps} (restore: {restore_steps})")
