//! `POST /api/checkout`: the one write of the public API.
//!
//! Everything the gateway can check is checked before any network hop, in
//! this order, so a rejected request never reaches order-service:
//! `Content-Type` (`415`), size (`413`), JSON syntax, a key given twice or
//! nesting too deep (`400`), fields (`422`), `Idempotency-Key` (`400`). Only the validated [`CheckoutRequest`] is
//! forwarded, re-serialised, so unknown or duplicate keys and odd number
//! spellings in the client's bytes never travel further.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use contract::{
    api::headers::{MAX_CHECKOUT_BODY_BYTES, idempotency_key, order_location},
    checkout::{CheckoutError, CheckoutRequest, parse_checkout},
    problem::Problem,
};
use runtime::http::request_id;
use serde::Deserialize;
use uuid::Uuid;

use crate::{error::ApiError, order_client::OrderClient};

/// How long a client may take to send the whole body: a slow sender holds a
/// connection and a task, not a thread, but not forever.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `201` with the order and `Location: /api/orders/{id}`; order-service's
/// `409` (price changed) and `422` (unknown product) as it gave them.
#[utoipa::path(
    post,
    path = "/api/checkout",
    tag = "checkout",
    summary = "Place an order",
    description = "Prices the items from the catalog (a `price` sent must equal the catalog \
        price), stores the order as `pending` and starts payment. Send an `Idempotency-Key` to \
        retry safely: the same key with the same body answers the first answer again (marked \
        `Idempotent-Replayed: true`), with another body `422`; a request with the key of one still \
        in flight waits for it and gets its answer.",
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "A unique key per order attempt (1–255 visible ASCII characters), \
                kept at least 24 hours per `user_id`.",
            min_length = 1, max_length = 255, pattern = r"^[\x21-\x7E]+$"),
    ),
    request_body(content = CheckoutRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The order, `pending` until the payment result arrives.",
            body = contract::api::Order,
            headers(
                ("Location" = String, description = "`/api/orders/{id}`"),
                ("Idempotent-Replayed" = String,
                    description = "`true` when this is the stored answer to an earlier \
                        request with the same `Idempotency-Key`"),
            )),
        (status = 400, description = "Malformed JSON (also: a key given twice in one object, or \
            nesting deeper than 16 levels), or a malformed `Idempotency-Key`.", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body was not received in time.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A `price` differs from the catalog (`current_prices` holds \
            the catalog prices by product id).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (listed in `errors`), an unknown product, or \
            an `Idempotency-Key` reused with another body.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "This client is over its rate limit.", body = Problem,
            content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 502, description = "order-service gave an unusable answer.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "order-service or its database is unavailable, or too many \
            requests are in progress; nothing was stored.", body = Problem,
            content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 504, description = "order-service did not answer in time; the order may exist: \
            retry with the same `Idempotency-Key`.", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn checkout(
    State(client): State<OrderClient>,
    headers: HeaderMap,
    CheckoutBody(checkout): CheckoutBody,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers).map_err(ApiError::MalformedIdempotencyKey)?;
    let request_id = request_id(&headers);
    let answer = client
        .create_order(&checkout, idempotency_key, request_id.as_deref())
        .await?;
    if !answer.status.is_success() {
        return Ok(answer.into_response());
    }
    let Some(id) = order_id(&answer.body) else {
        tracing::error!(
            request_id = request_id.as_deref().unwrap_or("-"),
            status = %answer.status,
            "order-service answered a checkout without an order id"
        );
        return Err(ApiError::BadGateway { request_id });
    };
    let mut response = answer.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, order_location(id));
    Ok(response)
}

/// The order's `id` in order-service's answer, if it has a valid one.
fn order_id(body: &[u8]) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct Created {
        id: Uuid,
    }
    serde_json::from_slice::<Created>(body).ok().map(|c| c.id)
}

/// A checkout body that passed every check the gateway can make.
#[derive(Debug)]
pub struct CheckoutBody(pub CheckoutRequest);

impl<S: Send + Sync> FromRequest<S> for CheckoutBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
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
        match parse_checkout(&bytes) {
            Ok(checkout) => Ok(CheckoutBody(checkout)),
            Err(CheckoutError::Malformed(error)) => Err(ApiError::MalformedJson(error)),
            Err(CheckoutError::Invalid(errors)) => Err(ApiError::Validation(errors)),
        }
    }
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

    #[test]
    fn the_order_id_is_read_from_the_created_order() {
        let id = Uuid::new_v4();
        let body = serde_json::json!({"id": id, "status": "pending"}).to_string();
        assert_eq!(order_id(body.as_bytes()), Some(id));
        assert_eq!(order_id(br#"{"id": 7}"#), None);
        assert_eq!(order_id(b"not json"), None);
    }
}
