//! The OpenAPI 3.1 document (`GET /api/openapi.json`) and the Swagger UI
//! page that renders it (`GET /docs`), both generated from the code: the
//! handlers' `#[utoipa::path]` attributes (next to the handlers, in
//! `routes`) and the request, response and problem types themselves
//! (`contract::checkout`, `contract::cancel`, `contract::api`,
//! `contract::problem`). Swagger UI's files
//! are compiled into the binary, so the page works without network access.

use axum::Router;
use contract::{
    api::{
        CancelReasonSchema, Order, OrderLine, OrderState, OrderStatus, OrderTimeline,
        PaymentSummary, Product, RefundSummary, TimelineStep,
    },
    cancel::CancelRequest,
    checkout::{CheckoutItem, CheckoutRequest},
    problem::{FieldError, Problem},
};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::routes;

/// Where the document is served; the docs page loads it from here.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";
pub const DOCS_PATH: &str = "/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Checkout pipeline API",
        description = "The public API of the checkout pipeline. A checkout is priced from the \
            catalog, stored, paid by the payment service and confirmed by email, \
            asynchronously: poll `GET /api/orders/{id}/status` until the order is `paid` or \
            `failed`. The customer may cancel an order (`POST /api/orders/{id}/cancel`): a \
            `pending` one is `cancelled`, a `paid` one `refund_pending` until its charge is \
            `refunded`.\n\nEvery error is `application/problem+json` (RFC 9457); a 5xx carries \
            the request id (`X-Request-Id`) and nothing internal. Each client is rate \
            limited (`429` with `Retry-After`).",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        routes::checkout::checkout,
        routes::orders::get_order,
        routes::orders::get_order_status,
        routes::cancel::cancel_order,
        routes::timeline::get_order_timeline,
        routes::products::list_products,
        routes::products::get_product,
    ),
    components(schemas(
        CheckoutRequest,
        CheckoutItem,
        CancelRequest,
        Order,
        OrderLine,
        OrderState,
        OrderStatus,
        OrderTimeline,
        TimelineStep,
        PaymentSummary,
        RefundSummary,
        CancelReasonSchema,
        Product,
        Problem,
        FieldError,
    )),
    tags(
        (name = "checkout", description = "Placing orders"),
        (name = "orders", description = "Where an order is, and cancelling it"),
        (name = "catalog", description = "The products orders are priced from"),
    )
)]
pub struct ApiDoc;

/// `GET /api/openapi.json` and `GET /docs` (Swagger UI). The document is
/// built once, here, not per request.
pub fn router() -> Router {
    SwaggerUi::new(DOCS_PATH)
        .url(DOCUMENT_PATH, ApiDoc::openapi())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_public_route_is_documented() {
        let document = ApiDoc::openapi();
        let mut paths: Vec<_> = document.paths.paths.keys().cloned().collect();
        paths.sort();
        assert_eq!(
            paths,
            vec![
                "/api/checkout",
                "/api/orders/{id}",
                "/api/orders/{id}/cancel",
                "/api/orders/{id}/status",
                "/api/orders/{id}/timeline",
                "/api/products",
                "/api/products/{id}",
            ]
        );
    }
}
