//! AMQP message properties and the headers the runtime adds.
//!
//! Every event carries `message_id` = `event_id`, `correlation_id` = order id,
//! `type` = `event_type`, `app_id`, `timestamp`, persistent delivery mode and
//! JSON content type. Retries and parking add headers so a parked message says
//! why it is there and how often it was tried.

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable, LongString, ShortString},
};

/// How many retries this message has had (set when republished to a tier).
pub const RETRY_COUNT: &str = "x-retry-count";
/// The error of the last failed attempt.
pub const LAST_ERROR: &str = "x-last-error";
/// Why the message was parked in the dead-letter queue.
pub const PARK_REASON: &str = "x-park-reason";
/// When and by whom it was parked.
pub const PARKED_AT: &str = "x-parked-at";
pub const PARKED_BY: &str = "x-parked-by";
/// The routing key it was first published with (retries travel through the
/// default exchange and lose it).
pub const ORIGINAL_ROUTING_KEY: &str = "x-original-routing-key";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// Properties for an event body published by `app_id`.
pub fn event_properties(
    message_id: &str,
    event_type: &str,
    correlation_id: &str,
    app_id: &str,
    timestamp_secs: u64,
) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        // 2 = persistent: written to disk, survives a broker restart.
        .with_delivery_mode(2)
        .with_message_id(message_id.into())
        .with_correlation_id(correlation_id.into())
        .with_type(event_type.into())
        .with_app_id(app_id.into())
        .with_timestamp(timestamp_secs)
}

pub fn get_str(properties: &BasicProperties, key: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

pub fn get_u32(properties: &BasicProperties, key: &str) -> Option<u32> {
    match properties.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongUInt(v) => Some(*v),
        AMQPValue::LongInt(v) => u32::try_from(*v).ok(),
        AMQPValue::LongLongInt(v) => u32::try_from(*v).ok(),
        AMQPValue::ShortUInt(v) => Some(u32::from(*v)),
        AMQPValue::ShortInt(v) => u32::try_from(*v).ok(),
        _ => None,
    }
}

/// The same properties with `headers` updated by `edit`.
pub fn with_headers(
    properties: &BasicProperties,
    edit: impl FnOnce(&mut FieldTable),
) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    edit(&mut headers);
    properties.clone().with_headers(headers)
}

pub fn insert_str(headers: &mut FieldTable, key: &str, value: &str) {
    // Header values are bounded: an error text can be long.
    let value: String = value.chars().take(1000).collect();
    headers.insert(
        ShortString::from(key),
        AMQPValue::LongString(LongString::from(value)),
    );
}

pub fn insert_u32(headers: &mut FieldTable, key: &str, value: u32) {
    headers.insert(ShortString::from(key), AMQPValue::LongUInt(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let props = with_headers(&BasicProperties::default(), |h| {
            insert_u32(h, RETRY_COUNT, 2);
            insert_str(h, LAST_ERROR, "smtp down");
        });
        assert_eq!(get_u32(&props, RETRY_COUNT), Some(2));
        assert_eq!(get_str(&props, LAST_ERROR).as_deref(), Some("smtp down"));
        assert_eq!(get_u32(&props, "absent"), None);
    }
}
