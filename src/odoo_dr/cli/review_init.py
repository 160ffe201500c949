"""`odoo-dr review init`: write a commented starting inventory from what is found."""

from __future__ import annotations

import json
import os
import re
import tempfile
import textwrap
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from odoo_dr.cli.output import console, errors
from odoo_dr.errors import OdooDrError, RejectedError
from odoo_dr.pg.connection import PgSettings
from odoo_dr.review.discover import (
    COMPOSE,
    MANIFESTS,
    ODOO_CONF,
    PROMETHEUS_RULES,
    DiscoveredEnvironment,
    Discovery,
    add_live_databases,
    discover_files,
    live_databases,
)
from odoo_dr.review.inventory import InventoryError, load_inventory
from odoo_dr.tempfiles import replace_text

_PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./@+-]*")
_RESERVED = {"yes", "no", "on", "off", "true", "false", "null", "y", "n", "~"}
_NUMBER = re.compile(r"[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?")

HEADER = """\
# Starting inventory written by `odoo-dr review init` from {folder} on {today}.
# The comment beside each value names the file or server it was found in.
# Lines marked TODO need a decision that only the owners of the platform can make:
#   - each tenant's tier: critical, high, standard or low (docs/inventory.md lists
#     what each promises), or a tier of your own under `tiers`;
#   - objectives that differ from the tier's;
#   - the region, zones and data residency of each environment and tenant.
# Check it with: odoo-dr review {inventory} --no-live
# Its JSON Schema: odoo-dr review schema
version: 1
platform: {platform}

# TODO: tiers of your own, if the default ones do not fit, such as:
# tiers:
#   gold:
#     drill_every: 30d
#     needs_pitr: true
#     min_replicas: 2
#     objectives:
#       logical_corruption: {{rto: 2h, rpo: 5m}}
"""


def yaml_scalar(text: str) -> str:
    """Return `text` as a YAML scalar: plain when that reads back as the same
    string, else double-quoted (a JSON string is a valid YAML one)."""
    if (
        _PLAIN.fullmatch(text)
        and text.lower() not in _RESERVED
        and not _NUMBER.fullmatch(text)
    ):
        return text
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(text.split())


