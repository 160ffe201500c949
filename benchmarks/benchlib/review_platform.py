"""A generated Odoo platform of any size, for benchmarking `odoo-dr review`.

The platform is laid out the way `examples/3pl-provider/` is: one `inventory.yaml`,
Kubernetes manifests in multi-document YAML files below `k8s/<environment>/`, and
one odoo.conf per tenant below `odoo/<environment>/`. Each tenant runs its own Odoo
in its own namespace (hybrid hosting over a shared PostgreSQL) and has exactly five
manifest documents:

1. a Deployment of Odoo 17 that mounts the filestore claim;
2. a Service with the HTTP and websocket ports;
3. an nginx Ingress or a Traefik IngressRoute, depending on the environment;
4. the PersistentVolumeClaim of the filestore;
5. an `odoo-dr backup` CronJob, or for some tenants a `pg_dump` CronJob or a
   NetworkPolicy instead.

Each environment adds a few shared documents: a CloudNativePG cluster (with Barman
backups and a ScheduledBackup where the environment has them), a Redis Deployment
and Service, a ConfigMap and a PrometheusRule.

Most tenants are set up correctly, but fixed shares of them carry one flaw that a
review rule reports, such as a moving image tag or an open database manager.
`GeneratedTenant.flaws` maps each planted flaw to the rule that reports it. Choices
depend only on the tenant's index, so the same size always gives the same platform.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

# The five documents each tenant has in its manifest file.
DOCUMENTS_PER_TENANT = 5
DEFAULT_TENANTS_PER_FILE = 25

# First words of tenant names. A tenant is called `<word>_<index>`.
SECTORS = (
    "retail",
    "pharma",
    "parts",
    "fashion",
    "foods",
    "freight",
    "hardware",
    "textiles",
    "medical",
    "garden",
)

# A flaw is planted in the tenants whose index gives this remainder for this
# divisor. The divisors are distinct primes, so flaws combine in many ways, and
# the remainders are below 12, so a platform of 12 tenants has every flaw once.
# Each flaw names the rule whose finding on the tenant must then fail.
FLAWS = {
    "moving image tag": (7, 3, "K8S-006"),
    "no websocket route": (11, 5, "K8S-001"),
    "database manager open": (13, 2, "SEC-001"),
    "proxy_mode not set": (17, 8, "K8S-002"),
    "filestore on an emptyDir": (19, 4, "FS-001"),
    "replicas on a ReadWriteOnce claim": (23, 10, "FS-002"),
    "claim on node-local storage": (29, 11, "FS-003"),
    "filestore not backed up": (31, 6, "COV-002"),
    "master password in clear": (37, 9, "SEC-003"),
    "no tier declared": (41, 1, "OBJ-001"),
}


@dataclass(frozen=True)
class EnvironmentPlan:
    """The plan of one environment of the generated platform."""

    name: str
    kind: str
    region: str
    # Share of all tenants that this environment serves.
    share: float
    # Tiers handed out in turn to the environment's tenants.
    tiers: tuple[str, ...]
    # `nginx` (Ingress) or `traefik` (IngressRoute).
    proxy: str
    postgres_instances: int
    # CloudNativePG Barman backups with WAL archiving, and a nightly base backup.
    barman: bool
    retention: str | None
    offsite: str | None
    # Hours between two odoo-dr backups, by tier. Other tiers are backed up daily.
    backup_hours: dict[str, int] = field(default_factory=dict)


ENVIRONMENTS = (
    EnvironmentPlan(
        name="production-eu",
        kind="production",
        region="eu-west-1",
        share=0.35,
        tiers=("critical", "high", "high", "standard", "standard", "standard"),
        proxy="nginx",
        postgres_instances=3,
        barman=True,
        retention="{daily: 14, weekly: 8, monthly: 12, yearly: 10, legal_min: 3650d}",
        offsite="{region: eu-central-1, account: backup-eu, residency: EU}",
        backup_hours={"critical": 1, "high": 4},
    ),
    EnvironmentPlan(
        name="production-us",
        kind="production",
        region="us-east-1",
        share=0.25,
        tiers=("critical", "high", "standard", "standard"),
        proxy="traefik",
        postgres_instances=2,
        barman=True,
        retention="{daily: 14, weekly: 8, monthly: 12}",
        offsite=None,
        backup_hours={"critical": 1, "high": 4},
    ),
    EnvironmentPlan(
        name="staging",
        kind="staging",
        region="eu-west-1",
        share=0.2,
        tiers=("standard", "low", "low"),
        proxy="traefik",
        postgres_instances=1,
        barman=True,
        retention="{daily: 7}",
        offsite=None,
    ),
    EnvironmentPlan(
        name="partner-sandbox",
        kind="partner-facing",
        region="eu-west-1",
        share=0.1,
        tiers=("low",),
        proxy="nginx",
        postgres_instances=1,
        barman=False,
        retention=None,
        offsite=None,
    ),
    EnvironmentPlan(
        name="development",
        kind="development",
        region="eu-west-1",
        share=0.1,
        tiers=("low",),
        proxy="traefik",
        postgres_instances=1,
        barman=False,
        retention="{daily: 3}",
        offsite=None,
    ),
)


@dataclass
class GeneratedTenant:
    name: str
    index: int
    environment: str
    tier: str
    namespace: str
    # Planted flaw and the rule that must report it as failed.
    flaws: dict[str, str] = field(default_factory=dict)


@dataclass
class GeneratedPlatform:
    root: Path
    inventory: Path
    tenants: list[GeneratedTenant]
    documents: int
    files: int
    bytes: int

    def summary(self) -> dict:
        environments: dict[str, int] = {}
        tiers: dict[str, int] = {}
        flaws: dict[str, int] = {}
        for tenant in self.tenants:
            environments[tenant.environment] = (
                environments.get(tenant.environment, 0) + 1
            )
            tier = "undeclared" if "no tier declared" in tenant.flaws else tenant.tier
            tiers[tier] = tiers.get(tier, 0) + 1
            for flaw in tenant.flaws:
                flaws[flaw] = flaws.get(flaw, 0) + 1
        return {
            "tenants": len(self.tenants),
            "documents": self.documents,
            "tenant_documents": len(self.tenants) * DOCUMENTS_PER_TENANT,
            "files": self.files,
            "bytes": self.bytes,
            "tenants_per_environment": environments,
            "tenants_per_tier": tiers,
            "tenants_per_flaw": flaws,
        }


def split_tenants(count: int) -> list[int]:
    """Return how many of `count` tenants each environment gets, by its share
    (largest remainder, so the counts add up to `count`)."""
    exact = [plan.share * count for plan in ENVIRONMENTS]
    counts = [int(value) for value in exact]
    by_remainder = sorted(
        range(len(exact)), key=lambda index: counts[index] - exact[index]
    )
    for index in by_remainder[: count - sum(counts)]:
        counts[index] += 1
    return counts


def plan_tenants(count: int) -> list[GeneratedTenant]:
    tenants = []
    index = 0
    for plan, size in zip(ENVIRONMENTS, split_tenants(count), strict=True):
        for position in range(size):
            name = f"{SECTORS[index % len(SECTORS)]}_{index:05d}"
            tenant = GeneratedTenant(
                name=name,
                index=index,
                environment=plan.name,
                tier=plan.tiers[position % len(plan.tiers)],
                namespace="odoo-" + name.replace("_", "-"),
            )
            for flaw, (divisor, remainder, rule_id) in FLAWS.items():
                if index % divisor == remainder:
                    tenant.flaws[flaw] = rule_id
            # Without a claim mounted, FS-003 has no storage class to report on.
            if "filestore on an emptyDir" in tenant.flaws:
                tenant.flaws.pop("claim on node-local storage", None)
            tenants.append(tenant)
            index += 1
    return tenants


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _replicas(tenant: GeneratedTenant) -> int:
    if "replicas on a ReadWriteOnce claim" in tenant.flaws:
        return 2
    return {"critical": 3, "high": 2}.get(tenant.tier, 1)


# -- one tenant's documents


def deployment(tenant: GeneratedTenant) -> str:
    if "moving image tag" in tenant.flaws:
        image = "odoo:17.0"
    else:
        image = (
            "registry.example.com/odoo/odoo:17.0-20261101"
            f"@sha256:{_digest('odoo 17.0-20261101')}"
        )
    if "filestore on an emptyDir" in tenant.flaws:
        filestore = "emptyDir: {}"
    else:
        filestore = "persistentVolumeClaim:\n            claimName: odoo-filestore"
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: odoo
  namespace: {tenant.namespace}
  labels:
    app.kubernetes.io/name: odoo
    app.kubernetes.io/instance: {tenant.name}
spec:
  replicas: {_replicas(tenant)}
  selector:
    matchLabels:
      app.kubernetes.io/name: odoo
  template:
    metadata:
      labels:
        app.kubernetes.io/name: odoo
        app.kubernetes.io/instance: {tenant.name}
    spec:
      securityContext:
        runAsUser: 101
        fsGroup: 101
      containers:
        - name: odoo
          image: {image}
          args: ["--config=/etc/odoo/odoo.conf"]
          ports:
            - {{name: http, containerPort: 8069}}
            - {{name: websocket, containerPort: 8072}}
          readinessProbe:
            httpGet:
              path: /web/health
              port: 8069
          resources:
            requests: {{cpu: 500m, memory: 1Gi}}
            limits: {{memory: 4Gi}}
          volumeMounts:
            - name: odoo-conf
              mountPath: /etc/odoo
              readOnly: true
            - name: filestore
              mountPath: /var/lib/odoo
      volumes:
        - name: odoo-conf
          secret:
            secretName: odoo-conf
        - name: filestore
          {filestore}
"""


