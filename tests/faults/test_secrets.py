"""Secrets and access: logs, process arguments, stored files, file modes, the
dashboard's token and quoted SQL identifiers.

Every secret a test hands to odoo-dr here is registered with `secret()`, so the
session's scan of the logs of odoo-dr runs (tests/secret_scan.py) looks for it too.
"""

from __future__ import annotations

import ast
import base64
import os
import shlex
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import psycopg
import pytest
from psycopg import sql

import secret_scan
from conftest import (
    BUCKET_REGION,
    PLAIN_BUCKET,
    admin_connection,
    clone_demo,
    database_exists,
    drop_leftovers,
    free_port,
    query,
    run_cli,
    secret,
)
from faults.conftest import FaultRecord, full_scale, trials
from odoo_dr.errors import RejectedError
from odoo_dr.pg import roles as pg_roles
from odoo_dr.pg.binaries import find_newest_tools
from odoo_dr.repository.store import Repository

SECRET_ALPHABET = string.ascii_letters + string.digits + " !#%+,-.:=@^_~'\""


def random_secret(fault_random, prefix: str, length: int = 24) -> str:
    body = "".join(fault_random.choice(SECRET_ALPHABET) for _ in range(length))
    return f"{prefix}-{body}"


# 1. The scan of the suite's logs ----------------------------------------------


def test_scan_finds_planted_secret(tmp_path, fault_record: FaultRecord):
    folder = tmp_path / "logs"
    folder.mkdir()
    value = "planted-Zq81-secret"
    (folder / "gw0.log").write_text("--- stderr of pid 1\nclean output\n")
    (folder / "gw1.log").write_text(f"--- stderr of pid 2\nconnecting with {value}\n")
    (folder / "gw1.secrets").write_text(f'{{"label": "x", "value": "{value}"}}\n')
    escaped = 'quote"d-secret-value'
    (folder / "gw2.log").write_text(f"--- log odoo_dr\n{escaped!r}\n")

    secrets = {"planted": value, "quoted": escaped, "absent": "never-logged-value"}
    found = secret_scan.scan(folder, secrets)
    fault_record.trials += 1
    fault_record.faults += 2
    fault_record.inputs += len(secrets)

    assert ("gw1.log", "planted") in found
    assert ("gw2.log", "quoted") in found
    assert len(found) == 2
    assert all(value not in f"{name}: {label}" for name, label in found)


def test_scan_registry_and_literals(tmp_path, monkeypatch):
    folder = tmp_path / "logs"
    folder.mkdir()
    source = tmp_path / "test_example.py"
    source.write_text(
        'env = {"ODOO_DR_PASSPHRASE": "literal Passphrase 7"}\n'
        'TOKEN = "short"\n'
        "conf = 'admin_passwd = Admin-Pw-55\\n'\n"
        'moto = {"AWS_SECRET_ACCESS_KEY": "testing"}\n'
    )
    monkeypatch.setenv(secret_scan.LOG_FOLDER_VARIABLE, str(folder))
    secret("registered-Value-9", "the registered one")

    literals = secret_scan.literal_secrets([source])
    registered = secret_scan.registered_secrets(folder)

    assert sorted(literals.values()) == ["Admin-Pw-55", "literal Passphrase 7"]
    assert registered == {"the registered one": "registered-Value-9"}


# 2. Process arguments and stored files, 3. file modes ---------------------------

# Files are created 0600 and folders 0700 (docs/security.md).
PRIVATE_MASK = 0o077


def walk(path: Path):
    yield path
    if path.is_dir() and not path.is_symlink():
        yield from path.rglob("*")


def loose_modes(paths: list[Path]) -> list[str]:
    """Return "path mode" for each file or folder below `paths` that others may use."""
    return [
        f"{item} {oct(item.lstat().st_mode & 0o777)}"
        for path in paths
        for item in walk(path)
        if item.lstat().st_mode & PRIVATE_MASK
    ]


