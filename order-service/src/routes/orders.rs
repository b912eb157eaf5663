//! Creating and reading orders.

use std::time::Instant;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{SubsecRound, Utc};
use contract::{
    api::headers::{IDEMPOTENT_REPLAYED, idempotency_key, order_location},
    checkout::{CheckoutError, parse_checkout},
};
use messaging::outbox::OutboxRow;
use uuid::Uuid;

use super::AppState;
use crate::{
    db::{
        self,
        idempotency::StoredAnswer,
        orders::{NewOrder, OrderWrite},
    },
    domain::{
        order::{self, Order, OrderStatus},
        pricing::{PricedOrder, price_order},
    },
    error::ApiError,
};

/// `POST /orders`: validate, price from the in-memory catalog, and store
/// order + lines + event in one statement, which the checkouts in flight at
/// the same moment share (`messaging::db::batch`); under an `Idempotency-Key`,
/// in a transaction of its own with the answer. The event is
/// published by the relay after commit, never here: a crash at any point
/// leaves either nothing or the order *and* its event.
pub async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let key = idempotency_key(&headers).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let request = parse_checkout(&body).map_err(|error| match error {
        CheckoutError::Malformed(e) => ApiError::BadRequest(e.to_string()),
        CheckoutError::Invalid(errors) => ApiError::Validation(errors),
    })?;
    let fingerprint = serde_json::to_string(&request).expect("a checkout serialises");
    if let Some(key) = key
        && let Some(stored) =
            db::idempotency::find_answer(&state.pool, request.user_id, key).await?
    {
        return replay(stored, &fingerprint);
    }

    let catalog = state.catalog.snapshot();
    let priced = price_order(&request, &catalog.by_id)?;

    let order_id = Uuid::new_v4();
    // PostgreSQL keeps microseconds: the answer must equal what a read returns.
    let created_at = Utc::now().trunc_subsecs(6);
    let duration_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let order = order::pending_order(order_id, &request, &priced, created_at, duration_ms);
    let event = OutboxRow::of(&order::created_event(
        order_id, &request, &priced, created_at,
    ));
    let write = OrderWrite {
        order: NewOrder {
            id: order_id,
            user_id: request.user_id,
            user_email: request.user_email.clone(),
            priced: priced.clone(),
            created_at,
            processing_duration_ms: duration_ms,
        },
        event,
    };
    let Some(key) = key else {
        // One transaction and its commit, shared with the checkouts arriving
        // at the same moment.
        state.orders.submit(write).await??;
        return Ok(accepted(&state, order_id, &priced, order));
    };
    let mut tx = state.pool.begin().await?;
    let [stored] = db::stock::store_orders(&mut tx, std::slice::from_ref(&write))
        .await?
        .try_into()
        .expect("one outcome per order");
    // Nothing is stored for a shortage: the transaction is rolled back.
    stored?;
    let answer = StoredAnswer {
        request: fingerprint.clone(),
        response_status: 201,
        response_body: serde_json::to_string(&order).expect("an order serialises"),
        order_id,
    };
    if !db::idempotency::insert_answer(&mut tx, request.user_id, key, &answer).await? {
        // A concurrent request with this key won: drop this order, answer theirs.
        tx.rollback().await?;
        let stored = db::idempotency::find_answer(&state.pool, request.user_id, key)
            .await?
            .ok_or_else(|| anyhow::anyhow!("idempotency key taken but not found"))?;
        return replay(stored, &fingerprint);
    }
    tx.commit().await?;
    Ok(accepted(&state, order_id, &priced, order))
}

/// The order is committed: wake the relay and answer `201`.
fn accepted(state: &AppState, order_id: Uuid, priced: &PricedOrder, order: Order) -> Response {
    state.relay.notify_one();
    metrics::counter!("orders_created_total").increment(1);
    tracing::info!(%order_id, total = %priced.total, items = priced.lines.len(), "order created");
    created(order_id, Json(order).into_response(), false)
}

/// The first answer again, if the request is the same one.
fn replay(stored: StoredAnswer, fingerprint: &str) -> Result<Response, ApiError> {
    if stored.request != fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    let status = StatusCode::from_u16(stored.response_status as u16).unwrap_or(StatusCode::CREATED);
    let body = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        stored.response_body,
    )
        .into_response();
    Ok(created(stored.order_id, body, true))
}

fn created(order_id: Uuid, mut response: Response, replayed: bool) -> Response {
    *response.status_mut() = StatusCode::CREATED;
    response
        .headers_mut()
        .insert(header::LOCATION, order_location(order_id));
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// `GET /orders/{id}`.
pub async fn get_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    find(&state, &id).await.map(Json)
}

/// `GET /orders/{id}/status`.
pub async fn get_order_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OrderStatus>, ApiError> {
    find(&state, &id).await.map(|order| Json(order.into()))
}

pub(super) async fn find(state: &AppState, id: &str) -> Result<Order, ApiError> {
    let id = Uuid::parse_str(id)
        .map_err(|_| ApiError::BadRequest("malformed order id: expected a UUID".into()))?;
    db::orders::find_order(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no order {id}")))
}
