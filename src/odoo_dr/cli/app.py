"""The `odoo-dr` application: commands, logging, and errors turned into exit codes."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated

import typer

from odoo_dr import __version__
from odoo_dr.cli import (
    alerts,
    archive,
    backup,
    copy,
    demo,
    drill,
    guard,
    k8s,
    pitr,
    platform,
    prune,
    repository,
    restore,
    roles,
    run,
    serve,
    verify,
)
from odoo_dr.cli import progress as progress_bar
from odoo_dr.cli.filestore import filestore_app
from odoo_dr.cli.keys import key_app
from odoo_dr.cli.options import QuietOption, VerboseOption, apply_verbosity
from odoo_dr.cli.output import errors
from odoo_dr.cli.review import review_app
from odoo_dr.errors import ExitCode, OdooDrError

# The exit code of a run stopped by SIGINT or SIGTERM, as shells report Ctrl-C.
INTERRUPTED = 130

app = typer.Typer(
    name="odoo-dr",
    help="Back up, restore and drill Odoo databases with their filestore.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("init")(repository.init)
app.command("backup")(backup.backup)
app.command("snapshots")(repository.snapshots)
app.command("restore")(restore.restore)
app.command("drill")(drill.drill)
app.command("verify")(verify.verify_command)
app.add_typer(key_app, name="key")
app.add_typer(repository.repository_app, name="repository")
app.command("prune")(prune.prune_command)
app.add_typer(filestore_app, name="filestore")
guard.guard_app.command("pre-deploy")(guard.pre_deploy)
guard.guard_app.command("post-deploy")(guard.post_deploy)
app.add_typer(guard.guard_app, name="guard")
app.command("rollback")(guard.rollback)
app.command("copy")(copy.copy)
app.command("roles")(roles.roles)
app.command("import")(archive.import_archive)
app.command("export")(archive.export_snapshot)
app.add_typer(review_app, name="review")
app.command("demo")(demo.demo)
app.add_typer(pitr.pitr_app, name="pitr")
app.add_typer(platform.platform_app, name="platform")
app.command("runbook")(platform.runbook)
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(alerts.grafana_app, name="grafana")
app.command("run")(run.run)
app.command("serve")(serve.serve)
app.add_typer(k8s.k8s_app, name="k8s")


def _version(value: bool) -> None:
    if value:
        print(f"odoo-dr {__version__}")
        raise typer.Exit()


@app.callback()
def configure(
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Back up, restore and drill Odoo databases with their filestore."""
    # The commands take -v and -q too (see options.apply_verbosity), so they work
    # after the command name as well.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("odoo-dr: %(levelname)s %(message)s"))
    root = logging.getLogger("odoo_dr")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    apply_verbosity(verbose, quiet)


# The signal that interrupted this run, for the message printed on exit.
_interrupted_by: str | None = None


def _interrupt(signum: int, _frame: object) -> None:
    # systemd, Kubernetes and timeout(1) stop a process with SIGTERM: unwind like
    # Ctrl-C, so every cleanup step of a backup, restore or drill runs. It must be a
    # KeyboardInterrupt: psycopg cancels a running query only for that or SystemExit.
    global _interrupted_by
    _interrupted_by = signal.Signals(signum).name
    raise KeyboardInterrupt


def _report_interruption() -> None:
    errors.print(
        f"odoo-dr: interrupted by {_interrupted_by or 'SIGINT'}: the run stopped and "
        "removed its temporary databases and files"
    )


def main() -> None:
    """Run the command line and exit with the documented exit code.

    Typer (in standalone mode) reports usage errors itself, with exit code 2, and
    turns a KeyboardInterrupt into exit code 130 without a message.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    progress_bar.install()
    try:
        app()
    except OdooDrError as exc:
        logging.getLogger("odoo_dr").debug("error details", exc_info=True)
        errors.print(f"odoo-dr: error: {exc.message}")
        if exc.hint:
            errors.print(f"odoo-dr: hint: {exc.hint}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _report_interruption()
        sys.exit(INTERRUPTED)
    except SystemExit as exc:
        if exc.code == INTERRUPTED and _interrupted_by is not None:
            _report_interruption()
        raise
    except Exception as exc:
        # Engine commands turn their failures into OdooDrError; reaching this is a
        # bug, reported in one line (the traceback with -v).
        logging.getLogger("odoo_dr").debug("error details", exc_info=True)
        errors.print(f"odoo-dr: error: unexpected {type(exc).__name__}: {exc}")
        errors.print("odoo-dr: hint: run again with -v for the traceback and report it")
        sys.exit(ExitCode.REJECTED)
