"""Platform services beside the Odoo database: Redis sessions and job queues."""
