-- The W3C trace context (`traceparent`) of the span that wrote the event, so
-- the relay publishes it with the event and the consumer's work joins the
-- same trace, even when the relay runs after a restart. NULL for rows written
-- outside any trace.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
