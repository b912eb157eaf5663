//! The gateway's configuration, read once from the environment at start. A
//! bad value fails the start with a message naming the variable.

use std::{net::SocketAddr, num::NonZeroU32, time::Duration};

use runtime::config::{self, ConfigError};

use crate::rate_limit::RateLimit;

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `BIND_ADDR`, default `0.0.0.0:9000`.
    pub bind_addr: SocketAddr,
    /// `ORDER_SERVICE_URL`, default `http://127.0.0.1:8001`; kept without a
    /// trailing slash so paths can be appended.
    pub order_service_url: String,
    /// `PAYMENT_SERVICE_URL` (default `http://127.0.0.1:8002`) and
    /// `EMAIL_SERVICE_URL` (default `http://127.0.0.1:8003`): asked only for
    /// their part of an order's timeline.
    pub payment_service_url: String,
    pub email_service_url: String,
    /// `ORDER_SERVICE_TIMEOUT_MS`, default 10 s: the whole upstream call,
    /// connect to last byte. Past it the client gets `504`.
    pub order_service_timeout: Duration,
    /// How long to wait for a TCP connection to order-service (2 s). Past it
    /// the client gets `503`: nothing was sent, so retrying is safe.
    pub connect_timeout: Duration,
    /// `ORDER_SERVICE_MAX_CONCURRENCY`, default 128: calls to order-service
    /// in flight at once. A request that finds no free slot within
    /// [`Settings::SLOT_WAIT`] gets `503` without reaching order-service, so
    /// a flood queues here instead of piling onto its database.
    pub order_service_max_concurrency: usize,
    /// `RATE_LIMIT_PER_SECOND` (default 100; `0` turns limiting off),
    /// `RATE_LIMIT_BURST` (default 200) and `RATE_LIMIT_TRUST_FORWARDED_FOR`
    /// (default `false`): see [`crate::rate_limit`].
    pub rate_limit: Option<RateLimit>,
}

impl Settings {
    pub const DEFAULT_BIND_ADDR: &str = "0.0.0.0:9000";
    pub const DEFAULT_ORDER_SERVICE_URL: &str = "http://127.0.0.1:8001";
    pub const DEFAULT_PAYMENT_SERVICE_URL: &str = "http://127.0.0.1:8002";
    pub const DEFAULT_EMAIL_SERVICE_URL: &str = "http://127.0.0.1:8003";
    pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    pub const DEFAULT_MAX_CONCURRENCY: usize = 128;
    pub const SLOT_WAIT: Duration = Duration::from_secs(1);
    pub const DEFAULT_RATE_PER_SECOND: u32 = 100;
    pub const DEFAULT_RATE_BURST: u32 = 200;

    pub fn from_env() -> Result<Self, ConfigError> {
        let bind_addr = config::parse_or(
            "BIND_ADDR",
            Self::DEFAULT_BIND_ADDR
                .parse()
                .expect("the default address parses"),
        )?;
        let order_service_url = service_url(
            "ORDER_SERVICE_URL",
            &config::var_or("ORDER_SERVICE_URL", Self::DEFAULT_ORDER_SERVICE_URL)?,
        )?;
        let payment_service_url = service_url(
            "PAYMENT_SERVICE_URL",
            &config::var_or("PAYMENT_SERVICE_URL", Self::DEFAULT_PAYMENT_SERVICE_URL)?,
        )?;
        let email_service_url = service_url(
            "EMAIL_SERVICE_URL",
            &config::var_or("EMAIL_SERVICE_URL", Self::DEFAULT_EMAIL_SERVICE_URL)?,
        )?;
        let order_service_timeout =
            config::millis_or("ORDER_SERVICE_TIMEOUT_MS", Self::DEFAULT_TIMEOUT_MS)?;
        if order_service_timeout.is_zero() {
            return Err(ConfigError::new(
                "ORDER_SERVICE_TIMEOUT_MS",
                "must be greater than 0",
            ));
        }
        let order_service_max_concurrency = config::parse_or(
            "ORDER_SERVICE_MAX_CONCURRENCY",
            Self::DEFAULT_MAX_CONCURRENCY,
        )?;
        if order_service_max_concurrency == 0 {
            return Err(ConfigError::new(
                "ORDER_SERVICE_MAX_CONCURRENCY",
                "must be greater than 0",
            ));
        }
        Ok(Self {
            bind_addr,
            order_service_url,
            payment_service_url,
            email_service_url,
            order_service_timeout,
            connect_timeout: Self::CONNECT_TIMEOUT,
            order_service_max_concurrency,
            rate_limit: rate_limit()?,
        })
    }
}

fn rate_limit() -> Result<Option<RateLimit>, ConfigError> {
    let per_second: u32 =
        config::parse_or("RATE_LIMIT_PER_SECOND", Settings::DEFAULT_RATE_PER_SECOND)?;
    let burst: u32 = config::parse_or("RATE_LIMIT_BURST", Settings::DEFAULT_RATE_BURST)?;
    let trust_forwarded_for = config::parse_or("RATE_LIMIT_TRUST_FORWARDED_FOR", false)?;
    let Some(per_second) = NonZeroU32::new(per_second) else {
        return Ok(None);
    };
    let burst = NonZeroU32::new(burst)
        .ok_or_else(|| ConfigError::new("RATE_LIMIT_BURST", "must be greater than 0"))?;
    Ok(Some(RateLimit {
        per_second,
        burst,
        trust_forwarded_for,
    }))
}

/// An absolute `http://` URL (of the variable `name`), returned without its
/// trailing slash. The clients are built without TLS (the services are on the
/// internal network), so `https://` is refused at start rather than failing
/// every request.
fn service_url(name: &str, raw: &str) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| ConfigError::new(name, format!("{raw:?}: {e}")))?;
    if url.scheme() != "http" {
        return Err(ConfigError::new(
            name,
            format!("{raw:?}: only http:// URLs are supported"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            name,
            format!("{raw:?}: must not have a query or fragment"),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_service_url_loses_its_trailing_slash() {
        assert_eq!(
            service_url("ORDER_SERVICE_URL", "http://order-service:8001/").unwrap(),
            "http://order-service:8001"
        );
        assert_eq!(
            service_url("ORDER_SERVICE_URL", "http://127.0.0.1:8001").unwrap(),
            "http://127.0.0.1:8001"
        );
    }

    #[test]
    fn a_bad_order_service_url_names_the_variable() {
        for bad in ["not a url", "https://order-service:8001", "http://x:1/?a=b"] {
            let err = service_url("ORDER_SERVICE_URL", bad).unwrap_err();
            assert!(err.to_string().contains("ORDER_SERVICE_URL"), "{err}");
        }
    }
}
