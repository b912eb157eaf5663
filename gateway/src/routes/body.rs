//! Reading a JSON request body the way every write of the API reads it:
//! declared as `application/json` (`415`), at most
//! [`MAX_CHECKOUT_BODY_BYTES`] (`413`, refused before reading a byte when
//! the declared length is over), received within [`BODY_READ_TIMEOUT`]
//! (`408`). What the bytes must say is the caller's business.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, header},
};
use contract::api::headers::MAX_CHECKOUT_BODY_BYTES;

use crate::error::ApiError;

/// How long a client may take to send the whole body: a slow sender holds a
/// connection and a task, not a thread, but not forever.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The body's bytes, once its type, size and pace have passed.
pub(super) async fn read_json_body<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    if !is_json(req.headers()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    // A declared length over the limit is refused before reading a byte;
    // an undeclared (chunked) one is cut off by the `DefaultBodyLimit`.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_CHECKOUT_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let bytes = tokio::time::timeout(BODY_READ_TIMEOUT, Bytes::from_request(req, state))
        .await
        .map_err(|_| ApiError::BodyTimeout)??;
    Ok(bytes)
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_any_case() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            assert!(is_json(&headers(&[("content-type", ok)])), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
        ] {
            assert!(!is_json(&headers(&[("content-type", bad)])), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
