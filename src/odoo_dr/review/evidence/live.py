"""Live evidence: what a running PostgreSQL, Redis, S3 bucket or repository reports.

A collector returns the facts it could read. A source that cannot be reached at all
raises `EvidenceUnavailable`, and a fact it may not read (a missing privilege, a
disabled command) is left unknown and named in the facts' `problems`. `collect_live`
turns both into evidence problems, which the report lists: a review never fails
because a live source cannot be read.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, LiteralString

import psycopg

from odoo_dr.errors import OdooDrError, SnapshotDamaged
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.repository.manifest import DrillRecord, SnapshotManifest

if TYPE_CHECKING:
    from odoo_dr.review.inventory import EvidenceSources

log = logging.getLogger(__name__)


class EvidenceUnavailable(Exception):
    """A live source that could not be read; the message gives the reason."""


# Settings the PostgreSQL rules read.
POSTGRES_SETTINGS = (
    "archive_mode",
    "archive_command",
    "archive_library",
    "archive_timeout",
    "wal_level",
    "max_wal_senders",
    "restore_command",
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "synchronous_standby_names",
    "ssl",
)


@dataclass
class PostgresFacts:
    server_version: int
    settings: dict[str, str]
    archiver: dict[str, Any]
    in_recovery: bool
    replicas: list[dict[str, Any]]
    superusers: list[str]
    current_user: str
    current_user_superuser: bool
    databases: list[str]
    collected_at: datetime
    # Whether pg_stat_replication showed its state and lag columns: they are empty
    # for roles without pg_read_all_stats.
    replication_visible: bool = True
    database_sizes: dict[str, int] = field(default_factory=dict)
    # On a standby: the WAL receiver's status and the replay delay in seconds.
    wal_receiver: str | None = None
    replay_delay_seconds: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def archiving(self) -> bool:
        """Whether WAL archiving is on with a command or library to archive with."""
        command = self.settings.get("archive_command", "")
        library = self.settings.get("archive_library", "")
        return self.settings.get("archive_mode") in {"on", "always"} and bool(
            command not in {"", "(disabled)"} or library
        )

    @property
    def archive_age_seconds(self) -> float | None:
        """Seconds since the last WAL segment was archived; None if none was."""
        last = self.archiver.get("last_archived_time")
        if last is None:
            return None
        return (self.collected_at - last).total_seconds()

    @property
    def recovery_settings(self) -> dict[str, str]:
        """restore_command and recovery_target* settings that are set."""
        return {
            name: value
            for name, value in self.settings.items()
            if (name == "restore_command" or name.startswith("recovery_target"))
            and value not in ("", "unset")
        }


@dataclass
class RedisFacts:
    persistence: dict[str, Any]
    replication: dict[str, Any]
    server: dict[str, Any]
    # CONFIG GET values (save, appendonly, appendfsync, dir); empty when CONFIG is
    # denied or renamed, and then `problems` records why.
    config: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def rdb_enabled(self) -> bool | None:
        """Whether RDB save points are configured; None when CONFIG was unreadable."""
        if "save" not in self.config:
            return None
        return bool(self.config["save"].strip())

    @property
    def aof_enabled(self) -> bool:
        return str(self.persistence.get("aof_enabled", 0)) == "1"


@dataclass
class BucketFacts:
    bucket: str
    versioning: str | None
    object_lock: dict[str, Any] | None
    lifecycle_rules: list[dict[str, Any]] | None
    encryption: dict[str, Any] | None
    replication: dict[str, Any] | None
    region: str | None = None
    # Bytes stored below the prefix by S3 storage class, every version included;
    # `size_complete` is False when the listing stopped at MAX_LISTED_OBJECTS.
    sizes_by_class: dict[str, int] | None = None
    objects: int = 0
    size_complete: bool = True
    # Settings that could not be read (access denied), as opposed to not set.
    unknown: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


@dataclass
class RepositoryFacts:
    location: str
    snapshots: list[SnapshotManifest]
    drills: list[DrillRecord]
    unreadable: dict[str, str] = field(default_factory=dict)
    size_bytes: int | None = None


@dataclass
class LiveEvidence:
    postgres: PostgresFacts | None = None
    redis: RedisFacts | None = None
    bucket: BucketFacts | None = None
    repository: RepositoryFacts | None = None
    problems: list[str] = field(default_factory=list)


def collect_live(
    sources: EvidenceSources, base: Path, environment: str
) -> LiveEvidence:
    """Read every live source `sources` names; paths are relative to `base`.

    Each failure becomes a problem prefixed with `environment`, never an exception:
    the catch-all below is the boundary that keeps one unreadable source (or a bug
    in reading it) from stopping the review of everything else.
    """
    evidence = LiveEvidence()
    calls = []
    if sources.postgres_dsn:
        calls.append(("postgres", collect_postgres, (sources.postgres_dsn,)))
    if sources.redis_url:
        calls.append(("redis", collect_redis, (sources.redis_url,)))
    if sources.s3 is not None:
        s3 = sources.s3
        calls.append(
            (
                "bucket",
                collect_bucket,
                (s3.bucket, s3.endpoint_url, s3.region, s3.prefix),
            )
        )
    if sources.repository:
        location = str((base / sources.repository).resolve())
        calls.append(("repository", collect_repository, (location,)))
    for attribute, collect, arguments in calls:
        try:
            facts = collect(*arguments)
        except EvidenceUnavailable as exc:
            evidence.problems.append(f"{environment}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.exception("reading %s evidence of %s failed", attribute, environment)
            evidence.problems.append(
                f"{environment}: reading {attribute} evidence failed: "
                f"{type(exc).__name__}: {exc}"
            )
            continue
        setattr(evidence, attribute, facts)
        for problem in getattr(facts, "problems", []):
            evidence.problems.append(f"{environment}: {problem}")
    return evidence


# -- PostgreSQL


def collect_postgres(dsn: str) -> PostgresFacts:
    """Read archiving, replication, roles and databases from a PostgreSQL server.

    Privileges: any role that may connect to the `postgres` database reads the
    settings (tested on PostgreSQL 15), pg_stat_archiver, roles and databases. The
    state and lag of pg_stat_replication need pg_read_all_stats, and database sizes
    need CONNECT on each database or pg_read_all_stats: grant pg_monitor, which
    includes it. What a role may not read is left unknown and listed in `problems`.
    """
    try:
        settings = PgSettings.from_options(dsn=dsn)
    except OdooDrError as exc:
        # The message speaks of --dsn, which is postgres_dsn here.
        message = exc.message.replace("--dsn", "postgres_dsn")
        raise EvidenceUnavailable(f"PostgreSQL: {message}") from None
    if "connect_timeout" not in settings.params:
        settings = PgSettings(
            {**settings.params, "connect_timeout": "10"}, settings.password
        )
    problems: list[str] = []
    try:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            facts = _read_postgres(connection, problems)
    except OdooDrError as exc:
        raise EvidenceUnavailable(f"PostgreSQL: {exc.message}") from None
    except psycopg.Error as exc:
        raise EvidenceUnavailable(
            f"PostgreSQL at {settings.describe()}: {str(exc).strip().splitlines()[0]}"
        ) from None
    facts.problems = problems
    return facts


def _rows(
    connection: psycopg.Connection, query: LiteralString, *args: Any
) -> list[dict]:
    cursor = connection.execute(query, args or None)
    columns = [column.name for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor]


def _read_postgres(
    connection: psycopg.Connection, problems: list[str]
) -> PostgresFacts:
    where = f"PostgreSQL at {connection.info.host}:{connection.info.port}"
    values = {
        row["name"]: str(row["setting"])
        for row in _rows(
            connection,
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
            list(POSTGRES_SETTINGS),
        )
    }

    archiver = _rows(
        connection,
        "SELECT archived_count, last_archived_wal, last_archived_time, failed_count,"
        " last_failed_wal, last_failed_time, now() FROM pg_stat_archiver",
    )[0]

    in_recovery = bool(connection.execute("SELECT pg_is_in_recovery()").fetchone()[0])

    replicas = _rows(
        connection,
        "SELECT application_name, client_addr::text, state, sync_state,"
        " extract(epoch FROM write_lag)::float8 AS write_lag_seconds,"
        " extract(epoch FROM flush_lag)::float8 AS flush_lag_seconds,"
        " extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds,"
        " CASE WHEN pg_is_in_recovery() THEN NULL"
        " ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 END"
        " AS replay_lag_bytes FROM pg_stat_replication ORDER BY application_name",
    )
    visible = all(row["state"] is not None for row in replicas)
    if not visible:
        problems.append(
            f"{where}: the state and lag of {len(replicas)} replicas are hidden from "
            "this role; grant it pg_monitor (or pg_read_all_stats)"
        )

    receiver = None
    delay = None
    if in_recovery:
        row = connection.execute(
            "SELECT (SELECT status FROM pg_stat_wal_receiver),"
            " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
        ).fetchone()
        receiver, delay = row[0], row[1]

    superusers = [
        row["rolname"]
        for row in _rows(
            connection,
            "SELECT rolname FROM pg_roles WHERE rolsuper AND rolcanlogin"
            " ORDER BY rolname",
        )
    ]
    user, is_super = connection.execute(
        "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()

    databases = _rows(
        connection,
        "SELECT datname, CASE WHEN has_database_privilege(oid, 'CONNECT')"
        " OR pg_has_role('pg_read_all_stats', 'MEMBER')"
        " THEN pg_database_size(oid) END AS size"
        " FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'"
        " ORDER BY datname",
    )
    unsized = [row["datname"] for row in databases if row["size"] is None]
    if unsized:
        problems.append(
            f"{where}: sizes of {', '.join(unsized)} not readable by this role; grant "
            "it pg_monitor (or CONNECT on those databases)"
        )

    return PostgresFacts(
        server_version=connection.info.server_version,
        settings=values,
        archiver=archiver,
        in_recovery=in_recovery,
        replicas=replicas,
        superusers=superusers,
        current_user=user,
        current_user_superuser=bool(is_super),
        databases=[row["datname"] for row in databases],
        collected_at=archiver["now"],
        replication_visible=visible,
        database_sizes={
            row["datname"]: int(row["size"])
            for row in databases
            if row["size"] is not None
        },
        wal_receiver=receiver,
        replay_delay_seconds=delay,
    )


# -- Redis

REDIS_CONFIG = ("save", "appendonly", "appendfsync", "dir")


def collect_redis(url: str) -> RedisFacts:
    """Read INFO persistence, replication and server, and the persistence CONFIG.

    Privileges: INFO (`+info`) is required; CONFIG GET (`+config|get`) is read when
    allowed. Otherwise whether RDB save points are set stays unknown, and
    `problems` records why. Managed services often rename or deny CONFIG.
    """
    import redis

    where = f"Redis at {_redacted(url)}"
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        facts = RedisFacts(
            persistence=client.info("persistence"),
            replication=client.info("replication"),
            server=client.info("server"),
        )
    except redis.RedisError as exc:
        raise EvidenceUnavailable(f"{where}: {exc}") from None
    except ValueError:
        # redis-py rejects the URL; its message may quote it.
        raise EvidenceUnavailable(f"{where}: not a valid Redis URL") from None
    try:
        for name in REDIS_CONFIG:
            facts.config.update(
                {str(k): str(v) for k, v in client.config_get(name).items()}
            )
    except redis.ResponseError as exc:
        facts.config.clear()
        facts.problems.append(
            f"{where}: CONFIG GET failed ({exc}); whether RDB snapshots are "
            "configured is unknown, allow +config|get for the review's user"
        )
    finally:
        client.close()
    return facts


def _redacted(url: str) -> str:
    """Return `url` without its user information (which may hold a password, and
    an `@` in it) and without the value of a `password` query parameter."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "***"
    rest, question, query = rest.partition("?")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    if question:
        query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", query)
    return f"{scheme}://{rest}{question}{query}"


