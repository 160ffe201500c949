"""The read-only HTTP server of `odoo-dr serve`: metrics, JSON API and dashboard."""
