"""Knowledge of Odoo: configuration files, the filestore and its tables."""
