"""`odoo-dr run` on the machine's PostgreSQL with local repositories.

One demo database per xdist worker is shared by the module. Each test has its own
repositories, so what a run finds due depends only on that test's runs.
"""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import SMALL, drop_leftovers, run_cli
from odoo_dr.demo import builder
from odoo_dr.engine.schedule import (
    order_plans,
    plan_tenant,
    read_last_done,
    schedule_key,
    write_last_done,
)
from odoo_dr.pg.connection import PgSettings
from odoo_dr.repository.lock import RunLock
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import Inventory
from test_encryption import FAST_KDF


@dataclass(frozen=True)
class Demo:
    database: str
    filestore_root: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    name = f"odoo_dr_run_{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("run-filestore")
    builder.build(PgSettings.from_options(), name, root, SMALL, replace=True)
    yield Demo(name, root)
    drop_leftovers([name])


def write_inventory(
    folder: Path,
    tenants: list[str],
    *,
    schedule: str = "",
    retention: bool = True,
    offsite: bool = True,
) -> Path:
    """Write an inventory of environment `prod` whose repository is `repo`."""
    lines = [
        "version: 1",
        "environments:",
        "  - name: prod",
        "    evidence: {repository: repo}",
    ]
    if retention:
        lines.append("    retention: {keep_last: 1}")
    if offsite:
        lines.append("    offsite: {region: eu-west-1, repository: offsite}")
    lines.append("    tenants:")
    for name in tenants:
        lines += [f"      - name: {name}", "        tier: standard"]
        if schedule:
            lines.append(f"        schedule: {schedule}")
    path = folder / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    for repository in ("repo", "offsite"):
        if not (folder / repository).exists():
            Repository.init(str(folder / repository))
    return path


