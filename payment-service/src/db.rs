//! The payments table: one SQL statement per function.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
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

/// Inserts `payment` unless the order already has one; `true` when inserted.
pub async fn insert_payment(tx: &mut PgConnection, payment: &Payment) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO payments (id, order_id, user_id, amount, currency, status, transaction_id, \
         failure_reason, source_event_id, attempts, processed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (order_id) DO NOTHING",
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
    .execute(tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
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
