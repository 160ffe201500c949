"""Platform parts beside the Odoo database: Redis data and configuration state."""