def service(tenant: GeneratedTenant) -> str:
    return f"""\
apiVersion: v1
kind: Service
metadata:
  name: odoo
  namespace: {tenant.namespace}
spec:
  selector:
    app.kubernetes.io/name: odoo
  ports:
    - {{name: http, port: 8069, targetPort: http}}
    - {{name: websocket, port: 8072, targetPort: websocket}}
"""


def _host(tenant: GeneratedTenant) -> str:
    return f"{tenant.namespace.removeprefix('odoo-')}.{tenant.environment}.example.com"


def ingress(tenant: GeneratedTenant) -> str:
    host = _host(tenant)
    websocket = ""
    if "no websocket route" not in tenant.flaws:
        websocket = """\
          - path: /websocket
            pathType: Prefix
            backend:
              service:
                name: odoo
                port:
                  name: websocket
"""
    return f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: odoo
  namespace: {tenant.namespace}
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: 64m
    nginx.ingress.kubernetes.io/server-snippet: |
      location ~* ^/web/database {{ deny all; }}
spec:
  ingressClassName: nginx
  tls:
    - hosts: [{host}]
      secretName: odoo-tls
  rules:
    - host: {host}
      http:
        paths:
{websocket}\
          - path: /
            pathType: Prefix
            backend:
              service:
                name: odoo
                port:
                  name: http
