"""`odoo-dr alerts render` and `odoo-dr grafana render`: monitoring of the metrics
that `odoo-dr serve` exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from odoo_dr.cli.output import errors
from odoo_dr.cli.platform import InventoryOption, read_inventory
from odoo_dr.errors import RejectedError
from odoo_dr.review.inventory import parse_duration
from odoo_dr.status import alerts as engine
from odoo_dr.status.grafana import build_dashboard
from odoo_dr.tempfiles import replace_text

alerts_app = typer.Typer(
    help="Prometheus alerting rules for the metrics of odoo-dr serve.",
    no_args_is_help=True,
)
grafana_app = typer.Typer(
    help="A Grafana dashboard of the metrics of odoo-dr serve.",
    no_args_is_help=True,
)

OutOption = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Write to this file. Default: stdout."),
]


def _write(text: str, out: Path | None) -> None:
    """Print `text`, or write it to `out` under a temporary name renamed into place,
    so that Prometheus or Grafana never reads half of the file."""
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        replace_text(out, text)
    except OSError as exc:
        raise RejectedError(
            f"failed to write {out}: {exc.strerror}",
            hint="give a writable path to --out",
        ) from None


def render_alerts(
    inventory: InventoryOption = None,
    out: OutOption = None,
    status_max_age: Annotated[
        str,
        typer.Option(
            "--status-max-age",
            help="Age of the server's last status refresh after which "
            "OdooDrStatusStale fires: seconds, or a number and a unit, such as 10m.",
        ),
    ] = "10m",
) -> None:
    """Write Prometheus alerting rules from the inventory's objectives and
    schedules."""
    try:
        value = status_max_age.strip()
        max_age = int(value) if value.isdigit() else parse_duration(value)
    except ValueError as exc:
        raise RejectedError(f"--status-max-age: {exc}") from None
    if max_age <= 0:
        raise RejectedError(
            f"invalid --status-max-age {status_max_age!r}: it must be above 0",
            hint="give a duration such as 10m",
        )
    loaded, _folder = read_inventory(inventory)
    text = engine.render_rules(loaded, max_age)
    _write(text, out)
    for environment, tenant in engine.tenants_without_rpo_rule(loaded):
        errors.print(
            f"warning: no RPO rule for tenant {tenant!r} of environment "
            f"{environment!r}: its tier needs point-in-time recovery, but the "
            "environment names no pgbackrest_stanza, so its WAL archive is not "
            "monitored by these rules"
        )


def render_grafana(out: OutOption = None) -> None:
    """Write a Grafana dashboard (JSON) of the metrics of odoo-dr serve."""
    text = json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"
    _write(text, out)


alerts_app.command("render")(render_alerts)
grafana_app.command("render")(render_grafana)
