"""What the rules look at: the inventory, and per environment its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from odoo_dr.review.evidence.live import LiveEvidence
from odoo_dr.review.evidence.manifests import ManifestSet, OdooConf, Workload
from odoo_dr.review.inventory import Environment, Inventory, Tenant, Tier
from odoo_dr.review.mechanisms import Mechanism, find_mechanisms


@dataclass
class EnvironmentView:
    environment: Environment
    manifests: ManifestSet
    live: LiveEvidence

    @property
    def name(self) -> str:
        return self.environment.name

    @cached_property
    def workloads(self) -> list[Workload]:
        return self.manifests.workloads()

    @cached_property
    def odoo(self) -> list[Workload]:
        return [item for item in self.workloads if item.is_odoo]

    @cached_property
    def postgres(self) -> list[Workload]:
        return [item for item in self.workloads if item.is_postgres]

    @cached_property
    def redis(self) -> list[Workload]:
        return [item for item in self.workloads if item.is_redis]

    @property
    def odoo_confs(self) -> list[OdooConf]:
        return self.manifests.odoo_confs

    @cached_property
    def mechanisms(self) -> list[Mechanism]:
        return find_mechanisms(self.manifests, self.live)

    def covering(self, part: str) -> list[Mechanism]:
        return [item for item in self.mechanisms if part in item.covers]

    @property
    def has_evidence(self) -> bool:
        live = self.live
        return not self.manifests.empty or any(
            (live.postgres, live.redis, live.bucket, live.repository)
        )


@dataclass
class ReviewContext:
    inventory: Inventory
    base_dir: Path
    environments: list[EnvironmentView]
    assumptions: list[str] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def tier(self, tenant: Tenant) -> Tier:
        return self.inventory.tier(tenant.tier)

    def tenants(self) -> list[tuple[EnvironmentView, Tenant]]:
        return [
            (view, tenant)
            for view in self.environments
            for tenant in view.environment.tenants
        ]