# -- S3 bucket

# The listing that sizes a bucket stops after this many object versions, so that a
# review of a huge bucket stays quick. The size is then a lower bound.
MAX_LISTED_OBJECTS = 100_000
_NOT_CONFIGURED = {
    "NoSuchLifecycleConfiguration",
    "ObjectLockConfigurationNotFoundError",
    "ServerSideEncryptionConfigurationNotFoundError",
    "ReplicationConfigurationNotFoundError",
    "NoSuchBucketPolicy",
}
_DENIED = {"AccessDenied", "AllAccessDisabled", "UnauthorizedOperation"}


def collect_bucket(
    bucket: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    prefix: str = "",
) -> BucketFacts:
    """Read a bucket's versioning, Object Lock, lifecycle, default encryption,
    replication and region, and add up the size of the objects below `prefix`.

    Credentials come from boto3's usual chain (environment, profile, instance role).
    Privileges: s3:GetBucketVersioning, s3:GetBucketObjectLockConfiguration,
    s3:GetLifecycleConfiguration, s3:GetEncryptionConfiguration,
    s3:GetReplicationConfiguration, s3:GetBucketLocation, and s3:ListBucket with
    s3:ListBucketVersions for the size. A setting that is denied is recorded in
    `unknown`, not taken as absent.
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    config = Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 2})
    try:
        client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
    except ValueError as exc:
        raise EvidenceUnavailable(f"S3 bucket {bucket}: {exc}") from None
    facts = BucketFacts(bucket, None, None, None, None, None)

    def read(name: str, call: str, key: str) -> Any:
        try:
            return getattr(client, call)(Bucket=bucket).get(key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _NOT_CONFIGURED:
                return None
            if code in _DENIED:
                facts.unknown.add(name)
                facts.problems.append(f"S3 bucket {bucket}: {call} denied ({code})")
                return None
            raise

    try:
        facts.versioning = read("versioning", "get_bucket_versioning", "Status")
        facts.object_lock = read(
            "object_lock", "get_object_lock_configuration", "ObjectLockConfiguration"
        )
        facts.lifecycle_rules = read(
            "lifecycle", "get_bucket_lifecycle_configuration", "Rules"
        )
        facts.encryption = read(
            "encryption", "get_bucket_encryption", "ServerSideEncryptionConfiguration"
        )
        facts.replication = read(
            "replication", "get_bucket_replication", "ReplicationConfiguration"
        )
        if "versioning" not in facts.unknown:
            location = read("region", "get_bucket_location", "LocationConstraint")
            # S3 returns no LocationConstraint for us-east-1.
            facts.region = location or (
                None if "region" in facts.unknown else "us-east-1"
            )
        _size_bucket(client, facts, prefix)
    except (ClientError, BotoCoreError) as exc:
        raise EvidenceUnavailable(f"S3 bucket {bucket}: {exc}") from None
    return facts


def _size_bucket(client: Any, facts: BucketFacts, prefix: str) -> None:
    from botocore.exceptions import ClientError

    versioned = facts.versioning in ("Enabled", "Suspended")
    operation = "list_object_versions" if versioned else "list_objects_v2"
    sizes: dict[str, int] = {}
    count = 0
    try:
        pages = client.get_paginator(operation).paginate(
            Bucket=facts.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Versions" if versioned else "Contents", []):
                storage_class = item.get("StorageClass") or "STANDARD"
                sizes[storage_class] = sizes.get(storage_class, 0) + int(item["Size"])
                count += 1
            if count >= MAX_LISTED_OBJECTS:
                facts.size_complete = False
                break
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in _DENIED:
            raise
        facts.unknown.add("size")
        facts.problems.append(f"S3 bucket {facts.bucket}: {operation} denied ({code})")
        return
    facts.sizes_by_class = sizes
    facts.objects = count


# -- odoo-dr repository


def collect_repository(location: str) -> RepositoryFacts:
    """Read the snapshot manifests, drill records and size of an odoo-dr repository.

    Privileges: read access to the repository folder. Damaged manifests and drill
    records are listed in `unreadable` and skipped.
    """
    from pydantic import ValidationError

    from odoo_dr.repository.store import Repository

    try:
        repository = Repository.open(location)
        snapshots, unreadable = repository.scan_snapshots()
        drills = []
        for key in sorted(repository.backend.list("drills/")):
            if not key.endswith(".json"):
                continue
            try:
                drills.append(
                    DrillRecord.model_validate_json(repository.read_document(key))
                )
            except ValidationError as exc:
                unreadable[key] = f"damaged drill record: {exc.errors()[0]['msg']}"
            except SnapshotDamaged as exc:
                unreadable[key] = exc.message
    except OdooDrError as exc:
        raise EvidenceUnavailable(f"odoo-dr repository: {exc.message}") from None
    return RepositoryFacts(
        repository.location, snapshots, drills, unreadable, _folder_size(location)
    )


def _folder_size(location: str) -> int | None:
    """Return the bytes of the files below a local repository folder."""
    total = 0
    try:
        for folder, _dirs, files in os.walk(location):
            for name in files:
                total += os.lstat(os.path.join(folder, name)).st_size
    except OSError:
        return None
    return total
