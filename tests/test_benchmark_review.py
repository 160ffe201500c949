"""The review benchmark, run at a tiny size so the script keeps working."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT_ROOT / "benchmarks" / "review.py"
GENERATOR = PROJECT_ROOT / "benchmarks" / "benchlib" / "review_platform.py"
# The generator plants each of its flaws once among the first 12 tenants.
TENANTS = 12


def _generator():
    spec = importlib.util.spec_from_file_location("review_platform", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up by name while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run_benchmark(tmp_path: Path) -> tuple[dict, Path]:
    work = tmp_path / "work"
    results = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--sizes",
            str(TENANTS),
            "--repeat",
            "1",
            "--work-dir",
            str(work),
            "--keep-work",
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(results.read_text()), work


def test_benchmark_reviews_generated_tenants(tmp_path):
    results, work = _run_benchmark(tmp_path)

    inventory = YAML(typ="safe").load(
        (work / f"platform-{TENANTS}" / "inventory.yaml").read_text()
    )
    names = {
        tenant["name"]
        for environment in inventory["environments"]
        for tenant in environment.get("tenants", [])
    }
    assert len(names) == TENANTS
    report = json.loads((work / f"review-{TENANTS}.json").read_text())
    findings = report["findings"]
    for name in sorted(names):
        own = [item for item in findings if item["tenant"] == name]
        assert own, f"no finding names tenant {name}"
    statuses = {item["status"] for item in findings}
    assert statuses == {"pass", "fail"}
    assert report["evidence_problems"] == []

    (size,) = results["sizes"]
    assert size["tenants"] == TENANTS
    assert size["platform"]["tenant_documents"] == TENANTS * 5
    assert size["review"]["checks"] == len(findings)
    assert size["review"]["tenants_without_findings"] == []
    assert size["review"]["flaws_not_reported"] == []
    (run,) = size["runs"]
    assert run["seconds"] > 0
    assert run["peak_rss_bytes"] > 0
    assert results["machine"]["python"]


def test_benchmark_planted_flaws_fail(tmp_path):
    """Each flaw the generator plants is reported as failed by its rule, on the
    tenant it was planted in."""
    generator = _generator()
    platform = generator.generate_platform(tmp_path / "platform", TENANTS)
    planted = {
        rule_id for tenant in platform.tenants for rule_id in tenant.flaws.values()
    }
    assert planted == {rule_id for _, _, rule_id in generator.FLAWS.values()}

    report = tmp_path / "review.json"
    odoo_dr = Path(sys.executable).parent / "odoo-dr"
    command = [str(odoo_dr), "review", str(platform.root), "--no-live"]
    command += ["--format", "json", "--output", str(report)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr

    findings = json.loads(report.read_text())["findings"]
    grouped = generator.tenant_findings(findings, platform.tenants)
    for tenant in platform.tenants:
        failed = {
            item["rule"] for item in grouped[tenant.name] if item["status"] == "fail"
        }
        for flaw, rule_id in tenant.flaws.items():
            assert rule_id in failed, f"{tenant.name}: {flaw} not reported by {rule_id}"
    clean = [tenant for tenant in platform.tenants if not tenant.flaws]
    assert clean
    for tenant in clean:
        failed = {
            item["rule"] for item in grouped[tenant.name] if item["status"] == "fail"
        }
        for _, _, rule_id in generator.FLAWS.values():
            assert rule_id not in failed, f"{tenant.name}: {rule_id} failed"
