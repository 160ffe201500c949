-- Business data of the sample logistics company, generated in the server.
-- Parameters: partners, products, sales, purchases, lines, messages.

INSERT INTO res_partner (name, email, phone, street, city, zip, is_company, company_id,
                         create_date, write_date)
SELECT 'Customer ' || g, 'contact' || g || '@customer.example',
       '+31 10 ' || lpad(g::text, 7, '0'), g || ' Harbour Street',
       (ARRAY['Rotterdam', 'Antwerp', 'Hamburg', 'Duisburg', 'Lyon'])[1 + mod(g, 5)],
       lpad(mod(g * 37, 9999)::text, 4, '0'), mod(g, 4) = 0, 1,
       now() - (g || ' minutes')::interval, now()
  FROM generate_series(1, %(partners)s) AS g;

INSERT INTO product_template (name, type, default_code, list_price, weight, company_id,
                              create_date, write_date)
SELECT jsonb_build_object('en_US', 'Pallet item ' || g), 'product', 'SKU-' || lpad(g::text, 6, '0'),
       round((5 + random() * 500)::numeric, 2), round((random() * 40)::numeric, 3), 1,
       now(), now()
  FROM generate_series(1, %(products)s) AS g;

INSERT INTO product_product (product_tmpl_id, default_code, barcode, create_date, write_date)
SELECT id, default_code, '871' || lpad(id::text, 10, '0'), now(), now()
  FROM product_template ORDER BY id;

INSERT INTO stock_location (name, complete_name, usage, company_id, create_date)
VALUES ('Partners', 'Partners', 'view', NULL, now()),
       ('Customers', 'Partners/Customers', 'customer', NULL, now()),
       ('Vendors', 'Partners/Vendors', 'supplier', NULL, now()),
       ('RTM', 'RTM', 'view', 1, now()),
       ('Stock', 'RTM/Stock', 'internal', 1, now()),
       ('ANR', 'ANR', 'view', 1, now()),
       ('Stock', 'ANR/Stock', 'internal', 1, now());
UPDATE stock_location SET location_id = (SELECT id FROM stock_location WHERE complete_name = 'Partners')
 WHERE complete_name LIKE 'Partners/%%';
UPDATE stock_location SET location_id = (SELECT id FROM stock_location WHERE complete_name = 'RTM')
 WHERE complete_name = 'RTM/Stock';
UPDATE stock_location SET location_id = (SELECT id FROM stock_location WHERE complete_name = 'ANR')
 WHERE complete_name = 'ANR/Stock';

INSERT INTO stock_warehouse (name, code, company_id, partner_id, view_location_id,
                             lot_stock_id, create_date)
SELECT w.name, w.code, 1, 1,
       (SELECT id FROM stock_location WHERE complete_name = w.code),
       (SELECT id FROM stock_location WHERE complete_name = w.code || '/Stock'), now()
  FROM (VALUES ('Rotterdam hub', 'RTM'), ('Antwerp cross-dock', 'ANR')) AS w (name, code);
UPDATE stock_location l SET warehouse_id = w.id
  FROM stock_warehouse w WHERE l.complete_name LIKE w.code || '%%';

INSERT INTO stock_picking_type (name, code, sequence_code, warehouse_id,
                                default_location_src_id, default_location_dest_id,
                                company_id, create_date)
SELECT jsonb_build_object('en_US', t.label), t.code, t.sequence_code, w.id,
       CASE t.code WHEN 'incoming' THEN (SELECT id FROM stock_location WHERE usage = 'supplier')
                   ELSE w.lot_stock_id END,
       CASE t.code WHEN 'incoming' THEN w.lot_stock_id
                   ELSE (SELECT id FROM stock_location WHERE usage = 'customer') END,
       1, now()
  FROM stock_warehouse w
 CROSS JOIN (VALUES ('Receipts', 'incoming', 'IN'), ('Delivery Orders', 'outgoing', 'OUT'))
       AS t (label, code, sequence_code)
 ORDER BY w.id, t.code;

INSERT INTO sale_order (name, state, partner_id, warehouse_id, date_order, company_id,
                        create_date, write_date)
SELECT 'S' || lpad(g::text, 6, '0'),
       (ARRAY['draft', 'sale', 'sale', 'sale', 'done', 'cancel'])[1 + mod(g, 6)],
       3 + mod(g * 7, %(partners)s), 1 + mod(g, 2),
       now() - ((%(sales)s - g) || ' minutes')::interval, 1, now(), now()
  FROM generate_series(1, %(sales)s) AS g;

