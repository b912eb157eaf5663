//! `order.order.created` in, exactly one payment out.
//!
//! Idempotent in two layers, both in the one statement that stores the
//! payment ([`db::record_payments`]): the inbox row for the event id (a
//! republished or redelivered event is a no-op) and `payments.order_id
//! UNIQUE` (no second payment for an order, whatever the event). The
//! `payment.payment.processed` event is written to the outbox in that same
//! statement, so it exists exactly when the payment does.
//!
//! A cheap check before calling the provider skips the (slow, simulated)
//! charge for orders already paid, e.g. after a crash between commit and ack.
//!
//! Both statements go through a [`Batcher`]: the deliveries in flight at
//! the same moment share one statement and one commit, each with its own
//! answer (`messaging::db::batch`).
//!
//! `order.refund.requested` is handled by [`RefundHandler`] ([`refund`]).

use std::sync::Arc;

use chrono::Utc;
use contract::events::{Event, OrderCreated, PaymentProcessed, PaymentStatus, SCHEMA_VERSION};
use messaging::{
    consumer::{Handler, HandlerError, Incoming},
    db::batch::Batcher,
    outbox::OutboxRow,
};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    SERVICE,
    db::{Payment, PaymentWrite, PaymentsExist, RecordPayments, Recorded},
    provider::{Charge, Provider},
};

pub mod refund;

pub use refund::RefundHandler;

pub struct PaymentHandler {
    paid_already: Batcher<PaymentsExist>,
    payments: Batcher<RecordPayments>,
    provider: Provider,
    /// Wakes the outbox relay after a commit.
    relay: Arc<Notify>,
}

impl PaymentHandler {
    /// Starts the handler's statement batchers on the current runtime.
    pub fn new(pool: PgPool, provider: Provider, relay: Arc<Notify>) -> Self {
        Self {
            paid_already: Batcher::start(PaymentsExist, pool.clone()),
            payments: Batcher::start(RecordPayments { consumer: SERVICE }, pool),
            provider,
            relay,
        }
    }
}

#[async_trait::async_trait]
impl Handler<OrderCreated> for PaymentHandler {
    async fn handle(&self, message: Incoming<OrderCreated>) -> Result<(), HandlerError> {
        let order = &message.event;
        if self.paid_already.submit(order.order_id).await? {
            tracing::info!(order_id = %order.order_id, "order already paid; duplicate delivery ignored");
            metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE).increment(1);
            return Ok(());
        }

        let charge = self
            .provider
            .charge(order, message.attempt)
            .await
            .map_err(HandlerError::transient)?;
        let (payment, event) = payment_and_event(order, &charge, message.attempt);

        let write = PaymentWrite {
            message_id: order.event_id(),
            payment: payment.clone(),
            event: OutboxRow::of(&event),
        };
        match self.payments.submit(write).await? {
            Recorded::Stored => self.relay.notify_one(),
            Recorded::Duplicate | Recorded::AlreadyPaid => {
                // Processed meanwhile by another delivery, or another replica
                // paid this order first.
                metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE).increment(1);
                return Ok(());
            }
        }

        let reason = charge_reason(&charge);
        metrics::counter!("payments_total", "status" => payment.status.clone(), "reason" => reason)
            .increment(1);
        tracing::info!(order_id = %order.order_id, status = %payment.status, transaction_id = payment.transaction_id.as_deref().unwrap_or("-"), "payment processed");
        Ok(())
    }
}

/// The `reason` label of `payments_total`: `none` when approved, else the
/// provider's (bounded) decline reason.
fn charge_reason(charge: &Charge) -> &'static str {
    match charge {
        Charge::Approved { .. } => "none",
        Charge::Declined { reason } => reason,
    }
}

fn payment_and_event(
    order: &OrderCreated,
    charge: &Charge,
    attempt: u32,
) -> (Payment, PaymentProcessed) {
    let (status, transaction_id, failure_reason) = match charge {
        Charge::Approved { transaction_id } => {
            (PaymentStatus::Completed, Some(transaction_id.clone()), None)
        }
        Charge::Declined { reason } => (PaymentStatus::Failed, None, Some((*reason).to_owned())),
    };
    let now = Utc::now();
    let payment = Payment {
        id: Uuid::new_v4(),
        order_id: order.order_id,
        user_id: order.user_id,
        amount: order.total_amount,
        currency: order.currency.clone(),
        status: status.as_str().to_owned(),
        transaction_id: transaction_id.clone(),
        failure_reason: failure_reason.clone(),
        source_event_id: order.event_id,
        attempts: i32::try_from(attempt + 1).unwrap_or(i32::MAX),
        processed_at: now,
    };
    let event = PaymentProcessed {
        event_type: PaymentProcessed::EVENT_TYPE.to_owned(),
        event_id: Uuid::new_v4(),
        timestamp: now,
        schema_version: SCHEMA_VERSION,
        payment_id: payment.id,
        order_id: order.order_id,
        user_id: order.user_id,
        user_email: order.user_email.clone(),
        amount: order.total_amount,
        currency: order.currency.clone(),
        status,
        transaction_id,
        failure_reason,
        items: order.items.clone(),
    };
    (payment, event)
}
