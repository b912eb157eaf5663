-- One row per order, ever: UNIQUE (order_id) is what makes a redelivered
-- order.order.created unable to charge twice.
CREATE TABLE payments (
    id              uuid PRIMARY KEY,
    order_id        uuid NOT NULL UNIQUE,
    user_id         bigint NOT NULL,
    amount          numeric(12, 2) NOT NULL CHECK (amount >= 0),
    currency        text NOT NULL,
    status          text NOT NULL CHECK (status IN ('completed', 'failed')),
    transaction_id  text UNIQUE,
    failure_reason  text,
    -- The order.created event that caused the payment, and how many retries it took.
    source_event_id uuid NOT NULL,
    attempts        integer NOT NULL,
    processed_at    timestamptz NOT NULL DEFAULT now()
);
