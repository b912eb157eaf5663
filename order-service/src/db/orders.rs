//! Orders and their lines.

use chrono::{DateTime, Utc};
use common::events::PaymentProcessed;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{
    order::{Order, OrderLine, PaymentSummary},
    pricing::PricedOrder,
};

/// What `insert_order` stores besides the priced lines.
pub struct NewOrder<'a> {
    pub id: Uuid,
    pub user_id: i64,
    pub user_email: &'a str,
    pub priced: &'a PricedOrder,
    pub created_at: DateTime<Utc>,
    pub processing_duration_ms: f64,
}

pub async fn insert_order(tx: &mut PgConnection, order: &NewOrder<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO orders (id, user_id, user_email, status, total_amount, currency, processing_duration_ms, \
         created_at, updated_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $7)",
    )
    .bind(order.id)
    .bind(order.user_id)
    .bind(order.user_email)
    .bind(order.priced.total)
    .bind(&order.priced.currency)
    .bind(order.processing_duration_ms)
    .bind(order.created_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// All lines of an order in one statement.
pub async fn insert_order_lines(
    tx: &mut PgConnection,
    order_id: Uuid,
    priced: &PricedOrder,
) -> sqlx::Result<()> {
    let line_nos: Vec<i32> = (1..=priced.lines.len() as i32).collect();
    let product_ids: Vec<i64> = priced.lines.iter().map(|l| l.product_id).collect();
    let names: Vec<&str> = priced.lines.iter().map(|l| l.name.as_str()).collect();
    let unit_prices: Vec<Decimal> = priced.lines.iter().map(|l| l.unit_price).collect();
    let quantities: Vec<i32> = priced.lines.iter().map(|l| l.quantity).collect();
    let line_totals: Vec<Decimal> = priced.lines.iter().map(|l| l.line_total).collect();
    sqlx::query(
        "INSERT INTO order_items (order_id, line_no, product_id, name, unit_price, quantity, line_total) \
         SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::text[], $5::numeric[], $6::int[], $7::numeric[])",
    )
    .bind(order_id)
    .bind(line_nos)
    .bind(product_ids)
    .bind(names)
    .bind(unit_prices)
    .bind(quantities)
    .bind(line_totals)
    .execute(tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    status: String,
    user_id: i64,
    user_email: String,
    total_amount: Decimal,
    currency: String,
    processing_duration_ms: f64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    payment_status: Option<String>,
    payment_transaction_id: Option<String>,
    payment_amount: Option<Decimal>,
    payment_failure_reason: Option<String>,
    payment_processed_at: Option<DateTime<Utc>>,
}

pub async fn find_order(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Order>> {
    let Some(row) = find_order_row(pool, id).await? else {
        return Ok(None);
    };
    let items = find_order_lines(pool, id).await?;
    let payment = row.payment_status.map(|status| PaymentSummary {
        status,
        transaction_id: row.payment_transaction_id,
        amount: row.payment_amount,
        processed_at: row.payment_processed_at,
        failure_reason: row.payment_failure_reason,
    });
    Ok(Some(Order {
        id: row.id,
        status: row.status,
        user_id: row.user_id,
        user_email: row.user_email,
        total_amount: row.total_amount,
        currency: row.currency,
        items,
        payment,
        created_at: row.created_at,
        updated_at: row.updated_at,
        processing_duration_ms: row.processing_duration_ms,
    }))
}

async fn find_order_row(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as(
        "SELECT id, status, user_id, user_email, total_amount, currency, processing_duration_ms, created_at, \
         updated_at, payment_status, payment_transaction_id, payment_amount, payment_failure_reason, \
         payment_processed_at FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

async fn find_order_lines(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Vec<OrderLine>> {
    sqlx::query_as(
        "SELECT product_id, name, unit_price, quantity, line_total FROM order_items \
         WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// Moves a pending order to `paid` or `failed` with the payment's details;
/// `false` when the order is not pending (already applied) or unknown.
pub async fn apply_payment_result(
    tx: &mut PgConnection,
    event: &PaymentProcessed,
) -> sqlx::Result<bool> {
    let status = match event.status {
        common::events::PaymentStatus::Completed => "paid",
        common::events::PaymentStatus::Failed => "failed",
    };
    let updated = sqlx::query(
        "UPDATE orders SET status = $2, payment_id = $3, payment_status = $4, payment_transaction_id = $5, \
         payment_amount = $6, payment_failure_reason = $7, payment_processed_at = $8, updated_at = now() \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(event.order_id)
    .bind(status)
    .bind(event.payment_id)
    .bind(event.status.as_str())
    .bind(&event.transaction_id)
    .bind(event.amount)
    .bind(&event.failure_reason)
    .bind(event.timestamp)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub async fn order_exists(tx: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1)")
        .bind(id)
        .fetch_one(tx)
        .await
}

/// Orders by status (tests and audits).
pub async fn count_orders(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(pool)
        .await
}
