-- The tables of an Odoo 17 database that odoo-dr reads, restores and checks, with
-- Odoo's own table and column names, primary keys, foreign keys and sequences.
-- Columns that odoo-dr does not use are left out, so this is a subset of each table.

CREATE TABLE res_company (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    partner_id integer,
    currency_id integer,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE res_partner (
    id serial PRIMARY KEY,
    name varchar,
    company_id integer REFERENCES res_company (id) ON DELETE SET NULL,
    parent_id integer REFERENCES res_partner (id) ON DELETE SET NULL,
    email varchar,
    phone varchar,
    street varchar,
    city varchar,
    zip varchar,
    is_company boolean DEFAULT false,
    active boolean DEFAULT true,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE res_users (
    id serial PRIMARY KEY,
    login varchar NOT NULL UNIQUE,
    password varchar,
    partner_id integer NOT NULL REFERENCES res_partner (id) ON DELETE RESTRICT,
    company_id integer NOT NULL REFERENCES res_company (id) ON DELETE RESTRICT,
    active boolean DEFAULT true,
    create_date timestamp,
    write_date timestamp
);

ALTER TABLE res_company
    ADD FOREIGN KEY (partner_id) REFERENCES res_partner (id) ON DELETE RESTRICT;

CREATE TABLE ir_module_module (
    id serial PRIMARY KEY,
    name varchar NOT NULL UNIQUE,
    state varchar,
    latest_version varchar,
    shortdesc jsonb,
    author varchar,
    license varchar,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE ir_model_data (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    module varchar NOT NULL,
    model varchar NOT NULL,
    res_id integer,
    noupdate boolean DEFAULT false,
    create_date timestamp,
    write_date timestamp,
    UNIQUE (module, name)
);

CREATE TABLE ir_config_parameter (
    id serial PRIMARY KEY,
    key varchar NOT NULL UNIQUE,
    value text NOT NULL,
    create_uid integer REFERENCES res_users (id) ON DELETE SET NULL,
    create_date timestamp,
    write_uid integer REFERENCES res_users (id) ON DELETE SET NULL,
    write_date timestamp
);

CREATE TABLE ir_act_server (
    id serial PRIMARY KEY,
    name jsonb NOT NULL,
    type varchar NOT NULL DEFAULT 'ir.actions.server',
    model_name varchar,
    state varchar NOT NULL,
    code text,
    webhook_url varchar,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE ir_cron (
    id serial PRIMARY KEY,
    ir_actions_server_id integer NOT NULL REFERENCES ir_act_server (id) ON DELETE RESTRICT,
    cron_name varchar,
    user_id integer NOT NULL REFERENCES res_users (id) ON DELETE RESTRICT,
    active boolean DEFAULT true,
    interval_number integer,
    interval_type varchar,
    numbercall integer,
    nextcall timestamp NOT NULL,
    lastcall timestamp,
    priority integer,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE ir_mail_server (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    smtp_host varchar,
    smtp_port integer,
    smtp_authentication varchar,
    smtp_user varchar,
    smtp_pass varchar,
    smtp_encryption varchar NOT NULL,
    sequence integer,
    active boolean DEFAULT true,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE fetchmail_server (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    active boolean DEFAULT true,
    state varchar,
    server varchar,
    port integer,
    server_type varchar NOT NULL,
    is_ssl boolean,
    "user" varchar,
    password varchar,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE ir_attachment (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    description text,
    res_model varchar,
    res_field varchar,
    res_id integer,
    company_id integer REFERENCES res_company (id) ON DELETE SET NULL,
    type varchar NOT NULL,
    url varchar(1024),
    public boolean,
    access_token varchar,
    db_datas bytea,
    store_fname varchar,
    file_size integer,
    checksum varchar(40),
    mimetype varchar,
    index_content text,
    create_uid integer REFERENCES res_users (id) ON DELETE SET NULL,
    create_date timestamp,
    write_uid integer REFERENCES res_users (id) ON DELETE SET NULL,
    write_date timestamp
);
CREATE INDEX ir_attachment_res_idx ON ir_attachment (res_model, res_id);
CREATE INDEX ir_attachment_checksum_index ON ir_attachment (checksum);
CREATE INDEX ir_attachment_store_fname_index ON ir_attachment (store_fname);

CREATE TABLE mail_message (
    id serial PRIMARY KEY,
    subject varchar,
    date timestamp,
    body text,
    model varchar,
    res_id integer,
    message_type varchar NOT NULL,
    author_id integer REFERENCES res_partner (id) ON DELETE SET NULL,
    create_date timestamp,
    write_date timestamp
);
CREATE INDEX mail_message_model_res_id_idx ON mail_message (model, res_id);

CREATE TABLE product_template (
    id serial PRIMARY KEY,
    name jsonb NOT NULL,
    type varchar NOT NULL,
    default_code varchar,
    list_price numeric,
    weight numeric,
    active boolean DEFAULT true,
    company_id integer REFERENCES res_company (id) ON DELETE SET NULL,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE product_product (
    id serial PRIMARY KEY,
    product_tmpl_id integer NOT NULL REFERENCES product_template (id) ON DELETE CASCADE,
    default_code varchar,
    barcode varchar UNIQUE,
    active boolean DEFAULT true,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE stock_location (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    complete_name varchar,
    location_id integer REFERENCES stock_location (id) ON DELETE CASCADE,
    usage varchar NOT NULL,
    barcode varchar,
    company_id integer REFERENCES res_company (id) ON DELETE RESTRICT,
    warehouse_id integer,
    active boolean DEFAULT true,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE stock_warehouse (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    code varchar(5) NOT NULL,
    company_id integer NOT NULL REFERENCES res_company (id) ON DELETE RESTRICT,
    partner_id integer REFERENCES res_partner (id) ON DELETE SET NULL,
    view_location_id integer NOT NULL REFERENCES stock_location (id) ON DELETE RESTRICT,
    lot_stock_id integer NOT NULL REFERENCES stock_location (id) ON DELETE RESTRICT,
    active boolean DEFAULT true,
    create_date timestamp,
    write_date timestamp
);

ALTER TABLE stock_location
    ADD FOREIGN KEY (warehouse_id) REFERENCES stock_warehouse (id) ON DELETE SET NULL;

CREATE TABLE stock_picking_type (
    id serial PRIMARY KEY,
    name jsonb NOT NULL,
    code varchar NOT NULL,
    sequence_code varchar NOT NULL,
    warehouse_id integer REFERENCES stock_warehouse (id) ON DELETE CASCADE,
    default_location_src_id integer REFERENCES stock_location (id) ON DELETE SET NULL,
    default_location_dest_id integer REFERENCES stock_location (id) ON DELETE SET NULL,
    company_id integer NOT NULL REFERENCES res_company (id) ON DELETE RESTRICT,
    active boolean DEFAULT true,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE stock_picking (
    id serial PRIMARY KEY,
    name varchar,
    origin varchar,
    state varchar,
    partner_id integer REFERENCES res_partner (id) ON DELETE SET NULL,
    picking_type_id integer NOT NULL REFERENCES stock_picking_type (id) ON DELETE RESTRICT,
    location_id integer NOT NULL REFERENCES stock_location (id) ON DELETE RESTRICT,
    location_dest_id integer NOT NULL REFERENCES stock_location (id) ON DELETE RESTRICT,
    scheduled_date timestamp NOT NULL,
    date_done timestamp,
    company_id integer REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE stock_move (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    reference varchar,
    state varchar,
    product_id integer NOT NULL REFERENCES product_product (id) ON DELETE RESTRICT,
    product_uom_qty numeric NOT NULL,
    quantity numeric,
    location_id integer NOT NULL REFERENCES stock_location (id) ON DELETE RESTRICT,
    location_dest_id integer NOT NULL REFERENCES stock_location (id) ON DELETE RESTRICT,
    picking_id integer REFERENCES stock_picking (id) ON DELETE SET NULL,
    picking_type_id integer REFERENCES stock_picking_type (id) ON DELETE SET NULL,
    origin varchar,
    date timestamp NOT NULL,
    company_id integer NOT NULL REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);
CREATE INDEX stock_move_picking_id_index ON stock_move (picking_id);
CREATE INDEX stock_move_product_id_index ON stock_move (product_id);

CREATE TABLE stock_move_line (
    id serial PRIMARY KEY,
    move_id integer REFERENCES stock_move (id) ON DELETE CASCADE,
    picking_id integer REFERENCES stock_picking (id) ON DELETE SET NULL,
    product_id integer REFERENCES product_product (id) ON DELETE CASCADE,
    quantity numeric,
    location_id integer NOT NULL REFERENCES stock_location (id) ON DELETE RESTRICT,
    location_dest_id integer NOT NULL REFERENCES stock_location (id) ON DELETE RESTRICT,
    state varchar,
    reference varchar,
    date timestamp NOT NULL,
    company_id integer NOT NULL REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE stock_quant (
    id serial PRIMARY KEY,
    product_id integer NOT NULL REFERENCES product_product (id) ON DELETE RESTRICT,
    location_id integer NOT NULL REFERENCES stock_location (id) ON DELETE RESTRICT,
    quantity numeric,
    reserved_quantity numeric NOT NULL DEFAULT 0,
    in_date timestamp,
    company_id integer REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE sale_order (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    state varchar,
    partner_id integer NOT NULL REFERENCES res_partner (id) ON DELETE RESTRICT,
    warehouse_id integer REFERENCES stock_warehouse (id) ON DELETE SET NULL,
    date_order timestamp NOT NULL,
    amount_total numeric,
    company_id integer NOT NULL REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE sale_order_line (
    id serial PRIMARY KEY,
    order_id integer NOT NULL REFERENCES sale_order (id) ON DELETE CASCADE,
    product_id integer REFERENCES product_product (id) ON DELETE RESTRICT,
    name text NOT NULL,
    product_uom_qty numeric NOT NULL,
    price_unit numeric NOT NULL,
    price_subtotal numeric,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE purchase_order (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    state varchar,
    partner_id integer NOT NULL REFERENCES res_partner (id) ON DELETE RESTRICT,
    date_order timestamp NOT NULL,
    amount_total numeric,
    company_id integer NOT NULL REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE purchase_order_line (
    id serial PRIMARY KEY,
    order_id integer NOT NULL REFERENCES purchase_order (id) ON DELETE CASCADE,
    product_id integer REFERENCES product_product (id) ON DELETE RESTRICT,
    name text NOT NULL,
    product_qty numeric NOT NULL,
    price_unit numeric NOT NULL,
    date_planned timestamp,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE account_account (
    id serial PRIMARY KEY,
    code varchar(64) NOT NULL,
    name jsonb NOT NULL,
    account_type varchar NOT NULL,
    company_id integer NOT NULL REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE account_journal (
    id serial PRIMARY KEY,
    name jsonb NOT NULL,
    code varchar(5) NOT NULL,
    type varchar NOT NULL,
    company_id integer NOT NULL REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE account_move (
    id serial PRIMARY KEY,
    name varchar,
    move_type varchar NOT NULL,
    state varchar NOT NULL,
    date date NOT NULL,
    invoice_date date,
    invoice_origin varchar,
    partner_id integer REFERENCES res_partner (id) ON DELETE RESTRICT,
    journal_id integer NOT NULL REFERENCES account_journal (id) ON DELETE RESTRICT,
    amount_total numeric,
    company_id integer REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE account_move_line (
    id serial PRIMARY KEY,
    move_id integer NOT NULL REFERENCES account_move (id) ON DELETE CASCADE,
    account_id integer REFERENCES account_account (id) ON DELETE RESTRICT,
    partner_id integer REFERENCES res_partner (id) ON DELETE RESTRICT,
    product_id integer REFERENCES product_product (id) ON DELETE RESTRICT,
    name varchar,
    quantity numeric,
    debit numeric,
    credit numeric,
    balance numeric,
    date date,
    create_date timestamp,
    write_date timestamp
);
CREATE INDEX account_move_line_move_id_index ON account_move_line (move_id);

CREATE TABLE payment_provider (
    id serial PRIMARY KEY,
    name jsonb NOT NULL,
    code varchar NOT NULL,
    state varchar NOT NULL,
    company_id integer NOT NULL REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);

CREATE TABLE delivery_carrier (
    id serial PRIMARY KEY,
    name jsonb NOT NULL,
    delivery_type varchar NOT NULL,
    prod_environment boolean,
    active boolean DEFAULT true,
    product_id integer NOT NULL REFERENCES product_product (id) ON DELETE RESTRICT,
    company_id integer REFERENCES res_company (id) ON DELETE RESTRICT,
    create_date timestamp,
    write_date timestamp
);
