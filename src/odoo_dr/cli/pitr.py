"""`odoo-dr pitr setup` and `pitr status`, and the options of point-in-time commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import age, console, duration, errors, local_time, print_json
from odoo_dr.cli.output import size as human_size
from odoo_dr.engine.pitr import PitrStatus, StatusOptions, read_status
from odoo_dr.engine.pitr_setup import (
    CIPHER_VARIABLE,
    RepoSettings,
    SetupOptions,
    apply_setup,
    plan_setup,
)
from odoo_dr.errors import ExitCode, RejectedError
from odoo_dr.pg.connection import MAINTENANCE_DATABASE
from odoo_dr.pg.pgbackrest import (
    DEFAULT_CONFIG_PATH,
    OsUser,
    PgBackRest,
    validate_stanza,
)
from odoo_dr.pg.server import server_version

pitr_app = typer.Typer(
    help="Point-in-time recovery with pgBackRest: set up, and see the window.",
    no_args_is_help=True,
)

STANZA_VARIABLE = "ODOO_DR_STANZA"
CONFIG_PATH_VARIABLE = "ODOO_DR_PGBACKREST_CONFIG_PATH"

StanzaOption = Annotated[
    str | None,
    typer.Option(
        "--stanza",
        help=f"pgBackRest stanza of the cluster. Default: ${STANZA_VARIABLE}.",
        show_default=False,
    ),
]
ConfigPathOption = Annotated[
    Path | None,
    typer.Option(
        "--pgbackrest-config-path",
        help="pgBackRest's configuration folder (pgbackrest.conf and conf.d/). "
        f"Default: ${CONFIG_PATH_VARIABLE}, else {DEFAULT_CONFIG_PATH}.",
        show_default=False,
    ),
]
OsUserOption = Annotated[
    str | None,
    typer.Option(
        "--os-user",
        help="OS user that runs pgBackRest and a recovered server when odoo-dr runs "
        "as root. Default: postgres.",
        show_default=False,
    ),
]
TargetTimeOption = Annotated[
    str | None,
    typer.Option(
        "--target-time",
        help="Time to recover to, ISO 8601 with its zone, such as "
        "2026-12-05T10:42:00Z.",
        show_default=False,
    ),
]
RecoveryTimeoutOption = Annotated[
    float,
    typer.Option(
        "--recovery-timeout",
        min=1,
        help="Seconds the WAL replay may take before the recovery is abandoned.",
    ),
]
RecoveryUserOption = Annotated[
    str,
    typer.Option(
        "--recovery-user",
        help="Database role to connect to the recovered cluster as (a superuser of "
        "the production cluster).",
    ),
]


def backrest_from_options(
    stanza: str | None, config_path: Path | None, os_user: str | None
) -> PgBackRest:
    name = stanza or os.environ.get(STANZA_VARIABLE)
    if not name:
        raise RejectedError(
            "no pgBackRest stanza given",
            hint=f"pass --stanza NAME or set {STANZA_VARIABLE}",
        )
    path = config_path or Path(
        os.environ.get(CONFIG_PATH_VARIABLE) or DEFAULT_CONFIG_PATH
    )
    return PgBackRest(validate_stanza(name), path.absolute(), OsUser.resolve(os_user))


def _cipher_pass(cipher_pass_file: Path | None) -> str:
    if cipher_pass_file is not None:
        try:
            text = cipher_pass_file.read_text().strip()
        except OSError as exc:
            raise RejectedError(
                f"cannot read --cipher-pass-file {cipher_pass_file}: "
                f"{exc.strerror or exc}",
                hint="give a file readable by the user running odoo-dr",
            ) from None
    else:
        text = os.environ.get(CIPHER_VARIABLE, "").strip()
    if len(text) < 20:
        raise RejectedError(
            "--encrypt needs a cipher passphrase of at least 20 characters",
            hint=f"set {CIPHER_VARIABLE} or pass --cipher-pass-file; make one with: "
            "openssl rand -base64 48 (keep it apart from the backups: without it "
            "they cannot be read)",
        )
    return text


def setup(
    pitr_repo: Annotated[
        str,
        typer.Option(
            "--pitr-repo",
            help="Where pgBackRest keeps base backups and WAL: an absolute folder, "
            "or s3://bucket/prefix.",
        ),
    ],
    stanza: StanzaOption = None,
    pgbackrest_config_path: ConfigPathOption = None,
    os_user: OsUserOption = None,
    pg_data: Annotated[
        Path | None,
        typer.Option(
            "--pg-data",
            help="The cluster's data folder. Default: the server's data_directory.",
            show_default=False,
        ),
    ] = None,
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt",
            help="Encrypt the pgBackRest repository (passphrase from "
            f"${CIPHER_VARIABLE} "
            "or --cipher-pass-file).",
        ),
    ] = False,
    cipher_pass_file: Annotated[
        Path | None,
        typer.Option("--cipher-pass-file", help="File holding the cipher passphrase."),
    ] = None,
    s3_endpoint: Annotated[
        str | None,
        typer.Option("--s3-endpoint", help="S3 endpoint, such as https://host:9000."),
    ] = None,
    s3_region: Annotated[
        str | None, typer.Option("--s3-region", help="S3 region of the bucket.")
    ] = None,
    s3_no_verify_tls: Annotated[
        bool,
        typer.Option(
            "--s3-no-verify-tls",
            help="Accept the endpoint's certificate unchecked (a test server).",
        ),
    ] = False,
    retention_full: Annotated[
        int,
        typer.Option("--retention-full", min=1, help="Full backups pgBackRest keeps."),
    ] = 2,
    archive_timeout: Annotated[
        int,
        typer.Option(
            "--archive-timeout",
            min=0,
            help="Seconds after which a WAL segment is archived even if not full: "
            "the most an idle server's archive lags behind.",
        ),
    ] = 60,
    log_path: Annotated[
        Path | None,
        typer.Option("--log-path", help="pgBackRest's log folder.", show_default=False),
    ] = None,
    lock_path: Annotated[
        Path | None,
        typer.Option(
            "--lock-path", help="pgBackRest's lock folder.", show_default=False
        ),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Restart PostgreSQL with pg_ctl when archive_mode or wal_level "
            "changes.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the changes and make none.")
    ] = False,
    dsn: opt.DsnOption = None,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Configure pgBackRest and WAL archiving for a cluster; take its first backup.

    Every change is listed before it is made; run again, setup changes nothing.
    Exit 1 when PostgreSQL must be restarted before archiving starts.
    """
    opt.apply_verbosity(verbose, quiet)
    backrest = backrest_from_options(stanza, pgbackrest_config_path, os_user)
    settings = opt.pg_settings(dsn, None)
    options = SetupOptions(
        repo=RepoSettings(
            location=pitr_repo,
            s3_endpoint=s3_endpoint,
            s3_region=s3_region,
            s3_verify_tls=not s3_no_verify_tls,
            cipher_pass=_cipher_pass(cipher_pass_file) if encrypt else None,
            retention_full=retention_full,
        ),
        pg_data=pg_data,
        archive_timeout=archive_timeout,
        log_path=log_path,
        lock_path=lock_path,
        restart=restart,
    )
    plan = plan_setup(backrest, settings, options)
    if not plan.changes and not plan.restart_needed:
        console.out(f"stanza {backrest.stanza}: configuration already as wanted")
    for change in plan.changes:
        console.out(f"{'would' if dry_run else 'will'}: {change.description}")
    if not plan.stanza_exists:
        console.out(
            f"{'would' if dry_run else 'will'}: create stanza {backrest.stanza}"
        )
    if not plan.has_backup:
        console.out(f"{'would' if dry_run else 'will'}: take the first full backup")
    if dry_run:
        return
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        _version, major = server_version(connection)
    result = apply_setup(backrest, settings, plan, options, major)
    for line in result.done:
        console.out(f"done: {line}")
    if result.restart_pending:
        errors.print(
            "warning: PostgreSQL must restart before "
            f"{', '.join(result.restart_pending)} "
            "takes effect; restart it, then run pitr setup again"
        )
        raise typer.Exit(ExitCode.WARNINGS)


