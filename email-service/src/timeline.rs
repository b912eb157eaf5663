//! email-service's part of an order's timeline (`GET /timeline/{id}`; see
//! `messaging::timeline`): the email sent, still being sent, or failed, and any
//! retry or dead-lettering of the payment event.

use contract::api::TimelineStep;
use messaging::timeline::{TimelineSource, recorded_steps, step};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{SERVICE, db};

#[derive(Clone)]
pub struct EmailTimeline(pub PgPool);

#[async_trait::async_trait]
impl TimelineSource for EmailTimeline {
    async fn steps(&self, order_id: Uuid) -> sqlx::Result<Option<Vec<TimelineStep>>> {
        let mut steps = recorded_steps(&self.0, SERVICE, order_id, false).await?;
        if let Some(email) = db::find_email(&self.0, order_id).await? {
            let (at, name, detail) = match (email.status.as_str(), email.sent_at) {
                ("sent", Some(sent_at)) => (sent_at, "email.sent", email.kind),
                ("failed", _) => (
                    email.created_at,
                    "email.failed",
                    email.last_error.unwrap_or(email.kind),
                ),
                _ => (
                    email.created_at,
                    "email.sending",
                    format!("{} attempts so far", email.attempts),
                ),
            };
            steps.push(step(at, SERVICE, name, detail));
        }
        Ok(Some(steps))
    }
}
