"""Create an Odoo-shaped logistics database with a filestore of real files.

The schema (`schema.sql`) uses Odoo 17's table and column names, keys and sequences
for the tables odoo-dr touches. The data is generated in the server with
`generate_series`, so a database of hundreds of megabytes builds in seconds. The
attachments are the real files of `sample/`, plus optional generated ones.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql

from odoo_dr.odoo.filestore import CHECKLIST
from odoo_dr.pg.connection import MAINTENANCE_DATABASE, PgSettings
from odoo_dr.pg.names import validate_database_name
from odoo_dr.pg.server import drop_database

ODOO_VERSION = "17.0"
DEMO_MARKER = "created by odoo-dr demo"

INSTALLED_MODULES = {
    "base": "17.0.1.3",
    "web": "17.0.1.0",
    "mail": "17.0.1.15",
    "product": "17.0.1.2",
    "stock": "17.0.1.1",
    "sale": "17.0.1.2",
    "sale_management": "17.0.1.0",
    "sale_stock": "17.0.1.0",
    "purchase": "17.0.1.2",
    "purchase_stock": "17.0.1.2",
    "account": "17.0.1.2",
    "payment": "17.0.2.0",
    "delivery": "17.0.1.0",
    "stock_barcode": "17.0.1.0",
}
UNINSTALLED_MODULES = ("mrp", "hr", "website", "point_of_sale")


@dataclass(frozen=True)
class DemoScale:
    """How much data to generate; the defaults make a database of about 15 MB."""

    partners: int = 500
    products: int = 200
    sale_orders: int = 2_000
    purchase_orders: int = 500
    lines_per_order: int = 3
    messages: int = 5_000
    generated_files: int = 0
    generated_file_bytes: int = 50_000
    seed: int = 17


@dataclass(frozen=True)
class DemoSummary:
    database: str
    filestore: Path
    attachments: int
    files: int
    file_bytes: int


def sample_folder() -> Path:
    """Return the folder of the real sample filestore shipped with odoo-dr."""
    return Path(str(resources.files("odoo_dr.demo") / "sample" / "bitnami_odoo"))


def sample_files() -> list[Path]:
    folder = sample_folder()
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and CHECKLIST not in path.relative_to(folder).parts
    )


def _guess_mimetype(head: bytes) -> str:
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if head.startswith(b"GIF8"):
        return "image/gif"
    if head.startswith(b"<svg") or b"<svg" in head[:200]:
        return "image/svg+xml"
    if head.lstrip().startswith((b"{", b"[")):
        return "application/json"
    return "application/octet-stream"


def create_database(settings: PgSettings, dbname: str, replace: bool = False) -> None:
    """Create an empty database the way Odoo does (template0, UTF8, collation C)."""
    validate_database_name(dbname)
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        if replace:
            drop_database(connection, dbname)
        connection.execute(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C'"
            ).format(sql.Identifier(dbname))
        )
        connection.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(dbname), sql.Literal(DEMO_MARKER)
            )
        )


def is_demo_database(settings: PgSettings, dbname: str) -> bool | None:
    """Return None if `dbname` does not exist, else whether odoo-dr demo created it."""
    with settings.connect(MAINTENANCE_DATABASE, autocommit=True) as connection:
        row = connection.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE datname = %s",
            (dbname,),
        ).fetchone()
    if row is None:
        return None
    return row[0] == DEMO_MARKER


def build(
    settings: PgSettings,
    dbname: str,
    filestore_root: Path,
    scale: DemoScale = DemoScale(),
    replace: bool = False,
) -> DemoSummary:
    """Create `dbname` with data and its filestore folder below `filestore_root`."""
    create_database(settings, dbname, replace=replace)
    folder = filestore_root / dbname
    if replace and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with settings.connect(dbname) as connection:
        schema = (resources.files("odoo_dr.demo") / "schema.sql").read_text()
        connection.execute(schema)
        _insert_base(connection)
        _insert_business_data(connection, scale)
        attachments, files, file_bytes = _insert_attachments(connection, folder, scale)
        connection.commit()
    return DemoSummary(dbname, folder, attachments, files, file_bytes)


def _insert_base(connection: psycopg.Connection) -> None:
    connection.execute(
        """
        INSERT INTO res_partner (id, name, is_company, email, city, create_date)
            VALUES (1, 'Northwind Logistics', true, 'ops@northwind.example',
                    'Rotterdam', now());
        INSERT INTO res_company (id, name, partner_id, create_date)
            VALUES (1, 'Northwind Logistics', 1, now());
        UPDATE res_partner SET company_id = 1;
        INSERT INTO res_partner (id, name, email, company_id, create_date)
            VALUES (2, 'Administrator', 'admin@northwind.example', 1, now());
        INSERT INTO res_users (id, login, partner_id, company_id, create_date)
            VALUES (1, '__system__', 2, 1, now()), (2, 'admin', 2, 1, now());
        SELECT setval('res_partner_id_seq', 2);
        SELECT setval('res_company_id_seq', 1);
        SELECT setval('res_users_id_seq', 2);
        """
    )
    with connection.cursor() as cursor:
        for name, version in INSTALLED_MODULES.items():
            cursor.execute(
                "INSERT INTO ir_module_module (name, state, latest_version, author,"
                " license, create_date) VALUES (%s, 'installed', %s, 'Odoo S.A.',"
                " 'LGPL-3', now())",
                (name, version),
            )
        for name in UNINSTALLED_MODULES:
            cursor.execute(
                "INSERT INTO ir_module_module (name, state, author, create_date)"
                " VALUES (%s, 'uninstalled', 'Odoo S.A.', now())",
                (name,),
            )
        parameters = {
            "database.uuid": str(uuid.uuid1()),
            "database.secret": str(uuid.uuid4()),
            "database.create_date": "2024-01-15 08:00:00",
            "web.base.url": "https://erp.northwind.example",
        }
        for key, value in parameters.items():
            cursor.execute(
                "INSERT INTO ir_config_parameter (key, value, create_date)"
                " VALUES (%s, %s, now())",
                (key, value),
            )
    connection.execute(
        """
        INSERT INTO ir_mail_server (name, smtp_host, smtp_port, smtp_authentication,
                                    smtp_user, smtp_encryption, sequence, active)
            VALUES ('Northwind SMTP', 'smtp.northwind.example', 587, 'login',
                    'erp@northwind.example', 'starttls', 10, true);
        INSERT INTO fetchmail_server (name, active, state, server, port, server_type,
                                      is_ssl, "user")
            VALUES ('Northwind support inbox', true, 'done', 'imap.northwind.example',
                    993, 'imap', true, 'support@northwind.example');
        INSERT INTO ir_act_server (name, model_name, state, code, webhook_url)
            VALUES ('{"en_US": "Base: Auto-vacuum internal data"}', 'ir.autovacuum',
                    'code', 'model._run_vacuum_cleaner()', NULL),
                   ('{"en_US": "Mail: Email Queue Manager"}', 'mail.mail', 'code',
                    'model.process_email_queue()', NULL),
                   ('{"en_US": "Mail: Fetchmail Service"}', 'fetchmail.server', 'code',
                    'model._fetch_mails()', NULL),
                   ('{"en_US": "Procurement: run scheduler"}', 'procurement.group',
                    'code', 'model.run_scheduler(True)', NULL),
                   ('{"en_US": "Notify carrier portal"}', 'stock.picking', 'webhook',
                    NULL, 'https://carrier-portal.northwind.example/hooks/odoo');
        INSERT INTO ir_cron (ir_actions_server_id, cron_name, user_id, active,
                             interval_number, interval_type, numbercall, nextcall,
                             priority)
            SELECT id, name->>'en_US', 1, true, 1, 'hours', -1, now(), 5
              FROM ir_act_server WHERE state = 'code';
        INSERT INTO ir_model_data (name, module, model, res_id, noupdate)
            SELECT CASE model_name
                       WHEN 'ir.autovacuum' THEN 'autovacuum_job'
                       WHEN 'mail.mail' THEN 'ir_cron_mail_scheduler_action'
                       WHEN 'fetchmail.server' THEN 'ir_cron_mail_gateway_action'
                       ELSE 'ir_cron_scheduler_action'
                   END,
                   CASE model_name
                       WHEN 'ir.autovacuum' THEN 'base'
                       WHEN 'procurement.group' THEN 'stock'
                       ELSE 'mail'
                   END,
                   'ir.cron', c.id, true
              FROM ir_cron c JOIN ir_act_server a ON a.id = c.ir_actions_server_id;
        """
    )


def _insert_business_data(connection: psycopg.Connection, scale: DemoScale) -> None:
    parameters = {
        "partners": scale.partners,
        "products": scale.products,
        "sales": scale.sale_orders,
        "purchases": scale.purchase_orders,
        "lines": scale.lines_per_order,
        "messages": scale.messages,
    }
    statements = (resources.files("odoo_dr.demo") / "data.sql").read_text()
    # A client-side cursor binds parameters into the text, which lets one execute()
    # run the whole file of statements.
    with psycopg.ClientCursor(connection) as cursor:
        cursor.execute("SELECT setseed(%s)", (scale.seed / 1000,))
        cursor.execute(statements, parameters)


def _insert_attachments(
    connection: psycopg.Connection, folder: Path, scale: DemoScale
) -> tuple[int, int, int]:
    """Attach the sample files (and generated ones) to products and partners."""
    generator = random.Random(scale.seed)
    records = [
        ("product.template", 1 + i % scale.products) for i in range(scale.products)
    ]
    records += [("res.partner", 3 + i % scale.partners) for i in range(scale.partners)]
    files = 0
    file_bytes = 0
    attachments = 0
    with connection.cursor() as cursor:
        contents = [(path.name, path.read_bytes()) for path in sample_files()]
        for index in range(scale.generated_files):
            size = max(1, int(generator.expovariate(1 / scale.generated_file_bytes)))
            contents.append((f"scan-{index:06d}.pdf", os.urandom(size)))
        rows = []
        for index, (name, content) in enumerate(contents):
            checksum = hashlib.sha1(content).hexdigest()
            store_fname = f"{checksum[:2]}/{checksum}"
            path = folder / store_fname
            if not path.exists():
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(content)
                files += 1
                file_bytes += len(content)
            res_model, res_id = records[index % len(records)]
            rows.append(
                (
                    name,
                    res_model,
                    res_id,
                    store_fname,
                    len(content),
                    checksum,
                    _guess_mimetype(content[:256]),
                )
            )
        with cursor.copy(
            "COPY ir_attachment (name, res_model, res_id, type, store_fname, file_size,"
            " checksum, mimetype, company_id, create_uid, create_date)"
            " FROM STDIN"
        ) as copy:
            for name, res_model, res_id, store_fname, size, checksum, mimetype in rows:
                copy.write_row(
                    (
                        name,
                        res_model,
                        res_id,
                        "binary",
                        store_fname,
                        size,
                        checksum,
                        mimetype,
                        1,
                        2,
                        "2024-03-01 10:00:00",
                    )
                )
                attachments += 1
        # An attachment kept in the database and a URL attachment: neither has a file.
        cursor.execute(
            "INSERT INTO ir_attachment (name, res_model, res_id, type, db_datas,"
            " file_size, mimetype, create_date)"
            " VALUES ('label.zpl', 'stock.picking', 1, 'binary', %s, 11, 'text/plain',"
            " now())",
            (b"^XA^FDX^XZ\n",),
        )
        cursor.execute(
            "INSERT INTO ir_attachment (name, res_model, res_id, type, url,"
            " create_date) VALUES ('Carrier tracking', 'stock.picking', 1, 'url',"
            " 'https://track.example/1', now())"
        )
    return attachments + 2, files, file_bytes
