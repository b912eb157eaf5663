-- One row per order, ever: UNIQUE (order_id) is what makes a second refund
-- impossible, whether the order.refund.requested is redelivered, published
-- again under a new event id, or handled by two replicas at the same moment
-- (the loser's insert waits for the winner's commit and then does nothing).
-- The foreign key means only an order that was charged can be refunded.
CREATE TABLE refunds (
    id              uuid PRIMARY KEY,
    order_id        uuid NOT NULL UNIQUE REFERENCES payments (order_id),
    payment_id      uuid NOT NULL,
    amount          numeric(12, 2) NOT NULL,
    currency        text NOT NULL,
    -- The provider's refund id: RFD- + 12 upper-case hex digits.
    transaction_id  text NOT NULL UNIQUE,
    -- The order.refund.requested event that caused the refund, and how many
    -- attempts it took.
    source_event_id uuid NOT NULL,
    attempts        integer NOT NULL,
    processed_at    timestamptz NOT NULL DEFAULT now()
);
