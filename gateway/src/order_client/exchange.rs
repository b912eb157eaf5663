//! One exchange with order-service: what its answer means for the gateway
//! (the table in the parent module's docs) and whether a failed call may be
//! sent once more.

use std::time::Duration;

use axum::{
    body::Bytes,
    http::{HeaderValue, StatusCode, header},
};
use serde::de::IgnoredAny;

use super::{IDEMPOTENT_REPLAYED, MAX_UPSTREAM_BODY, Upstream};
use crate::error::ApiError;

/// The pause before the one retry: enough for a restarted order-service
/// replica to be replaced in the pool, short enough to go unnoticed.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Which failed calls may be sent once more (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// A checkout without a key, a cancel: only if it never reached
    /// order-service.
    IfNothingWasSent,
    /// Reads: also after a broken connection.
    Reads,
    /// A checkout with an `Idempotency-Key`: also after a timeout.
    Idempotent,
}

impl Retry {
    pub(super) fn allows(self, failure: &Failure) -> bool {
        match failure {
            Failure::Unreachable(_) => true,
            Failure::Transport(_) => matches!(self, Self::Reads | Self::Idempotent),
            Failure::Timeout(_) => self == Self::Idempotent,
            // An answer: order-service is up and said what it had to say.
            Failure::Unavailable { .. }
            | Failure::Status(_)
            | Failure::NotJson { .. }
            | Failure::TooLarge => false,
        }
    }
}

/// Why an upstream call gave no usable answer; logged, never shown.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    #[error("cannot connect")]
    Unreachable(#[source] reqwest::Error),
    #[error("answered 503 Service Unavailable")]
    Unavailable { retry_after: Option<HeaderValue> },
    #[error("no answer in time")]
    Timeout(#[source] reqwest::Error),
    #[error("transport error")]
    Transport(#[source] reqwest::Error),
    #[error("unexpected status {0}")]
    Status(StatusCode),
    #[error("answered {status} with a body that is not JSON")]
    NotJson {
        status: StatusCode,
        #[source]
        error: serde_json::Error,
    },
    #[error("answered a body larger than {MAX_UPSTREAM_BODY} bytes")]
    TooLarge,
}

impl Failure {
    pub(super) fn from_reqwest(error: reqwest::Error) -> Self {
        // A connect timeout is both; nothing was sent, so it is "unreachable".
        if error.is_connect() {
            Self::Unreachable(error)
        } else if error.is_timeout() {
            Self::Timeout(error)
        } else {
            Self::Transport(error)
        }
    }

    pub(super) fn label(&self) -> &'static str {
        match self {
            Self::Unreachable(_) | Self::Unavailable { .. } => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Transport(_) | Self::Status(_) | Self::NotJson { .. } | Self::TooLarge => {
                "bad_gateway"
            }
        }
    }

    pub(super) fn into_api_error(self, request_id: Option<String>) -> ApiError {
        match self {
            Self::Unreachable(_) => ApiError::Unavailable {
                request_id,
                retry_after: None,
            },
            Self::Unavailable { retry_after } => ApiError::Unavailable {
                request_id,
                retry_after,
            },
            Self::Timeout(_) => ApiError::GatewayTimeout { request_id },
            Self::Transport(_) | Self::Status(_) | Self::NotJson { .. } | Self::TooLarge => {
                ApiError::BadGateway { request_id }
            }
        }
    }
}

pub(super) async fn exchange(request: reqwest::RequestBuilder) -> Result<Upstream, Failure> {
    let mut response = request.send().await.map_err(Failure::from_reqwest)?;
    let status = response.status();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .filter(|v| is_delay_seconds(v))
            .cloned();
        return Err(Failure::Unavailable { retry_after });
    }
    if !(status.is_success() || status.is_client_error()) {
        return Err(Failure::Status(status));
    }
    let replayed = response
        .headers()
        .get(&IDEMPOTENT_REPLAYED)
        .is_some_and(|v| v == "true");
    let body = read_capped(&mut response).await?;
    // 2xx: any JSON; 4xx: a JSON object (a problem). `IgnoredAny` checks
    // without building a tree.
    let parsed = if status.is_success() {
        serde_json::from_slice::<IgnoredAny>(&body).map(drop)
    } else {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body).map(drop)
    };
    parsed.map_err(|error| Failure::NotJson { status, error })?;
    Ok(Upstream {
        status,
        body,
        replayed,
    })
}

/// `outer: inner: root cause`: reqwest's own message omits the cause
/// (connection refused, reset, …) that an operator needs.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads the body, refusing more than [`MAX_UPSTREAM_BODY`] bytes.
async fn read_capped(response: &mut reqwest::Response) -> Result<Bytes, Failure> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_UPSTREAM_BODY as u64)
    {
        return Err(Failure::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Failure::from_reqwest)? {
        if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
            return Err(Failure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// `Retry-After` as delay-seconds (what order-service sends); an HTTP date or
/// anything else is replaced by the default.
fn is_delay_seconds(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=6).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_digit)
}
