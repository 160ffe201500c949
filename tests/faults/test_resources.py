"""Resources that run out and services that fail in the middle of a command.

A full disk under the repository or the temporary folder (a small tmpfs in a
private mount namespace), PostgreSQL ending the backend of pg_dump or pg_restore
or stopping at once, and an S3 endpoint that returns errors, resets connections,
stalls or cuts bodies short. Each failure must end in a clear error with the
documented exit code, publish nothing, and leave the repository good: once the
fault is gone, `verify --read-data` passes and the next backup succeeds.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from conftest import (
    SMALL,
    admin_connection,
    database_exists,
    run_cli,
)
from faults.conftest import trials
from mounts import odoo_dr, run_in_namespace, tmpfs
from odoo_dr.errors import ExitCode
from odoo_dr.repository.backend import ObjectNotFound
from odoo_dr.repository.store import Repository

# The marker lines a namespace script prints between its steps.
STEP = "== step "


def backup_args(repo: str, name: str, root: Path, *extra: str) -> list[str]:
    return ["backup", name, "--repo", repo, "--filestore-root", str(root), *extra]


def restore_args(repo: str, snapshot: str, target: str, root: Path, *extra: str):
    return [
        "restore", snapshot, "--target", target, "--copy",
        "--filestore-root", str(root), "--repo", repo, *extra,
    ]  # fmt: skip


def steps(stdout: str) -> dict[str, str]:
    """Split a namespace script's stdout at its step markers: name -> output."""
    found: dict[str, str] = {}
    name = None
    for line in stdout.splitlines():
        if line.startswith(STEP):
            name = line[len(STEP) :].strip()
            found[name] = ""
        elif name is not None:
            found[name] += line + "\n"
    return found


def codes(stdout: str) -> dict[str, int]:
    """Return the `code NAME N` lines of a namespace script as name -> exit code."""
    return {
        match[1]: int(match[2])
        for match in re.finditer(r"^code (\S+) (\d+)$", stdout, re.MULTILINE)
    }


def step(name: str, command: str) -> str:
    """Return shell lines that run `command` and print its exit code, never failing."""
    return (
        f"echo {shlex.quote(STEP + name)}\n"
        f"code=0; {command} || code=$?\n"
        f"echo code {name} $code\n"
    )


def add_files(folder: Path, chooser, count: int, size: int) -> None:
    """Write `count` new files of random bytes under `folder`, named by their index."""
    target = folder / "zz"
    target.mkdir(parents=True, exist_ok=True)
    start = len(list(target.iterdir()))
    for index in range(start, start + count):
        (target / f"{index:040x}").write_bytes(chooser.randbytes(size))


# -- a full repository disk


