//! Orders and their lines.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use messaging::outbox::OutboxRow;
use rust_decimal::Decimal;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::domain::{
    order::{Order, OrderLine, PaymentSummary, RefundSummary},
    pricing::PricedOrder,
};

/// A new order as stored: the priced lines and what goes with them.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: Uuid,
    pub user_id: i64,
    pub user_email: String,
    pub priced: PricedOrder,
    pub created_at: DateTime<Utc>,
    pub processing_duration_ms: f64,
}

/// An order and its `order.order.created` outbox row, stored together.
#[derive(Debug, Clone)]
pub struct OrderWrite {
    pub order: NewOrder,
    pub event: OutboxRow,
}

/// Orders, their lines and their outbox rows in one statement
/// (data-modifying CTEs over `unnest`ed columns), if the tracked products
/// have the units for all of them; otherwise nothing at all. Answers
/// whether they were stored.
///
/// The statement locks the tracked products' rows (`FOR UPDATE`, in id
/// order, so two statements lock the same rows in the same order), checks
/// the batch's demand against the stock it finds, and takes the units. Run
/// on its own it is its own transaction, so a tracked product's row is
/// locked from that check to the commit and no longer: one round trip.
/// The lines of tracked products are marked `reserved`: they give their
/// units back if the order is not paid. The lines' foreign key to their
/// order is checked at the end of the statement, when the order rows exist.
pub async fn insert_orders_if_stocked(
    conn: impl PgExecutor<'_>,
    writes: &[&OrderWrite],
) -> sqlx::Result<bool> {
    let orders = || writes.iter().map(|w| &w.order);
    let events = || writes.iter().map(|w| &w.event);
    let lines = || {
        orders().flat_map(|o| {
            (1..)
                .zip(&o.priced.lines)
                .map(move |(line_no, line)| (o.id, line_no, line))
        })
    };
    let mut demand: BTreeMap<i64, i64> = BTreeMap::new();
    for (_, _, line) in lines() {
        *demand.entry(line.product_id).or_default() += i64::from(line.quantity);
    }
    sqlx::query_scalar(
        "WITH locked AS ( \
           SELECT id, stock FROM products WHERE id = ANY($21) AND stock IS NOT NULL \
           ORDER BY id FOR UPDATE \
         ), demand AS ( \
           SELECT d.id, d.units, l.id IS NOT NULL AS tracked, l.stock \
           FROM unnest($21::bigint[], $22::bigint[]) AS d(id, units) LEFT JOIN locked l USING (id) \
         ), fits AS ( \
           SELECT coalesce(bool_and(stock >= units), true) AS ok FROM demand WHERE tracked \
         ), new_orders AS ( \
           INSERT INTO orders (id, user_id, user_email, status, total_amount, currency, \
                               processing_duration_ms, created_at, updated_at) \
           SELECT id, user_id, user_email, 'pending', total, currency, duration_ms, created_at, created_at \
           FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::numeric[], $5::text[], \
                       $6::float8[], $7::timestamptz[]) \
             AS o(id, user_id, user_email, total, currency, duration_ms, created_at), fits \
           WHERE fits.ok \
         ), new_lines AS ( \
           INSERT INTO order_items (order_id, line_no, product_id, name, unit_price, quantity, line_total, \
                                    reserved) \
           SELECT l.*, d.tracked \
           FROM unnest($8::uuid[], $9::int[], $10::bigint[], $11::text[], $12::numeric[], \
                       $13::int[], $14::numeric[]) \
             AS l(order_id, line_no, product_id, name, unit_price, quantity, line_total) \
           JOIN demand d ON d.id = l.product_id, fits \
           WHERE fits.ok \
         ), taken AS ( \
           UPDATE products SET stock = products.stock - d.units \
           FROM demand d, fits \
           WHERE fits.ok AND d.tracked AND products.id = ANY($21) AND products.id = d.id \
         ), new_events AS ( \
           INSERT INTO outbox (id, routing_key, event_type, correlation_id, payload, traceparent) \
           SELECT e.* FROM unnest($15::uuid[], $16::text[], $17::text[], $18::uuid[], $19::text[], \
                                  $20::text[]) AS e, fits \
           WHERE fits.ok \
         ) \
         SELECT ok FROM fits",
    )
    .bind(orders().map(|o| o.id).collect::<Vec<_>>())
    .bind(orders().map(|o| o.user_id).collect::<Vec<_>>())
    .bind(orders().map(|o| o.user_email.as_str()).collect::<Vec<_>>())
    .bind(orders().map(|o| o.priced.total).collect::<Vec<_>>())
    .bind(orders().map(|o| o.priced.currency.as_str()).collect::<Vec<_>>())
    .bind(orders().map(|o| o.processing_duration_ms).collect::<Vec<_>>())
    .bind(orders().map(|o| o.created_at).collect::<Vec<_>>())
    .bind(lines().map(|(order_id, _, _)| order_id).collect::<Vec<_>>())
    .bind(lines().map(|(_, line_no, _)| line_no).collect::<Vec<i32>>())
    .bind(lines().map(|(_, _, l)| l.product_id).collect::<Vec<_>>())
    .bind(lines().map(|(_, _, l)| l.name.as_str()).collect::<Vec<_>>())
    .bind(lines().map(|(_, _, l)| l.unit_price).collect::<Vec<_>>())
    .bind(lines().map(|(_, _, l)| l.quantity).collect::<Vec<_>>())
    .bind(lines().map(|(_, _, l)| l.line_total).collect::<Vec<_>>())
    .bind(events().map(|e| e.id).collect::<Vec<_>>())
    .bind(events().map(|e| e.routing_key).collect::<Vec<_>>())
    .bind(events().map(|e| e.event_type).collect::<Vec<_>>())
    .bind(events().map(|e| e.correlation_id).collect::<Vec<_>>())
    .bind(events().map(|e| e.payload.as_str()).collect::<Vec<_>>())
    .bind(events().map(|e| e.traceparent.as_deref()).collect::<Vec<_>>())
    .bind(demand.keys().copied().collect::<Vec<_>>())
    .bind(demand.values().copied().collect::<Vec<_>>())
    .fetch_one(conn)
    .await
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
    cancel_reason: Option<String>,
    refund_transaction_id: Option<String>,
    refund_amount: Option<Decimal>,
    refunded_at: Option<DateTime<Utc>>,
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
    let refund = match (
        row.refund_transaction_id,
        row.refund_amount,
        row.refunded_at,
    ) {
        (Some(transaction_id), Some(amount), Some(processed_at)) => Some(RefundSummary {
            transaction_id,
            amount,
            processed_at,
        }),
        _ => None,
    };
    Ok(Some(Order {
        id: row.id,
        status: row.status,
        user_id: row.user_id,
        user_email: row.user_email,
        total_amount: row.total_amount,
        currency: row.currency,
        items,
        payment,
        cancel_reason: row.cancel_reason,
        refund,
        created_at: row.created_at,
        updated_at: row.updated_at,
        processing_duration_ms: row.processing_duration_ms,
    }))
}

