"""Point-in-time recovery with the real pgBackRest, on clusters the tests create.

Each cluster is made with initdb in a folder of its own, on a free port, set up by
`odoo-dr pitr setup`, and archived by pgBackRest into a folder repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import SMALL, database_exists, drop_leftovers, free_port, run_cli
from odoo_dr.demo import builder
from odoo_dr.engine.pitr import read_status
from odoo_dr.engine.pitr_drill import choose_backup
from odoo_dr.errors import RejectedError
from odoo_dr.pg.connection import PgSettings
from odoo_dr.pg.pgbackrest import OsUser, PgBackRest
from odoo_dr.pg.recovery import SOCKET_PATH_MAX, RecoveryServer
from pitr_cluster import CIPHER_PASS, Cluster

pytestmark = pytest.mark.skipif(
    shutil.which("pgbackrest") is None, reason="pgBackRest is not installed"
)

TENANT = "Acme Logistics"
CIPHER_ENV = {"ODOO_DR_PITR_CIPHER_PASS": CIPHER_PASS}


def _add_attachment(cluster: Cluster, folder: Path, name: str) -> str:
    """Write a file into the tenant's filestore and an attachment row for it."""
    content = f"{name} {os.urandom(8).hex()}".encode()
    sha1 = hashlib.sha1(content).hexdigest()
    store_fname = f"{sha1[:2]}/{sha1}"
    (folder / sha1[:2]).mkdir(exist_ok=True)
    (folder / store_fname).write_bytes(content)
    cluster.execute(
        TENANT,
        "INSERT INTO ir_attachment (name, type, store_fname, checksum, file_size,"
        " mimetype, res_model, res_id, create_date)"
        " VALUES (%s, 'binary', %s, %s, %s, 'text/plain', 'res.partner', 1, now())",
        (name, store_fname, sha1, len(content)),
    )
    return store_fname


def _add_partner(cluster: Cluster, name: str) -> None:
    cluster.execute(
        TENANT,
        "INSERT INTO res_partner (name, is_company, create_date)"
        " VALUES (%s, false, now())",
        (name,),
    )


