"""Configuration state captured with a platform backup: Git commit, manifests,
routes and odoo.conf, with every secret replaced by a reference."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from odoo_dr.errors import RejectedError, SnapshotDamaged
from odoo_dr.platform.configuration import (
    ConfigurationState,
    capture_configuration,
    configuration_key,
    load_configuration,
    save_configuration,
    write_configuration,
)
from odoo_dr.platform.redaction import redact_odoo_conf
from odoo_dr.repository.crypto import KdfParameters
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import Environment, load_inventory

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST_KDF = KdfParameters(memory_cost=8 * 1024, iterations=1, lanes=1)

# Secrets added to the copies of the examples, besides the admin_passwd hashes the
# example odoo.conf files already hold.
SMTP_PASSWORD = "smtp-Pa55-qV7zK"
URI_PASSWORD = "uri-Pa55-Lm3wQ"
SECRET_STRING = "k8s-string-Pa55-Xr8Tn"
SECRET_DATA = "k8s-data-Pa55-Bw4Hd"
ENV_PASSWORD = "env-Pa55-Jc6Ys"

SECRET_MANIFEST = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: odoo-smtp
  namespace: odoo-prod
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: >-
      {{"stringData":{{"password":"{SECRET_STRING}"}}}}
type: Opaque
stringData:
  password: {SECRET_STRING}
data:
  token: {base64.b64encode(SECRET_DATA.encode()).decode()}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: mail-check
  namespace: odoo-prod
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: check
          image: alpine:3.19
          env:
            - name: SMTP_PASSWORD
              value: {ENV_PASSWORD}
            - name: SMTP_PASSWORD_FILE
              value: /run/secrets/smtp
"""


