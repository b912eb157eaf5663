//! `order.refund.requested` in, at most one refund out.
//!
//! order-service asks for a refund when the customer cancels a paid order,
//! or when a charge arrives for an order already cancelled. The request must
//! name the order's completed payment, with its amount and currency;
//! anything else is a permanent error (parked in
//! `payment_service_refund_queue.dlq`). Nothing is recorded for it, so once
//! the cause is fixed a replay is processed like a first delivery.
//!
//! Idempotent like the charge path, in the one statement that stores the
//! refund ([`refunds::record_refund`]): the inbox row for the request's
//! event id, and `refunds.order_id UNIQUE` (no second refund for an order,
//! whatever the request, whichever replica). The `payment.refund.processed`
//! event goes to the outbox in that statement, only if the refund row was
//! inserted. A cheap check before calling the provider skips the (slow,
//! simulated) refund for orders already refunded.
//!
//! Refunds are rare: plain statements, no batcher.

use std::sync::Arc;

use chrono::Utc;
use contract::events::{Event, PaymentStatus, RefundProcessed, RefundRequested, SCHEMA_VERSION};
use messaging::{
    consumer::{Handler, HandlerError, Incoming},
    outbox::OutboxRow,
};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    SERVICE,
    db::{
        self, Payment,
        refunds::{self, Refund, RefundRecorded, RefundWrite},
    },
    provider::Provider,
};

pub struct RefundHandler {
    pool: PgPool,
    provider: Provider,
    /// Wakes the outbox relay after a commit.
    relay: Arc<Notify>,
}

impl RefundHandler {
    pub fn new(pool: PgPool, provider: Provider, relay: Arc<Notify>) -> Self {
        Self {
            pool,
            provider,
            relay,
        }
    }
}

#[async_trait::async_trait]
impl Handler<RefundRequested> for RefundHandler {
    async fn handle(&self, message: Incoming<RefundRequested>) -> Result<(), HandlerError> {
        let request = &message.event;
        let payment = db::find_payment(&self.pool, request.order_id).await?;
        let charge = refundable(request, payment).map_err(HandlerError::permanent)?;
        if refunds::refund_exists(&self.pool, request.order_id).await? {
            tracing::info!(order_id = %request.order_id, "order already refunded; duplicate request ignored");
            count_duplicate();
            return Ok(());
        }

        let refund_transaction_id = self
            .provider
            .refund(request, message.attempt)
            .await
            .map_err(HandlerError::transient)?;
        let (refund, event) =
            refund_and_event(request, &charge, refund_transaction_id, message.attempt);

        let write = RefundWrite {
            message_id: request.event_id(),
            refund: refund.clone(),
            event: OutboxRow::of(&event),
        };
        match refunds::record_refund(&self.pool, SERVICE, &write).await? {
            RefundRecorded::Stored => self.relay.notify_one(),
            RefundRecorded::Duplicate | RefundRecorded::AlreadyRefunded => {
                // Processed meanwhile by another delivery, or another replica
                // refunded this order first: its refund stands, this one was
                // never recorded.
                count_duplicate();
                return Ok(());
            }
        }

        metrics::counter!("refunds_total").increment(1);
        tracing::info!(order_id = %request.order_id, transaction_id = %refund.transaction_id, "refund processed");
        Ok(())
    }
}

fn count_duplicate() {
    metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE).increment(1);
}

/// The charge a refund gives back: the order's payment and its `TXN-` id.
struct Charge {
    payment: Payment,
    transaction_id: String,
}

/// The charge `request` may refund: the order's payment, completed, with
/// the id, amount and currency the request names. Anything else never
/// becomes refundable by retrying.
fn refundable(request: &RefundRequested, payment: Option<Payment>) -> Result<Charge, String> {
    let order_id = request.order_id;
    let Some(payment) = payment else {
        return Err(format!("order {order_id} has no payment to refund"));
    };
    if payment.status != PaymentStatus::Completed.as_str() {
        return Err(format!(
            "the payment of order {order_id} is {}, not completed: nothing to refund",
            payment.status
        ));
    }
    if payment.id != request.payment_id {
        return Err(format!(
            "the refund names payment {}, but order {order_id} was paid by payment {}",
            request.payment_id, payment.id
        ));
    }
    if payment.amount != request.amount || payment.currency != request.currency {
        return Err(format!(
            "the refund is for {} {}, but order {order_id} was charged {} {}",
            request.amount, request.currency, payment.amount, payment.currency
        ));
    }
    let Some(transaction_id) = payment.transaction_id.clone() else {
        return Err(format!(
            "the payment of order {order_id} has no transaction id"
        ));
    };
    Ok(Charge {
        payment,
        transaction_id,
    })
}

