//! order-service's part of an order's timeline (`GET /timeline/{id}`; see
//! `messaging::timeline`): created, its events published, paid or failed, and
//! any retry or dead-lettering of the payment result.

use contract::api::TimelineStep;
use messaging::timeline::{TimelineSource, recorded_steps, step};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{SERVICE, db};

#[derive(Clone)]
pub struct OrderTimeline(pub PgPool);

#[async_trait::async_trait]
impl TimelineSource for OrderTimeline {
    async fn steps(&self, order_id: Uuid) -> sqlx::Result<Option<Vec<TimelineStep>>> {
        let Some(order) = db::orders::find_order(&self.0, order_id).await? else {
            return Ok(None);
        };
        let mut steps = vec![step(
            order.created_at,
            SERVICE,
            "order.created",
            format!("{} {}", order.total_amount, order.currency),
        )];
        if order.status != "pending" {
            let detail = order
                .payment
                .and_then(|p| p.transaction_id.or(p.failure_reason));
            steps.push(step(
                order.updated_at,
                SERVICE,
                &format!("order.{}", order.status),
                detail,
            ));
        }
        steps.extend(recorded_steps(&self.0, SERVICE, order_id, true).await?);
        Ok(Some(steps))
    }
}
