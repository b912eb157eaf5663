//! Looking at parked messages without removing any: [`count`], [`list`] and
//! [`show`].

use lapin::Connection;

use crate::{
    ParkedDetail, ParkedMessage,
    scan::{Scan, has_id},
};
use messaging::topology::QueueSpec;

/// Ready messages in the dead-letter queue of `queue`.
pub async fn count(conn: &Connection, queue: &QueueSpec) -> anyhow::Result<u32> {
    let scan = Scan::open(conn, &queue.dead_letter_queue, usize::MAX).await?;
    let depth = scan.depth;
    scan.close().await;
    Ok(depth)
}

/// Up to `limit` parked messages, oldest first, without removing any.
pub async fn list(
    conn: &Connection,
    queue: &QueueSpec,
    limit: usize,
) -> anyhow::Result<Vec<ParkedMessage>> {
    let mut scan = Scan::open(conn, &queue.dead_letter_queue, limit).await?;
    let mut parked = Vec::new();
    let outcome = async {
        while let Some(delivery) = scan.next().await? {
            parked.push(ParkedMessage::from_delivery(&delivery, &queue.name));
        }
        anyhow::Ok(())
    }
    .await;
    // Nothing was acked: closing the channel returns every message.
    scan.close().await;
    outcome.map(|()| parked)
}

/// Every parked message whose `message_id` is `message_id`, in full, without
/// removing any.
pub async fn show(
    conn: &Connection,
    queue: &QueueSpec,
    message_id: &str,
) -> anyhow::Result<Vec<ParkedDetail>> {
    let mut scan = Scan::open(conn, &queue.dead_letter_queue, usize::MAX).await?;
    let mut found = Vec::new();
    let outcome = async {
        while let Some(delivery) = scan.next().await? {
            if has_id(&delivery, Some(message_id)) {
                found.push(ParkedDetail {
                    summary: ParkedMessage::from_delivery(&delivery, &queue.name),
                    properties: delivery.properties,
                    body: delivery.data,
                });
            }
        }
        anyhow::Ok(())
    }
    .await;
    scan.close().await;
    outcome.map(|()| found)
}
