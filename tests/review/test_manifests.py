"""Reading manifests: each kind, with the file and line of what is read."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.evidence.endpoints import backup_endpoints
from odoo_dr.review.evidence.exposure import load_routing
from odoo_dr.review.evidence.manifests import ManifestSet, load_manifests
from odoo_dr.review.evidence.network import network_policies, services
from odoo_dr.review.evidence.odoo import (
    database_user,
    manifest_superusers,
    odoo_servers,
)
from odoo_dr.review.evidence.routes import load_routes
from odoo_dr.review.evidence.storage import claims, filestore_volume
from odoo_dr.review.yamlio import LiteralText, line_of, load_documents

KUBERNETES = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: odoo
  namespace: erp
  labels: {app.kubernetes.io/name: odoo}
spec:
  replicas: 2
  selector:
    matchLabels: {app: odoo}
  template:
    metadata:
      labels: {app: odoo, tier: web}
    spec:
      initContainers:
        - name: migrate
          image: odoo:17.0
          command: ["odoo", "-u", "all", "--stop-after-init"]
      containers:
        - name: odoo
          image: odoo:17.0
          args: ["--workers=4", "--proxy-mode", "-c", "/etc/odoo/odoo.conf"]
          ports:
            - {name: http, containerPort: 8069}
            - {name: websocket, containerPort: 8072, hostPort: 8072}
          env:
            - name: HOST
              value: postgres
            - name: PASSWORD
              valueFrom:
                secretKeyRef: {name: odoo-db, key: password}
          volumeMounts:
            - {name: conf, mountPath: /etc/odoo}
            - {name: data, mountPath: /var/lib/odoo}
      volumes:
        - name: conf
          projected:
            sources:
              - configMap: {name: odoo-conf}
              - secret: {name: odoo-secrets}
        - name: data
          persistentVolumeClaim: {claimName: odoo-data}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: odoo-data
  namespace: erp
spec:
  accessModes: [ReadWriteMany]
  storageClassName: cephfs
---
apiVersion: v1
kind: Service
metadata:
  name: odoo
  namespace: erp
spec:
  type: NodePort
  selector: {app: odoo}
  ports:
    - {name: http, port: 80, targetPort: http}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: odoo
  namespace: erp
spec:
  podSelector:
    matchLabels: {tier: web}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: pg-dump
  namespace: erp
spec:
  schedule: "30 2 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: dump
              image: postgres:16
              command: ["pg_dump", "-Fc", "-d", "acme"]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(folder: Path, name: str, text: str) -> ManifestSet:
    write(folder, name, text)
    return load_manifests([folder])


def test_multi_document_objects_keep_lines(tmp_path):
    manifests = load(tmp_path, "all.yaml", KUBERNETES)
    found = {item.ref: item.location.line for item in manifests.objects}
    assert found == {
        "Deployment/erp/odoo": 1,
        "PersistentVolumeClaim/erp/odoo-data": 44,
        "Service/erp/odoo": 53,
        "NetworkPolicy/erp/odoo": 64,
        "CronJob/erp/pg-dump": 73,
    }
    assert manifests.problems == []


def test_deployment_read_into_workload(tmp_path):
    manifests = load(tmp_path, "all.yaml", KUBERNETES)
    [workload] = manifests.workloads()
    assert workload.replicas == 2
    assert workload.labels == {"app.kubernetes.io/name": "odoo"}
    assert workload.pod_labels == {"app": "odoo", "tier": "web"}
    init, main = workload.containers
    assert init.init and not main.init
    assert main.location.line == 20
    assert main.image_location.line == 21
    assert main.command_location.line == 22
    assert main.port_names == {"http": 8069, "websocket": 8072}
    assert main.env == {"HOST": "postgres", "PASSWORD": ""}
    assert main.env_sources == {"PASSWORD": "secret odoo-db/password"}
    assert main.env_locations["PASSWORD"].line == 29
    assert workload.volumes["conf"].reference == (
        "ConfigMap/odoo-conf",
        "Secret/odoo-secrets",
    )
    assert workload.volumes["data"].claim == "odoo-data"
    assert workload.volumes["data"].location.line == 41
    [published] = workload.published
    assert (published.target, published.published, published.location.line) == (
        8072,
        "8072",
        25,
    )


def test_cronjob_read_with_schedule(tmp_path):
    manifests = load(tmp_path, "all.yaml", KUBERNETES)
    [job] = manifests.cronjobs()
    assert job.schedule == "30 2 * * *"
    assert job.containers[0].command_text == "pg_dump -Fc -d acme"
    assert job.location.line == 73


def test_claims_services_policies(tmp_path):
    manifests = load(tmp_path, "all.yaml", KUBERNETES)
    [claim] = claims(manifests)
    assert claim.access_modes == ("ReadWriteMany",)
    assert claim.storage_class == "cephfs"
    assert claim.shared
    [service] = services(manifests)
    [workload] = manifests.workloads()
    assert service.external
    assert service.selects(workload)
    assert service.target_port("http", [workload]) == 8069
    assert service.target_port(80, [workload]) == 8069
    assert service.ports[0].location.line == 62
    [policy] = network_policies(manifests)
    assert policy.selects(workload)


def test_odoo_server_options(tmp_path):
    manifests = load(tmp_path, "all.yaml", KUBERNETES)
    [server] = odoo_servers(manifests)
    assert server.container.name == "odoo"
    assert server.workers == 4
    assert server.flag("proxy_mode") is True
    assert server.get("config").value == "/etc/odoo/odoo.conf"
    assert server.get("db_host").value == "postgres"
    assert server.get("db_host").location.line == 27
    assert server.version == 17
    volume = filestore_volume(server, manifests)
    assert volume.mount_path == "/var/lib/odoo"
    assert volume.claim.name == "odoo-data"


def test_helm_sources(tmp_path):
    rendered = (
        "---\n# Source: odoo/templates/service.yaml\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: release-odoo\n"
        "---\n# Source: odoo/templates/secrets.yaml\n"
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: release-odoo\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n"
    )
    manifests = load(tmp_path, "rendered.yaml", rendered)
    found = {
        item.ref: (item.location.line, item.template) for item in manifests.objects
    }
    assert found == {
        "Service/release-odoo": (3, "odoo/templates/service.yaml"),
        "Secret/release-odoo": (9, "odoo/templates/secrets.yaml"),
        "ConfigMap/plain": (14, None),
    }


def test_list_kinds(tmp_path):
    listing = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "  - apiVersion: v1\n    kind: Service\n    metadata: {name: a}\n"
        "  - apiVersion: v1\n    kind: Service\n    metadata: {name: b}\n"
        "---\napiVersion: v1\nkind: ServiceList\nitems:\n"
        "  - apiVersion: v1\n    kind: Service\n    metadata: {name: c}\n"
    )
    manifests = load(tmp_path, "list.yaml", listing)
    assert [(item.name, item.location.line) for item in manifests.objects] == [
        ("a", 4),
        ("b", 7),
        ("c", 14),
    ]


def test_json_list_from_kubectl(tmp_path):
    document = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}},
        ],
    }
    manifests = load(tmp_path, "list.json", json.dumps(document, indent=2))
    assert [(item.name, item.location.line) for item in manifests.objects] == [
        ("a", 5),
        ("b", 12),
    ]


CONF = "[options]\ndata_dir = /srv/odoo\nlist_db = False\nadmin_passwd = secret\n"


def test_conf_in_config_map(tmp_path):
    config_map = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: odoo-conf\ndata:\n"
        "  other: value\n  odoo.conf: |\n"
        + "".join(f"    {line}\n" for line in CONF.splitlines())
    )
    manifests = load(tmp_path, "cm.yaml", config_map)
    [conf] = manifests.odoo_confs
    assert conf.origin == "ConfigMap"
    assert conf.holder.name == "odoo-conf"
    assert conf.options["data_dir"] == "/srv/odoo"
    assert conf.at("data_dir").line == 9
    assert conf.at("admin_passwd").line == 11


def test_conf_in_secret_base64(tmp_path):
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: odoo-conf\ntype: Opaque\n"
        f"data:\n  odoo.conf: {base64.b64encode(CONF.encode()).decode()}\n"
        "  password: c2VjcmV0\n"
    )
    manifests = load(tmp_path, "secret.yaml", secret)
    [conf] = manifests.odoo_confs
    assert conf.origin == "Secret"
    assert conf.options["list_db"] == "False"
    # Encoded text has no lines of its own: every option points at the key.
    assert conf.at("list_db").line == 7
    assert conf.at("admin_passwd").line == 7


def test_conf_in_secret_string_data(tmp_path):
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: odoo-conf\n"
        'stringData:\n  odoo.conf: "[options]\\nworkers = 2\\n"\n'
    )
    manifests = load(tmp_path, "secret.yaml", secret)
    [conf] = manifests.odoo_confs
    assert conf.options == {"workers": "2"}
    assert conf.at("workers").line == 6


def test_mounted_conf_per_server(tmp_path):
    manifests = load(
        tmp_path,
        "odoo.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n"
        "  odoo.conf: |\n    [options]\n    workers = 6\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cron\ndata:\n"
        "  odoo.conf: |\n    [options]\n    workers = 0\n"
        + "".join(
            "---\napiVersion: apps/v1\nkind: Deployment\n"
            f"metadata:\n  name: {name}\nspec:\n  template:\n    spec:\n"
            "      containers:\n        - name: odoo\n          image: odoo:17.0\n"
            "      volumes:\n        - name: c\n"
            f"          configMap: {{name: {name}}}\n"
            for name in ("web", "cron")
        ),
    )
    workers = {
        server.workload.name: server.workers for server in odoo_servers(manifests)
    }
    assert workers == {"web": 6, "cron": 0}


def test_conf_matched_by_tenant_name(tmp_path):
    for tenant in ("acme_retail", "globex"):
        write(tmp_path, f"odoo/{tenant}.conf", f"[options]\ndb_name = {tenant}\n")
    deployments = "".join(
        "---\napiVersion: apps/v1\nkind: Deployment\n"
        f"metadata:\n  name: odoo\n  namespace: {namespace}\nspec:\n"
        "  template:\n    spec:\n"
        "      containers:\n        - name: odoo\n          image: odoo:17.0\n"
        for namespace in ("tenant-acme-retail", "tenant-globex")
    )
    manifests = load(tmp_path, "k8s/odoo.yaml", deployments)
    found = {
        server.workload.namespace: server.get("db_name").value
        for server in odoo_servers(manifests)
    }
    assert found == {"tenant-acme-retail": "acme_retail", "tenant-globex": "globex"}


def test_conf_name_matches_whole_words(tmp_path):
    # `shop_1` is inside `shop_10` as text, but not as whole words.
    for tenant in ("shop_1", "shop_10", "acme"):
        write(tmp_path, f"odoo/{tenant}.conf", f"[options]\ndb_name = {tenant}\n")
    deployments = "".join(
        "---\napiVersion: apps/v1\nkind: Deployment\n"
        f"metadata:\n  name: odoo\n  namespace: {namespace}\nspec:\n"
        "  template:\n    spec:\n"
        "      containers:\n        - name: odoo\n          image: odoo:17.0\n"
        for namespace in ("shop-1", "shop-10", "acmeodoo")
    )
    manifests = load(tmp_path, "k8s/odoo.yaml", deployments)
    found = {
        server.workload.namespace: [conf.options["db_name"] for conf in server.confs]
        for server in odoo_servers(manifests)
    }
    assert found["shop-1"] == ["shop_1"]
    assert found["shop-10"] == ["shop_10"]
    # No whole-word match: the substring fallback still finds it.
    assert found["acmeodoo"] == ["acme"]


def test_compose_services(tmp_path):
    compose = """\
