-- Stock: the units of a product available to order. NULL means the product's
-- stock is not tracked (any quantity is accepted). A checkout takes its units
-- in the transaction that stores the order; a failed payment, a cancellation
-- or a refund gives them back.
ALTER TABLE products ADD COLUMN stock bigint CHECK (stock >= 0);
UPDATE products SET stock = 1000000 WHERE id = 1;

-- Whether the line took units from stock when the order was stored: only
-- such lines give units back, even if the product's tracking changed since.
ALTER TABLE order_items ADD COLUMN reserved boolean NOT NULL DEFAULT false;

-- The order's life after pending: cancelled (by the customer, or because no
-- payment arrived in time), or paid then refunded at the customer's request.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'paid', 'failed', 'cancelled', 'refund_pending', 'refunded'));
ALTER TABLE orders
    ADD COLUMN settled_at             timestamptz,
    ADD COLUMN cancel_reason          text CHECK (cancel_reason IN ('customer', 'payment_timeout')),
    ADD COLUMN cancelled_at           timestamptz,
    -- A refund was asked of payment-service (order.refund.requested).
    ADD COLUMN refund_requested_at    timestamptz,
    -- Filled from payment.refund.processed.
    ADD COLUMN refund_transaction_id  text,
    ADD COLUMN refund_amount          numeric(12, 2),
    ADD COLUMN refunded_at            timestamptz;
UPDATE orders SET settled_at = updated_at WHERE status IN ('paid', 'failed');

-- The expiry sweep reads the oldest pending orders.
CREATE INDEX orders_pending_age ON orders (created_at) WHERE status = 'pending';
