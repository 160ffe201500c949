"""One day of business on the benchmark tenant: new and changed rows, new files."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from odoo_dr.pg.connection import PgSettings

DAY_SQL = """
SELECT setseed(%(seed)s);

INSERT INTO sale_order (id, name, state, partner_id, warehouse_id, date_order,
                        company_id, create_date, write_date)
SELECT s.id, 'S' || lpad(s.id::text, 6, '0'),
       (ARRAY['draft', 'sale', 'sale', 'sale'])[1 + mod(s.g, 4)],
       3 + mod(s.g * 7 + %(day)s * 101, %(partners)s), 1 + mod(s.g, 2),
       now() - ((%(sales)s - s.g) || ' seconds')::interval, 1, now(), now()
  FROM (SELECT nextval('sale_order_id_seq') AS id, g
          FROM generate_series(1, %(sales)s) AS g) AS s;

INSERT INTO sale_order_line (order_id, product_id, name, product_uom_qty, price_unit,
                             price_subtotal, create_date)
SELECT o.id, p.id, 'Pallet item ' || p.id, q.qty, p.price, q.qty * p.price, now()
  FROM sale_order o
 CROSS JOIN generate_series(1, %(lines)s) AS l
 CROSS JOIN LATERAL (SELECT 1 + mod(o.id * 13 + l * 7, %(products)s) AS id,
                            round((5 + random() * 500)::numeric, 2) AS price) AS p
 CROSS JOIN LATERAL (SELECT 1 + floor(random() * 40)::int AS qty) AS q
 WHERE o.id > %(last_sale)s;

UPDATE sale_order o SET amount_total = s.total
  FROM (SELECT order_id, sum(price_subtotal) AS total FROM sale_order_line
         WHERE order_id > %(last_sale)s GROUP BY order_id) AS s
 WHERE s.order_id = o.id;

INSERT INTO purchase_order (id, name, state, partner_id, date_order, company_id,
                            create_date)
SELECT s.id, 'P' || lpad(s.id::text, 6, '0'),
       (ARRAY['draft', 'purchase', 'purchase'])[1 + mod(s.g, 3)],
       3 + mod(s.g * 11 + %(day)s * 37, %(partners)s), now(), 1, now()
  FROM (SELECT nextval('purchase_order_id_seq') AS id, g
          FROM generate_series(1, %(purchases)s) AS g) AS s;

INSERT INTO purchase_order_line (order_id, product_id, name, product_qty, price_unit,
                                 date_planned, create_date)
SELECT o.id, 1 + mod(o.id * 17 + l * 3, %(products)s), 'Restock', 10 * l,
       round((3 + random() * 300)::numeric, 2), now() + interval '3 days', now()
  FROM purchase_order o CROSS JOIN generate_series(1, %(lines)s) AS l
 WHERE o.id > %(last_purchase)s;

INSERT INTO stock_picking (name, origin, state, partner_id, picking_type_id,
                           location_id, location_dest_id, scheduled_date, company_id,
                           create_date)
SELECT 'WH/OUT/' || lpad(o.id::text, 6, '0'), o.name, 'assigned', o.partner_id, t.id,
       t.default_location_src_id, t.default_location_dest_id,
       o.date_order + interval '1 day', 1, now()
  FROM sale_order o
  JOIN stock_picking_type t ON t.warehouse_id = o.warehouse_id AND t.code = 'outgoing'
 WHERE o.id > %(last_sale)s AND o.state <> 'draft';

INSERT INTO stock_picking (name, origin, state, partner_id, picking_type_id,
                           location_id, location_dest_id, scheduled_date, company_id,
                           create_date)
SELECT 'WH/IN/' || lpad(o.id::text, 6, '0'), o.name, 'assigned', o.partner_id, t.id,
       t.default_location_src_id, t.default_location_dest_id,
       o.date_order + interval '3 days', 1, now()
  FROM purchase_order o
  JOIN stock_picking_type t ON t.warehouse_id = 1 + mod(o.id, 2) AND t.code = 'incoming'
 WHERE o.id > %(last_purchase)s AND o.state <> 'draft';

INSERT INTO stock_move (name, reference, state, product_id, product_uom_qty, quantity,
                        location_id, location_dest_id, picking_id, picking_type_id,
                        origin, date, company_id, create_date)
