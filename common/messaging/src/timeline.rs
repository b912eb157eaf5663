//! An order's timeline: every step the pipeline took for one order, with its
//! time, so "where is my order?" is answered without reading logs.
//!
//! Each service answers for its own part from its own database, at
//! `GET /timeline/{order_id}` on its internal port; the gateway merges the
//! three answers (`GET /api/orders/{id}/timeline`). The steps come from:
//!
//! - the service's domain tables (order created and paid, payment made,
//!   email sent), which the services write anyway;
//! - its outbox (`event.published`, when the relay's publish was confirmed);
//! - its journal (`message_journal`), where the consumer runtime notes what
//!   domain tables do not show: a delivery scheduled for a retry and why,
//!   and a delivery dead-lettered. The happy path writes nothing there.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use contract::{api::TimelineStep, problem::Problem};

/// Writes journal rows for one service.
#[derive(Clone)]
pub struct Journal {
    pool: PgPool,
    service: &'static str,
}

impl Journal {
    pub fn new(pool: PgPool, service: &'static str) -> Self {
        Self { pool, service }
    }

    /// Notes `step` for `order_id`. Best effort: the journal is for people,
    /// so a failed write is logged and never fails the message.
    pub async fn record(&self, order_id: Uuid, step: &str, detail: &str) {
        let written = sqlx::query(
            "INSERT INTO message_journal (order_id, service, step, detail) VALUES ($1, $2, $3, $4)",
        )
        .bind(order_id)
        .bind(self.service)
        .bind(step)
        .bind(truncate(detail, 500))
        .execute(&self.pool)
        .await;
        if let Err(error) = written {
            tracing::warn!(%order_id, step, %error, "journal entry not written");
        }
    }
}

/// Journal rows are kept as long as inbox rows (30 days); the services run
/// this with their hourly clean-up.
pub const PURGE_JOURNAL: &str =
    "DELETE FROM message_journal WHERE at < now() - make_interval(days => 30)";

/// For a service without an outbox (no `messaging::retention` task): runs
/// [`PURGE_JOURNAL`] now and every `every` until `stop`.
pub async fn run_retention(
    pool: PgPool,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    loop {
        if let Err(error) = sqlx::query(PURGE_JOURNAL).execute(&pool).await {
            tracing::warn!(%error, "journal clean-up failed; will try again");
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// A step at `at`, of `service`.
pub fn step(
    at: DateTime<Utc>,
    service: &str,
    step: &str,
    detail: impl Into<Option<String>>,
) -> TimelineStep {
    TimelineStep {
        at,
        service: service.to_owned(),
        step: step.to_owned(),
        detail: detail.into(),
    }
}

/// The journal's and the outbox's steps for `order_id` (`with_outbox`:
/// whether this service has an outbox).
pub async fn recorded_steps(
    pool: &PgPool,
    service: &str,
    order_id: Uuid,
    with_outbox: bool,
) -> sqlx::Result<Vec<TimelineStep>> {
    let journal: Vec<(DateTime<Utc>, String, Option<String>)> = sqlx::query_as(
        "SELECT at, step, detail FROM message_journal WHERE order_id = $1 ORDER BY at, id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    let mut steps: Vec<TimelineStep> = journal
        .into_iter()
        .map(|(at, name, detail)| step(at, service, &name, detail))
        .collect();
    if with_outbox {
        let published: Vec<(DateTime<Utc>, String, i32)> = sqlx::query_as(
            "SELECT published_at, event_type, attempts FROM outbox \
             WHERE correlation_id = $1 AND published_at IS NOT NULL ORDER BY published_at",
        )
        .bind(order_id)
        .fetch_all(pool)
        .await?;
        steps.extend(published.into_iter().map(|(at, event_type, attempts)| {
            let detail = if attempts > 1 {
                format!("{event_type} (after {attempts} publish attempts)")
            } else {
                event_type
            };
            step(at, service, "event.published", detail)
        }));
    }
    Ok(steps)
}

/// How one service lists its part of an order's timeline; `Ok(None)` means
/// the order is unknown to it.
#[async_trait::async_trait]
pub trait TimelineSource: Clone + Send + Sync + 'static {
    async fn steps(&self, order_id: Uuid) -> sqlx::Result<Option<Vec<TimelineStep>>>;
}

/// `GET /timeline/{order_id}`: this service's steps, oldest first; `404` if
/// the order is unknown to it, `503` if its database is unavailable.
pub fn router<S: TimelineSource>(source: S) -> Router {
    Router::new()
        .route("/timeline/{order_id}", get(answer::<S>))
        .with_state(source)
}

async fn answer<S: TimelineSource>(State(source): State<S>, Path(raw): Path<String>) -> Response {
    let Ok(order_id) = Uuid::try_parse(&raw) else {
        return Problem::bad_request("malformed order id: expected a UUID").into_response();
    };
    match source.steps(order_id).await {
        Ok(Some(mut steps)) => {
            steps.sort_by_key(|s| s.at);
            Json(steps).into_response()
        }
        Ok(None) => Problem::not_found("no such order").into_response(),
        Err(error) => {
            tracing::error!(%order_id, %error, "timeline query failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "Service unavailable",
                "the timeline could not be read; try again shortly",
            )
            .into_response()
        }
    }
}
