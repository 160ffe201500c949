"""The repository: configuration, blobs, snapshot manifests and drill records.

Layout below the repository root (see README.md in a repository for reading it by
hand):

    config.json               format, version, id and, if encrypted, the key slots
    packs/<2 hex>/<sha256>    pack files: a header, then zstd frames of content chunks
    index/<time>-<hash>.json  which pack holds each chunk
    snapshots/<id>.json       one manifest per complete snapshot, written last
    catalog/<time>-<random>-<hash>.json  summaries of snapshots, to list them in a few
                              reads (see catalog.py); rebuilt from the manifests
    drills/<id>.json          one record per drill
    releases/<hash>/<hash>.json  one restore point per release and tenant
    platform/config/<id>.json  an environment's configuration per platform backup
    journal/<hash>/<n>-<random>.json  filestore journal segments (see journal.py)
    locks/                    one lock file per tenant being backed up, and prune's
    tmp/                      writes in progress

An encrypted repository (see crypto.py) seals every file but config.json and
README.md, and names blobs and lock files by keyed hashes.

The location is a folder path, or `s3://bucket/prefix` for an S3 bucket (see
s3.py). On S3 with Object Lock (`object_lock` in config.json), every object is
written locked for the configured number of days.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from odoo_dr import __version__, tempfiles
from odoo_dr.errors import (
    OdooDrError,
    RejectedError,
    RepositoryError,
    SnapshotDamaged,
    StoreUnavailable,
)
from odoo_dr.repository import catalog, crypto, objects, residency
from odoo_dr.repository.backend import Backend, DeleteDenied, ObjectNotFound
from odoo_dr.repository.blobs import DEFAULT_PACK_SIZE, BlobStore
from odoo_dr.repository.catalog import SnapshotSummary
from odoo_dr.repository.index import pack_key
from odoo_dr.repository.local import DIR_MODE, LocalBackend, make_private_folder
from odoo_dr.repository.lock import TenantLock
from odoo_dr.repository.manifest import (
    MANIFEST_VERSION,
    DrillRecord,
    SnapshotManifest,
)
from odoo_dr.repository.readme import ENCRYPTED_REPOSITORY_README, REPOSITORY_README

log = logging.getLogger(__name__)

REPOSITORY_VARIABLE = "ODOO_DR_REPO"
DEFAULT_LOCATION = "./odoo-dr-repo"
FORMAT = "odoo-dr-repository"
FORMAT_VERSION = 1
# Manifests read at once when a listing needs them in full: each is one request
# to an object store.
MANIFEST_READERS = 16


class ObjectLockSettings(BaseModel):
    """How long S3 Object Lock keeps each object written to the repository."""

    mode: Literal["governance", "compliance"] = "governance"
    days: int = Field(ge=1)


class RepositoryConfig(BaseModel):
    format: str = FORMAT
    version: int = FORMAT_VERSION
    id: str
    created_at: datetime
    created_by: str
    object_hash: str = "sha256"
    compression: str = "zstd"
    chunking: dict[str, int | str]
    pack_size: int = DEFAULT_PACK_SIZE
    encryption: str = "none"
    key_slots: list[crypto.KeySlot] = []
    object_lock: ObjectLockSettings | None = None
    region: str | None = Field(
        default=None,
        description="where the repository's storage is, as its provider names it",
    )

    def to_json(self) -> bytes:
        """Return config.json's bytes; an unencrypted one has no `key_slots`."""
        exclude = None if self.key_slots else {"key_slots"}
        return self.model_dump_json(indent=2, exclude=exclude).encode("utf-8")


def resolve_location(value: str | None) -> str:
    """Return the repository location from `--repo`, `ODOO_DR_REPO` or the default."""
    return value or os.environ.get(REPOSITORY_VARIABLE) or DEFAULT_LOCATION


def _backend_for(location: str) -> Backend:
    if location.startswith("s3://"):
        # Imported here so that runs on a local folder never load boto3.
        from odoo_dr.repository.s3 import S3Backend

        return S3Backend.from_location(location)
    if "://" in location:
        raise RejectedError(
            f"unsupported repository location {location!r}",
            hint="give the path of a local or mounted folder, or s3://bucket/prefix",
        )
    return LocalBackend(Path(location).expanduser().absolute())


# A config.json that names an unknown format or algorithm was written by a newer
# odoo-dr, or damaged.
UPGRADE_OR_PUT_BACK = (
    "upgrade odoo-dr; if config.json is damaged, put it back from a copy of the "
    "repository"
)


# The maximum lock odoo-dr writes: 100 years. A far larger count of days would
# overflow Python's dates (year 9999) before any request reached S3.
MAX_LOCK_DAYS = 36_500


def _check_lock_request(backend: Backend, lock_days: int | None) -> None:
    """Reject --lock-days unless the backend is an S3 bucket with Object Lock."""
    if lock_days is None:
        return
    if not 1 <= lock_days <= MAX_LOCK_DAYS:
        raise RejectedError(
            f"invalid --lock-days {lock_days}",
            hint="give the number of days each object stays locked, from 1 to "
            f"{MAX_LOCK_DAYS} (100 years)",
        )
    check = getattr(backend, "check_object_lock", None)
    if check is None:
        raise RejectedError(
            f"repository {backend.describe()} cannot lock objects: --lock-days "
            "needs an S3 bucket with Object Lock",
            hint="give --repo s3://bucket/prefix, or leave out --lock-days",
        )
    check()


def _has_repository_data(backend: Backend) -> bool:
    """Return whether `backend` contains snapshots or packs (with or without config)."""
    if isinstance(backend, LocalBackend):
        return backend.exists("snapshots") or backend.exists("packs")
    # An object store has no folders: look for one object under each prefix.
    return any(
        next(iter(backend.list(prefix)), None) is not None
        for prefix in ("snapshots/", "packs/")
    )


