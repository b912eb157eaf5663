//! `GET /api/orders/{id}/timeline`: every step of one order, merged from the
//! three services that took them (see `messaging::timeline`). order-service
//! decides whether the order exists (`404` otherwise); payment-service and
//! email-service are asked at the same time, and one that cannot answer
//! within two seconds is named in `incomplete` rather than failing the page.
//!
//! The services' own timelines are for operators: they name queues and
//! quote raw errors (a provider's or an SMTP server's reply). The public
//! timeline keeps the step names and only the details that are the order's
//! own data ([`public_step`]).

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use contract::api::{OrderTimeline, TimelineStep};
use runtime::http::request_id;

use super::failures::{LookupFailures, UpstreamFailures};
use super::{AppState, OrderId};
use crate::{config::Settings, error::ApiError};

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
                request = request.header(runtime::http::REQUEST_ID, rid);
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
        retries and dead-lettering, each with its time, oldest first. Details are the order's \
        own data (amount, transaction id, decline code, email kind); internal causes are not \
        shown. \
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
    let steps: Vec<TimelineStep> = steps.into_iter().map(public_step).collect();
    let status = status_of(&steps);
    Ok(Json(OrderTimeline {
        order_id: id,
        status: status.to_owned(),
        steps,
        incomplete,
    })
    .into_response())
}

/// A step as the public sees it: the step's name and time, and its detail
/// only where that is the order's own data (amount, transaction id, decline
/// code, email kind); retries, dead-lettering and failed emails get a fixed
/// wording, and anything else no detail.
fn public_step(mut step: TimelineStep) -> TimelineStep {
    step.detail = match step.step.as_str() {
        "order.created" | "order.paid" | "order.failed" | "payment.completed"
        | "payment.failed" | "email.sent" | "email.sending" | "stock.reserved"
        | "stock.released" | "order.cancelled" | "refund.completed" | "order.refunded" => {
            step.detail
        }
        "message.retry_scheduled" => Some("a step failed for a passing reason; retrying".into()),
        "message.dead_lettered" => Some("held for an operator to look at".into()),
        "email.failed" => Some("the email could not be delivered".into()),
        _ => None,
    };
    step
}

/// The order's status from order-service's steps: a paid order the customer
/// cancelled is `refund_pending` until its refund is recorded; an order
/// cancelled before it was paid stays `cancelled`, refunded charge or not.
fn status_of(steps: &[TimelineStep]) -> &'static str {
    let took = |name: &str| steps.iter().any(|s| s.step == name);
    match (took("order.cancelled"), took("order.paid")) {
        (true, true) if took("order.refunded") => "refunded",
        (true, true) => "refund_pending",
        (true, false) => "cancelled",
        (false, true) => "paid",
        (false, false) if took("order.failed") => "failed",
        (false, false) => "pending",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, detail: &str) -> TimelineStep {
        serde_json::from_value(serde_json::json!({
            "at": "2026-12-03T08:00:00Z",
            "service": "payment-service",
            "step": name,
            "detail": detail,
        }))
        .unwrap()
    }

    #[test]
    fn the_public_timeline_shows_no_queue_names_or_raw_errors() {
        let internal = [
            step(
                "message.retry_scheduled",
                "payment_service_queue after attempt 1: payment provider unavailable (503 from 10.0.0.7)",
            ),
            step(
                "message.dead_lettered",
                "email_service_queue after attempt 5: malformed message: missing field",
            ),
            step(
                "email.failed",
                "550 5.1.1 <a@example.com>: mailbox unavailable",
            ),
            step(
                "event.published",
                "payment.payment.processed (after 3 publish attempts)",
            ),
            step("something.new", "internal detail"),
        ];
        for shown in internal.into_iter().map(public_step) {
            let detail = shown.detail.unwrap_or_default();
            for secret in [
                "queue",
                "attempt",
                "10.0.0.7",
                "550",
                "malformed",
                "internal",
            ] {
                assert!(!detail.contains(secret), "{}: {detail}", shown.step);
            }
        }
    }

    #[test]
    fn the_orders_own_data_stays_in_the_public_timeline() {
        for (name, detail) in [
            ("order.created", "1299.99 USD"),
            ("payment.completed", "TXN-9423F6A26202"),
            ("payment.failed", "card_declined"),
            ("email.sent", "confirmation"),
            ("order.cancelled", "payment_timeout"),
            ("stock.reserved", "2 units"),
            ("refund.completed", "RFD-0A1B2C3D4E5F"),
            ("order.refunded", "RFD-0A1B2C3D4E5F"),
        ] {
            assert_eq!(
                public_step(step(name, detail)).detail.as_deref(),
                Some(detail)
            );
        }
    }

    #[test]
    fn the_status_follows_the_orders_steps() {
        let status = |names: &[&str]| {
            let steps: Vec<TimelineStep> = names.iter().map(|n| step(n, "")).collect();
            status_of(&steps)
        };
        assert_eq!(status(&["order.created"]), "pending");
        assert_eq!(status(&["order.created", "order.paid"]), "paid");
        assert_eq!(status(&["order.created", "order.failed"]), "failed");
        assert_eq!(status(&["order.created", "order.cancelled"]), "cancelled");
        let late_charge = ["order.created", "order.cancelled", "order.refunded"];
        assert_eq!(status(&late_charge), "cancelled");
        let cancelled_paid = ["order.created", "order.paid", "order.cancelled"];
        assert_eq!(status(&cancelled_paid), "refund_pending");
        let refunded = [
            "order.created",
            "order.paid",
            "order.cancelled",
            "order.refunded",
        ];
        assert_eq!(status(&refunded), "refunded");
    }
}
