"""`odoo-dr filestore sync` and `filestore history`: the filestore journal."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console, errors, local_time, print_json, size
from odoo_dr.engine.filestore_sync import SyncResult, parse_moment, sync
from odoo_dr.errors import ExitCode, OdooDrError, RejectedError
from odoo_dr.pg.names import validate_database_name
from odoo_dr.repository.journal import JournalEntry, JournalReader
from odoo_dr.repository.store import Repository

log = logging.getLogger(__name__)

filestore_app = typer.Typer(
    help="Keep a journal of filestore files for point-in-time recovery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _databases(root: Path, named: list[str]) -> list[str]:
    """Return the databases to sync: those named, else every folder under `root`."""
    if named:
        return named
    try:
        # A hidden folder (".snapshot" of a NAS) holds no Odoo database.
        return sorted(
            path.name
            for path in root.iterdir()
            if path.is_dir() and not path.name.startswith(".")
        )
    except FileNotFoundError:
        raise RejectedError(
            f"filestore root {root} not found",
            hint="pass --filestore-root (Odoo's <data_dir>/filestore) or --odoo-config",
        ) from None


class _StopRequest:
    """SIGINT and SIGTERM end a watch loop after the current run.

    A second signal stops at once, as Ctrl-C does elsewhere.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None

    def __enter__(self) -> _StopRequest:
        self._saved = {
            number: signal.signal(number, self._handle)
            for number in (signal.SIGINT, signal.SIGTERM)
        }
        return self

    def _handle(self, number: int, _frame: object) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(number).name
        self.event.set()

    def __exit__(self, *_exc: object) -> None:
        for number, handler in self._saved.items():
            signal.signal(number, handler)


def _report(result: SyncResult, as_json: bool) -> None:
    if as_json:
        console.out(
            json.dumps(
                {
                    "tenant": result.tenant,
                    "folder": str(result.folder),
                    "new_files": result.new_files,
                    "new_bytes": result.new_bytes,
                    "gone_files": result.gone_files,
                    "present_files": result.present_files,
                    "problems": [item.describe() for item in result.problems],
                    "segment": result.segment,
                    "compacted": result.compacted,
                    "seconds": round(result.seconds, 3),
                }
            )
        )
        return
    problems = f", {len(result.problems)} problem(s)" if result.problems else ""
    console.out(
        f"tenant {result.tenant!r}: {result.new_files:,} new file(s) "
        f"({size(result.new_bytes)}), {result.gone_files:,} gone{problems}, "
        f"{result.present_files:,} present, {result.seconds:.2f}s"
    )
    for problem in result.problems:
        errors.print(f"warning: tenant {result.tenant!r}: {problem.describe()}")


def _run_once(
    repository: Repository,
    root: Path,
    databases: list[str],
    tenant: str | None,
    jobs: int,
    readers: dict[str, JournalReader],
    as_json: bool,
) -> int:
    """Sync every database once; return the worst exit code of the run."""
    code = ExitCode.OK
    repository.refresh()
    for database in _databases(root, databases):
        name = tenant or database
        reader = readers.setdefault(name, JournalReader(repository, name))
        reader.repository = repository
        try:
            result = sync(repository, name, root / database, jobs=jobs, reader=reader)
        except OdooDrError as exc:
            log.debug("error details", exc_info=True)
            errors.print(f"odoo-dr: error: tenant {name!r}: {exc.message}")
            if exc.hint:
                errors.print(f"odoo-dr: hint: {exc.hint}")
            code = max(code, exc.exit_code)
            continue
        _report(result, as_json)
        if result.problems:
            code = max(code, ExitCode.WARNINGS)
    return code


