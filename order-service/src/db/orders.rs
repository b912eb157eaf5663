//! Orders and their lines.

use chrono::{DateTime, Utc};
use common::messaging::outbox::OutboxRow;
use rust_decimal::Decimal;
use sqlx::{PgExecutor, PgPool};
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

/// The order, its lines and its `order.order.created` outbox row in one
/// statement (data-modifying CTEs). A single statement is atomic on its own,
/// so on the pool this is one round trip and one commit instead of
/// BEGIN / three INSERTs / COMMIT; inside a transaction (a checkout with an
/// `Idempotency-Key`, whose answer is stored with it) it is one statement of
/// that transaction. The lines' foreign key to the order is checked at the
/// end of the statement, when the order row exists.
pub async fn insert_order_with_event(
    conn: impl PgExecutor<'_>,
    order: &NewOrder<'_>,
    event: &OutboxRow,
) -> sqlx::Result<()> {
    let lines = &order.priced.lines;
    let line_nos: Vec<i32> = (1..=lines.len() as i32).collect();
    let product_ids: Vec<i64> = lines.iter().map(|l| l.product_id).collect();
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    let unit_prices: Vec<Decimal> = lines.iter().map(|l| l.unit_price).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity).collect();
    let line_totals: Vec<Decimal> = lines.iter().map(|l| l.line_total).collect();
    sqlx::query(
        "WITH new_order AS ( \
           INSERT INTO orders (id, user_id, user_email, status, total_amount, currency, \
                               processing_duration_ms, created_at, updated_at) \
           VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $7) \
         ), new_lines AS ( \
           INSERT INTO order_items (order_id, line_no, product_id, name, unit_price, quantity, line_total) \
           SELECT $1, * FROM unnest($8::int[], $9::bigint[], $10::text[], $11::numeric[], $12::int[], $13::numeric[]) \
         ) \
         INSERT INTO outbox (id, routing_key, event_type, correlation_id, payload, traceparent) \
         VALUES ($14, $15, $16, $17, $18, $19)",
    )
    .bind(order.id)
    .bind(order.user_id)
    .bind(order.user_email)
    .bind(order.priced.total)
    .bind(&order.priced.currency)
    .bind(order.processing_duration_ms)
    .bind(order.created_at)
    .bind(line_nos)
    .bind(product_ids)
    .bind(names)
    .bind(unit_prices)
    .bind(quantities)
    .bind(line_totals)
    .bind(event.id)
    .bind(event.routing_key)
    .bind(event.event_type)
    .bind(event.correlation_id)
    .bind(&event.payload)
    .bind(&event.traceparent)
    .execute(conn)
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

/// Orders by status (tests and audits).
pub async fn count_orders(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(pool)
        .await
}
