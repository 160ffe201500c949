"""Sizes of folders, filestores and databases."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from odoo_dr.odoo.filestore import walk
from odoo_dr.pg.connection import PgSettings


@dataclass
class FolderSize:
    files: int = 0
    bytes: int = 0
    disk_bytes: int = 0


def folder_size(folder: Path, skip: tuple[str, ...] = ()) -> FolderSize:
    """Return file count, apparent bytes and allocated bytes below `folder`."""
    size = FolderSize()
    for root, dirs, files in os.walk(folder):
        if Path(root) == folder:
            dirs[:] = [name for name in dirs if name not in skip]
        for name in files:
            stat = os.lstat(os.path.join(root, name))
            size.files += 1
            size.bytes += stat.st_size
            size.disk_bytes += stat.st_blocks * 512
    return size


def filestore_size(folder: Path) -> FolderSize:
    """Return the size of a tenant folder without the garbage collector's markers."""
    size = FolderSize()
    for _path, stat in walk(folder):
        size.files += 1
        size.bytes += stat.st_size
        size.disk_bytes += stat.st_blocks * 512
    return size


def database_size(settings: PgSettings, dbname: str) -> int:
    with settings.connect(dbname) as connection:
        return connection.execute(
            "SELECT pg_database_size(current_database())"
        ).fetchone()[0]
