//! Deleting parked messages for good.

use anyhow::Context;
use lapin::{Connection, options::QueuePurgeOptions};

use crate::scan::{Scan, ack, has_id};
use messaging::topology::QueueSpec;

/// Deletes parked messages for good: those whose `message_id` is `filter`
/// (every copy), or all ready messages (`queue.purge`) when `filter` is
/// `None`. Returns how many.
pub async fn purge(
    conn: &Connection,
    queue: &QueueSpec,
    filter: Option<&str>,
) -> anyhow::Result<usize> {
    let dlq = &queue.dead_letter_queue;
    let mut scan = Scan::open(conn, dlq, usize::MAX).await?;
    let Some(id) = filter else {
        let purged = scan
            .channel
            .queue_purge(dlq.as_str().into(), QueuePurgeOptions::default())
            .await
            .with_context(|| format!("purging {dlq}"));
        scan.close().await;
        return Ok(purged? as usize);
    };
    let mut purged = 0;
    let outcome = async {
        while let Some(delivery) = scan.next().await? {
            if has_id(&delivery, Some(id)) {
                ack(&delivery).await?;
                tracing::info!(message_id = %id, queue = %dlq, "purged a parked message");
                purged += 1;
            }
        }
        anyhow::Ok(())
    }
    .await;
    scan.close().await;
    outcome
        .map(|()| purged)
        .map_err(|e| e.context(format!("purge stopped after {purged} message(s)")))
}
