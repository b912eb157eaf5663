-- The transactional outbox (messaging::outbox): events written in the same
-- transaction as the business change, published by the relay.
--
-- IF NOT EXISTS: a database migrated before the runtime owned these tables
-- already has them; such a database is refused by the service's own
-- migrations with an explanation (messaging::db), not half-migrated here.
CREATE TABLE IF NOT EXISTS outbox (
    id             uuid PRIMARY KEY,
    routing_key    text NOT NULL,
    event_type     text NOT NULL,
    correlation_id uuid NOT NULL,
    payload        text NOT NULL,
    -- The W3C trace context (`traceparent`) of the span that wrote the
    -- event, so the relay publishes it with the event and the consumer's
    -- work joins the same trace, even after a restart. NULL outside a trace.
    traceparent    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text
);
-- What the relay still has to publish.
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (created_at) WHERE published_at IS NULL;
-- The timeline lists an order's published events.
CREATE INDEX IF NOT EXISTS outbox_correlation ON outbox (correlation_id);
