//! Sending parked messages back to their work queue, each removed from the
//! dead-letter queue only once the broker has confirmed its republish.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use futures::FutureExt;
use lapin::{BasicProperties, Connection, message::Delivery, types::FieldTable};

use crate::{
    REPLAYED_AT,
    scan::{Scan, ack, has_id},
};
use messaging::{
    AmqpSettings,
    connection::Link,
    headers,
    publisher::{Outgoing, Publisher},
    topology::QueueSpec,
};

/// Headers a replayed message leaves behind.
///
/// The broker's death history has to go too: RabbitMQ drops a message that is
/// dead-lettered back into a queue already named in its `x-death` without a
/// rejection in between ("dead-letter cycle"). A replayed message that had
/// been dead-lettered from its work queue (delivery limit) would be dropped
/// silently on its way back from the first retry tier (TTL expiry).
const CLEARED_ON_REPLAY: &[&str] = &[
    headers::PARK_REASON,
    headers::PARKED_AT,
    headers::PARKED_BY,
    headers::LAST_ERROR,
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "x-first-death-exchange",
    "x-last-death-reason",
    "x-last-death-queue",
    "x-last-death-exchange",
    "x-delivery-count",
];

/// Publishes parked messages back to their work queue and removes them from
/// the dead-letter queue: those whose `message_id` is `filter` (every copy),
/// or all when `filter` is `None`; at most `limit`. Returns how many.
///
/// Each one is published through the default exchange to the work queue with
/// confirms, and acked on the dead-letter queue only after a positive,
/// non-returned confirm. On the first failure the replay stops with an error
/// (saying how many went back before it); that message stays parked.
pub async fn replay(
    conn: &Arc<Connection>,
    settings: &AmqpSettings,
    queue: &QueueSpec,
    filter: Option<&str>,
    limit: usize,
) -> anyhow::Result<usize> {
    // The default exchange needs no declaring.
    let link = Link::fixed(conn.clone());
    let publisher = Publisher::new(link, settings.confirm_timeout, |_| async { Ok(()) }.boxed());
    let mut scan = Scan::open(conn, &queue.dead_letter_queue, usize::MAX).await?;
    let mut replayed = 0;
    let outcome = async {
        while replayed < limit {
            let Some(delivery) = scan.next().await? else {
                break;
            };
            if !has_id(&delivery, filter) {
                continue; // stays unacked: back in the queue when the scan closes
            }
            let id = describe_id(&delivery);
            let message = Outgoing {
                exchange: String::new(),
                routing_key: queue.name.clone(),
                payload: delivery.data.clone(),
                properties: replay_properties(&delivery.properties, unix_now()),
            };
            publisher
                .publish(message)
                .await
                .with_context(|| format!("publishing {id} back to {}", queue.name))?;
            ack(&delivery).await.with_context(|| {
                format!(
                    "{id} was published back to {} but could not be removed from {}; \
                     it is still parked (consumers are idempotent: a second replay is harmless)",
                    queue.name, queue.dead_letter_queue
                )
            })?;
            tracing::info!(message_id = %id, queue = %queue.name, "replayed a parked message");
            replayed += 1;
        }
        anyhow::Ok(())
    }
    .await;
    scan.close().await;
    outcome
        .map(|()| replayed)
        .map_err(|e| e.context(format!("replay stopped after {replayed} message(s)")))
}

fn describe_id(delivery: &Delivery) -> String {
    match delivery.properties.message_id() {
        Some(id) => format!("message {id}"),
        None => "a message without message_id".to_owned(),
    }
}

/// The properties a replayed message travels with: a fresh retry count, no
/// park headers or death history, and `x-replayed-at`.
fn replay_properties(properties: &BasicProperties, now_secs: u64) -> BasicProperties {
    let mut kept = properties
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    kept.retain(|key, _| !CLEARED_ON_REPLAY.contains(&key.as_str()));
    let mut table = FieldTable::from(kept);
    headers::insert_u32(&mut table, headers::RETRY_COUNT, 0);
    headers::insert_str(&mut table, REPLAYED_AT, &now_secs.to_string());
    properties.clone().with_headers(table)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use lapin::types::{AMQPValue, FieldArray};

    use super::*;
    use crate::parked::tests::death;

    #[test]
    fn a_replayed_message_keeps_its_identity_and_loses_its_park_and_death_headers() {
        let mut props = headers::with_headers(
            &BasicProperties::default().with_message_id("m1".into()),
            |h| {
                headers::insert_str(h, headers::PARK_REASON, "boom");
                headers::insert_u32(h, headers::RETRY_COUNT, 3);
                headers::insert_str(h, headers::PARKED_AT, "1");
                headers::insert_str(h, headers::PARKED_BY, "svc");
                headers::insert_str(h, headers::LAST_ERROR, "boom");
                headers::insert_str(h, headers::ORIGINAL_ROUTING_KEY, "order.order.created");
                headers::insert_str(h, headers::TRACEPARENT, "00-abc-def-01");
            },
        );
        props = headers::with_headers(&props, |h| {
            h.insert(
                "x-death".into(),
                AMQPValue::FieldArray(FieldArray::from(vec![death("q", "rejected", 1)])),
            );
        });
        let replayed = replay_properties(&props, 42);
        let keys: Vec<String> = replayed
            .headers()
            .as_ref()
            .unwrap()
            .inner()
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "traceparent",
                "x-original-routing-key",
                "x-replayed-at",
                "x-retry-count"
            ]
        );
        assert_eq!(headers::get_u32(&replayed, headers::RETRY_COUNT), Some(0));
        assert_eq!(
            headers::get_str(&replayed, REPLAYED_AT).as_deref(),
            Some("42")
        );
        assert_eq!(
            replayed.message_id().as_ref().map(|s| s.as_str()),
            Some("m1")
        );
    }
}