INSERT INTO sale_order_line (order_id, product_id, name, product_uom_qty, price_unit,
                             price_subtotal, create_date)
SELECT o.id, p.id, 'Pallet item ' || p.id, q.qty, p.price, q.qty * p.price, now()
  FROM sale_order o
 CROSS JOIN generate_series(1, %(lines)s) AS l
 CROSS JOIN LATERAL (SELECT 1 + mod(o.id * 13 + l * 7, %(products)s) AS id,
                            round((5 + random() * 500)::numeric, 2) AS price) AS p
 CROSS JOIN LATERAL (SELECT 1 + floor(random() * 40)::int AS qty) AS q;

UPDATE sale_order o SET amount_total = s.total
  FROM (SELECT order_id, sum(price_subtotal) AS total FROM sale_order_line GROUP BY order_id) s
 WHERE s.order_id = o.id;

INSERT INTO purchase_order (name, state, partner_id, date_order, company_id, create_date)
SELECT 'P' || lpad(g::text, 6, '0'),
       (ARRAY['draft', 'purchase', 'purchase', 'done'])[1 + mod(g, 4)],
       3 + mod(g * 11, %(partners)s), now() - ((%(purchases)s - g) || ' hours')::interval,
       1, now()
  FROM generate_series(1, %(purchases)s) AS g;

INSERT INTO purchase_order_line (order_id, product_id, name, product_qty, price_unit,
                                 date_planned, create_date)
SELECT o.id, 1 + mod(o.id * 17 + l * 3, %(products)s), 'Restock', 10 * l,
       round((3 + random() * 300)::numeric, 2), now() + interval '3 days', now()
  FROM purchase_order o CROSS JOIN generate_series(1, %(lines)s) AS l;

INSERT INTO stock_picking (name, origin, state, partner_id, picking_type_id, location_id,
                           location_dest_id, scheduled_date, date_done, company_id,
                           create_date)
SELECT 'WH/OUT/' || lpad(o.id::text, 6, '0'), o.name,
       CASE o.state WHEN 'done' THEN 'done' WHEN 'cancel' THEN 'cancel' ELSE 'assigned' END,
       o.partner_id, t.id, t.default_location_src_id, t.default_location_dest_id,
       o.date_order + interval '1 day',
       CASE o.state WHEN 'done' THEN o.date_order + interval '2 days' END, 1, now()
  FROM sale_order o
  JOIN stock_picking_type t ON t.warehouse_id = o.warehouse_id AND t.code = 'outgoing'
 WHERE o.state <> 'draft';

INSERT INTO stock_picking (name, origin, state, partner_id, picking_type_id, location_id,
                           location_dest_id, scheduled_date, company_id, create_date)
SELECT 'WH/IN/' || lpad(o.id::text, 6, '0'), o.name,
       CASE o.state WHEN 'done' THEN 'done' ELSE 'assigned' END,
       o.partner_id, t.id, t.default_location_src_id, t.default_location_dest_id,
       o.date_order + interval '3 days', 1, now()
  FROM purchase_order o
  JOIN stock_picking_type t ON t.warehouse_id = 1 + mod(o.id, 2) AND t.code = 'incoming'
 WHERE o.state <> 'draft';

INSERT INTO stock_move (name, reference, state, product_id, product_uom_qty, quantity,
                        location_id, location_dest_id, picking_id, picking_type_id,
                        origin, date, company_id, create_date)
SELECT 'Pallet item ' || l.product_id, p.name, p.state, l.product_id, l.product_uom_qty,
       l.product_uom_qty, p.location_id, p.location_dest_id, p.id, p.picking_type_id,
       p.origin, p.scheduled_date, 1, now()
  FROM stock_picking p
  JOIN sale_order o ON o.name = p.origin
  JOIN sale_order_line l ON l.order_id = o.id;

INSERT INTO stock_move (name, reference, state, product_id, product_uom_qty, quantity,
                        location_id, location_dest_id, picking_id, picking_type_id,
                        origin, date, company_id, create_date)
SELECT 'Restock', p.name, p.state, l.product_id, l.product_qty, l.product_qty,
       p.location_id, p.location_dest_id, p.id, p.picking_type_id, p.origin,
       p.scheduled_date, 1, now()
  FROM stock_picking p
  JOIN purchase_order o ON o.name = p.origin
  JOIN purchase_order_line l ON l.order_id = o.id;

