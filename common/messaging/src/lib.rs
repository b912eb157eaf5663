//! # messaging — reliable messaging on RabbitMQ (lapin 4) and PostgreSQL
//!
//! What a service that consumes or publishes events runs on:
//!
//! - [`Foundation`]: a service's database pool, migrations and broker
//!   connection, made once at start.
//! - [`db`]: the PostgreSQL pool (database created if missing, migrated,
//!   statement plans), group commit ([`db::batch`]), the runtime's own tables.
//! - [`topology`]: the exchange, work queues, retry tiers and dead-letter
//!   queues, declared in one place.
//! - [`address`]: `RABBITMQ_URL`'s list of broker nodes.
//! - [`connection`]: one connection per process, replaced by its own
//!   supervisor whenever it fails (lapin's recovery is off), on another node
//!   of the list where there is one.
//! - [`publisher`]: publishes with publisher confirms, `mandatory`, and a
//!   timeout on every confirm; success means `Ack` *and* not returned.
//! - [`consumer`]: manual ack, bounded prefetch, concurrent handlers, retry
//!   with backoff through delay queues, then parking in the dead-letter queue
//!   with the reason attached; supervised so a dead channel or stream is
//!   rebuilt or the service exits non-zero.
//! - [`outbox`]: events written in the business transaction, published by a
//!   relay; [`inbox`]: processed message ids, for idempotent consumers.
//! - [`timeline`]: what this runtime journals of an order's deliveries
//!   (retried, parked), and each service's part of the timeline.
//! - [`retention`]: pruning of published outbox rows, inbox ids and journal
//!   entries.

pub mod address;
pub mod broker;
pub mod connection;
pub mod consumer;
pub mod db;
pub mod headers;
pub mod inbox;
pub mod outbox;
pub mod publisher;
pub mod retention;
pub mod timeline;
pub mod topology;

mod foundation;
pub use foundation::Foundation;

use std::time::Duration;

use runtime::config::{self, ConfigError};

/// Settings shared by everything that talks to RabbitMQ. Its `Debug` shows
/// the URL without its password.
#[derive(Clone)]
pub struct AmqpSettings {
    /// `RABBITMQ_URL`: one AMQP URL, or the nodes of a cluster as URLs
    /// separated by commas ([`address`]). A `heartbeat` query parameter is
    /// added when absent.
    pub url: String,
    /// Prepended to every exchange and queue name: empty in production, unique
    /// per test so concurrent tests never consume each other's messages.
    pub prefix: String,
    /// `CONSUMER_PREFETCH`: deliveries one replica works on at once.
    pub prefetch: u16,
    /// `RETRY_DELAYS_MS`: one delay per retry (comma-separated milliseconds);
    /// after the last one a still-failing message is parked.
    pub retry_delays: Vec<Duration>,
    /// Broker-side redelivery cap (`x-delivery-limit`), the backstop for a
    /// message that crashes its consumer before any ack or nack.
    pub delivery_limit: u32,
    /// How long to wait for one publisher confirm before treating it as lost.
    pub confirm_timeout: Duration,
    /// Largest message body a consumer accepts; larger ones are parked.
    pub max_message_bytes: usize,
    /// How long SIGTERM waits for in-flight deliveries to finish.
    pub drain_timeout: Duration,
}

impl std::fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &address::redact_list(&self.url))
            .field("prefix", &self.prefix)
            .field("prefetch", &self.prefetch)
            .field("retry_delays", &self.retry_delays)
            .field("delivery_limit", &self.delivery_limit)
            .field("confirm_timeout", &self.confirm_timeout)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

impl AmqpSettings {
    pub const DEFAULT_URL: &'static str = "amqp://guest:guest@127.0.0.1:5672/%2f";

    /// Reads `RABBITMQ_URL`, `CONSUMER_PREFETCH` and `RETRY_DELAYS_MS`, with the
    /// service's defaults for the last two.
    pub fn from_env(
        default_prefetch: u16,
        default_retry_delays_ms: &[u64],
    ) -> Result<Self, ConfigError> {
        let url = config::var_or("RABBITMQ_URL", Self::DEFAULT_URL)?;
        address::parse(&url).map_err(|error| ConfigError::new("RABBITMQ_URL", error))?;
        let prefetch: u16 = config::parse_or("CONSUMER_PREFETCH", default_prefetch)?;
        if prefetch == 0 {
            return Err(ConfigError::new("CONSUMER_PREFETCH", "must be at least 1"));
        }
        let retry_delays = match config::var("RETRY_DELAYS_MS")? {
            None => default_retry_delays_ms
                .iter()
                .copied()
                .map(Duration::from_millis)
                .collect(),
            Some(raw) => parse_delays(&raw).map_err(|e| ConfigError::new("RETRY_DELAYS_MS", e))?,
        };
        Ok(Self {
            url,
            prefetch,
            retry_delays,
            ..Self::local(String::new())
        })
    }

    /// Defaults for a local broker with the given name prefix (tests).
    pub fn local(prefix: String) -> Self {
        Self {
            url: Self::DEFAULT_URL.to_owned(),
            prefix,
            prefetch: 10,
            retry_delays: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            delivery_limit: 5,
            confirm_timeout: Duration::from_secs(15),
            max_message_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(25),
        }
    }
}

fn parse_delays(raw: &str) -> Result<Vec<Duration>, String> {
    raw.split(',')
        .map(|part| {
            let ms: u64 = part.trim().parse().map_err(|e| format!("{part:?}: {e}"))?;
            if ms == 0 {
                Err("delays must be positive".into())
            } else {
                Ok(Duration::from_millis(ms))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_parse_from_a_comma_separated_list() {
        assert_eq!(
            parse_delays("100, 2000").unwrap(),
            vec![Duration::from_millis(100), Duration::from_secs(2)]
        );
        assert!(parse_delays("100,x").is_err());
        assert!(parse_delays("0").is_err());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let mut settings = AmqpSettings::local(String::new());
        settings.url = "amqp://payment:s3cret-pw@rabbitmq:5672/%2f".into();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("payment:***@rabbitmq:5672"), "{shown}");
    }
}