services:
  odoo:
    image: odoo:17.0
    command: -- --workers=2 --db-filter=^%d$
    environment:
      - HOST=db
      - PASSWORD=$DB_PASSWORD
      - USER
    ports:
      - "8069:8069"
      - "127.0.0.1:8072:8072"
      - target: 8071
        published: "18071"
        host_ip: 0.0.0.0
    volumes:
      - odoo-data:/var/lib/odoo
      - ./config:/etc/odoo:ro
      - /mnt/extra-addons
      - type: tmpfs
        target: /tmp
    labels:
      - traefik.enable=true
      - traefik.http.routers.odoo.rule=Host(`erp.example.com`)
    deploy:
      replicas: 2
      labels:
        traefik.http.services.odoo.loadbalancer.server.port: "8069"
  db:
    image: postgres:16
    ports: ["[::1]:5432:5432"]
    network_mode: host
volumes:
  odoo-data:
"""
    manifests = load(tmp_path, "docker-compose.yml", compose)
    odoo, db = manifests.compose
    assert (odoo.kind, odoo.name, odoo.replicas, odoo.location.line) == (
        "ComposeService",
        "odoo",
        2,
        2,
    )
    container = odoo.containers[0]
    assert container.command == ["--", "--workers=2", "--db-filter=^%d$"]
    assert container.env == {"HOST": "db", "PASSWORD": "$DB_PASSWORD", "USER": ""}
    assert container.env_sources == {"PASSWORD": "environment", "USER": "environment"}
    assert container.env_locations["HOST"].line == 6
    assert [
        (port.host_ip, port.published, port.target, port.location.line)
        for port in odoo.published
    ] == [
        ("", "8069", 8069, 10),
        ("127.0.0.1", "8072", 8072, 11),
        ("0.0.0.0", "18071", 8071, 12),
    ]
    kinds = [(volume.kind, volume.claim) for volume in odoo.volumes.values()]
    assert kinds == [
        ("namedVolume", "odoo-data"),
        ("hostPath", "./config"),
        ("anonymousVolume", None),
        ("tmpfs", None),
    ]
    assert [mount[1] for mount in container.mounts] == [
        "/var/lib/odoo",
        "/etc/odoo",
        "/mnt/extra-addons",
        "/tmp",
    ]
    assert odoo.labels["traefik.enable"] == "true"
    assert odoo.label_locations["traefik.enable"].line == 22
    port_label = "traefik.http.services.odoo.loadbalancer.server.port"
    assert odoo.labels[port_label] == "8069"
    assert odoo.label_locations[port_label].line == 27
    assert manifests.compose_labels["odoo"] == odoo.labels
    assert [(port.host_ip, port.target) for port in db.published] == [
        ("::1", 5432),
        ("", None),
    ]
    assert db.published[0].loopback_only
    assert db.published[1].location.line == 31
    [server] = odoo_servers(manifests)
    assert server.get("dbfilter").value == "^%d$"
    assert server.get("db_host").value == "db"


def test_compose_conf_bind_mount_linked(tmp_path):
    write(tmp_path, "config/odoo.conf", "[options]\nproxy_mode = True\n")
    write(tmp_path, "other.conf", "[options]\nproxy_mode = False\n")
    compose = (
        "services:\n  odoo:\n    image: odoo:17.0\n"
        "    volumes: ['./config:/etc/odoo']\n"
        "  admin:\n    image: odoo:17.0\n"
    )
    manifests = load(tmp_path, "docker-compose.yml", compose)
    found = {
        server.workload.name: server.flag("proxy_mode")
        for server in odoo_servers(manifests)
    }
    assert found == {"odoo": True, "admin": False}


def test_routes_of_each_proxy(tmp_path):
    files = {
        "ingress.yaml": "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        "metadata:\n  name: web\nspec:\n  defaultBackend:\n"
        "    service: {name: odoo, port: {number: 8069}}\n  rules:\n"
        "    - host: a.example.com\n      http:\n        paths:\n"
        "          - path: /websocket\n            pathType: Exact\n"
        "            backend:\n              service: {name: odoo, port: {name: ws}}\n",
        "v2.yaml": "apiVersion: traefik.containo.us/v1alpha1\nkind: IngressRoute\n"
        "metadata:\n  name: v2\nspec:\n  routes:\n"
        "    - match: Host(`b.example.com`, `c.example.com`) && "
        "(PathPrefix(`/longpolling`) || Path(`/x`))\n"
        "      priority: 10\n      middlewares: [{name: auth, namespace: erp}]\n"
        "      services: [{name: odoo, port: 8072}]\n",
        "v3.yaml": "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\n"
        "metadata:\n  name: v3\nspec:\n  routes:\n"
        "    - match: HostRegexp(`^[a-z]+\\.example\\.org$`) && "
        "!PathPrefix(`/private`)\n"
        "      services: [{name: noop@internal, kind: TraefikService}]\n",
        "mw.yaml": "apiVersion: traefik.io/v1alpha1\nkind: Middleware\n"
        "metadata:\n  name: auth\n  namespace: erp\nspec:\n"
        "  chain:\n    middlewares: [{name: allow}]\n"
        "---\napiVersion: traefik.io/v1alpha1\nkind: Middleware\n"
        "metadata:\n  name: allow\n  namespace: erp\nspec:\n"
        "  ipWhiteList: {sourceRange: [10.0.0.0/8]}\n",
    }
    for name, text in files.items():
        write(tmp_path, name, text)
    routes = load_routes(load_manifests([tmp_path]))
    found = {
        (route.resource, route.location.line): (
            route.hosts,
            route.host_patterns,
            [(path.value, path.kind) for path in route.paths],
            route.service,
            route.port,
        )
        for route in routes.routes
    }
    assert found == {
        ("Ingress/web", 12): (
            ("a.example.com",),
            (),
            [("/websocket", "exact")],
            "odoo",
            "ws",
        ),
        ("Ingress/web", 6): ((), (), [], "odoo", 8069),
        ("IngressRoute/v2", 7): (
            ("b.example.com", "c.example.com"),
            (),
            [("/longpolling", "string"), ("/x", "exact")],
            "odoo",
            8072,
        ),
        ("IngressRoute/v3", 7): (
            (),
            ("^[a-z]+\\.example\\.org$",),
            [],
            "noop@internal",
            None,
        ),
    }
    v2 = next(route for route in routes.routes if route.resource == "IngressRoute/v2")
    assert routes.restriction(v2) == "middleware allow (ipwhitelist)"
    assert routes.winner("a.example.com", "/websocket").port == "ws"
    assert routes.winner("a.example.com", "/websocket/x").port == 8069
    assert routes.winner("b.example.com", "/longpolling/poll").priority == 10
    assert (
        routes.winner("www.example.org", "/web").blocked_by == "service noop@internal"
    )


def test_routes_traced_to_container_ports(tmp_path):
    manifests = load(
        tmp_path,
        "all.yaml",
        KUBERNETES
        + (
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n"
            "  name: odoo\n  namespace: erp\nspec:\n  rules:\n"
            "    - http:\n        paths:\n          - path: /\n"
            "            pathType: Prefix\n            backend:\n"
            "              service: {name: odoo, port: {number: 80}}\n"
        ),
    )
    servers = odoo_servers(manifests)
    routing = load_routing(manifests, servers)
    [target] = routing.targets
    assert target.server is servers[0]
    assert target.port == 8069
    assert routing.hosts() == [None]


def test_backup_endpoints(tmp_path):
    manifests = load(
        tmp_path,
        "backup.yaml",
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\n"
        "spec:\n  backup:\n    barmanObjectStore:\n"
        "      destinationPath: s3://b/pg\n      endpointURL: http://minio:9000\n"
        "---\napiVersion: velero.io/v1\nkind: BackupStorageLocation\n"
        "metadata:\n  name: default\nspec:\n  provider: aws\n  config:\n"
        "    s3Url: https://s3.example.com\n    insecureSkipTLSVerify: 'true'\n",
    )
    found = [
        (item.url, item.location.line, item.verify, item.encrypted)
        for item in backup_endpoints(manifests)
    ]
    assert found == [
        ("http://minio:9000", 9, True, False),
        ("https://s3.example.com", 18, False, True),
    ]


def test_bad_yaml_is_an_evidence_problem(tmp_path):
    write(
        tmp_path, "good.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"
    )
    write(tmp_path, "broken.yaml", "apiVersion: v1\nkind: [ConfigMap\nmetadata: {}\n")
    write(tmp_path, "duplicate.yaml", "apiVersion: v1\nkind: Service\nkind: Pod\n")
    write(tmp_path, "template.yaml", '{{- include "odoo.labels" . }}\nkind: Service\n')
    manifests = load_manifests([tmp_path])
    assert [item.name for item in manifests.objects] == ["a"]
    problems = "\n".join(manifests.problems)
    assert "broken.yaml:" in problems
    assert "invalid YAML" in problems
    assert "duplicate.yaml:3" in problems
    assert "template.yaml:1" in problems
    assert len(manifests.problems) == 3
    result = run_review(tmp_path, ReviewOptions(live=False))
    assert len(result.evidence_problems) == 3


def test_unexpected_shapes_do_not_crash(tmp_path):
    odd = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: [odd]\nspec: 5\n"
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
        "spec:\n  template:\n    spec:\n      containers: text\n"
        "      volumes: [{name: v, persistentVolumeClaim: claim}]\n"
        "---\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"
        "metadata: {name: r}\nspec:\n  groups: [not-a-group]\n"
        "---\n- a list document\n"
        "---\napiVersion: v1\nkind: List\nitems: nothing\n"
    )
    manifests = load(tmp_path, "odd.yaml", odd)
    assert [item.kind for item in manifests.objects] == ["Deployment", "Deployment"]
    assert len(manifests.workloads()) == 2
    assert manifests.problems == [
        f"{tmp_path / 'odd.yaml'}:15: cannot read this document, a value has an "
        "unexpected type (AttributeError: 'str' object has no attribute 'get')"
    ]
    result = run_review(tmp_path, ReviewOptions(live=False))
    # The review names files relative to the folder it reviews.
    assert result.evidence_problems == [
        "odd.yaml:15: cannot read this document, a value has an unexpected type "
        "(AttributeError: 'str' object has no attribute 'get')"
    ]


def test_missing_path_reported(tmp_path):
    manifests = load_manifests([tmp_path / "absent"])
    assert manifests.problems == [f"{tmp_path / 'absent'}: not found"]


def test_superusers_and_database_user(tmp_path):
    compose = (
        "services:\n  db:\n    image: postgres:16\n    environment:\n"
        "      - POSTGRES_USER=odoo\n  web:\n    image: odoo:17.0\n"
        "  worker:\n    image: odoo:17.0\n    environment:\n      USER: odoo_app\n"
    )
    manifests = load(tmp_path, "docker-compose.yml", compose)
    superusers = manifest_superusers(manifests)
    assert sorted(superusers) == ["odoo", "postgres"]
    assert superusers["odoo"].line == 5
    assert superusers["postgres"].line == 2
    users = {
        server.workload.name: database_user(server).value
        for server in odoo_servers(manifests)
    }
    assert users == {"web": "odoo", "worker": "odoo_app"}


def test_superuser_from_secret_unknown(tmp_path):
    cluster = (
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\n"
        "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n"
        "spec:\n  template:\n    spec:\n      containers:\n"
        "        - name: db\n          image: postgres:16\n          env:\n"
        "            - name: POSTGRES_USER\n              valueFrom:\n"
        "                secretKeyRef: {name: db, key: user}\n"
    )
    manifests = load(tmp_path, "db.yaml", cluster)
    # POSTGRES_USER comes from a Secret, so only `postgres` is known.
    superusers = manifest_superusers(manifests)
    assert list(superusers) == ["postgres"]
    assert superusers["postgres"].line == 6


NGINX = """\
upstream odoochat {
  server odoo:8072;
}
server {
  server_name erp.example.com ~^(?<tenant>[a-z]+)\\.example\\.org$;
  # the bus
  location /websocket { proxy_pass http://odoochat; }
  location = /web/database/manager { return 404; }
  location ~* ^/web/database {
    auth_basic "admins";
    proxy_pass http://odoo.erp.svc.cluster.local:8069;
  }
  location / {
    proxy_pass http://127.0.0.1:8069;
  }
}
"""


def test_nginx_routes(tmp_path):
    write(tmp_path, "nginx/site.conf", NGINX)
    manifests = load_manifests([tmp_path])
    [(text, location)] = manifests.nginx_configs
    assert location.line == 1
    routes = load_routing(manifests, []).routes.routes
    found = [
        (
            route.location.line,
            route.paths[0].kind,
            route.service,
            route.namespace,
            route.port,
            route.priority,
        )
        for route in routes
    ]
    assert found == [
        (7, "string", "odoo", None, 8072, 0),
        (8, "exact", None, None, None, 3),
        (9, "regex", "odoo", "erp", 8069, 1),
        (13, "string", "127.0.0.1", None, 8069, 0),
    ]
    assert routes[0].hosts == ("erp.example.com",)
    assert routes[0].host_patterns == ("^(?<tenant>[a-z]+)\\.example\\.org$",)
    assert routes[1].blocked_by == "nginx location = /web/database/manager returns 404"
    assert routes[2].restricted_by == (
        "nginx location ~* ^/web/database requires authentication"
    )


def test_nginx_in_config_map_and_errors(tmp_path):
    indented = "".join(f"    {line}\n" for line in NGINX.splitlines())
    write(
        tmp_path,
        "proxy.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: proxy\ndata:\n"
        "  default.conf: |\n" + indented,
    )
    write(tmp_path, "broken.conf", "server {\n  location / {\n    proxy_pass x;\n}\n")
    manifests = load_manifests([tmp_path])
    assert [location.line for _, location in manifests.nginx_configs] == [7]
    routes = load_routing(manifests, []).routes.routes
    assert [route.location.line for route in routes][:2] == [13, 14]
    assert manifests.problems == [
        f"{tmp_path / 'broken.conf'}:1: invalid nginx configuration: block opened "
        "on line 1 is not closed"
    ]


OPERATORS = """\
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: pg, namespace: db}
spec:
  backup:
    barmanObjectStore: {destinationPath: "s3://b/pg"}
