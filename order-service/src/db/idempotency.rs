//! Stored answers for `Idempotency-Key`.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A first answer, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredAnswer {
    /// The validated request, as canonical JSON, to compare a retry with.
    pub request: String,
    pub response_status: i16,
    pub response_body: String,
    pub order_id: Uuid,
}

/// Records the answer for `(user_id, key)`; `false` when the key was already
/// taken. A concurrent transaction holding the same key makes this wait for
/// it, so of two concurrent requests exactly one creates an order.
pub async fn insert_answer(
    tx: &mut PgConnection,
    user_id: i64,
    key: &str,
    answer: &StoredAnswer,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request, response_status, response_body, order_id) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(key)
    .bind(&answer.request)
    .bind(answer.response_status)
    .bind(&answer.response_body)
    .bind(answer.order_id)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub async fn find_answer(
    pool: &PgPool,
    user_id: i64,
    key: &str,
) -> sqlx::Result<Option<StoredAnswer>> {
    sqlx::query_as(
        "SELECT request, response_status, response_body, order_id FROM idempotency_keys \
         WHERE user_id = $1 AND key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// Keys are kept two days (at least the 24 hours clients may retry within).
pub const PURGE_EXPIRED: &str =
    "DELETE FROM idempotency_keys WHERE created_at < now() - interval '2 days'";
