//! `GET /api/orders/{id}` and `GET /api/orders/{id}/status`: straight reads
//! from order-service, answered as it answers them.

use axum::{extract::State, http::HeaderMap};
use runtime::http::request_id;

use super::OrderId;
use super::failures::{LookupFailures, UpstreamFailures};
use crate::{
    error::ApiError,
    order_client::{OrderClient, Upstream},
};

/// `200` with the order, `404` unknown, `400` malformed id.
#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    tag = "orders",
    summary = "Get an order",
    params(("id" = uuid::Uuid, Path, description = "The order id from the checkout")),
    responses(
        (status = 200, description = "The order, its lines and its payment.", body = contract::api::Order),
        LookupFailures,
        UpstreamFailures,
    ),
)]
pub async fn get_order(
    State(client): State<OrderClient>,
    headers: HeaderMap,
    OrderId(id): OrderId,
) -> Result<Upstream, ApiError> {
    client.get_order(id, request_id(&headers).as_deref()).await
}

/// `200` with `{id, status, payment}`, `404` unknown, `400` malformed id.
#[utoipa::path(
    get,
    path = "/api/orders/{id}/status",
    tag = "orders",
    summary = "Get where an order is",
    params(("id" = uuid::Uuid, Path, description = "The order id from the checkout")),
    responses(
        (status = 200, description = "The order's state and payment only (cheap to poll).", body = contract::api::OrderStatus),
        LookupFailures,
        UpstreamFailures,
    ),
)]
pub async fn get_order_status(
    State(client): State<OrderClient>,
    headers: HeaderMap,
    OrderId(id): OrderId,
) -> Result<Upstream, ApiError> {
    client
        .get_order_status(id, request_id(&headers).as_deref())
        .await
}
