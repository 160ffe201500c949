"""Pydantic models of what the repository stores as JSON: snapshots and drills."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from odoo_dr.odoo.filestore import safe_relative

MANIFEST_VERSION = 1

# pg_dump's directory format names its files toc.dat, <id>.dat, blobs.toc and
# blob_<oid>.dat; a manifest naming anything else is damaged or hostile.
_DUMP_FILE_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


def _iso_time(value: object) -> object:
    """Parse ISO 8601 text into a datetime, and reject any other text.

    Pydantic alone would also read text such as "12" as a Unix time. A time
    without zone is read as UTC, the zone odoo-dr writes times in, because a time
    without zone fails every comparison with the times of other documents.
    """
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"invalid time {value[:40]!r}: not ISO 8601") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


# A time as odoo-dr writes it: ISO 8601 text, never a number of seconds.
Timestamp = Annotated[datetime, BeforeValidator(_iso_time)]


class Document(BaseModel):
    """Base of the stored models. Readers parse them with `strict=True`, because
    odoo-dr writes every value with its field's type, so `true` for a size or
    `"1"` for a flag is damage; NaN and infinities are damage too."""

    model_config = ConfigDict(allow_inf_nan=False)


class StoredBlob(Document):
    """A byte stream stored as a list of content-addressed objects, in order."""

    size: int
    chunks: list[str]


class DumpFile(StoredBlob):
    """One file of pg_dump's directory-format output (`toc.dat` or `<id>.dat`)."""

    name: str

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if not _DUMP_FILE_NAME.match(value):
            raise ValueError(f"invalid dump file name {value!r}")
        return value


class FilestoreEntry(StoredBlob):
    """One file of the tenant's filestore folder."""

    path: str = Field(description="path below the tenant's folder, e.g. 'ab/ab12...'")
    sha1: str
    referenced: bool = Field(description="an attachment of the snapshot refers to it")
    mtime_ns: int = 0

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        safe_relative(value)
        return value


class FileProblem(Document):
    """An attachment whose file was missing or damaged when the backup read it."""

    store_fname: str
    reason: Literal[
        "missing",
        "checksum mismatch",
        "size mismatch",
        "invalid path",
        "not a regular file",
    ]
    checksum: str | None = None
    file_size: int | None = None
    found_sha1: str | None = None
    found_size: int | None = None
    attachments: list[str] = Field(
        default_factory=list, description="'ir.attachment,<id> <res_model>,<res_id>'"
    )


class FilestoreSummary(Document):
    index: StoredBlob
    referenced_files: int = 0
    referenced_bytes: int = 0
    extra_files: int = 0
    extra_bytes: int = 0
    attachments_in_database: int = 0
    checklist_markers: int = 0
    problems: list[FileProblem] = Field(default_factory=list)


class DatabaseInfo(Document):
    name: str
    encoding: str
    collate: str
    ctype: str
    size_bytes: int


class PostgresInfo(Document):
    server_version: str
    server_major: int
    pg_dump_version: str
    pg_dump_major: int


class OdooInfo(Document):
    version: str | None
    uuid: str | None
    modules: dict[str, str | None]


class BackupStats(Document):
    seconds: float
    dump_bytes: int
    files_read: int
    files_reused: int
    bytes_read: int
    new_objects: int
    new_bytes: int = Field(description="compressed bytes this backup added")


class LocationStock(Document):
    """The quants of one internal stock location."""

    id: int
    name: str | None
    quants: int
    quantity: float = Field(description="sum of stock_quant.quantity")


class StockTotals(Document):
    """Stock on hand in internal locations (stock_location.usage 'internal')."""

    quants: int
    quantity: float = Field(description="sum of stock_quant.quantity")
    locations: list[LocationStock] = Field(default_factory=list)


class SnapshotManifest(Document):
    format: Literal["odoo-dr-snapshot"] = "odoo-dr-snapshot"
    version: int = MANIFEST_VERSION
    id: str
    tenant: str
    started_at: Timestamp
    snapshot_time: Timestamp = Field(description="time of the database snapshot")
    finished_at: Timestamp
    lsn: str | None
    database: DatabaseInfo
    postgres: PostgresInfo
    odoo: OdooInfo
    row_counts: dict[str, int]
    dump_format: Literal["directory"] = "directory"
    dump: list[DumpFile]
    filestore: FilestoreSummary
    stats: BackupStats
    warnings: list[str] = Field(default_factory=list)
    tool_version: str
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="free labels such as environment=production or tier=gold",
    )
    residency: str | None = Field(
        default=None, description="where the data may be stored, e.g. 'eu'"
    )
    stock_totals: StockTotals | None = Field(
        default=None,
        description="stock on hand read in the snapshot; None without stock tables "
        "and in manifests written before it was recorded",
    )

    def dump_problem(self) -> str | None:
        """Return why the dump's file list cannot be restored, or None.

        pg_dump's directory format always writes toc.dat, the table of contents
        that pg_restore starts from.
        """
        names = [item.name for item in self.dump]
        if "toc.dat" not in names:
            return "its dump has no toc.dat (pg_dump's table of contents)"
        if len(set(names)) != len(names):
            return "its dump names a file twice"
        return None


class CheckResult(Document):
    name: str
    passed: bool
    summary: str
    problems: list[str] = Field(default_factory=list)
    seconds: float = 0.0


class DrillRecord(Document):
    format: Literal["odoo-dr-drill"] = "odoo-dr-drill"
    version: int = MANIFEST_VERSION
    id: str
    snapshot_id: str
    tenant: str
    started_at: Timestamp
    finished_at: Timestamp
    scratch_database: str
    scratch_filestore: str
    kept: bool
    passed: bool
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    rto_seconds: float = Field(description="restore plus checks, wall time")
    rpo_seconds: float = Field(description="age of the snapshot when the drill began")
    steps: dict[str, float] = Field(description="seconds per step")
    checks: list[CheckResult]
    tool_version: str
    copied_from: str | None = Field(
        default=None,
        description="id of the repository the drill ran on, for a record that "
        "odoo-dr copy brought over with its snapshot",
    )
    kind: Literal["snapshot", "pitr"] = Field(
        default="snapshot",
        description="a snapshot restored, or a cluster recovered to a point in time",
    )
    target_time: Timestamp | None = Field(
        default=None, description="the time a point-in-time drill recovered to"
    )
    recovered_to: Timestamp | None = Field(
        default=None,
        description="commit time of the last transaction the recovery replayed",
    )
    base_backup: str | None = Field(
        default=None, description="label of the pgBackRest base backup restored"
    )
