"""The `odoo-dr` application: commands, logging, and errors turned into exit codes."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated

import typer

from odoo_dr import __version__
from odoo_dr.cli import backup, demo, drill, repository, restore, verify
from odoo_dr.cli.options import QuietOption, VerboseOption, apply_verbosity
from odoo_dr.cli.output import errors
from odoo_dr.cli.review import review_app
from odoo_dr.errors import ExitCode, OdooDrError

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
app.add_typer(review_app, name="review")
app.command("demo")(demo.demo)


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


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    # systemd, Kubernetes and timeout(1) stop a process with SIGTERM: unwind like
    # Ctrl-C, so every cleanup step of a backup, restore or drill runs.
    raise KeyboardInterrupt


def main() -> None:
    """Run the command line and exit with the documented exit code.

    Typer (in standalone mode) reports usage errors itself, with exit code 2.
    """
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        app()
    except OdooDrError as exc:
        logging.getLogger("odoo_dr").debug("error details", exc_info=True)
        errors.print(f"odoo-dr: error: {exc.message}")
        if exc.hint:
            errors.print(f"odoo-dr: hint: {exc.hint}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        errors.print("odoo-dr: interrupted; nothing was published or left behind")
        sys.exit(130)
    except Exception as exc:
        # Engine commands turn their failures into OdooDrError; reaching this is a
        # bug, reported in one line (the traceback with -v).
        logging.getLogger("odoo_dr").debug("error details", exc_info=True)
        errors.print(f"odoo-dr: error: unexpected {type(exc).__name__}: {exc}")
        errors.print("odoo-dr: hint: run again with -v for the traceback and report it")
        sys.exit(ExitCode.REJECTED)
