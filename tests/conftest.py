"""Fixtures over the machine's real PostgreSQL, filestore folders and repositories.

Tests reach PostgreSQL through libpq's variables; unset ones default to the local
server on 127.0.0.1:5432 as `postgres`. Every database and role a test creates is
dropped when the test ends.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import secret_scan
from odoo_dr.demo import builder
from odoo_dr.pg import temporary
from odoo_dr.pg.connection import PgSettings
from odoo_dr.pg.names import validate_database_name
from odoo_dr.pg.server import drop_database
from odoo_dr.repository.store import Repository

os.environ.setdefault("PGHOST", "127.0.0.1")
os.environ.setdefault("PGPORT", "5432")
os.environ.setdefault("PGUSER", "postgres")

SMALL = builder.DemoScale(
    partners=60, products=30, sale_orders=120, purchase_orders=30, messages=200
)


AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
BUCKET_REGION = "eu-west-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Buckets for repositories on S3: one with versioning, one created with Object Lock
# (which turns versioning on), and one with neither.
VERSIONED_BUCKET = "odoo-dr-versioned"
LOCKED_BUCKET = "odoo-dr-locked"
PLAIN_BUCKET = "odoo-dr-plain"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1, create the test buckets; return its URL.

    The server runs in this process (one per xdist worker) and is reached over
    real HTTP. The fake credentials go into the environment for the session.
    tests/review/conftest.py extends this fixture with the buckets of its rules.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    saved = {key: os.environ.get(key) for key in AWS_VARIABLES}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=BUCKET_REGION,
    )
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name=BUCKET_REGION)
        location = {"LocationConstraint": BUCKET_REGION}
        client.create_bucket(
            Bucket=VERSIONED_BUCKET, CreateBucketConfiguration=location
        )
        client.put_bucket_versioning(
            Bucket=VERSIONED_BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )
        client.create_bucket(
            Bucket=LOCKED_BUCKET,
            CreateBucketConfiguration=location,
            ObjectLockEnabledForBucket=True,
        )
        client.create_bucket(Bucket=PLAIN_BUCKET, CreateBucketConfiguration=location)
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def settings() -> PgSettings:
    return PgSettings.from_options()


def admin_connection() -> psycopg.Connection:
    return psycopg.connect(dbname="postgres", autocommit=True)


def drop_leftovers(names: list[str]) -> None:
    with admin_connection() as connection:
        for name in names:
            temporary.drop(connection, name)


@pytest.fixture
def database_names() -> Iterator[list[str]]:
    """Names of databases to drop after the test, whatever it created under them."""
    names: list[str] = []
    yield names
    drop_leftovers(names)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def filestore_root(tmp_path: Path) -> Path:
    root = tmp_path / "filestore"
    root.mkdir()
    return root


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    return Repository.init(str(tmp_path / "repo"))


@pytest.fixture(scope="session")
def small_template(
    settings: PgSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[builder.DemoSummary]:
    """Build the SMALL demo database once per worker, as a template to clone.

    It is marked as a template that takes no connections, like template0, so
    odoo-dr's database listings and other sessions leave it alone, and CREATE
    DATABASE ... TEMPLATE does not find it in use.
    """
    name = f"odoo_dr_template_{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("template-filestore")
    try:
        summary = builder.build(settings, name, root, SMALL)
        with admin_connection() as connection:
            connection.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(
                    sql.Identifier(name)
                )
            )
            connection.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
                    sql.Identifier(name)
                )
            )
        yield summary
    finally:
        with admin_connection() as connection:
            connection.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(
                    sql.Identifier(name)
                )
            )
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
            )


def clone_demo(
    settings: PgSettings,
    template: builder.DemoSummary,
    name: str,
    filestore_root: Path,
) -> builder.DemoSummary:
    """Create `name` as a copy of the demo `template`, with its own filestore folder.

    The copy gets a new database.uuid and database.secret and the demo's comment,
    as builder.build gives every database it creates.
    """
    validate_database_name(name)
    folder = filestore_root / name
    with admin_connection() as connection:
        drop_database(connection, name)
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template.database)
            )
        )
        connection.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(builder.DEMO_MARKER)
            )
        )
    with settings.connect(name) as connection:
        for key, value in (
            ("database.uuid", str(uuid.uuid1())),
            ("database.secret", str(uuid.uuid4())),
        ):
            connection.execute(
                "UPDATE ir_config_parameter SET value = %s WHERE key = %s",
                (value, key),
            )
        connection.commit()
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(template.filestore, folder)
    return dataclasses.replace(template, database=name, filestore=folder)


@pytest.fixture
def odoo_database(
    settings: PgSettings,
    filestore_root: Path,
    database_names: list[str],
    unique: str,
    request: pytest.FixtureRequest,
) -> Callable[..., builder.DemoSummary]:
    """Build an Odoo-shaped database; returns a factory taking the name and scale.

    The SMALL scale is cloned from a template built once per worker, other scales
    are built from scratch.
    """

    def build(
        name: str | None = None, scale: builder.DemoScale = SMALL
    ) -> builder.DemoSummary:
        name = name or f"odoo_dr_test_{unique}"
        database_names.append(name)
        if scale == SMALL:
            template = request.getfixturevalue("small_template")
            return clone_demo(settings, template, name, filestore_root)
        return builder.build(settings, name, filestore_root, scale, replace=True)

    return build


_PREEXISTING_SCRATCH: set[str] = set()


def _is_controller(config: pytest.Config) -> bool:
    """Return whether this process is pytest itself, not a pytest-xdist worker."""
    return not hasattr(config, "workerinput")


BENCHMARK_TESTS_VARIABLE = "ODOO_DR_BENCHMARK_TESTS"


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Skip the benchmark scripts' own runs unless ODOO_DR_BENCHMARK_TESTS=1.

    Each runs a benchmark script end to end at a small size, which costs minutes
    of a 2-core machine; the default suite stays within its time budget.
    """
    if os.environ.get(BENCHMARK_TESTS_VARIABLE) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"benchmark script run; set {BENCHMARK_TESTS_VARIABLE}=1 to include it"
    )
    for item in items:
        if item.path.name.startswith("test_benchmark_"):
            item.add_marker(skip)


