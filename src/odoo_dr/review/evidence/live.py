"""Live evidence: what a running PostgreSQL, Redis, S3 bucket or repository reports.

Each collector returns facts or raises `EvidenceUnavailable` with the reason, which
the report lists; a review never fails because a live source cannot be reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from odoo_dr.errors import OdooDrError
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.repository.manifest import DrillRecord, SnapshotManifest


class EvidenceUnavailable(Exception):
    """A live source that could not be read; the message says why."""


# Settings the PostgreSQL rules read.
POSTGRES_SETTINGS = (
    "archive_mode",
    "archive_command",
    "archive_library",
    "archive_timeout",
    "wal_level",
    "max_wal_senders",
    "restore_command",
    "recovery_target_time",
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


@dataclass
class RedisFacts:
    persistence: dict[str, Any]
    replication: dict[str, Any]
    server: dict[str, Any]


@dataclass
class BucketFacts:
    bucket: str
    versioning: str | None
    object_lock: dict[str, Any] | None
    lifecycle_rules: list[dict[str, Any]] | None
    encryption: dict[str, Any] | None
    replication: dict[str, Any] | None


@dataclass
class RepositoryFacts:
    location: str
    snapshots: list[SnapshotManifest]
    drills: list[DrillRecord]
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass
class LiveEvidence:
    postgres: PostgresFacts | None = None
    redis: RedisFacts | None = None
    bucket: BucketFacts | None = None
    repository: RepositoryFacts | None = None
    problems: list[str] = field(default_factory=list)


def collect_postgres(dsn: str) -> PostgresFacts:
    settings = PgSettings.from_options(dsn=dsn)
    try:
        with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
            values = dict(
                connection.execute(
                    "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                    (list(POSTGRES_SETTINGS),),
                ).fetchall()
            )
            row = connection.execute(
                "SELECT archived_count, last_archived_wal, last_archived_time,"
                " failed_count, last_failed_wal, last_failed_time, now()"
                " FROM pg_stat_archiver"
            ).fetchone()
            archiver = dict(
                zip(
                    (
                        "archived_count",
                        "last_archived_wal",
                        "last_archived_time",
                        "failed_count",
                        "last_failed_wal",
                        "last_failed_time",
                        "now",
                    ),
                    row,
                    strict=True,
                )
            )
            in_recovery = connection.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            cursor = connection.execute(
                "SELECT application_name, client_addr::text, state, sync_state,"
                " extract(epoch FROM replay_lag) AS replay_lag_seconds"
                " FROM pg_stat_replication"
            )
            columns = [column.name for column in cursor.description]
            replicas = [dict(zip(columns, item, strict=True)) for item in cursor]
            superusers = [
                item[0]
                for item in connection.execute(
                    "SELECT rolname FROM pg_roles WHERE rolsuper AND rolcanlogin"
                    " ORDER BY rolname"
                )
            ]
            user, is_super = connection.execute(
                "SELECT current_user, rolsuper FROM pg_roles"
                " WHERE rolname = current_user"
            ).fetchone()
            databases = [
                item[0]
                for item in connection.execute(
                    "SELECT datname FROM pg_database WHERE NOT datistemplate"
                    " AND datname <> 'postgres' ORDER BY datname"
                )
            ]
            number = connection.info.server_version
    except OdooDrError as exc:
        raise EvidenceUnavailable(f"PostgreSQL: {exc.message}") from None
    except psycopg.Error as exc:
        raise EvidenceUnavailable(
            f"PostgreSQL: {str(exc).strip().splitlines()[0]}"
        ) from None
    return PostgresFacts(
        server_version=number,
        settings={key: str(value) for key, value in values.items()},
        archiver=archiver,
        in_recovery=bool(in_recovery),
        replicas=replicas,
        superusers=superusers,
        current_user=user,
        current_user_superuser=bool(is_super),
        databases=databases,
        collected_at=archiver["now"],
    )


def collect_redis(url: str) -> RedisFacts:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return RedisFacts(
            persistence=client.info("persistence"),
            replication=client.info("replication"),
            server=client.info("server"),
        )
    except redis.RedisError as exc:
        raise EvidenceUnavailable(f"Redis at {_redacted(url)}: {exc}") from None


def _redacted(url: str) -> str:
    """Return `url` without a password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def collect_bucket(
    bucket: str, endpoint_url: str | None = None, region: str | None = None
) -> BucketFacts:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def optional(call: str, key: str | None = None, **kwargs: Any) -> Any:
        try:
            answer = getattr(client, call)(Bucket=bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {
                "NoSuchLifecycleConfiguration",
                "ObjectLockConfigurationNotFoundError",
                "ServerSideEncryptionConfigurationNotFoundError",
                "ReplicationConfigurationNotFoundError",
                "NoSuchBucketPolicy",
            }:
                return None
            raise
        return answer.get(key) if key else answer

    try:
        versioning = optional("get_bucket_versioning", "Status")
        lock = optional("get_object_lock_configuration", "ObjectLockConfiguration")
        lifecycle = optional("get_bucket_lifecycle_configuration", "Rules")
        encryption = optional(
            "get_bucket_encryption", "ServerSideEncryptionConfiguration"
        )
        replication = optional("get_bucket_replication", "ReplicationConfiguration")
    except (ClientError, BotoCoreError) as exc:
        raise EvidenceUnavailable(f"S3 bucket {bucket}: {exc}") from None
    return BucketFacts(bucket, versioning, lock, lifecycle, encryption, replication)


def collect_repository(location: str) -> RepositoryFacts:
    from odoo_dr.repository.store import Repository

    try:
        repository = Repository.open(location)
        snapshots, unreadable = repository.scan_snapshots()
        drills = repository.list_drills()
    except OdooDrError as exc:
        raise EvidenceUnavailable(f"odoo-dr repository: {exc.message}") from None
    return RepositoryFacts(repository.location, snapshots, drills, unreadable)