def sync_command(
    databases: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[DATABASE]...",
            help="Databases whose filestore folders to sync. Default: every folder "
            "under the filestore root.",
            show_default=False,
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="Name to file the journal under, for one DATABASE. Default: the "
            "database name.",
            show_default=False,
        ),
    ] = None,
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch",
            metavar="SECONDS",
            min=0.1,
            help="Sync again every SECONDS until SIGINT or SIGTERM, which end the "
            "loop after the current run.",
            show_default=False,
        ),
    ] = None,
    filestore_root: opt.FilestoreRootOption = None,
    odoo_config: opt.OdooConfigOption = None,
    repo: opt.RepoOption = None,
    jobs: opt.JobsOption = opt.default_jobs(),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per tenant and run.")
    ] = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Record new and gone filestore files in the repository's filestore journal.

    Prints one line per tenant and run. Exit 1 when files could not be recorded
    (content not matching the name), and the error's code when a tenant failed.
    """
    opt.apply_verbosity(verbose, quiet)
    databases = databases or []
    # The folder is <root>/<database>: a name such as ".." would leave the root.
    for database in databases:
        validate_database_name(database)
    if tenant is not None and len(databases) != 1:
        raise RejectedError(
            "--tenant needs exactly one DATABASE",
            hint="name the database whose journal --tenant names, or leave out "
            "--tenant to file each database under its own name",
        )
    config = opt.load_odoo_config(odoo_config)
    root, root_source = opt.filestore_root(filestore_root, config)
    log.info("filestore root %s (from %s)", root, root_source)
    repository = opt.open_repository(repo)
    readers: dict[str, JournalReader] = {}
    if watch is None:
        code = _run_once(repository, root, databases, tenant, jobs, readers, as_json)
        raise typer.Exit(code)

    code = ExitCode.OK
    with _StopRequest() as stop:
        while True:
            code = max(
                code,
                _run_once(repository, root, databases, tenant, jobs, readers, as_json),
            )
            if stop.event.wait(watch):
                break
        errors.print(f"odoo-dr: stopped by {stop.signal_name} after the current run")
    raise typer.Exit(code)


def _entry_json(entry: JournalEntry) -> dict:
    return entry.model_dump(mode="json", include={"store_fname", "size", "sha1"}) | {
        "first_seen": entry.first_seen.isoformat(),
        "mtime": entry.mtime.isoformat(),
        "gone_seen": entry.gone_seen.isoformat() if entry.gone_seen else None,
    }


def history_command(
    tenant: Annotated[
        str, typer.Argument(metavar="TENANT", help="Tenant the journal is filed under.")
    ],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="Also list the files present at TIME: ISO 8601 (UTC unless it names "
            "a time zone), or an age such as 2h.",
            show_default=False,
        ),
    ] = None,
    repo: opt.RepoOption = None,
    as_json: opt.JsonOption = False,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Show what the filestore journal of TENANT holds."""
    opt.apply_verbosity(verbose, quiet)
    moment = parse_moment(at, "--at") if at is not None else None
    repository = opt.open_repository(repo)
    state = JournalReader(repository, tenant).load()
    if not state.listed:
        raise RejectedError(
            f"tenant {tenant!r} has no filestore journal in repository "
            f"{repository.location}",
            hint="record one with: odoo-dr filestore sync DATABASE",
        )

    entries = state.entries()
    present = state.present()
    summary = {
        "tenant": tenant,
        "segments": len(state.live),
        "lifetimes": len(entries),
        "files": len(state.lifetimes),
        "bytes": sum(entry.size for entry in state.latest().values()),
        "present_files": len(present),
        "present_bytes": sum(entry.size for entry in present.values()),
        "gone_files": len(state.lifetimes) - len(present),
        "first_seen": min(entry.first_seen for entry in entries).isoformat()
        if entries
        else None,
        "problems": [item.describe() for item in state.problems.values()],
    }
    at_files = state.at(moment) if moment is not None else None

    if as_json:
        if at_files is not None:
            summary["at"] = moment.isoformat()
            summary["files_at"] = [
                _entry_json(at_files[name]) for name in sorted(at_files)
            ]
        print_json(summary)
        return
    console.out(
        f"tenant {tenant!r}: {summary['files']:,} file(s) recorded in "
        f"{summary['segments']:,} segment(s), {summary['present_files']:,} present "
        f"({size(summary['present_bytes'])}), {summary['gone_files']:,} gone"
    )
    for problem in summary["problems"]:
        console.out(f"  problem: {problem}")
    if at_files is None:
        return
    total = sum(entry.size for entry in at_files.values())
    console.out(f"{len(at_files):,} file(s) ({size(total)}) at {local_time(moment)}:")
    for name in sorted(at_files):
        entry = at_files[name]
        gone = f", gone {local_time(entry.gone_seen)}" if entry.gone_seen else ""
        console.out(
            f"  {name}  {size(entry.size)}  first seen {local_time(entry.first_seen)}"
            f"{gone}"
        )


filestore_app.command("sync")(sync_command)
filestore_app.command("history")(history_command)
