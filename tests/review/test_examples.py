"""The example platforms, the inventory documentation and its JSON Schema."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.evidence.manifests import YAML_SUFFIXES
from odoo_dr.review.inventory import (
    DEFAULT_TIERS,
    Disruption,
    Environment,
    EvidenceSources,
    Inventory,
    Objective,
    OffsiteCopy,
    PriceTable,
    Retention,
    S3Evidence,
    Schedule,
    Service,
    Tenant,
    Tier,
    format_duration,
    json_schema,
    load_inventory,
)
from odoo_dr.review.reports import FORMATS, renderer
from odoo_dr.review.suppressions import load_suppressions

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NAMES = ("regional-distributor", "3pl-provider")
# The live sources the examples name are hosts that do not exist here. These settings
# make any attempt to reach PostgreSQL or S3 fail at once instead of waiting.
NO_SERVER = {"PGHOST": "/nonexistent", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}


def review(name: str):
    folder = EXAMPLES / name
    suppressions = folder / "suppressions.yaml"
    accepted = tuple(load_suppressions(suppressions)) if suppressions.exists() else ()
    return run_review(folder, ReviewOptions(live=False, suppressions=accepted))


def outcomes(result, rule: str) -> dict[str, str]:
    """Return target -> pass, fail or suppressed for every finding of `rule`."""
    found = {}
    for finding in result.findings:
        if finding.rule.id != rule:
            continue
        if finding.passed:
            status = "pass"
        elif finding.suppressed_by is not None:
            status = "suppressed"
        else:
            status = "fail"
        found[finding.target] = status
    return found


@pytest.mark.parametrize("name", NAMES)
def test_example_inventory_loads(name):
    inventory, _base = load_inventory(EXAMPLES / name / "inventory.yaml")
    assert len(inventory.environments) >= 2
    assert sum(len(item.tenants) for item in inventory.environments) >= 5


@pytest.mark.parametrize("name", NAMES)
def test_example_files_all_referenced(name):
    """Every manifest of an example is named by its inventory, and every path the
    inventory names exists."""
    folder = EXAMPLES / name
    inventory, _base = load_inventory(folder / "inventory.yaml")
    named = []
    for environment in inventory.environments:
        sources = environment.evidence
        for path in [
            *sources.manifests,
            *sources.compose,
            *sources.odoo_conf,
            *sources.prometheus_rules,
        ]:
            assert (folder / path).exists(), f"{name}: {path} not found"
            named.append((folder / path).resolve())
    for path in folder.rglob("*"):
        if path.name in ("inventory.yaml", "suppressions.yaml") or not path.is_file():
            continue
        if path.suffix not in (*YAML_SUFFIXES, ".conf"):
            continue
        resolved = path.resolve()
        assert any(resolved == item or item in resolved.parents for item in named), (
            f"{path.relative_to(folder)} is not named by the inventory"
        )


@pytest.mark.parametrize("name", NAMES)
def test_example_reviews_without_server(name):
    result = review(name)
    assert result.evidence_problems == []
    passed = [item for item in result.findings if item.passed]
    failed = result.failed()
    assert len(passed) >= 20, f"{name}: only {len(passed)} checks passed"
    assert 3 <= len(failed) < len(passed), (
        f"{name}: {len(failed)} failed, {len(passed)} passed"
    )


def test_distributor_findings():
    result = review("regional-distributor")
    manager = {
        target.split("/", 1)[0]: status
        for target, status in outcomes(result, "SEC-001").items()
    }
    assert manager == {"production": "pass", "staging": "fail"}
    database = outcomes(result, "COV-001")
    for tenant in ("nordwind_de", "nordwind_at", "nordwind_ch"):
        assert database[f"production/{tenant}"] == "pass"
    filestore = outcomes(result, "COV-002")
    for tenant in ("nordwind_de_staging", "nordwind_at_staging", "nordwind_ch_staging"):
        assert filestore[f"staging/{tenant}"] == "suppressed"


def test_provider_findings():
    result = review("3pl-provider")
    filestore = outcomes(result, "COV-002")
    assert filestore["production/umbrella_fashion"] == "fail"
    for tenant in ("acme_retail", "globex_pharma", "initech_parts", "polaris_internal"):
        assert filestore[f"production/{tenant}"] == "pass"
    database = outcomes(result, "COV-001")
    assert database["production/umbrella_fashion"] == "pass"
    hashed = {
        target.rsplit("/", 1)[-1]: status
        for target, status in outcomes(result, "SEC-003").items()
    }
    assert hashed["initech_parts.conf"] == "fail"
    assert hashed["acme_retail.conf"] == "pass"
    manager = {
        target.split("/", 1)[0]: status
        for target, status in outcomes(result, "SEC-001").items()
        if status == "fail"
    }
    assert manager == {"partner-sandbox": "fail"}


def _format_exists(name: str) -> bool:
    try:
        renderer(name)
    except ModuleNotFoundError:
        return False
    return True


def check_report(name: str, text: str) -> None:
    assert text.strip(), f"empty {name} report"
    if name in ("json", "sarif"):
        document = json.loads(text)
        if name == "sarif":
            assert document["version"] == "2.1.0"
            assert document["runs"][0]["results"]
        else:
            assert document["findings"]
    elif name == "junit":
        root = ElementTree.fromstring(text)
        assert list(root.iter("testcase"))
    elif name == "html":
        assert "<html" in text.lower()


@pytest.mark.parametrize("report_format", FORMATS)
@pytest.mark.parametrize("name", NAMES)
def test_example_every_format(cli, tmp_path, name, report_format):
    if not _format_exists(report_format):
        pytest.skip(f"the {report_format} report is not written yet")
    output = tmp_path / f"review.{report_format}"
    arguments = ["review", str(EXAMPLES / name), "--no-live"]
    arguments += ["--format", report_format, "--output", str(output)]
    suppressions = EXAMPLES / name / "suppressions.yaml"
    if suppressions.exists():
        arguments += ["--suppressions", str(suppressions)]
    result = cli(*arguments, env=NO_SERVER)
    assert result.returncode == 0, result.stderr
    check_report(report_format, output.read_text())


def test_schema_file_up_to_date():
    path = ROOT / "docs" / "inventory.schema.json"
    assert json.loads(path.read_text()) == json_schema(), (
        "docs/inventory.schema.json is out of date: regenerate it with "
        "`odoo-dr review schema > docs/inventory.schema.json`"
    )


def test_docs_name_every_field():
    text = (ROOT / "docs" / "inventory.md").read_text()
    models = (
        Inventory,
        Tier,
        Objective,
        Environment,
        EvidenceSources,
        S3Evidence,
        Tenant,
        Service,
        Retention,
        OffsiteCopy,
        Schedule,
        PriceTable,
    )
    missing = [
        f"{model.__name__}.{info.alias or field}"
        for model in models
        for field, info in model.model_fields.items()
        if f"`{info.alias or field}`" not in text
    ]
    assert missing == [], f"docs/inventory.md does not describe: {missing}"


def test_docs_default_tiers():
    text = (ROOT / "docs" / "inventory.md").read_text()
    for name, tier in DEFAULT_TIERS.items():
        cells = [name]
        for disruption in Disruption:
            objective = tier.objectives[disruption]
            rto, rpo = format_duration(objective.rto), format_duration(objective.rpo)
            cells.append(f"{rto} / {rpo}")
        cells += [
            format_duration(tier.drill_every),
            "yes" if tier.needs_pitr else "no",
            str(tier.min_replicas),
        ]
        row = "| " + " | ".join(cells) + " |"
        assert row in text, f"docs/inventory.md: expected the row {row}"


REAL_SHAPES = Path(__file__).resolve().parent / "fixtures" / "real-shapes"
SHAPES = sorted(path.name for path in REAL_SHAPES.iterdir() if path.is_dir())


def test_real_shapes_present():
    assert SHAPES == [
        "broken-multidoc",
        "compose-v2",
        "helm-chart",
        "helm-rendered",
        "operator-crs",
    ]


@pytest.mark.parametrize("shape", SHAPES)
def test_real_shape_reviews(shape):
    result = run_review(REAL_SHAPES / shape, ReviewOptions(live=False))
    assert result.findings, f"{shape}: no finding at all"
    for finding in result.findings:
        location = finding.location
        if location is not None:
            assert Path(location.file).exists(), f"{shape}: {location}"
    for name in FORMATS:
        if _format_exists(name):
            assert renderer(name)(result).strip(), f"{shape}: empty {name} report"


@pytest.mark.parametrize("shape", SHAPES)
def test_real_shape_init_loads(shape, tmp_path):
    from datetime import date

    from odoo_dr.cli.review_init import render_inventory
    from odoo_dr.review.discover import discover_files

    discovery = discover_files(REAL_SHAPES / shape)
    text = render_inventory(
        discovery, REAL_SHAPES / shape, "inventory.yaml", date.today()
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    load_inventory(path)


def test_real_shape_unrendered_chart_reported():
    result = run_review(REAL_SHAPES / "helm-chart", ReviewOptions(live=False))
    [problem] = result.evidence_problems
    assert problem.startswith(".: a Helm chart, whose templates ")
    assert "(deployment.yaml, pvc.yaml)" in problem
    assert "run `helm template NAME . -f values.yaml > rendered.yaml`" in problem
    assert "invalid YAML" not in problem


def test_real_shape_broken_document_named():
    result = run_review(REAL_SHAPES / "broken-multidoc", ReviewOptions(live=False))
    [problem] = result.evidence_problems
    assert problem.startswith("deploy.yaml:31: invalid YAML")
    assert "the document on lines 19-44 is skipped" in problem
    # The file's other documents are read: the Service and the Odoo Deployment.
    assert list(outcomes(result, "K8S-003")) == ["production/Service/shop/shop-db"]
    assert list(outcomes(result, "FS-001")) == ["production/Deployment/shop/shop-odoo"]


def test_real_shape_commented_options_unset():
    result = run_review(REAL_SHAPES / "broken-multidoc", ReviewOptions(live=False))
    manager = outcomes(result, "SEC-001")
    password = outcomes(result, "SEC-002")
    assert list(manager.values()) == ["fail"]
    assert list(password.values()) == ["fail"]


def test_real_shape_compose_list_environment():
    from odoo_dr.review.evidence.manifests import load_manifests

    manifests = load_manifests([REAL_SHAPES / "compose-v2"])
    services = {item.name: item for item in manifests.compose}
    assert set(services) == {"db", "web"}
    assert services["web"].containers[0].env["HOST"] == "db"
    assert services["db"].containers[0].env["POSTGRES_DB"] == "postgres"
    assert services["web"].containers[0].ports == [8069, 8072]
    result = run_review(REAL_SHAPES / "compose-v2", ReviewOptions(live=False))
    assert list(outcomes(result, "SEC-002").values()) == ["fail"]


def test_real_shape_bitnami_database_name():
    from odoo_dr.review.discover import discover_files

    discovery = discover_files(REAL_SHAPES / "helm-rendered")
    tenants = [name for env in discovery.environments for name in env.tenants]
    assert tenants == ["bitnami_odoo"]
