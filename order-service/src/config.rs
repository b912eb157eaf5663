//! order-service configuration, from the environment (`docs/configuration.md`).

use std::net::SocketAddr;

use messaging::{AmqpSettings, db::DatabaseSettings};
use runtime::config::{self, ConfigError};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `BIND_ADDR`, default `0.0.0.0:8001`.
    pub bind_addr: SocketAddr,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    /// `ORDER_PAYMENT_TIMEOUT_SECS`, default 900: a `pending` order older
    /// than this is cancelled (`cancel_reason: "payment_timeout"`).
    pub payment_timeout_secs: u64,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            bind_addr: config::parse_or("BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8001)))?,
            database: DatabaseSettings::from_env("order_db")?,
            amqp: AmqpSettings::from_env(50, &[1_000, 5_000, 30_000])?,
            payment_timeout_secs: positive("ORDER_PAYMENT_TIMEOUT_SECS", 900)?,
        })
    }
}

fn positive(name: &str, default: u64) -> Result<u64, ConfigError> {
    match config::parse_or(name, default)? {
        0 => Err(ConfigError::new(name, "must be at least 1")),
        value => Ok(value),
    }
}