WRAPPED_PG_TOOLS = ("pg_dump", "pg_restore", "psql")


def _wrap_pg_tools(folder: Path, record: Path) -> Path:
    """Write pg_dump, pg_restore and psql wrappers that record their arguments.

    Each appends its arguments, one a line, to `record` and runs the real tool.
    """
    real = find_newest_tools("the secrets test").bindir
    bindir = folder / "pg-bin"
    bindir.mkdir()
    for name in WRAPPED_PG_TOOLS:
        script = bindir / name
        script.write_text(
            "#!/bin/sh\n"
            f'for argument in "$0" "$@"; do printf "%s\\n" "$argument"; done'
            f" >> {shlex.quote(str(record))}\n"
            f'exec {shlex.quote(str(real / name))} "$@"\n'
        )
        script.chmod(0o755)
    return bindir


class ArgumentSampler(threading.Thread):
    """Read /proc/<pid>/cmdline of a process and its descendants while it runs."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.stop = threading.Event()
        self.samples: set[bytes] = set()
        self.pids: set[int] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._sample()
        except BaseException as exc:  # noqa: BLE001 - reported by run_sampled
            self.error = exc

    def _sample(self) -> None:
        while not self.stop.is_set():
            for pid in self._family():
                try:
                    line = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if line:
                    self.samples.add(line)
                    self.pids.add(pid)
            self.stop.wait(0.01)

    def _family(self) -> set[int]:
        """Return the root and its descendants, from /proc/<pid>/task/*/children."""
        family = set()
        pending = [self.root]
        while pending:
            pid = pending.pop()
            family.add(pid)
            # A process that ends meanwhile takes its /proc folder with it.
            try:
                for children in Path(f"/proc/{pid}/task").glob("*/children"):
                    pending.extend(int(child) for child in children.read_text().split())
            except OSError:
                continue
        return family


