//! order-service's HTTP API, called by the gateway:
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /orders` | `201` order, `Location: /api/orders/{id}`; 400/409/422/503 problem |
//! | `GET /orders/{id}` | `200` order, `404`, `400` malformed id |
//! | `GET /orders/{id}/status` | `200` `{id, status, payment}` |
//! | `POST /orders/{id}/cancel` | `200` cancelled, `202` refund pending; 404/409 problem |
//! | `GET /products`, `GET /products/{id}` | the catalog, with the live stock |

mod cancel;
mod orders;
mod products;

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use contract::api::headers::MAX_CHECKOUT_BODY_BYTES;
use messaging::db::batch::Batcher;
use sqlx::PgPool;

use crate::{catalog::Catalog, db::stock::InsertOrders};
use tokio::sync::Notify;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Stores plain checkouts (without an `Idempotency-Key`), many per statement.
    pub orders: Batcher<InsertOrders>,
    /// Prices and names for checkouts, and the `/products` answers.
    pub catalog: Catalog,
    /// Wakes the outbox relay after an order is committed.
    pub relay: Arc<Notify>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders", post(orders::create_order))
        .route("/orders/{id}", get(orders::get_order))
        .route("/orders/{id}/status", get(orders::get_order_status))
        .route("/orders/{id}/cancel", post(cancel::cancel_order))
        .route("/products", get(products::list_products))
        .route("/products/{id}", get(products::get_product))
        .layer(DefaultBodyLimit::max(MAX_CHECKOUT_BODY_BYTES))
        .with_state(state)
}