SELECT 'Pallet item ' || l.product_id, p.name, p.state, l.product_id, l.product_uom_qty,
       l.product_uom_qty, p.location_id, p.location_dest_id, p.id, p.picking_type_id,
       p.origin, p.scheduled_date, 1, now()
  FROM stock_picking p
  JOIN sale_order o ON o.name = p.origin
  JOIN sale_order_line l ON l.order_id = o.id
 WHERE p.id > %(last_picking)s;

INSERT INTO stock_move (name, reference, state, product_id, product_uom_qty, quantity,
                        location_id, location_dest_id, picking_id, picking_type_id,
                        origin, date, company_id, create_date)
SELECT 'Restock', p.name, p.state, l.product_id, l.product_qty, l.product_qty,
       p.location_id, p.location_dest_id, p.id, p.picking_type_id, p.origin,
       p.scheduled_date, 1, now()
  FROM stock_picking p
  JOIN purchase_order o ON o.name = p.origin
  JOIN purchase_order_line l ON l.order_id = o.id
 WHERE p.id > %(last_picking)s;

INSERT INTO stock_move_line (move_id, picking_id, product_id, quantity, location_id,
                             location_dest_id, state, reference, date, company_id,
                             create_date)
SELECT id, picking_id, product_id, quantity, location_id, location_dest_id, state,
       reference, date, company_id, now()
  FROM stock_move WHERE id > %(last_move)s;

INSERT INTO account_move (name, move_type, state, date, invoice_date, invoice_origin,
                          partner_id, journal_id, amount_total, company_id, create_date)
SELECT 'INV/2024/' || lpad(o.id::text, 6, '0'), 'out_invoice', 'posted',
       o.date_order::date, o.date_order::date, o.name, o.partner_id,
       (SELECT id FROM account_journal WHERE code = 'INV'), o.amount_total * 1.21, 1,
       now()
  FROM sale_order o WHERE o.id > %(last_sale)s AND o.state = 'sale';

INSERT INTO account_move_line (move_id, account_id, partner_id, product_id, name,
                               quantity, debit, credit, balance, date, create_date)
SELECT m.id, (SELECT id FROM account_account WHERE code = '400000'), m.partner_id,
       l.product_id, l.name, l.product_uom_qty, 0, l.price_subtotal, -l.price_subtotal,
       m.date, now()
  FROM account_move m
  JOIN sale_order o ON o.name = m.invoice_origin
  JOIN sale_order_line l ON l.order_id = o.id
 WHERE m.id > %(last_invoice)s;

INSERT INTO account_move_line (move_id, account_id, partner_id, name, debit, credit,
                               balance, date, create_date)
SELECT m.id, (SELECT id FROM account_account WHERE code = '110000'), m.partner_id,
       m.name, m.amount_total, 0, m.amount_total, m.date, now()
  FROM account_move m WHERE m.id > %(last_invoice)s;

INSERT INTO mail_message (subject, date, body, model, res_id, message_type, author_id,
                          create_date)
SELECT 'Re: order ' || o.name, now(),
       '<p>Order ' || o.name || ' confirmed, pallets ' || g || ' to ' || (g + 3)
           || ' booked on truck ' || mod(o.id, 97) || '.</p>',
       'sale.order', o.id, 'comment', o.partner_id, now()
  FROM generate_series(1, %(messages)s) AS g
  JOIN sale_order o ON o.id = %(last_sale)s + 1 + mod(g, %(sales)s);

-- Deliver recently confirmed orders: the order, its delivery, moves and move lines.
CREATE TEMPORARY TABLE bench_delivered ON COMMIT DROP AS
SELECT id, name FROM sale_order
 WHERE state = 'sale' AND id > %(recent_sale)s AND id <= %(last_sale)s
 ORDER BY random() LIMIT %(deliveries)s;
UPDATE sale_order o SET state = 'done', write_date = now()
  FROM bench_delivered d WHERE o.id = d.id;
CREATE TEMPORARY TABLE bench_delivered_pickings ON COMMIT DROP AS
SELECT p.id FROM stock_picking p JOIN bench_delivered d ON p.origin = d.name;
UPDATE stock_picking p SET state = 'done', date_done = now(), write_date = now()
  FROM bench_delivered_pickings d WHERE p.id = d.id;
