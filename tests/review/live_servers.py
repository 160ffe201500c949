"""Real servers started by the review tests on free ports of 127.0.0.1.

PostgreSQL clusters are made with initdb in temporary folders. Their binaries run
as `postgres` when the tests run as root, because initdb and postgres reject root.
Redis servers run in the foreground with their own folder, and moto's S3 server
gets the buckets the rules read. conftest.py wraps them in session fixtures.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

BUCKET_REGION = "eu-west-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def create_buckets(boto3, endpoint: str) -> None:  # noqa: ANN001 - the module
    client = boto3.client("s3", endpoint_url=endpoint, region_name=BUCKET_REGION)
    location = {"LocationConstraint": BUCKET_REGION}
    boto3.client("s3", endpoint_url=endpoint, region_name="eu-central-1").create_bucket(
        Bucket="dr-replica",
        CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
    )
    # Protected: Object Lock (which turns versioning on), lifecycle tiering,
    # default encryption and replication to another region.
    client.create_bucket(
        Bucket="dr-protected",
        CreateBucketConfiguration=location,
        ObjectLockEnabledForBucket=True,
    )
    client.put_object_lock_configuration(
        Bucket="dr-protected",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}},
        },
    )
    client.put_bucket_lifecycle_configuration(
        Bucket="dr-protected",
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "tiering",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}],
                    "Expiration": {"Days": 400},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                }
            ]
        },
    )
    client.put_bucket_encryption(
        Bucket="dr-protected",
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
            ]
        },
    )
    client.put_bucket_replication(
        Bucket="dr-protected",
        ReplicationConfiguration={
            "Role": "arn:aws:iam::123456789012:role/replication",
            "Rules": [
                {
                    "ID": "offsite",
                    "Status": "Enabled",
                    "Priority": 1,
                    "Filter": {"Prefix": ""},
                    "DeleteMarkerReplication": {"Status": "Disabled"},
                    "Destination": {"Bucket": "arn:aws:s3:::dr-replica"},
                }
            ],
        },
    )
    client.put_object(Bucket="dr-protected", Key="odoo/base/1", Body=b"x" * 3000)
    client.put_object(Bucket="dr-protected", Key="odoo/base/1", Body=b"x" * 1000)
    client.put_object(
        Bucket="dr-protected",
        Key="odoo/base/2",
        Body=b"y" * 2000,
        StorageClass="STANDARD_IA",
    )
    client.put_object(Bucket="dr-protected", Key="other/file", Body=b"z" * 500)
    # Plain: nothing configured.
    client.create_bucket(Bucket="dr-plain", CreateBucketConfiguration=location)
    client.put_object(Bucket="dr-plain", Key="dump.sql", Body=b"d" * 4096)
    # Expires objects after 30 days and never tiers them.
    client.create_bucket(Bucket="dr-short-expiry", CreateBucketConfiguration=location)
    client.put_bucket_lifecycle_configuration(
        Bucket="dr-short-expiry",
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": 30},
                }
            ]
        },
    )


def pg_bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(path.split("/")[4]),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.skip("initdb not found: install PostgreSQL's server package")
    return Path(initdb).parent


def run_as_postgres(command: list[str]) -> list[str]:
    """Run server binaries as `postgres` when the tests run as root, which initdb
    and postgres reject."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@dataclass
class PgCluster:
    root: Path
    port: int
    bindir: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.dsn + f" dbname={dbname}", autocommit=True)

    def start(self) -> None:
        subprocess.run(
            run_as_postgres(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    f"-p {self.port}",
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            run_as_postgres(
                [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate"]
                + ["stop"]
            ),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def new_root(name: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"odoo-dr-review-{name}-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    return root


def make_cluster(name: str, settings: dict[str, str]) -> PgCluster:
    """Create and start a cluster with `settings` added to postgresql.conf;
    `{root}` in a setting is replaced by the cluster's folder."""
    bindir = pg_bindir()
    root = new_root(name)
    cluster = PgCluster(root, free_port(), bindir)
    subprocess.run(
        run_as_postgres(
            [str(bindir / "initdb"), "-D", str(cluster.data), "-U", "postgres"]
            + ["--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]
        ),
        check=True,
        capture_output=True,
    )
    lines = {
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{root}'",
        "shared_buffers": "'16MB'",
        "max_connections": "20",
        "fsync": "off",
        **settings,
    }
    with (cluster.data / "postgresql.conf").open("a") as conf:
        for key, value in lines.items():
            conf.write(f"{key} = {value.replace('{root}', str(root))}\n")
    cluster.start()
    return cluster


def switch_wal(cluster: PgCluster) -> None:
    """Write something and close the WAL segment, so the archiver runs."""
    with cluster.connect() as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS activity (at timestamptz)")
        connection.execute("INSERT INTO activity VALUES (now())")
        connection.execute("SELECT pg_switch_wal()")


def archiver_counts(cluster: PgCluster) -> tuple[int, int]:
    with cluster.connect() as connection:
        return connection.execute(
            "SELECT archived_count, failed_count FROM pg_stat_archiver"
        ).fetchone()


def refresh_archive(cluster: PgCluster) -> None:
    """Archive a new segment now, so the archive age is seconds, not the session's
    age."""
    archived, _ = archiver_counts(cluster)
    switch_wal(cluster)
    wait_until(lambda: archiver_counts(cluster)[0] > archived, "a WAL segment archived")


# -- Redis servers


@dataclass
class RedisServer:
    process: subprocess.Popen
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)

    def stop(self) -> None:
        # Stop with SHUTDOWN NOSAVE because the data is thrown away. On SIGTERM a
        # server with save points writes its RDB first, and one whose save fails
        # keeps running. The command goes over a plain socket because redis-py
        # 8.2's shutdown() keeps retrying on the closed connection for seconds.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(b"SHUTDOWN NOSAVE\r\n")
                sock.recv(1)  # the server closes the connection when it exits
        except OSError:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_redis(name: str, *arguments: str) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not found: install Redis")
    folder = Path(tempfile.mkdtemp(prefix=f"odoo-dr-review-redis-{name}-"))
    (folder / "data").mkdir()
    port = free_port()
    with (folder / "server.log").open("w") as log:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1"]
            + ["--dir", str(folder / "data"), *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RedisServer(process, port, folder)

    def answers() -> bool:
        try:
            return bool(server.client().ping())
        except redis.ConnectionError:
            return False

    wait_until(answers, f"Redis {name} to answer")
    return server


def bgsave_status(server: RedisServer) -> str:
    info = server.client().info("persistence")
    if info["rdb_bgsave_in_progress"]:
        return "running"
    return info["rdb_last_bgsave_status"]
