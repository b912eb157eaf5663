//! The payments table: one SQL statement per function.

use chrono::{DateTime, Utc};
use common::messaging::outbox::OutboxRow;
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub user_id: i64,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub transaction_id: Option<String>,
    pub failure_reason: Option<String>,
    pub source_event_id: Uuid,
    pub attempts: i32,
    pub processed_at: DateTime<Utc>,
}

/// What [`record_payment`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The payment and its event are stored.
    Stored,
    /// The order had a payment already (from another event for it).
    AlreadyPaid,
    /// This event was processed before (the inbox has it): nothing changed.
    Duplicate,
}

/// Stores the payment and its `payment.payment.processed` outbox row in one
/// statement (its own transaction), idempotent twice over: the event id goes
/// into the inbox (`processed_messages`) in the same statement, and
/// `payments.order_id` is unique. So the event exists exactly when the
/// payment does, and a redelivery or a second event for the order stores
/// nothing.
pub async fn record_payment(
    pool: &PgPool,
    consumer: &str,
    message_id: Uuid,
    payment: &Payment,
    event: &OutboxRow,
) -> sqlx::Result<Recorded> {
    let (first, stored): (bool, bool) = sqlx::query_as(
        "WITH first_delivery AS ( \
           INSERT INTO processed_messages (consumer, message_id) VALUES ($12, $13) \
           ON CONFLICT DO NOTHING RETURNING 1 \
         ), payment AS ( \
           INSERT INTO payments (id, order_id, user_id, amount, currency, status, transaction_id, \
                                 failure_reason, source_event_id, attempts, processed_at) \
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE EXISTS (SELECT 1 FROM first_delivery) \
           ON CONFLICT (order_id) DO NOTHING RETURNING 1 \
         ), event AS ( \
           INSERT INTO outbox (id, routing_key, event_type, correlation_id, payload, traceparent) \
           SELECT $14, $15, $16, $17, $18, $19 WHERE EXISTS (SELECT 1 FROM payment) \
         ) \
         SELECT EXISTS (SELECT 1 FROM first_delivery), EXISTS (SELECT 1 FROM payment)",
    )
    .bind(payment.id)
    .bind(payment.order_id)
    .bind(payment.user_id)
    .bind(payment.amount)
    .bind(&payment.currency)
    .bind(&payment.status)
    .bind(&payment.transaction_id)
    .bind(&payment.failure_reason)
    .bind(payment.source_event_id)
    .bind(payment.attempts)
    .bind(payment.processed_at)
    .bind(consumer)
    .bind(message_id)
    .bind(event.id)
    .bind(event.routing_key)
    .bind(event.event_type)
    .bind(event.correlation_id)
    .bind(&event.payload)
    .bind(&event.traceparent)
    .fetch_one(pool)
    .await?;
    Ok(match (first, stored) {
        (false, _) => Recorded::Duplicate,
        (true, false) => Recorded::AlreadyPaid,
        (true, true) => Recorded::Stored,
    })
}

/// Whether the order already has a payment.
pub async fn payment_exists(pool: &PgPool, order_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM payments WHERE order_id = $1)")
        .bind(order_id)
        .fetch_one(pool)
        .await
}

/// The payment of an order, if any.
pub async fn find_payment(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Option<Payment>> {
    sqlx::query_as("SELECT * FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

/// How many payments exist (tests and audits).
pub async fn count_payments(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(pool)
        .await
}
