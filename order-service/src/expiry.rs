//! The expiry sweep: a `pending` order whose payment result has not arrived
//! within `ORDER_PAYMENT_TIMEOUT_SECS` is cancelled (`payment_timeout`) and
//! its units go back to stock. A charge that arrives after that is refunded
//! (`handler`). Every replica sweeps; `FOR UPDATE SKIP LOCKED` shares the
//! work out, and the cancellation is the same transaction as a customer's.

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::cancellation::expire_pending;

/// The most orders one transaction cancels.
const BATCH: i64 = 100;

/// Sweeps until `stop`, every tenth of the timeout (at least every
/// second, at most every 30 s), so an order is cancelled soon after it
/// expires. A database error is logged and the next sweep tries again.
pub async fn run(
    pool: PgPool,
    timeout_secs: u64,
    relay: Arc<Notify>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let every = Duration::from_secs((timeout_secs / 10).clamp(1, 30));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
        loop {
            match expire_pending(&pool, timeout_secs, BATCH).await {
                Ok(expired) if expired.is_empty() => break,
                Ok(expired) => {
                    relay.notify_one();
                    metrics::counter!("orders_expired_total").increment(expired.len() as u64);
                    tracing::info!(
                        count = expired.len(),
                        timeout_secs,
                        "pending orders cancelled: no payment in time"
                    );
                    if (expired.len() as i64) < BATCH || stop.is_cancelled() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot cancel expired orders now; trying again at the next sweep");
                    break;
                }
            }
        }
    }
}