def status(
    stanza: StanzaOption = None,
    pgbackrest_config_path: ConfigPathOption = None,
    os_user: OsUserOption = None,
    max_archive_age: Annotated[
        float | None,
        typer.Option(
            "--max-archive-age",
            min=0,
            help="Seconds since the last archived segment above which status warns.",
            show_default=False,
        ),
    ] = None,
    no_server: Annotated[
        bool,
        typer.Option(
            "--no-server",
            help="Do not connect to PostgreSQL; report from the pgBackRest repository "
            "only.",
        ),
    ] = False,
    dsn: opt.DsnOption = None,
    temp_dir: opt.TempDirOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Show base backups, the recoverable window, WAL gaps and archiving health.

    Exit 0 when the WAL chain is unbroken and archiving is healthy, 1 otherwise.
    """
    opt.apply_verbosity(verbose, quiet)
    backrest = backrest_from_options(stanza, pgbackrest_config_path, os_user)
    settings = None if no_server else opt.pg_settings(dsn, None)
    result = read_status(
        backrest,
        settings,
        StatusOptions(max_archive_age=max_archive_age, temp_dir=temp_dir),
    )
    if as_json:
        print_json(result)
    else:
        print_status(result)
    if result.warnings:
        raise typer.Exit(ExitCode.WARNINGS)


def print_status(result: PitrStatus) -> None:
    console.out(
        f"stanza {result.stanza} (PostgreSQL {result.postgres_version}, archive "
        f"{result.archive_id}): {len(result.backups)} base backups, "
        f"{result.archived_segments} archived WAL segments, newest "
        f"{result.newest_archived or 'none'}"
    )
    table = Table(box=None, pad_edge=False)
    for column in ("backup", "type", "finished", "age", "size", "stored", "WAL"):
        table.add_column(column)
    table.add_column("reaches")
    for backup in result.backups:
        chain = result.chain_of(backup.label)
        reach = (
            local_time(chain.latest_reachable) if chain.latest_reachable else "nothing"
        )
        table.add_row(
            backup.label,
            backup.type,
            local_time(backup.finished_at),
            age(backup.finished_at),
            human_size(backup.size_bytes),
            human_size(backup.repository_bytes),
            "unbroken" if chain.continuous else f"gap at {chain.first_missing}",
            reach,
        )
    if result.backups:
        console.print(table)
    if result.window is not None:
        console.out(
            f"recoverable window: {local_time(result.window.start)} to "
            f"{local_time(result.window.end)} (latest reachable time, "
            f"{result.chain_of(result.window.backup).reachable_from})"
        )
    else:
        console.out("recoverable window: none")
    archiver = result.archiver
    if archiver is not None:
        last = (
            f"{archiver.last_archived_wal} {duration(archiver.age_seconds)} ago"
            if archiver.age_seconds is not None
            else "nothing archived yet"
        )
        console.out(
            f"archiving: archive_mode={archiver.archive_mode}, "
            f"archive_timeout={archiver.archive_timeout_seconds}s, last {last}, "
            f"{archiver.failed_count} failures"
        )
    for warning in result.warnings:
        console.out(f"warning: {warning}")


pitr_app.command("setup")(setup)
pitr_app.command("status")(status)