def run_sampled(
    args: list[str], env: dict[str, str], sampled: list[bytes]
) -> subprocess.CompletedProcess:
    """Run odoo-dr with `args` under umask 000, adding the argument lists seen
    meanwhile to `sampled`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "odoo_dr", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # What odoo-dr creates must be private even when the umask allows all.
        umask=0,
    )
    sampler = ArgumentSampler(process.pid)
    sampler.start()
    try:
        out, err = process.communicate(timeout=300)
    finally:
        sampler.stop.set()
        sampler.join()
    assert sampler.error is None, f"sampling /proc failed: {sampler.error!r}"
    sampled.extend(sampler.samples)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


@dataclass
class Secrets:
    pg_password: str
    db_password: str
    admin_passwd: str
    passphrase: str
    target_passphrase: str
    access_key: str
    secret_key: str

    def labelled(self) -> dict[str, str]:
        return {
            "PGPASSWORD": self.pg_password,
            "odoo.conf db_password": self.db_password,
            "odoo.conf admin_passwd": self.admin_passwd,
            "ODOO_DR_PASSPHRASE": self.passphrase,
            "ODOO_DR_TARGET_PASSPHRASE": self.target_passphrase,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }


def _new_secrets(fault_random) -> Secrets:
    alphanumeric = string.ascii_uppercase + string.digits
    generated = Secrets(
        pg_password=random_secret(fault_random, "pgpw"),
        db_password=random_secret(fault_random, "dbpw"),
        admin_passwd=random_secret(fault_random, "admin"),
        passphrase=random_secret(fault_random, "phrase", 32),
        target_passphrase=random_secret(fault_random, "target", 32),
        access_key="AKIA" + "".join(fault_random.choices(alphanumeric, k=16)),
        secret_key="".join(fault_random.choices(string.ascii_letters, k=40)),
    )
    for label, value in generated.labelled().items():
        secret(value, f"secrets test {label}")
    return generated


def _odoo_conf(path: Path, data_dir: Path, secrets: Secrets) -> Path:
    # admin_passwd is written as Odoo reads it: one line, no quoting.
    path.write_text(
        "[options]\n"
        f"db_host = {os.environ['PGHOST']}\n"
        f"db_port = {os.environ['PGPORT']}\n"
        f"db_user = {os.environ['PGUSER']}\n"
        f"db_password = {secrets.db_password.replace('%', '%%')}\n"
        f"admin_passwd = {secrets.admin_passwd.replace('%', '%%')}\n"
        f"data_dir = {data_dir}\n"
    )
    return path


def _found_in(data: bytes, secrets: dict[str, str]) -> list[str]:
    return [label for label, value in secrets.items() if value.encode() in data]


def _s3_objects(endpoint: str, prefix: str) -> dict[str, bytes]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name=BUCKET_REGION)
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=PLAIN_BUCKET, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=PLAIN_BUCKET, Key=item["Key"])["Body"]
            objects[item["Key"]] = body.read()
    return objects


def test_no_secret_in_arguments_or_files(
    tmp_path,
    settings,
    small_template,
    database_names,
    unique,
    s3_endpoint,
    fault_random,
    fault_seed,
    fault_record: FaultRecord,
):
    for trial in range(trials(1, 5)):
        work = tmp_path / f"trial-{trial}"
        work.mkdir()
        secrets = _new_secrets(fault_random)
        labelled = secrets.labelled()
        data_dir = work / "data"
        filestore_root = data_dir / "filestore"
        filestore_root.mkdir(parents=True)
        database = f"odoo_dr_secrets_{unique}_{trial}"
        database_names.extend([database, f"{database}_copy"])
        clone_demo(settings, small_template, database, filestore_root)
        conf = _odoo_conf(work / "odoo.conf", data_dir, secrets)
        record = work / "tool-arguments"
        env = {
            **os.environ,
            "PGPASSWORD": secrets.pg_password,
            "ODOO_DR_PASSPHRASE": secrets.passphrase,
            "ODOO_DR_TARGET_PASSPHRASE": secrets.target_passphrase,
            "AWS_ACCESS_KEY_ID": secrets.access_key,
            "AWS_SECRET_ACCESS_KEY": secrets.secret_key,
            "AWS_ENDPOINT_URL": s3_endpoint,
            "ODOO_DR_PG_BINDIR": str(_wrap_pg_tools(work, record)),
        }
        # Parents that init creates, which must be private too.
        encrypted = str(work / "parents" / "of" / "encrypted-repo")
        offsite = f"s3://{PLAIN_BUCKET}/secrets-{unique}-{trial}"
        export = work / "export.dump"
        commands = [
            ["init", "--repo", encrypted, "--encrypt"],
            ["init", "--repo", offsite, "--encrypt"],
            ["backup", database, "--odoo-config", str(conf), "--repo", encrypted],
            ["copy", "--to", offsite, "--repo", encrypted],
        ]
        if full_scale():
            commands += [
                ["drill", database, "--odoo-config", str(conf), "--repo", encrypted],
                ["restore", database, "--target", f"{database}_copy", "--copy",
                 "--neutralize", "--odoo-config", str(conf), "--repo", encrypted],
                ["export", database, "--format", "dump", "--output", str(export),
                 "--repo", encrypted],
                ["verify", "--read-data", "--repo", offsite],
                ["snapshots", "--json", "--repo", encrypted],
            ]  # fmt: skip
        sampled: list[bytes] = []
        for command in commands:
            # The target passphrase is the offsite repository's own.
            command_env = env
            if offsite in command and command[0] != "copy":
                command_env = {**env, "ODOO_DR_PASSPHRASE": secrets.target_passphrase}
            result = run_sampled(command, command_env, sampled)
            assert result.returncode == 0, (command[0], result.stderr, fault_seed)
            for label in _found_in((result.stdout + result.stderr).encode(), labelled):
                fault_record.lost += 1
                pytest.fail(f"{command[0]} printed {label} (seed {fault_seed})")

        tool_arguments = record.read_bytes()
        stored = {
            str(path): path.read_bytes()
            for root in (Path(encrypted),)
            for path in root.rglob("*")
            if path.is_file()
        }
        stored.update(_s3_objects(s3_endpoint, offsite.split("/", 3)[3]))
        if export.exists():
            stored[str(export)] = export.read_bytes()
        fault_record.trials += 1
        fault_record.inputs += len(labelled) * (len(sampled) + len(stored) + 1)

        # Each wrapped tool ran, so its recorded arguments cover it.
        for tool in ("pg_dump", "pg_restore") if full_scale() else ("pg_dump",):
            assert f"/{tool}\n".encode() in tool_arguments, (tool, fault_seed)
        assert sampled, f"no argument list was sampled (seed {fault_seed})"
        leaks = [
            f"{label} in the arguments of {line[:60]!r}"
            for line in [*sampled, tool_arguments]
            for label in _found_in(line.replace(b"\0", b"\n"), labelled)
        ]
        leaks += [
            f"{label} in {name}"
            for name, data in stored.items()
            for label in _found_in(data, labelled)
        ]
        fault_record.lost += len(leaks)
        assert leaks == [], f"seed {fault_seed}"

        created = [work / "parents"]
        if export.exists():
            created.append(export)
        loose = loose_modes(created)
        fault_record.inputs += sum(1 for path in created for _ in walk(path))
        fault_record.lost += len(loose)
        assert loose == [], f"seed {fault_seed}"
    fault_record.notes.append(
        "commands: init, backup, copy; full form also drill, restore, export, "
        "verify, snapshots"
    )


def test_plain_repository_private_and_clean(
    tmp_path,
    settings,
    small_template,
    database_names,
    unique,
    fault_random,
    fault_seed,
    fault_record: FaultRecord,
):
    """Back up with odoo.conf secrets into a plain repository, export it, all under
    umask 000: no secret in any file, every file and folder private."""
    secrets = _new_secrets(fault_random)
    labelled = secrets.labelled()
    data_dir = tmp_path / "data"
    (data_dir / "filestore").mkdir(parents=True)
    database = f"odoo_dr_plain_{unique}"
    database_names.append(database)
    clone_demo(settings, small_template, database, data_dir / "filestore")
    conf = _odoo_conf(tmp_path / "odoo.conf", data_dir, secrets)
    env = {**os.environ, "PGPASSWORD": secrets.pg_password}
    repo = tmp_path / "made" / "by" / "init" / "repo"
    exports = tmp_path / "exports"
    exports.mkdir()
    commands = [
        ["init", "--repo", str(repo)],
        ["backup", database, "--odoo-config", str(conf), "--repo", str(repo)],
        ["export", database, "--format", "zip",
         "--output", str(exports / "archive.zip"), "--repo", str(repo)],
        ["export", database, "--format", "folder",
         "--output", str(exports / "folder"), "--repo", str(repo)],
    ]  # fmt: skip
    sampled: list[bytes] = []
    for command in commands:
        result = run_sampled(command, env, sampled)
        assert result.returncode == 0, (command[0], result.stderr, fault_seed)

    created = [tmp_path / "made", exports / "archive.zip", exports / "folder"]
    stored = {
        str(item): item.read_bytes()
        for path in created
        for item in walk(path)
        if item.is_file()
    }
    leaks = [
        f"{label} in {name}"
        for name, data in stored.items()
        for label in _found_in(data, labelled)
    ]
    leaks += [
        f"{label} in the arguments of {line[:60]!r}"
        for line in sampled
        for label in _found_in(line.replace(b"\0", b"\n"), labelled)
    ]
    loose = loose_modes(created)
    fault_record.trials += 1
    fault_record.inputs += sum(1 for path in created for _ in walk(path))
    fault_record.inputs += len(labelled) * (len(stored) + len(sampled))
    fault_record.lost += len(loose) + len(leaks)
    assert leaks == [], f"seed {fault_seed}"
    assert loose == [], f"seed {fault_seed}"


def test_config_out_private_under_umask_zero(tmp_path, fault_record: FaultRecord):
    from odoo_dr.platform.configuration import (
        capture_configuration,
        write_configuration,
    )
    from test_platform_configuration import _copy, _environment

    folder = _copy("regional-distributor", tmp_path)
    state = capture_configuration(folder, _environment(folder, "production"))
    target = tmp_path / "config" / "out"
    previous = os.umask(0)
    try:
        write_configuration(state, target)
    finally:
        os.umask(previous)

    loose = loose_modes([tmp_path / "config"])
    fault_record.trials += 1
    fault_record.inputs += sum(1 for _ in walk(tmp_path / "config"))
    fault_record.lost += len(loose)
    assert loose == []


# 4. The dashboard's token off loopback -----------------------------------------

SERVE_TOKEN = "serve-token-5f3a9c1e7b2d4068a1c3e5f7092b4d6f"
SERVE_PATHS = (
    "/",
    "/metrics",
    "/api/status",
    "/api/tenants",
    "/api/tenants/-/odoo",
    "/api/repositories",
    "/api/scorecard",
    "/healthz",
    "/openapi.json",
    "/static/dashboard.css",
    "/tenants/-/odoo",
    "/no-such-page",
)


def _http(url: str, method: str = "GET", headers: dict | None = None) -> int:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def test_serve_rejects_requests_without_token(tmp_path, fault_record: FaultRecord):
    token = secret(SERVE_TOKEN, "serve token")
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o644)
    repository = tmp_path / "repo"
    Repository.init(str(repository))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "odoo_dr", "serve", "--bind", f"0.0.0.0:{port}",
         "--token-file", str(token_file), "--repository", str(repository)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    right = {"Authorization": f"Bearer {token}"}
    wrong_credentials = {
        "none": {},
        "wrong bearer": {"Authorization": "Bearer " + "x" * len(token)},
        "bearer prefix": {"Authorization": f"Bearer {token[:-1]}"},
        "bearer suffix": {"Authorization": f"Bearer {token}x"},
        "wrong basic password": _basic("viewer", "x" * len(token)),
        "token as basic user": _basic(token, "password"),
        "other scheme": {"Authorization": f"Token {token}"},
        "token header": {"X-Token": token},
        "token cookie": {"Cookie": f"token={token}"},
    }

    try:
        # Bounded so that a server that never listens fails instead of hanging.
        for _ in range(600):
            try:
                _http(f"{base}/healthz", headers=right)
                break
            except urllib.error.URLError:
                assert process.poll() is None, process.communicate()
                time.sleep(0.1)
        else:
            pytest.fail("odoo-dr serve did not start listening")

        rejected = []
        for path in SERVE_PATHS:
            # With the token, each route responds as it does without a token set.
            assert _http(base + path, headers=right) != 401, path
            tries = [(f"{label} {method}", base + path, method, headers)
                     for label, headers in wrong_credentials.items()
                     for method in ("GET", "HEAD")]  # fmt: skip
            tries += [
                (f"query {name}", f"{base}{path}?{name}={token}", "GET", {})
                for name in ("token", "access_token", "api_key")
            ]
            for label, url, method, headers in tries:
                fault_record.inputs += 1
                fault_record.faults += 1
                if _http(url, method, headers) != 401:
                    rejected.append(f"{path} {label}")
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=30)
    fault_record.trials += 1
    fault_record.lost += len(rejected)
    assert rejected == []
    assert token not in err
    assert "may be read by other users (mode 0o644)" in err


def test_serve_private_token_file_quiet(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    token_file.chmod(0o600)
    result = run_cli(
        "serve", "--bind", f"127.0.0.1:{free_port()}", "--token-file",
        str(token_file), "--repository", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    assert "invalid token" in result.stderr
    assert "other users" not in result.stderr


# 5. SQL identifiers always quoted ----------------------------------------------

SOURCE = Path(__file__).resolve().parents[2] / "src" / "odoo_dr"
SQL_CALLS = {"execute", "executemany", "copy"}
SQL_PARAMETER_TYPES = ("Composable", "Composed", "sql.SQL", "LiteralString")

# SQL arguments that the checker cannot resolve but that are safe, with the reason.
# Keyed by file and the argument's source text; an entry no longer found fails.
ALLOWED_SQL = {
    ("demo/builder.py", "schema"): "the demo's packaged schema.sql",
    ("demo/builder.py", "statements"): "the demo's packaged data.sql",
    ("engine/business_checks.py", "check.sql"): "the user's own check queries",
    ("engine/post_deploy.py", "query"): "the user's own --check-sql queries",
    ("odoo/neutralize.py", "step.statement"): "the constant statements of _STEPS",
    ("engine/checks.py", "condition"): "the constant conditions of _LIVE_ROWS",
    ("engine/backup.py", "folder"): "not SQL: _Backup.execute(folder)",
    ("engine/copy.py", "source_id"): "not SQL: blob copy",
    ("engine/copy.py", "blob_id"): "not SQL: blob copy",
}


class SqlCallChecker(ast.NodeVisitor):
    """Classify the SQL argument of each execute/copy call and each sql.SQL()."""

    def __init__(self, module: ast.Module, name: str) -> None:
        self.name = name
        self.module_values = self._assignments(module.body)
        self.functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        self.problems: list[str] = []
        self.allowed: set[tuple[str, str]] = set()
        self.sites = 0

    @staticmethod
    def _assignments(body: list[ast.stmt]) -> dict[str, list[ast.expr]]:
        values: dict[str, list[ast.expr]] = {}
        for node in body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        values.setdefault(target.id, []).append(node.value)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                if isinstance(node.target, ast.Name):
                    values.setdefault(node.target.id, []).append(node.value)
        return values

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.functions.append(node)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in SQL_CALLS and node.args:
            self._check(node.args[0], f"{func.attr}()", node.lineno, self._safe)
        if self._is_sql(func, "SQL") and node.args:
            self._check(node.args[0], "sql.SQL()", node.lineno, self._text)
        self.generic_visit(node)

    def _check(self, argument: ast.expr, kind: str, line: int, rule) -> None:
        self.sites += 1
        verdict = rule(argument, depth=0)
        if verdict == "safe":
            return
        key = (self.name, ast.unparse(argument))
        if key in ALLOWED_SQL and verdict == "unresolved":
            self.allowed.add(key)
            return
        self.problems.append(f"{self.name}:{line} {kind}: {verdict}: {key[1][:70]}")

    @staticmethod
    def _is_sql(func: ast.expr, name: str) -> bool:
        return (
            isinstance(func, ast.Attribute)
            and func.attr == name
            and isinstance(func.value, ast.Name)
            and func.value.id == "sql"
        )

    def _bound(self, name: str) -> list[ast.expr] | None:
        """Return the values `name` is assigned in the function, else the module."""
        if self.functions:
            function = self.functions[-1]
            values = [
                node.value
                for node in ast.walk(function)
                if isinstance(node, ast.Assign)
                and any(
                    isinstance(target, ast.Name) and target.id == name
                    for target in node.targets
                )
            ]
            if values:
                return values
            for argument in [*function.args.args, *function.args.kwonlyargs]:
                if argument.arg == name:
                    annotation = ast.unparse(argument.annotation or ast.Name("?"))
                    if any(kind in annotation for kind in SQL_PARAMETER_TYPES):
                        return []
                    return None
        return self.module_values.get(name)

    def _text(self, node: ast.expr, depth: int) -> str:
        """Return "safe" when `node` is constant text, built only from literals."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return "safe"
        if isinstance(node, ast.JoinedStr):
            return "f-string"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            return "% formatting"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            sides = [self._text(node.left, depth), self._text(node.right, depth)]
            if sides == ["safe", "safe"]:
                return "safe"
            return "+ concatenation with a variable"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if node.func.attr == "format" and self._text(receiver, depth) == "safe":
                return "str.format()"
        if isinstance(node, ast.Name) and depth < 5:
            values = self._bound(node.id)
            if values:
                verdicts = {self._text(value, depth + 1) for value in values}
                return "safe" if verdicts == {"safe"} else verdicts.pop()
        return "unresolved"

    def _safe(self, node: ast.expr, depth: int) -> str:
        """Return "safe" for constant text or a psycopg.sql composition."""
        text = self._text(node, depth)
        if text != "unresolved":
            return text
        if isinstance(node, ast.Call):
            func = node.func
            if any(self._is_sql(func, kind) for kind in ("SQL", "Composed")):
                return "safe"
            if isinstance(func, ast.Attribute) and func.attr in {"format", "join"}:
                return self._safe(func.value, depth)
        if isinstance(node, ast.Name) and depth < 5:
            values = self._bound(node.id)
            if values == []:
                return "safe"
            if values:
                verdicts = {self._safe(value, depth + 1) for value in values}
                return "safe" if verdicts == {"safe"} else verdicts.pop()
        return "unresolved"


