//! Environment-variable helpers. Every error names the variable, so a bad
//! value fails the service at start with a message an operator can act on.

use std::{fmt::Display, str::FromStr, time::Duration};

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for environment variable {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(name: &str, reason: impl Display) -> Self {
        Self {
            name: name.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// The variable's value, or `None` when unset or empty.
pub fn var(name: &str) -> Result<Option<String>, ConfigError> {
    #[cfg(feature = "test-hooks")]
    record(name);
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(name, "not valid UTF-8")),
    }
}

#[cfg(feature = "test-hooks")]
static READ: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

#[cfg(feature = "test-hooks")]
fn record(name: &str) {
    if let Ok(mut read) = READ.lock() {
        read.insert(name.to_owned());
    }
}

/// Every variable this process has looked up through this module, set or
/// not: what a service's configuration reads, measured rather than listed
/// (e2e/tests/e2e/compose_config/ checks docker-compose.yml against it).
/// Test builds only (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
pub fn variables_read() -> std::collections::BTreeSet<String> {
    READ.lock().map(|read| read.clone()).unwrap_or_default()
}

/// The variable's value or `default`.
pub fn var_or(name: &str, default: &str) -> Result<String, ConfigError> {
    Ok(var(name)?.unwrap_or_else(|| default.to_owned()))
}

/// The variable parsed as `T`, or `default` when unset.
pub fn parse_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    parse_value(name, var(name)?, default)
}

fn parse_value<T>(name: &str, raw: Option<String>, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e| ConfigError::new(name, format!("{raw:?}: {e}"))),
    }
}

/// A duration given in milliseconds.
pub fn millis_or(name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
    parse_or(name, default_ms).map(Duration::from_millis)
}

/// A secret that never prints: `Debug` shows `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A URL with its password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_the_variable() {
        let err = parse_value::<u16>("COMMON_TEST_BAD_PORT", Some("eighty".into()), 1).unwrap_err();
        assert!(err.to_string().contains("COMMON_TEST_BAD_PORT"), "{err}");
        assert!(err.to_string().contains("eighty"), "{err}");
    }

    #[test]
    fn an_unset_or_empty_variable_takes_the_default() {
        assert_eq!(parse_or::<u16>("COMMON_TEST_SURELY_UNSET", 7).unwrap(), 7);
        assert_eq!(parse_value::<u16>("X", None, 9).unwrap(), 9);
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("http://host:1/x"), "http://host:1/x");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
    }
}