def test_full_repository_disk_backup(
    odoo_database, filestore_root, tmp_path, fault_random, fault_seed, fault_record
):
    """Backups into a tmpfs that a filler file leaves a random room on.

    The room left decides where the first backup of a trial runs out, if it does,
    and a second one over new files may run out too. Then the filler goes, and
    `verify --read-data` and a new backup must pass.
    """
    summary = odoo_database()
    disk_size = 4 * 2**20
    count = trials(1, 40)
    for trial in range(count):
        disk = tmp_path / f"disk{trial}"
        disk.mkdir()
        repo = disk / "repo"
        saved = tmp_path / f"saved{trial}"
        # The room left: from a few pages to more than one backup needs.
        filler = disk_size - fault_random.randint(48 * 1024, 2_600_000)
        add_files(summary.filestore, fault_random, 3, 20_000)
        backup = odoo_dr(*backup_args(str(repo), summary.database, filestore_root,
                                      "--temp-dir", str(tmp_path)))  # fmt: skip
        snapshots = shlex.quote(str(repo / "snapshots"))
        script = f"""
{tmpfs(disk, disk_size)}
{odoo_dr("init", "--repo", str(repo))} > /dev/null
head -c {filler} /dev/zero > {shlex.quote(str(disk / "filler"))}
{step("first", backup)}
echo {STEP}listed-first; ls -A {snapshots}
{step("second", backup)}
echo {STEP}listed-second; ls -A {snapshots}
echo {STEP}tmp; ls -A {shlex.quote(str(repo / "tmp"))} \
  {shlex.quote(str(repo / "locks"))}
rm {shlex.quote(str(disk / "filler"))}
{step("verify", odoo_dr("verify", "--read-data", "--repo", str(repo)))}
{step("again", backup)}
cp -a {shlex.quote(str(repo))} {shlex.quote(str(saved))}
"""  # fmt: skip
        result = run_in_namespace(script)
        context = f"seed {fault_seed} trial {trial} room {disk_size - filler}"
        assert result.returncode == 0, f"{context}\n{result.stderr}"
        got = codes(result.stdout)
        parts = steps(result.stdout)
        failed = [name for name in ("first", "second") if got[name] != 0]
        listed_first = parts["listed-first"].split()
        listed_second = parts["listed-second"].split()
        # A failed backup lists no new snapshot, a passing one lists one.
        expected_first = 0 if got["first"] else 1
        expected_second = expected_first + (0 if got["second"] else 1)
        empty = sorted([f"{repo}/tmp:", f"{repo}/locks:"])
        checks = {
            "first code": got["first"] in (0, ExitCode.BACKUP_FAILED),
            "second code": got["second"] in (0, ExitCode.BACKUP_FAILED),
            "first listing": len(listed_first) == expected_first,
            "second listing": len(listed_second) == expected_second,
            "tmp and locks": sorted(parts["tmp"].split()) == empty,
            "verify": got["verify"] == 0,
            "next backup": got["again"] == 0,
        }
        fault_record.trials += 1
        fault_record.faults += len(failed)
        fault_record.inputs += 2
        fault_record.lost += sum(not passed for passed in checks.values())
        for name in failed:
            fault_record.notes.append(f"{name} backup ran out of room")
        if failed:
            message = f"no space left on the device of repository path {repo}/"
            assert message in result.stderr, f"{context}\n{result.stderr}"
            assert "move the repository to a larger disk" in result.stderr, context
        assert checks["first code"], f"{context}\n{result.stderr}"
        assert checks["second code"], f"{context}\n{result.stderr}"
        assert checks["first listing"], f"{context} {listed_first}"
        assert checks["second listing"], f"{context} {listed_second}"
        assert checks["tmp and locks"], f"{context} {parts['tmp']}"
        assert checks["verify"], f"{context}\n{result.stderr}"
        assert checks["next backup"], f"{context}\n{result.stderr}"
        saved_repo = Repository.open(str(saved))
        assert len(saved_repo.snapshot_ids()) == expected_second + 1, context
    fault_record.notes.append("repository on a 4 MiB tmpfs with a random filler")


# -- S3 returning errors, resetting, stalling, cutting bodies short

# A stall outlasts this read timeout, so the client gives up and retries.
S3_TIMEOUTS = {"ODOO_DR_S3_READ_TIMEOUT": "1", "ODOO_DR_S3_CONNECT_TIMEOUT": "1"}
S3_STALL = 1.5
# The bound of one command through the injector: far above a retried run's time.
S3_COMMAND_TIMEOUT = 240


def s3_run(injector, *args: str, attempts: int | None = None):
    env = {"AWS_ENDPOINT_URL": injector.url, **S3_TIMEOUTS}
    if attempts is not None:
        env["AWS_MAX_ATTEMPTS"] = str(attempts)
    return run_cli(*args, env=env, timeout=S3_COMMAND_TIMEOUT)


@pytest.fixture
def s3_location(s3_endpoint, unique, monkeypatch) -> str:
    from conftest import VERSIONED_BUCKET

    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return f"s3://{VERSIONED_BUCKET}/resources-{unique}"


