-- The order timeline's journal (messaging::timeline): what the consumer
-- runtime notes beside the domain tables, a delivery scheduled for a retry
-- or dead-lettered, keyed by the message's correlation id (the order).
CREATE TABLE IF NOT EXISTS message_journal (
    id       bigserial PRIMARY KEY,
    order_id uuid NOT NULL,
    service  text NOT NULL,
    step     text NOT NULL,
    detail   text,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS message_journal_order ON message_journal (order_id);
-- Retention deletes by age.
CREATE INDEX IF NOT EXISTS message_journal_age ON message_journal (at);
