"""`odoo-dr review`: findings and a scorecard for a platform's backup architecture."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from odoo_dr.cli import review_init
from odoo_dr.cli.output import console, errors
from odoo_dr.errors import ExitCode, RejectedError
from odoo_dr.review.inventory import InventoryError, json_schema
from odoo_dr.review.model import ReviewResult, Severity

RULE_FORMATS = ("terminal", "markdown", "json")


class ReviewGroup(TyperGroup):
    """`odoo-dr review PATH` runs the review; `odoo-dr review schema` and the other
    subcommands do what their name says."""

    def parse_args(self, ctx, args):  # noqa: ANN001, ANN201 - click's signature
        if not args or (
            args[0] not in self.commands and args[0] not in ("--help", "-h")
        ):
            args = ["run", *args]
        return super().parse_args(ctx, args)


class _ReviewContext(TyperCommand.context_class):
    """The context of the review itself, whose path is the group's: usage lines and
    hints read `odoo-dr review`, without the hidden `run` that ReviewGroup inserts."""

    @property
    def command_path(self) -> str:
        return self.parent.command_path if self.parent is not None else ""


class ReviewCommand(TyperCommand):
    context_class = _ReviewContext


review_app = typer.Typer(
    cls=ReviewGroup,
    help="Review the backup and recovery architecture of an Odoo platform. "
    "Run 'odoo-dr review PATH --help' for the options of a review.",
    add_completion=False,
    rich_markup_mode=None,
)


def _use_colour() -> bool:
    """Return whether the terminal report on stdout gets colours: only on a
    terminal, and never with NO_COLOR set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _write_reports(result: ReviewResult, chosen: list[str], output: str | None) -> None:
    from odoo_dr.review.reports import SUFFIXES, renderer
    from odoo_dr.review.reports import terminal as terminal_report

    if output is None:
        name = chosen[0]
        if name == "terminal" and _use_colour():
            text = terminal_report.render(result, console.width, color=True)
        else:
            text = renderer(name)(result)
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    # A trailing slash names a folder, which is created if need be.
    folder = output.endswith(("/", os.sep))
    target = Path(output)
    if len(chosen) > 1 and target.exists() and not target.is_dir():
        raise RejectedError(
            f"{len(chosen)} report formats need a folder, and {target} is a file",
            hint="give --output a folder, or give one --format",
        )
    try:
        if len(chosen) == 1 and not folder and not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(renderer(chosen[0])(result), encoding="utf-8")
            written = [target]
        else:
            target.mkdir(parents=True, exist_ok=True)
            written = []
            for name in chosen:
                path = target / f"review{SUFFIXES[name]}"
                path.write_text(renderer(name)(result), encoding="utf-8")
                written.append(path)
    except OSError as exc:
        raise RejectedError(
            f"cannot write the report to {target}: {exc.strerror or exc}"
        ) from None
    errors.print(f"wrote {', '.join(str(path) for path in written)}")