def _check_local_root(root: Path) -> None:
    """Reject a repository path that is a file, or a folder odoo-dr cannot open."""
    try:
        is_folder = root.is_dir()
        exists = is_folder or root.exists()
    except OSError as exc:
        raise RepositoryError(
            f"cannot open repository {root}: {exc.strerror or exc}"
        ) from None
    if exists and not is_folder:
        raise RepositoryError(
            f"repository path {root} is a file, not a folder",
            hint="--repo and $ODOO_DR_REPO take the repository's folder, the one "
            "that holds config.json",
        )


class Repository:
    def __init__(
        self,
        backend: Backend,
        config: RepositoryConfig,
        keys: crypto.RepositoryKeys | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.keys = keys
        if config.object_lock is not None and hasattr(backend, "lock_mode"):
            backend.lock_mode = config.object_lock.mode.upper()
        self._retain_until: datetime | None = None
        # The snapshot catalog (see catalog.py): whether listings use it, and
        # whether they may add segments. A failed write or an `?as-of=` view
        # turns writes off.
        self.catalog_enabled = True
        self.catalog_writes = getattr(backend, "as_of", None) is None
        self._catalog_deletes: bool | None = None
        # The unreadable manifests newer than the snapshot `resolve_snapshot` last
        # chose for a tenant: a later snapshot the command could not use.
        self.newer_unreadable: list[str] = []
        self.blobs = BlobStore(
            backend, config.pack_size, keys, retention=self.retain_until
        )

    @property
    def encrypted(self) -> bool:
        return self.keys is not None

    def retain_until(self) -> datetime | None:
        """Return the Object Lock date for this run's writes, or None without a lock.

        The date is fixed by the first call and kept for the life of this object,
        so a snapshot's packs, index files and manifest are all locked until the
        same moment.
        """
        if self.config.object_lock is None:
            return None
        if self._retain_until is None:
            days = timedelta(days=self.config.object_lock.days)
            self._retain_until = datetime.now(UTC).replace(microsecond=0) + days
        return self._retain_until

    @property
    def location(self) -> str:
        return self.backend.describe()

    # -- creating and opening

    @classmethod
    def init(
        cls,
        location: str,
        secret: bytes | None = None,
        kdf: crypto.KdfParameters = crypto.DEFAULT_KDF,
        *,
        lock_days: int | None = None,
        lock_mode: str = "governance",
        region: str | None = None,
    ) -> Repository:
        """Create an empty repository at `location`, encrypted if `secret` is given.

        With `lock_days`, the repository's objects are written with S3 Object Lock
        in `lock_mode` (governance or compliance) for that many days. The bucket
        must have Object Lock enabled. `region` declares where the storage is,
        for the residency check of copies.
        """
        if region is not None:
            region = residency.normalize_region(region)
        backend = _backend_for(location)
        if lock_mode not in ("governance", "compliance"):
            raise RejectedError(
                f"invalid lock mode {lock_mode!r}",
                hint="give --lock-mode governance or --lock-mode compliance",
            )
        _check_lock_request(backend, lock_days)
        if not isinstance(backend, LocalBackend) and backend.exists("config.json"):
            raise RejectedError(
                f"a repository already exists at {backend.describe()}",
                hint="use it as it is, or choose another prefix with --repo",
            )
        if isinstance(backend, LocalBackend):
            root = backend.root
            if root.exists() and not root.is_dir():
                raise RejectedError(
                    f"repository path {root} exists and is not a folder"
                )
            if (root / "config.json").exists():
                raise RejectedError(
                    f"a repository already exists at {root}",
                    hint="use it as it is, or choose another path with --repo",
                )
            if root.is_dir() and any(root.iterdir()):
                raise RejectedError(
                    f"folder {root} is not empty",
                    hint="give an empty or new folder for the repository",
                )
            make_private_folder(root)
            for folder in ("packs", "index", "snapshots", "drills", "locks", "tmp"):
                (root / folder).mkdir(mode=DIR_MODE, exist_ok=True)
        config = RepositoryConfig(
            id=uuid.uuid4().hex,
            created_at=datetime.now(UTC),
            created_by=f"odoo-dr {__version__}",
            chunking={
                "algorithm": "fastcdc",
                "min_size": objects.CHUNK_MIN,
                "avg_size": objects.CHUNK_AVG,
                "max_size": objects.CHUNK_MAX,
            },
            object_lock=(
                None
                if lock_days is None
                else ObjectLockSettings(mode=lock_mode, days=lock_days)
            ),
            region=region,
        )
        keys = None
        readme = REPOSITORY_README
        if secret is not None:
            keys = crypto.RepositoryKeys.generate()
            config.encryption = crypto.ALGORITHM
            config.key_slots = [keys.make_slot(secret, config.id, kdf)]
            readme = ENCRYPTED_REPOSITORY_README
        repository = cls(backend, config, keys)
        backend.write(
            "README.md", readme.encode("utf-8"), retain_until=repository.retain_until()
        )
        if not backend.create_exclusive(
            "config.json", config.to_json(), retain_until=repository.retain_until()
        ):
            raise RejectedError(f"a repository already exists at {backend.describe()}")
        log.info(
            "created repository %s id=%s encryption=%s",
            backend.describe(),
            config.id,
            config.encryption,
        )
        return repository

    @classmethod
    def open(cls, location: str, secret: bytes | None = None) -> Repository:
        """Open the repository at `location`, checking its format.

        An encrypted repository is unlocked with `secret`, or else with the secret
        from $ODOO_DR_KEY_FILE, $ODOO_DR_PASSPHRASE or a prompt on a terminal.
        """
        backend = _backend_for(location)
        if isinstance(backend, LocalBackend):
            _check_local_root(backend.root)
        try:
            raw = backend.read("config.json")
        except ObjectNotFound:
            if _has_repository_data(backend):
                raise RepositoryError(
                    f"{backend.describe()} looks like an odoo-dr repository but its "
                    "config.json is missing",
                    hint="put back config.json from a copy of the repository; every "
                    "repository's config.json has the same format apart from its id",
                ) from None
            if isinstance(backend, LocalBackend) and backend.root.is_dir():
                raise RepositoryError(
                    f"folder {backend.describe()} is not an odoo-dr repository: it "
                    "has no config.json",
                    hint="check --repo and $ODOO_DR_REPO; odoo-dr init creates a "
                    "repository in a new or empty folder",
                ) from None
            raise RepositoryError(
                f"no odoo-dr repository at {backend.describe()}",
                hint=f"create one with: odoo-dr init --repo {location}",
            ) from None
        try:
            config = RepositoryConfig.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            where = f" at {field}" if field else ""
            raise RepositoryError(
                f"invalid repository configuration {backend.describe()}/config.json"
                f"{where}: {first['msg']}",
                hint="put back config.json from a copy of the repository; without "
                "its key slots an encrypted repository cannot be opened",
            ) from None
        unsupported = {
            "object_hash": (config.object_hash, ("sha256",)),
            "compression": (config.compression, ("zstd",)),
            "encryption": (config.encryption, ("none", crypto.ALGORITHM)),
        }
        for name, (value, known) in unsupported.items():
            if value not in known:
                raise RepositoryError(
                    f"repository {backend.describe()} uses {name} {value!r} in its "
                    f"config.json, which this odoo-dr does not support (it supports "
                    f"{', '.join(map(repr, known))})",
                    hint=UPGRADE_OR_PUT_BACK,
                )
        if config.format != FORMAT or config.version > FORMAT_VERSION:
            raise RepositoryError(
                f"repository {backend.describe()} has format {config.format} "
                f"version {config.version} in its config.json, this odoo-dr reads "
                f"{FORMAT} up to version {FORMAT_VERSION}",
                hint=UPGRADE_OR_PUT_BACK,
            )
        keys = None
        if config.encryption == crypto.ALGORITHM:
            keys, _slot = _unlock(backend, config, secret)
        return cls(backend, config, keys)

    # -- keys of an encrypted repository

    def _require_encrypted(self) -> crypto.RepositoryKeys:
        if self.keys is None:
            raise RejectedError(
                f"repository {self.location} is not encrypted, so it has no keys",
                hint="create an encrypted repository with 'odoo-dr init --encrypt' "
                "and copy the snapshots into it",
            )
        return self.keys

    def add_key(
        self, new_secret: bytes, kdf: crypto.KdfParameters = crypto.DEFAULT_KDF
    ) -> crypto.KeySlot:
        """Add a key slot that `new_secret` opens; return it.

        Raises RejectedError when `new_secret` already opens a slot, because a
        second slot for one key would survive a later `change_key` of that key.
        """
        keys = self._require_encrypted()
        slots = self.config.key_slots
        opened = crypto.opened_slots(slots, new_secret, self.config.id)
        if opened:
            raise RejectedError(
                f"the new key already unlocks repository {self.location} (key slot "
                f"{slots[opened[0]].id})",
                hint="nothing was added; give another key to add a second one",
            )
        slot = keys.make_slot(new_secret, self.config.id, kdf)
        self._save_slots([*slots, slot])
        log.info("added key slot %s to repository %s", slot.id, self.location)
        return slot

    def change_key(
        self,
        old_secret: bytes,
        new_secret: bytes,
        kdf: crypto.KdfParameters = crypto.DEFAULT_KDF,
    ) -> crypto.KeySlot:
        """Replace every key slot that `old_secret` opens by one for `new_secret`.

        The master key stays the same, so no stored object is sealed again. When
        `new_secret` already opens a slot, the old key's slots are only removed.
        """
        keys = self._require_encrypted()
        if new_secret == old_secret:
            raise RejectedError(
                "the new key is the same as the current one",
                hint="give a different key",
            )
        slots = list(self.config.key_slots)
        crypto.unlock(slots, old_secret, self.config.id, self.location)
        retired = crypto.opened_slots(slots, old_secret, self.config.id)
        existing = crypto.opened_slots(slots, new_secret, self.config.id)
        removed = [slots[position].id for position in retired]
        if existing:
            slot = slots[existing[0]]
        else:
            slot = keys.make_slot(new_secret, self.config.id, kdf)
            slots[retired[0]] = slot
            retired = retired[1:]
        slots = [item for position, item in enumerate(slots) if position not in retired]
        self._save_slots(slots)
        log.info(
            "changed the key of repository %s: key slot %s opens it, key slot(s) %s "
            "removed",
            self.location,
            slot.id,
            ", ".join(removed),
        )
        return slot

    def _save_slots(self, slots: list[crypto.KeySlot]) -> None:
        """Write config.json with `slots`, by an atomic rename."""
        config = self.config.model_copy(update={"key_slots": slots})
        self.backend.write("config.json", config.to_json(), sync=True)
        self.config = config

    # -- snapshots and drills

    # -- documents: manifests, drill records and other small JSON files

    def write_document(self, key: str, data: bytes, *, sync: bool = True) -> int:
        """Store a small document (a manifest, a record) under `key`.

        In an encrypted repository the document is sealed and bound to `key`, so a
        document moved to another name fails to open. Returns the stored size.
        """
        if self.keys is not None:
            data = self.keys.seal(data, crypto.DOCUMENT + key.encode("utf-8"))
        self.backend.write(key, data, sync=sync, retain_until=self.retain_until())
        return len(data)

    def read_document(self, key: str) -> bytes:
        """Return the document stored under `key`, or raise `ObjectNotFound`.

        Raises `SnapshotDamaged` when an encrypted document fails to open.
        """
        return self._open_document(key, self.backend.read(key))

    def _open_document(self, key: str, data: bytes) -> bytes:
        if self.keys is None:
            return data
        try:
            return self.keys.open(data, crypto.DOCUMENT + key.encode("utf-8"))
        except crypto.DecryptionFailed as exc:
            raise SnapshotDamaged(
                f"document {self.location}/{key} is damaged: {exc}",
                hint="run 'odoo-dr verify' to see what else is damaged",
            ) from None

    def save_snapshot(self, manifest: SnapshotManifest) -> None:
        """Publish a snapshot: its blobs and index are made durable first."""
        self.blobs.flush()
        self._extend_locks(manifest)
        document = manifest.model_dump_json(indent=1).encode("utf-8")
        stored_size = self.write_document(f"snapshots/{manifest.id}.json", document)
        log.info("published snapshot %s tenant=%s", manifest.id, manifest.tenant)
        if self.catalog_enabled and self.catalog_writes:
            self._write_catalog(
                lambda: catalog.write_segment(
                    self,
                    [
                        SnapshotSummary.of(
                            manifest,
                            document,
                            stored_size,
                            self._manifest_stamp(manifest.id),
                        )
                    ],
                    published=[manifest.id],
                )
            )

    def _extend_locks(self, manifest: SnapshotManifest) -> None:
        """Lock what the snapshot reuses at least as long as the snapshot itself.

        Packs and index files of earlier runs may be locked for less time than the
        new manifest, and a locked snapshot must never depend on an object that
        can already be deleted.
        """
        if self.retain_until() is None:
            return
        blob_ids = {chunk for item in manifest.dump for chunk in item.chunks}
        blob_ids.update(manifest.filestore.index.chunks)
        entries = json.loads(self.blobs.read_blob(manifest.filestore.index))
        for entry in entries:
            blob_ids.update(entry["chunks"])
        self.extend_locks(blob_ids)

    def extend_locks(self, blob_ids: set[str]) -> None:
        """Lock the older packs and index files holding `blob_ids` as long as
        this run's writes, when the repository uses Object Lock."""
        until = self.retain_until()
        if until is None:
            return
        keys = {"config.json"}
        index = self.blobs.index
        for blob_id in blob_ids:
            where = index.get(blob_id)
            if where is None or where.pack in self.blobs.written_packs:
                continue
            keys.add(pack_key(where.pack))
            listed_in = index.file_of(where.pack)
            if listed_in is not None and listed_in not in index.saved_files:
                keys.add(listed_in)
        extended = sum(self.backend.extend_retention(key, until) for key in keys)
        if extended:
            log.info(
                "extended the Object Lock of %d reused objects to %s",
                extended,
                until.isoformat(),
            )

    def manifest_path(self, snapshot_id: str) -> str:
        return f"{self.location}/snapshots/{snapshot_id}.json"

    def load_snapshot(
        self,
        snapshot_id: str,
        entries: Mapping[str, SnapshotSummary] | None = None,
    ) -> SnapshotManifest:
        """Return a snapshot's manifest, checked against its catalog entry.

        The entry is looked up in `entries`, or in the catalog when None; a
        manifest without an entry is returned unchecked.
        """
        if entries is None:
            entries = catalog.read_catalog(self).entries if self.catalog_enabled else {}
        return self._read_manifest(snapshot_id, entries.get(snapshot_id))[0]

    def _read_manifest(
        self, snapshot_id: str, entry: SnapshotSummary | None = None
    ) -> tuple[SnapshotManifest, bytes, int]:
        """Return a snapshot's manifest, its plain JSON and its stored size.

        Raises `SnapshotDamaged` when the JSON no longer has the SHA-256 that the
        catalog `entry` recorded when the manifest was written.
        """
        key = f"snapshots/{snapshot_id}.json"
        stored = self.backend.read(key)
        raw = self._open_document(key, stored)
        manifest = self._parse_manifest(snapshot_id, raw)
        if (
            entry is not None
            and hashlib.sha256(raw).hexdigest() != entry.manifest_sha256
        ):
            raise SnapshotDamaged(
                self._changed_message(snapshot_id, entry),
                hint="put back this manifest from a copy of the repository; if it "
                "was changed on purpose, run 'odoo-dr repository rebuild-catalog' "
                "to accept it",
            )
        return manifest, raw, len(stored)

    def _read_manifests(
        self, entries: list[SnapshotSummary]
    ) -> dict[str, tuple[SnapshotManifest, bytes, int] | RepositoryError]:
        """Map the id of each of `entries` to its manifest, plain JSON and stored
        size, or to the error that made it unreadable or changed.

        Manifests are read several at a time, because each read from an object
        store is a request of its own.
        """

        def read(entry: SnapshotSummary):
            try:
                return self._read_manifest(entry.id, entry)
            except StoreUnavailable:
                raise
            except RepositoryError as exc:
                return exc

        ids = [entry.id for entry in entries]
        if len(entries) < 2:
            return dict(zip(ids, map(read, entries), strict=True))
        with ThreadPoolExecutor(
            max_workers=MANIFEST_READERS, thread_name_prefix="odoo-dr-manifest"
        ) as pool:
            return dict(zip(ids, pool.map(read, entries), strict=True))

    def _parse_manifest(self, snapshot_id: str, raw: bytes) -> SnapshotManifest:
        try:
            manifest = SnapshotManifest.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise SnapshotDamaged(
                f"snapshot manifest {snapshot_id} is damaged "
                f"({self.manifest_path(snapshot_id)}): "
                f"{error['msg']}" + (f" at {where}" if where else ""),
                hint="restore another snapshot; run 'odoo-dr verify' for the others",
            ) from None
        if manifest.id != snapshot_id:
            # Trusting the id inside would list the other snapshot twice, hide
            # this one, and let prune delete by the wrong name.
            raise SnapshotDamaged(
                f"snapshot manifest {snapshot_id} is damaged "
                f"({self.manifest_path(snapshot_id)}): it contains the manifest of "
                f"snapshot {manifest.id}",
                hint="put back this manifest from a copy of the repository, or move "
                "the file aside; run 'odoo-dr verify' for the others",
            )
        if manifest.version > MANIFEST_VERSION:
            raise RepositoryError(
                f"snapshot {snapshot_id} has manifest version {manifest.version}, this "
                f"odoo-dr reads up to version {MANIFEST_VERSION}",
                hint="upgrade odoo-dr",
            )
        return manifest

    def snapshot_ids(self) -> list[str]:
        ids = [
            Path(key).stem
            for key in self.backend.list("snapshots/")
            if key.endswith(".json")
        ]
        return sorted(ids)

    def _manifest_listing(self) -> dict[str, str | None]:
        """Return each manifest's change stamp by snapshot id, from one listing.

        Stamps are None where the backend's listing has none (an `?as-of=` view,
        which shows the catalog as it was at that time).
        """
        list_stamps = getattr(self.backend, "list_stamps", None)
        stamps = list_stamps("snapshots/") if list_stamps is not None else None
        if stamps is None:
            return dict.fromkeys(self.snapshot_ids())
        return {
            Path(key).stem: stamp
            for key, stamp in stamps.items()
            if key.endswith(".json")
        }

    def _manifest_stamp(self, snapshot_id: str) -> str | None:
        stamp = getattr(self.backend, "stamp", None)
        return stamp(f"snapshots/{snapshot_id}.json") if stamp is not None else None

    def scan_summaries(
        self, tenant: str | None = None
    ) -> tuple[list[SnapshotSummary], dict[str, str]]:
        """Return the summaries of readable snapshots (oldest first) and, by id, why
        other manifests are unreadable.

        Summaries come from the catalog; only manifests it lacks are read.
        """
        summaries, damaged, _loaded = self._scan_catalog(tenant)
        return summaries, damaged

    def snapshot_summaries(self, tenant: str | None = None) -> list[SnapshotSummary]:
        """Return the summaries of readable snapshots, oldest first, logging the
        damaged ones."""
        summaries, damaged = self.scan_summaries(tenant)
        for snapshot_id, message in damaged.items():
            log.warning("skipping snapshot %s: %s", snapshot_id, message)
        return summaries

    def _scan_catalog(
        self,
        tenant: str | None,
        *,
        compact: bool = False,
        forget: frozenset[str] = frozenset(),
    ) -> tuple[list[SnapshotSummary], dict[str, str], dict[str, SnapshotManifest]]:
        """List the manifests and summarize each, from the catalog where it can.

        Returns the summaries of `tenant` (oldest first), the damaged manifests
        by id, and the manifests read on the way by id. A catalog entry is used
        only while the manifest is listed with the change stamp the entry recorded.
        A manifest that no longer has the SHA-256 its entry recorded, and an entry
        whose manifest is gone without prune having removed it, count as damaged.
        A merge (with `compact`, always) drops the removed ids in `forget`.
        """
        listing = self._manifest_listing()
        contents = (
            catalog.read_catalog(self)
            if self.catalog_enabled
            else catalog.CatalogContents()
        )
        summaries: list[SnapshotSummary] = []
        damaged: dict[str, str] = {}
        loaded: dict[str, SnapshotManifest] = {}
        added: list[SnapshotSummary] = []
        for snapshot_id in sorted(listing):
            summary = contents.entries.get(snapshot_id)
            stamp = listing[snapshot_id]
            if summary is None or stamp not in (None, summary.manifest_stamp):
                try:
                    manifest, document, stored_size = self._read_manifest(
                        snapshot_id, summary
                    )
                except StoreUnavailable:
                    raise
                except RepositoryError as exc:
                    damaged[snapshot_id] = exc.message
                    continue
                summary = SnapshotSummary.of(manifest, document, stored_size, stamp)
                loaded[snapshot_id] = manifest
                added.append(summary)
            summaries.append(summary)
        missing = self._missing_manifests(contents, listing)
        for snapshot_id, entry in missing.items():
            if tenant is None or entry.tenant == tenant:
                damaged[snapshot_id] = self._missing_message(entry)
        if self.catalog_enabled:
            # Every tenant's evidence, also when the listing is of one tenant.
            evidence = {*damaged, *missing}
            self._update_catalog(
                contents,
                summaries,
                added,
                set(listing),
                evidence,
                compact=compact,
                forget=forget,
            )
        if tenant is not None:
            summaries = [item for item in summaries if item.tenant == tenant]
        summaries.sort(key=lambda item: item.snapshot_time)
        return summaries, damaged, loaded

    def _missing_manifests(
        self, contents: catalog.CatalogContents, listing: dict[str, str | None]
    ) -> dict[str, SnapshotSummary]:
        """Return the catalog entries, by id, of manifests deleted but not pruned.

        Each candidate is checked once more against a new read of the catalog and
        the manifest itself. A prune may have merged away the segment that listed
        it as removed while `contents` was read. A backup may have published the
        manifest after the listing.
        """
        candidates = [
            snapshot_id
            for snapshot_id in contents.entries
            if snapshot_id not in listing and snapshot_id not in contents.removed
        ]
        if not candidates:
            return {}
        again = catalog.read_catalog(self)
        missing = {}
        for snapshot_id in candidates:
            if snapshot_id not in again.entries or snapshot_id in again.removed:
                continue
            if self.backend.exists(f"snapshots/{snapshot_id}.json"):
                continue
            missing[snapshot_id] = contents.entries[snapshot_id]
        return missing

    def missing_manifests(
        self,
        contents: catalog.CatalogContents | None = None,
        listed: Iterable[str] | None = None,
    ) -> dict[str, str]:
        """Return, by snapshot id, why each manifest deleted but not pruned is
        missing, from the catalog `contents` and the `listed` snapshot ids when
        given."""
        if not self.catalog_enabled:
            return {}
        if contents is None:
            contents = catalog.read_catalog(self)
        listing = self._manifest_listing() if listed is None else dict.fromkeys(listed)
        missing = self._missing_manifests(contents, listing)
        return {
            snapshot_id: self._missing_message(entry)
            for snapshot_id, entry in sorted(missing.items())
        }

    def _missing_message(self, entry: SnapshotSummary) -> str:
        return (
            f"snapshot manifest {entry.id} of tenant {entry.tenant!r} is missing "
            f"({self.manifest_path(entry.id)}): the catalog lists it, and no prune "
            "removed it"
        )

    def _changed_message(self, snapshot_id: str, entry: SnapshotSummary) -> str:
        return (
            f"snapshot manifest {snapshot_id} is damaged "
            f"({self.manifest_path(snapshot_id)}): its SHA-256 differs from "
            f"{entry.manifest_sha256[:16]}..., the one recorded when it was written"
        )

    def _update_catalog(
        self,
        contents: catalog.CatalogContents,
        current: list[SnapshotSummary],
        added: list[SnapshotSummary],
        listed: set[str],
        evidence: set[str],
        *,
        compact: bool,
        forget: frozenset[str],
    ) -> None:
        """Add the new summaries as a segment, or merge every segment into one.

        Segments are merged when one is damaged, when there are more than
        MAX_SEGMENTS, or when most entries, and more than MAX_SEGMENTS, are of
        pruned or changed manifests. A merge keeps the entries of damaged and
        missing manifests (`evidence`), and the removed ids that a listed manifest
        or an entry still needs or that are younger than `catalog.REMOVED_KEEP`.
        """
        if not self.catalog_writes:
            return
        witnessed = [
            entry
            for snapshot_id, entry in contents.entries.items()
            if snapshot_id in evidence
        ]
        used = len(current) - len(added)
        stale = len(contents.entries) - used - len(witnessed)
        segments = len(contents.segments) + (1 if added else 0)
        merge = (
            compact
            or contents.damaged
            or segments > catalog.MAX_SEGMENTS
            or stale > max(used, catalog.MAX_SEGMENTS)
        )
        if merge and self._may_delete_segments():
            old_keys = [*contents.segments, *contents.damaged]
            # A removed id stays while its manifest is listed (a prune deleting
            # it now, or one killed before it did), while an entry names it, and
            # for REMOVED_KEEP after prune listed it.
            recent = datetime.now(UTC) - catalog.REMOVED_KEEP
            removed = {
                snapshot_id: moment
                for snapshot_id, moment in contents.removed.items()
                if snapshot_id not in forget
                and (
                    snapshot_id in listed
                    or snapshot_id in contents.entries
                    or moment > recent
                )
            }
            self._write_catalog(
                lambda: catalog.replace_segments(
                    self, [*current, *witnessed], old_keys, removed
                )
            )
        elif added:
            self._write_catalog(lambda: catalog.write_segment(self, added))

    def _may_delete_segments(self) -> bool:
        """Return whether this credential may delete catalog segments.

        A merge by an append-only credential (see docs/s3.md) could not delete
        the segments it merged, so each listing would add a full copy. The probe
        deletes a key that does not exist: a no-op where deleting is allowed (a
        delete marker in a versioned bucket), DeleteDenied where it is not.
        """
        if self._catalog_deletes is None:
            try:
                self.backend.delete(f"{catalog.CATALOG_PREFIX}.delete-probe")
                self._catalog_deletes = True
            except OdooDrError as exc:
                self._catalog_deletes = False
                log.info(
                    "not merging the snapshot catalog of %s, since deleting there "
                    "failed: %s; a credential that may delete (prune's) merges it",
                    self.location,
                    exc.message,
                )
        return self._catalog_deletes

    def _write_catalog(self, write: Callable[[], str]) -> None:
        """Run a catalog write; on failure, log it and write no more.

        The catalog only saves reads, so a read-only repository (a mount, a
        credential without write access, an `?as-of=` view) still lists snapshots.
        """
        try:
            write()
        except OdooDrError as exc:
            self.catalog_writes = False
            log.info(
                "snapshot catalog of %s not updated: %s", self.location, exc.message
            )

    def catalog_stale_entries(self) -> int:
        """Return how many catalog entries name manifests that prune deleted."""
        listing = self._manifest_listing()
        contents = catalog.read_catalog(self)
        return sum(
            1
            for snapshot_id in contents.entries
            if snapshot_id not in listing and snapshot_id in contents.removed
        )

    def compact_catalog(self) -> None:
        """Merge the catalog into one segment without entries of pruned snapshots."""
        self._scan_catalog(None, compact=True)

    def mark_removed(self, snapshot_ids: list[str]) -> None:
        """Record in the catalog that prune deletes `snapshot_ids`, before it does.

        Their catalog entries then do not read as deleted manifests. Raises
        `RepositoryError` when the segment cannot be written, so that prune
        deletes nothing.
        """
        if snapshot_ids and self.catalog_enabled:
            now = datetime.now(UTC)
            removed = dict.fromkeys(snapshot_ids, now)
            catalog.write_segment(self, [], removed=removed)

    def forget_stale_removals(self) -> None:
        """Drop the removed ids of manifests that are still listed.

        A prune killed between listing a snapshot as removed and deleting it
        leaves such an id, and it would hide a later deletion of the manifest.
        Only prune calls this, under its lock, so no other prune is deleting
        those manifests.
        """
        if not self.catalog_enabled or not self.catalog_writes:
            return
        contents = catalog.read_catalog(self)
        stale = frozenset(set(contents.removed) & set(self._manifest_listing()))
        if stale:
            log.info(
                "forgetting %d snapshots listed as removed by a prune that did not "
                "delete them",
                len(stale),
            )
            self._scan_catalog(None, compact=True, forget=stale)

    def rebuild_catalog(self) -> tuple[int, dict[str, str]]:
        """Write the catalog again from every manifest, replacing all segments.

        This accepts the manifests as they are: the entries of changed and
        missing manifests are dropped. Returns the number of snapshots cataloged
        and, by id, the unreadable manifests. Raises `RepositoryError` when the
        repository is not writable.
        """
        old_keys = sorted(
            key
            for key in self.backend.list(catalog.CATALOG_PREFIX)
            if key.endswith(".json")
        )
        summaries = []
        damaged = {}
        for snapshot_id, stamp in sorted(self._manifest_listing().items()):
            try:
                manifest, document, stored_size = self._read_manifest(snapshot_id)
            except RepositoryError as exc:
                damaged[snapshot_id] = exc.message
                continue
            summaries.append(SnapshotSummary.of(manifest, document, stored_size, stamp))
        catalog.replace_segments(self, summaries, old_keys)
        return len(summaries), damaged

    def scan_snapshots(
        self, tenant: str | None = None
    ) -> tuple[list[SnapshotManifest], dict[str, str]]:
        """Return readable snapshots (oldest first) and, by id, why others are not.

        One damaged manifest must not stop the backups or drills of other snapshots,
        so it is reported rather than raised. The catalog picks the manifests of
        `tenant`; each chosen manifest is then read in full.
        """
        summaries, damaged, loaded = self._scan_catalog(tenant)
        read = self._read_manifests(
            [summary for summary in summaries if summary.id not in loaded]
        )
        manifests = []
        for summary in summaries:
            manifest = loaded.get(summary.id)
            if manifest is None:
                result = read[summary.id]
                if isinstance(result, RepositoryError):
                    damaged[summary.id] = result.message
                    continue
                manifest = result[0]
            manifests.append(manifest)
        manifests.sort(key=lambda manifest: manifest.snapshot_time)
        return manifests, dict(sorted(damaged.items()))

    def list_snapshots(self, tenant: str | None = None) -> list[SnapshotManifest]:
        """Return the readable snapshots, oldest first, logging the damaged ones."""
        manifests, damaged = self.scan_snapshots(tenant)
        for snapshot_id, message in damaged.items():
            log.warning("skipping snapshot %s: %s", snapshot_id, message)
        return manifests

    def find_snapshot(self, reference: str) -> SnapshotManifest:
        """Return the snapshot whose id is or starts with `reference`, checked
        against its catalog entry."""
        ids = self.snapshot_ids()
        entries = catalog.read_catalog(self).entries if self.catalog_enabled else {}
        if reference in ids:
            return self.load_snapshot(reference, entries)
        matches = [
            snapshot_id for snapshot_id in ids if snapshot_id.startswith(reference)
        ]
        if len(matches) == 1:
            return self.load_snapshot(matches[0], entries)
        if matches:
            raise RejectedError(
                f"snapshot id prefix {reference!r} is ambiguous: it matches "
                f"{', '.join(matches[:5])}",
                hint="give more characters of the id",
            )
        raise RejectedError(
            f"snapshot {reference!r} not found in repository {self.location}",
            hint="list snapshots with: odoo-dr snapshots",
        )

    def latest_snapshot(self, tenant: str) -> SnapshotManifest | None:
        """Return the newest readable snapshot of `tenant`, reading one manifest
        when the catalog is up to date."""
        summaries = self.snapshot_summaries(tenant)
        return self._load_newest(tenant, summaries, {})

    def _load_newest(
        self, tenant: str, summaries: list[SnapshotSummary], damaged: dict[str, str]
    ) -> SnapshotManifest | None:
        """Return the newest of `summaries` whose manifest reads as `tenant`'s.

        A manifest that fails now is added to `damaged` and the next older is
        tried, as a listing of full manifests would have skipped it.
        """
        for summary in reversed(summaries):
            try:
                manifest = self.load_snapshot(summary.id, {summary.id: summary})
            except StoreUnavailable:
                raise
            except RepositoryError as exc:
                log.warning("skipping snapshot %s: %s", summary.id, exc.message)
                damaged[summary.id] = exc.message
                continue
            if manifest.tenant == tenant:
                return manifest
        return None

    def resolve_snapshot(self, reference: str) -> SnapshotManifest:
        """Return the snapshot named by `reference`: a tenant, an id or an id prefix.

        A tenant means its latest readable snapshot. Each error names the reason
        nothing was chosen: a damaged manifest (with its file), an ambiguous prefix
        (with the ids it matches), or no match at all (with the manifests that
        could not be read, since one of them may be the one meant).
        """
        summaries, damaged = self.scan_summaries()
        of_tenant = [item for item in summaries if item.tenant == reference]
        latest = self._load_newest(reference, of_tenant, damaged)
        self.newer_unreadable = []
        if latest is not None:
            self.newer_unreadable = _warn_newer_damaged(reference, latest, damaged)
            return latest
        by_id = {item.id: item for item in summaries if item.id not in damaged}
        if reference in by_id:
            return self.load_snapshot(reference, by_id)
        if reference in damaged:
            self._raise_damaged(reference, damaged[reference])
        ids = [*by_id, *damaged]
        matches = sorted(
            snapshot_id for snapshot_id in ids if snapshot_id.startswith(reference)
        )
        if len(matches) == 1 and matches[0] in damaged:
            self._raise_damaged(matches[0], damaged[matches[0]])
        if len(matches) == 1:
            return self.load_snapshot(matches[0], by_id)
        if matches:
            listed = ", ".join(
                f"{snapshot_id} ({by_id[snapshot_id].tenant!r})"
                if snapshot_id in by_id
                else f"{snapshot_id} (unreadable)"
                for snapshot_id in matches[:10]
            )
            more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
            raise RejectedError(
                f"snapshot id prefix {reference!r} is ambiguous: it matches "
                f"{len(matches)} snapshots, {listed}{more}",
                hint="give more characters of the id",
            )
        if damaged:
            files = ", ".join(
                self.manifest_path(snapshot_id) for snapshot_id in sorted(damaged)[:5]
            )
            raise RejectedError(
                f"no snapshot or tenant named {reference!r} among the readable "
                f"snapshots of repository {self.location}; {len(damaged)} snapshot "
                f"manifest(s) could not be read, and one of them may be it: {files}",
                hint="run 'odoo-dr verify' to see why; list the others with: "
                "odoo-dr snapshots",
            )
        raise RejectedError(
            f"no snapshot or tenant named {reference!r} in repository {self.location}",
            hint="list snapshots with: odoo-dr snapshots",
        )

    def _raise_damaged(self, snapshot_id: str, message: str) -> None:
        """Raise the error that makes `snapshot_id` damaged: the manifest's own
        when it cannot be read, else `message` (a changed or missing manifest)."""
        try:
            self.load_snapshot(snapshot_id)
        except ObjectNotFound:
            pass
        raise SnapshotDamaged(
            message,
            hint="put back this manifest from a copy of the repository, or restore "
            "another snapshot; run 'odoo-dr verify' to see what else is damaged",
        )

    def check_writable(self, folder: str, purpose: str) -> None:
        """Write and remove an empty file in `folder`, as a save there would.

        Raises `RepositoryError` naming the path when the repository is read-only
        for this process (permissions, a read-only mount, a full disk).
        """
        key = f"{folder}/.write-test-{tempfiles.temporary_name()}"
        try:
            self.backend.write(key, b"")
        except RepositoryError as exc:
            raise RepositoryError(
                f"repository {self.location} is not writable, and {purpose}: "
                f"{exc.message}",
                hint=exc.hint,
            ) from None
        try:
            self.backend.delete(key)
        except DeleteDenied:
            # An append-only credential may write but not delete. The empty test
            # file harms nothing, and a credential that may delete can remove it.
            log.info("left write test file %s: this credential may not delete", key)

    def save_drill(self, record: DrillRecord) -> None:
        self.write_document(
            f"drills/{record.id}.json",
            record.model_dump_json(indent=1).encode("utf-8"),
        )

    def list_drills(self, tenant: str | None = None) -> list[DrillRecord]:
        records = []
        for key in sorted(self.backend.list("drills/")):
            if not key.endswith(".json"):
                continue
            try:
                record = DrillRecord.model_validate_json(
                    self.read_document(key), strict=True
                )
            except ValidationError as exc:
                log.warning(
                    "skipping damaged drill record %s: %s", key, exc.errors()[0]["msg"]
                )
                continue
            except SnapshotDamaged as exc:
                log.warning("skipping damaged drill record %s: %s", key, exc.message)
                continue
            if tenant is None or record.tenant == tenant:
                records.append(record)
        return records

    # -- housekeeping

    def refresh(self) -> None:
        """Forget the index read and the lock date, for the next run of a loop.

        Another process (a backup, a prune) may have changed the index since.
        """
        self._retain_until = None
        self.blobs = BlobStore(
            self.backend, self.config.pack_size, self.keys, retention=self.retain_until
        )

    def lock_tenant(self, tenant: str, operation: str) -> TenantLock:
        return TenantLock(self.backend, tenant, operation, self.keys)

    def cleanup(self) -> None:
        removed = self.backend.cleanup_stale_writes()
        if removed:
            log.info(
                "removed %d leftover temporary files from %s", removed, self.location
            )


def _unlock(
    backend: Backend, config: RepositoryConfig, secret: bytes | None
) -> tuple[crypto.RepositoryKeys, int]:
    """Return the keys of an encrypted repository and the slot that opened it."""
    location = backend.describe()
    if not config.key_slots:
        raise RepositoryError(
            f"encrypted repository {location} has no key slots in its config.json",
            hint="put back config.json from a copy of the repository",
        )
    if secret is None:
        secret = crypto.secret_from_environment(
            prompt=f"Passphrase of repository {location}: "
        )
    if secret is None:
        raise crypto.missing_secret(location)
    return crypto.unlock(config.key_slots, secret, config.id, location)


def _warn_newer_damaged(
    tenant: str, latest: SnapshotManifest, damaged: dict[str, str]
) -> list[str]:
    """Log and return the unreadable manifests newer than the snapshot chosen.

    Snapshot ids begin with their time to the second, so an unreadable manifest
    of the same second or later may be a later snapshot of the same tenant that
    the restore cannot use.
    """
    second = latest.id[: len("YYYYMMDD-HHMMSS")]
    newer = sorted(
        snapshot_id
        for snapshot_id in damaged
        if snapshot_id[: len(second)] >= second and snapshot_id != latest.id
    )
    if newer:
        log.warning(
            "using snapshot %s, the latest readable one of tenant %r; the newer "
            "snapshot manifest(s) %s cannot be read and may belong to it",
            latest.id,
            tenant,
            ", ".join(newer),
        )
    return newer


def new_id(moment: datetime) -> str:
    """Return a snapshot or drill id: sortable by time, unique by its random tail."""
    return f"{moment.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def dump_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")
