//! The email_log table: one SQL statement per function.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
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

/// Inserts a `'sending'` row unless the order already has one. Against a
/// concurrent, uncommitted insert of the same order this waits for that
/// transaction to end.
pub async fn insert_sending(tx: &mut PgConnection, email: &NewEmail<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO email_log (order_id, event_id, recipient, kind, status, message_id) \
         VALUES ($1, $2, $3, $4, 'sending', $5) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(email.order_id)
    .bind(email.event_id)
    .bind(email.recipient)
    .bind(email.kind)
    .bind(email.message_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// The order's row, locked until the transaction ends.
pub async fn lock_email(tx: &mut PgConnection, order_id: Uuid) -> sqlx::Result<EmailLog> {
    sqlx::query_as("SELECT * FROM email_log WHERE order_id = $1 FOR UPDATE")
        .bind(order_id)
        .fetch_one(tx)
        .await
}

/// The SMTP server accepted the mail. `sent_at` is the moment of this
/// statement (`clock_timestamp()`), not the start of the transaction, which
/// began before the SMTP conversation.
pub async fn mark_sent(tx: &mut PgConnection, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE email_log SET status = 'sent', sent_at = clock_timestamp(), attempts = attempts + 1, last_error = NULL \
         WHERE order_id = $1",
    )
    .bind(order_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// The SMTP server refused the mail for good.
pub async fn mark_failed(tx: &mut PgConnection, order_id: Uuid, error: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE email_log SET status = 'failed', attempts = attempts + 1, last_error = $2 WHERE order_id = $1")
        .bind(order_id)
        .bind(error)
        .execute(tx)
        .await?;
    Ok(())
}

/// A send that failed transiently: counted, and the row stays (or becomes
/// again, for a replayed `'failed'` one) `'sending'` until a retry settles it.
pub async fn record_transient_failure(
    tx: &mut PgConnection,
    order_id: Uuid,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE email_log SET status = 'sending', attempts = attempts + 1, last_error = $2 WHERE order_id = $1")
        .bind(order_id)
        .bind(error)
        .execute(tx)
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
