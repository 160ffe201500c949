"""Security rules on their fixtures, and on manifests written by the tests."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.review.rule_cases import check_case, fixture_cases, rule_findings

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.model import Finding, Severity

CASES = fixture_cases("SEC-")
OFFLINE = ReviewOptions(live=False)


@pytest.mark.parametrize(("rule_id", "case"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_rule_fixture(materialize, rule_id, case):
    check_case(materialize, rule_id, case)


def review(folder: Path, files: dict[str, str], rule_id: str) -> list[Finding]:
    for name, text in files.items():
        (folder / name).write_text(text)
    return rule_findings(run_review(folder, OFFLINE), rule_id)


ODOO = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: odoo\n"
    "spec:\n  selector:\n    matchLabels: {app: odoo}\n"
    "  template:\n    metadata:\n      labels: {app: odoo}\n    spec:\n"
    "      containers:\n        - name: odoo\n          image: odoo:17.0\n"
    "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: odoo\n"
    "spec:\n  selector: {app: odoo}\n  ports: [{port: 8069}]\n"
)


def ingress(annotations: str, paths: list[str]) -> str:
    text = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: odoo\n"
    if annotations:
        text += "  annotations:\n" + annotations
    text += (
        "spec:\n  rules:\n    - host: erp.example.com\n      http:\n        paths:\n"
    )
    for path in paths:
        text += (
            f"          - path: {path}\n            pathType: Prefix\n"
            "            backend:\n"
            "              service: {name: odoo, port: {number: 8069}}\n"
        )
    return text


def test_nginx_snippet_denies_database_manager(tmp_path):
    snippet = (
        "    nginx.ingress.kubernetes.io/server-snippet: |\n"
        "      location ~* ^/web/database {\n        deny all;\n      }\n"
    )
    files = {"odoo.yaml": ODOO, "ingress.yaml": ingress(snippet, ["/"])}
    findings = review(tmp_path, files, "SEC-004")
    assert [item.passed for item in findings] == [True]
    assert "server-snippet denies /web/database" in findings[0].outcome.message
    assert findings[0].location.line == 6


def test_source_range_on_database_path(tmp_path):
    restricted = ingress(
        "    nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/8\n",
        ["/web/database"],
    ).replace("name: odoo\n", "name: odoo-admin\n", 1)
    files = {
        "odoo.yaml": ODOO,
        "public.yaml": ingress("", ["/"]),
        "admin.yaml": restricted,
    }
    findings = review(tmp_path, files, "SEC-004")
    assert [item.passed for item in findings] == [True]
    assert findings[0].outcome.resource == "Ingress/odoo-admin"


def test_traefik_annotation_middleware(tmp_path):
    middleware = (
        "apiVersion: traefik.containo.us/v1alpha1\nkind: Middleware\nmetadata:\n"
        "  name: admins\n  namespace: erp\n"
        "spec:\n  basicAuth:\n    secret: admins\n"
    )
    admin = ingress(
        "    traefik.ingress.kubernetes.io/router.middlewares: "
        "erp-admins@kubernetescrd\n",
        ["/web/database"],
    ).replace("name: odoo\n", "name: odoo-admin\n", 1)
    files = {
        "odoo.yaml": ODOO,
        "middleware.yaml": middleware,
        "public.yaml": ingress("", ["/"]),
        "admin.yaml": admin,
    }
    findings = review(tmp_path, files, "SEC-004")
    assert [item.passed for item in findings] == [True]
    assert "erp-admins@kubernetescrd (basicauth)" in findings[0].outcome.message


def test_compose_labels_with_allow_list(tmp_path):
    compose = """\
services:
  traefik:
    image: traefik:v3.1
    labels:
      - traefik.http.middlewares.office.ipallowlist.sourcerange=192.0.2.0/24
  odoo:
    image: odoo:17.0
    labels:
      - traefik.http.routers.odoo.rule=Host(`erp.example.com`)
      - traefik.http.routers.odoo-db.rule={database_rule}
      - traefik.http.routers.odoo-db.middlewares=office@docker