def check_sql_calls(root: Path) -> tuple[list[str], set[tuple[str, str]], int]:
    """Return the problems, the allowed entries used and the SQL sites checked."""
    problems: list[str] = []
    allowed: set[tuple[str, str]] = set()
    sites = 0
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        module = ast.parse(path.read_text())
        checker = SqlCallChecker(module, name)
        checker.visit(module)
        problems += checker.problems
        allowed |= checker.allowed
        sites += checker.sites
    return problems, allowed, sites


def test_sql_built_from_literals(fault_record: FaultRecord):
    problems, allowed, sites = check_sql_calls(SOURCE)
    fault_record.trials += 1
    fault_record.inputs += sites
    fault_record.lost += len(problems)

    assert problems == []
    assert sorted(set(ALLOWED_SQL) - allowed) == []


def test_sql_checker_flags_variables(tmp_path):
    (tmp_path / "bad.py").write_text(
        "from psycopg import sql\n"
        "def f(cursor, name, table: str):\n"
        "    cursor.execute(f'DROP DATABASE {name}')\n"
        "    cursor.execute('SELECT * FROM %s' % table)\n"
        "    cursor.execute('SELECT * FROM ' + table)\n"
        "    cursor.execute('SELECT {}'.format(name))\n"
        "    cursor.execute(sql.SQL('ALTER ROLE ' + name))\n"
        "    query = 'SELECT 1 FROM ' + name\n"
        "    cursor.execute(query)\n"
        "    cursor.execute(sql.SQL('SELECT {}').format(sql.Identifier(name)))\n"
        "    cursor.execute('SELECT 1 WHERE x = %s', (name,))\n"
    )
    problems, _allowed, sites = check_sql_calls(tmp_path)

    assert len(problems) == 6, problems
    assert sites == 10
    assert all(":10 " not in problem for problem in problems)
    assert all(":11 " not in problem for problem in problems)