UPDATE stock_move m SET state = 'done', write_date = now()
  FROM bench_delivered_pickings d WHERE m.picking_id = d.id;
UPDATE stock_move_line l SET state = 'done', write_date = now()
  FROM bench_delivered_pickings d WHERE l.picking_id = d.id;

-- Stock levels of the products sold today, and a few customers' phone numbers.
UPDATE stock_quant SET quantity = greatest(0, quantity - floor(random() * 20)),
                       write_date = now()
 WHERE product_id IN (SELECT DISTINCT product_id FROM sale_order_line
                       WHERE order_id > %(last_sale)s);
UPDATE res_partner SET phone = '+31 10 ' || lpad(floor(random() * 1e7)::text, 7, '0'),
                       write_date = now()
 WHERE id IN (SELECT id FROM res_partner WHERE id > 2
               ORDER BY random() LIMIT %(partner_updates)s);
"""


@dataclass(frozen=True)
class DaySize:
    """How much one day of business adds or changes, fixed from the day-0 tenant."""

    files: int
    sales: int
    purchases: int
    messages: int
    deliveries: int
    partner_updates: int


def day_size(settings: PgSettings, dbname: str, files: int, fraction: float) -> DaySize:
    """Return the size of one day: `fraction` of the tenant's files and rows."""
    with settings.connect(dbname) as connection:
        counts = {
            table: connection.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]
            for table in ("sale_order", "purchase_order", "mail_message", "res_partner")
        }

    def share(count: int, part: float = fraction) -> int:
        return max(1, round(count * part))

    return DaySize(
        files=share(files),
        sales=share(counts["sale_order"]),
        purchases=share(counts["purchase_order"]),
        messages=share(counts["mail_message"]),
        deliveries=share(counts["sale_order"]),
        partner_updates=share(counts["res_partner"], fraction / 2),
    )


def apply_business_day(
    settings: PgSettings,
    dbname: str,
    folder: Path,
    size: DaySize,
    day: int,
    mean_file_bytes: int,
    lines_per_order: int,
) -> dict:
    """Add and change one day of rows, and add files with their attachments."""
    generator = random.Random(1000 + day)
    with settings.connect(dbname) as connection:

        def last_id(table: str) -> int:
            return connection.execute(
                sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(
                    sql.Identifier(table)
                )
            ).fetchone()[0]

        sale_count = connection.execute("SELECT count(*) FROM sale_order").fetchone()[0]
        last_sale = last_id("sale_order")
        parameters = {
            "seed": day / 100,
            "day": day,
            "partners": last_id("res_partner") - 2,
            "products": last_id("product_product"),
            "lines": lines_per_order,
            "sales": size.sales,
            "purchases": size.purchases,
            "messages": size.messages,
            "deliveries": size.deliveries,
            "partner_updates": size.partner_updates,
            "last_sale": last_sale,
            "recent_sale": last_sale - max(size.deliveries, sale_count // 10),
            "last_purchase": last_id("purchase_order"),
            "last_picking": last_id("stock_picking"),
            "last_move": last_id("stock_move"),
            "last_invoice": last_id("account_move"),
        }
        # A client-side cursor binds the parameters into the text, so one execute()
        # runs the whole script.
        with psycopg.ClientCursor(connection) as cursor:
            cursor.execute(DAY_SQL, parameters)

        rows = []
        file_bytes = 0
        for index in range(size.files):
            length = max(1, int(generator.expovariate(1 / mean_file_bytes)))
            content = generator.randbytes(length)
            checksum = hashlib.sha1(content).hexdigest()
            store_fname = f"{checksum[:2]}/{checksum}"
            path = folder / store_fname
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(content)
            file_bytes += length
            rows.append(
                (
                    f"scan-day{day}-{index:05d}.pdf",
                    "sale.order",
                    last_sale + 1 + index % size.sales,
                    store_fname,
                    length,
                    checksum,
                )
            )
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO ir_attachment (name, res_model, res_id, type, store_fname,"
                " file_size, checksum, mimetype, company_id, create_uid, create_date)"
                " VALUES (%s, %s, %s, 'binary', %s, %s, %s, 'application/pdf', 1, 2,"
                " now())",
                rows,
            )
        connection.commit()
    return {"files": size.files, "file_bytes": file_bytes}
