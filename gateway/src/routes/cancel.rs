//! `POST /api/orders/{id}/cancel`: the customer cancels an order.
//!
//! Checked before any network hop, like a checkout, so a rejected request
//! never reaches order-service: the id (`400`), then `Content-Type` (`415`),
//! size (`413`), JSON syntax, a key given twice or nesting too deep (`400`),
//! fields (`422`). Only the validated [`CancelRequest`] is forwarded,
//! re-serialised (`{"user_id":N}`), to order-service's
//! `POST /orders/{id}/cancel` with the id in canonical form; its answer is
//! passed on as it gave it.

use axum::{
    extract::{FromRequest, Request, State},
    http::HeaderMap,
};
use contract::{
    cancel::{CancelRequest, parse_cancel},
    checkout::CheckoutError,
    problem::Problem,
};
use runtime::http::request_id;

use super::{OrderId, body::read_json_body};
use crate::{
    error::ApiError,
    order_client::{OrderClient, Upstream},
};

/// `200` (was `pending`, now `cancelled`) or `202` (was `paid`, now
/// `refund_pending`) with the order; order-service's `404` and `409` as it
/// gave them.
#[utoipa::path(
    post,
    path = "/api/orders/{id}/cancel",
    tag = "orders",
    summary = "Cancel an order",
    description = "Cancels the order for the customer who placed it. A `pending` order is \
        `cancelled` at once (`200`). A `paid` order becomes `refund_pending` (`202`) and \
        `refunded` once its charge has been refunded; asking again while it is \
        `refund_pending` answers `202` again. A `failed`, `cancelled` or `refunded` order \
        cannot be cancelled (`409`). An order of another `user_id` answers `404`, as if it \
        did not exist.",
    params(("id" = uuid::Uuid, Path, description = "The order id from the checkout")),
    request_body(content = CancelRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The order, now `cancelled` (it was `pending`).",
            body = contract::api::Order),
        (status = 202, description = "The order, now `refund_pending` (it was `paid`, or was \
            already `refund_pending`): the refund follows.", body = contract::api::Order),
        (status = 400, description = "A malformed order id, or malformed JSON (also: a key \
            given twice in one object, or nesting deeper than 16 levels).", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No order has this id for this `user_id`.", body = Problem,
            content_type = "application/problem+json"),
        (status = 408, description = "The body was not received in time.", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "The order cannot be cancelled any more (`type` \
            `/problems/order-not-cancellable`; `order_status` holds its status: `failed`, \
            `cancelled` or `refunded`).", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB.", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (listed in `errors`).", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "This client is over its rate limit.", body = Problem,
            content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 502, description = "order-service gave an unusable answer.", body = Problem,
            content_type = "application/problem+json"),
        (status = 503, description = "order-service or its database is unavailable, or too \
            many requests are in progress; nothing was changed.", body = Problem,
            content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 504, description = "order-service did not answer in time; the order may \
            have been cancelled: read it before asking again.", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub async fn cancel_order(
    State(client): State<OrderClient>,
    headers: HeaderMap,
    OrderId(id): OrderId,
    CancelBody(cancel): CancelBody,
) -> Result<Upstream, ApiError> {
    client
        .cancel_order(id, &cancel, request_id(&headers).as_deref())
        .await
}

/// A cancel body that passed every check the gateway can make.
#[derive(Debug)]
pub struct CancelBody(pub CancelRequest);

impl<S: Send + Sync> FromRequest<S> for CancelBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_body(req, state).await?;
        match parse_cancel(&bytes) {
            Ok(cancel) => Ok(CancelBody(cancel)),
            Err(CheckoutError::Malformed(error)) => Err(ApiError::MalformedJson(error)),
            Err(CheckoutError::Invalid(errors)) => Err(ApiError::Validation(errors)),
        }
    }
}
