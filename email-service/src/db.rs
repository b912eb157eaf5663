//! The email_log table: one SQL statement per function.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One order's email, as recorded.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EmailLog {
    pub order_id: Uuid,
    pub event_id: Uuid,
    pub recipient: String,
    pub kind: String,
    pub status: String,
    pub message_id: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub claimed_until: Option<DateTime<Utc>>,
}

/// What a new `'sending'` row holds.
#[derive(Debug, Clone)]
pub struct NewEmail<'a> {
    pub order_id: Uuid,
    pub event_id: Uuid,
    pub recipient: &'a str,
    pub kind: &'a str,
    pub message_id: &'a str,
}

/// What [`claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The row is ours until the lease ends: send, then record the outcome.
    /// `attempts` counts the earlier tries.
    Taken { attempts: i32 },
    /// The email was sent already: a duplicate delivery.
    AlreadySent,
    /// Another delivery of this order holds a live lease (it is sending now).
    HeldElsewhere,
}

/// Claims the order's email for `lease`: inserts a `'sending'` row, or takes
/// over an existing one that is not `'sent'` and whose lease (if any) has
/// expired. One statement, committed on its own, so no connection or row
/// lock is held while the SMTP server answers. Two deliveries of one order
/// racing here are serialised by the primary key: exactly one gets `Taken`.
pub async fn claim(pool: &PgPool, email: &NewEmail<'_>, lease: Duration) -> sqlx::Result<Claim> {
    let taken: Option<i32> = sqlx::query_scalar(
        "INSERT INTO email_log (order_id, event_id, recipient, kind, status, message_id, claimed_until) \
         VALUES ($1, $2, $3, $4, 'sending', $5, clock_timestamp() + $6 * interval '1 millisecond') \
         ON CONFLICT (order_id) DO UPDATE SET status = 'sending', claimed_until = EXCLUDED.claimed_until \
         WHERE email_log.status <> 'sent' \
           AND (email_log.claimed_until IS NULL OR email_log.claimed_until < clock_timestamp()) \
         RETURNING attempts",
    )
    .bind(email.order_id)
    .bind(email.event_id)
    .bind(email.recipient)
    .bind(email.kind)
    .bind(email.message_id)
    .bind(lease.as_millis() as f64)
    .fetch_optional(pool)
    .await?;
    if let Some(attempts) = taken {
        return Ok(Claim::Taken { attempts });
    }
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM email_log WHERE order_id = $1")
            .bind(email.order_id)
            .fetch_optional(pool)
            .await?;
    Ok(match status.as_deref() {
        Some("sent") => Claim::AlreadySent,
        _ => Claim::HeldElsewhere,
    })
}

/// The SMTP server accepted the mail; the lease is released. `sent_at` is
/// the moment of this statement (`clock_timestamp()`).
pub async fn mark_sent(pool: &PgPool, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE email_log SET status = 'sent', sent_at = clock_timestamp(), attempts = attempts + 1, \
         last_error = NULL, claimed_until = NULL WHERE order_id = $1",
    )
    .bind(order_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The SMTP server refused the mail for good.
pub async fn mark_failed(pool: &PgPool, order_id: Uuid, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE email_log SET status = 'failed', attempts = attempts + 1, last_error = $2, \
         claimed_until = NULL WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// A send that failed transiently: counted, the lease released, and the row
/// stays `'sending'` until a retry settles it.
pub async fn record_transient_failure(
    pool: &PgPool,
    order_id: Uuid,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE email_log SET attempts = attempts + 1, last_error = $2, claimed_until = NULL \
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The order's email, if any (tests and audits).
pub async fn find_email(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Option<EmailLog>> {
    sqlx::query_as("SELECT * FROM email_log WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

/// How many emails were recorded (tests and audits).
pub async fn count_emails(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM email_log")
        .fetch_one(pool)
        .await
}