INSERT INTO stock_move_line (move_id, picking_id, product_id, quantity, location_id,
                             location_dest_id, state, reference, date, company_id,
                             create_date)
SELECT id, picking_id, product_id, quantity, location_id, location_dest_id, state,
       reference, date, company_id, now()
  FROM stock_move;

INSERT INTO stock_quant (product_id, location_id, quantity, reserved_quantity, in_date,
                         company_id, create_date)
SELECT p.id, w.lot_stock_id, round((random() * 1000)::numeric, 0), 0, now(), 1, now()
  FROM product_product p CROSS JOIN stock_warehouse w;

INSERT INTO account_account (code, name, account_type, company_id, create_date)
VALUES ('110000', '{"en_US": "Account Receivable"}', 'asset_receivable', 1, now()),
       ('211000', '{"en_US": "Account Payable"}', 'liability_payable', 1, now()),
       ('400000', '{"en_US": "Product Sales"}', 'income', 1, now()),
       ('600000', '{"en_US": "Cost of Goods Sold"}', 'expense', 1, now()),
       ('251000', '{"en_US": "Tax Received"}', 'liability_current', 1, now());

INSERT INTO account_journal (name, code, type, company_id, create_date)
VALUES ('{"en_US": "Customer Invoices"}', 'INV', 'sale', 1, now()),
       ('{"en_US": "Vendor Bills"}', 'BILL', 'purchase', 1, now());

INSERT INTO account_move (name, move_type, state, date, invoice_date, invoice_origin,
                          partner_id, journal_id, amount_total, company_id, create_date)
SELECT 'INV/2024/' || lpad(o.id::text, 6, '0'), 'out_invoice', 'posted',
       o.date_order::date, o.date_order::date, o.name, o.partner_id,
       (SELECT id FROM account_journal WHERE code = 'INV'), o.amount_total * 1.21, 1, now()
  FROM sale_order o WHERE o.state IN ('sale', 'done');

INSERT INTO account_move (name, move_type, state, date, invoice_date, invoice_origin,
                          partner_id, journal_id, amount_total, company_id, create_date)
SELECT 'BILL/2024/' || lpad(o.id::text, 6, '0'), 'in_invoice', 'posted',
       o.date_order::date, o.date_order::date, o.name, o.partner_id,
       (SELECT id FROM account_journal WHERE code = 'BILL'), 0, 1, now()
  FROM purchase_order o WHERE o.state IN ('purchase', 'done');

INSERT INTO account_move_line (move_id, account_id, partner_id, product_id, name,
                               quantity, debit, credit, balance, date, create_date)
SELECT m.id, (SELECT id FROM account_account WHERE code = '400000'), m.partner_id,
       l.product_id, l.name, l.product_uom_qty, 0, l.price_subtotal, -l.price_subtotal,
       m.date, now()
  FROM account_move m
  JOIN sale_order o ON o.name = m.invoice_origin
  JOIN sale_order_line l ON l.order_id = o.id;

INSERT INTO account_move_line (move_id, account_id, partner_id, name, debit, credit,
                               balance, date, create_date)
SELECT m.id, (SELECT id FROM account_account WHERE code = '110000'), m.partner_id,
       m.name, m.amount_total, 0, m.amount_total, m.date, now()
  FROM account_move m WHERE m.move_type = 'out_invoice';

INSERT INTO mail_message (subject, date, body, model, res_id, message_type, author_id,
                          create_date)
SELECT 'Re: delivery ' || g,
       now() - (g || ' minutes')::interval,
       '<p>Pallet ' || g || ' loaded on truck ' || mod(g, 97) || ', dock '
           || mod(g, 12) || '. Driver signed at gate ' || mod(g, 5) || '.</p>',
       'stock.picking', 1 + mod(g, greatest(1, %(sales)s / 2)), 'comment',
       3 + mod(g, %(partners)s), now()
  FROM generate_series(1, %(messages)s) AS g;

INSERT INTO payment_provider (name, code, state, company_id, create_date)
VALUES ('{"en_US": "Stripe"}', 'stripe', 'enabled', 1, now()),
       ('{"en_US": "Wire Transfer"}', 'custom', 'enabled', 1, now());

INSERT INTO delivery_carrier (name, delivery_type, prod_environment, product_id,
                              company_id, create_date)
VALUES ('{"en_US": "DHL Express"}', 'dhl', true, 1, 1, now()),
       ('{"en_US": "Local truck"}', 'fixed', false, 2, 1, now());
