//! Creating and reading orders.

use std::time::Instant;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use common::{
    checkout::{CheckoutRequest, parse_checkout},
    events::{Event, OrderCreated, OrderCreatedItem, SCHEMA_VERSION},
    messaging::outbox,
};
use uuid::Uuid;

use super::AppState;
use crate::{
    db::{self, orders::NewOrder},
    domain::{
        order::{Order, OrderStatus},
        pricing::{PricedOrder, price_order},
    },
    error::ApiError,
};

/// `POST /orders`: validate, price, and store order + lines + event in one
/// transaction. The event is published by the relay after commit, never here:
/// a crash at any point leaves either nothing or the order *and* its event.
pub async fn create_order(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    let request = parse_checkout(&value).map_err(ApiError::Validation)?;

    let ids: Vec<i64> = request.items.iter().map(|i| i.product_id).collect();
    let catalog = db::products::find_products(&state.pool, &ids).await?;
    let priced = price_order(&request, &catalog)?;

    let order_id = Uuid::new_v4();
    let created_at = Utc::now();
    let event = order_created_event(order_id, &request, &priced, created_at);
    let mut tx = state.pool.begin().await?;
    let new_order = NewOrder {
        id: order_id,
        user_id: request.user_id,
        user_email: &request.user_email,
        priced: &priced,
        created_at,
        processing_duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    db::orders::insert_order(&mut tx, &new_order).await?;
    db::orders::insert_order_lines(&mut tx, order_id, &priced).await?;
    outbox::enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    state.relay.notify_one();
    metrics::counter!("orders_created_total").increment(1);
    tracing::info!(%order_id, total = %priced.total, items = priced.lines.len(), "order created");

    let order = db::orders::find_order(&state.pool, order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {order_id} missing right after commit"))?;
    let location = format!("/api/orders/{order_id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(order),
    )
        .into_response())
}

fn order_created_event(
    order_id: Uuid,
    request: &CheckoutRequest,
    priced: &PricedOrder,
    timestamp: chrono::DateTime<Utc>,
) -> OrderCreated {
    OrderCreated {
        event_type: OrderCreated::EVENT_TYPE.to_owned(),
        event_id: Uuid::new_v4(),
        timestamp,
        schema_version: SCHEMA_VERSION,
        order_id,
        user_id: request.user_id,
        user_email: request.user_email.clone(),
        total_amount: priced.total,
        currency: priced.currency.clone(),
        items: priced
            .lines
            .iter()
            .map(|l| OrderCreatedItem {
                product_id: l.product_id,
                name: l.name.clone(),
                quantity: l.quantity,
                price: l.unit_price,
            })
            .collect(),
    }
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

async fn find(state: &AppState, id: &str) -> Result<Order, ApiError> {
    let id = Uuid::parse_str(id)
        .map_err(|_| ApiError::BadRequest("malformed order id: expected a UUID".into()))?;
    db::orders::find_order(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no order {id}")))
}
