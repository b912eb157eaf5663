//! The gateway's configuration, read once from the environment at start. A
//! bad value fails the start with a message naming the variable.

use std::{net::SocketAddr, time::Duration};

use common::config::{self, ConfigError};

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `BIND_ADDR`, default `0.0.0.0:9000`.
    pub bind_addr: SocketAddr,
    /// `ORDER_SERVICE_URL`, default `http://127.0.0.1:8001`; kept without a
    /// trailing slash so paths can be appended.
    pub order_service_url: String,
    /// `ORDER_SERVICE_TIMEOUT_MS`, default 10 s: the whole upstream call,
    /// connect to last byte. Past it the client gets `504`.
    pub order_service_timeout: Duration,
    /// How long to wait for a TCP connection to order-service (2 s). Past it
    /// the client gets `503`: nothing was sent, so retrying is safe.
    pub connect_timeout: Duration,
}

impl Settings {
    pub const DEFAULT_BIND_ADDR: &str = "0.0.0.0:9000";
    pub const DEFAULT_ORDER_SERVICE_URL: &str = "http://127.0.0.1:8001";
    pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

    pub fn from_env() -> Result<Self, ConfigError> {
        let bind_addr = config::parse_or(
            "BIND_ADDR",
            Self::DEFAULT_BIND_ADDR
                .parse()
                .expect("the default address parses"),
        )?;
        let order_service_url = order_service_url(&config::var_or(
            "ORDER_SERVICE_URL",
            Self::DEFAULT_ORDER_SERVICE_URL,
        )?)?;
        let order_service_timeout =
            config::millis_or("ORDER_SERVICE_TIMEOUT_MS", Self::DEFAULT_TIMEOUT_MS)?;
        if order_service_timeout.is_zero() {
            return Err(ConfigError::new(
                "ORDER_SERVICE_TIMEOUT_MS",
                "must be greater than 0",
            ));
        }
        Ok(Self {
            bind_addr,
            order_service_url,
            order_service_timeout,
            connect_timeout: Self::CONNECT_TIMEOUT,
        })
    }
}

/// An absolute `http://` URL, returned without its trailing slash. The client
/// is built without TLS (order-service is on the internal network), so
/// `https://` is refused at start rather than failing every request.
fn order_service_url(raw: &str) -> Result<String, ConfigError> {
    const NAME: &str = "ORDER_SERVICE_URL";
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| ConfigError::new(NAME, format!("{raw:?}: {e}")))?;
    if url.scheme() != "http" {
        return Err(ConfigError::new(
            NAME,
            format!("{raw:?}: only http:// URLs are supported"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            NAME,
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
            order_service_url("http://order-service:8001/").unwrap(),
            "http://order-service:8001"
        );
        assert_eq!(
            order_service_url("http://127.0.0.1:8001").unwrap(),
            "http://127.0.0.1:8001"
        );
    }

    #[test]
    fn a_bad_order_service_url_names_the_variable() {
        for bad in ["not a url", "https://order-service:8001", "http://x:1/?a=b"] {
            let err = order_service_url(bad).unwrap_err();
            assert!(err.to_string().contains("ORDER_SERVICE_URL"), "{err}");
        }
    }
}
