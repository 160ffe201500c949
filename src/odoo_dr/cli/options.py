"""Options shared by several commands, and how they resolve to settings."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from odoo_dr.errors import RejectedError
from odoo_dr.odoo.config import OdooConfig, default_data_dir, read_odoo_config
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.store import Repository, resolve_location

FILESTORE_VARIABLE = "ODOO_DR_FILESTORE_ROOT"

RepoOption = Annotated[
    str | None,
    typer.Option(
        "--repo",
        help="Repository folder, or s3://bucket/prefix. Default: $ODOO_DR_REPO, "
        "else ./odoo-dr-repo.",
        show_default=False,
    ),
]
DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="libpq connection string or URI of the server (no database name needed). "
        "Default: libpq's PG* variables.",
        show_default=False,
    ),
]
OdooConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--odoo-config",
        exists=True,
        dir_okay=False,
        help="Odoo configuration file to read db_host, db_port, db_user, db_password "
        "and data_dir from.",
        show_default=False,
    ),
]
FilestoreRootOption = Annotated[
    Path | None,
    typer.Option(
        "--filestore-root",
        help="Folder that holds one filestore folder per database (Odoo's "
        "<data_dir>/filestore).",
        show_default=False,
    ),
]
JobsOption = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        max=64,
        help="Parallel pg_dump/pg_restore jobs and file workers.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
TempDirOption = Annotated[
    Path | None,
    typer.Option(
        "--temp-dir",
        exists=True,
        file_okay=False,
        help="Folder for temporary files: the uncompressed dump, and a drill's "
        "scratch filestore.",
        show_default=False,
    ),
]


VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log every step and object.")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Log warnings and errors only.")
]


def apply_verbosity(verbose: bool, quiet: bool) -> None:
    """Apply -v or -q given after the command name, as before it (-v wins)."""
    logger = logging.getLogger("odoo_dr")
    if verbose:
        logger.setLevel(logging.DEBUG)
    elif quiet and logger.level != logging.DEBUG:
        logger.setLevel(logging.WARNING)


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def open_repository(repo: str | None) -> Repository:
    return Repository.open(resolve_location(repo))


def load_odoo_config(path: Path | None) -> OdooConfig | None:
    return read_odoo_config(path) if path is not None else None


def pg_settings(dsn: str | None, odoo_config: OdooConfig | None) -> PgSettings:
    return PgSettings.from_options(dsn=dsn, odoo_config=odoo_config)


def filestore_root(
    explicit: Path | None, odoo_config: OdooConfig | None
) -> tuple[Path, str]:
    """Return the filestore root and where it came from, for messages.

    The root is the option, else data_dir in odoo.conf, else $ODOO_DR_FILESTORE_ROOT,
    else Odoo's default data_dir of the user running odoo-dr.
    """
    if explicit is not None:
        return explicit.expanduser().absolute(), "--filestore-root"
    if odoo_config is not None and odoo_config.data_dir is not None:
        root = _config_filestore_root(odoo_config.data_dir, odoo_config.path)
        return root, f"data_dir in {odoo_config.path}"
    from_environment = os.environ.get(FILESTORE_VARIABLE)
    if from_environment:
        return Path(from_environment).expanduser().absolute(), f"${FILESTORE_VARIABLE}"
    source = "Odoo's default data_dir of the user running odoo-dr"
    if odoo_config is not None:
        source += f", since {odoo_config.path} sets no data_dir"
    return default_data_dir() / "filestore", source


def _config_filestore_root(data_dir: Path, config_path: Path) -> Path:
    """Return `<data_dir>/filestore`, rejecting a data_dir that is not absolute."""
    if not data_dir.is_absolute():
        raise RejectedError(
            f"data_dir {str(data_dir)!r} in {config_path} is not an absolute "
            "path: Odoo resolves it from the folder the server was started in, which "
            "odoo-dr cannot know",
            hint="write data_dir in odoo.conf as an absolute path, or pass "
            "--filestore-root <data_dir>/filestore",
        )
    return data_dir / "filestore"


def restore_filestore_root(
    explicit: Path | None, odoo_config: OdooConfig | None
) -> Path:
    """Return the filestore root a restore writes to: the option, else data_dir.

    A restore writes files where the target Odoo server will look for them, so it
    never falls back to a default: Odoo's default data_dir belongs to the user the
    server runs as, which odoo-dr cannot know.
    """
    if explicit is not None:
        return explicit.expanduser().absolute()
    if odoo_config is not None and odoo_config.data_dir is not None:
        return _config_filestore_root(odoo_config.data_dir, odoo_config.path)
    if odoo_config is not None:
        raise RejectedError(
            f"{odoo_config.path} sets no data_dir, so the folder where the target "
            "Odoo server keeps its filestores is unknown",
            hint="without data_dir, Odoo uses ~/.local/share/Odoo of the user it "
            "runs as: pass --filestore-root <that folder>/filestore, or set "
            "data_dir in odoo.conf",
        )
    raise RejectedError(
        "--filestore-root or --odoo-config is required",
        hint="give the folder that holds the Odoo filestores of the target server",
    )
