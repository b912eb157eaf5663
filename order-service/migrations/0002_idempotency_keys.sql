-- The first answer to each (client, Idempotency-Key), stored in the same
-- transaction as the order it created: a retry with the same key and body gets
-- this answer again; the same key with another body is refused (422).
-- Keys are scoped by user_id, so one client can never read another's answer.
CREATE TABLE idempotency_keys (
    user_id         bigint NOT NULL,
    key             text NOT NULL,
    request         text NOT NULL,
    response_status smallint NOT NULL,
    response_body   text NOT NULL,
    order_id        uuid NOT NULL REFERENCES orders (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