def _comment_lines(text: str, indent: int, label: str) -> list[str]:
    """Return `text` as comment lines of at most 88 characters, the first one
    starting with `label`."""
    return textwrap.wrap(
        _comment(text),
        width=88,
        initial_indent=" " * indent + f"# {label}",
        subsequent_indent=" " * indent + "#   ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _relative(path: Path, base: Path) -> str:
    return os.path.relpath(path.resolve(), base.resolve())


def _shown(path: Path) -> str:
    """Return `path` relative to the working folder when inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def _relocate(discovery: Discovery, base: Path) -> None:
    """Rewrite the `folder/...` file names in the notes of `discovery` relative to
    `base`, the folder the inventory is written to, as its evidence paths are."""
    prefix = _relative(discovery.folder, base)
    replacement = "" if prefix == "." else f"{prefix}/"
    spellings = {str(discovery.folder), str(discovery.folder.resolve())}

    def relative(text: str) -> str:
        for spelling in spellings:
            text = text.replace(f"{spelling.rstrip('/')}/", replacement)
        return text

    discovery.notes = [relative(note) for note in discovery.notes]
    discovery.problems = [relative(problem) for problem in discovery.problems]
    for environment in discovery.environments:
        environment.notes = [relative(note) for note in environment.notes]
        for service in environment.services:
            service.source = relative(service.source)
        for tenant in environment.tenants.values():
            tenant.sources = [relative(source) for source in tenant.sources]


def _environment_lines(environment: DiscoveredEnvironment, base: Path) -> list[str]:
    lines = [f"  - name: {yaml_scalar(environment.name)}"]
    if environment.kind is not None:
        lines.append(
            f"    kind: {environment.kind.value}  # from the name "
            f"{environment.name!r} in file paths or namespaces"
        )
    else:
        lines.append(
            "    kind: production  # TODO: production, staging, analytics, "
            "partner-facing, development or disaster-recovery"
        )
    lines.append(
        "    # TODO: region and zones, such as region: eu-central-1 and\n"
        "    # zones: [eu-central-1a, eu-central-1b]"
    )
    if environment.shared_odoo or len(environment.tenants) > 1:
        lines.append(
            "    # TODO: hosting is dedicated when each database has an Odoo of its "
            "own,\n    # hybrid when only the database server is shared\n"
            "    hosting: multi-tenant  # one Odoo serves several databases"
        )
    else:
        lines.append(
            "    hosting: dedicated  # TODO: dedicated, multi-tenant or hybrid"
        )
    lines.append(
        "    # TODO: residency: where this environment's data must stay (EU, CH, ...)"
    )
    lines += _evidence_lines(environment, base)
    if environment.services:
        lines.append("    services:")
        for service in environment.services:
            lines.append(
                f"      - {{name: {yaml_scalar(service.name)}, kind: {service.kind}}}"
                f"  # {_comment(service.source)}"
            )
    lines += [
        "    # TODO: retention of the backups (keep_last, daily, weekly, monthly,",
        "    # yearly, legal_min), the offsite copy (region, account, residency) and",
        "    # runbooks (paths or URLs of the restore procedures).",
    ]
    for note in environment.notes:
        lines += _comment_lines(note, 4, "TODO: ")
    lines += _tenant_lines(environment)
    return lines


def _evidence_lines(environment: DiscoveredEnvironment, base: Path) -> list[str]:
    lines = []
    for category in (MANIFESTS, COMPOSE, ODOO_CONF, PROMETHEUS_RULES):
        paths = environment.files[category]
        if paths:
            lines.append(f"      {category}:")
            lines += [f"        - {yaml_scalar(_relative(p, base))}" for p in paths]
    if environment.postgres_dsn:
        lines.append(
            f"      postgres_dsn: {yaml_scalar(environment.postgres_dsn)}"
            "  # the password comes from PGPASSWORD or ~/.pgpass"
        )
    todo = (
        "      # TODO: redis_url, s3 (bucket, region, endpoint_url) and repository\n"
        "      # (an odoo-dr repository), where they exist"
    )
    if not lines:
        return ["    evidence: {}", todo]
    return ["    evidence:", *lines, todo]


def _tenant_lines(environment: DiscoveredEnvironment) -> list[str]:
    if not environment.tenants:
        return [
            "    # TODO: no database name was found (no db_name, no literal dbfilter,",
            "    # no live server): add one entry per Odoo database, such as",
            "    #   - name: DATABASE",
            "    #     tier: critical",
            "    tenants: []",
        ]
    lines = ["    tenants:"]
    for tenant in environment.tenants.values():
        lines.append(f"      - name: {yaml_scalar(tenant.name)}")
        for source in tenant.sources:
            lines += _comment_lines(source, 8, "found in: ")
        lines += [
            "        tier: critical  # TODO: critical, high, standard or low; critical",
            "        # is the strictest and what a tenant without a tier gets",
            "        # TODO: residency, sla, integrations (kinds: edi, carrier, api)",
            "        # and objectives that differ from the tier's, such as",
            "        # objectives:",
            "        #   logical_corruption: {rto: 4h, rpo: 15m}",
        ]
    return lines


def render_inventory(
    discovery: Discovery, base: Path, inventory_name: str, today: date
) -> str:
    """Return the inventory text; evidence paths are relative to `base`, the folder
    the inventory is written to."""
    _relocate(discovery, base)
    folder = _shown(discovery.folder)
    lines = [
        HEADER.format(
            folder=folder,
            today=today.isoformat(),
            inventory=inventory_name,
            platform=yaml_scalar(discovery.folder.resolve().name or "odoo platform"),
        ).rstrip("\n")
    ]
    for note in discovery.notes:
        lines += _comment_lines(note, 0, "NOTE: ")
    for problem in discovery.problems:
        lines += _comment_lines(problem, 0, "Not read: ")
    lines += ["", "environments:"]
    for environment in discovery.environments:
        lines += _environment_lines(environment, base)
    return "\n".join(lines) + "\n"


def _check(text: str, directory: Path) -> None:
    """Raise if `text` is not an inventory the loader accepts."""
    with tempfile.NamedTemporaryFile(
        "w", suffix=".yaml", dir=directory, delete=False, encoding="utf-8"
    ) as handle:
        handle.write(text)
        path = Path(handle.name)
    try:
        load_inventory(path)
    except InventoryError as exc:
        raise OdooDrError(
            "the inventory written would not load:\n  " + "\n  ".join(exc.problems),
            hint="report this as a bug of odoo-dr review init",
        ) from None
    finally:
        path.unlink()


def init(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder of manifests, compose files, odoo.conf files and Prometheus "
            "rule files to read.",
            exists=True,
            file_okay=False,
        ),
    ] = Path("."),
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write; '-' writes to stdout. Default: inventory.yaml in "
            "FOLDER.",
            show_default=False,
        ),
    ] = None,
    dsn: Annotated[
        str | None,
        typer.Option(
            help="libpq connection string or URI of the PostgreSQL server whose "
            "Odoo databases become tenants. Default: libpq's PG* variables.",
            show_default=False,
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live/--no-live", help="List the Odoo databases of the live server."
        ),
    ] = True,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the output file if it exists.")
    ] = False,
) -> None:
    """Write a commented starting inventory from what FOLDER and the live server
    show."""
    to_stdout = output is not None and str(output) == "-"
    target = output if output is not None else folder / "inventory.yaml"
    if not to_stdout and target.exists() and not force:
        raise RejectedError(
            f"{target} already exists",
            hint="pass --force to replace it, or --output to write another file",
        )
    if not to_stdout and not target.parent.is_dir():
        raise RejectedError(
            f"folder {target.parent} not found",
            hint="create it first, or pass --output a file in an existing folder",
        )
    settings = PgSettings.from_options(dsn=dsn) if live else None

    discovery = discover_files(folder)
    if settings is not None:
        try:
            databases, described, notes = live_databases(settings)
        except OdooDrError as exc:
            errors.print(f"PostgreSQL not read: {exc.message}")
            discovery.notes.append(f"PostgreSQL not read: {exc.message}")
        else:
            add_live_databases(discovery, databases, described)
            discovery.notes += notes
            errors.print(
                f"found {len(databases)} Odoo databases on {described}"
                if databases
                else f"found no Odoo database on {described}"
            )

    base = Path.cwd() if to_stdout else target.parent
    inventory_name = "inventory.yaml" if to_stdout else str(target)
    text = render_inventory(discovery, base, inventory_name, date.today())
    _check(text, Path(tempfile.gettempdir()) if to_stdout else target.parent)
    if to_stdout:
        console.out(text, end="")
        return
    replace_text(target, text)
    tenants = sum(len(item.tenants) for item in discovery.environments)
    todo = text.count("TODO")
    errors.print(
        f"wrote {target}: {len(discovery.environments)} environments, {tenants} "
        f"tenants, {todo} TODO comments to decide"
    )
    if discovery.problems:
        errors.print(
            f"{len(discovery.problems)} files, documents or charts not read: see "
            "the comments"
        )
