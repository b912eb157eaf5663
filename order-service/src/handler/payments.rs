//! `payment.payment.processed` in: the order moves from `pending` to `paid`
//! or `failed`; a charge for an order cancelled meanwhile is refunded.
//!
//! Idempotent: the inbox row for the event id and the status update are one
//! statement ([`settle_orders`](crate::db::settlement::settle_orders); the
//! results in flight at the same moment share it, through a [`Batcher`]),
//! and the update only touches a `pending` order, so a redelivered or
//! republished event changes nothing.
//! An event for an order this service never stored is a permanent error
//! (parked for inspection, and replayable: nothing was recorded for it).

use std::sync::Arc;

use contract::events::PaymentProcessed;
use messaging::{
    consumer::{Handler, HandlerError, Incoming},
    db::batch::Batcher,
};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::{
    SERVICE,
    db::{
        refunds::{LateCharge, request_late_refund},
        settlement::{SettleOrders, Settlement},
    },
};

pub struct PaymentResultHandler {
    pool: PgPool,
    settlements: Batcher<SettleOrders>,
    /// Wakes the outbox relay after a refund request is committed.
    relay: Arc<Notify>,
}

impl PaymentResultHandler {
    /// Starts the handler's statement batcher on the current runtime.
    pub fn new(pool: PgPool, relay: Arc<Notify>) -> Self {
        Self {
            settlements: Batcher::start(SettleOrders { consumer: SERVICE }, pool.clone()),
            pool,
            relay,
        }
    }
}

#[async_trait::async_trait]
impl Handler<PaymentProcessed> for PaymentResultHandler {
    async fn handle(&self, message: Incoming<PaymentProcessed>) -> Result<(), HandlerError> {
        let event = &message.event;
        match self.settlements.submit(event.clone()).await? {
            Settlement::UnknownOrder => {
                return Err(HandlerError::permanent(format!(
                    "payment for unknown order {}",
                    event.order_id
                )));
            }
            Settlement::Duplicate => {
                metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE).increment(1);
                return Ok(());
            }
            Settlement::LateCharge => {
                match request_late_refund(&self.pool, SERVICE, event).await? {
                    LateCharge::RefundRequested => {
                        self.relay.notify_one();
                        metrics::counter!("late_charges_total").increment(1);
                        tracing::warn!(order_id = %event.order_id, "payment arrived for a cancelled order; refund requested");
                    }
                    LateCharge::Duplicate => {
                        metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE)
                            .increment(1);
                    }
                    LateCharge::AlreadyRecorded => {
                        tracing::info!(order_id = %event.order_id, "cancelled order's charge already recorded; payment result ignored");
                    }
                }
            }
            Settlement::AlreadySettled => {
                tracing::info!(order_id = %event.order_id, "order already settled; payment result ignored");
            }
            Settlement::Settled => {
                metrics::counter!("orders_settled_total", "payment_status" => event.status.as_str())
                    .increment(1);
                tracing::info!(order_id = %event.order_id, status = event.status.as_str(), "payment result applied");
            }
        }
        Ok(())
    }
}