"""


def ingress_route(tenant: GeneratedTenant) -> str:
    host = _host(tenant)
    websocket = ""
    if "no websocket route" not in tenant.flaws:
        websocket = f"""\
    - kind: Rule
      match: Host(`{host}`) && PathPrefix(`/websocket`)
      services:
        - name: odoo
          port: 8072
"""
    return f"""\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: odoo
  namespace: {tenant.namespace}
spec:
  entryPoints: [websecure]
  routes:
    - kind: Rule
      match: Host(`{host}`) && PathPrefix(`/web/database`)
      priority: 1000
      middlewares:
        - name: admin-network-only
          namespace: traefik
      services:
        - name: odoo
          port: 8069
{websocket}\
    - kind: Rule
      match: Host(`{host}`)
      services:
        - name: odoo
          port: 8069
  tls:
    secretName: odoo-tls
"""


def claim(tenant: GeneratedTenant) -> str:
    if "claim on node-local storage" in tenant.flaws:
        mode, storage_class = "ReadWriteOnce", "local-path"
    elif "replicas on a ReadWriteOnce claim" in tenant.flaws:
        mode, storage_class = "ReadWriteOnce", "gp3"
    else:
        mode, storage_class = "ReadWriteMany", "cephfs"
    return f"""\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: odoo-filestore
  namespace: {tenant.namespace}
spec:
  accessModes: [{mode}]
  storageClassName: {storage_class}
  resources:
    requests:
      storage: 50Gi
"""


def _cron_job(tenant: GeneratedTenant, name: str, schedule: str, body: str) -> str:
    return f"""\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
  namespace: {tenant.namespace}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/instance: {tenant.name}
