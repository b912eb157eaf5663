//! Refunds, from order-service's side: the charge that arrived for an order
//! already cancelled, and payment-service's answer to a refund request.

use contract::events::{CancelReason, PaymentProcessed, RefundProcessed};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    cancellation::{lock_order, request_refund},
    stock,
};

/// What became of a charge for a cancelled order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateCharge {
    /// Recorded on the order, and its refund asked of payment-service.
    RefundRequested,
    /// This event was processed before: nothing changed.
    Duplicate,
    /// The order has a charge recorded already (from another event).
    AlreadyRecorded,
}

/// Records a charge that arrived for a cancelled order and asks for its
/// refund, with the event's inbox row, in one transaction. The order stays
/// `cancelled`: it is never kept.
pub async fn request_late_refund(
    pool: &PgPool,
    consumer: &str,
    event: &PaymentProcessed,
) -> sqlx::Result<LateCharge> {
    let mut tx = pool.begin().await?;
    let Some(mut order) = lock_order(&mut tx, event.order_id, None).await? else {
        return Err(sqlx::Error::RowNotFound);
    };
    if !first_delivery(&mut tx, consumer, event.event_id).await? {
        return Ok(LateCharge::Duplicate);
    }
    if order.payment_status.is_some() {
        tx.commit().await?;
        return Ok(LateCharge::AlreadyRecorded);
    }
    sqlx::query(
        "UPDATE orders SET payment_id = $2, payment_status = $3, payment_transaction_id = $4, \
         payment_amount = $5, payment_processed_at = $6, refund_requested_at = now(), \
         updated_at = now() WHERE id = $1",
    )
    .bind(order.id)
    .bind(event.payment_id)
    .bind(event.status.as_str())
    .bind(&event.transaction_id)
    .bind(event.amount)
    .bind(event.timestamp)
    .execute(&mut *tx)
    .await?;
    order.payment_id = Some(event.payment_id);
    order.payment_transaction_id = event.transaction_id.clone();
    order.payment_amount = Some(event.amount);
    let reason = order
        .cancel_reason
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(CancelReason::Customer);
    request_refund(&mut tx, &order, reason).await?;
    tx.commit().await?;
    Ok(LateCharge::RefundRequested)
}

/// What a refund result did to its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundApplied {
    /// `refund_pending` → `refunded`; its units are back in stock.
    Refunded,
    /// Recorded on a cancelled order (a late charge's refund).
    Recorded,
    /// This event, or another refund of the order, was applied before.
    Duplicate,
    /// No such order: nothing recorded.
    UnknownOrder,
}

/// Applies `payment.refund.processed` with its inbox row, in one
/// transaction: the refund is recorded once per order; a `refund_pending`
/// order becomes `refunded` and gives its units back (a cancelled order
/// gave them back when it was cancelled).
pub async fn apply_refund(
    pool: &PgPool,
    consumer: &str,
    event: &RefundProcessed,
) -> sqlx::Result<RefundApplied> {
    let mut tx = pool.begin().await?;
    let Some(order) = lock_order(&mut tx, event.order_id, None).await? else {
        return Ok(RefundApplied::UnknownOrder);
    };
    if !first_delivery(&mut tx, consumer, event.event_id).await? {
        return Ok(RefundApplied::Duplicate);
    }
    let recorded = sqlx::query(
        "UPDATE orders SET refund_transaction_id = $2, refund_amount = $3, refunded_at = $4, \
         status = CASE status WHEN 'refund_pending' THEN 'refunded' ELSE status END, \
         updated_at = now() WHERE id = $1 AND refund_transaction_id IS NULL",
    )
    .bind(order.id)
    .bind(&event.refund_transaction_id)
    .bind(event.amount)
    .bind(event.timestamp)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let applied = match (recorded, order.status.as_str()) {
        (0, _) => RefundApplied::Duplicate,
        (_, "refund_pending") => {
            stock::release(&mut *tx, &[order.id]).await?;
            RefundApplied::Refunded
        }
        _ => RefundApplied::Recorded,
    };
    tx.commit().await?;
    Ok(applied)
}

/// Records the event in the inbox; `false` when it was processed before.
async fn first_delivery(
    tx: &mut PgConnection,
    consumer: &str,
    message_id: Uuid,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO processed_messages (consumer, message_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(message_id)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
