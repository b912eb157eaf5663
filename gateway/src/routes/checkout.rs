//! `POST /api/checkout`: placing an order.
//!
//! Everything the gateway can check is checked before any network hop, in
//! this order, so a rejected request never reaches order-service:
//! `Content-Type` (`415`), size (`413`), JSON syntax, a key given twice or
//! nesting too deep (`400`), fields (`422`), `Idempotency-Key` (`400`). Only the validated [`CheckoutRequest`] is
//! forwarded, re-serialised, so unknown or duplicate keys and odd number
//! spellings in the client's bytes never travel further.

use axum::{
    extract::{FromRequest, Request, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use contract::{
    api::headers::{idempotency_key, order_location},
    checkout::{CheckoutError, CheckoutRequest, parse_checkout},
    problem::Problem,
};
use runtime::http::request_id;
use serde::Deserialize;
use uuid::Uuid;

use super::body::read_json_body;
use crate::{error::ApiError, order_client::OrderClient};

/// `201` with the order and `Location: /api/orders/{id}`; order-service's
/// `409` (price changed, insufficient stock) and `422` (unknown product) as
/// it gave them.
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
            the catalog prices by product id), or a product has fewer units in stock than \
            ordered (`type` `/problems/insufficient-stock`; `available` holds the units \
            available by product id).", body = Problem, content_type = "application/problem+json"),
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
        let bytes = read_json_body(req, state).await?;
        match parse_checkout(&bytes) {
            Ok(checkout) => Ok(CheckoutBody(checkout)),
            Err(CheckoutError::Malformed(error)) => Err(ApiError::MalformedJson(error)),
            Err(CheckoutError::Invalid(errors)) => Err(ApiError::Validation(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_id_is_read_from_the_created_order() {
        let id = Uuid::new_v4();
        let body = serde_json::json!({"id": id, "status": "pending"}).to_string();
        assert_eq!(order_id(body.as_bytes()), Some(id));
        assert_eq!(order_id(br#"{"id": 7}"#), None);
        assert_eq!(order_id(b"not json"), None);
    }
}
