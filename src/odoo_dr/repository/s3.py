"""Repository backend on an S3 bucket or any S3-compatible object store.

A location is `s3://bucket/prefix`. Endpoint, region and credentials come from
boto3's usual settings (AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3, AWS_REGION,
AWS_PROFILE, the credential chain), so nothing secret ever appears in `--repo`.

An S3 PUT is atomic and durable when it returns, so writes need no temporary
names and `flush` has nothing to do. Large values go up in parts (multipart
upload); parts of uploads that a dead process left behind are aborted after a day.
With `retain_until`, objects are written with S3 Object Lock, so no credential
can delete or overwrite that version before the date (in compliance mode) or
none without s3:BypassGovernanceRetention (in governance mode).

boto3 is imported here only, so runs on a local folder never load it.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.exceptions
import urllib3.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from odoo_dr.errors import RejectedError, RepositoryError, StoreUnavailable
from odoo_dr.repository.backend import DeleteDenied, ObjectNotFound

log = logging.getLogger(__name__)

# S3 allows parts of 5 MiB and more; packs (16 MiB by default) go up in 8 MiB parts.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNK = 8 * 1024 * 1024
# Uploads started longer ago than this belong to a process that died.
STALE_UPLOAD_AGE = timedelta(days=1)
# Attempts per request in botocore's standard retry mode (exponential backoff with
# jitter on throttling, 5xx responses and connection errors). AWS_MAX_ATTEMPTS
# overrides it.
DEFAULT_MAX_ATTEMPTS = 6

_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}
# Failures while a GET's body streams in, after botocore's retries of the request
# have ended: the body is read again with a new request.
_BODY_ERRORS = (
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)
_DENIED_CODES = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled"}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
}


def parse_location(location: str) -> tuple[str, str, datetime | None]:
    """Return the bucket, key prefix and `as-of` time of an s3:// location.

    The prefix has no trailing slash. `s3://bucket/prefix?as-of=2026-12-04T22:00:00Z`
    opens a read-only view of the repository as it was at that time.
    """
    rest, _, query = location[len("s3://") :].partition("?")
    bucket, _, prefix = rest.partition("/")
    # Messages show the location without its query, whose values a pasted
    # presigned URL fills with credentials.
    shown = f"s3://{rest}"
    if "@" in bucket:
        _userinfo, _, host = bucket.rpartition("@")
        shown = f"s3://{host}/{prefix}" if prefix else f"s3://{host}"
        raise RejectedError(
            f"repository location {shown!r} has a user name or password before "
            "the bucket, which odoo-dr does not read",
            hint="remove the 'user:password@' part, and give S3 credentials "
            "through AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "~/.aws/credentials",
        )
    if not bucket:
        raise RejectedError(
            f"repository location {shown!r} names no bucket",
            hint="write it as s3://bucket or s3://bucket/prefix",
        )
    as_of = None
    for item in filter(None, query.split("&")):
        name, _, value = item.partition("=")
        if name != "as-of":
            raise RejectedError(
                f"unknown parameter {name!r} in repository location {shown!r}",
                hint="the only parameter is as-of, such as ?as-of=2026-12-04T22:00:00Z",
            )
        try:
            as_of = datetime.fromisoformat(value)
        except ValueError:
            raise RejectedError(
                f"invalid as-of time {value!r} in repository location {shown!r}",
                hint="give an ISO 8601 time with its zone, such as "
                "2026-12-04T22:00:00Z",
            ) from None
        if as_of.tzinfo is None:
            raise RejectedError(
                f"as-of time {value!r} has no time zone",
                hint="add Z for UTC, such as 2026-12-04T22:00:00Z",
            )
    return bucket, prefix.strip("/"), as_of


def _max_attempts() -> int:
    value = os.environ.get("AWS_MAX_ATTEMPTS")
    if value is None:
        return DEFAULT_MAX_ATTEMPTS
    try:
        return max(1, int(value))
    except ValueError:
        raise RejectedError(
            f"invalid AWS_MAX_ATTEMPTS {value!r}",
            hint="set it to a whole number of attempts, such as 5",
        ) from None


def _timeout(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0
    if not seconds > 0:
        raise RejectedError(
            f"invalid {name} {value!r}",
            hint="set it to a number of seconds greater than zero, such as 60",
        )
    return seconds


def make_client() -> Any:
    """Return an S3 client from the usual AWS settings, retrying in standard mode."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": _max_attempts()},
        connect_timeout=_timeout("ODOO_DR_S3_CONNECT_TIMEOUT", 10),
        read_timeout=_timeout("ODOO_DR_S3_READ_TIMEOUT", 60),
        # Room for the manifest readers and the upload threads of one run.
        max_pool_connections=32,
    )
    try:
        session = boto3.session.Session()
        client = session.client("s3", config=config)
    except botocore.exceptions.ProfileNotFound as exc:
        raise RepositoryError(
            f"AWS profile {exc.kwargs.get('profile')!r} not found",
            hint="check AWS_PROFILE and ~/.aws/config",
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise RepositoryError(
            f"cannot set up the S3 client: {type(exc).__name__}",
            hint="check the AWS settings in the environment and ~/.aws/config",
        ) from None
    client.meta.events.register("before-send.s3", _BodyReader(client))
    return client


class _BodyReader:
    """Send each S3 request and read its answer's body while retries still apply.

    botocore reads the body of an error response, and of every response but a
    GetObject's, after its retry handling has ended, so a body cut short there
    raises urllib3's own error and is never retried. Reading it here turns that
    into botocore's ConnectionClosedError or ReadTimeoutError, which the retry
    mode retries. A GetObject's body streams and is read by `S3Backend._get`.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, request: Any, event_name: str, **_: Any) -> Any:
        # NOTE: _endpoint is botocore's private attribute, the session that
        # would send the request if this handler returned None (botocore 1.44).
        response = self.client._endpoint.http_session.send(request)
        if event_name.endswith(".GetObject") and response.status_code < 300:
            return response
        try:
            response.content  # noqa: B018 - reads and keeps the body
        except urllib3.exceptions.ReadTimeoutError:
            raise botocore.exceptions.ReadTimeoutError(
                endpoint_url=request.url
            ) from None
        except urllib3.exceptions.HTTPError:
            raise botocore.exceptions.ConnectionClosedError(
                endpoint_url=request.url
            ) from None
        return response


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Backend:
    """Objects below one key prefix of one bucket."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        multipart_chunk: int = MULTIPART_CHUNK,
        as_of: datetime | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else make_client()
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunk,
            max_concurrency=4,
        )
        # The Object Lock mode for writes with `retain_until`; the repository sets it
        # from its configuration.
        self.lock_mode = "GOVERNANCE"
        # With `as_of`, reads see each key's newest version written at or before
        # that time (a delete marker hides the key), and writes are rejected.
        self.as_of = as_of
        self._versions: dict[str, str] | None = None

    @classmethod
    def from_location(cls, location: str) -> S3Backend:
        bucket, prefix, as_of = parse_location(location)
        return cls(bucket, prefix, as_of=as_of)

    def describe(self) -> str:
        where = (
            f"s3://{self.bucket}/{self.prefix}"
            if self.prefix
            else (f"s3://{self.bucket}")
        )
        if self.as_of is not None:
            where += f"?as-of={self.as_of.isoformat()}"
        return where

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    # -- errors

    def _error(self, exc: Exception, action: str, key: str | None) -> StoreUnavailable:
        """Turn a boto3 error into a StoreUnavailable naming the bucket and key.

        Messages carry the error code and the location, never botocore's own text,
        which may quote request headers.
        """
        where = f"s3://{self.bucket}/{self._key(key)}" if key else self.describe()
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return StoreUnavailable(
                f"cannot {action} {where}: no AWS credentials found",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
            )
        if isinstance(exc, botocore.exceptions.ReadTimeoutError):
            timeout = self.client.meta.config.read_timeout
            return StoreUnavailable(
                f"cannot {action} {where}: timed out, no response from the object "
                f"store within {timeout:g} seconds (ReadTimeoutError)",
                hint="run the command again; if it persists, check the object "
                "store's load, or raise ODOO_DR_S3_READ_TIMEOUT",
            )
        if isinstance(
            exc,
            botocore.exceptions.EndpointConnectionError
            | botocore.exceptions.ConnectTimeoutError
            | botocore.exceptions.ConnectionClosedError,
        ):
            endpoint = self.client.meta.endpoint_url
            return StoreUnavailable(
                f"cannot {action} {where}: endpoint {endpoint} is unreachable "
                f"({type(exc).__name__})",
                hint="check AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), the region "
                "and the network path to the object store",
            )
        if isinstance(exc, botocore.exceptions.ClientError):
            code = _error_code(exc)
            if code == "NoSuchBucket":
                return StoreUnavailable(
                    f"cannot {action} {where}: bucket {self.bucket} does not exist",
                    hint="create the bucket first, or check the bucket name in --repo "
                    "and the endpoint",
                )
            if code in _CREDENTIAL_CODES:
                return StoreUnavailable(
                    f"cannot {action} {where}: the object store rejected the "
                    f"credentials ({code})",
                    hint="check the access key and secret for this endpoint",
                )
            if code in _DENIED_CODES:
                return StoreUnavailable(
                    f"cannot {action} {where}: access denied",
                    hint="give this credential permission for the bucket and prefix "
                    "(see docs/s3.md for the policies)",
                )
            return StoreUnavailable(
                f"cannot {action} {where}: the object store returned {code}",
                hint="run the command again; if it persists, check the object store",
            )
        return StoreUnavailable(
            f"cannot {action} {where}: {type(exc).__name__}",
            hint="run the command again; if it persists, check the object store",
        )

    def _not_found(self, key: str) -> ObjectNotFound:
        return ObjectNotFound(
            f"{key} not found in repository {self.describe()}",
            hint="run 'odoo-dr verify' to list what is damaged",
        )

    # -- reading

    def _version_map(self) -> dict[str, str]:
        """Return, by key, the version id each key had at `as_of`."""
        if self._versions is not None:
            return self._versions
        assert self.as_of is not None
        newest: dict[str, tuple[datetime, str | None]] = {}
        paginator = self.client.get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("")):
                entries = [
                    (item, item["VersionId"]) for item in page.get("Versions", [])
                ] + [(item, None) for item in page.get("DeleteMarkers", [])]
                for item, version_id in entries:
                    modified = item["LastModified"]
                    if modified > self.as_of:
                        continue
                    known = newest.get(item["Key"])
                    if known is None or modified >= known[0]:
                        newest[item["Key"]] = (modified, version_id)
        except botocore.exceptions.ClientError as exc:
            raise self._error(exc, "list the object versions of", None) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "list the object versions of", None) from None
        self._versions = {
            self._relative(key): version_id
            for key, (_modified, version_id) in newest.items()
            if version_id is not None
        }
        return self._versions

    def _reject_write(self, key: str) -> None:
        if self.as_of is not None:
            raise RejectedError(
                f"cannot write {key} to {self.describe()}: a repository opened "
                "as of a past time is read-only",
                hint="remove ?as-of=... from --repo to write to the repository",
            )

    def exists(self, key: str) -> bool:
        if self.as_of is not None:
            return key in self._version_map()
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _MISSING_KEY_CODES:
                return False
            raise self._error(exc, "read", key) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "read", key) from None
        return True

    def _get(self, key: str, **extra: str) -> bytes:
        if self.as_of is not None:
            version_id = self._version_map().get(key)
            if version_id is None:
                raise self._not_found(key)
            extra["VersionId"] = version_id
        attempts = _max_attempts()
        for attempt in range(1, attempts + 1):
            try:
                answer = self.client.get_object(
                    Bucket=self.bucket, Key=self._key(key), **extra
                )
                return answer["Body"].read()
            except botocore.exceptions.ClientError as exc:
                code = _error_code(exc)
                if code in _MISSING_KEY_CODES:
                    raise self._not_found(key) from None
                if code == "InvalidRange":
                    return b""
                raise self._error(exc, "read", key) from None
            except _BODY_ERRORS as exc:
                if attempt == attempts:
                    raise self._error(exc, "read", key) from None
                log.debug("reading %s again after %s", key, type(exc).__name__)
                time.sleep(min(0.1 * 2**attempt, 5))
            except botocore.exceptions.BotoCoreError as exc:
                raise self._error(exc, "read", key) from None
        raise AssertionError("unreachable")

    def read(self, key: str) -> bytes:
        return self._get(key)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        return self._get(key, Range=f"bytes={offset}-{offset + length - 1}")

    def list(self, prefix: str) -> Iterator[str]:
        if self.as_of is not None:
            yield from sorted(
                key for key in self._version_map() if key.startswith(prefix)
            )
            return
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            ):
                for item in page.get("Contents", []):
                    yield self._relative(item["Key"])
        except botocore.exceptions.ClientError as exc:
            raise self._error(exc, "list", prefix) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "list", prefix) from None

    def list_sizes(self, prefix: str) -> dict[str, int] | None:
        """Return the size in bytes of every object under `prefix`, by key.

        Returns None for an `?as-of=` view, whose listing does not keep sizes.
        """
        if self.as_of is not None:
            return None
        sizes = {}
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            ):
                for item in page.get("Contents", []):
                    sizes[self._relative(item["Key"])] = item["Size"]
        except botocore.exceptions.ClientError as exc:
            raise self._error(exc, "list", prefix) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "list", prefix) from None
        return sizes

    def list_stamps(self, prefix: str) -> dict[str, str] | None:
        """Return a change stamp of every object under `prefix` (size and ETag).

        Returns None for an `?as-of=` view, whose listing does not keep them.
        """
        if self.as_of is not None:
            return None
        stamps = {}
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            ):
                for item in page.get("Contents", []):
                    key = self._relative(item["Key"])
                    stamps[key] = f"{item['Size']}:{item['ETag']}"
        except botocore.exceptions.ClientError as exc:
            raise self._error(exc, "list", prefix) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "list", prefix) from None
        return stamps

    def stamp(self, key: str) -> str | None:
        """Return `key`'s size and ETag as `list_stamps` does, or None.

        None also for an `?as-of=` view and for a missing key.
        """
        if self.as_of is not None:
            return None
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _MISSING_KEY_CODES:
                return None
            raise self._error(exc, "read", key) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "read", key) from None
        return f"{answer['ContentLength']}:{answer['ETag']}"

    def retained_until(self, key: str) -> datetime | None:
        extra = {}
        if self.as_of is not None:
            version_id = self._version_map().get(key)
            if version_id is None:
                raise self._not_found(key)
            extra["VersionId"] = version_id
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=self._key(key), **extra
            )
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _MISSING_KEY_CODES:
                raise self._not_found(key) from None
            raise self._error(exc, "read", key) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "read", key) from None
        return head.get("ObjectLockRetainUntilDate")

    # -- writing

    def _lock_arguments(self, retain_until: datetime | None) -> dict[str, Any]:
        if retain_until is None:
            return {}
        return {
            "ObjectLockMode": self.lock_mode,
            "ObjectLockRetainUntilDate": retain_until.astimezone(UTC),
        }

    def write(
        self,
        key: str,
        data: bytes,
        *,
        sync: bool = False,
        retain_until: datetime | None = None,
    ) -> None:
        self._reject_write(key)
        arguments = self._lock_arguments(retain_until)
        try:
            if len(data) >= self.transfer.multipart_threshold:
                # upload_fileobj sends parts of multipart_chunksize, several at once,
                # and retries each part on its own.
                self.client.upload_fileobj(
                    io.BytesIO(data),
                    self.bucket,
                    self._key(key),
                    ExtraArgs=arguments,
                    Config=self.transfer,
                )
            else:
                self.client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, **arguments
                )
        except botocore.exceptions.ClientError as exc:
            raise self._error(exc, "write", key) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "write", key) from None
        except boto3.exceptions.S3UploadFailedError as exc:
            # upload_fileobj wraps the failed part's ClientError.
            cause = exc.__context__
            if isinstance(cause, Exception):
                raise self._error(cause, "write", key) from None
            raise self._error(exc, "write", key) from None
        if retain_until is not None and len(data) >= self.transfer.multipart_threshold:
            # Some S3-compatible stores (moto 5.2.5 among them) drop the lock given
            # at CreateMultipartUpload when the upload completes; set it again.
            self.extend_retention(key, retain_until)

    def create_exclusive(
        self, key: str, data: bytes, *, retain_until: datetime | None = None
    ) -> bool:
        self._reject_write(key)
        # If-None-Match: * makes S3 store the object only if the key has no current
        # version, in one request, so two writers never both succeed.
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                IfNoneMatch="*",
                **self._lock_arguments(retain_until),
            )
        except botocore.exceptions.ClientError as exc:
            # 412: the key exists. 409: another conditional write to it is under way.
            if _error_code(exc) in {
                "PreconditionFailed",
                "ConditionalRequestConflict",
                "412",
                "409",
            }:
                return self._created_by_retry(key, data, exc)
            raise self._error(exc, "write", key) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "write", key) from None
        return True

    def _created_by_retry(
        self, key: str, data: bytes, exc: botocore.exceptions.ClientError
    ) -> bool:
        """Return whether `key` contains `data` after a retried conditional create.

        When the response to a create that S3 applied is lost, botocore sends it
        again, and S3 responds that the key exists. Matching content shows that the
        object is this run's own, because `data` (a lock with its token, a
        configuration with its id) is unique to the run.
        """
        retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        if not retries:
            return False
        try:
            return self._get(key) == data
        except ObjectNotFound:
            return False

    def extend_retention(self, key: str, retain_until: datetime) -> bool:
        """Move the lock of `key`'s current version to `retain_until` if it ends sooner.

        Returns whether the lock changed. Extending a lock needs only
        s3:PutObjectRetention; S3 itself rejects shortening a compliance lock, and a
        governance lock without s3:BypassGovernanceRetention.
        """
        self._reject_write(key)
        current = self.retained_until(key)
        if current is not None and current >= retain_until:
            return False
        try:
            self.client.put_object_retention(
                Bucket=self.bucket,
                Key=self._key(key),
                Retention={
                    "Mode": self.lock_mode,
                    "RetainUntilDate": retain_until.astimezone(UTC),
                },
            )
        except botocore.exceptions.ClientError as exc:
            raise self._error(exc, "extend the Object Lock of", key) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "extend the Object Lock of", key) from None
        return True

    def delete(self, key: str) -> None:
        self._reject_write(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _DENIED_CODES:
                raise DeleteDenied(
                    f"cannot delete s3://{self.bucket}/{self._key(key)}: this "
                    "credential may not delete objects there",
                    hint="backup credentials are append-only by design; run prune "
                    "and other removals with the pruning credential (see docs/s3.md)",
                ) from None
            raise self._error(exc, "delete", key) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, "delete", key) from None

    def flush(self) -> None:
        """Do nothing: a PUT that returned is durable."""

    # -- bucket checks and housekeeping

    def check_object_lock(self) -> None:
        """Raise RejectedError unless the bucket has Object Lock enabled."""
        action = "read the Object Lock configuration of"
        try:
            answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) == "ObjectLockConfigurationNotFoundError":
                raise RejectedError(
                    f"bucket {self.bucket} does not have Object Lock enabled, so "
                    "--lock-days cannot lock the repository's objects",
                    hint="use a bucket created with Object Lock enabled (aws s3api "
                    "create-bucket --object-lock-enabled-for-bucket), or leave out "
                    "--lock-days",
                ) from None
            raise self._error(exc, action, None) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, action, None) from None
        enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        if enabled != "Enabled":
            raise RejectedError(
                f"bucket {self.bucket} does not have Object Lock enabled",
                hint="use a bucket created with Object Lock enabled, or leave out "
                "--lock-days",
            )

    def cleanup_stale_writes(self) -> int:
        """Abort this prefix's multipart uploads that started over a day ago."""
        if self.as_of is not None:
            return 0
        cutoff = datetime.now(UTC) - STALE_UPLOAD_AGE
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("")):
                for upload in page.get("Uploads", []):
                    if not upload["Key"].startswith(self._key("")):
                        continue
                    if upload["Initiated"] >= cutoff:
                        continue
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )
                    log.info(
                        "aborted multipart upload of %s started at %s",
                        upload["Key"],
                        upload["Initiated"].isoformat(),
                    )
                    aborted += 1
        except botocore.exceptions.ClientError as exc:
            # Leftover parts cost storage but break nothing; a backup goes on.
            log.warning(
                "cannot clean up multipart uploads in %s: %s",
                self.describe(),
                self._error(exc, "list uploads in", None).message,
            )
        except botocore.exceptions.BotoCoreError as exc:
            log.warning(
                "cannot clean up multipart uploads in %s: %s",
                self.describe(),
                type(exc).__name__,
            )
        return aborted
