//! payment-service configuration, from the environment (`docs/configuration.md`).

use std::{net::SocketAddr, str::FromStr, time::Duration};

use messaging::{AmqpSettings, db::DatabaseSettings};
use runtime::config::{self, ConfigError};
use rust_decimal::Decimal;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `BIND_ADDR`, default `0.0.0.0:8002`: health, readiness, metrics and
    /// this service's part of an order's timeline (internal).
    pub bind_addr: SocketAddr,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub provider: ProviderSettings,
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// `PAYMENT_DELAY_MS`, default 1000: the simulated provider's latency.
    pub delay: Duration,
    /// `PAYMENT_DECLINE_ABOVE`, default 10000.00: larger amounts are declined.
    pub decline_above: Decimal,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            bind_addr: config::parse_or("BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8002)))?,
            database: DatabaseSettings::from_env("payment_db")?,
            // Each payment mostly waits on the provider, so one replica works on
            // many at once.
            amqp: AmqpSettings::from_env(100, &[1_000, 5_000, 30_000])?,
            provider: ProviderSettings {
                delay: config::millis_or("PAYMENT_DELAY_MS", 1_000)?,
                decline_above: config::parse_or(
                    "PAYMENT_DECLINE_ABOVE",
                    Decimal::from_str("10000.00").expect("literal"),
                )?,
            },
        })
    }
}