async fn find_order_row(pool: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as(
        "SELECT id, status, user_id, user_email, total_amount, currency, processing_duration_ms, created_at, \
         updated_at, payment_status, payment_transaction_id, payment_amount, payment_failure_reason, \
         payment_processed_at, cancel_reason, refund_transaction_id, refund_amount, refunded_at \
         FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn find_order_lines(
    pool: impl PgExecutor<'_>,
    order_id: Uuid,
) -> sqlx::Result<Vec<OrderLine>> {
    let rows: Vec<(i64, String, Decimal, i32, Decimal)> = sqlx::query_as(
        "SELECT product_id, name, unit_price, quantity, line_total FROM order_items \
         WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(product_id, name, unit_price, quantity, line_total)| OrderLine {
                product_id,
                name,
                unit_price,
                quantity,
                line_total,
            },
        )
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::pricing::PricedLine;

    /// A write for lines of `(product_id, quantity)` at 1.00 each.
    pub(crate) fn write_of(lines: &[(i64, i32)]) -> OrderWrite {
        let lines: Vec<PricedLine> = lines
            .iter()
            .map(|&(product_id, quantity)| PricedLine {
                product_id,
                name: format!("Product {product_id}"),
                unit_price: Decimal::ONE,
                quantity,
                line_total: Decimal::from(quantity),
            })
            .collect();
        let id = Uuid::new_v4();
        OrderWrite {
            order: NewOrder {
                id,
                user_id: 1,
                user_email: "a@example.com".into(),
                priced: PricedOrder {
                    currency: "USD".into(),
                    total: lines.iter().map(|l| l.line_total).sum(),
                    lines,
                },
                created_at: Utc::now(),
                processing_duration_ms: 0.0,
            },
            event: OutboxRow {
                id: Uuid::new_v4(),
                routing_key: "order.order.created",
                event_type: "order.created",
                correlation_id: id,
                payload: "{}".into(),
                traceparent: None,
            },
        }
    }
}