def _git(folder: Path, *arguments: str) -> str:
    result = subprocess.run(
        [
            "git",
            "-C",
            str(folder),
            "-c",
            "user.name=odoo-dr tests",
            "-c",
            "user.email=tests@odoo-dr.invalid",
            *arguments,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def _commit_all(folder: Path) -> str:
    _git(folder, "init", "-q")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "platform")
    return _git(folder, "rev-parse", "HEAD")


def _copy(example: str, tmp_path: Path) -> Path:
    folder = tmp_path / example
    shutil.copytree(EXAMPLES / example, folder)
    return folder


def _environment(folder: Path, name: str) -> Environment:
    inventory, _base = load_inventory(folder / "inventory.yaml")
    return next(item for item in inventory.environments if item.name == name)


def _admin_hashes(folder: Path) -> list[str]:
    hashes = []
    for conf in folder.rglob("*.conf"):
        for line in conf.read_text().splitlines():
            if line.startswith("admin_passwd"):
                hashes.append(line.split("=", 1)[1].strip())
    return hashes


@pytest.fixture
def regional(tmp_path: Path) -> Path:
    """The regional-distributor example with real secrets added, committed to Git."""
    folder = _copy("regional-distributor", tmp_path)
    conf = folder / "odoo/production.conf"
    conf.write_text(
        conf.read_text()
        + f"smtp_password = {SMTP_PASSWORD}\n"
        + f"db_uri = postgresql://odoo:{URI_PASSWORD}@odoo-pg-rw:5432/postgres\n"
    )
    (folder / "k8s/production/smtp-secret.yaml").write_text(SECRET_MANIFEST)
    _commit_all(folder)
    return folder


@pytest.fixture
def provider(tmp_path: Path) -> Path:
    """The 3pl-provider example, with an SMTP password in a module section."""
    folder = _copy("3pl-provider", tmp_path)
    conf = folder / "odoo/acme_retail.conf"
    conf.write_text(
        conf.read_text() + f"\n[outgoing_mail]\nsmtp_password = {SMTP_PASSWORD}\n"
    )
    _commit_all(folder)
    return folder


def _secrets(folder: Path) -> list[str]:
    values = [SMTP_PASSWORD, URI_PASSWORD, SECRET_STRING, SECRET_DATA, ENV_PASSWORD]
    values.append(base64.b64encode(SECRET_DATA.encode()).decode())
    hashes = _admin_hashes(folder)
    assert hashes, "the example odoo.conf files hold admin_passwd hashes"
    return values + hashes


def _repository_bytes(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in root.rglob("*") if path.is_file())


def test_capture_records_clean_commit(regional: Path) -> None:
    state = capture_configuration(regional, _environment(regional, "production"))

    head = _git(regional, "rev-parse", "HEAD")
    assert state.commit == head
    assert state.git is not None
    assert state.git[0].dirty is False
    assert state.git[0].work_tree == "."
    assert state.git[0].folders == ["k8s/production"]
    assert (
        state.git_repository == "https://git.nordwind.example/platform/odoo-deploy.git"
    )
    paths = {item.path for item in state.manifests}
    expected = {
        path.relative_to(regional).as_posix()
        for path in (regional / "k8s/production").iterdir()
    }
    assert paths == expected
    assert [item.path for item in state.odoo_confs] == ["odoo/production.conf"]
    assert state.problems == []


def test_capture_finds_traefik_routes(regional: Path) -> None:
    state = capture_configuration(regional, _environment(regional, "production"))

    routes = [route for route in state.routes if route.kind == "IngressRoute"]
    assert len(routes) == 3
    web, websocket, manager = routes
    assert web.hosts == [
        "de.erp.nordwind.example",
        "at.erp.nordwind.example",
        "ch.erp.nordwind.example",
    ]
    assert (web.service, web.port) == ("odoo-web", 8069)
    assert websocket.paths == ["string /websocket"]
    assert (websocket.service, websocket.port) == ("odoo-web", 8072)
    assert "string /web/database" in manager.paths
    assert web.file == "k8s/production/ingressroute.yaml"


def test_capture_finds_ingress_rules(provider: Path) -> None:
    state = capture_configuration(provider, _environment(provider, "production"))

    hosts = {host for route in state.routes for host in route.hosts}
    assert "acme.wms.polaris.example" in hosts
    assert all(route.kind == "Ingress" for route in state.routes)
    assert all(route.service or route.blocked_by for route in state.routes)
    blocked = [route for route in state.routes if route.blocked_by]
    assert blocked
    assert all(route.paths == ["string /web/database"] for route in blocked)
    assert state.git is not None
    assert state.git[0].folders == ["k8s/platform", "k8s/tenants", "k8s/backup"]


def test_capture_finds_compose_label_routes(provider: Path) -> None:
    compose = provider / "compose/partner-sandbox.yml"
    command = '    command: ["--config=/etc/odoo/odoo.conf"]\n'
    labels = (
        "    labels:\n"
        "      traefik.http.routers.sandbox.rule: Host(`sandbox.polaris.example`)\n"
        "      traefik.http.services.sandbox.loadbalancer.server.port: '8069'\n"
        "    environment:\n"
        f"      SMTP_PASSWORD: {ENV_PASSWORD}\n"
        "      SMTP_HOST: mail.polaris.example\n"
    )
    compose.write_text(compose.read_text().replace(command, command + labels))

    state = capture_configuration(provider, _environment(provider, "partner-sandbox"))

    assert len(state.routes) == 1
    route = state.routes[0]
    assert route.kind == "Traefik labels"
    assert route.hosts == ["sandbox.polaris.example"]
    assert (route.service, route.port) == ("sandbox", 8069)
    assert [item.path for item in state.manifests] == ["compose/partner-sandbox.yml"]
    assert [item.path for item in state.odoo_confs] == ["compose/partner-sandbox.conf"]
    content = state.manifests[0].content
    assert ENV_PASSWORD not in content
    assert "SMTP_PASSWORD: <secret:compose:odoo/SMTP_PASSWORD>" in content
    assert "SMTP_HOST: mail.polaris.example" in content


def test_capture_dirty_tree(regional: Path) -> None:
    odoo = regional / "k8s/production/odoo.yaml"
    odoo.write_text(odoo.read_text() + "# changed by hand\n")

    state = capture_configuration(regional, _environment(regional, "production"))

    assert state.git is not None
    assert state.git[0].dirty is True
    assert state.git[0].changes == [" M k8s/production/odoo.yaml"]
    assert state.commit == _git(regional, "rev-parse", "HEAD")


def test_capture_without_git(tmp_path: Path) -> None:
    folder = _copy("regional-distributor", tmp_path)

    state = capture_configuration(folder, _environment(folder, "production"))

    assert state.git is None
    assert state.commit is None
    assert state.manifests
    written = write_configuration(state, tmp_path / "out")
    assert tmp_path / "out/COMMIT" in written
    assert (tmp_path / "out/COMMIT").read_text().startswith("none:")


def test_secret_references_in_captured_files(regional: Path) -> None:
    state = capture_configuration(regional, _environment(regional, "production"))

    conf = state.odoo_confs[0]
    assert "admin_passwd = <secret:odoo.conf:admin_passwd>\n" in conf.content
    assert "smtp_password = <secret:odoo.conf:smtp_password>\n" in conf.content
    assert (
        "db_uri = postgresql://odoo:<secret:odoo.conf:db_uri>@odoo-pg-rw:5432/postgres"
        in conf.content
    )
    # Options that are not secrets are kept as they are.
    assert "db_user = odoo\n" in conf.content
    assert "list_db = False\n" in conf.content
    secret_file = next(
        item for item in state.manifests if item.path.endswith("smtp-secret.yaml")
    )
    assert "<secret:k8s:odoo-prod/odoo-smtp/password>" in secret_file.references
    assert "<secret:k8s:odoo-prod/odoo-smtp/token>" in secret_file.references
    assert "<secret:env:Job/odoo-prod/mail-check/SMTP_PASSWORD>" in secret_file.content
    assert "/run/secrets/smtp" in secret_file.content


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize(
    ("example", "environment"),
    [("regional", "production"), ("provider", "production")],
)
def test_saved_repository_has_no_secret(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    example: str,
    environment: str,
    encrypted: bool,
) -> None:
    folder = request.getfixturevalue(example)
    state = capture_configuration(folder, _environment(folder, environment))
    root = tmp_path / "repository"
    secret = b"repository secret" if encrypted else None
    Repository.init(str(root), secret=secret, kdf=FAST_KDF)
    repository = Repository.open(str(root), secret=secret)

    key = save_configuration(repository, state, "20250101T000000Z-abc")
    stored = _repository_bytes(root)

    assert key == "platform/config/20250101T000000Z-abc.json"
    assert (root / key).is_file()
    for value in _secrets(folder):
        assert value.encode() not in stored, value
        assert value not in state.model_dump_json(), value
    assert (b"<secret:odoo.conf:admin_passwd>" in stored) is not encrypted
    assert load_configuration(repository, key) == state


def test_round_trip_reproduces_manifests(regional: Path, tmp_path: Path) -> None:
    state = capture_configuration(regional, _environment(regional, "production"))
    root = tmp_path / "repository"
    Repository.init(str(root))
    repository = Repository.open(str(root))
    loaded = load_configuration(
        repository, save_configuration(repository, state, "record-1")
    )
    target = tmp_path / "restored"

    written = write_configuration(loaded, target)

    for item in loaded.manifests:
        original = (regional / item.path).read_bytes()
        restored = (target / item.path).read_bytes()
        if item.references:
            assert restored == item.content.encode()
            assert original != restored
        else:
            assert restored == original, item.path
    unchanged = [item for item in loaded.manifests if not item.references]
    assert len(unchanged) == len(loaded.manifests) - 1
    conf = (target / "odoo/production.conf").read_text()
    assert "admin_passwd = <secret:odoo.conf:admin_passwd>" in conf
    routes = (target / "routes.txt").read_text().splitlines()
    assert len(routes) == len(loaded.routes)
    assert any(
        "de.erp.nordwind.example" in line and "odoo-web:8069" in line for line in routes
    )
    commit = (target / "COMMIT").read_text()
    assert commit.startswith(f"{_git(regional, 'rev-parse', 'HEAD')} clean ")
    assert sorted(written) == sorted(
        [target / item.path for item in [*loaded.manifests, *loaded.odoo_confs]]
        + [target / "routes.txt", target / "COMMIT"]
    )


@pytest.mark.parametrize(
    "path",
    ["../outside.yaml", "/etc/outside.yaml", "k8s/../../outside.yaml", "k8s//x.yaml"],
)
def test_write_rejects_escaping_path(tmp_path: Path, path: str) -> None:
    good = {"path": "k8s/odoo.yaml", "content": "a: 1\n", "sha256": "0" * 64}
    bad = {"path": path, "content": "a: 1\n", "sha256": "0" * 64}
    state = ConfigurationState.model_validate(
        {
            "environment": "production",
            "captured_at": "2025-01-01T00:00:00Z",
            "manifests": [good, bad],
        }
    )
    target = tmp_path / "deep/target"

    with pytest.raises(RejectedError) as raised:
        write_configuration(state, target)

    assert repr(path) in raised.value.message
    assert not (tmp_path / "outside.yaml").exists()
    assert not (target / "k8s/odoo.yaml").exists()


def test_write_rejects_symlink_escape(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (target / "k8s").symlink_to(tmp_path / "elsewhere")
    state = ConfigurationState(
        environment="production",
        captured_at="2025-01-01T00:00:00Z",
        manifests=[{"path": "k8s/odoo.yaml", "content": "a: 1\n", "sha256": "0" * 64}],
    )

    with pytest.raises(RejectedError, match="symbolic link"):
        write_configuration(state, target)

    assert not (tmp_path / "elsewhere/odoo.yaml").exists()


def test_missing_manifest_folder_rejected(tmp_path: Path) -> None:
    folder = _copy("3pl-provider", tmp_path)
    shutil.rmtree(folder / "k8s/tenants")

    with pytest.raises(RejectedError) as raised:
        capture_configuration(folder, _environment(folder, "production"))

    assert "'k8s/tenants'" in raised.value.message
    assert "'production'" in raised.value.message
    assert "not found" in raised.value.message
    assert raised.value.hint


def test_missing_odoo_conf_rejected(tmp_path: Path) -> None:
    folder = _copy("regional-distributor", tmp_path)
    (folder / "odoo/production.conf").unlink()

    with pytest.raises(RejectedError, match="'odoo/production.conf'"):
        capture_configuration(folder, _environment(folder, "production"))


def test_manifest_outside_inventory_rejected(tmp_path: Path) -> None:
    folder = _copy("regional-distributor", tmp_path)
    environment = Environment.model_validate(
        {"name": "production", "evidence": {"manifests": ["../elsewhere"]}}
    )
    (tmp_path / "elsewhere").mkdir()

    with pytest.raises(RejectedError, match="outside the inventory folder"):
        capture_configuration(folder, environment)


def test_invalid_yaml_listed_not_captured(tmp_path: Path) -> None:
    folder = _copy("regional-distributor", tmp_path)
    broken = folder / "k8s/production/broken.yaml"
    broken.write_text(f"kind: Secret\nstringData: {{password: {SECRET_STRING}\n")

    state = capture_configuration(folder, _environment(folder, "production"))

    assert "k8s/production/broken.yaml" not in {item.path for item in state.manifests}
    assert any(
        problem.startswith("k8s/production/broken.yaml: not captured")
        for problem in state.problems
    )
    assert SECRET_STRING not in state.model_dump_json()


def test_load_detects_changed_content(regional: Path, tmp_path: Path) -> None:
    state = capture_configuration(regional, _environment(regional, "production"))
    root = tmp_path / "repository"
    Repository.init(str(root))
    repository = Repository.open(str(root))
    key = save_configuration(repository, state, "record-1")
    document = json.loads((root / key).read_text())
    document["manifests"][0]["content"] += "# changed\n"
    (root / key).write_text(json.dumps(document))

    with pytest.raises(SnapshotDamaged, match="does not match its SHA-256"):
        load_configuration(repository, key)


@pytest.mark.parametrize("record_id", ["../x", "a/b", "", ".hidden", "a..b"])
def test_configuration_key_rejects_invalid_id(record_id: str) -> None:
    with pytest.raises(RejectedError, match="invalid platform record id"):
        configuration_key(record_id)


def test_redact_odoo_conf_keeps_other_lines() -> None:
    text = (
        "; comment with password = not-an-option\r\n"
        "[options]\r\n"
        "db_password = False\r\n"
        "api_token: tok-123\r\n"
        "s3_secret = \r\n"
        "http_port = 8069\r\n"
        "[ir.config_parameter]\r\n"
        "mail_key = key-456\r\n"
    )

    redacted, references = redact_odoo_conf(text)

    assert redacted == (
        "; comment with password = not-an-option\r\n"
        "[options]\r\n"
        "db_password = False\r\n"
        "api_token: <secret:odoo.conf:api_token>\r\n"
        "s3_secret = \r\n"
        "http_port = 8069\r\n"
        "[ir.config_parameter]\r\n"
        "mail_key = <secret:odoo.conf:ir.config_parameter.mail_key>\r\n"
    )
    assert references == [
        "<secret:odoo.conf:api_token>",
        "<secret:odoo.conf:ir.config_parameter.mail_key>",
    ]
