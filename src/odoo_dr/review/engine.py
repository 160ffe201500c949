"""Run a review: gather the evidence, run every rule, apply suppressions, score."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass
from pathlib import Path

from odoo_dr.review import rules as rules_package
from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.evidence import live as live_evidence
from odoo_dr.review.evidence.manifests import load_manifests
from odoo_dr.review.inventory import (
    STRICTEST_TIER,
    Environment,
    EvidenceSources,
    Inventory,
    Tenant,
    load_inventory,
)
from odoo_dr.review.model import RULES, Finding, ReviewResult, Suppression
from odoo_dr.review.suppressions import apply_suppressions

log = logging.getLogger(__name__)

INVENTORY_NAMES = ("inventory.yaml", "inventory.yml")


@dataclass(frozen=True)
class ReviewOptions:
    live: bool = True
    suppressions: tuple[Suppression, ...] = ()


def load_rules() -> None:
    """Import every module of `review.rules`, which registers its rules."""
    for module in pkgutil.iter_modules(rules_package.__path__):
        importlib.import_module(f"{rules_package.__name__}.{module.name}")


def _resolve(base: Path, paths: list[str]) -> list[Path]:
    """Return the paths below `base`, relative to the working folder when inside it,
    so reports name files the way a user typed them."""
    resolved = []
    for path in paths:
        full = (base / path).resolve()
        try:
            resolved.append(full.relative_to(Path.cwd()))
        except ValueError:
            resolved.append(full)
    return resolved


def _view(environment: Environment, base: Path, live: bool) -> EnvironmentView:
    sources = environment.evidence
    manifests = load_manifests(
        _resolve(base, sources.manifests + sources.compose + sources.prometheus_rules),
        _resolve(base, sources.odoo_conf),
        root=base.resolve(),
    )
    evidence = (
        live_evidence.collect_live(sources, base, environment.name)
        if live
        else live_evidence.LiveEvidence()
    )
    return EnvironmentView(environment, manifests, evidence)


def inventory_for_folder(folder: Path) -> tuple[Inventory, list[str]]:
    """Describe a folder of manifests that has no inventory; list what is assumed.
    Its evidence paths are relative to the folder."""
    manifests = load_manifests([folder])
    names = sorted(
        {
            conf.options["db_name"]
            for conf in manifests.odoo_confs
            if conf.options.get("db_name") not in (None, "", "False")
            and "," not in conf.options["db_name"]
        }
    )
    # The tier is left to its default (the strictest) so rules can tell that no
    # inventory declared it.
    tenants = [Tenant(name=name) for name in names] or [Tenant(name="odoo")]
    environment = Environment(
        name="production",
        evidence=EvidenceSources(manifests=["."]),
        tenants=tenants,
    )
    assumptions = [
        f"no inventory in {folder}: reviewed as one production environment",
        f"every tenant assumed in the strictest tier ({STRICTEST_TIER}) with its "
        "default objectives",
        "tenants: "
        + (
            ", ".join(names) + " (from db_name in odoo.conf)"
            if names
            else "one tenant named 'odoo' (no db_name found in any odoo.conf)"
        ),
    ]
    return Inventory(platform=folder.name, environments=[environment]), assumptions


def find_inventory(path: Path) -> Path | None:
    """Return the inventory file `path` names or holds, or None for a bare folder."""
    if path.is_file():
        return path
    for name in INVENTORY_NAMES:
        if (path / name).is_file():
            return path / name
    return None


def build_context(path: Path, options: ReviewOptions) -> ReviewContext:
    """Read the inventory at `path` (a file, or a folder holding inventory.yaml), or
    review a folder of manifests on its own."""
    assumptions: list[str] = []
    inventory_file = find_inventory(path)
    if inventory_file is not None:
        inventory, base = load_inventory(inventory_file)
    else:
        inventory, assumptions = inventory_for_folder(path)
        base = path
    views = [
        _view(environment, base, options.live) for environment in inventory.environments
    ]
    return ReviewContext(inventory, base, views, assumptions)


def run_review(path: Path, options: ReviewOptions = ReviewOptions()) -> ReviewResult:
    load_rules()
    context = build_context(path, options)
    findings: list[Finding] = []
    for rule in sorted(RULES.values(), key=lambda item: item.id):
        for outcome in rule.check(context):
            findings.append(Finding(rule, outcome))
    statuses = apply_suppressions(
        findings, list(options.suppressions), context.now.date()
    )
    problems = [
        problem
        for view in context.environments
        for problem in [*view.manifests.problems, *view.live.problems]
    ]
    from odoo_dr.review.scorecard import build_scorecard

    result = ReviewResult(
        platform=context.inventory.platform,
        findings=findings,
        assumptions=context.assumptions,
        evidence_problems=problems,
        suppressions=statuses,
        base_dir=context.base_dir.resolve(),
        source=find_inventory(path),
        reviewed_at=context.now,
    )
    result.scorecard = build_scorecard(context, findings)
    return result
