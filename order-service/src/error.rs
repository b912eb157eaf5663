//! The errors of order-service's HTTP API, each answered as problem+json.
//! Only 5xx are logged as errors; their bodies never carry internals.

use axum::response::{IntoResponse, Response};
use contract::problem::{FieldError, Problem};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::{db::stock::Shortage, domain::pricing::PricingError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or a path parameter is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 404: no such order or product.
    #[error("not found: {0}")]
    NotFound(String),
    /// 409: a client price differs from the catalog; carries the current prices.
    #[error("price changed")]
    PriceChanged {
        errors: Vec<FieldError>,
        current_prices: Vec<(i64, Decimal)>,
    },
    /// 409: too few units of some products; carries the units available.
    #[error("insufficient stock")]
    InsufficientStock(Shortage),
    /// 409: the order is failed, cancelled or refunded; carries its status.
    #[error("order cannot be cancelled")]
    NotCancellable(String),
    /// 422: the request is well-formed JSON but invalid.
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    /// 422: this `Idempotency-Key` was used before with a different request.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// 503 + `Retry-After`: the database is unavailable right now.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// 500: anything else (logged with its cause; the client gets the request id).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if messaging::db::is_unavailable(&e) {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<PricingError> for ApiError {
    fn from(e: PricingError) -> Self {
        match e {
            PricingError::UnknownProducts(errors) => ApiError::Validation(errors),
            PricingError::PriceChanged {
                errors,
                current_prices,
            } => ApiError::PriceChanged {
                errors,
                current_prices,
            },
            PricingError::MixedCurrencies => ApiError::Validation(vec![FieldError::new(
                "items",
                "items are priced in different currencies",
            )]),
            PricingError::TotalTooLarge => {
                ApiError::Validation(vec![FieldError::new("items", "order total too large")])
            }
        }
    }
}

impl From<Shortage> for ApiError {
    fn from(shortage: Shortage) -> Self {
        ApiError::InsufficientStock(shortage)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use axum::http::StatusCode;
        let problem = match self {
            ApiError::BadRequest(detail) => Problem::bad_request(detail),
            ApiError::NotFound(detail) => Problem::not_found(detail),
            ApiError::Validation(errors) => Problem::validation(errors),
            ApiError::PriceChanged {
                errors,
                current_prices,
            } => {
                let prices: Map<String, Value> = current_prices
                    .into_iter()
                    .map(|(id, p)| (id.to_string(), Value::String(p.to_string())))
                    .collect();
                let mut p = Problem::new(
                    StatusCode::CONFLICT,
                    "price-changed",
                    "Price changed",
                    "the catalog price differs from the price sent; review the current prices and retry",
                )
                .with_extra("current_prices", prices);
                p.errors = errors;
                p
            }
            ApiError::InsufficientStock(Shortage { available }) => {
                let available: Map<String, Value> = available
                    .into_iter()
                    .map(|(id, units)| (id.to_string(), Value::from(units)))
                    .collect();
                Problem::new(
                    StatusCode::CONFLICT,
                    "insufficient-stock",
                    "Insufficient stock",
                    "too few units of some products are available; nothing was ordered",
                )
                .with_extra("available", available)
            }
            ApiError::NotCancellable(status) => Problem::new(
                StatusCode::CONFLICT,
                "order-not-cancellable",
                "Order cannot be cancelled",
                format!("the order is {status}; only a pending or paid order can be cancelled"),
            )
            .with_extra("order_status", Value::String(status)),
            ApiError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was already used with a different request; use a new key for a new order",
            ),
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "answering 503: database unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "the order store is temporarily unavailable; retry shortly",
                )
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                Problem::internal(None)
            }
        };
        problem.into_response()
    }
}
