"""`odoo-dr review`: findings and a scorecard for a platform's backup architecture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from odoo_dr.cli.output import console, errors
from odoo_dr.errors import ExitCode, RejectedError
from odoo_dr.review.inventory import InventoryError, json_schema
from odoo_dr.review.model import Severity


class ReviewGroup(TyperGroup):
    """`odoo-dr review PATH` runs the review; `odoo-dr review schema` and the other
    subcommands do what their name says."""

    def parse_args(self, ctx, args):  # noqa: ANN001, ANN201 - click's signature
        if not args or (
            args[0] not in self.commands and args[0] not in ("--help", "-h")
        ):
            args = ["run", *args]
        return super().parse_args(ctx, args)


review_app = typer.Typer(
    cls=ReviewGroup,
    help="Review the backup and recovery architecture of an Odoo platform.",
    add_completion=False,
    rich_markup_mode=None,
)


@review_app.command("run", hidden=True)
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
            help="terminal, markdown, html, json, sarif or junit (repeatable).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write (one format) or folder (several). Default: stdout.",
            show_default=False,
        ),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit 5 when a failed, unsuppressed finding has this severity or "
            "higher: info, low, medium, high, critical.",
            show_default=False,
        ),
    ] = None,
    suppressions: Annotated[
        Path | None,
        typer.Option(
            "--suppressions",
            exists=True,
            dir_okay=False,
            help="YAML list of {rule, target, reason, expires}.",
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
    """Review PATH and report findings and a scorecard."""
    from odoo_dr.review.engine import ReviewOptions, run_review
    from odoo_dr.review.reports import FORMATS, SUFFIXES, renderer
    from odoo_dr.review.suppressions import SuppressionError, load_suppressions

    chosen = formats or ["terminal"]
    unknown = [name for name in chosen if name not in FORMATS]
    if unknown:
        raise RejectedError(
            f"unknown report format {unknown[0]!r}",
            hint=f"use one of {', '.join(FORMATS)}",
        )
    threshold = None
    if fail_on is not None:
        try:
            threshold = Severity.parse(fail_on)
        except ValueError as exc:
            raise RejectedError(str(exc)) from None
    try:
        accepted = tuple(load_suppressions(suppressions)) if suppressions else ()
        result = run_review(path, ReviewOptions(live=live, suppressions=accepted))
    except InventoryError as exc:
        raise RejectedError(
            "invalid inventory:\n  " + "\n  ".join(exc.problems),
            hint="print the inventory's JSON Schema with: odoo-dr review schema",
        ) from None
    except SuppressionError as exc:
        raise RejectedError(f"invalid suppression file: {exc}") from None

    rendered = {name: renderer(name)(result) for name in chosen}
    if output is None:
        for text in rendered.values():
            console.out(text)
    elif len(chosen) == 1:
        output.write_text(rendered[chosen[0]], encoding="utf-8")
    else:
        output.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (output / f"review{SUFFIXES[name]}").write_text(text, encoding="utf-8")
    if output is not None:
        errors.print(f"wrote {', '.join(chosen)} report to {output}")

    if threshold is not None:
        blocking = [item for item in result.failed() if item.severity >= threshold]
        if blocking:
            errors.print(
                f"{len(blocking)} findings at or above {threshold.label} (--fail-on)"
            )
            raise typer.Exit(ExitCode.VERIFICATION_FAILED)


@review_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the inventory."""
    console.out(json.dumps(json_schema(), indent=2))
