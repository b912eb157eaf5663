//! `payment.payment.processed` in: the order moves from `pending` to `paid`
//! or `failed`.
//!
//! Idempotent: the inbox row for the event id and the status update are one
//! statement ([`settle_orders`](crate::db::settlement::settle_orders); the
//! results in flight at the same moment share it, through a [`Batcher`]),
//! and the update only touches a `pending` order, so a redelivered or
//! republished event changes nothing.
//! An event for an order this service never stored is a permanent error
//! (parked for inspection, and replayable: nothing was recorded for it).

use contract::events::PaymentProcessed;
use messaging::{
    consumer::{Handler, HandlerError, Incoming},
    db::batch::Batcher,
};
use sqlx::PgPool;

use crate::{
    SERVICE,
    db::settlement::{SettleOrders, Settlement},
};

pub struct PaymentResultHandler {
    settlements: Batcher<SettleOrders>,
}

impl PaymentResultHandler {
    /// Starts the handler's statement batcher on the current runtime.
    pub fn new(pool: PgPool) -> Self {
        Self {
            settlements: Batcher::start(SettleOrders { consumer: SERVICE }, pool),
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
