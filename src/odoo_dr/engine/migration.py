"""The module migrations a release brings, and the large tables they touch.

The modules a release will install come from an addons path (each module's
`__manifest__.py`, read with `ast.literal_eval`, never imported or executed) or
from a list the pipeline passes. They are compared with the modules installed in
the restore point's snapshot, so the maintenance window can be sized before the
upgrade starts.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from pydantic import BaseModel, Field

from odoo_dr.errors import RejectedError
from odoo_dr.odoo.inspect import existing_tables

MANIFEST_NAMES = ("__manifest__.py", "__openerp__.py")

# Table-name prefixes of Odoo's own `base` module, which owns no table named after
# it: res_partner, ir_attachment and the like.
BASE_PREFIXES = ("res_", "ir_")

_MODULE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class ModuleChange(BaseModel):
    """One module whose installation changes with the release."""

    name: str
    change: str = Field(description="upgrade, new, removed or downgrade")
    before: str | None
    after: str | None
    tables: dict[str, int] = Field(
        default_factory=dict, description="rows of the module's recorded tables"
    )


class MigrationPlan(BaseModel):
    """The module changes of a release, compared with the restore point's modules."""

    source: str = Field(description="where the release's modules came from")
    expected: dict[str, str | None] = Field(
        description="modules and versions installed once the release is deployed"
    )
    changes: list[ModuleChange]
    table_method: str = Field(description="how modules were matched to tables")
    large_rows: int = Field(description="row count from which a table is large")
    warnings: list[str] = Field(default_factory=list)


def adapt_version(version: str | None, series: str | None) -> str:
    """Return `version` as Odoo stores it: prefixed with the series, such as 17.0.

    Odoo's `adapt_version` (odoo/modules/module.py, up to Odoo 17) prefixes a
    manifest version that does not start with the series, and a manifest without
    one is 1.0.
    """
    # NOTE: Odoo 18 and later prefix only versions of up to three parts, so a
    # four-part version such as 1.0.0.1 is compared with its prefix added here.
    version = version or "1.0"
    if series and (version == series or not version.startswith(series + ".")):
        version = f"{series}.{version}"
    return version


def odoo_series(base_version: str | None) -> str | None:
    """Return the series (`17.0`) of the `base` module's installed version."""
    if not base_version:
        return None
    parts = base_version.split(".")
    if len(parts) < 2:
        return None
    return ".".join(parts[:2])


def version_key(version: str | None) -> tuple:
    """Return a sort key that orders versions part by part, numbers as numbers."""
    if version is None:
        return ()
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in version.split(".")
    )


def read_manifest(path: Path) -> dict:
    """Return a module's manifest dictionary, parsed as a literal, never executed."""
    try:
        value = ast.literal_eval(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, SyntaxError, UnicodeDecodeError) as exc:
        raise RejectedError(
            f"cannot read module manifest {path}: {exc}",
            hint="a manifest must be one Python dictionary literal, as Odoo requires",
        ) from None
    if not isinstance(value, dict):
        raise RejectedError(
            f"module manifest {path} is not a dictionary",
            hint="a manifest must be one Python dictionary literal, as Odoo requires",
        )
    return value


def modules_from_addons_path(folders: list[Path], series: str | None) -> dict[str, str]:
    """Return installable modules and their versions found in `folders`.

    The first folder that has a module wins, as in Odoo's own addons path.
    """
    modules: dict[str, str] = {}
    for folder in folders:
        if not folder.is_dir():
            raise RejectedError(
                f"addons folder {folder} not found",
                hint="give --addons-path as Odoo's addons_path: folders separated "
                "by commas",
            )
        for module in sorted(folder.iterdir()):
            if module.name in modules or not module.is_dir():
                continue
            manifest_path = next(
                (module / name for name in MANIFEST_NAMES if (module / name).is_file()),
                None,
            )
            if manifest_path is None:
                continue
            manifest = read_manifest(manifest_path)
            if not manifest.get("installable", True):
                continue
            version = manifest.get("version")
            modules[module.name] = adapt_version(
                str(version) if version is not None else None, series
            )
    return modules