"""
    rule = "Host(`erp.example.com`) && PathPrefix(`/web/database`)"
    files = {"docker-compose.yml": compose.format(database_rule=rule)}
    findings = review(tmp_path, files, "SEC-004")
    assert [item.passed for item in findings] == [True]
    assert "office@docker (ipallowlist)" in findings[0].outcome.message
    assert findings[0].location.line == 10


def test_published_odoo_port_bypasses_proxy(tmp_path):
    compose = "services:\n  odoo:\n    image: odoo:17.0\n    ports: ['8069:8069']\n"
    findings = review(tmp_path, {"docker-compose.yml": compose}, "SEC-004")
    assert [item.passed for item in findings] == [False]
    assert "reachable without the proxy" in findings[0].outcome.message
    assert findings[0].location.line == 4


def test_closed_database_manager_not_checked(tmp_path):
    compose = (
        "services:\n  odoo:\n    image: odoo:17.0\n"
        "    command: --no-database-list\n    ports: ['8069:8069']\n"
    )
    assert review(tmp_path, {"docker-compose.yml": compose}, "SEC-004") == []


def secret(conf: str, encoded: bool) -> str:
    text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: odoo-conf\n"
    if encoded:
        data = base64.b64encode(conf.encode()).decode()
        return text + f"data:\n  odoo.conf: {data}\n"
    indented = "".join(f"    {line}\n" for line in conf.splitlines())
    return text + "stringData:\n  odoo.conf: |\n" + indented


CONF = "[options]\nlist_db = False\nadmin_passwd = not-a-hash\n"


def test_secret_outside_git_passes(tmp_path):
    findings = review(tmp_path, {"secret.yaml": secret(CONF, True)}, "SEC-005")
    assert [item.passed for item in findings] == [True]
    assert findings[0].outcome.message == "admin_passwd is in the Secret odoo-conf"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("encoded", [True, False])
def test_secret_tracked_by_git_fails(tmp_path, encoded):
    (tmp_path / "secret.yaml").write_text(secret(CONF, encoded))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "secret.yaml"], check=True)
    findings = rule_findings(run_review(tmp_path, OFFLINE), "SEC-005")
    assert [item.passed for item in findings] == [False]
    assert "tracked by Git" in findings[0].outcome.message
    # base64 data points at its key; a literal block at the option's own line.
    assert findings[0].location.line == (6 if encoded else 9)


def test_hash_in_config_map_passes(tmp_path):
    config_map = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: odoo\ndata:\n"
        "  odoo.conf: |\n    [options]\n"
        "    admin_passwd = $pbkdf2-sha512$600000$abc$def\n"
    )
    findings = review(tmp_path, {"cm.yaml": config_map}, "SEC-005")
    assert [item.passed for item in findings] == [True]
    assert "a pbkdf2 hash" in findings[0].outcome.message


def test_variable_in_clear_fails(tmp_path):
    compose = (
        "services:\n  odoo:\n    image: odoo:17.0\n    environment:\n"
        "      ADMIN_PASSWD: hunter2\n  worker:\n    image: odoo:17.0\n"
        "    environment:\n      - ADMIN_PASSWD=$ADMIN_PASSWD\n"
    )
    findings = review(tmp_path, {"docker-compose.yml": compose}, "SEC-005")
    by_resource = {item.outcome.resource: item for item in findings}
    assert not by_resource["ComposeService/odoo"].passed
    assert by_resource["ComposeService/odoo"].location.line == 5
    assert by_resource["ComposeService/worker"].passed


def test_variable_from_config_map_fails(tmp_path):
    deployment = ODOO.split("---")[0] + (
        "          env:\n            - name: ODOO_ADMIN_PASSWD\n"
        "              valueFrom:\n"
        "                configMapKeyRef: {name: settings, key: master}\n"
    )
    findings = review(tmp_path, {"odoo.yaml": deployment}, "SEC-005")
    assert [item.passed for item in findings] == [False]
    assert "configMap settings/master" in findings[0].outcome.message


def test_in_cluster_http_is_medium(tmp_path):
    schedule = (
        "apiVersion: k8up.io/v1\nkind: Schedule\nmetadata:\n  name: files\n"
        "spec:\n  backend:\n    s3:\n      endpoint: http://minio.minio.svc:9000\n"
        "      bucket: odoo\n  backup:\n    schedule: '0 3 * * *'\n"
    )
    findings = review(tmp_path, {"k8up.yaml": schedule}, "SEC-006")
    assert [item.passed for item in findings] == [False]
    assert findings[0].severity == Severity.MEDIUM
    assert findings[0].location.line == 8


def test_cronjob_endpoint_option(tmp_path):
    cronjob = (
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: dump\n"
        "spec:\n  schedule: '0 1 * * *'\n  jobTemplate:\n    spec:\n      template:\n"
        "        spec:\n          containers:\n            - name: dump\n"
        "              image: postgres:16\n"
        "              command: [sh, -c, 'pg_dump -Fc acme | aws s3 cp - "
        "s3://backups/acme.dump --endpoint-url http://objects.example.net']\n"
        "              env:\n                - name: PUSHGATEWAY_URL\n"
        "                  value: http://pushgateway:9091\n"
    )
    findings = review(tmp_path, {"cron.yaml": cronjob}, "SEC-006")
    assert [item.passed for item in findings] == [False]
    assert "http://objects.example.net" in findings[0].outcome.message
    assert findings[0].severity == Severity.HIGH


def test_verification_off_and_loopback(tmp_path):
    compose = (
        "services:\n  backup:\n    image: pgbackrest/pgbackrest:2.53\n"
        "    environment:\n      PGBACKREST_REPO1_STORAGE_VERIFY_TLS: 'n'\n"
        "  restic:\n    image: restic/restic:0.17\n    environment:\n"
        "      RESTIC_REPOSITORY: s3:http://127.0.0.1:9000/odoo\n"
    )
    findings = review(tmp_path, {"docker-compose.yml": compose}, "SEC-006")
    by_resource = {item.outcome.resource: item for item in findings}
    assert not by_resource["ComposeService/backup"].passed
    assert by_resource["ComposeService/backup"].severity == Severity.MEDIUM
    assert by_resource["ComposeService/restic"].passed


def test_nginx_location_denies_database_manager(tmp_path):
    nginx = (
        "server {\n  location ~ ^/web/database { deny all; }\n"
        "  location / { proxy_pass http://127.0.0.1:8069; }\n}\n"
    )
    files = {"odoo.conf": "[options]\nproxy_mode = True\n", "site.conf": nginx}
    findings = review(tmp_path, files, "SEC-004")
    assert [item.passed for item in findings] == [True]
    assert "denies all" in findings[0].outcome.message
    assert findings[0].location.line == 2