def _sync(repo: Path, filestore_root: Path) -> None:
    result = run_cli(
        "filestore", "sync", TENANT,
        "--repo", str(repo), "--filestore-root", str(filestore_root),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@dataclass
class History:
    """A tenant whose data and files changed before and after `target`."""

    cluster: Cluster
    repo: Path
    filestore_root: Path
    target: datetime
    file_before: str
    file_gone_after: str
    file_after: str
    setup_output: str


@pytest.fixture(scope="module")
def history() -> Iterator[History]:
    cluster = Cluster.create(free_port())
    try:
        setup = run_cli(
            "pitr", "setup", *cluster.setup_options(), "--restart", "--encrypt",
            env=CIPHER_ENV,
        )  # fmt: skip
        assert setup.returncode == 0, setup.stdout + setup.stderr
        repo = cluster.root / "odoo-dr-repo"
        assert run_cli("init", "--repo", str(repo)).returncode == 0
        filestore_root = cluster.root / "filestore"
        builder.build(cluster.settings, TENANT, filestore_root, SMALL)
        folder = filestore_root / TENANT
        file_before = _add_attachment(cluster, folder, "before.txt")
        file_gone_after = _add_attachment(cluster, folder, "gone-after.txt")
        _add_partner(cluster, "partner before the target")
        _sync(repo, filestore_root)
        time.sleep(1.2)
        target = cluster.execute("postgres", "SELECT clock_timestamp()")[0][0]
        time.sleep(1.2)
        _add_partner(cluster, "partner after the target")
        file_after = _add_attachment(cluster, folder, "after.txt")
        # Odoo's garbage collector: the row goes, then the file.
        cluster.execute(
            TENANT,
            "DELETE FROM ir_attachment WHERE store_fname = %s",
            (file_gone_after,),
        )
        (folder / file_gone_after).unlink()
        _sync(repo, filestore_root)
        cluster.archive_now()
        yield History(
            cluster,
            repo,
            filestore_root,
            target.astimezone(UTC),
            file_before,
            file_gone_after,
            file_after,
            setup.stdout + setup.stderr,
        )
    finally:
        cluster.remove()


def test_setup_secrets_and_rerun(history):
    cluster = history.cluster
    assert CIPHER_PASS not in history.setup_output
    assert "will: ALTER SYSTEM SET archive_mode = 'on'" in history.setup_output
    assert "took the first full backup" in history.setup_output
    conf = cluster.config_path / "conf.d" / "odoo-dr-test.conf"
    secrets = cluster.config_path / "conf.d" / "odoo-dr-test.secrets.conf"
    assert CIPHER_PASS not in conf.read_text()
    assert "repo1-cipher-type=aes-256-cbc" in conf.read_text()
    assert CIPHER_PASS in secrets.read_text()
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    # The archive itself is encrypted: no archived segment is plain zstd.
    segment = next(cluster.archive_repo.rglob("000000010000000000000001-*"))
    assert not segment.read_bytes().startswith(b"\x28\xb5\x2f\xfd")

    again = run_cli(
        "pitr", "setup", *cluster.setup_options(), "--encrypt", env=CIPHER_ENV
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "configuration already as wanted" in again.stdout
    assert "will:" not in again.stdout


def test_status_reports_the_window(history):
    result = run_cli(
        "pitr", "status", *history.cluster.pitr_options(),
        "--dsn", history.cluster.dsn, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    window = status["window"]
    assert datetime.fromisoformat(window["start"]) < history.target
    assert datetime.fromisoformat(window["end"]) > history.target
    assert all(chain["continuous"] for chain in status["chains"])
    assert status["archiver"]["archive_mode"] == "on"
    assert not status["archiver"]["failing"]
    assert status["backups"][0]["type"] == "full"
    text = run_cli("pitr", "status", *history.cluster.pitr_options(), "--no-server")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "recoverable window:" in text.stdout


def test_drill_to_target_time(history, tmp_path):
    archive_before = history.cluster.archive_files()
    # So long a folder that the server's socket cannot be in it (107 bytes at most).
    work = Path("/var/tmp") / f"odoo-dr-drill-{os.getpid()}-{'long-folder-name-' * 3}"
    work.mkdir(mode=0o755)
    try:
        result = run_cli(
            "drill", "--pitr", "--target-time", history.target.isoformat(),
            "--tenant", TENANT, "--repo", str(history.repo),
            *history.cluster.pitr_options(), "--temp-dir", str(work), "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        (record,) = json.loads(result.stdout)
        assert record["kind"] == "pitr"
        assert record["passed"], record
        assert {check["name"] for check in record["checks"]} >= {
            "filestore",
            "neutralized",
            "copy identity",
        }
        recovered_to = datetime.fromisoformat(record["recovered_to"])
        assert recovered_to <= history.target
        assert record["rpo_seconds"] == pytest.approx(
            (history.target - recovered_to).total_seconds(), abs=0.01
        )
        check_seconds = sum(check["seconds"] for check in record["checks"])
        assert check_seconds > 0
        # Each time is rounded to the millisecond, the step's too.
        rounding = 0.0005 * (len(record["checks"]) + 1)
        assert check_seconds <= record["steps"]["checks"] + rounding
        assert "restore base backup" in record["steps"]
        assert "replay WAL" in record["steps"]
        assert list(work.iterdir()) == [], "the recovered cluster was not removed"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # No new timeline, history file or segment reached the production archive.
    assert history.cluster.archive_files() == archive_before
    drills = run_cli("snapshots", "--repo", str(history.repo), "--json")
    assert drills.returncode == 0


def test_restore_one_tenant_to_time(history, tmp_path):
    target = f"odoo_dr_pitr_{os.getpid()}"
    root = tmp_path / "restored"
    try:
        result = run_cli(
            "restore", "--pitr", "--target-time", history.target.isoformat(),
            "--tenant", TENANT, "--target", target, "--copy",
            "--filestore-root", str(root), "--repo", str(history.repo),
            *history.cluster.pitr_options(), "--temp-dir", "/var/tmp",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        settings = PgSettings()
        with settings.connect(target) as connection:
            names = {
                row[0]
                for row in connection.execute(
                    "SELECT name FROM res_partner WHERE name LIKE 'partner %'"
                )
            }
            fnames = {
                row[0]
                for row in connection.execute("SELECT store_fname FROM ir_attachment")
            }
        assert names == {"partner before the target"}
        assert history.file_before in fnames
        assert history.file_gone_after in fnames
        assert history.file_after not in fnames
        folder = root / target
        assert (folder / history.file_before).is_file()
        assert (folder / history.file_gone_after).is_file()
        assert not (folder / history.file_after).exists()
        snapshots = json.loads(
            run_cli("snapshots", "--repo", str(history.repo), "--json").stdout
        )
        assert any(item.get("labels", {}).get("source") == "pitr" for item in snapshots)
    finally:
        drop_leftovers([target])
    assert not database_exists(target)


def test_target_outside_window(history):
    cluster = history.cluster
    future = datetime.now(UTC) + timedelta(days=365)
    result = run_cli(
        "drill", "--pitr", "--target-time", future.isoformat(),
        "--repo", str(history.repo), *cluster.pitr_options(),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "in the future" in result.stderr
    assert "latest reachable time" in result.stderr
    assert "recoverable window" in result.stderr

    status = json.loads(
        run_cli(
            "pitr", "status", *cluster.pitr_options(), "--no-server", "--json"
        ).stdout
    )
    end = datetime.fromisoformat(status["window"]["end"])
    # A commit after the last archived one, never archived: not reachable.
    _add_partner(cluster, "partner not archived")
    time.sleep(1)
    late = end + timedelta(milliseconds=500)
    result = run_cli(
        "drill", "--pitr", "--target-time", late.isoformat(),
        "--repo", str(history.repo), *cluster.pitr_options(),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "later than the last archived commit" in result.stderr
    assert end.isoformat() in result.stderr


def test_target_time_without_zone(history):
    result = run_cli(
        "drill", "--pitr", "--target-time", "2026-12-05 10:42:00",
        "--repo", str(history.repo), *history.cluster.pitr_options(),
    )  # fmt: skip
    assert result.returncode == 2
    assert "has no time zone" in result.stderr


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster.create(free_port())
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture(scope="module")
def bare_cluster() -> Iterator[Cluster]:
    """A cluster that `pitr setup` never touched, for tests that change nothing."""
    created = Cluster.create(free_port())
    try:
        yield created
    finally:
        created.remove()


def test_dry_run_then_wal_gap(cluster, tmp_path):
    dry = run_cli("pitr", "setup", *cluster.setup_options(), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would: ALTER SYSTEM SET archive_mode = 'on'" in dry.stdout
    assert cluster.execute("postgres", "SHOW archive_mode") == [("off",)]
    assert not (cluster.config_path / "conf.d").exists()

    # Without --restart, setup stops before creating the stanza and exits 1.
    first = run_cli("pitr", "setup", *cluster.setup_options())
    assert first.returncode == 1, first.stdout + first.stderr
    assert "must restart" in first.stderr
    cluster.stop()
    cluster.start()
    second = run_cli("pitr", "setup", *cluster.setup_options())
    assert second.returncode == 0, second.stdout + second.stderr

    cluster.execute("postgres", "CREATE TABLE moves (id int, at timestamptz)")
    names = []
    for number in range(4):
        cluster.execute(
            "postgres", "INSERT INTO moves VALUES (%s, clock_timestamp())", (number,)
        )
        names.append(
            cluster.execute("postgres", "SELECT pg_walfile_name(pg_current_wal_lsn())")[
                0
            ][0]
        )
        cluster.archive_now()
    # Lose the segment of the second insert, as a broken archive_command would.
    missing = names[1]
    (lost,) = list(cluster.archive_repo.rglob(f"{missing}-*"))
    lost.unlink()
    time.sleep(1)
    after_gap = datetime.now(UTC) - timedelta(milliseconds=300)

    status = run_cli(
        "pitr", "status", *cluster.pitr_options(), "--dsn", cluster.dsn, "--json"
    )
    assert status.returncode == 1, status.stdout + status.stderr
    report = json.loads(status.stdout)
    (chain,) = report["chains"]
    assert not chain["continuous"]
    assert chain["first_missing"] == missing
    reachable = datetime.fromisoformat(chain["latest_reachable"])
    assert any(missing in warning for warning in report["warnings"])

    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", str(repo)).returncode == 0
    drill = run_cli(
        "drill", "--pitr", "--target-time", after_gap.isoformat(),
        "--repo", str(repo), *cluster.pitr_options(),
    )  # fmt: skip
    assert drill.returncode == 2, drill.stdout + drill.stderr
    assert f"segment {missing} is missing" in drill.stderr
    assert reachable.isoformat() in drill.stderr


def test_socket_leaves_long_folder(tmp_path):
    folder = tmp_path / ("x" * 100)
    folder.mkdir()
    server = RecoveryServer(folder, 15, None, "postgres")
    server.prepare()
    socket_folder = server.socket_folder
    try:
        assert not socket_folder.is_relative_to(folder)
        assert len(os.fsencode(socket_folder / ".s.PGSQL.5432")) <= SOCKET_PATH_MAX
        assert socket_folder.is_dir()
        assert server.settings().params["host"] == str(socket_folder)
    finally:
        server.stop()
    assert not socket_folder.exists()

    short = RecoveryServer(tmp_path, 15, None, "postgres")
    short.prepare()
    assert short.socket_folder == tmp_path / "socket"


def test_status_unknown_stanza(bare_cluster):
    result = run_cli("pitr", "status", *bare_cluster.pitr_options(), "--no-server")
    assert result.returncode == 2
    assert "pitr setup" in result.stderr


def test_setup_without_pgbackrest(bare_cluster):
    result = run_cli(
        "pitr", "setup", *bare_cluster.setup_options(), "--dry-run",
        env={"ODOO_DR_PGBACKREST": "/nonexistent/pgbackrest"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "apt-get install pgbackrest" in result.stderr


def test_prune_keeps_window_files(history):
    def dropped(*options: str) -> int:
        result = run_cli(
            "prune", "--keep-last", "1", "--dry-run", "--json",
            "--repo", str(history.repo), *options,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        (journal,) = json.loads(result.stdout)["journals"]
        return journal["dropped_entries"]

    # The file deleted after the target was gone before "now": a plain limit
    # drops it, while the stanza's oldest base backup is older and keeps it.
    assert dropped("--filestore-keep-since", "0s") == 1
    stanza = (
        "--pitr-stanza", history.cluster.stanza,
        "--pgbackrest-config-path", str(history.cluster.config_path),
    )  # fmt: skip
    assert dropped(*stanza) == 0
    assert dropped("--filestore-keep-since", "0s", *stanza) == 0


def test_repository_on_s3(cluster, s3_endpoint, tmp_path):
    import boto3

    from s3_servers import tls_front

    bucket = "odoo-dr-pgbackrest"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="eu-west-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    with tls_front(s3_endpoint, tmp_path) as endpoint:
        options = [
            *cluster.pitr_options(), "--pitr-repo", f"s3://{bucket}/pitr",
            "--s3-endpoint", endpoint, "--s3-region", "eu-west-1",
            "--s3-no-verify-tls", "--log-path", str(cluster.root / "log"),
            "--lock-path", str(cluster.root / "lock"), "--dsn", cluster.dsn,
        ]  # fmt: skip
        setup = run_cli("pitr", "setup", *options, "--restart")
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert os.environ["AWS_SECRET_ACCESS_KEY"] not in setup.stdout
        # pgBackRest records the first backup's end in whole seconds, and the
        # window opens a second after that end. So the test waits for the second
        # after the one in which setup ended before it commits.
        ended = int(time.time())
        while int(time.time()) == ended:
            time.sleep(0.05)
        cluster.execute("postgres", "CREATE TABLE moves (id int)")
        cluster.execute("postgres", "INSERT INTO moves VALUES (1)")
        cluster.archive_now()
        status = run_cli(
            "pitr", "status", *cluster.pitr_options(), "--dsn", cluster.dsn, "--json"
        )
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        assert report["window"] is not None, status.stdout
        assert all(chain["continuous"] for chain in report["chains"])
    secrets = cluster.config_path / "conf.d" / "odoo-dr-test.secrets.conf"
    assert "repo1-s3-key-secret=" in secrets.read_text()
    config = (cluster.config_path / "conf.d" / "odoo-dr-test.conf").read_text()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in config


def test_target_at_window_end_is_refused(history):
    cluster = history.cluster
    backrest = PgBackRest(cluster.stanza, cluster.config_path, OsUser.resolve(None))
    status = read_status(backrest, None)
    assert status.window is not None
    # Recovery to a time stops only at a commit later than the target, so the
    # last archived commit itself can never end one.
    with pytest.raises(RejectedError, match="at or later than the last archived"):
        choose_backup(status, status.window.end)

    just_before = status.window.end - timedelta(microseconds=1)
    assert choose_backup(status, just_before).label == status.window.backup
    result = run_cli(
        "drill", "--pitr", "--target-time", just_before.isoformat(),
        "--tenant", TENANT, "--repo", str(history.repo),
        *cluster.pitr_options(), "--temp-dir", "/var/tmp", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = json.loads(result.stdout)
    assert record["passed"], record


def test_setup_keeps_the_cipher_of_a_stanza(history):
    cluster = history.cluster
    conf = cluster.config_path / "conf.d" / "odoo-dr-test.conf"
    secrets = cluster.config_path / "conf.d" / "odoo-dr-test.secrets.conf"
    conf_before = conf.read_bytes()
    secrets_before = secrets.read_bytes()

    plain = run_cli("pitr", "setup", *cluster.setup_options())
    assert plain.returncode == 2, plain.stdout + plain.stderr
    assert "is encrypted" in plain.stderr
    assert "will:" not in plain.stdout

    other = run_cli(
        "pitr", "setup", *cluster.setup_options(), "--encrypt",
        env={"ODOO_DR_PITR_CIPHER_PASS": "another-passphrase-0123456789"},
    )  # fmt: skip
    assert other.returncode == 2, other.stdout + other.stderr
    assert "passphrase given differs" in other.stderr
    assert "another-passphrase" not in other.stdout + other.stderr
    assert CIPHER_PASS not in other.stdout + other.stderr

    assert conf.read_bytes() == conf_before
    assert secrets.read_bytes() == secrets_before


def test_status_names_an_unreadable_repository(history):
    cluster = history.cluster
    # The same repository, read without its cipher: pgBackRest reports it in
    # its JSON and quotes bytes of the encrypted info file.
    folder = cluster.root / "config-without-cipher"
    (folder / "conf.d").mkdir(parents=True)
    text = (cluster.config_path / "conf.d" / "odoo-dr-test.conf").read_text()
    plain = "".join(
        line for line in text.splitlines(keepends=True) if "cipher" not in line
    )
    (folder / "conf.d" / "odoo-dr-test.conf").write_text(plain)
    if os.geteuid() == 0:
        for path in (folder, folder / "conf.d", *folder.rglob("*")):
            shutil.chown(path, "postgres", "postgres")

    result = run_cli(
        "pitr", "status", "--stanza", cluster.stanza,
        "--pgbackrest-config-path", str(folder), "--no-server",
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot read the repository of stanza 'test'" in result.stderr
    assert "unable to load info file" in result.stderr
    assert "unexpected" not in result.stderr


def test_restore_to_existing_target_refused_first(history, tmp_path):
    snapshots_before = run_cli("snapshots", "--repo", str(history.repo), "--json")
    assert snapshots_before.returncode == 0
    # "postgres" exists on every server, and without --force nothing replaces it.
    result = run_cli(
        "restore", "--pitr", "--target-time", history.target.isoformat(),
        "--tenant", TENANT, "--target", "postgres", "--copy",
        "--filestore-root", str(tmp_path), "--repo", str(history.repo),
        *history.cluster.pitr_options(), "--temp-dir", "/var/tmp",
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "target database 'postgres' already exists" in result.stderr
    assert "recovered stanza" not in result.stderr
    snapshots_after = run_cli("snapshots", "--repo", str(history.repo), "--json")
    assert json.loads(snapshots_after.stdout) == json.loads(snapshots_before.stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_temp_dir_closed_to_os_user(history, tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    result = run_cli(
        "pitr", "status", *history.cluster.pitr_options(), "--no-server",
        "--temp-dir", str(closed),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "OS user postgres cannot write to" in result.stderr
    assert "--temp-dir" in result.stderr
    assert list(closed.iterdir()) == []
