//! `payment.payment.processed` in: the order moves from `pending` to `paid`
//! or `failed`.
//!
//! Idempotent: the inbox row for the event id and the status update are one
//! statement ([`db::orders::settle_order`]), and the update only touches a
//! `pending` order, so a redelivered or republished event changes nothing.
//! An event for an order this service never stored is a permanent error
//! (parked for inspection, and replayable: nothing was recorded for it).

use common::{
    events::PaymentProcessed,
    messaging::consumer::{Handler, HandlerError, Incoming},
};
use sqlx::PgPool;

use crate::{
    SERVICE,
    db::{self, orders::Settlement},
};

pub struct PaymentResultHandler {
    pub pool: PgPool,
}

#[async_trait::async_trait]
impl Handler<PaymentProcessed> for PaymentResultHandler {
    async fn handle(&self, message: Incoming<PaymentProcessed>) -> Result<(), HandlerError> {
        let event = &message.event;
        match db::orders::settle_order(&self.pool, SERVICE, event).await? {
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
