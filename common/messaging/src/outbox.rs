//! The transactional outbox and its relay.
//!
//! A service never publishes from its request or message handler. It calls
//! [`enqueue`] in the same transaction as the business change, so an event
//! exists if and only if its data was committed (no ghost events, no lost
//! ones). The [`Relay`] then publishes pending rows with publisher confirms and
//! marks a row published only after a positive, non-returned confirm.
//!
//! The relay claims rows with `FOR UPDATE SKIP LOCKED` inside a transaction
//! held across the publish, so several replicas can run relays on one table
//! without publishing a row twice concurrently. A crash between confirm and
//! commit publishes the row again later (at-least-once); consumers dedupe by
//! `message_id` = `event_id`. For the same reason that commit is asynchronous
//! (`synchronous_commit = off`): if PostgreSQL itself crashes within the
//! fraction of a second before the WAL writer flushes it, the rows are simply
//! published again.
//!
//! The relay wakes at once when the same process commits a row ([`Relay::notifier`])
//! and polls every `poll_interval` for rows committed by other replicas or left
//! by a crash. After a pass, at most once per `poll_interval`, it measures the
//! backlog (`outbox_pending_events`, `outbox_oldest_pending_age_seconds`).
//!
//! Each row keeps the W3C trace context of the span that wrote it (column
//! `traceparent`), and the relay publishes it as the `traceparent` header:
//! the trace survives the commit/relay hop, and a relay that runs after a
//! restart still continues the right trace.
//!
//! Each producing service's migrations create the table (see
//! `order-service/migrations`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    headers,
    publisher::{Outgoing, Publisher},
};
use contract::events::Event;

/// Writes `event` to the outbox inside the caller's transaction, with the
/// trace context of the current span (published as the `traceparent` header).
pub async fn enqueue<E: Event>(tx: &mut PgConnection, event: &E) -> sqlx::Result<()> {
    let row = OutboxRow::of(event);
    sqlx::query(
        "INSERT INTO outbox (id, routing_key, event_type, correlation_id, payload, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(row.id)
    .bind(row.routing_key)
    .bind(row.event_type)
    .bind(row.correlation_id)
    .bind(row.payload)
    .bind(row.traceparent)
    .execute(tx)
    .await?;
    Ok(())
}

/// The columns of one outbox row, as [`enqueue`] writes them, for a service
/// that writes its event in the same statement as its business rows (one
/// round trip instead of a transaction of several; see order-service's
/// `insert_order_with_event`).
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: Uuid,
    pub routing_key: &'static str,
    pub event_type: &'static str,
    pub correlation_id: Uuid,
    pub payload: String,
    /// The trace context of the current span, if any.
    pub traceparent: Option<String>,
}

