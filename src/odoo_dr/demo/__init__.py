"""A sample Odoo-shaped logistics database for the demo, tests and benchmarks."""
