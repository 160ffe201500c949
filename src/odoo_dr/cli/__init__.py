"""The `odoo-dr` command line: thin commands over the engine."""