---
apiVersion: postgresql.cnpg.io/v1
kind: ScheduledBackup
metadata: {name: nightly, namespace: db}
spec:
  schedule: "0 0 2 * * *"
  cluster: {name: pg}
---
apiVersion: velero.io/v1
kind: Schedule
metadata: {name: daily, namespace: velero}
spec:
  schedule: "0 3 * * *"
---
apiVersion: k8up.io/v1
kind: Schedule
metadata: {name: files, namespace: erp}
spec:
  backup: {schedule: "@daily-random"}
---
apiVersion: traefik.containo.us/v1alpha1
kind: Middleware
metadata: {name: old, namespace: erp}
spec: {ipWhiteList: {sourceRange: [10.0.0.0/8]}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: new, namespace: erp}
spec: {ipAllowList: {sourceRange: [10.0.0.0/8]}}
"""


def test_operator_kinds_by_group(tmp_path):
    manifests = load(tmp_path, "operators.yaml", OPERATORS)
    [cluster] = manifests.of_kind("Cluster", group="postgresql.cnpg.io")
    assert cluster.at("spec", "backup", "barmanObjectStore").line == 6
    [scheduled] = manifests.of_kind("ScheduledBackup", group="postgresql.cnpg.io")
    assert scheduled.get("spec", "schedule") == "0 0 2 * * *"
    assert scheduled.location.line == 8
    [velero] = manifests.of_kind("Schedule", group="velero.io")
    assert velero.at("spec", "schedule").line == 19
    [k8up] = manifests.of_kind("Schedule", group="k8up.io")
    assert k8up.get("spec", "backup", "schedule") == "@daily-random"
    assert k8up.ref == "Schedule/erp/files"
    middlewares = manifests.of_kind("Middleware")
    assert [item.group for item in middlewares] == ["traefik.containo.us", "traefik.io"]
    assert [item.location.line for item in middlewares] == [27, 32]


def test_invalid_document_keeps_the_others(tmp_path):
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n"
        "---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n"
        " data: {}\n"
        "---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: last}\n"
    )
    manifests = load(tmp_path, "all.yaml", text)
    assert [(item.kind, item.name) for item in manifests.objects] == [
        ("ConfigMap", "first"),
        ("Service", "last"),
    ]
    assert [item.location.line for item in manifests.objects] == [1, 11]
    [problem] = manifests.problems
    assert problem.startswith(f"{tmp_path / 'all.yaml'}:9: invalid YAML")
    assert "the document on lines 4-9 is skipped" in problem


def test_each_chart_reported_once(tmp_path):
    for chart in ("odoo", "postgres"):
        write(tmp_path, f"{chart}/Chart.yaml", f"apiVersion: v2\nname: {chart}\n")
        write(tmp_path, f"{chart}/values.yaml", "replicas: 1\nservices: {}\n")
        for name in ("deployment.yaml", "service.yaml"):
            write(
                tmp_path,
                f"{chart}/templates/{name}",
                "apiVersion: v1\nkind: Service\nmetadata:\n"
                "  name: {{ .Release.Name }}\n{{- if .Values.x }}\nspec: {}\n"
                "{{- end }}\n",
            )
    write(
        tmp_path,
        "rendered.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
    )
    manifests = load_manifests([tmp_path], root=tmp_path)
    assert [item.name for item in manifests.objects] == ["a"]
    assert manifests.compose == []
    assert len(manifests.problems) == 2
    first, second = sorted(manifests.problems)
    assert first.startswith("odoo: a Helm chart, whose templates")
    assert "(deployment.yaml, service.yaml)" in first
    assert "in odoo, run `helm template NAME . -f values.yaml > rendered.yaml`" in first
    assert "list odoo/rendered.yaml under the environment's manifests" in first
    assert second.startswith("postgres: a Helm chart")
    assert "invalid YAML" not in first + second


def test_template_outside_chart_named(tmp_path):
    write(
        tmp_path,
        "deploy.yaml",
        'kind: Deployment\nmetadata:\n  labels:\n    {{- include "odoo.labels" . }}\n',
    )
    manifests = load_manifests([tmp_path], root=tmp_path)
    [problem] = manifests.problems
    assert problem.startswith("deploy.yaml:4: contains template actions")
    assert "render it first" in problem


def workload_with(tmp_path, container: str, kind: str = "Deployment"):
    text = (
        f"apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: w}}\n"
        "spec:\n  template:\n    spec:\n      containers:\n" + container
    )
    [workload] = load(tmp_path, "w.yaml", text).workloads()
    return workload


def container(image: str, extra: str = "") -> str:
    """Return a container of a pod spec, indented for `workload_with`."""
    return f"        - name: a\n          image: '{image}'\n{extra}"


ODOO_CONTAINERS = {
    "custom image name": container("registry.example.com/acme/odoo-custom:16.0"),
    "digest": container("ghcr.io/org/erp-odoo@sha256:" + "0" * 64),
    "odoo folder and port": container(
        "registry.example.com/odoo/erp:17", "          ports: [{containerPort: 8069}]\n"
    ),
    "odoo-bin": container(
        "python:3.11", "          command: [python3, /opt/odoo/odoo-bin]\n"
    ),
    "openerp-server": container(
        "debian:9", "          command: [openerp-server, -c, /etc/x]\n"
    ),
    "entrypoint then odoo": container(
        "acme/erp:1", "          command: [/entrypoint.sh, odoo]\n"
    ),
    "shell exec odoo": container(
        "acme/erp:1",
        "          command: [sh, -c, 'wait-for db:5432 && exec odoo --workers=2']\n",
    ),
    "odoo.conf mounted": container(
        "acme/erp:1",
        "          volumeMounts: [{name: c, mountPath: /etc/odoo/odoo.conf}]\n",
    ),
}


@pytest.mark.parametrize("case", sorted(ODOO_CONTAINERS))
def test_odoo_recognised(tmp_path, case):
    workload = workload_with(tmp_path, ODOO_CONTAINERS[case])
    assert workload.is_odoo
    assert not workload.is_postgres


NOT_ODOO_CONTAINERS = {
    "odoo-dr image": container(
        "registry.example.com/odoo-dr:0.9",
        "          command: [odoo-dr, backup, acme, --odoo-config, /etc/odoo/x.conf]\n"
        "          volumeMounts: [{name: c, mountPath: /etc/odoo/odoo.conf}]\n",
    ),
    "odoo-dr command": container(
        "python:3.11",
        "          command: [sh, -c, 'odoo-dr backup acme --odoo-config /etc/x']\n"
        "          volumeMounts: [{name: c, mountPath: /etc/odoo}]\n",
    ),
    "database named odoo": container(
        "postgres:16", "          command: [pg_dump, -d, odoo]\n"
    ),
    "exporter": container("prometheuscommunity/postgres-exporter:v0.15.0"),
}


@pytest.mark.parametrize("case", sorted(NOT_ODOO_CONTAINERS))
def test_not_odoo(tmp_path, case):
    workload = workload_with(tmp_path, NOT_ODOO_CONTAINERS[case])
    assert not workload.is_odoo


@pytest.mark.parametrize(
    ("image", "watches"),
    [
        ("prometheuscommunity/postgres-exporter:v0.15.0", "postgresql"),
        ("quay.io/prometheuscommunity/postgres_exporter", "postgresql"),
        ("oliver006/redis_exporter:v1.62.0", "redis"),
        ("bitnami/redis-exporter:1.62.0", "redis"),
    ],
)
def test_exporter_is_not_the_database(tmp_path, image, watches):
    workload = workload_with(tmp_path, f"        - {{name: a, image: '{image}'}}\n")
    assert not workload.is_postgres
    assert not workload.is_redis
    assert workload.exporters == [watches]


def test_wait_for_postgres_init_container(tmp_path):
    workload = workload_with(
        tmp_path,
        "        - {name: odoo, image: 'odoo:17.0'}\n"
        "      initContainers:\n"
        "        - name: wait\n          image: postgres:16\n"
        "          command: [sh, -c, 'until pg_isready -h db; do sleep 2; done']\n",
    )
    assert workload.is_odoo
    assert not workload.is_postgres


def test_compose_entrypoint_is_the_program(tmp_path):
    manifests = load(
        tmp_path,
        "docker-compose.yml",
        "services:\n  backup:\n    image: alpine:3\n"
        "    entrypoint: [/bin/sh, -c]\n    command: [echo hello]\n",
    )
    [service] = manifests.compose
    assert service.containers[0].command == ["/bin/sh", "-c", "echo hello"]


OPERATOR_RESOURCE = """\
apiVersion: apps.example.net/v1
kind: OdooDeployment
metadata:
  name: shop
  namespace: erp
