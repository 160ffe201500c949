"""Kubernetes and proxy rules on their fixtures, and on manifests written by the
tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.review.rule_cases import check_case, fixture_cases, rule_findings

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.model import Finding, Severity

CASES = fixture_cases("K8S-")
OFFLINE = ReviewOptions(live=False)


@pytest.mark.parametrize(("rule_id", "case"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_rule_fixture(materialize, rule_id, case):
    check_case(materialize, rule_id, case)


def review(folder: Path, files: dict[str, str], rule_id: str) -> list[Finding]:
    for name, text in files.items():
        (folder / name).write_text(text)
    return rule_findings(run_review(folder, OFFLINE), rule_id)


def odoo(image: str = "odoo:17.0", args: str = "", labels: str = "{app: odoo}") -> str:
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: odoo\n"
        "spec:\n  selector:\n    matchLabels: {app: odoo}\n"
        f"  template:\n    metadata:\n      labels: {labels}\n    spec:\n"
        f"      containers:\n        - name: odoo\n          image: {image}\n"
        + (f"          args: {args}\n" if args else "")
        + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: odoo\n"
        "spec:\n  selector: {app: odoo}\n  ports:\n"
        "    - {name: http, port: 8069}\n    - {name: bus, port: 8072}\n"
    )


COMPOSE_LABELS = """\
services:
  odoo:
    image: odoo:17.0
    command: ["--", "--workers=3", "--proxy-mode"]
    labels:
      traefik.http.routers.odoo.rule: Host(`erp.example.com`)
      traefik.http.routers.odoo.service: odoo
      traefik.http.services.odoo.loadbalancer.server.port: "8069"
{websocket}"""
WEBSOCKET_LABELS = (
    "      traefik.http.routers.odoo-ws.rule: "
    "Host(`erp.example.com`) && PathPrefix(`/websocket`)\n"
    "      traefik.http.routers.odoo-ws.service: odoo-ws\n"
    '      traefik.http.services.odoo-ws.loadbalancer.server.port: "8072"\n'
)


def test_compose_labels_route_websocket(tmp_path):
    files = {"docker-compose.yml": COMPOSE_LABELS.format(websocket=WEBSOCKET_LABELS)}
    findings = review(tmp_path, files, "K8S-001")
    assert [item.passed for item in findings] == [True]
    assert findings[0].location.line == 9


def test_compose_labels_without_websocket(tmp_path):
    files = {"docker-compose.yml": COMPOSE_LABELS.format(websocket="")}
    findings = review(tmp_path, files, "K8S-001")
    assert [item.passed for item in findings] == [False]
    assert "goes to port 8069" in findings[0].outcome.message
    assert findings[0].location.line == 6


def test_longpolling_before_odoo_16(tmp_path):
    ingress = (
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: odoo\n"
        "spec:\n  rules:\n    - host: erp.example.com\n      http:\n        paths:\n"
        "          - path: /\n            pathType: Prefix\n            backend:\n"
        "              service: {name: odoo, port: {number: 8069}}\n"
        "          - path: /longpolling\n            pathType: Prefix\n"
        "            backend:\n"
        "              service: {name: odoo, port: {name: bus}}\n"
    )
    files = {
        "odoo.yaml": odoo("odoo:15.0", '["--workers=2"]'),
        "ingress.yaml": ingress,
    }
    findings = review(tmp_path, files, "K8S-001")
    assert [item.passed for item in findings] == [True]
    assert "/longpolling goes to the gevent port 8072" in findings[0].outcome.message


def test_odoo_16_needs_websocket_not_longpolling(tmp_path):
    ingress = (
        "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: odoo\n"
        "spec:\n  rules:\n    - host: erp.example.com\n      http:\n        paths:\n"
        "          - path: /\n            backend:\n"
        "              serviceName: odoo\n              servicePort: 8069\n"
        "          - path: /longpolling\n            backend:\n"
        "              serviceName: odoo\n              servicePort: 8072\n"
    )
    files = {
        "odoo.yaml": odoo("odoo:16.0-20240110", '["--workers=2"]'),
        "ingress.yaml": ingress,
    }
    findings = review(tmp_path, files, "K8S-001")
    assert [item.passed for item in findings] == [False]
    assert findings[0].outcome.message.startswith("erp.example.com: /websocket")


def test_threaded_odoo_not_checked(tmp_path):
    route = (
        "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata:\n"
        "  name: odoo\nspec:\n  routes:\n    - match: Host(`erp.example.com`)\n"
        "      services: [{name: odoo, port: 8069}]\n"
    )
    files = {"odoo.yaml": odoo(), "route.yaml": route}
    assert review(tmp_path, files, "K8S-001") == []


def test_custom_gevent_port(tmp_path):
    conf = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\ndata:\n"
        "  odoo.conf: |\n    [options]\n    workers = 2\n    gevent_port = 8090\n"
    )
    route = (
        "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata:\n"
        "  name: odoo\nspec:\n  routes:\n    - match: Host(`erp.example.com`)\n"
        "      services: [{name: odoo, port: 8069}]\n"
        "    - match: Host(`erp.example.com`) && PathPrefix(`/websocket`)\n"
        "      services: [{name: odoo, port: 8072}]\n"
    )
    files = {"conf.yaml": conf, "odoo.yaml": odoo(), "route.yaml": route}
    findings = review(tmp_path, files, "K8S-001")
    assert [item.passed for item in findings] == [False]
    assert "not to the gevent port 8090" in findings[0].outcome.message


def test_proxy_mode_not_set_behind_compose_proxy(tmp_path):
    compose = (
        "services:\n  nginx:\n    image: nginx:1.27\n    ports: ['443:443']\n"
        "  odoo:\n    image: odoo:17.0\n"
    )
    findings = review(tmp_path, {"docker-compose.yml": compose}, "K8S-002")
    assert [item.passed for item in findings] == [False]
    assert "not set" in findings[0].outcome.message
    assert findings[0].location.line == 5


def test_no_proxy_not_checked(tmp_path):
    compose = "services:\n  odoo:\n    image: odoo:17.0\n    ports: ['8069:8069']\n"
    assert review(tmp_path, {"docker-compose.yml": compose}, "K8S-002") == []


POSTGRES = (
    "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n  namespace: erp\n"
    "spec:\n  selector:\n    matchLabels: {app: db}\n"
    "  template:\n    metadata:\n      labels: {app: db}\n    spec:\n"
    "      containers:\n        - name: db\n          image: postgres:16\n"
)


def test_internal_load_balancer_lowers_severity(tmp_path):
    service = (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\n  namespace: erp\n"
        "  annotations:\n"
        '    service.beta.kubernetes.io/azure-load-balancer-internal: "true"\n'
        "spec:\n  type: LoadBalancer\n  selector: {app: db}\n"
        "  ports: [{port: 5432}]\n"
    )
    files = {"db.yaml": POSTGRES, "service.yaml": service}
    findings = review(tmp_path, files, "K8S-003")
    assert [item.passed for item in findings] == [False]
    assert findings[0].severity == Severity.MEDIUM
    assert "internal load balancer" in findings[0].outcome.message
    assert findings[0].location.line == 9


def test_service_of_other_namespace_ignored(tmp_path):
    service = (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\n  namespace: other\n"
        "spec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80}]\n"
    )
    findings = review(tmp_path, {"db.yaml": POSTGRES, "s.yaml": service}, "K8S-003")
    assert [item.passed for item in findings] == [True]


def test_unselected_external_port_5432(tmp_path):
    service = (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: pg-public\n"
        "spec:\n  type: LoadBalancer\n"
        "  selector: {cnpg.io/cluster: odoo-pg, role: primary}\n"
        "  ports: [{port: 5432, targetPort: 5432}]\n"
    )
    findings = review(tmp_path, {"service.yaml": service}, "K8S-003")
    assert [item.passed for item in findings] == [False]
    assert findings[0].outcome.resource == "Service/pg-public"
    assert findings[0].location.line == 6


def test_cloudnative_pg_load_balancer(tmp_path):
    cluster = (
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\n"
        "spec:\n  instances: 3\n  managed:\n    services:\n      additional:\n"
        "        - selectorType: rw\n          serviceTemplate:\n"
        "            metadata: {name: pg-lb}\n"
        "            spec: {type: LoadBalancer}\n"
    )
    findings = review(tmp_path, {"cluster.yaml": cluster}, "K8S-003")
    assert [item.passed for item in findings] == [False]
    assert findings[0].location.line == 10


def test_loopback_and_host_network(tmp_path):
    compose = (
        "services:\n  db:\n    image: postgres:16\n    ports:\n"
        "      - target: 5432\n        published: 5432\n        host_ip: 127.0.0.1\n"
        "  cache:\n    image: redis:7\n    network_mode: host\n"
    )
    files = {"docker-compose.yml": compose}
    postgres = review(tmp_path, files, "K8S-003")
    assert [item.passed for item in postgres] == [True]
    redis = rule_findings(run_review(tmp_path, OFFLINE), "K8S-004")
    assert [item.passed for item in redis] == [False]
    assert redis[0].location.line == 10


def test_empty_pod_selector_selects_all(tmp_path):
    policy = (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n"
        "  name: default-deny\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n"
    )
    findings = review(tmp_path, {"odoo.yaml": odoo(), "p.yaml": policy}, "K8S-005")
    assert [item.passed for item in findings] == [True]


def test_cilium_policy_selects(tmp_path):
    policy = (
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n"
        "  name: odoo\nspec:\n  endpointSelector:\n    matchLabels: {app: odoo}\n"
    )
    findings = review(tmp_path, {"odoo.yaml": odoo(), "p.yaml": policy}, "K8S-005")
    assert [item.passed for item in findings] == [True]


def test_compose_not_checked_for_policy(tmp_path):
    compose = "services:\n  odoo:\n    image: odoo:17.0\n"
    assert review(tmp_path, {"docker-compose.yml": compose}, "K8S-005") == []


@pytest.mark.parametrize(
    ("image", "severity"),
    [
        ("odoo", Severity.MEDIUM),
        ("odoo:latest", Severity.MEDIUM),
        ("odoo:17", Severity.MEDIUM),
        ("registry.example.com:5000/odoo", Severity.MEDIUM),
        ("registry.example.com/acme/odoo:2024.05.1", Severity.LOW),
    ],
)
def test_image_tags(tmp_path, image, severity):
    findings = review(tmp_path, {"odoo.yaml": odoo(image)}, "K8S-006")
    assert [item.passed for item in findings] == [False]
    assert findings[0].severity == severity


def test_nginx_on_odoo_host(tmp_path):
    nginx = (
        "server {\n  server_name erp.example.com;\n"
        "  location / {\n    proxy_pass http://127.0.0.1:8069;\n  }\n}\n"
    )
    files = {
        "odoo.conf": "[options]\nworkers = 4\nproxy_mode = True\n",
        "odoo-site.conf": nginx,
    }
    findings = review(tmp_path, files, "K8S-001")
    assert [item.passed for item in findings] == [False]
    assert "/websocket goes to port 8069" in findings[0].outcome.message
    assert findings[0].location.file.endswith("odoo-site.conf")
    assert findings[0].location.line == 3


def test_nginx_mounted_by_compose(tmp_path):
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "default.conf").write_text(
        "upstream odoochat {\n  server odoo:8072;\n}\n"
        "server {\n  location /websocket {\n    proxy_pass http://odoochat;\n  }\n"
        "  location / {\n    proxy_pass http://odoo:8069;\n  }\n}\n"
    )
    compose = (
        "services:\n  proxy:\n    image: nginx:1.27\n"
        "    volumes: ['./nginx:/etc/nginx/conf.d:ro']\n"
        "  odoo:\n    image: odoo:16.0\n    command: --workers=2\n"
    )
    findings = review(tmp_path, {"docker-compose.yml": compose}, "K8S-001")
    assert [item.passed for item in findings] == [True]
    assert findings[0].location.line == 5


def test_exporters_and_jobs_left_out(tmp_path):
    compose = (
        "services:\n  exporter:\n    image: prometheuscommunity/postgres-exporter\n"
        "    ports: ['9187:9187']\n"
    )
    job = (
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: restore\nspec:\n"
        "  template:\n    spec:\n      containers:\n"
        "        - name: restore\n          image: postgres:16\n"
    )
    files = {"docker-compose.yml": compose, "job.yaml": job}
    assert review(tmp_path, files, "K8S-003") == []