def test_s3_transient_faults_are_retried(
    s3_endpoint,
    s3_location,
    odoo_database,
    filestore_root,
    database_names,
    tmp_path,
    fault_random,
    fault_seed,
    fault_record,
):
    """At a low fault rate every command succeeds, its retries bounded in time."""
    from s3_servers import fault_injector

    summary = odoo_database()
    local = str(tmp_path / "local")
    assert run_cli("init", "--repo", local).returncode == 0
    count = trials(1, 10)
    with fault_injector(
        s3_endpoint, fault_random, rate=0.04, stall=S3_STALL
    ) as injector:
        for trial in range(count):
            location = f"{s3_location}-{trial}"
            context = f"seed {fault_seed} trial {trial}"
            init = s3_run(injector, "init", "--repo", location)
            assert init.returncode == 0, f"{context}\n{init.stderr}"
            backup = s3_run(
                injector, *backup_args(location, summary.database, filestore_root)
            )
            assert backup.returncode == 0, f"{context}\n{backup.stderr}"
            snapshot = backup.stdout.strip()
            verify = s3_run(injector, "verify", "--read-data", "--repo", location)
            assert verify.returncode == 0, f"{context}\n{verify.stderr}"
            target = f"{summary.database}_s3_{trial}"
            database_names.append(target)
            restore = s3_run(
                injector,
                *restore_args(location, snapshot, target, tmp_path / f"out{trial}"),
            )
            assert restore.returncode == 0, f"{context}\n{restore.stderr}"
            local_backup = run_cli(
                *backup_args(local, summary.database, filestore_root)
            )
            assert local_backup.returncode == 0, local_backup.stderr
            copy = s3_run(injector, "copy", "--repo", local, "--to", location)
            assert copy.returncode == 0, f"{context}\n{copy.stderr}"
            fault_record.trials += 1
            fault_record.inputs += 6
        fault_record.faults = injector.faults
        kinds = dict(injector.injected)
    fault_record.notes.append(f"transient S3 faults by kind: {kinds}")
    assert injector.faults > 0, f"seed {fault_seed}: no fault was injected"


# -- a full temporary folder


def test_full_temp_dir_backup_restore_drill(
    cli,
    repository,
    odoo_database,
    filestore_root,
    database_names,
    tmp_path,
    fault_random,
    fault_seed,
    fault_record,
):
    """Backup, restore and drill with --temp-dir on a tmpfs of random small size."""
    summary = odoo_database()
    repo = repository.location
    first = cli(*backup_args(repo, summary.database, filestore_root))
    assert first.returncode == 0, first.stderr
    snapshot = first.stdout.strip()
    expected_code = {
        "backup": ExitCode.BACKUP_FAILED,
        "restore": ExitCode.RESTORE_FAILED,
        "drill": ExitCode.RESTORE_FAILED,
    }
    count = trials(2, 100)
    start = fault_random.randrange(3)
    for trial in range(count):
        command = ("backup", "restore", "drill")[(start + trial) % 3]
        temp = tmp_path / f"temp{trial}"
        temp.mkdir()
        size = fault_random.randint(16, 2048) * 1024
        target = f"{summary.database}_t{trial}"
        out = tmp_path / f"out{trial}"
        if command == "backup":
            args = backup_args(repo, summary.database, filestore_root)
        elif command == "restore":
            database_names.append(target)
            args = restore_args(repo, snapshot, target, out)
        else:
            args = ["drill", snapshot, "--repo", repo]
        before = repository.snapshot_ids()
        # Half the trials also fill the disk from beside, at a random moment, so
        # that it runs out after the free-space check, during the command.
        filler = shlex.quote(str(temp / "filler"))
        delay = fault_random.choice([None, round(fault_random.uniform(0, 1.5), 2)])
        fill = (
            ""
            if delay is None
            else f"(sleep {delay}; cat /dev/zero > {filler} 2>/dev/null || true) &"
        )
        script = f"""
{tmpfs(temp, size)}
{fill}
code=0
{odoo_dr(*args, "--temp-dir", str(temp))} || code=$?
wait
rm -f {filler}
ls -A {shlex.quote(str(temp))}
exit $code
"""  # fmt: skip
        result = run_in_namespace(script)
        context = f"seed {fault_seed} trial {trial} {command} size {size} fill {delay}"
        fault_record.trials += 1
        fault_record.inputs += 1
        after = Repository.open(repo).snapshot_ids()
        if result.returncode == 0:
            # Room enough: the command did its work.
            if command == "restore":
                assert database_exists(target), context
            continue
        fault_record.faults += 1
        published = (
            (command == "backup" and after != before)
            or (command == "restore" and database_exists(target))
            or (command == "restore" and (out / target).exists())
        )
        checked = "not enough free space" in result.stderr
        expected = ExitCode.REJECTED if checked else expected_code[command]
        wrong = result.returncode != expected
        leftover = bool(result.stdout.split())
        fault_record.lost += int(published) + int(wrong) + int(leftover)
        fault_record.notes.append(f"{command}: {'pre-check' if checked else 'ran out'}")
        assert result.returncode == expected, f"{context}\n{result.stderr}"
        if checked:
            assert "pass --temp-dir on a larger disk" in result.stderr, context
        else:
            assert "No space left on device" in result.stderr, context
            # The message names the file that ran out of space, or when a write
            # through an open file gives no path, the folders written below.
            assert f"{temp}/" in result.stderr, f"{context}\n{result.stderr}"
            assert "--temp-dir" in result.stderr, f"{context}\n{result.stderr}"
        assert not published, context
        assert not leftover, f"{context}: left in the temporary folder {result.stdout}"
    verify = cli("verify", "--read-data", "--repo", repo)
    assert verify.returncode == 0, f"seed {fault_seed}\n{verify.stderr}"
    again = cli(*backup_args(repo, summary.database, filestore_root))
    assert again.returncode == 0, f"seed {fault_seed}\n{again.stderr}"
    fault_record.notes.append("--temp-dir on a tmpfs of 16 KiB to 2 MiB")


