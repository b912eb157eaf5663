-- One row per email, no longer per order: an order may get its payment's
-- result (confirmation or payment_failed), a cancellation and a refund
-- email, each at most once. The primary key becomes (order_id, kind), so a
-- redelivered or re-published event still finds its own email's row (and
-- the claim's lease and the 'sent' mark keep working per email), while
-- another kind of email for the same order is a row of its own.
-- Lookups by order alone (the timeline) use the key's first column.
ALTER TABLE email_log DROP CONSTRAINT email_log_pkey;
ALTER TABLE email_log ADD CONSTRAINT email_log_pkey PRIMARY KEY (order_id, kind);

ALTER TABLE email_log DROP CONSTRAINT email_log_kind_check;
ALTER TABLE email_log ADD CONSTRAINT email_log_kind_check
    CHECK (kind IN ('confirmation', 'payment_failed', 'cancelled', 'refund'));

