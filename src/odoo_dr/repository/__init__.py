"""The odoo-dr repository: content-addressed objects, manifests, drill records."""

from odoo_dr.repository.store import Repository

__all__ = ["Repository"]
