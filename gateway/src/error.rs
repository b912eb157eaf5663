//! The gateway's one error type. Every failure a handler can meet is a
//! variant here, and every variant becomes an RFC 9457 problem: there is no
//! plain-text error from our code on the public API (hyper's own answers to
//! requests it cannot parse are the one exception; see the crate docs). 5xx carry the request id and
//! nothing else about the cause (that goes to the log, at error level).

use axum::{
    extract::rejection::BytesRejection,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use contract::problem::{FieldError, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `400`: the body is not well-formed JSON, gives a key twice in one
    /// object, or nests too deep (the error says which).
    #[error("malformed JSON body")]
    MalformedJson(contract::checkout::json::JsonError),
    /// `400`: a path id that cannot be an id (`what` names it).
    #[error("malformed {what}")]
    MalformedId { what: &'static str },
    /// `400`: an `Idempotency-Key` header that is empty, too long or not
    /// visible ASCII.
    #[error("malformed Idempotency-Key")]
    MalformedIdempotencyKey(contract::api::headers::BadIdempotencyKey),
    /// `400`: the request body could not be read (the client broke off).
    #[error("unreadable request body")]
    UnreadableBody,
    /// `404`: no route matches the path.
    #[error("no such route")]
    NoRoute,
    /// `405`: the path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `408`: the client took too long to send the body.
    #[error("request body too slow")]
    BodyTimeout,
    /// `413`: the body is larger than the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// `415`: the body is not declared as `application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// `422`: the JSON is well-formed but fields are invalid.
    #[error("invalid request fields")]
    Validation(Vec<FieldError>),
    /// `429` with `Retry-After`: this client sent more requests than its
    /// rate limit allows.
    #[error("rate limited")]
    RateLimited {
        retry_after_secs: u64,
        per_second: u32,
    },
    /// `503` with `Retry-After`: every slot for calls to order-service is
    /// taken and none freed up in time. Nothing was sent; retrying is safe.
    #[error("too many calls to order-service in flight")]
    Overloaded { request_id: Option<String> },
    /// `502`: order-service answered something unusable (a 5xx other than
    /// 503, a body that is not JSON, a broken connection mid-answer).
    #[error("bad answer from order-service")]
    BadGateway { request_id: Option<String> },
    /// `503` with `Retry-After`: order-service cannot be reached, or said it
    /// is unavailable. Nothing was done; retrying later is safe.
    #[error("order-service unavailable")]
    Unavailable {
        request_id: Option<String>,
        retry_after: Option<HeaderValue>,
    },
    /// `504`: order-service did not answer in time. For a checkout the order
    /// may or may not exist: retry with the same `Idempotency-Key`.
    #[error("order-service timed out")]
    GatewayTimeout { request_id: Option<String> },
}

impl ApiError {
    /// The problem document this error is answered with.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::MalformedJson(error) => Problem::bad_request(error.to_string()),
            Self::MalformedId { what } => {
                Problem::bad_request(format!("malformed id: not a valid {what}"))
            }
            Self::MalformedIdempotencyKey(error) => Problem::bad_request(error.to_string()),
            Self::UnreadableBody => Problem::bad_request("the request body could not be read"),
            Self::NoRoute => Problem::not_found("no resource at this path"),
            Self::MethodNotAllowed => Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this resource does not support the method",
            ),
            Self::BodyTimeout => Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
                "the request body was not received in time",
            ),
            Self::PayloadTooLarge => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                format!(
                    "the body must be at most {} bytes",
                    contract::api::headers::MAX_CHECKOUT_BODY_BYTES
                ),
            ),
            Self::UnsupportedMediaType => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "the body must be sent with Content-Type: application/json",
            ),
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::RateLimited {
                retry_after_secs,
                per_second,
            } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!(
                    "this client is limited to {per_second} requests per second; \
                     retry after {retry_after_secs} s"
                ),
            ),
            Self::Overloaded { request_id } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Service overloaded",
                "too many requests are in progress; try again shortly",
            )
            .with_request_id(request_id.clone()),
            Self::BadGateway { request_id } => Problem::new(
                StatusCode::BAD_GATEWAY,
                "bad-gateway",
                "Bad gateway",
                "the order service gave an unusable answer; quote the request id when reporting it",
            )
            .with_request_id(request_id.clone()),
            Self::Unavailable { request_id, .. } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "Service unavailable",
                "the order service is unavailable; try again shortly",
            )
            .with_request_id(request_id.clone()),
            Self::GatewayTimeout { request_id } => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway-timeout",
                "Gateway timeout",
                "the order service did not answer in time; a checkout retried with the same \
                 Idempotency-Key is answered once",
            )
            .with_request_id(request_id.clone()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.to_problem().into_response();
        // `Problem` sets `Retry-After: 1` on every 503; keep order-service's
        // own estimate when it gave one.
        match self {
            Self::Unavailable {
                retry_after: Some(value),
                ..
            } => {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Self::RateLimited {
                retry_after_secs, ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge
        } else {
            Self::UnreadableBody
        }
    }
}

/// Router fallback: unknown paths answer a problem, not axum's empty 404.
pub async fn no_route() -> ApiError {
    ApiError::NoRoute
}

/// Method fallback: a known path with the wrong method answers a problem.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
