"""odoo-dr: backup, restore and recovery drills for Odoo databases."""

__version__ = "0.1.0"
