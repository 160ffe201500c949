"""Recovery state of a pgBackRest stanza: base backups, WAL chains, window, archiver.

The recoverable window runs from the end of the oldest base backup whose WAL chain
is unbroken to the latest reachable time: the last commit recorded in the archived
WAL that chain reaches. PostgreSQL stops a time-targeted recovery at the first
commit after the target, and fails when the archive ends before one, so a target
later than that last commit cannot be recovered, however recent the archive is.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel, Field

from odoo_dr import tempfiles
from odoo_dr.errors import OdooDrError, RejectedError
from odoo_dr.pg import wal
from odoo_dr.pg.binaries import find_program
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.pgbackrest import PgBackRest

log = logging.getLogger(__name__)

# pgBackRest records a backup's end to the second; the server is consistent at
# most a second after the recorded time.
CONSISTENCY_MARGIN = timedelta(seconds=1)
# How many segments, counting back from the end of a chain, are read to find the
# last commit.
COMMIT_SEARCH_SEGMENTS = 16


class BaseBackup(BaseModel):
    label: str
    type: str
    started_at: datetime
    finished_at: datetime
    size_bytes: int
    repository_bytes: int
    wal_start: str
    wal_stop: str
    reference: list[str] = Field(default_factory=list)


class ChainReport(BaseModel):
    """The WAL after one base backup: unbroken or not, and how far it reaches."""

    backup: str
    continuous: bool
    first_missing: str | None = None
    last_segment: str | None = None
    latest_reachable: datetime | None = Field(
        default=None, description="last commit time this backup can recover to"
    )
    reachable_from: str = Field(
        default="", description="where latest_reachable was read"
    )


class ArchiverState(BaseModel):
    archived_count: int
    last_archived_wal: str | None
    last_archived_at: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_at: datetime | None
    archive_mode: str
    archive_command: str
    archive_timeout_seconds: int
    age_seconds: float | None = Field(
        description="seconds since the last segment was archived"
    )
    failing: bool = Field(description="the last attempt failed")


class Window(BaseModel):
    start: datetime
    end: datetime
    backup: str = Field(description="oldest base backup the window starts from")


class PitrStatus(BaseModel):
    stanza: str
    checked_at: datetime
    postgres_version: str
    archive_id: str
    segment_size: int
    backups: list[BaseBackup]
    chains: list[ChainReport]
    window: Window | None
    archived_segments: int
    newest_archived: str | None
    archiver: ArchiverState | None
    warnings: list[str] = Field(default_factory=list)

    def chain_of(self, label: str) -> ChainReport:
        return next(chain for chain in self.chains if chain.backup == label)


def _when(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _backups(info: dict[str, Any], database_id: int) -> list[BaseBackup]:
    backups = []
    for item in info.get("backup", []):
        if item.get("error") or item.get("database", {}).get("id") != database_id:
            continue
        archive = item.get("archive") or {}
        if not archive.get("start") or not archive.get("stop"):
            continue
        backups.append(
            BaseBackup(
                label=item["label"],
                type=item["type"],
                started_at=_when(item["timestamp"]["start"]),
                finished_at=_when(item["timestamp"]["stop"]),
                size_bytes=item["info"]["size"],
                repository_bytes=item["info"]["repository"]["size"],
                wal_start=archive["start"],
                wal_stop=archive["stop"],
                reference=item.get("reference") or [],
            )
        )
    return sorted(backups, key=lambda backup: backup.finished_at)


def _archived(
    backrest: PgBackRest, archive_id: str, segment_size: int
) -> dict[wal.Segment, str]:
    """Return the archived segments with their names."""
    listing = backrest.list_files(f"archive/{backrest.stanza}/{archive_id}")
    names: dict[wal.Segment, str] = {}
    for path in listing:
        base = path.rsplit("/", 1)[-1]
        # "000000010000000000000004-<sha1>.zst"; not ".partial", ".backup", ".history".
        if len(base) < 25 or base[24] != "-" or not wal.is_segment_name(base[:24]):
            continue
        segment = wal.parse_segment(base[:24], segment_size)
        names[segment] = base[:24]
    return names


class _CommitReader:
    """Reads commit times out of archived segments, each segment once."""

    def __init__(self, backrest: PgBackRest, major: int, temp_dir: Path | None):
        self.backrest = backrest
        self.major = major
        self.temp_dir = temp_dir
        self.cache: dict[str, datetime | None] = {}
        self.folder: Path | None = None

    def last_commit(self, name: str) -> datetime | None:
        if name not in self.cache:
            self.cache[name] = self._read(name)
        return self.cache[name]

    def _read(self, name: str) -> datetime | None:
        if self.folder is None:
            tempfiles.remove_stale(self.temp_dir)
            self.folder = tempfiles.make_folder(self.temp_dir, "wal")
            if self.backrest.os_user is not None:
                self.backrest.os_user.check_writable(
                    self.folder, "WAL segments are read for the last commit"
                )
        target = self.folder / name
        try:
            self.backrest.archive_get(name, target)
            pg_waldump = find_program("pg_waldump", self.major)
            times = wal.xact_times(pg_waldump, target)
        finally:
            target.unlink(missing_ok=True)
        return max(times) if times else None

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _reachable(
    chain: wal.ChainCheck,
    names: dict[wal.Segment, str],
    reader: _CommitReader,
) -> tuple[datetime | None, str]:
    """Return the last commit time a chain reaches, and where it was read."""
    if chain.last is None:
        return None, "no archived WAL after the backup"
    segment = chain.last
    for _ in range(COMMIT_SEARCH_SEGMENTS):
        if segment.number < chain.start.number or segment not in names:
            break
        found = reader.last_commit(names[segment])
        if found is not None:
            return found, f"last commit in {names[segment]}"
        segment = _previous(segment, names)
        if segment is None:
            break
    return None, "no commit in the archived WAL after the backup"


def _previous(
    segment: wal.Segment, names: dict[wal.Segment, str]
) -> wal.Segment | None:
    for timeline in range(segment.timeline, 0, -1):
        candidate = wal.Segment(segment.number - 1, timeline)
        if candidate in names:
            return candidate
    return None


def _archiver(settings: PgSettings, now: datetime) -> tuple[ArchiverState, int]:
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        row = connection.execute(
            "SELECT archived_count, last_archived_wal, last_archived_time,"
            " failed_count, last_failed_wal, last_failed_time FROM pg_stat_archiver"
        ).fetchone()
        values = dict(
            connection.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN"
                " ('archive_mode', 'archive_command', 'archive_timeout',"
                " 'wal_segment_size')"
            ).fetchall()
        )
    assert row is not None
    archived_at, failed_at = row[2], row[5]
    state = ArchiverState(
        archived_count=row[0],
        last_archived_wal=row[1],
        last_archived_at=archived_at,
        failed_count=row[3],
        last_failed_wal=row[4],
        last_failed_at=failed_at,
        archive_mode=values.get("archive_mode", ""),
        archive_command=values.get("archive_command", ""),
        archive_timeout_seconds=int(values.get("archive_timeout", "0")),
        age_seconds=(
            round((now - archived_at).total_seconds(), 3) if archived_at else None
        ),
        failing=failed_at is not None
        and (archived_at is None or failed_at > archived_at),
    )
    return state, int(values.get("wal_segment_size", wal.DEFAULT_SEGMENT_SIZE))


def oldest_base_backup(backrest: PgBackRest) -> datetime | None:
    """Return when the stanza's oldest base backup began, or None without one.

    A point-in-time recovery never needs a file that was gone before then, so
    prune may drop filestore journal entries of such files.
    """
    info = backrest.info()
    if info is None:
        raise RejectedError(
            f"pgBackRest has no stanza {backrest.stanza!r} in the configuration at "
            f"{backrest.config_path}",
            hint="check --pitr-stanza and --pgbackrest-config-path",
        )
    starts = [
        _when(item["timestamp"]["start"])
        for item in info.get("backup", [])
        if not item.get("error")
    ]
    return min(starts, default=None)


@dataclass(frozen=True)
class StatusOptions:
    max_archive_age: float | None = None
    temp_dir: Path | None = None


def read_status(
    backrest: PgBackRest,
    settings: PgSettings | None,
    options: StatusOptions = StatusOptions(),
) -> PitrStatus:
    """Read a stanza's base backups, WAL chains, window and archiver state.

    `settings`, when given, reach the production server for pg_stat_archiver and
    its WAL segment size; without them the archiver part is left out.
    """
    now = datetime.now(UTC)
    info = backrest.info()
    if info is None:
        raise RejectedError(
            f"pgBackRest has no stanza {backrest.stanza!r} in the configuration at "
            f"{backrest.config_path}",
            hint=f"set it up: odoo-dr pitr setup --stanza {backrest.stanza}",
        )
    databases = info.get("db") or []
    if not databases:
        raise RejectedError(
            f"stanza {backrest.stanza!r} has no database history yet",
            hint="run odoo-dr pitr setup, which creates the stanza and its first "
            "backup",
        )
    current = max(databases, key=lambda item: item["id"])
    archive_id = f"{current['version']}-{current['id']}"
    archiver: ArchiverState | None = None
    segment_size = wal.DEFAULT_SEGMENT_SIZE
    warnings: list[str] = []
    if settings is not None:
        try:
            archiver, segment_size = _archiver(settings, now)
        except (OdooDrError, psycopg.Error) as exc:
            warnings.append(
                f"could not read pg_stat_archiver: {str(exc).splitlines()[0]}"
            )
    backups = _backups(info, current["id"])
    names = _archived(backrest, archive_id, segment_size)
    major = int(str(current["version"]).split(".")[0])
    reader = _CommitReader(backrest, major, options.temp_dir)
    chains = []
    try:
        for backup in backups:
            start = wal.parse_segment(backup.wal_start, segment_size)
            chain = wal.check_chain(start, names)
            stop = wal.parse_segment(backup.wal_stop, segment_size).number
            reachable, source = (None, "")
            if chain.last is not None and chain.last.number >= stop:
                reachable, source = _reachable(chain, names, reader)
            else:
                source = "the WAL that makes the backup consistent is not archived"
            chains.append(
                ChainReport(
                    backup=backup.label,
                    continuous=chain.continuous,
                    first_missing=(
                        chain.first_missing.name(segment_size)
                        if chain.first_missing
                        else None
                    ),
                    last_segment=chain.last.name(segment_size) if chain.last else None,
                    latest_reachable=reachable,
                    reachable_from=source,
                )
            )
    finally:
        reader.close()
    newest = max(names, default=None)
    status = PitrStatus(
        stanza=backrest.stanza,
        checked_at=now,
        postgres_version=str(current["version"]),
        archive_id=archive_id,
        segment_size=segment_size,
        backups=backups,
        chains=chains,
        window=_window(backups, chains),
        archived_segments=len(names),
        newest_archived=names[newest] if newest else None,
        archiver=archiver,
        warnings=warnings,
    )
    status.warnings.extend(_problems(status, options))
    return status


def _window(backups: list[BaseBackup], chains: list[ChainReport]) -> Window | None:
    """Return the window ending at the latest reachable time, from its oldest backup."""
    reachable = [
        (backup, chain)
        for backup, chain in zip(backups, chains, strict=True)
        if chain.latest_reachable is not None
        and chain.latest_reachable >= backup.finished_at + CONSISTENCY_MARGIN
    ]
    if not reachable:
        return None
    end = max(
        chain.latest_reachable for _, chain in reachable if chain.latest_reachable
    )
    reaching = [backup for backup, chain in reachable if chain.latest_reachable == end]
    oldest = min(reaching, key=lambda backup: backup.finished_at)
    return Window(
        start=oldest.finished_at + CONSISTENCY_MARGIN, end=end, backup=oldest.label
    )


def _problems(status: PitrStatus, options: StatusOptions) -> list[str]:
    problems = []
    if not status.backups:
        problems.append("the stanza has no base backup: nothing can be recovered")
    for chain in status.chains:
        if not chain.continuous:
            reach = (
                chain.latest_reachable.isoformat()
                if chain.latest_reachable
                else "nothing"
            )
            problems.append(
                f"WAL gap after base backup {chain.backup}: segment "
                f"{chain.first_missing} is missing from the archive; that backup "
                f"reaches {reach} at the latest"
            )
    archiver = status.archiver
    if archiver is not None:
        if archiver.archive_mode == "off":
            problems.append("archive_mode is off: no WAL is archived")
        if archiver.failing:
            problems.append(
                f"archiving is failing: {archiver.last_failed_wal} failed at "
                f"{archiver.last_failed_at}, {archiver.failed_count} failures since "
                "the statistics were reset"
            )
        if (
            options.max_archive_age is not None
            and archiver.age_seconds is not None
            and archiver.age_seconds > options.max_archive_age
        ):
            problems.append(
                f"the last WAL segment was archived {archiver.age_seconds:.0f} s ago, "
                f"over the allowed {options.max_archive_age:.0f} s"
            )
    return problems
