//! `payment.refund.processed` in: a `refund_pending` order becomes
//! `refunded` and its units return; a cancelled order's late charge is
//! marked refunded. Idempotent: the inbox row and the change are one
//! transaction, and a refund is recorded once per order
//! ([`apply_refund`]). Refunds are rare, so no batching.

use contract::events::RefundProcessed;
use messaging::consumer::{Handler, HandlerError, Incoming};
use sqlx::PgPool;

use crate::{
    SERVICE,
    db::refunds::{RefundApplied, apply_refund},
};

pub struct RefundResultHandler {
    pool: PgPool,
}

impl RefundResultHandler {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl Handler<RefundProcessed> for RefundResultHandler {
    async fn handle(&self, message: Incoming<RefundProcessed>) -> Result<(), HandlerError> {
        let event = &message.event;
        match apply_refund(&self.pool, SERVICE, event).await? {
            RefundApplied::UnknownOrder => {
                return Err(HandlerError::permanent(format!(
                    "refund for unknown order {}",
                    event.order_id
                )));
            }
            RefundApplied::Duplicate => {
                metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE).increment(1);
            }
            applied @ (RefundApplied::Refunded | RefundApplied::Recorded) => {
                metrics::counter!("orders_refunded_total").increment(1);
                tracing::info!(order_id = %event.order_id, refund = %event.refund_transaction_id, ?applied, "refund applied");
            }
        }
        Ok(())
    }
}