impl OutboxRow {
    pub fn of<E: Event>(event: &E) -> Self {
        Self {
            id: event.event_id(),
            routing_key: E::ROUTING_KEY,
            event_type: E::EVENT_TYPE,
            correlation_id: event.order_id(),
            payload: serde_json::to_string(event).expect("events always serialise"),
            traceparent: runtime::trace_context::current().map(|t| t.to_string()),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct PendingRow {
    id: Uuid,
    routing_key: String,
    event_type: String,
    correlation_id: Uuid,
    payload: String,
    created_at: DateTime<Utc>,
    traceparent: Option<String>,
}

/// Publishes pending outbox rows.
pub struct Relay {
    pub pool: PgPool,
    pub publisher: Publisher,
    pub exchange: String,
    /// `app_id` of the published messages.
    pub app_id: &'static str,
    pub batch_size: i64,
    pub poll_interval: Duration,
    notify: Arc<Notify>,
}

impl Relay {
    pub fn new(pool: PgPool, publisher: Publisher, exchange: String, app_id: &'static str) -> Self {
        // At 0 from the start: a dashboard shows 0, not "no data".
        for counter in ["outbox_published_total", "outbox_publish_failures_total"] {
            metrics::counter!(counter, "app" => app_id).increment(0);
        }
        Self {
            pool,
            publisher,
            exchange,
            app_id,
            batch_size: 200,
            poll_interval: Duration::from_secs(1),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Call `notify_one()` on this after committing an outbox row.
    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Publishes until `shutdown`, then makes a last pass so rows committed
    /// during the drain go out before the process exits.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Duration::ZERO;
        let mut backlog_measured: Option<Instant> = None;
        loop {
            let result = self.drain_pending().await;
            // After the pass, at most once per poll interval however often
            // commits wake the relay: one indexed query, not one per event.
            if backlog_measured.is_none_or(|at| at.elapsed() >= self.poll_interval) {
                self.record_backlog().await;
                backlog_measured = Some(Instant::now());
            }
            backoff = match result {
                Ok(()) => Duration::ZERO,
                Err(e) => {
                    let next =
                        (backoff * 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
                    tracing::warn!(error = format!("{e:#}"), retry_in = ?next, "outbox relay pass failed");
                    next
                }
            };
            if !backoff.is_zero() {
                // After a failure, wait out the backoff even if notified meanwhile.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => continue,
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
        if let Err(e) = tokio::time::timeout(Duration::from_secs(10), self.drain_pending()).await {
            tracing::warn!(error = %e, "final outbox flush timed out; pending rows go out after restart");
        }
        Ok(())
    }

    /// Sets `outbox_pending_events` and `outbox_oldest_pending_age_seconds`
    /// (0 when nothing is pending). Served by the partial index on pending
    /// rows. A failed query (database down) leaves the last values and is
    /// only logged: the relay's own error says what is wrong.
    async fn record_backlog(&self) {
        let backlog: sqlx::Result<(i64, Option<f64>)> = sqlx::query_as(
            "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 \
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await;
        match backlog {
            Ok((pending, oldest_age)) => {
                metrics::gauge!("outbox_pending_events", "app" => self.app_id).set(pending as f64);
                metrics::gauge!("outbox_oldest_pending_age_seconds", "app" => self.app_id)
                    .set(oldest_age.unwrap_or(0.0).max(0.0));
            }
            Err(e) => tracing::debug!(error = %e, "outbox backlog not measured"),
        }
    }

    /// Publishes batches until none is left; errors if any row failed.
    pub async fn drain_pending(&self) -> anyhow::Result<()> {
        loop {
            let (published, failed) = self.publish_batch().await?;
            if failed > 0 {
                anyhow::bail!("{failed} outbox rows could not be published");
            }
            if published < self.batch_size as usize {
                return Ok(());
            }
        }
    }

    /// One claimed batch: publish, then record what was confirmed.
    async fn publish_batch(&self) -> anyhow::Result<(usize, usize)> {
        // Marking rows published need not wait for the WAL flush: a commit
        // lost to a PostgreSQL crash only republishes those rows, which is
        // the at-least-once the consumers already dedupe. It saves a flush
        // per pass that the checkouts' own commits would queue behind.
        let mut tx = self
            .pool
            .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
            .await?;
        let rows: Vec<PendingRow> = sqlx::query_as(
            "SELECT id, routing_key, event_type, correlation_id, payload, created_at, traceparent FROM outbox \
             WHERE published_at IS NULL ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok((0, 0));
        }
        runtime::failpoint::hit("relay-before-publish");
        let messages = rows.iter().map(|row| self.outgoing(row)).collect();
        let results = self.publisher.publish_all(messages).await;
        if results.iter().any(Result::is_ok) {
            runtime::failpoint::hit("relay-after-confirm");
        }

        let mut published = Vec::new();
        let mut failed_ids = Vec::new();
        let mut failed_errors = Vec::new();
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => published.push(row.id),
                Err(e) => {
                    failed_ids.push(row.id);
                    failed_errors.push(e.to_string());
                }
            }
        }
        mark_published(&mut tx, &published).await?;
        record_failures(&mut tx, &failed_ids, &failed_errors).await?;
        tx.commit().await?;

        metrics::counter!("outbox_published_total", "app" => self.app_id)
            .increment(published.len() as u64);
        if let Some(oldest) = rows.first() {
            let lag = (Utc::now() - oldest.created_at)
                .to_std()
                .unwrap_or_default();
            metrics::histogram!("outbox_publish_lag_seconds", "app" => self.app_id)
                .record(lag.as_secs_f64());
        }
        if !failed_ids.is_empty() {
            metrics::counter!("outbox_publish_failures_total", "app" => self.app_id)
                .increment(failed_ids.len() as u64);
            tracing::warn!(count = failed_ids.len(), first_error = %failed_errors[0], "outbox rows not confirmed; will retry");
        }
        Ok((published.len(), failed_ids.len()))
    }

    fn outgoing(&self, row: &PendingRow) -> Outgoing {
        let timestamp = u64::try_from(row.created_at.timestamp()).unwrap_or_default();
        let mut properties = headers::event_properties(
            &row.id.to_string(),
            &row.event_type,
            &row.correlation_id.to_string(),
            self.app_id,
            timestamp,
        );
        if let Some(traceparent) = &row.traceparent {
            properties = headers::with_headers(&properties, |h| {
                headers::insert_str(h, headers::TRACEPARENT, traceparent);
            });
        }
        Outgoing {
            exchange: self.exchange.clone(),
            routing_key: row.routing_key.clone(),
            payload: row.payload.clone().into_bytes(),
            properties,
        }
    }
}

async fn mark_published(tx: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(ids)
        .execute(tx)
        .await?;
    Ok(())
}

async fn record_failures(
    tx: &mut PgConnection,
    ids: &[Uuid],
    errors: &[String],
) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, last_error = f.error \
         FROM unnest($1::uuid[], $2::text[]) AS f(id, error) WHERE outbox.id = f.id",
    )
    .bind(ids)
    .bind(errors)
    .execute(tx)
    .await?;
    Ok(())
}