# Hostile names: quotes, semicolons, statements, psql and format() syntax, non-ASCII
# letters. Some name the canary database that a successful injection would drop.
# Backslashes and control characters are rejected names (odoo_dr.pg.names).
HOSTILE_NAMES = (
    'x"; DROP DATABASE {canary}; --',
    "Robert'); DROP DATABASE {canary};--",
    'O\'Brien "B" ; $$ :x `id` %s %I',
    "Ünï cödé ñ 数据库 Ω",
)


def _run_psql(script: Path) -> subprocess.CompletedProcess:
    psql = str(find_newest_tools("the hostile names test").bindir / "psql")
    return subprocess.run(
        [psql, "-X", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )


def _drop_roles(names: list[str]) -> None:
    with admin_connection() as connection:
        for name in names:
            if connection.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)
            ).fetchone():
                connection.execute(
                    sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(
                        sql.Identifier(name)
                    )
                )
                connection.execute(
                    sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name))
                )
                connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_hostile_names_round_trip(
    tmp_path,
    settings,
    small_template,
    repository,
    database_names,
    unique,
    fault_random,
    fault_seed,
    fault_record: FaultRecord,
):
    canary = f"odoo_dr_canary_{unique}"
    database_names.append(canary)
    with admin_connection() as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(canary)))
    count = trials(1, len(HOSTILE_NAMES))
    chosen = fault_random.sample(HOSTILE_NAMES, count)
    schema = f's"; DROP DATABASE {canary}; --'
    roles = [f'b"; DROP DATABASE {canary}; --', f"r'); DROP DATABASE {canary}; -- $$"]
    repo = str(Path(repository.location))
    try:
        for number, pattern in enumerate(chosen):
            name = f"{pattern.format(canary=canary)} {unique}"
            target = f"{name[:40]} copy {number}"
            database_names.extend([name, target])
            root = tmp_path / f"filestore-{number}"
            root.mkdir()
            clone_demo(settings, small_template, name, root)
            table = sql.Identifier(schema, "t 'q'")
            query(name, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            query(name, sql.SQL("CREATE TABLE {} AS SELECT 1 AS id").format(table))

            snapshot = run_cli(
                "backup", name, "--filestore-root", str(root), "--repo", repo
            )
            assert snapshot.returncode == 0, (name, snapshot.stderr, fault_seed)
            restored = run_cli(
                "restore", name, "--target", target, "--copy", "--neutralize",
                "--filestore-root", str(tmp_path / f"restored-{number}"),
                "--repo", repo,
            )  # fmt: skip
            assert restored.returncode == 0, (name, restored.stderr, fault_seed)
            assert query(target, sql.SQL("SELECT id FROM {}").format(table)) == [(1,)]
            if full_scale():
                drilled = run_cli("drill", name, "--repo", repo)
                assert drilled.returncode == 0, (name, drilled.stderr, fault_seed)

            script = tmp_path / f"roles-{number}.sql"
            rendered = run_cli(
                "roles", "--backup-role", roles[0], "--restore-role", roles[1],
                "--database", name,
            )  # fmt: skip
            assert rendered.returncode == 0, (name, rendered.stderr, fault_seed)
            script.write_text(rendered.stdout)
            applied = _run_psql(script)
            assert applied.returncode == 0, (name, applied.stderr, fault_seed)
            # The script for servers before 14 names each schema and \connects.
            facts = pg_roles.ServerFacts(
                "13.16",
                13,
                (pg_roles.ProductionDatabase(name, "postgres", (schema, "public")),),
            )
            script.write_text(pg_roles.roles_script(facts, *roles))
            applied = _run_psql(script)
            assert applied.returncode == 0, (name, applied.stderr, fault_seed)
            with psycopg.connect(dbname=name, user=roles[0]) as connection:
                read = connection.execute(sql.SQL("SELECT id FROM {}").format(table))
                assert read.fetchall() == [(1,)]

            fault_record.trials += 1
            fault_record.faults += 1
            fault_record.inputs += 1
            assert database_exists(canary), (name, fault_seed)
            assert database_exists(name), (name, fault_seed)
    finally:
        drop_leftovers(list(database_names))
        database_names.clear()
        _drop_roles(roles)
    fault_record.notes.append(f"names: {len(chosen)} of {len(HOSTILE_NAMES)}")


def test_roles_rejects_line_break_names(fault_record: FaultRecord):
    facts = pg_roles.ServerFacts(
        "13.16",
        13,
        (pg_roles.ProductionDatabase("evil\n\\! touch pwned\nx", "odoo"),),
    )
    fault_record.trials += 1
    fault_record.faults += 1
    fault_record.inputs += 1
    with pytest.raises(RejectedError) as raised:
        pg_roles.roles_script(facts, "backup", "restore")
    assert "control character" in raised.value.message
