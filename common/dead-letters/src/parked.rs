//! What a parked message says about itself: the park headers the consumer
//! wrote, or for a message the broker dead-lettered, its `x-death` history.

use chrono::{DateTime, Utc};
use lapin::{
    BasicProperties,
    message::Delivery,
    types::{AMQPValue, FieldTable},
};
use serde::Serialize;

use crate::PREVIEW_BYTES;
use messaging::headers;

/// A summary of one parked message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParkedMessage {
    /// The AMQP `message_id` (the event id); absent on a malformed message
    /// published without one.
    pub message_id: Option<String>,
    /// Why it was parked: `x-park-reason`, or for a message the broker
    /// dead-lettered itself, the reason recorded in `x-death`.
    pub reason: Option<String>,
    /// Retries it had before it was parked (`x-retry-count`).
    pub retries: Option<u32>,
    pub parked_at: Option<DateTime<Utc>>,
    /// The service that parked it, or `broker` when RabbitMQ dead-lettered it.
    pub parked_by: Option<String>,
    /// The routing key it was first published with.
    pub original_routing_key: Option<String>,
    /// The first [`PREVIEW_BYTES`] bytes of the body, as lossy UTF-8.
    pub body_preview: String,
    pub body_bytes: usize,
}

/// A parked message in full: its summary, properties and body.
#[derive(Debug, Clone)]
pub struct ParkedDetail {
    pub summary: ParkedMessage,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

impl ParkedMessage {
    /// Summarises a delivery from the dead-letter queue of work queue `work_queue`.
    pub fn from_delivery(delivery: &Delivery, work_queue: &str) -> Self {
        let properties = &delivery.properties;
        let death = latest_death(properties, work_queue);
        let parked_by_us = headers::get_str(properties, headers::PARK_REASON);
        let reason = parked_by_us.clone().or_else(|| {
            let (reason, queue) = match &death {
                Some(death) => (death_str(death, "reason")?, death_str(death, "queue")),
                None => (
                    headers::get_str(properties, "x-first-death-reason")?,
                    headers::get_str(properties, "x-first-death-queue"),
                ),
            };
            let mut text = format!("dead-lettered by the broker: {reason}");
            if let Some(queue) = queue {
                text.push_str(&format!(" (from {queue})"));
            }
            if let Some(error) = headers::get_str(properties, headers::LAST_ERROR) {
                text.push_str(&format!("; last error: {error}"));
            }
            Some(text)
        });
        let parked_at = headers::get_str(properties, headers::PARKED_AT)
            .and_then(|s| s.trim().parse::<i64>().ok())
            .or_else(|| match death.as_ref()?.inner().get("time")? {
                AMQPValue::Timestamp(t) => i64::try_from(*t).ok(),
                _ => None,
            })
            .and_then(|secs| DateTime::from_timestamp(secs, 0));
        let parked_by = headers::get_str(properties, headers::PARKED_BY).or_else(|| {
            (parked_by_us.is_none() && (death.is_some() || reason.is_some()))
                .then(|| "broker".to_owned())
        });
        let original_routing_key = headers::get_str(properties, headers::ORIGINAL_ROUTING_KEY)
            .or_else(|| match death.as_ref()?.inner().get("routing-keys")? {
                AMQPValue::FieldArray(keys) => keys.as_slice().first().and_then(value_str),
                _ => None,
            });
        let preview = &delivery.data[..delivery.data.len().min(PREVIEW_BYTES)];
        Self {
            message_id: properties.message_id().as_ref().map(|id| id.to_string()),
            reason,
            retries: headers::get_u32(properties, headers::RETRY_COUNT),
            parked_at,
            parked_by,
            original_routing_key,
            body_preview: String::from_utf8_lossy(preview).into_owned(),
            body_bytes: delivery.data.len(),
        }
    }
}

/// The `x-death` entry that explains why the message is in the dead-letter
/// queue: the most recent one from the work queue itself (entries are sorted
/// most recent first), else the most recent one. Entries from retry tiers
/// (`expired`) are only how retries travel, not why the message was parked.
fn latest_death(properties: &BasicProperties, work_queue: &str) -> Option<FieldTable> {
    let deaths = match properties.headers().as_ref()?.inner().get("x-death")? {
        AMQPValue::FieldArray(deaths) => deaths,
        _ => return None,
    };
    let tables: Vec<&FieldTable> = deaths
        .as_slice()
        .iter()
        .filter_map(|d| match d {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        })
        .collect();
    tables
        .iter()
        .find(|t| death_str(t, "queue").as_deref() == Some(work_queue))
        .or_else(|| tables.first())
        .map(|t| (*t).clone())
}

fn death_str(death: &FieldTable, key: &str) -> Option<String> {
    value_str(death.inner().get(key)?)
}

fn value_str(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use lapin::types::{FieldArray, LongString, ShortString};

    use super::*;

    /// An `x-death` entry as RabbitMQ writes it (the replay tests use it too).
    pub(crate) fn death(queue: &str, reason: &str, time: u64) -> AMQPValue {
        let mut t = FieldTable::default();
        t.insert("queue".into(), AMQPValue::LongString(queue.into()));
        t.insert("reason".into(), AMQPValue::LongString(reason.into()));
        t.insert("time".into(), AMQPValue::Timestamp(time));
        t.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
                LongString::from("order.order.created"),
            )])),
        );
        AMQPValue::FieldTable(t)
    }

    fn delivery(properties: BasicProperties, body: &[u8]) -> Delivery {
        let mut d = Delivery::mock(
            1,
            ShortString::from(""),
            ShortString::from("q.dlq"),
            false,
            body.to_vec(),
        );
        d.properties = properties;
        d
    }

    #[test]
    fn a_broker_dead_lettered_message_is_explained_by_its_work_queue_death_not_by_a_retry_tier() {
        let mut h = FieldTable::default();
        // Most recent first: the work queue's delivery limit, after a retry
        // tier's expiry (how a retry travels back).
        h.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![
                death("q.retry.1s", "expired", 100),
                death("q", "delivery_limit", 200),
            ])),
        );
        h.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString("expired".into()),
        );
        let d = delivery(
            BasicProperties::default()
                .with_message_id("m1".into())
                .with_headers(h),
            b"{}",
        );
        let parked = ParkedMessage::from_delivery(&d, "q");
        assert_eq!(
            parked.reason.as_deref(),
            Some("dead-lettered by the broker: delivery_limit (from q)")
        );
        assert_eq!(parked.parked_by.as_deref(), Some("broker"));
        assert_eq!(parked.parked_at, DateTime::from_timestamp(200, 0));
        assert_eq!(
            parked.original_routing_key.as_deref(),
            Some("order.order.created")
        );
    }

    #[test]
    fn the_park_reason_header_wins_and_the_preview_is_bounded() {
        let props = headers::with_headers(&BasicProperties::default(), |h| {
            headers::insert_str(h, headers::PARK_REASON, "malformed message: eof");
            headers::insert_u32(h, headers::RETRY_COUNT, 3);
            headers::insert_str(h, headers::PARKED_AT, "1700000000");
            headers::insert_str(h, headers::PARKED_BY, "payment-service");
        });
        let body = vec![b'a'; 2000];
        let parked = ParkedMessage::from_delivery(&delivery(props, &body), "q");
        assert_eq!(parked.reason.as_deref(), Some("malformed message: eof"));
        assert_eq!(parked.retries, Some(3));
        assert_eq!(parked.parked_by.as_deref(), Some("payment-service"));
        assert_eq!(parked.parked_at, DateTime::from_timestamp(1_700_000_000, 0));
        assert_eq!(parked.message_id, None);
        assert_eq!(parked.body_bytes, 2000);
        assert_eq!(parked.body_preview.len(), PREVIEW_BYTES);
    }
}
