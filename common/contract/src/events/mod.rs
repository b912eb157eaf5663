//! The event contract: the JSON bodies that travel over RabbitMQ.
//!
//! Field names and shapes are the contract of `docs/architecture.md` (the
//! checkout's two stay compatible with the seed Python services): flat JSON, money as a decimal string, timestamps in
//! RFC 3339 with an offset, `schema_version` 1. Consumers are tolerant readers:
//! unknown fields are ignored, but a wrong `event_type` or `schema_version` is a
//! permanent error (the message is parked, never guessed at).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};
use uuid::Uuid;

mod cancellation;
mod checkout;

pub use cancellation::{CancelReason, OrderCancelled, RefundProcessed, RefundRequested};
pub use checkout::{OrderCreated, OrderCreatedItem, PaymentProcessed, PaymentStatus};

/// The only schema version this code writes and accepts.
pub const SCHEMA_VERSION: u32 = 1;

/// An event body with its fixed routing key and `event_type`.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Routing key on the `ecommerce_events` topic exchange.
    const ROUTING_KEY: &'static str;
    /// Value of the `event_type` field (and of the AMQP `type` property).
    const EVENT_TYPE: &'static str;

    fn event_id(&self) -> Uuid;
    fn order_id(&self) -> Uuid;

    /// Checks what serde cannot: the discriminator and the schema version.
    fn check_contract(&self) -> Result<(), String>;
}

pub(crate) fn check(event_type: &str, expected: &str, schema_version: u32) -> Result<(), String> {
    if event_type != expected {
        return Err(format!(
            "event_type is {event_type:?}, expected {expected:?}"
        ));
    }
    if schema_version != SCHEMA_VERSION {
        return Err(format!("unsupported schema_version {schema_version}"));
    }
    Ok(())
}

/// Timestamps as RFC 3339 with an explicit `+00:00` offset and microseconds.
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, false))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
