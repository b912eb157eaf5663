//! `GET /api/orders/{id}/timeline`: every step of one order, merged from the
//! three services that took them (see `common::timeline`). order-service
//! decides whether the order exists (`404` otherwise); payment-service and
//! email-service are asked at the same time, and one that cannot answer
//! within two seconds is named in `incomplete` rather than failing the page.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use common::{
    api::{OrderTimeline, TimelineStep},
    http::request_id,
};

use super::{AppState, OrderId};
use crate::{
    config::Settings,
    error::ApiError,
    openapi::{LookupFailures, UpstreamFailures},
};

/// How long payment-service and email-service get to answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// The services besides order-service that hold part of a timeline.
#[derive(Clone)]
pub struct TimelinePeers {
    http: reqwest::Client,
    peers: Arc<[(&'static str, String)]>,
}

impl TimelinePeers {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let http = crate::order_client::internal_client(settings, PEER_TIMEOUT)?;
        Ok(Self {
            http,
            peers: Arc::new([
                ("payment-service", settings.payment_service_url.clone()),
                ("email-service", settings.email_service_url.clone()),
            ]),
        })
    }

    /// Each peer's steps, or its name when it could not answer.
    async fn steps(
        &self,
        id: uuid::Uuid,
        request_id: Option<&str>,
    ) -> (Vec<TimelineStep>, Vec<String>) {
        let asks = self.peers.iter().map(|(name, base)| async move {
            let mut request = self.http.get(format!("{base}/timeline/{id}"));
            if let Some(rid) = request_id {
                request = request.header(common::http::REQUEST_ID, rid);
            }
            let answer = match request.send().await {
                Ok(r) if r.status().is_success() => r.json::<Vec<TimelineStep>>().await.ok(),
                _ => None,
            };
            if answer.is_none() {
                tracing::warn!(peer = name, order_id = %id, "timeline: no answer");
            }
            (*name, answer)
        });
        let mut steps = Vec::new();
        let mut incomplete = Vec::new();
        for (name, answer) in futures::future::join_all(asks).await {
            match answer {
                Some(found) => steps.extend(found),
                None => incomplete.push(name.to_owned()),
            }
        }
        (steps, incomplete)
    }
}

/// `200` with every step so far, oldest first; `404` unknown, `400`
/// malformed id.
#[utoipa::path(
    get,
    path = "/api/orders/{id}/timeline",
    tag = "orders",
    summary = "Every step of an order",
    description = "Created, events published, payment made or declined, email sent or failed, \
        retries (with their reason) and dead-lettering, each with its time, oldest first. \
        `incomplete` names a service whose part could not be read just now.",
    params(("id" = uuid::Uuid, Path, description = "The order id from the checkout")),
    responses(
        (status = 200, description = "The order's timeline.", body = OrderTimeline),
        LookupFailures,
        UpstreamFailures,
    ),
)]
pub async fn get_order_timeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    OrderId(id): OrderId,
) -> Result<Response, ApiError> {
    let request_id = request_id(&headers);
    let (own, (peer_steps, incomplete)) = tokio::join!(
        state.orders.get_timeline(id, request_id.as_deref()),
        state.timeline_peers.steps(id, request_id.as_deref()),
    );
    let own = own?;
    if own.status != StatusCode::OK {
        return Ok(own.into_response());
    }
    let Ok(mut steps) = serde_json::from_slice::<Vec<TimelineStep>>(&own.body) else {
        return Err(ApiError::BadGateway { request_id });
    };
    steps.extend(peer_steps);
    steps.sort_by_key(|s| s.at);
    let status = if steps.iter().any(|s| s.step == "order.paid") {
        "paid"
    } else if steps.iter().any(|s| s.step == "order.failed") {
        "failed"
    } else {
        "pending"
    };
    Ok(Json(OrderTimeline {
        order_id: id,
        status: status.to_owned(),
        steps,
        incomplete,
    })
    .into_response())
}
