//! `POST /orders/{id}/cancel` with `{"user_id": N}`: `200` and the order
//! when it was pending (now `cancelled`), `202` and the order when it was
//! paid (now `refund_pending`, until payment-service's refund arrives; a
//! repeat while it is pending answers `202` again and asks nothing more),
//! `409` when it is failed, cancelled or refunded, `404` when there is no
//! such order for this user.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use contract::{cancel::parse_cancel, checkout::CheckoutError};

use super::{AppState, orders::find};
use crate::{
    db::cancellation::{Cancellation, cancel_by_customer},
    error::ApiError,
};

pub async fn cancel_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = parse_cancel(&body).map_err(|error| match error {
        CheckoutError::Malformed(e) => ApiError::BadRequest(e.to_string()),
        CheckoutError::Invalid(errors) => ApiError::Validation(errors),
    })?;
    let order_id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest("malformed order id: expected a UUID".into()))?;
    let status = match cancel_by_customer(&state.pool, order_id, request.user_id).await? {
        Cancellation::NotFound => return Err(ApiError::NotFound(format!("no order {order_id}"))),
        Cancellation::NotCancellable(status) => return Err(ApiError::NotCancellable(status)),
        Cancellation::Cancelled => {
            metrics::counter!("orders_cancelled_total", "reason" => contract::events::CancelReason::Customer.as_str()).increment(1);
            tracing::info!(%order_id, "order cancelled by the customer");
            StatusCode::OK
        }
        Cancellation::RefundPending => {
            tracing::info!(%order_id, "paid order cancelled by the customer; refund requested");
            StatusCode::ACCEPTED
        }
    };
    state.relay.notify_one();
    let order = find(&state, &id).await?;
    Ok((status, Json(order)).into_response())
}