spec:
  schedule: "{schedule}"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      backoffLimit: 1
      template:
        spec:
          restartPolicy: Never
{body}"""


def backup_job(tenant: GeneratedTenant, plan: EnvironmentPlan) -> str:
    """Return the tenant's fifth document: its backup job, or a NetworkPolicy for
    a tenant whose filestore is not backed up."""
    minute = tenant.index % 60
    if "filestore not backed up" in tenant.flaws:
        if tenant.index % 2:
            return network_policy(tenant)
        # A database dump alone: the attachments are not copied.
        return _cron_job(
            tenant,
            "pg-dump",
            f"{minute} 1 * * *",
            f"""\
          containers:
            - name: pg-dump
              image: postgres:16.4
              command:
                - sh
                - -c
                - pg_dump -Fc -d {tenant.name} -f /backup/{tenant.name}.dump
              env:
                - {{name: PGHOST, value: odoo-pg-rw.platform-db}}
                - {{name: PGUSER, value: backup}}
              volumeMounts:
                - {{name: backup, mountPath: /backup}}
          volumes:
            - name: backup
              persistentVolumeClaim:
                claimName: pg-dumps
""",
        )
    hours = plan.backup_hours.get(tenant.tier, 24)
    schedule = f"{minute} */{hours} * * *" if hours < 24 else f"{minute} 2 * * *"
    return _cron_job(
        tenant,
        "odoo-dr-backup",
        schedule,
        f"""\
          containers:
            - name: odoo-dr
              image: registry.example.com/odoo-dr:0.1
              command:
                - odoo-dr
                - backup
                - {tenant.name}
                - --odoo-config
                - /etc/odoo/odoo.conf
                - --strict
              env:
                - {{name: ODOO_DR_REPO, value: /repository}}
              volumeMounts:
                - {{name: odoo-conf, mountPath: /etc/odoo, readOnly: true}}
                - {{name: filestore, mountPath: /var/lib/odoo, readOnly: true}}
                - {{name: repository, mountPath: /repository}}
          volumes:
            - name: odoo-conf
              secret:
                secretName: odoo-conf
            - name: filestore
              persistentVolumeClaim:
                claimName: odoo-filestore
            - name: repository
              nfs:
                server: backup.example.com
                path: /export/odoo-dr
""",
    )


def network_policy(tenant: GeneratedTenant) -> str:
    return f"""\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: odoo-from-ingress
  namespace: {tenant.namespace}
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: odoo
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: ingress
"""


def tenant_documents(tenant: GeneratedTenant, plan: EnvironmentPlan) -> list[str]:
    route = ingress(tenant) if plan.proxy == "nginx" else ingress_route(tenant)
    return [
        deployment(tenant),
        service(tenant),
        route,
        claim(tenant),
        backup_job(tenant, plan),
    ]


def odoo_conf(tenant: GeneratedTenant, plan: EnvironmentPlan) -> str:
    lines = [
        f"; odoo.conf of {tenant.name}, in the Secret odoo-conf of {tenant.namespace}",
        "[options]",
        "addons_path = /usr/lib/python3/dist-packages/odoo/addons,/mnt/extra-addons",
        "data_dir = /var/lib/odoo",
        f"db_host = odoo-pg-rw.{plan.name}-db.svc.cluster.local",
        "db_port = 5432",
        f"db_user = {tenant.name}",
        "db_password = <from-secret-store>",
        f"db_name = {tenant.name}",
        f"dbfilter = ^{tenant.name}$",
        "list_db = " + ("True" if "database manager open" in tenant.flaws else "False"),
    ]
    if "master password in clear" in tenant.flaws:
        lines.append(f"admin_passwd = {_digest(tenant.name)[:20]}")
    else:
        salt = _digest("salt " + tenant.name)[:22]
        lines.append(
            f"admin_passwd = $pbkdf2-sha512$600000${salt}${_digest(tenant.name)}"
        )
    if "proxy_mode not set" not in tenant.flaws:
        lines.append("proxy_mode = True")
    lines += ["workers = 4", "max_cron_threads = 1", "limit_time_real = 1200"]
    return "\n".join(lines) + "\n"


# -- shared documents of an environment


def platform_documents(plan: EnvironmentPlan) -> list[str]:
    namespace = f"{plan.name}-db"
    backup = ""
    if plan.barman:
        backup = f"""\
  backup:
    retentionPolicy: 30d
    barmanObjectStore:
      destinationPath: s3://{plan.name}-pg-backups/odoo-pg
      s3Credentials:
        inheritFromIAMRole: true
      wal:
        compression: gzip
      data:
        compression: gzip
