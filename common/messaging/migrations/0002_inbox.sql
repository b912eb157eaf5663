-- The inbox (messaging::inbox): ids of the messages each consumer has
-- processed, written in the handler's transaction, so a redelivery is
-- recognised and acked without doing its work twice.
CREATE TABLE IF NOT EXISTS processed_messages (
    consumer     text NOT NULL,
    message_id   uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
-- Retention deletes by age.
CREATE INDEX IF NOT EXISTS processed_messages_age ON processed_messages (processed_at);