spec:
  image: registry.example.net/erp/odoo:17.0-20260101
  replicas: 3
  database:
    host: pg-main
    user: shop
    name: shop
  storage:
    size: 30Gi
    storageClassName: local-path
    accessModes: [ReadWriteOnce]
  config:
    proxyMode: true
    listDb: false
    workers: 4
---
apiVersion: apps.example.net/v1
kind: OdooBackupSchedule
metadata:
  name: shop-nightly
  namespace: erp
spec:
  schedule: "0 3 * * *"
"""


def test_operator_resource_read_as_odoo(tmp_path):
    manifests = load(tmp_path, "shop.yaml", OPERATOR_RESOURCE)
    [workload] = manifests.workloads()
    assert workload.operator_kind == "OdooDeployment"
    assert workload.is_odoo
    assert (workload.ref, workload.replicas) == ("OdooDeployment/erp/shop", 3)
    [server] = odoo_servers(manifests)
    assert server.container.image == "registry.example.net/erp/odoo:17.0-20260101"
    assert server.version == 17
    assert server.get("db_host").value == "pg-main"
    assert server.get("db_user").location.line == 11
    assert server.flag("proxy_mode") is True
    assert server.flag("list_db") is False
    assert server.workers == 4
    assert database_user(server).value == "shop"
    volume = filestore_volume(server, manifests)
    assert volume.mount_path == "/var/lib/odoo"
    assert volume.claim.name == "shop-filestore"
    assert volume.claim.access_modes == ("ReadWriteOnce",)
    assert volume.claim.storage_class == "local-path"
    assert volume.claim.location.line == 13
    [conf] = manifests.odoo_confs
    assert conf.resource == "OdooDeployment/erp/shop"


def test_operator_odd_shapes(tmp_path):
    manifests = load(
        tmp_path,
        "odd.yaml",
        "apiVersion: x.example.org/v1\nkind: OdooInstance\nmetadata: {name: a}\n"
        "spec: text\n---\n"
        "apiVersion: x.example.org/v1\nkind: Odoo\nmetadata: {name: b}\n"
        "spec:\n  image: {repository: reg/odoo, tag: '16.0', digest: 'sha256:ab'}\n"
        "  replicas: '3'\n  storage: [1, 2]\n"
        "  database: {hostFromSecret: {name: s, key: host}}\n"
        "  config: {addonsPath: [a, b], nested: {x: 1}}\n"
        "  filestore: {enabled: false}\n",
    )
    assert manifests.problems == []
    first, second = manifests.workloads()
    assert (first.name, first.containers[0].image, first.volumes) == ("a", "", {})
    assert second.containers[0].image == "reg/odoo:16.0@sha256:ab"
    assert second.replicas == 1
    assert second.volumes["filestore"].kind == "emptyDir"
    [conf] = manifests.odoo_confs
    assert conf.options == {"addons_path": "a,b"}
    assert conf.from_operator


def test_yaml_core_schema_values(tmp_path):
    # Kubernetes tools read YAML 1.2: `on` and `yes` stay text, `010` is ten.
    path = write(
        tmp_path,
        "values.yaml",
        "mode: on\nanswer: yes\nflag: true\nzero: 010\nhex: 0x1f\nwhen: 2026-06-30\n"
        "text: |\n  line\n",
    )
    [document] = load_documents(path)
    assert document["mode"] == "on"
    assert document["answer"] == "yes"
    assert document["flag"] is True
    assert document["zero"] == 10
    assert document["hex"] == 31
    assert str(document["when"]) == "2026-06-30"
    assert line_of(document, "text") == 7
    assert isinstance(document["text"], LiteralText)


def test_conf_of_same_name_per_namespace(tmp_path):
    # Each tenant namespace holds a ConfigMap named odoo-conf; each Deployment
    # mounts its own namespace's one only.
    documents = "".join(
        "---\napiVersion: v1\nkind: ConfigMap\n"
        f"metadata:\n  name: odoo-conf\n  namespace: {tenant}\n"
        f"data:\n  odoo.conf: |\n    [options]\n    dbfilter = ^{tenant}$\n"
        "---\napiVersion: apps/v1\nkind: Deployment\n"
        f"metadata:\n  name: odoo\n  namespace: {tenant}\nspec:\n"
        "  template:\n    spec:\n"
        "      containers:\n        - name: odoo\n          image: odoo:17.0\n"
        "          volumeMounts:\n            - {name: conf, mountPath: /etc/odoo}\n"
        "      volumes:\n        - name: conf\n          configMap: {name: odoo-conf}\n"
        for tenant in ("alpha", "beta")
    )
    manifests = load(tmp_path, "k8s/odoo.yaml", documents)
    found = {
        server.workload.namespace: server.get("dbfilter").value
        for server in odoo_servers(manifests)
    }
    assert found == {"alpha": "^alpha$", "beta": "^beta$"}