"""
    documents = [
        f"""\
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: odoo-pg
  namespace: {namespace}
spec:
  instances: {plan.postgres_instances}
  imageName: ghcr.io/cloudnative-pg/postgresql:16.4
  enableSuperuserAccess: false
  postgresql:
    parameters:
      max_connections: "800"
      archive_timeout: 5min
  storage:
    storageClass: gp3
    size: 2Ti
{backup}"""
    ]
    if plan.barman:
        documents.append(
            f"""\
apiVersion: postgresql.cnpg.io/v1
kind: ScheduledBackup
metadata:
  name: odoo-pg-nightly
  namespace: {namespace}
spec:
  schedule: "0 15 1 * * *"
  backupOwnerReference: self
  method: barmanObjectStore
  cluster:
    name: odoo-pg
"""
        )
    documents += [
        f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: redis-sessions
  namespace: {namespace}
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: redis-sessions
  template:
    metadata:
      labels:
        app.kubernetes.io/name: redis-sessions
    spec:
      containers:
        - name: redis
          image: redis:7.4
          args: ["--appendonly", "yes", "--appendfsync", "everysec"]
          ports:
            - containerPort: 6379
          volumeMounts:
            - {{name: data, mountPath: /data}}
      volumes:
        - name: data
          persistentVolumeClaim:
            claimName: redis-sessions
""",
        f"""\
apiVersion: v1
kind: Service
metadata:
  name: redis-sessions
  namespace: {namespace}
spec:
  selector:
    app.kubernetes.io/name: redis-sessions
  ports:
    - {{port: 6379}}
""",
        f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: backup-policy
  namespace: {namespace}
data:
  policy.json: |
    {{"environment": "{plan.name}", "repository": "/export/odoo-dr", "keep_daily": 14}}
""",
        f"""\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: odoo-backup
  namespace: monitoring
spec:
  groups:
    - name: backups
      rules:
        # Sized for the daily jobs: it stays quiet for a day of missed hourly ones.
        - alert: OdooDrBackupStale
          expr: >-
            time() -
            kube_cronjob_status_last_successful_time{{cronjob="odoo-dr-backup"}}
            > 26 * 3600
          for: 30m
          labels:
            severity: critical
        - alert: PostgresBaseBackupTooOld
          expr: >-
            time() -
            cnpg_collector_last_available_backup_timestamp{{namespace="{namespace}"}}
            > 30 * 3600
          for: 15m
          labels:
            severity: warning
        - alert: PostgresWalArchiveStale
          expr: >-
            cnpg_pg_stat_archiver_seconds_since_last_archival{{namespace="{namespace}"}}
            > 600
          for: 5m
          labels:
            severity: critical
        - alert: PostgresExporterDown
          expr: cnpg_collector_up{{namespace="{namespace}"}} == 0
          for: 5m
          labels:
            severity: critical
