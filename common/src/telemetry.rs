//! Logging: `RUST_LOG` filters (default `info`), `LOG_FORMAT` picks `pretty`
//! or `json` (default: pretty on a terminal, json otherwise, so containers
//! emit one JSON object per line).

use std::io::IsTerminal;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{self, ConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl LogFormat {
    pub fn from_env() -> Result<Self, ConfigError> {
        match config::var("LOG_FORMAT")?.as_deref() {
            None if std::io::stdout().is_terminal() => Ok(LogFormat::Pretty),
            None => Ok(LogFormat::Json),
            Some("pretty") => Ok(LogFormat::Pretty),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(ConfigError::new(
                "LOG_FORMAT",
                format!("{other:?}: expected pretty or json"),
            )),
        }
    }
}

/// Installs the global subscriber for `service`. Call once, first thing in `main`.
pub fn init(service: &'static str) -> Result<(), ConfigError> {
    let format = LogFormat::from_env()?;
    let filter = match config::var("RUST_LOG")? {
        None => EnvFilter::new("info"),
        Some(spec) => EnvFilter::try_new(&spec).map_err(|e| ConfigError::new("RUST_LOG", e))?,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false)).try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
    };
    if result.is_ok() {
        tracing::info!(service, ?format, "logging initialised");
    }
    Ok(())
}

/// Logging for tests: compact, to the test writer, filtered by `RUST_LOG`
/// (default `warn`), safe to call from every test.
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_test_writer().with_target(true))
        .try_init();
}
