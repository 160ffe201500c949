"""`odoo-dr review init`: a starting inventory from files and the live PostgreSQL."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import psycopg
import pytest
from tests.conftest import admin_connection

from odoo_dr.review.discover import (
    dbfilter_pattern,
    discover_files,
    environment_word,
    literal_dbfilter,
)
from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.inventory import EnvironmentKind, load_inventory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def distributor(tmp_path: Path) -> Path:
    """The regional-distributor example without its inventory."""
    folder = tmp_path / "platform"
    shutil.copytree(EXAMPLES / "regional-distributor", folder)
    (folder / "inventory.yaml").unlink()
    return folder


def tenants_of(inventory, environment: str) -> list[str]:
    for item in inventory.environments:
        if item.name == environment:
            return [tenant.name for tenant in item.tenants]
    raise AssertionError(f"no environment {environment}")


def flat(text: str) -> str:
    """Return `text` with wrapped comment lines joined, for substring checks."""
    return re.sub(r"\n\s*#\s+", " ", text)


def environment(inventory, name: str):
    return next(item for item in inventory.environments if item.name == name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("production", "production"),
        ("prod", "production"),
        ("odoo-prod", "production"),
        ("production-rules", "production"),
        ("staging", "staging"),
        ("stg", "staging"),
        ("partner-sandbox", "partner-sandbox"),
        ("k8s", None),
        ("tenants", None),
        ("product", None),
    ],
)
def test_environment_word(text, expected):
    assert environment_word(text) == expected


def test_dbfilter_helpers():
    assert literal_dbfilter("^acme_retail$") == "acme_retail"
    assert literal_dbfilter("acme$") == "acme"
    assert literal_dbfilter("^%d$") is None
    assert literal_dbfilter(".*") is None
    production = dbfilter_pattern("^nordwind_%d$")
    assert production.match("nordwind_de")
    assert not production.match("nordwind_de_staging")
    assert dbfilter_pattern("^(unclosed$") is None


def test_init_offline_groups_environments(cli, distributor):
    result = cli("review", "init", str(distributor), "--no-live")
    assert result.returncode == 0, result.stderr
    path = distributor / "inventory.yaml"
    inventory, _base = load_inventory(path)
    names = [item.name for item in inventory.environments]
    assert names == ["production", "staging"]
    production = environment(inventory, "production")
    assert production.kind == EnvironmentKind.PRODUCTION
    assert production.evidence.manifests == ["k8s/production"]
    assert production.evidence.odoo_conf == ["odoo/production.conf"]
    assert production.evidence.prometheus_rules == ["prometheus"]
    assert production.hosting == "multi-tenant"
    assert {service.name for service in production.services} == {
        "odoo-pg",
        "redis-sessions",
    }
    staging = environment(inventory, "staging")
    assert staging.kind == EnvironmentKind.STAGING
    assert staging.evidence.manifests == ["k8s/staging"]
    text = flat(path.read_text())
    assert "TODO: dbfilter ^nordwind_%d$ (odoo/production.conf:11)" in text
    assert "residency" in text
    assert "wrote" in result.stderr


def test_init_output_reviews_offline(distributor):
    from odoo_dr.cli.review_init import render_inventory

    discovery = discover_files(distributor)
    text = render_inventory(discovery, distributor, "inventory.yaml", _today())
    write(distributor / "inventory.yaml", text)
    result = run_review(distributor, ReviewOptions(live=False))
    assert result.findings
    assert not result.evidence_problems


def _today():
    from datetime import date

    return date(2026, 12, 4)


def test_init_keeps_existing_file(cli, distributor):
    path = write(distributor / "inventory.yaml", "# mine\n")
    refused = cli("review", "init", str(distributor), "--no-live")
    assert refused.returncode == 2
    assert "exists" in refused.stderr
    assert "--force" in refused.stderr
    assert path.read_text() == "# mine\n"
    forced = cli("review", "init", str(distributor), "--no-live", "--force")
    assert forced.returncode == 0, forced.stderr
    assert path.read_text().startswith("# Starting inventory")


def test_init_other_output_paths_relative(cli, distributor, tmp_path):
    output = tmp_path / "reviews" / "nordwind.yaml"
    output.parent.mkdir()
    result = cli("review", "init", str(distributor), "--no-live", "-o", str(output))
    assert result.returncode == 0, result.stderr
    inventory, base = load_inventory(output)
    production = environment(inventory, "production")
    assert production.evidence.manifests == ["../platform/k8s/production"]
    review = run_review(output, ReviewOptions(live=False))
    assert not review.evidence_problems


def test_init_to_stdout(cli, distributor):
    result = cli("review", "init", str(distributor), "--no-live", "-o", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Starting inventory")
    assert not (distributor / "inventory.yaml").exists()


def test_init_tenants_from_files(cli, tmp_path):
    folder = tmp_path / "site"
    write(
        folder / "odoo" / "acme.conf",
        "[options]\ndb_name = acme_retail\ndbfilter = ^acme_retail$\nlist_db = False\n",
    )
    write(folder / "odoo" / "globex.conf", "[options]\ndbfilter = ^globex$\n")
    write(
        folder / "odoo" / "shared.conf",
        "[options]\ndb_name = yes,0123,Trial Copy\n",
    )
    write(
        folder / "k8s" / "backup.yaml",
        """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: odoo-dr-backup
  namespace: tenant-umbrella
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: odoo-dr
              image: odoo-dr:1
              command: ["odoo-dr", "backup", "umbrella_fashion", "--strict"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: initech
spec:
  template:
    spec:
      containers:
        - name: odoo
          image: odoo:17.0
          args: ["--database=initech_parts", "--db-filter=^initech_parts$"]
""",
    )
    write(
        folder / "compose" / "sandbox.yml",
        "services:\n  odoo:\n    image: bitnami/odoo:17\n"
        "    environment:\n      ODOO_DATABASE_NAME: sandbox_acme\n",
    )
    result = cli("review", "init", str(folder), "--no-live")
    assert result.returncode == 0, result.stderr
    inventory, _base = load_inventory(folder / "inventory.yaml")
    assert sorted(tenants_of(inventory, "production")) == [
        "0123",
        "Trial Copy",
        "acme_retail",
        "globex",
        "initech_parts",
        "umbrella_fashion",
        "yes",
    ]
    assert tenants_of(inventory, "sandbox") == ["sandbox_acme"]
    sandbox = environment(inventory, "sandbox")
    assert sandbox.kind == EnvironmentKind.PARTNER
    assert sandbox.evidence.compose == ["compose"]
    text = flat((folder / "inventory.yaml").read_text())
    assert (
        "found in: CronJob/tenant-umbrella/odoo-dr-backup (k8s/backup.yaml:1)" in text
    )


def test_discover_tenants_of_compose_loop_and_operator(tmp_path):
    write(
        tmp_path / "sandbox" / "docker-compose.yml",
        "services:\n  backup:\n    image: registry.example.com/odoo-dr:0.9\n"
        "    entrypoint: [/bin/sh, -c]\n"
        "    command:\n      - >-\n        while true; do\n"
        '        for db in sandbox_acme sandbox_beta; do odoo-dr backup "$$db"; done;\n'
        "        sleep 86400; done\n",
    )
    write(
        tmp_path / "production" / "shop.yaml",
        "apiVersion: apps.example.net/v1\nkind: OdooDeployment\n"
        "metadata: {name: shop, namespace: erp}\n"
        "spec:\n  image: odoo:17.0\n  database: {host: pg, name: shop_prod}\n",
    )
    discovery = discover_files(tmp_path)
    tenants = {item.name: sorted(item.tenants) for item in discovery.environments}
    assert tenants == {
        "sandbox": ["sandbox_acme", "sandbox_beta"],
        "production": ["shop_prod"],
    }


def test_init_names_unreadable_files(cli, tmp_path):
    folder = tmp_path / "chart"
    write(folder / "Chart.yaml", "apiVersion: v2\nname: odoo\nversion: 1.0.0\n")
    write(
        folder / "templates" / "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
        '  name: {{ include "odoo.fullname" . }}\n'
        "spec:\n  {{- if .Values.replicas }}\n  replicas: 2\n  {{- end }}\n",
    )
    result = cli("review", "init", str(folder), "--no-live")
    assert result.returncode == 0, result.stderr
    text = flat((folder / "inventory.yaml").read_text())
    assert "a Helm chart, whose templates (deployment.yaml)" in text
    assert "run `helm template NAME . -f values.yaml > rendered.yaml`" in text
    inventory, _base = load_inventory(folder / "inventory.yaml")
    assert tenants_of(inventory, "production") == []


@pytest.fixture
def live_databases(database_names, unique):
    """Databases on the local server: two Odoo ones per environment, one that is not
    Odoo, and a template."""
    prefix = f"odoo_dr_init_{unique}"
    odoo = [f"{prefix}_de", f"{prefix}_at", f"{prefix}_de_staging"]
    other = f"{prefix}_metabase"
    template = f"{prefix}_template"
    database_names.extend([*odoo, other, template])
    with admin_connection() as connection:
        for name in [*odoo, other, template]:
            connection.execute(f'CREATE DATABASE "{name}"')
        connection.execute(f'ALTER DATABASE "{template}" WITH IS_TEMPLATE true')
    for name in [*odoo, template]:
        with psycopg.connect(dbname=name, autocommit=True) as connection:
            connection.execute(
                "CREATE TABLE ir_module_module (id serial, name varchar, state varchar,"
                " latest_version varchar)"
            )
            connection.execute(
                "INSERT INTO ir_module_module (name, state, latest_version) VALUES"
                " ('base', 'installed', '17.0.1.3'),"
                " ('stock', 'installed', '17.0.1.1'), ('mrp', 'uninstalled', NULL)"
            )
    return prefix


def test_init_live_databases(cli, tmp_path, live_databases):
    prefix = live_databases
    folder = tmp_path / "site"
    write(folder / "production" / "odoo.conf", f"[options]\ndbfilter = ^{prefix}_%d$\n")
    write(
        folder / "staging" / "odoo.conf",
        f"[options]\ndbfilter = ^{prefix}_%d_staging$\n",
    )
    result = cli("review", "init", str(folder))
    assert result.returncode == 0, result.stderr
    assert "Odoo databases on host=" in result.stderr
    inventory, _base = load_inventory(folder / "inventory.yaml")
    production = [
        name for name in tenants_of(inventory, "production") if name.startswith(prefix)
    ]
    assert sorted(production) == [f"{prefix}_at", f"{prefix}_de"]
    assert tenants_of(inventory, "staging") == [f"{prefix}_de_staging"]
    staging = environment(inventory, "staging")
    assert "port=5432" in staging.evidence.postgres_dsn
    assert "password" not in staging.evidence.postgres_dsn
    text = flat((folder / "inventory.yaml").read_text())
    assert "(Odoo 17.0.1.3, 2 modules installed," in text
    assert f"{prefix}_metabase" not in text
    assert f"{prefix}_template" not in text


def test_init_live_with_dsn(cli, tmp_path, live_databases):
    folder = tmp_path / "empty"
    folder.mkdir()
    result = cli(
        "review",
        "init",
        str(folder),
        "--dsn",
        "postgresql://postgres@127.0.0.1:5432/ignored",
    )
    assert result.returncode == 0, result.stderr
    inventory, _base = load_inventory(folder / "inventory.yaml")
    names = tenants_of(inventory, "production")
    assert f"{live_databases}_de_staging" in names
    assert f"{live_databases}_metabase" not in names
    production = environment(inventory, "production")
    assert production.evidence.postgres_dsn.startswith("host=127.0.0.1 port=5432")


def test_init_unreachable_server_still_writes(cli, tmp_path):
    folder = tmp_path / "site"
    write(folder / "odoo.conf", "[options]\ndb_name = acme\n")
    result = cli(
        "review",
        "init",
        str(folder),
        "--dsn",
        "host=127.0.0.1 port=1 connect_timeout=3",
    )
    assert result.returncode == 0, result.stderr
    assert "PostgreSQL not read" in result.stderr
    text = flat((folder / "inventory.yaml").read_text())
    assert "NOTE: PostgreSQL not read:" in text
    inventory, _base = load_inventory(folder / "inventory.yaml")
    assert tenants_of(inventory, "production") == ["acme"]


def test_init_invalid_dsn_rejected(cli, tmp_path):
    result = cli("review", "init", str(tmp_path), "--dsn", "host=127.0.0.1 nonsense")
    assert result.returncode == 2
    assert "invalid --dsn" in result.stderr
    assert not (tmp_path / "inventory.yaml").exists()


def test_init_output_folder_missing(cli, distributor, tmp_path):
    output = tmp_path / "missing" / "inventory.yaml"
    result = cli("review", "init", str(distributor), "--no-live", "-o", str(output))
    assert result.returncode == 2
    assert "not found" in result.stderr
    assert not output.exists()
