//! `GET /api/products` and `GET /api/products/{id}`: the catalog, owned by
//! order-service (it prices every order from it).

use axum::{extract::State, http::HeaderMap};
use runtime::http::request_id;

use super::ProductId;
use super::failures::{LookupFailures, UpstreamFailures};
use crate::{
    error::ApiError,
    order_client::{OrderClient, Upstream},
};

/// `200` with the catalog as a JSON array.
#[utoipa::path(
    get,
    path = "/api/products",
    tag = "catalog",
    summary = "List the catalog",
    responses(
        (status = 200, description = "Every product, by id.", body = Vec<contract::api::Product>),
        UpstreamFailures,
    ),
)]
pub async fn list_products(
    State(client): State<OrderClient>,
    headers: HeaderMap,
) -> Result<Upstream, ApiError> {
    client.list_products(request_id(&headers).as_deref()).await
}

/// `200` with one product, `404` unknown, `400` malformed id.
#[utoipa::path(
    get,
    path = "/api/products/{id}",
    tag = "catalog",
    summary = "Get a product",
    params(("id" = i64, Path, minimum = 1, description = "The product id")),
    responses(
        (status = 200, description = "The product.", body = contract::api::Product),
        LookupFailures,
        UpstreamFailures,
    ),
)]
pub async fn get_product(
    State(client): State<OrderClient>,
    headers: HeaderMap,
    ProductId(id): ProductId,
) -> Result<Upstream, ApiError> {
    client
        .get_product(id, request_id(&headers).as_deref())
        .await
}
