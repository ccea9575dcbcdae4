-- Read-side views, written only by the projection dataflow. Every row carries the
-- aggregate version it reflects; writers only ever move it forward. The CHECKs
-- repeat the domain's invariants as a second line of defence.

CREATE TABLE IF NOT EXISTS users (
    user_id      text PRIMARY KEY,
    account_type text NOT NULL CHECK (account_type IN ('SELLER', 'BUYER', 'ADMIN')),
    email        text,
    created_at   timestamptz,
    version      integer NOT NULL
);

CREATE TABLE IF NOT EXISTS products (
    product_id       text PRIMARY KEY,
    seller_id        text NOT NULL,
    sku              text NOT NULL,
    name             text NOT NULL,
    description      text NOT NULL DEFAULT '',
    category         text NOT NULL DEFAULT '',
    price_cents      bigint NOT NULL CHECK (price_cents >= 0),
    currency         char(3) NOT NULL,
    status           text NOT NULL CHECK (status IN ('DRAFT', 'ACTIVE', 'INACTIVE')),
    image_public_ids jsonb NOT NULL DEFAULT '[]',
    created_at       timestamptz,
    updated_at       timestamptz,
    version          integer NOT NULL,
    UNIQUE (seller_id, sku)
);
CREATE INDEX IF NOT EXISTS products_browse ON products (status, category, price_cents);
CREATE INDEX IF NOT EXISTS products_by_seller ON products (seller_id, product_id);

CREATE TABLE IF NOT EXISTS stock (
    product_id          text PRIMARY KEY,
    seller_id           text NOT NULL,
    sku                 text NOT NULL,
    total_quantity      integer NOT NULL CHECK (total_quantity >= 0),
    available_quantity  integer NOT NULL CHECK (available_quantity >= 0),
    reserved_quantity   integer NOT NULL CHECK (reserved_quantity >= 0),
    allocated_quantity  integer NOT NULL CHECK (allocated_quantity >= 0),
    sold_quantity       integer NOT NULL CHECK (sold_quantity >= 0),
    low_stock_threshold integer NOT NULL CHECK (low_stock_threshold >= 0),
    version             integer NOT NULL,
    CHECK (available_quantity + reserved_quantity + allocated_quantity = total_quantity)
);

CREATE TABLE IF NOT EXISTS ledger_accounts (
    account_id    text PRIMARY KEY,
    kind          text NOT NULL,
    owner_id      text,
    balance_cents bigint NOT NULL DEFAULT 0,
    currency      char(3) NOT NULL DEFAULT 'USD',
    version       integer NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS carts (
    cart_id     text PRIMARY KEY,
    buyer_id    text NOT NULL,
    status      text NOT NULL CHECK (status IN ('ACTIVE', 'CHECKOUT', 'COMPLETED', 'EXPIRED', 'ABANDONED')),
    items       jsonb NOT NULL DEFAULT '[]',
    total_cents bigint NOT NULL CHECK (total_cents >= 0),
    currency    char(3),
    expires_at  timestamptz,
    order_id    text,
    created_at  timestamptz,
    version     integer NOT NULL
);
CREATE INDEX IF NOT EXISTS carts_by_buyer ON carts (buyer_id, created_at DESC);
