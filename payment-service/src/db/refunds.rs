//! The refunds table: at most one refund per order, stored with its inbox
//! row and its `payment.refund.processed` outbox row in one statement.
//!
//! Refunds are rare, so these are plain statements, not batched.

use chrono::{DateTime, Utc};
use messaging::outbox::OutboxRow;
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Refund {
    pub id: Uuid,
    pub order_id: Uuid,
    /// The refunded payment (`payments.id`).
    pub payment_id: Uuid,
    pub amount: Decimal,
    pub currency: String,
    /// The provider's refund id, `RFD-` + 12 upper-case hex digits.
    pub transaction_id: String,
    /// The `order.refund.requested` event that caused it.
    pub source_event_id: Uuid,
    pub attempts: i32,
    pub processed_at: DateTime<Utc>,
}

/// What [`record_refund`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundRecorded {
    /// The refund and its event are stored.
    Stored,
    /// The order had a refund already (from another request for it).
    AlreadyRefunded,
    /// This request was processed before (the inbox has it): nothing changed.
    Duplicate,
}

/// A refund to store with its `payment.refund.processed` outbox row, for
/// the `order.refund.requested` event `message_id`.
#[derive(Debug, Clone)]
pub struct RefundWrite {
    pub message_id: Uuid,
    pub refund: Refund,
    pub event: OutboxRow,
}

/// Stores a refund and its outbox row in one statement (its own
/// transaction), idempotent twice over like `record_payments`: the request's
/// event id goes into the inbox (`processed_messages`) in the same
/// statement, and `refunds.order_id` is unique. The outbox row is written
/// only when the refund row was, so the event exists exactly when the refund
/// does, and a redelivery, a second request for the order or a replica that
/// lost the race stores nothing.
pub async fn record_refund(
    pool: &PgPool,
    consumer: &str,
    write: &RefundWrite,
) -> sqlx::Result<RefundRecorded> {
    let (refund, event) = (&write.refund, &write.event);
    let (first, stored): (bool, bool) = sqlx::query_as(
        "WITH first_delivery AS ( \
           INSERT INTO processed_messages (consumer, message_id) VALUES ($1, $2) \
           ON CONFLICT DO NOTHING RETURNING message_id \
         ), refund AS ( \
           INSERT INTO refunds (id, order_id, payment_id, amount, currency, transaction_id, \
                                source_event_id, attempts, processed_at) \
           SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11 \
           WHERE EXISTS (SELECT 1 FROM first_delivery) \
           ON CONFLICT (order_id) DO NOTHING RETURNING id \
         ), event AS ( \
           INSERT INTO outbox (id, routing_key, event_type, correlation_id, payload, traceparent) \
           SELECT $12, $13, $14, $15, $16, $17 \
           WHERE EXISTS (SELECT 1 FROM refund) \
         ) \
         SELECT EXISTS (SELECT 1 FROM first_delivery), EXISTS (SELECT 1 FROM refund)",
    )
    .bind(consumer)
    .bind(write.message_id)
    .bind(refund.id)
    .bind(refund.order_id)
    .bind(refund.payment_id)
    .bind(refund.amount)
    .bind(refund.currency.as_str())
    .bind(refund.transaction_id.as_str())
    .bind(refund.source_event_id)
    .bind(refund.attempts)
    .bind(refund.processed_at)
    .bind(event.id)
    .bind(event.routing_key)
    .bind(event.event_type)
    .bind(event.correlation_id)
    .bind(event.payload.as_str())
    .bind(event.traceparent.as_deref())
    .fetch_one(pool)
    .await?;
    Ok(match (first, stored) {
        (false, _) => RefundRecorded::Duplicate,
        (true, false) => RefundRecorded::AlreadyRefunded,
        (true, true) => RefundRecorded::Stored,
    })
}

/// The refund of an order, if any.
pub async fn find_refund(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Option<Refund>> {
    sqlx::query_as("SELECT * FROM refunds WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

/// Whether the order has a refund already.
pub async fn refund_exists(pool: &PgPool, order_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM refunds WHERE order_id = $1)")
        .bind(order_id)
        .fetch_one(pool)
        .await
}