fn refund_and_event(
    request: &RefundRequested,
    charge: &Charge,
    refund_transaction_id: String,
    attempt: u32,
) -> (Refund, RefundProcessed) {
    let payment = &charge.payment;
    let now = Utc::now();
    let refund = Refund {
        id: Uuid::new_v4(),
        order_id: payment.order_id,
        payment_id: payment.id,
        amount: payment.amount,
        currency: payment.currency.clone(),
        transaction_id: refund_transaction_id,
        source_event_id: request.event_id,
        attempts: i32::try_from(attempt + 1).unwrap_or(i32::MAX),
        processed_at: now,
    };
    let event = RefundProcessed {
        event_type: RefundProcessed::EVENT_TYPE.to_owned(),
        event_id: Uuid::new_v4(),
        timestamp: now,
        schema_version: SCHEMA_VERSION,
        refund_id: refund.id,
        payment_id: payment.id,
        order_id: payment.order_id,
        user_id: request.user_id,
        user_email: request.user_email.clone(),
        amount: payment.amount,
        currency: payment.currency.clone(),
        transaction_id: charge.transaction_id.clone(),
        refund_transaction_id: refund.transaction_id.clone(),
        items: request.items.clone(),
    };
    (refund, event)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use contract::events::CancelReason;
    use rust_decimal::Decimal;

    use super::*;

    fn payment(status: &str) -> Payment {
        Payment {
            id: Uuid::new_v4(),
            order_id: Uuid::new_v4(),
            user_id: 1,
            amount: Decimal::from_str("1299.99").unwrap(),
            currency: "USD".into(),
            status: status.into(),
            transaction_id: (status == "completed").then(|| "TXN-0123456789AB".into()),
            failure_reason: (status == "failed").then(|| "card_declined".into()),
            source_event_id: Uuid::new_v4(),
            attempts: 1,
            processed_at: Utc::now(),
        }
    }

    fn request_for(payment: &Payment) -> RefundRequested {
        RefundRequested {
            event_type: RefundRequested::EVENT_TYPE.into(),
            event_id: Uuid::new_v4(),
            timestamp: Utc::now(),
            schema_version: SCHEMA_VERSION,
            order_id: payment.order_id,
            payment_id: payment.id,
            transaction_id: "TXN-0123456789AB".into(),
            user_id: 1,
            user_email: "a@example.com".into(),
            amount: payment.amount,
            currency: payment.currency.clone(),
            items: vec![],
            reason: CancelReason::Customer,
        }
    }

    #[test]
    fn the_orders_completed_payment_is_refundable() {
        let paid = payment("completed");
        let mut request = request_for(&paid);
        // The same amount written with another scale is the same amount.
        request.amount = Decimal::from_str("1299.990").unwrap();
        let charge = refundable(&request, Some(paid.clone())).unwrap();
        assert_eq!(charge.payment, paid);
        assert_eq!(charge.transaction_id, "TXN-0123456789AB");
    }

    #[test]
    fn no_payment_a_failed_one_or_another_charge_is_not_refundable() {
        let paid = payment("completed");
        let request = request_for(&paid);
        let error = refundable(&request, None).err().unwrap();
        assert!(error.contains("no payment"), "{error}");

        let declined = payment("failed");
        let error = refundable(&request_for(&declined), Some(declined))
            .err()
            .unwrap();
        assert!(error.contains("failed, not completed"), "{error}");

        let mut other_payment = request.clone();
        other_payment.payment_id = Uuid::new_v4();
        let mut other_amount = request.clone();
        other_amount.amount = Decimal::from_str("1299.98").unwrap();
        let mut other_currency = request.clone();
        other_currency.currency = "EUR".into();
        for (request, expected) in [
            (other_payment, "was paid by payment"),
            (other_amount, "was charged 1299.99 USD"),
            (other_currency, "was charged 1299.99 USD"),
        ] {
            let error = refundable(&request, Some(paid.clone())).err().unwrap();
            assert!(error.contains(expected), "{error}");
        }
    }
}
