//! payment-service's part of an order's timeline (`GET /timeline/{id}`; see
//! `messaging::timeline`): the payment made or declined, its refund, the
//! events published, and any retry or dead-lettering of the order event or
//! the refund request.

use contract::api::TimelineStep;
use messaging::timeline::{TimelineSource, recorded_steps, step};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{SERVICE, db};

#[derive(Clone)]
pub struct PaymentTimeline(pub PgPool);

#[async_trait::async_trait]
impl TimelineSource for PaymentTimeline {
    async fn steps(&self, order_id: Uuid) -> sqlx::Result<Option<Vec<TimelineStep>>> {
        let mut steps = recorded_steps(&self.0, SERVICE, order_id, true).await?;
        if let Some(payment) = db::find_payment(&self.0, order_id).await? {
            let outcome = payment
                .transaction_id
                .or(payment.failure_reason)
                .unwrap_or_default();
            let detail = match payment.attempts {
                ..=1 => outcome,
                attempts => format!("{outcome} (attempt {attempts})"),
            };
            steps.push(step(
                payment.processed_at,
                SERVICE,
                &format!("payment.{}", payment.status),
                detail,
            ));
        }
        if let Some(refund) = db::refunds::find_refund(&self.0, order_id).await? {
            steps.push(step(
                refund.processed_at,
                SERVICE,
                "refund.completed",
                refund.transaction_id,
            ));
        }
        Ok(Some(steps))
    }
}