@review_app.command("run", hidden=True, cls=ReviewCommand)
def run(
    path: Annotated[
        Path,
        typer.Argument(
            help="An inventory file, a folder holding inventory.yaml, or a folder of "
            "manifests reviewed on its own.",
            exists=True,
        ),
    ] = Path("."),
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            "-f",
            help="terminal, markdown, html, json, sarif or junit; repeat it for "
            "several reports, which need --output FOLDER. Default: terminal.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write one report to, or folder (an existing one, or a "
            "path ending in /) to write each report to as review.<suffix>. "
            "Default: stdout.",
            show_default=False,
        ),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit 5 when a failed finding that is not suppressed has this "
            "severity or a higher one: info, low, medium, high, critical.",
            show_default=False,
        ),
    ] = None,
    suppressions: Annotated[
        Path | None,
        typer.Option(
            "--suppressions",
            exists=True,
            dir_okay=False,
            help="YAML list of accepted findings: {rule, target, reason, expires}.",
            show_default=False,
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live/--no-live",
            help="Read the live PostgreSQL, Redis, S3 bucket and repository that the "
            "inventory names.",
        ),
    ] = True,
) -> None:
    """Review PATH and report findings and a scorecard.

    Exit codes: 0 the review ran (whatever it found, unless --fail-on), 2 invalid
    input (inventory, suppression file, option), 5 a failed finding at or above
    the --fail-on severity that no suppression accepts.
    """
    from odoo_dr.review.engine import ReviewOptions, load_rules, run_review
    from odoo_dr.review.model import RULES
    from odoo_dr.review.reports import FORMATS
    from odoo_dr.review.suppressions import SuppressionError, load_suppressions

    chosen = list(dict.fromkeys(formats or ["terminal"]))
    unknown = [name for name in chosen if name not in FORMATS]
    if unknown:
        raise RejectedError(
            f"unknown report format {unknown[0]!r}",
            hint=f"use one of {', '.join(FORMATS)}",
        )
    if len(chosen) > 1 and output is None:
        raise RejectedError(
            f"{len(chosen)} report formats need a folder to write them to",
            hint="add --output FOLDER, or give one --format",
        )
    threshold = None
    if fail_on is not None:
        try:
            threshold = Severity.parse(fail_on)
        except ValueError as exc:
            raise RejectedError(str(exc)) from None
    load_rules()
    try:
        accepted = (
            tuple(load_suppressions(suppressions, known_rules=RULES))
            if suppressions
            else ()
        )
        result = run_review(path, ReviewOptions(live=live, suppressions=accepted))
    except InventoryError as exc:
        raise RejectedError(
            "invalid inventory:\n  " + "\n  ".join(exc.problems),
            hint="print the inventory's JSON Schema with: odoo-dr review schema",
        ) from None
    except SuppressionError as exc:
        raise RejectedError(f"invalid suppression file: {exc}") from None

    _write_reports(result, chosen, output)
    _warn_expired(result)
    if threshold is not None:
        blocking = [item for item in result.failed() if item.severity >= threshold]
        if blocking:
            findings = "finding" if len(blocking) == 1 else "findings"
            verb = "is" if len(blocking) == 1 else "are"
            errors.print(
                f"{len(blocking)} failed {findings} at or above {threshold.label} "
                f"{verb} not suppressed (--fail-on)"
            )
            raise typer.Exit(ExitCode.VERIFICATION_FAILED)


def _warn_expired(result: ReviewResult) -> None:
    from odoo_dr.review.suppressions import SuppressionState

    for status in result.suppressions:
        if status.state is SuppressionState.EXPIRED:
            errors.print(f"warning: {status.describe()}")


@review_app.command("rules")
def rules(
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="terminal, markdown or json. The Markdown is docs/review-rules.md.",
        ),
    ] = "terminal",
) -> None:
    """List every rule with its id, area, severity, title, why and remediation."""
    from odoo_dr.review.engine import load_rules
    from odoo_dr.review.model import RULES

    if output_format not in RULE_FORMATS:
        raise RejectedError(
            f"unknown rules format {output_format!r}",
            hint=f"use one of {', '.join(RULE_FORMATS)}",
        )
    load_rules()
    catalogue = sorted(RULES.values(), key=lambda item: item.id)
    if output_format == "markdown":
        from odoo_dr.review.reports.markdown import render_rules

        sys.stdout.write(render_rules(catalogue))
    elif output_format == "json":
        from odoo_dr.review.reports.json_report import rule_dict

        sys.stdout.write(
            json.dumps([rule_dict(item) for item in catalogue], indent=2) + "\n"
        )
    else:
        from odoo_dr.review.reports.terminal import render_rules

        width = console.width if sys.stdout.isatty() else 100
        sys.stdout.write(render_rules(catalogue, width, color=_use_colour()))


@review_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the inventory."""
    console.out(json.dumps(json_schema(), indent=2))


review_app.command("init")(review_init.init)