def run(inventory: Path, demo: Demo, *extra: str, env: dict | None = None):
    result = run_cli(
        "run",
        "--inventory",
        str(inventory),
        "--filestore-root",
        str(demo.filestore_root),
        *extra,
        env=env,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return result, lines


def results(lines: list[dict], tenant: str | None = None) -> dict[str, str]:
    """Return action -> result of the lines of `tenant` (every line if None)."""
    return {
        line["action"]: line["result"]
        for line in lines
        if tenant is None or line.get("tenant") == tenant
    }


def test_first_run_does_everything_due(tmp_path: Path, demo: Demo):
    inventory = write_inventory(tmp_path, [demo.database])

    first, lines = run(inventory, demo)

    assert first.returncode == 0, first.stderr
    assert results(lines) == {
        "backup": "done",
        "drill": "done",
        "verify": "done",
        "copy": "done",
        "prune": "done",
    }
    by_action = {line["action"]: line for line in lines}
    snapshot_id = by_action["backup"]["snapshot_id"]
    assert by_action["drill"]["snapshot_id"] == snapshot_id
    assert by_action["drill"]["drill_id"]
    for line in lines:
        assert line["environment"] == "prod"
        assert line["tenant"] == demo.database
        assert "time" in line
        assert line["seconds"] >= 0
    repository = Repository.open(str(tmp_path / "repo"))
    assert [item.id for item in repository.list_snapshots()] == [snapshot_id]
    assert [item.passed for item in repository.list_drills()] == [True]
    assert Repository.open(str(tmp_path / "offsite")).snapshot_ids() == [snapshot_id]
    done = read_last_done(repository, "prod", demo.database)
    assert sorted(done) == ["copy", "prune", "verify"]
    key = schedule_key(repository, "prod", demo.database)
    assert key.startswith("schedule/")
    assert demo.database not in key

    second, lines = run(inventory, demo)

    assert second.returncode == 0, second.stderr
    assert lines == []
    assert repository.snapshot_ids() == [snapshot_id]

    verbose, lines = run(inventory, demo, "-v")

    assert verbose.returncode == 0, verbose.stderr
    assert {line["result"] for line in lines} == {"not-due"}
    assert sorted(results(lines)) == ["backup", "copy", "drill", "prune", "verify"]
    assert all(line["next_due"] for line in lines)
    assert repository.snapshot_ids() == [snapshot_id]


def test_backup_due_again_after_interval(tmp_path: Path, demo: Demo):
    inventory = write_inventory(
        tmp_path, [demo.database], schedule="{backup: 1s, copy: 1s, prune: 1s}"
    )
    first, lines = run(inventory, demo)
    assert first.returncode == 0, first.stderr
    assert results(lines)["backup"] == "done"
    repository = Repository.open(str(tmp_path / "repo"))
    verified = read_last_done(repository, "prod", demo.database)["verify"]
    # The newest snapshot's time must be older than the 1s interval.
    time.sleep(1.1)

    second, lines = run(inventory, demo)

    assert second.returncode == 0, second.stderr
    assert results(lines) == {"backup": "done", "copy": "done", "prune": "done"}
    # keep_last 1 keeps the new snapshot, and the first stays as the newest one
    # with a passing drill.
    assert len(repository.snapshot_ids()) == 2
    assert len(repository.list_drills()) == 1
    done = read_last_done(repository, "prod", demo.database)
    assert done["verify"] == verified
    assert len(Repository.open(str(tmp_path / "offsite")).snapshot_ids()) == 2


def test_dry_run_changes_nothing(tmp_path: Path, demo: Demo):
    inventory = write_inventory(tmp_path, [demo.database])

    result, lines = run(inventory, demo, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert results(lines) == {
        "backup": "due",
        "drill": "due",
        "verify": "due",
        "prune": "due",
        "copy": "due",
    }
    repository = Repository.open(str(tmp_path / "repo"))
    assert repository.snapshot_ids() == []
    assert list(repository.backend.list("schedule/")) == []
    assert list(repository.backend.list("locks/")) == []


def test_failing_tenant_does_not_stop_others(tmp_path: Path, demo: Demo):
    missing = f"odoo_dr_run_missing_{uuid.uuid4().hex[:6]}"
    inventory = write_inventory(
        tmp_path, [missing, demo.database], retention=False, offsite=False
    )

    result, lines = run(inventory, demo, "--jobs", "2")

    assert result.returncode == 3, result.stdout
    assert results(lines, demo.database) == {
        "backup": "done",
        "drill": "done",
        "verify": "done",
    }
    failed = [line for line in lines if line["result"] == "failed"]
    assert [(line["tenant"], line["action"]) for line in failed] == [
        (missing, "backup")
    ]
    assert "not found" in failed[0]["error"]
    assert failed[0]["hint"]
    skipped = results(lines, missing)
    assert skipped == {"backup": "failed", "drill": "skipped", "verify": "skipped"}


def test_held_run_lock_skips_the_run(tmp_path: Path, demo: Demo):
    inventory = write_inventory(tmp_path, [demo.database])
    repository = Repository.open(str(tmp_path / "repo"))

    with RunLock(repository.backend, "prod"):
        result, lines = run(inventory, demo)

    assert result.returncode == 0, result.stderr
    assert len(lines) == 1
    assert lines[0]["action"] == "run"
    assert lines[0]["result"] == "skipped"
    assert f"pid {os.getpid()}" in lines[0]["detail"]
    assert "another run holds the lock since" in lines[0]["detail"]
    assert repository.snapshot_ids() == []


def test_overlapping_runs_work_once(tmp_path: Path, demo: Demo):
    inventory = write_inventory(tmp_path, [demo.database])
    command = [
        sys.executable,
        "-m",
        "odoo_dr",
        "run",
        "--inventory",
        str(inventory),
        "--filestore-root",
        str(demo.filestore_root),
    ]
    processes = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]

    for process, (_stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    lines = [json.loads(line) for stdout, _ in outputs for line in stdout.splitlines()]
    done = sorted(line["action"] for line in lines if line["result"] == "done")
    assert done == ["backup", "copy", "drill", "prune", "verify"]
    repository = Repository.open(str(tmp_path / "repo"))
    assert len(repository.snapshot_ids()) == 1
    assert len(repository.list_drills()) == 1


def test_cron_like_environment(tmp_path: Path, demo: Demo):
    inventory = write_inventory(tmp_path, [demo.database], retention=False)
    minimal = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C",
        "PGHOST": os.environ["PGHOST"],
        "PGPORT": os.environ["PGPORT"],
        "PGUSER": os.environ["PGUSER"],
    }

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "odoo_dr",
            "-q",
            "run",
            "--inventory",
            str(inventory),
            "--filestore-root",
            str(demo.filestore_root),
        ],
        capture_output=True,
        text=True,
        env=minimal,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert results(lines) == {
        "backup": "done",
        "drill": "done",
        "verify": "done",
        "copy": "done",
    }
    assert result.stderr == ""


