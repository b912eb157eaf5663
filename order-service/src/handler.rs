//! `payment.payment.processed` in: the order moves from `pending` to `paid`
//! or `failed`.
//!
//! Idempotent: the inbox row for the event id and the status update commit
//! together, and the update only touches a `pending` order, so a redelivered
//! or republished event changes nothing. An event for an order this service
//! never stored is a permanent error (parked for inspection).

use common::{
    events::{Event, PaymentProcessed},
    messaging::{
        consumer::{Handler, HandlerError, Incoming},
        inbox,
    },
};
use sqlx::PgPool;

use crate::{SERVICE, db};

pub struct PaymentResultHandler {
    pub pool: PgPool,
}

#[async_trait::async_trait]
impl Handler<PaymentProcessed> for PaymentResultHandler {
    async fn handle(&self, message: Incoming<PaymentProcessed>) -> Result<(), HandlerError> {
        let event = &message.event;
        let mut tx = self.pool.begin().await?;
        if !inbox::first_delivery(&mut tx, SERVICE, event.event_id()).await? {
            return Ok(());
        }
        if !db::orders::apply_payment_result(&mut tx, event).await? {
            if !db::orders::order_exists(&mut tx, event.order_id).await? {
                return Err(HandlerError::permanent(format!(
                    "payment for unknown order {}",
                    event.order_id
                )));
            }
            tracing::info!(order_id = %event.order_id, "order already settled; payment result ignored");
        }
        tx.commit().await?;
        metrics::counter!("orders_settled_total", "payment_status" => event.status.as_str())
            .increment(1);
        tracing::info!(order_id = %event.order_id, status = event.status.as_str(), "payment result applied");
        Ok(())
    }
}
