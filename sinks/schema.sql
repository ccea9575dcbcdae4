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
    version       bigint NOT NULL DEFAULT 0
);
-- A payable account's version orders postings by millisecond and currency (sinks/views.py): a bigint.
ALTER TABLE ledger_accounts ALTER COLUMN version TYPE bigint;

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

CREATE TABLE IF NOT EXISTS orders (
    order_id      text PRIMARY KEY,
    buyer_id      text NOT NULL,
    status        text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'PROCESSING', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
    provisional   boolean NOT NULL,
    total_cents   bigint NOT NULL CHECK (total_cents >= 0),
    currency      char(3) NOT NULL,
    payment_id    text NOT NULL,
    body          jsonb NOT NULL,
    created_at    timestamptz,
    confirmed_at  timestamptz,
    cancelled_at  timestamptz,
    version       integer NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_buyer ON orders (buyer_id, order_id);
CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status, order_id);

CREATE TABLE IF NOT EXISTS shipments (
    shipment_id     text PRIMARY KEY,
    order_id        text NOT NULL,
    seller_id       text NOT NULL,
    status          text NOT NULL CHECK (status IN ('PENDING', 'PROCESSING', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
    provisional     boolean NOT NULL,
    body            jsonb NOT NULL,
    version         integer NOT NULL
);
CREATE INDEX IF NOT EXISTS shipments_by_seller ON shipments (seller_id, shipment_id);

CREATE TABLE IF NOT EXISTS payments (
    payment_id     text PRIMARY KEY,
    order_id       text NOT NULL,
    buyer_id       text NOT NULL,
    state          text NOT NULL,
    amount_cents   bigint NOT NULL CHECK (amount_cents >= 0),
    currency       char(3) NOT NULL,
    intent_id      text NOT NULL,
    refund_flagged boolean NOT NULL DEFAULT false,
    body           jsonb NOT NULL,
    version        integer NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_by_intent ON payments (intent_id);
-- the states of api.md (a database made before refunds existed gets the wider check)
ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_state_check;
ALTER TABLE payments ADD CONSTRAINT payments_state_check
    CHECK (state IN ('CREATED', 'CAPTURED', 'FAILED', 'CANCELLED', 'REFUND_PENDING', 'REFUNDED'));
CREATE INDEX IF NOT EXISTS payments_by_order ON payments (order_id);

CREATE TABLE IF NOT EXISTS ledger_transactions (
    transaction_id text PRIMARY KEY,
    payment_id     text NOT NULL,
    order_id       text NOT NULL,
    currency       char(3) NOT NULL,
    debit_cents    bigint NOT NULL,
    credit_cents   bigint NOT NULL,
    posted_at      timestamptz,
    version        integer NOT NULL,
    CHECK (debit_cents = credit_cents)
);
CREATE INDEX IF NOT EXISTS ledger_transactions_by_order ON ledger_transactions (order_id);
-- a payment can cause several transactions (a sale; or the refund owed, then the refund)
ALTER TABLE ledger_transactions DROP CONSTRAINT IF EXISTS ledger_transactions_payment_id_key;

CREATE TABLE IF NOT EXISTS ledger_entries (
    transaction_id text NOT NULL,
    seq            integer NOT NULL,
    account_id     text NOT NULL,
    direction      text NOT NULL CHECK (direction IN ('DEBIT', 'CREDIT')),
    amount_cents   bigint NOT NULL CHECK (amount_cents >= 0),
    currency       char(3) NOT NULL,
    PRIMARY KEY (transaction_id, seq)
);
CREATE INDEX IF NOT EXISTS ledger_entries_by_account ON ledger_entries (account_id);

-- Every transaction balances: checked at commit over its entries, not just its header.
CREATE OR REPLACE FUNCTION ledger_transaction_balances() RETURNS trigger AS $$
DECLARE net bigint;
BEGIN
    SELECT coalesce(sum(CASE direction WHEN 'DEBIT' THEN amount_cents ELSE -amount_cents END), 0) INTO net
      FROM ledger_entries WHERE transaction_id = NEW.transaction_id;
    IF net <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance (net %)', NEW.transaction_id, net;
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

DO $$ BEGIN
    CREATE CONSTRAINT TRIGGER ledger_entries_balance AFTER INSERT OR UPDATE ON ledger_entries
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_transaction_balances();
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

INSERT INTO ledger_accounts (account_id, kind) VALUES
    ('BUYER_EXTERNAL', 'EXTERNAL'), ('STRIPE_CLEARING', 'CLEARING'), ('BUYIT_REVENUE', 'REVENUE'),
    ('REFUNDS_PAYABLE', 'REFUNDS_PAYABLE')
ON CONFLICT (account_id) DO NOTHING;

-- Aggregates whose views may be wrong: the projection met a gap in their versions, an event it could not
-- fold, or an event after their retirement (each also in dead.letters). `buyit replay` rebuilds them.
CREATE TABLE IF NOT EXISTS stale_aggregates (
    aggregate    text NOT NULL,
    aggregate_id text NOT NULL,
    version      bigint NOT NULL,
    reason       text NOT NULL,
    error        text NOT NULL,
    occurred_at  text NOT NULL,
    PRIMARY KEY (aggregate, aggregate_id, version, reason)
);

-- Every command's first answer, so any API replica (or one restarted) answers a poll of
-- GET /api/commands/{id}. Kept for BUYIT_COMMAND_RESULTS_TTL_S after it was answered.
CREATE TABLE IF NOT EXISTS command_results (
    command_id   text PRIMARY KEY,
    requested_by text,
    result       jsonb NOT NULL,
    answered_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS command_results_answered_at ON command_results (answered_at);

-- Per-minute windows of the projection (dataflows/windows.py). A minute is one row per part:
-- 'on_time' (folded while its window was open) and 'late' (arrived after it closed); readers add
-- the parts. `version` is the number of facts in the part, so a replay writes the same rows.
-- product_id '' is the seller's total (an order counts once per seller there).
CREATE TABLE IF NOT EXISTS sales_minutes (
    window_start           timestamptz NOT NULL,
    seller_id              text NOT NULL,
    product_id             text NOT NULL,
    part                   text NOT NULL CHECK (part IN ('on_time', 'late')),
    units_sold             integer NOT NULL,
    gross_cents            bigint NOT NULL,
    orders                 integer NOT NULL,
    reservations_made      integer NOT NULL CHECK (reservations_made >= 0),
    reservations_expired   integer NOT NULL CHECK (reservations_expired >= 0),
    reservations_converted integer NOT NULL CHECK (reservations_converted >= 0),
    closed                 boolean NOT NULL,
    version                integer NOT NULL,
    PRIMARY KEY (window_start, seller_id, product_id, part)
);
CREATE INDEX IF NOT EXISTS sales_minutes_by_seller ON sales_minutes (seller_id, window_start);

CREATE TABLE IF NOT EXISTS cart_funnel_minutes (
    window_start  timestamptz NOT NULL,
    part          text NOT NULL CHECK (part IN ('on_time', 'late')),
    carts_started integer NOT NULL CHECK (carts_started >= 0),
    items_added   integer NOT NULL CHECK (items_added >= 0),
    checkouts     integer NOT NULL CHECK (checkouts >= 0),
    paid          integer NOT NULL CHECK (paid >= 0),
    abandoned     integer NOT NULL CHECK (abandoned >= 0),
    closed        boolean NOT NULL,
    version       integer NOT NULL,
    PRIMARY KEY (window_start, part)
);
