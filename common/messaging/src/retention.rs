//! Housekeeping of the outbox and the inbox: published outbox rows are kept
//! [`OUTBOX_RETENTION_DAYS`] (for audits and the order timeline), inbox rows
//! [`inbox::RETENTION_DAYS`] — far longer than any redelivery (retry tiers of
//! minutes, dead-letter replays of days), so deduplication never forgets a
//! message that can still come back.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::inbox;

pub const OUTBOX_RETENTION_DAYS: i32 = 7;

/// Deletes expired rows now and then every `every` until `stop`, running the
/// service's own `extra` clean-up statements too. A failed pass (database
/// down) is logged and tried again next time.
pub async fn run(
    pool: PgPool,
    every: Duration,
    extra: &'static [&'static str],
    stop: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        for statement in extra {
            if let Err(e) = sqlx::query(*statement).execute(&pool).await {
                tracing::warn!(error = %e, statement, "clean-up statement failed; will try again");
            }
        }
        match purge_once(&pool).await {
            Ok((outbox, inbox)) if outbox + inbox > 0 => {
                tracing::info!(outbox, inbox, "expired outbox and inbox rows deleted");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention pass failed; will try again"),
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One pass: (outbox rows, inbox rows) deleted.
pub async fn purge_once(pool: &PgPool) -> sqlx::Result<(u64, u64)> {
    let outbox = purge_published_outbox(pool).await?;
    let inbox = inbox::purge_expired(pool).await?;
    Ok((outbox, inbox))
}

async fn purge_published_outbox(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM outbox WHERE published_at < now() - make_interval(days => $1)")
            .bind(OUTBOX_RETENTION_DAYS)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