def modules_from_file(path: Path, series: str | None) -> dict[str, str]:
    """Return modules and versions from a JSON object or `name version` lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RejectedError(
            f"cannot read --modules-file {path}: {exc.strerror or exc}"
        ) from None
    pairs: list[tuple[str, str | None]] = []
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RejectedError(
                f"invalid JSON in --modules-file {path}: {exc}"
            ) from None
        pairs = [(str(name), None if v is None else str(v)) for name, v in data.items()]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) > 2:
                raise RejectedError(
                    f"invalid line {number} in --modules-file {path}: {line.strip()!r}",
                    hint="write one module a line: NAME VERSION",
                )
            pairs.append((words[0], words[1] if len(words) == 2 else None))
    modules = {}
    for name, version in pairs:
        if not _MODULE_NAME.match(name):
            raise RejectedError(f"invalid module name {name!r} in {path}")
        modules[name] = adapt_version(version, series)
    return modules


@dataclass
class TableMap:
    """The recorded tables of each module, and the method that matched them."""

    method: str
    tables: dict[str, set[str]] = field(default_factory=dict)


def tables_by_prefix(modules: set[str], tables: set[str]) -> TableMap:
    """Match each table to the module whose name is its longest prefix."""
    result: dict[str, set[str]] = {}
    for table in tables:
        owner = None
        for module in modules:
            if table.startswith(module + "_") and (
                owner is None or len(module) > len(owner)
            ):
                owner = module
        if owner is None and table.startswith(BASE_PREFIXES):
            owner = "base"
        if owner is not None:
            result.setdefault(owner, set()).add(table)
    return TableMap("table-name prefix (a table belongs to the module it starts with)",
                    result)  # fmt: skip


def tables_from_database(
    connection: psycopg.Connection, tables: set[str]
) -> TableMap | None:
    """Match tables to every module that defines or extends their model.

    Odoo records an `ir.model` XML id (`model_<model>`) in `ir_model_data` for each
    module that defines or inherits a model. Returns None when the database has no
    `ir_model` table.
    """
    with connection.cursor() as cursor:
        present = existing_tables(cursor)
        if not {"ir_model", "ir_model_data"} <= present:
            return None
        cursor.execute(
            "SELECT d.module, m.model FROM ir_model_data d"
            " JOIN ir_model m ON m.id = d.res_id"
            " WHERE d.model = 'ir.model'"
        )
        rows = cursor.fetchall()
    result: dict[str, set[str]] = {}
    for module, model in rows:
        table = model.replace(".", "_")
        if table in tables:
            result.setdefault(module, set()).add(table)
    return TableMap("ir_model and ir_model_data of the tenant's database", result)


def release_modules(
    before: dict[str, str | None],
    available: dict[str, str],
    install: list[str],
    addons_only: bool,
) -> dict[str, str | None]:
    """Return the modules and versions installed once the release is deployed.

    With an addons path (`addons_only`), the release upgrades the installed modules
    found there and installs those named in `install`. A list is the exact set.
    """
    if not addons_only:
        return dict(available)
    after: dict[str, str | None] = {
        name: available[name] for name in before if name in available
    }
    for name in install:
        if name not in available:
            raise RejectedError(
                f"module {name!r} to install is not in the addons path",
                hint="check --install and --addons-path",
            )
        after[name] = available[name]
    return after


def plan_migration(
    before: dict[str, str | None],
    after: dict[str, str | None],
    source: str,
    row_counts: dict[str, int],
    table_map: TableMap,
    large_rows: int,
) -> MigrationPlan:
    """Compare the restore point's modules with those the release installs."""
    changes: list[ModuleChange] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if name not in before:
            change = "new"
        elif name not in after:
            change = "removed"
        elif version_key(new) > version_key(old):
            change = "upgrade"
        elif version_key(new) < version_key(old):
            change = "downgrade"
        else:
            continue
        tables = {
            table: row_counts[table]
            for table in sorted(table_map.tables.get(name, ()))
            if table in row_counts
        }
        changes.append(ModuleChange(name=name, change=change, before=old, after=new,
                                    tables=tables))  # fmt: skip
    warnings = []
    for item in changes:
        if item.change == "downgrade":
            warnings.append(
                f"module {item.name} goes down from {item.before} to {item.after}: "
                "Odoo does not migrate data to an older version"
            )
        large = {
            table: rows for table, rows in item.tables.items() if rows >= large_rows
        }
        if large and item.change in ("upgrade", "new"):
            listed = ", ".join(
                f"{table} ({rows:,} rows)" for table, rows in large.items()
            )
            warnings.append(
                f"the {item.change} of {item.name} touches large tables: {listed}"
            )
    removed = [item for item in changes if item.change == "removed"]
    if removed:
        warnings.append(
            f"{len(removed)} installed modules are not in the release ({source}): "
            + ", ".join(f"{item.name} {item.before}" for item in removed)
        )
    return MigrationPlan(
        source=source,
        expected=after,
        changes=changes,
        table_method=table_map.method,
        large_rows=large_rows,
        warnings=warnings,
    )
