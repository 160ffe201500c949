"""Neutralize a restored database so it cannot act on the outside world.

The statements follow what Odoo 16 and later run for a neutralized database (each
module's `data/neutralize.sql`): mail servers, incoming mail servers and scheduled
actions off (except the autovacuum job), payment providers disabled, carriers in test
mode, in-app purchase accounts disabled, and `database.is_neutralized` set. odoo-dr
also points webhook URLs of server actions at an address that cannot resolve.

Odoo 9 to 12 mark a live payment acquirer with `environment = 'prod'` instead of a
state, so both forms are handled. A step whose table or column does not exist (module
not installed, older Odoo) is skipped, so the same code neutralizes Odoo 9 to Odoo 18
databases.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from odoo_dr.odoo.identity import set_parameter
from odoo_dr.odoo.inspect import table_columns

# Scheduled actions left active, by XML id. Odoo keeps its autovacuum job running in
# neutralized databases because it only cleans the database itself.
DEFAULT_CRON_ALLOW_LIST = ("base.autovacuum_job",)

# `.invalid` is reserved by RFC 2606 and never resolves.
NEUTRALIZED_WEBHOOK_URL = "https://neutralized.invalid/"


@dataclass(frozen=True)
class _Step:
    table: str
    column: str
    statement: str
    description: str


_STEPS = (
    _Step(
        "ir_mail_server",
        "active",
        "UPDATE ir_mail_server SET active = false WHERE active",
        "outgoing mail servers deactivated",
    ),
    _Step(
        "fetchmail_server",
        "active",
        "UPDATE fetchmail_server SET active = false WHERE active",
        "incoming mail servers deactivated",
    ),
    _Step(
        "payment_provider",
        "state",
        "UPDATE payment_provider SET state = 'disabled'"
        " WHERE state NOT IN ('test', 'disabled')",
        "payment providers disabled",
    ),
    _Step(
        "payment_provider",
        "is_live",
        "UPDATE payment_provider SET is_live = false WHERE is_live",
        "payment providers switched off live mode",
    ),
    _Step(
        "payment_acquirer",
        "state",
        "UPDATE payment_acquirer SET state = 'disabled'"
        " WHERE state NOT IN ('test', 'disabled')",
        "payment acquirers disabled",
    ),
    _Step(
        "payment_acquirer",
        "environment",
        "UPDATE payment_acquirer SET environment = 'test' WHERE environment = 'prod'",
        "payment acquirers switched to test mode",
    ),
    _Step(
        "delivery_carrier",
        "prod_environment",
        "UPDATE delivery_carrier SET prod_environment = false WHERE prod_environment",
        "carrier integrations switched to test mode",
    ),
    _Step(
        "iap_account",
        "account_token",
        "UPDATE iap_account"
        " SET account_token = regexp_replace(account_token, '(\\+.*)?$', '+disabled')"
        " WHERE account_token NOT LIKE '%+disabled'",
        "in-app purchase accounts disabled",
    ),
    _Step(
        "ir_act_server",
        "webhook_url",
        "UPDATE ir_act_server SET webhook_url = %(webhook)s"
        " WHERE webhook_url IS NOT NULL AND webhook_url <> %(webhook)s",
        "webhook URLs of server actions rewritten",
    ),
)


def _cron_allow_list_ids(
    cursor: psycopg.Cursor, allow_list: tuple[str, ...]
) -> list[int]:
    ids: list[int] = []
    for xml_id in allow_list:
        module, _, name = xml_id.partition(".")
        cursor.execute(
            "SELECT res_id FROM ir_model_data"
            " WHERE model = 'ir.cron' AND module = %s AND name = %s",
            (module, name),
        )
        ids.extend(row[0] for row in cursor.fetchall())
    return ids


def neutralize(
    cursor: psycopg.Cursor, cron_allow_list: tuple[str, ...] = DEFAULT_CRON_ALLOW_LIST
) -> list[str]:
    """Neutralize the database of `cursor`; return a line per change made."""
    done: list[str] = []
    for step in _STEPS:
        if step.column not in table_columns(cursor, step.table):
            continue
        if "%(webhook)s" in step.statement:
            cursor.execute(step.statement, {"webhook": NEUTRALIZED_WEBHOOK_URL})
        else:
            cursor.execute(step.statement)
        if cursor.rowcount:
            done.append(f"{step.description}: {cursor.rowcount}")

    if "active" in table_columns(cursor, "ir_cron"):
        keep = _cron_allow_list_ids(cursor, cron_allow_list)
        cursor.execute(
            "UPDATE ir_cron SET active = false WHERE active AND NOT (id = ANY(%s))",
            (keep,),
        )
        if cursor.rowcount:
            done.append(f"scheduled actions deactivated: {cursor.rowcount}")

    if table_columns(cursor, "ir_config_parameter"):
        set_parameter(cursor, "database.is_neutralized", "true")
        done.append("database.is_neutralized set")
    return done
