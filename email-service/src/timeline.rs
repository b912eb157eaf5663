//! email-service's part of an order's timeline (`GET /timeline/{id}`; see
//! `messaging::timeline`): each of the order's emails (confirmation or
//! payment failed, cancellation, refund) sent, still being sent, or failed,
//! and any retry or dead-lettering of the events that asked for them.

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
        for email in db::find_emails(&self.0, order_id).await? {
            steps.push(email_step(email));
        }
        Ok(Some(steps))
    }
}

/// One email's step: `email.sent` with its kind as detail, `email.failed`
/// with the server's refusal, or `email.sending` with the attempts so far.
fn email_step(email: db::EmailLog) -> TimelineStep {
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
    step(at, SERVICE, name, detail)
}