# -- PostgreSQL ending the backend of pg_dump or pg_restore


class Terminator(threading.Thread):
    """Terminate the backend of `application` that `where` selects, once, after `delay`.

    `where` is SQL over pg_stat_activity `a` and pg_database `d`, with %s for
    `value`; it selects this test's own backends only (the server is shared).
    """

    def __init__(self, application: str, where: str, value: str, delay: float):
        super().__init__(daemon=True)
        self.application = application
        self.where = where
        self.value = value
        self.delay = delay
        self.stop = threading.Event()
        self.terminated = False

    def run(self) -> None:
        with admin_connection() as connection:
            while not self.stop.is_set():
                row = connection.execute(
                    "SELECT a.pid FROM pg_stat_activity a"
                    " JOIN pg_database d ON d.oid = a.datid"
                    f" WHERE a.application_name = %s AND {self.where}"
                    " ORDER BY a.pid LIMIT 1",
                    (self.application, self.value),
                ).fetchone()
                if row is None:
                    time.sleep(0.002)
                    continue
                self.stop.wait(self.delay)
                ended = connection.execute(
                    "SELECT pg_terminate_backend(%s)", (row[0],)
                ).fetchone()
                self.terminated = bool(ended and ended[0])
                return


def run_with_terminator(
    args: list[str], application: str, where: str, value: str, delay: float
) -> tuple:
    """Run odoo-dr with `args` while a Terminator waits for its backend.

    `{pid}` in `value` stands for the odoo-dr process's pid.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "odoo_dr", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    terminator = Terminator(
        application, where, value.replace("{pid}", str(process.pid)), delay
    )
    terminator.start()
    try:
        stdout, stderr = process.communicate(timeout=300)
    finally:
        terminator.stop.set()
        terminator.join()
    return process.returncode, stdout, stderr, terminator.terminated, process.pid


def databases_of(pid: int) -> list[str]:
    """Return the temporary databases whose mark names odoo-dr's process `pid`."""
    with admin_connection() as connection:
        rows = connection.execute(
            "SELECT datname FROM pg_database"
            " WHERE shobj_description(oid, 'pg_database') LIKE %s",
            (f"odoo-dr % database of pid {pid} on host %",),
        ).fetchall()
    return [row[0] for row in rows]


