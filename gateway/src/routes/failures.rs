//! The failure answers the read handlers share, as the OpenAPI document
//! lists them (the checkout documents its own, more specific, texts).

use contract::problem::Problem;

/// The failures of every call that goes through to order-service (the
/// checkout documents its own, more specific, texts).
#[derive(utoipa::IntoResponses)]
pub enum UpstreamFailures {
    /// This client is over its rate limit.
    #[response(
        status = 429,
        content_type = "application/problem+json",
        headers(("Retry-After" = u32, description = "Seconds to wait"))
    )]
    RateLimited(#[to_schema] Problem),
    /// order-service gave an unusable answer.
    #[response(status = 502, content_type = "application/problem+json")]
    BadGateway(#[to_schema] Problem),
    /// order-service is unavailable, or too many requests are in progress.
    #[response(
        status = 503,
        content_type = "application/problem+json",
        headers(("Retry-After" = u32, description = "Seconds to wait"))
    )]
    Unavailable(#[to_schema] Problem),
    /// order-service did not answer in time.
    #[response(status = 504, content_type = "application/problem+json")]
    GatewayTimeout(#[to_schema] Problem),
}

/// The failures of a read by id.
#[derive(utoipa::IntoResponses)]
pub enum LookupFailures {
    /// The id is malformed (not a UUID, not a positive integer).
    #[response(status = 400, content_type = "application/problem+json")]
    MalformedId(#[to_schema] Problem),
    /// Nothing has this id.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(#[to_schema] Problem),
}