def test_schedule_document_encrypted(tmp_path: Path):
    repository = Repository.init(
        str(tmp_path / "repo"), secret=b"a passphrase", kdf=FAST_KDF
    )
    moment = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)

    write_last_done(repository, "prod", "acme_tenant", "verify", moment)

    keys = list(repository.backend.list("schedule/"))
    assert len(keys) == 1
    assert "acme" not in keys[0]
    assert b"acme_tenant" not in repository.backend.read(keys[0])
    assert read_last_done(repository, "prod", "acme_tenant") == {"verify": moment}
    assert read_last_done(repository, "staging", "acme_tenant") == {}


# -- progress bars

PROGRESS_LABELS = ("run prod", "back up files of", "store dump of", "write dump of")


def run_command(inventory: Path, demo: Demo) -> list[str]:
    return [
        sys.executable,
        "-m",
        "odoo_dr",
        "run",
        "--inventory",
        str(inventory),
        "--filestore-root",
        str(demo.filestore_root),
    ]


def read_terminal(master: int, process: subprocess.Popen) -> bytes:
    """Read what `process` writes to the terminal `master` until it exits."""
    chunks = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                # EIO: every process holding the terminal closed it.
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    return b"".join(chunks)


def run_on_terminal(command: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run `command` with stderr on a pseudo-terminal; return its exit code, what
    the terminal showed and its stdout."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    try:
        terminal = read_terminal(master, process).decode("utf-8", "replace")
    finally:
        os.close(master)
    stdout = process.stdout.read().decode() if process.stdout else ""
    process.wait(timeout=60)
    return process.returncode, terminal, stdout


def test_progress_on_terminal(tmp_path: Path, demo: Demo):
    inventory = write_inventory(tmp_path, [demo.database], retention=False)
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120")
    env.pop("ODOO_DR_PROGRESS", None)
    returncode, terminal, stdout = run_on_terminal(run_command(inventory, demo), env)

    assert returncode == 0, terminal
    for label in PROGRESS_LABELS:
        assert label in terminal
    assert "\x1b[" in terminal
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert results(lines)["backup"] == "done"
    assert "━" not in stdout


def test_no_progress_without_terminal(tmp_path: Path, demo: Demo):
    inventory = write_inventory(tmp_path, [demo.database], retention=False)

    result = subprocess.run(
        run_command(inventory, demo),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "published snapshot" in result.stderr
    for label in PROGRESS_LABELS:
        assert label not in result.stderr
    assert "\x1b[" not in result.stderr
    assert "━" not in result.stderr


def test_no_progress_when_turned_off(tmp_path: Path, demo: Demo):
    inventory = write_inventory(tmp_path, [demo.database], retention=False)
    env = dict(os.environ, TERM="xterm-256color", ODOO_DR_PROGRESS="0")
    returncode, terminal, _stdout = run_on_terminal(run_command(inventory, demo), env)

    assert returncode == 0, terminal
    assert "published snapshot" in terminal
    for label in PROGRESS_LABELS:
        assert label not in terminal


def test_stale_run_lock_is_taken_over(tmp_path: Path, demo: Demo):
    inventory = write_inventory(tmp_path, [demo.database], retention=False)
    repository = Repository.open(str(tmp_path / "repo"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = RunLock(repository.backend, "prod")
    holder = {
        "tenant": "prod",
        "operation": "run",
        "host": socket.gethostname(),
        "pid": dead.pid,
        "created_at": "2026-12-05T00:00:00+00:00",
        "refreshed_at": datetime.now(UTC).isoformat(),
        "token": "left-by-a-killed-run",
    }
    repository.backend.write(lock.key, json.dumps(holder).encode())

    result, lines = run(inventory, demo)

    assert result.returncode == 0, result.stderr
    assert results(lines)["backup"] == "done"
    assert "removing stale lock" in result.stderr
    assert list(repository.backend.list("locks/")) == []


# -- what is due, without a server


def _snapshot(tenant: str, snapshot_id: str, moment: datetime):
    return SimpleNamespace(id=snapshot_id, tenant=tenant, snapshot_time=moment)


def _drill(snapshot_id: str, moment: datetime, passed: bool):
    return SimpleNamespace(
        id=f"drill-{snapshot_id}", snapshot_id=snapshot_id, started_at=moment,
        passed=passed,
    )  # fmt: skip


NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _plan_inventory() -> Inventory:
    return Inventory.model_validate(
        {
            "environments": [
                {
                    "name": "prod",
                    "retention": {"keep_last": 3},
                    "tenants": [
                        {"name": "low_tenant", "tier": "low"},
                        {"name": "critical_tenant", "tier": "critical"},
                        {"name": "standard_tenant", "tier": "standard"},
                    ],
                }
            ]
        }
    )


def test_plan_backup_due_after_interval():
    inventory = _plan_inventory()
    environment = inventory.environments[0]
    tenant = environment.tenants[2]
    # The standard tier's backup interval is its 24h logical-corruption RPO.
    recent = [_snapshot(tenant.name, "s1", NOW - 23 * HOUR)]
    old = [_snapshot(tenant.name, "s1", NOW - 25 * HOUR)]

    fresh = plan_tenant(inventory, environment, tenant, recent, [], {}, NOW)
    stale = plan_tenant(inventory, environment, tenant, old, [], {}, NOW)
    empty = plan_tenant(inventory, environment, tenant, [], [], {}, NOW)

    assert fresh.tasks["backup"].due is False
    assert fresh.tasks["backup"].due_at == NOW + HOUR
    assert stale.tasks["backup"].due is True
    assert empty.tasks["backup"].due is True
    assert empty.tasks["backup"].due_at is None
    assert fresh.tasks["copy"].blocked is True
    assert fresh.tasks["copy"].due is False
    assert fresh.tasks["prune"].due is True


def test_plan_failed_drill_waits_for_snapshot():
    inventory = _plan_inventory()
    environment = inventory.environments[0]
    tenant = environment.tenants[2]
    snapshots = [
        _snapshot(tenant.name, "s1", NOW - 3 * HOUR),
        _snapshot(tenant.name, "s2", NOW - 2 * HOUR),
    ]
    on_newest = [_drill("s2", NOW - HOUR, passed=False)]
    on_older = [_drill("s1", NOW - HOUR, passed=False)]
    passed = [_drill("s1", NOW - HOUR, passed=True)]

    waiting = plan_tenant(inventory, environment, tenant, snapshots, on_newest, {}, NOW)
    retried = plan_tenant(inventory, environment, tenant, snapshots, on_older, {}, NOW)
    proven = plan_tenant(inventory, environment, tenant, snapshots, passed, {}, NOW)

    assert waiting.tasks["drill"].due is True
    assert waiting.tasks["drill"].waits_for_snapshot is True
    assert retried.tasks["drill"].due is True
    assert retried.tasks["drill"].waits_for_snapshot is False
    assert proven.tasks["drill"].due is False


def test_plan_order_due_then_critical():
    inventory = _plan_inventory()
    environment = inventory.environments[0]
    low, critical, standard = environment.tenants
    done = {"verify": NOW, "prune": NOW, "copy": NOW}

    def plan(tenant, snapshot_age: timedelta):
        snapshots = [_snapshot(tenant.name, "s", NOW - snapshot_age)]
        drills = [_drill("s", NOW - snapshot_age, passed=True)]
        return plan_tenant(inventory, environment, tenant, snapshots, drills, done, NOW)

    plans = [
        plan(low, 30 * 24 * HOUR),  # due: its backup interval is 1d
        plan(critical, HOUR),  # nothing due
        plan(standard, 48 * HOUR),  # due: its backup interval is 1d
    ]

    ordered = order_plans(inventory, environment, plans, NOW)

    assert [item.tenant.name for item in ordered] == [
        "standard_tenant",
        "low_tenant",
        "critical_tenant",
    ]
