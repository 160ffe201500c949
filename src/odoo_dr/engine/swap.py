"""The last step of a restore: database and folder take the target's name.

Two renames (the folder, then the database), and with --force two more that move the
old target aside first, cannot be one atomic step. So before the first rename the
restore writes a journal beside the filestore folders, naming every database and
folder involved. Everything the journal names is ready when it is written (data
restored, identity set, neutralized), so an interrupted swap is always finished,
never undone: the next restore into the same filestore root reads the journal and
completes the renames, then drops what was replaced. While a swap runs, its
databases are marked `swapping`, so no other cleanup touches them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from odoo_dr.pg import temporary
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.processes import HOST, process_alive

log = logging.getLogger(__name__)

JOURNAL_PREFIX = ".odoo-dr-swap-"


@dataclass
class SwapJournal:
    target: str
    temporary: str
    aside: str
    filestore_root: str
    replace_database: bool
    replace_folder: bool
    pid: int
    host: str
    # The mark the database keeps in its final place (`drill`), or None for none.
    final_mark: str | None = None
    # The file in the temporary folder that names its restore. Once the journal is
    # written, the journal names the folder, and the file is removed before the
    # folder's rename.
    owner_file: str | None = None

    @property
    def root(self) -> Path:
        return Path(self.filestore_root)

    @property
    def old_folder(self) -> Path:
        return self.root / f"{self.temporary}-replaced"

    @property
    def path(self) -> Path:
        return journal_path(self.root, self.target)


def journal_path(root: Path, target: str) -> Path:
    digest = hashlib.sha256(target.encode("utf-8")).hexdigest()[:16]
    return root / f"{JOURNAL_PREFIX}{digest}.json"


def _write(journal: SwapJournal) -> None:
    temporary_path = journal.path.with_suffix(".tmp")
    with open(temporary_path, "w", encoding="utf-8") as handle:
        json.dump(asdict(journal), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary_path, journal.path)
    fd = os.open(journal.root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_folder(journal: SwapJournal) -> None:
    temporary_folder = journal.root / journal.temporary
    target_folder = journal.root / journal.target
    if not temporary_folder.exists():
        return
    if journal.owner_file:
        (temporary_folder / journal.owner_file).unlink(missing_ok=True)
    if target_folder.exists() and journal.replace_folder:
        if not journal.old_folder.exists():
            target_folder.rename(journal.old_folder)
        else:
            shutil.rmtree(target_folder)
    temporary_folder.rename(target_folder)


def _swap_database(connection: psycopg.Connection, journal: SwapJournal) -> None:
    if not temporary.exists(connection, journal.temporary) and not temporary.exists(
        connection, journal.target
    ):
        log.error(
            "neither %r nor %r exists; the swap into %r cannot be finished",
            journal.temporary,
            journal.target,
            journal.target,
        )
        return
    if temporary.exists(connection, journal.temporary):
        if temporary.exists(connection, journal.target):
            temporary.end_other_sessions(connection, journal.target)
            temporary.rename(connection, journal.target, journal.aside)
            temporary.set_comment(
                connection,
                journal.aside,
                temporary.mark_text("replaced", journal.target),
            )
        temporary.end_other_sessions(connection, journal.temporary)
        temporary.rename(connection, journal.temporary, journal.target)
    temporary.finish(connection, journal.target, journal.final_mark)


def _clean_up(connection: psycopg.Connection, journal: SwapJournal) -> None:
    if temporary.exists(connection, journal.aside):
        log.warning("dropping the replaced database %r, formerly %r",
                    journal.aside, journal.target)  # fmt: skip
        temporary.drop(connection, journal.aside)
    shutil.rmtree(journal.old_folder, ignore_errors=True)
    journal.path.unlink(missing_ok=True)


def swap(
    settings: PgSettings,
    target: str,
    temporary_name: str,
    filestore_root: Path,
    replace_database: bool,
    replace_folder: bool,
    final_mark: str | None = None,
    owner_file: str | None = None,
) -> None:
    """Put the restored database and folder in place of `target`.

    With `final_mark`, the database keeps a mark of that kind in its final place
    (see `temporary.finish`). `owner_file`, a file in the temporary folder that
    names the restore, stays there until the journal is written. A restore killed
    before that leaves a folder that the next run removes by that file.
    """
    journal = SwapJournal(
        target=target,
        temporary=temporary_name,
        aside=temporary.new_aside_name(),
        filestore_root=str(filestore_root),
        replace_database=replace_database,
        replace_folder=replace_folder,
        pid=os.getpid(),
        host=HOST,
        final_mark=final_mark,
        owner_file=owner_file,
    )
    if replace_database:
        log.warning("replacing existing database %r (--force)", target)
    if replace_folder:
        log.warning(
            "replacing existing filestore folder %s (--force)", filestore_root / target
        )
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        # The journal first, because clean-ups leave a database marked `swapping`
        # to its journal, so such a mark without a journal would keep it forever.
        _write(journal)
        temporary.set_comment(
            connection, temporary_name, temporary.mark_text("swapping", target)
        )
        _swap_folder(journal)
        try:
            _swap_database(connection, journal)
        except psycopg.Error:
            # Nothing was lost yet: put the folders back and let the caller drop the
            # temporary database; the old target is renamed back if it was moved.
            _undo(connection, journal)
            raise
        _clean_up(connection, journal)


def _undo(connection: psycopg.Connection, journal: SwapJournal) -> None:
    target_folder = journal.root / journal.target
    temporary_folder = journal.root / journal.temporary
    if target_folder.exists() and not temporary_folder.exists():
        target_folder.rename(temporary_folder)
    if journal.old_folder.exists() and not target_folder.exists():
        journal.old_folder.rename(target_folder)
    if temporary.exists(connection, journal.aside) and not temporary.exists(
        connection, journal.target
    ):
        temporary.rename(connection, journal.aside, journal.target)
        temporary.finish(connection, journal.target)
        log.warning("put the replaced database %r back", journal.target)
    elif temporary.exists(connection, journal.target):
        temporary.alter(connection, journal.target, sql.SQL("ALLOW_CONNECTIONS true"))
    journal.path.unlink(missing_ok=True)


def _abandoned(journal: SwapJournal, path: Path) -> bool:
    """Return whether the restore that wrote `journal` is gone.

    A journal is left behind when its process is gone from this host, or when it is
    older than a swap can take (other hosts, containers where odoo-dr is pid 1).
    """
    age = datetime.now(UTC).timestamp() - path.stat().st_mtime
    if age > temporary.STALE_AFTER.total_seconds():
        return True
    return journal.host == HOST and not process_alive(journal.pid)


def finish_interrupted(settings: PgSettings, filestore_root: Path) -> list[str]:
    """Finish the swaps that killed restores left in `filestore_root`."""
    done = []
    for path in sorted(filestore_root.glob(f"{JOURNAL_PREFIX}*.json")):
        try:
            journal = SwapJournal(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("skipping unreadable swap journal %s: %s", path, exc)
            continue
        if not _abandoned(journal, path):
            continue
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            _swap_folder(journal)
            _swap_database(connection, journal)
            _clean_up(connection, journal)
        done.append(f"finished the interrupted restore into {journal.target!r}")
    return done