secret = secret_scan.secret

# Whether this controller made the log folder, and so removes it after a clean scan.
_OWN_LOG_FOLDER: list[Path] = []
_LOG_HANDLER = secret_scan.LogFileHandler()
_LOG_HANDLER.setFormatter(logging.Formatter("%(levelname)s %(message)s"))


def pytest_configure(config: pytest.Config) -> None:
    """Log every odoo-dr run of this process into the session's log folder.

    The controller makes the folder before pytest-xdist starts the workers, which
    inherit its name through the environment.
    """
    if secret_scan.log_folder() is None and _is_controller(config):
        folder = Path(tempfile.mkdtemp(prefix="odoo-dr-test-logs-"))
        os.environ[secret_scan.LOG_FOLDER_VARIABLE] = str(folder)
        _OWN_LOG_FOLDER.append(folder)
    subprocess.Popen = secret_scan.LoggedPopen  # type: ignore[misc]
    logging.getLogger("odoo_dr").setLevel(logging.DEBUG)


@pytest.fixture(autouse=True)
def _log_odoo_dr_records() -> None:
    """Attach the log handler again, which an in-process CLI call replaces."""
    logger = logging.getLogger("odoo_dr")
    if _LOG_HANDLER not in logger.handlers:
        logger.addHandler(_LOG_HANDLER)


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_controller(session.config):
        _PREEXISTING_SCRATCH.update(_scratch_comments())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any test left a temporary restore or drill database behind,
    or if any secret appears in the log of odoo-dr runs.

    This runs once all workers have finished, because a per-test check would see the
    temporary databases of tests running at the same time in other workers.
    """
    if not _is_controller(session.config):
        return
    _scan_logs(session)
    scratch = _scratch_comments()
    leftovers = sorted(set(scratch) - _PREEXISTING_SCRATCH)
    if leftovers:
        with admin_connection() as connection:
            for name in leftovers:
                temporary.drop(connection, name)
        described = [f"{name} ({scratch[name]})" for name in leftovers]
        print(f"\ntemporary databases left behind by the tests: {described}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _scan_logs(session: pytest.Session) -> None:
    """Fail the session if a log of odoo-dr runs contains a secret of the suite."""
    folder = secret_scan.log_folder()
    if folder is None or not folder.is_dir():
        return
    sources = sorted(Path(__file__).parent.rglob("*.py"))
    product = Path(secret_scan.__file__).parent.parent / "src" / "odoo_dr"
    product_text = "\n".join(
        path.read_text(encoding="utf-8", errors="replace")
        for path in sorted(product.rglob("*"))
        if path.is_file() and path.suffix in {".py", ".sql", ".html", ".j2", ".md"}
    )
    secrets = secret_scan.literal_secrets(sources, product_text)
    secrets.update(secret_scan.registered_secrets(folder))
    leaks = secret_scan.scan(folder, secrets)
    if leaks:
        described = [f"{name}: {label}" for name, label in leaks]
        print(f"\nsecrets found in the logs of odoo-dr runs in {folder}: {described}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif folder in _OWN_LOG_FOLDER:
        shutil.rmtree(folder, ignore_errors=True)


def database_exists(name: str) -> bool:
    with admin_connection() as connection:
        row = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    return row is not None


def _scratch_comments() -> dict[str, str | None]:
    """Return temporary databases not in use by a live odoo-dr, with their comments."""
    with admin_connection() as connection:
        rows = connection.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE datname LIKE 'odoo-dr-%'"
        ).fetchall()
    return {name: comment for name, comment in rows if not temporary.in_use(comment)}


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
    """Run `odoo-dr` in a child process, as a user would, and return its result."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "odoo_dr", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess]:
    return run_cli


