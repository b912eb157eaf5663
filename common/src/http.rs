//! HTTP plumbing shared by the services: request ids, request metrics, and
//! serving with graceful shutdown.

use std::time::Instant;

use axum::{
    Router,
    extract::{MatchedPath, Request},
    http::HeaderName,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};

use crate::problem::Problem;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds the layers every service has: a request id (kept from the caller or
/// made up, echoed in the response), a tracing span per request carrying it,
/// and request metrics.
pub fn with_standard_layers(router: Router, service: &'static str) -> Router {
    router
        .layer(middleware::from_fn(add_request_id_to_problems))
        .layer(middleware::from_fn(move |req, next| record_metrics(service, req, next)))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id = req
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn record_metrics(service: &'static str, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // The route template (`/api/orders/{id}`), never the raw path: bounded labels.
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "service" => service, "method" => method.clone(), "path" => path.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "service" => service, "method" => method, "path" => path)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Every problem+json answer carries the request id, so a client reporting a
/// 5xx gives the operator the key to the logs (and nothing internal).
async fn add_request_id_to_problems(req: Request, next: Next) -> Response {
    let request_id = request_id(req.headers());
    let response = next.run(req).await;
    let problem = response.extensions().get::<Problem>().cloned();
    match (problem, request_id) {
        (Some(problem), Some(id)) if problem.request_id.is_none() => {
            let (mut parts, _) = response.into_parts();
            let mut rebuilt = problem.with_request_id(Some(id)).into_response();
            // Keep headers the handler set (Location, Retry-After, ...).
            std::mem::swap(rebuilt.headers_mut(), &mut parts.headers);
            rebuilt
        }
        _ => response,
    }
}

/// The request id of the request being handled, if any.
pub fn request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Serves `router` until `stop`, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await?;
    Ok(())
}
