-- The catalog: the only source of prices. Clients never set a price.
CREATE TABLE products (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    price       numeric(12, 2) NOT NULL CHECK (price >= 0),
    currency    text NOT NULL DEFAULT 'USD'
);

INSERT INTO products (id, name, description, price) VALUES
    (1, 'Gaming Laptop', '16-inch gaming laptop, 32 GB RAM, RTX graphics', 1299.99),
    (2, 'Wireless Mouse', 'Ergonomic wireless mouse', 49.99),
    (3, 'Mechanical Keyboard', 'Tenkeyless mechanical keyboard, brown switches', 129.99),
    (4, '27-inch Monitor', '27-inch 1440p 165 Hz monitor', 349.00),
    (5, 'USB-C Dock', '11-in-1 USB-C docking station', 189.50),
    (6, 'Noise-Cancelling Headphones', 'Over-ear Bluetooth headphones', 279.00),
    (7, 'Workstation', 'Pre-built workstation (declined by the simulated provider above 10000.00)', 12999.00);

CREATE TABLE orders (
    id                     uuid PRIMARY KEY,
    user_id                bigint NOT NULL,
    user_email             text NOT NULL,
    status                 text NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    total_amount           numeric(12, 2) NOT NULL,
    currency               text NOT NULL,
    processing_duration_ms double precision NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    -- Filled from payment.payment.processed.
    payment_id             uuid,
    payment_status         text CHECK (payment_status IN ('completed', 'failed')),
    payment_transaction_id text,
    payment_amount         numeric(12, 2),
    payment_failure_reason text,
    payment_processed_at   timestamptz
);

CREATE TABLE order_items (
    order_id   uuid NOT NULL REFERENCES orders (id),
    line_no    integer NOT NULL,
    product_id bigint NOT NULL REFERENCES products (id),
    name       text NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    quantity   integer NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    line_total numeric(12, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