def restore_copy(
    repo: str,
    snapshot_id: str,
    target: str,
    filestore_root: Path,
    env: dict[str, str] | None = None,
) -> None:
    """Restore `snapshot_id` of `repo` as a copy named `target`, through the CLI."""
    result = run_cli(
        "restore",
        snapshot_id,
        "--target",
        target,
        "--copy",
        "--filestore-root",
        str(filestore_root),
        "--repo",
        repo,
        env=env,
    )
    assert result.returncode == 0, result.stderr


def query(dbname: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dbname=dbname, autocommit=True) as connection:
        cursor = connection.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []


def tree_digest(folder: Path) -> dict[str, tuple[int, int]]:
    """Return path -> (size, mtime_ns) of every file below `folder`."""
    digest = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return digest


def blob_path(repository: Repository, blob_id: str) -> tuple[Path, int, int]:
    """Return the pack file, offset and length where `blob_id` is stored."""
    where = repository.blobs.location(blob_id)
    path = Path(repository.location) / "packs" / where.pack[:2] / where.pack
    return path, where.offset, where.length


def damage_blob(repository: Repository, blob_id: str, flip: int = 0xFF) -> None:
    """Flip the bits of one byte in the middle of a blob's stored bytes."""
    path, offset, length = blob_path(repository, blob_id)
    data = bytearray(path.read_bytes())
    data[offset + length // 2] ^= flip
    path.write_bytes(bytes(data))


def delete_pack_of(repository: Repository, blob_id: str) -> None:
    """Delete the pack that holds `blob_id` (and every other blob in it)."""
    blob_path(repository, blob_id)[0].unlink()


def accept_manifests(location: str | Path) -> None:
    """Rebuild the catalog from the manifests as they are, as after an edit made
    on purpose, so that tests of a crafted manifest reach the code past the read.

    Without it, a manifest changed after its backup is reported as damaged.
    """
    Repository.open(str(location)).rebuild_catalog()
