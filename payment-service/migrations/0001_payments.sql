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

-- Transactional outbox (see messaging::outbox).
CREATE TABLE outbox (
    id             uuid PRIMARY KEY,
    routing_key    text NOT NULL,
    event_type     text NOT NULL,
    correlation_id uuid NOT NULL,
    payload        text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text
);
CREATE INDEX outbox_pending ON outbox (created_at) WHERE published_at IS NULL;

-- Inbox of processed messages (see messaging::inbox).
CREATE TABLE processed_messages (
    consumer     text NOT NULL,
    message_id   uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX processed_messages_age ON processed_messages (processed_at);
