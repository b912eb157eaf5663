-- One row per order, ever: the primary key on order_id is what makes a
-- redelivered (or re-published) payment.payment.processed unable to send a
-- second email. The row is inserted as 'sending' and locked (SELECT … FOR
-- UPDATE) for as long as the SMTP conversation lasts, which serialises
-- concurrent duplicates across replicas; it becomes 'sent' in the same
-- transaction, or 'failed' when the SMTP server refused the mail for good.
CREATE TABLE email_log (
    order_id   uuid PRIMARY KEY,
    -- The payment.payment.processed event that first asked for this email.
    event_id   uuid NOT NULL,
    recipient  text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('confirmation', 'payment_failed')),
    status     text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    -- The Message-ID header, <order-{order_id}@{sender domain}>.
    message_id text NOT NULL,
    -- SMTP attempts made so far, and the error of the last failed one.
    attempts   integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);

-- Operators look for mail that is still pending or failed.
CREATE INDEX email_log_unsent ON email_log (created_at) WHERE status <> 'sent';