""",
    ]
    return documents


# -- the inventory


def _tenant_entry(tenant: GeneratedTenant) -> str:
    fields = [f"name: {tenant.name}"]
    if "no tier declared" not in tenant.flaws:
        fields.append(f"tier: {tenant.tier}")
    if tenant.tier == "critical":
        fields += ["customization: high", "integration_load: high"]
    elif tenant.tier == "high":
        fields += ["customization: medium", "integration_load: medium"]
    else:
        fields.append("customization: low")
    if tenant.name.startswith(("pharma", "medical")):
        fields.append("regulated: true")
    if tenant.index % 4 == 0:
        fields.append("redis_role: [sessions]")
    if tenant.index % 5 == 0:
        fields.append(f"runbook: https://wiki.example.com/runbooks/{tenant.namespace}")
    if tenant.index % 9 == 1:
        fields.append("objectives: {logical_corruption: {rto: 2h, rpo: 30m}}")
    if tenant.index % 6 == 2:
        fields.append("integrations: [{kind: edi, name: EDIFACT over AS2}]")
    return "      - {" + ", ".join(fields) + "}\n"


def inventory_text(tenants: list[GeneratedTenant]) -> str:
    lines = [
        "# Generated by benchmarks/benchlib/review_platform.py.\n",
        "version: 1\n",
        f"platform: Benchmark platform with {len(tenants)} tenants\n",
        "environments:\n",
    ]
    for plan in ENVIRONMENTS:
        lines += [
            f"  - name: {plan.name}\n",
            f"    kind: {plan.kind}\n",
            f"    region: {plan.region}\n",
            "    hosting: hybrid\n",
            "    evidence:\n",
            f"      manifests: [k8s/{plan.name}, odoo/{plan.name}]\n",
            "    services:\n",
            "      - {name: odoo-pg, kind: postgres, role: CloudNativePG cluster}\n",
            "      - {name: redis-sessions, kind: redis, role: sessions}\n",
        ]
        if plan.retention:
            lines.append(f"    retention: {plan.retention}\n")
        if plan.offsite:
            lines.append(f"    offsite: {plan.offsite}\n")
        if plan.kind == "production":
            lines.append(
                "    runbooks: [https://wiki.example.com/runbooks/odoo-restore]\n"
            )
        own = [tenant for tenant in tenants if tenant.environment == plan.name]
        if own:
            lines.append("    tenants:\n")
            lines += [_tenant_entry(tenant) for tenant in own]
    return "".join(lines)


# -- findings of the generated tenants


def _resource_tenant(
    resource: str, namespaces: dict[str, str], names: set[str]
) -> str | None:
    """Return the tenant a finding's resource belongs to: `Kind/NAMESPACE/name`
    in the tenant's namespace, its odoo.conf file, or its database role."""
    parts = resource.split("/")
    if len(parts) == 3 and parts[1] in namespaces:
        return namespaces[parts[1]]
    if resource.endswith(".conf") and Path(resource).stem in names:
        return Path(resource).stem
    if len(parts) == 2 and parts[0] == "role" and parts[1] in names:
        return parts[1]
    return None


def tenant_findings(
    findings: list[dict], tenants: list[GeneratedTenant]
) -> dict[str, list[dict]]:
    """Group the findings of a JSON review report by generated tenant. Findings
    about shared resources (the PostgreSQL cluster, retention) are left out."""
    grouped: dict[str, list[dict]] = {tenant.name: [] for tenant in tenants}
    namespaces = {tenant.namespace: tenant.name for tenant in tenants}
    names = set(grouped)
    for finding in findings:
        name = finding.get("tenant")
        if name not in grouped:
            name = _resource_tenant(finding.get("resource") or "", namespaces, names)
        if name is not None:
            grouped[name].append(finding)
    return grouped


# -- writing it all


def _write_documents(path: Path, documents: list[str]) -> int:
    text = "---\n".join(documents)
    path.write_text(text, encoding="utf-8")
    return len(text.encode())


def generate_platform(
    root: Path, tenants: int, tenants_per_file: int = DEFAULT_TENANTS_PER_FILE
) -> GeneratedPlatform:
    """Write a platform of `tenants` tenants below `root`, which must not exist or
    be empty, and return what was written."""
    if tenants < 1:
        raise ValueError(f"invalid tenant count {tenants}: at least 1 is needed")
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty: give an empty or new folder")

    planned = plan_tenants(tenants)
    documents = files = size = 0
    for plan in ENVIRONMENTS:
        manifests = root / "k8s" / plan.name
        confs = root / "odoo" / plan.name
        manifests.mkdir(parents=True)
        confs.mkdir(parents=True)
        shared = platform_documents(plan)
        size += _write_documents(manifests / "platform.yaml", shared)
        documents += len(shared)
        files += 1
        own = [tenant for tenant in planned if tenant.environment == plan.name]
        for start in range(0, len(own), tenants_per_file):
            batch = own[start : start + tenants_per_file]
            written = [
                document
                for tenant in batch
                for document in tenant_documents(tenant, plan)
            ]
            number = start // tenants_per_file + 1
            size += _write_documents(manifests / f"tenants-{number:03d}.yaml", written)
            documents += len(written)
            files += 1
        for tenant in own:
            text = odoo_conf(tenant, plan)
            (confs / f"{tenant.name}.conf").write_text(text, encoding="utf-8")
            size += len(text.encode())
            files += 1

    inventory = root / "inventory.yaml"
    text = inventory_text(planned)
    inventory.write_text(text, encoding="utf-8")
    return GeneratedPlatform(
        root=root,
        inventory=inventory,
        tenants=planned,
        documents=documents,
        files=files + 1,
        bytes=size + len(text.encode()),
    )
