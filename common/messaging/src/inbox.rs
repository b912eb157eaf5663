//! The inbox: which messages a consumer has already processed.
//!
//! A handler calls [`first_delivery`] inside the transaction that applies the
//! message's effect. The insert and the effect commit together, so a
//! redelivery (the consumer died after commit, before ack; or the outbox relay
//! published twice) finds the row and does nothing. Rows are kept for
//! [`RETENTION_DAYS`], far beyond the longest redelivery horizon (retry tiers
//! of minutes, dead-letter replays of days).
//!
//! Each consuming service's migrations create the table:
//! `processed_messages (consumer text, message_id uuid, processed_at timestamptz,
//! PRIMARY KEY (consumer, message_id))`.

use sqlx::PgConnection;
use uuid::Uuid;

pub const RETENTION_DAYS: i32 = 30;

/// Records `message_id` for `consumer`; `false` when it was already recorded.
pub async fn first_delivery(
    tx: &mut PgConnection,
    consumer: &str,
    message_id: Uuid,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO processed_messages (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(message_id)
    .execute(tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        metrics::counter!("duplicate_deliveries_total", "consumer" => consumer.to_owned())
            .increment(1);
    }
    Ok(inserted == 1)
}

/// Deletes inbox rows older than the retention.
pub async fn purge_expired(pool: &sqlx::PgPool) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM processed_messages WHERE processed_at < now() - make_interval(days => $1)",
    )
    .bind(RETENTION_DAYS)
    .execute(pool)
    .await?
    .rows_affected())
}
