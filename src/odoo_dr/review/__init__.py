"""The review engine: findings and a resilience scorecard for an Odoo platform."""