def test_backend_ended_mid_dump_and_restore(
    cli,
    repository,
    odoo_database,
    filestore_root,
    database_names,
    tmp_path,
    fault_random,
    fault_seed,
    fault_record,
):
    """pg_terminate_backend of pg_dump's or pg_restore's backend at a random moment."""
    summary = odoo_database()
    repo = repository.location
    first = cli(*backup_args(repo, summary.database, filestore_root))
    assert first.returncode == 0, first.stderr
    snapshot = first.stdout.strip()
    count = trials(2, 100)
    for trial in range(count):
        delay = round(fault_random.uniform(0, 0.3), 3)
        context = f"seed {fault_seed} trial {trial} delay {delay}"
        before = Repository.open(repo).snapshot_ids()
        if trial % 2 == 0:
            code, stdout, stderr, ended, pid = run_with_terminator(
                backup_args(repo, summary.database, filestore_root),
                "pg_dump",
                "d.datname = %s",
                summary.database,
                delay,
            )
            after = Repository.open(repo).snapshot_ids()
            fault_record.trials += 1
            if not ended or code == 0:
                # The dump had finished before the backend was ended.
                assert code == 0, f"{context}\n{stderr}"
                assert len(after) == len(before) + 1, context
                continue
            fault_record.faults += 1
            wrong = code != ExitCode.BACKUP_FAILED
            published = after != before
            fault_record.lost += int(wrong) + int(published)
            fault_record.notes.append("pg_dump backend ended")
            assert code == ExitCode.BACKUP_FAILED, f"{context}\n{stderr}"
            assert "pg_dump" in stderr, f"{context}\n{stderr}"
            assert "hint:" in stderr, f"{context}\n{stderr}"
            assert not published, context
            continue
        target = f"{summary.database}_r{trial}"
        database_names.append(target)
        out = tmp_path / f"out{trial}"
        code, stdout, stderr, ended, pid = run_with_terminator(
            restore_args(repo, snapshot, target, out),
            "pg_restore",
            "shobj_description(d.oid, 'pg_database') LIKE %s",
            "odoo-dr % database of pid {pid} on host %",
            delay,
        )
        fault_record.trials += 1
        if not ended or code == 0:
            assert code == 0, f"{context}\n{stderr}"
            assert database_exists(target), context
            continue
        fault_record.faults += 1
        wrong = code != ExitCode.RESTORE_FAILED
        published = database_exists(target) or (out / target).exists()
        left = databases_of(pid)
        fault_record.lost += int(wrong) + int(published) + int(bool(left))
        fault_record.notes.append("pg_restore backend ended")
        assert code == ExitCode.RESTORE_FAILED, f"{context}\n{stderr}"
        assert "pg_restore" in stderr, f"{context}\n{stderr}"
        assert "hint:" in stderr, f"{context}\n{stderr}"
        assert not database_exists(target), context
        assert not (out / target).exists(), context
        assert left == [], f"{context}\n{stderr}"
    verify = cli("verify", "--read-data", "--repo", repo)
    assert verify.returncode == 0, f"seed {fault_seed}\n{verify.stderr}"
    again = cli(*backup_args(repo, summary.database, filestore_root))
    assert again.returncode == 0, f"seed {fault_seed}\n{again.stderr}"


# -- a PostgreSQL server stopped at once in the middle of a backup


@pytest.fixture
def private_cluster():
    from conftest import free_port
    from pitr_cluster import Cluster

    cluster = Cluster.create(free_port())
    try:
        yield cluster
    finally:
        cluster.remove()


def dump_backend_seen(cluster, database: str, stop: threading.Event) -> bool:
    """Wait until pg_dump's backend is connected to `database`; False if stopped."""
    while not stop.is_set():
        try:
            rows = cluster.execute(
                "postgres",
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pg_dump'"
                " AND datname = %s",
                (database,),
            )
        except psycopg.OperationalError:
            return False
        if rows:
            return True
        time.sleep(0.002)
    return False


def stop_when_dumping(
    cluster, database: str, stop: threading.Event, delay: float, stopped: list
) -> None:
    """Stop `cluster` at once `delay` seconds after pg_dump connects to `database`."""
    if dump_backend_seen(cluster, database, stop):
        stop.wait(delay)
        cluster.stop("immediate")
        stopped.append(True)


