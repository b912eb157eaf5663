//! The public API (`/api/...`). Handlers stay thin: extract and check the
//! input, call [`OrderClient`], answer. Path ids are parsed here, so a
//! malformed id is a `400` that never reaches order-service, and what is
//! forwarded is always the canonical form.

mod body;
pub mod cancel;
pub mod checkout;
pub mod failures;
pub mod orders;
pub mod products;
pub mod timeline;

use axum::{
    Router,
    extract::{FromRef, FromRequestParts, Path},
    http::request::Parts,
    routing::{get, post},
};
use uuid::Uuid;

use crate::{error::ApiError, order_client::OrderClient};
use timeline::TimelinePeers;

/// What the handlers share: the order-service client, and the other services
/// that hold part of an order's timeline.
#[derive(Clone)]
pub struct AppState {
    pub orders: OrderClient,
    pub timeline_peers: TimelinePeers,
}

impl FromRef<AppState> for OrderClient {
    fn from_ref(state: &AppState) -> Self {
        state.orders.clone()
    }
}

/// The `/api` routes.
pub fn api() -> Router<AppState> {
    Router::new()
        .route("/api/checkout", post(checkout::checkout))
        .route("/api/orders/{id}", get(orders::get_order))
        .route("/api/orders/{id}/status", get(orders::get_order_status))
        .route("/api/orders/{id}/cancel", post(cancel::cancel_order))
        .route(
            "/api/orders/{id}/timeline",
            get(timeline::get_order_timeline),
        )
        .route("/api/products", get(products::list_products))
        .route("/api/products/{id}", get(products::get_product))
}

/// The `{id}` of an order path: a UUID.
#[derive(Debug, Clone, Copy)]
pub struct OrderId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for OrderId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = single_path_param(parts, state, "order id").await?;
        Uuid::try_parse(&raw)
            .map(OrderId)
            .map_err(|_| ApiError::MalformedId { what: "order id" })
    }
}

/// The `{id}` of a product path: a positive integer.
#[derive(Debug, Clone, Copy)]
pub struct ProductId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for ProductId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = single_path_param(parts, state, "product id").await?;
        // Digits only: `i64::from_str` would also take a leading `+`.
        match raw.parse::<i64>() {
            Ok(id) if id > 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(ProductId(id)),
            _ => Err(ApiError::MalformedId { what: "product id" }),
        }
    }
}

async fn single_path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    what: &'static str,
) -> Result<String, ApiError> {
    Path::<String>::from_request_parts(parts, state)
        .await
        .map(|Path(raw)| raw)
        .map_err(|_| ApiError::MalformedId { what })
}
