//! Cancelling orders, by the customer or because their payment did not
//! arrive in time, and asking for a refund of a charge the order can no
//! longer keep.
//!
//! Each change is one transaction that locks the order's row first
//! (`FOR UPDATE`), so it is judged by the order's latest status and is
//! serialised with the settlement of a payment result for it
//! (the settlement of payment results locks the same row): whichever commits
//! first, the other sees it. The status change, the units given back and
//! the event to publish (outbox) commit together.

use chrono::Utc;
use contract::events::{
    CancelReason, Event, OrderCancelled, OrderCreatedItem, RefundRequested, SCHEMA_VERSION,
};
use messaging::outbox;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{orders::find_order_lines, stock};

/// What a cancel request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    /// No such order for this user.
    NotFound,
    /// The pending order is now `cancelled`; its units are back.
    Cancelled,
    /// The paid order is now `refund_pending` (or already was): its refund
    /// is asked of payment-service.
    RefundPending,
    /// The order is failed, cancelled or refunded: nothing changed.
    NotCancellable(String),
}

/// The order as a cancellation needs it, read under its row lock.
#[derive(sqlx::FromRow)]
pub(crate) struct LockedOrder {
    pub id: Uuid,
    pub status: String,
    pub user_id: i64,
    pub user_email: String,
    pub total_amount: Decimal,
    pub currency: String,
    pub payment_id: Option<Uuid>,
    pub payment_status: Option<String>,
    pub payment_transaction_id: Option<String>,
    pub payment_amount: Option<Decimal>,
    pub cancel_reason: Option<String>,
}

/// Locks and reads the order (of `user_id`, when given).
pub(crate) async fn lock_order(
    tx: &mut PgConnection,
    order_id: Uuid,
    user_id: Option<i64>,
) -> sqlx::Result<Option<LockedOrder>> {
    sqlx::query_as(
        "SELECT id, status, user_id, user_email, total_amount, currency, payment_id, payment_status, \
         payment_transaction_id, payment_amount, cancel_reason FROM orders \
         WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2) FOR UPDATE",
    )
    .bind(order_id)
    .bind(user_id)
    .fetch_optional(tx)
    .await
}

/// The customer's cancel: a `pending` order becomes `cancelled`, a `paid`
/// one `refund_pending`; a repeat while the refund is pending changes
/// nothing. `user_id` must be the order's.
pub async fn cancel_by_customer(
    pool: &PgPool,
    order_id: Uuid,
    user_id: i64,
) -> sqlx::Result<Cancellation> {
    let mut tx = pool.begin().await?;
    let Some(order) = lock_order(&mut tx, order_id, Some(user_id)).await? else {
        return Ok(Cancellation::NotFound);
    };
    let outcome = match order.status.as_str() {
        "pending" => {
            cancel_pending(&mut tx, &order, CancelReason::Customer).await?;
            Cancellation::Cancelled
        }
        "paid" => {
            sqlx::query(
                "UPDATE orders SET status = 'refund_pending', cancel_reason = 'customer', \
                 cancelled_at = now(), refund_requested_at = now(), updated_at = now() WHERE id = $1",
            )
            .bind(order.id)
            .execute(&mut *tx)
            .await?;
            request_refund(&mut tx, &order, CancelReason::Customer).await?;
            Cancellation::RefundPending
        }
        "refund_pending" => Cancellation::RefundPending,
        other => Cancellation::NotCancellable(other.to_owned()),
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Cancels the pending orders created more than `timeout_secs` ago, at most
/// `limit` of them (the oldest), with `cancel_reason` `payment_timeout`.
/// Orders another replica is cancelling right now are skipped. Returns the
/// ids cancelled.
pub async fn expire_pending(
    pool: &PgPool,
    timeout_secs: u64,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = 'pending' \
           AND created_at < now() - $1 * interval '1 second' \
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(timeout_secs as f64)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    for &id in &ids {
        let order = lock_order(&mut tx, id, None)
            .await?
            .expect("locked by this transaction");
        cancel_pending(&mut tx, &order, CancelReason::PaymentTimeout).await?;
    }
    tx.commit().await?;
    Ok(ids)
}

/// `pending` → `cancelled`: units back, `order.order.cancelled` out.
async fn cancel_pending(
    tx: &mut PgConnection,
    order: &LockedOrder,
    reason: CancelReason,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE orders SET status = 'cancelled', cancel_reason = $2, cancelled_at = now(), \
         updated_at = now() WHERE id = $1",
    )
    .bind(order.id)
    .bind(reason.as_str())
    .execute(&mut *tx)
    .await?;
    stock::release(&mut *tx, &[order.id]).await?;
    let event = OrderCancelled {
        event_type: OrderCancelled::EVENT_TYPE.to_owned(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: SCHEMA_VERSION,
        order_id: order.id,
        user_id: order.user_id,
        user_email: order.user_email.clone(),
        total_amount: order.total_amount,
        currency: order.currency.clone(),
        items: event_items(tx, order.id).await?,
        reason,
    };
    outbox::enqueue(tx, &event).await
}

/// `order.refund.requested` for the order's recorded charge.
pub(crate) async fn request_refund(
    tx: &mut PgConnection,
    order: &LockedOrder,
    reason: CancelReason,
) -> sqlx::Result<()> {
    let (Some(payment_id), Some(transaction_id), Some(amount)) = (
        order.payment_id,
        order.payment_transaction_id.clone(),
        order.payment_amount,
    ) else {
        return Err(sqlx::Error::Protocol(format!(
            "order {} has no recorded charge to refund",
            order.id
        )));
    };
    let event = RefundRequested {
        event_type: RefundRequested::EVENT_TYPE.to_owned(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: SCHEMA_VERSION,
        order_id: order.id,
        payment_id,
        transaction_id,
        user_id: order.user_id,
        user_email: order.user_email.clone(),
        amount,
        currency: order.currency.clone(),
        items: event_items(tx, order.id).await?,
        reason,
    };
    outbox::enqueue(tx, &event).await
}

/// The order's lines as events carry them.
async fn event_items(tx: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Vec<OrderCreatedItem>> {
    Ok(find_order_lines(tx, order_id)
        .await?
        .into_iter()
        .map(|l| OrderCreatedItem {
            product_id: l.product_id,
            name: l.name,
            quantity: l.quantity,
            price: l.unit_price,
        })
        .collect())
}