def test_server_stopped_mid_backup(
    cli,
    repository,
    private_cluster,
    tmp_path,
    fault_random,
    fault_seed,
    fault_record,
):
    """`pg_ctl stop -m immediate` of the server while a backup reads it."""
    from odoo_dr.demo import builder

    cluster = private_cluster
    root = tmp_path / "filestore"
    summary = builder.build(cluster.settings, "stopped_tenant", root, SMALL)
    repo = repository.location
    args = [*backup_args(repo, summary.database, root), "--dsn", cluster.dsn]
    count = trials(1, 100)
    for trial in range(count):
        delay = round(fault_random.uniform(0, 0.3), 3)
        context = f"seed {fault_seed} trial {trial} delay {delay}"
        before = repository.snapshot_ids()
        process = subprocess.Popen(
            [sys.executable, "-m", "odoo_dr", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stop = threading.Event()
        stopped: list[bool] = []
        stopper = threading.Thread(
            target=stop_when_dumping,
            args=(cluster, summary.database, stop, delay, stopped),
            daemon=True,
        )
        stopper.start()
        try:
            stdout, stderr = process.communicate(timeout=300)
        finally:
            stop.set()
            stopper.join()
        after = Repository.open(repo).snapshot_ids()
        fault_record.trials += 1
        if stopped:
            cluster.start()
        if not stopped or process.returncode == 0:
            assert process.returncode == 0, f"{context}\n{stderr}"
            assert len(after) == len(before) + 1, context
            continue
        fault_record.faults += 1
        wrong = process.returncode != ExitCode.BACKUP_FAILED
        published = after != before
        fault_record.lost += int(wrong) + int(published)
        assert process.returncode == ExitCode.BACKUP_FAILED, f"{context}\n{stderr}"
        assert "hint:" in stderr, f"{context}\n{stderr}"
        assert not published, context
        errors = [line for line in stderr.splitlines() if "error:" in line]
        fault_record.notes.append((errors or [""])[0][:160])
    verify = cli("verify", "--read-data", "--repo", repo)
    assert verify.returncode == 0, f"seed {fault_seed}\n{verify.stderr}"
    again = cli(*args)
    assert again.returncode == 0, f"seed {fault_seed}\n{again.stderr}"


def test_s3_persistent_faults_fail_cleanly(
    s3_endpoint,
    s3_location,
    odoo_database,
    filestore_root,
    database_names,
    tmp_path,
    fault_random,
    fault_seed,
    fault_record,
):
    """At a high fault rate with two attempts, commands fail and publish nothing.

    Once the faults stop, `verify --read-data` passes and a backup succeeds.
    """
    from s3_servers import fault_injector

    summary = odoo_database()
    local = str(tmp_path / "local")
    assert run_cli("init", "--repo", local).returncode == 0
    assert run_cli("init", "--repo", s3_location).returncode == 0
    first = run_cli(*backup_args(s3_location, summary.database, filestore_root))
    assert first.returncode == 0, first.stderr
    snapshot = first.stdout.strip()
    # A store that fails before the command changed anything (opening the
    # repository, reading the manifest, listing the target) gives exit 2; once the
    # command has begun its work, the command's own failure code. Verify has no
    # finding about the snapshots when the store cannot be read.
    expected = {
        "backup": {ExitCode.REJECTED, ExitCode.BACKUP_FAILED},
        "copy": {ExitCode.REJECTED, ExitCode.BACKUP_FAILED},
        "verify": {ExitCode.REJECTED},
        "restore": {ExitCode.REJECTED, ExitCode.RESTORE_FAILED},
    }
    outcomes: Counter[str] = Counter()
    count = trials(2, 40)
    start = fault_random.randrange(4)
    for trial in range(count):
        command = ("backup", "copy", "verify", "restore")[(start + trial) % 4]
        rate = round(fault_random.uniform(0.2, 0.6), 2)
        context = f"seed {fault_seed} trial {trial} {command} rate {rate}"
        repository = Repository.open(s3_location)
        before = repository.snapshot_ids()
        target = f"{summary.database}_s{trial}"
        out = tmp_path / f"out{trial}"
        if command == "backup":
            add_files(summary.filestore, fault_random, 2, 30_000)
            args = backup_args(s3_location, summary.database, filestore_root)
        elif command == "copy":
            local_backup = run_cli(
                *backup_args(local, summary.database, filestore_root)
            )
            assert local_backup.returncode == 0, local_backup.stderr
            args = ["copy", "--repo", local, "--to", s3_location]
        elif command == "verify":
            args = ["verify", "--read-data", "--repo", s3_location]
        else:
            database_names.append(target)
            args = restore_args(s3_location, snapshot, target, out)
        with fault_injector(
            s3_endpoint, fault_random, rate=rate, stall=S3_STALL
        ) as injector:
            result = s3_run(injector, *args, attempts=2)
            faults = injector.faults
        fault_record.trials += 1
        fault_record.inputs += 1
        fault_record.faults += faults
        after = Repository.open(s3_location).snapshot_ids()
        if result.returncode == 0:
            continue
        wrong = result.returncode not in expected[command]
        published = (command == "backup" and after != before) or (
            command == "restore"
            and (database_exists(target) or (out / target).exists())
        )
        check = run_cli("verify", "--read-data", "--repo", s3_location)
        fault_record.lost += int(wrong) + int(published) + int(check.returncode != 0)
        outcomes[f"{command} exit {result.returncode}"] += 1
        assert result.returncode in expected[command], f"{context}\n{result.stderr}"
        assert s3_location.removeprefix("s3://").split("/")[0] in result.stderr, (
            f"{context}\n{result.stderr}"
        )
        assert "hint:" in result.stderr, f"{context}\n{result.stderr}"
        assert not published, context
        assert check.returncode == 0, f"{context}\n{check.stderr}"
    fault_record.notes.append(f"failed commands: {dict(outcomes)}")
    again = run_cli(*backup_args(s3_location, summary.database, filestore_root))
    assert again.returncode == 0, f"seed {fault_seed}\n{again.stderr}"


def test_s3_cut_body_is_read_again(
    s3_endpoint, s3_location, fault_random, fault_record, monkeypatch
):
    """A GET whose response is cut short, stalls or fails is sent again."""
    from odoo_dr.repository.s3 import S3Backend
    from s3_servers import fault_injector

    data = fault_random.randbytes(50_000)
    with fault_injector(s3_endpoint, fault_random, rate=0) as injector:
        for name, value in {"AWS_ENDPOINT_URL": injector.url, **S3_TIMEOUTS}.items():
            monkeypatch.setenv(name, value)
        backend = S3Backend.from_location(s3_location)
        backend.write("packs/one", data)
        for kind in ("short-body", "stall", "reset", "slowdown"):
            injector.plan("GET", kind)
            assert backend.read("packs/one") == data, kind
            injector.plan("GET", kind)
            assert backend.read_range("packs/one", 100, 10) == data[100:110], kind
        # Bodies that botocore reads itself: a listing, and a missing key's error.
        injector.plan("GET", "short-body", "list-type")
        assert list(backend.list("packs/")) == ["packs/one"]
        injector.plan("GET", "short-body", "missing")
        with pytest.raises(ObjectNotFound):
            backend.read("packs/missing")
        fault_record.trials += 10
        fault_record.faults += injector.faults
    assert injector.faults == 10


def test_s3_failure_is_no_damage_finding(
    s3_endpoint, s3_location, fault_random, fault_record
):
    """A read the store keeps failing ends verify with exit 2, naming the store,
    never as damage (exit 5) of objects that may well be intact."""
    from s3_servers import fault_injector
    from test_catalog import write_manifests

    repository = Repository.init(s3_location)
    write_manifests(repository, ["alpha"], 2)
    repository.snapshot_summaries()
    assert run_cli("verify", "--read-data", "--repo", s3_location).returncode == 0
    for key in ("packs/", "snapshots/", "catalog/"):
        with fault_injector(s3_endpoint, fault_random, rate=0) as injector:
            for _ in range(4):
                injector.plan("GET", "500", key)
            result = s3_run(
                injector, "verify", "--read-data", "--repo", s3_location, attempts=2
            )
            fault_record.trials += 1
            fault_record.faults += injector.faults
        assert result.returncode == 2, (key, result.stdout, result.stderr)
        assert "the object store returned" in result.stderr, key
        assert "unreadable" not in result.stdout, key
    assert run_cli("verify", "--read-data", "--repo", s3_location).returncode == 0


def test_s3_lost_create_answer_is_own(
    s3_endpoint, s3_location, fault_random, fault_record, monkeypatch
):
    """A lock or config.json whose create S3 applied but whose response was lost."""
    from odoo_dr.repository.lock import TenantLock
    from s3_servers import fault_injector

    with fault_injector(s3_endpoint, fault_random, rate=0) as injector:
        monkeypatch.setenv("AWS_ENDPOINT_URL", injector.url)
        injector.plan("PUT", "reset-after", "config.json")
        repository = Repository.init(s3_location)
        injector.plan("PUT", "reset-after", "locks/")
        lock = TenantLock(repository.backend, "tenant", "backup")
        lock.acquire()
        lock.release()
        fault_record.trials += 2
        fault_record.faults += injector.faults
        assert Repository.open(s3_location).config.id == repository.config.id
        assert not list(repository.backend.list("locks/"))
    assert injector.faults == 2


def test_full_repository_disk_copy_drill(
    cli,
    repository,
    odoo_database,
    filestore_root,
    tmp_path,
    fault_random,
    fault_seed,
    fault_record,
):
    """Copy into, drill from and verify a repository on a disk with random room."""
    summary = odoo_database()
    source = repository.location
    for _ in range(2):
        add_files(summary.filestore, fault_random, 3, 20_000)
        source_backup = cli(*backup_args(source, summary.database, filestore_root))
        assert source_backup.returncode == 0, source_backup.stderr
    disk_size = 4 * 2**20
    count = trials(1, 40)
    for trial in range(count):
        disk = tmp_path / f"disk{trial}"
        disk.mkdir()
        repo = disk / "repo"
        filler = disk_size - fault_random.randint(16 * 1024, 900_000)
        target = shlex.quote(str(repo))
        copy = odoo_dr("copy", "--repo", source, "--to", str(repo))
        drill = odoo_dr("drill", summary.database, "--repo", str(repo),
                        "--temp-dir", str(tmp_path))  # fmt: skip
        script = f"""
{tmpfs(disk, disk_size)}
{odoo_dr("init", "--repo", str(repo))} > /dev/null
head -c {filler} /dev/zero > {shlex.quote(str(disk / "filler"))}
{step("copy", copy)}
echo {STEP}listed; ls -A {target}/snapshots
{step("drill", drill)}
{step("full-verify", odoo_dr("verify", "--read-data", "--repo", str(repo)))}
echo {STEP}tmp; ls -A {target}/tmp {target}/locks
rm {shlex.quote(str(disk / "filler"))}
{step("verify", odoo_dr("verify", "--read-data", "--repo", str(repo)))}
{step("again", copy)}
"""  # fmt: skip
        result = run_in_namespace(script)
        context = f"seed {fault_seed} trial {trial} room {disk_size - filler}"
        assert result.returncode == 0, f"{context}\n{result.stderr}"
        got = codes(result.stdout)
        parts = steps(result.stdout)
        listed = parts["listed"].split()
        empty = sorted([f"{repo}/tmp:", f"{repo}/locks:"])
        # The drill needs a snapshot of its tenant: with none copied it is rejected.
        drill_codes = (0, ExitCode.REJECTED) if listed else (ExitCode.REJECTED,)
        checks = {
            "copy code": got["copy"] in (0, ExitCode.BACKUP_FAILED),
            "copy listing": (len(listed) == 2) == (got["copy"] == 0),
            "drill code": got["drill"] in drill_codes,
            "verify when full": got["full-verify"] == 0,
            "tmp and locks": sorted(parts["tmp"].split()) == empty,
            "verify": got["verify"] == 0,
            "copy again": got["again"] == 0,
        }
        fault_record.trials += 1
        fault_record.inputs += 2
        fault_record.faults += int(got["copy"] != 0) + int(got["drill"] != 0)
        fault_record.lost += sum(not passed for passed in checks.values())
        fault_record.notes.append(
            f"copy {got['copy']} ({len(listed)} listed), drill {got['drill']}"
        )
        if got["copy"]:
            message = f"no space left on the device of repository path {repo}/"
            assert message in result.stderr, f"{context}\n{result.stderr}"
        assert checks["copy code"], f"{context}\n{result.stderr}"
        assert checks["copy listing"], f"{context} {listed}"
        assert checks["drill code"], f"{context}\n{result.stderr}"
        assert checks["verify when full"], f"{context}\n{result.stderr}"
        assert checks["tmp and locks"], f"{context} {parts['tmp']}"
        assert checks["verify"], f"{context}\n{result.stderr}"
        assert checks["copy again"], f"{context}\n{result.stderr}"
