-- The order timeline (messaging::timeline): what the consumer runtime notes
-- beside the domain tables, a delivery scheduled for a retry or
-- dead-lettered, keyed by the message's correlation id (the order).
CREATE TABLE message_journal (
    id       bigserial PRIMARY KEY,
    order_id uuid NOT NULL,
    service  text NOT NULL,
    step     text NOT NULL,
    detail   text,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_journal_order ON message_journal (order_id);
CREATE INDEX message_journal_age ON message_journal (at);

-- The timeline lists an order's published events.
CREATE INDEX outbox_correlation ON outbox (correlation_id);
