//! HTTP plumbing shared by the services: request ids, request metrics, and
//! serving with connection timeouts and graceful shutdown.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, MatchedPath, Request},
    http::HeaderName,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};

use crate::{problem::Problem, trace_context};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds the layers every service has: a request id (kept from the caller or
/// made up, echoed in the response), a tracing span per request carrying it
/// and continuing the caller's trace (`traceparent` header), one
/// `request finished` line per request (at debug for `/health`, `/ready` and
/// `/metrics`), and request metrics.
pub fn with_standard_layers(router: Router, service: &'static str) -> Router {
    router
        .layer(middleware::from_fn(add_request_id_to_problems))
        .layer(middleware::from_fn(move |req, next| {
            record_metrics(service, req, next)
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |req: &Request| {
                    let request_id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("-");
                    let (method, path) = (req.method(), req.uri().path());
                    if is_probe(path) {
                        // Health checks and scrapes: no trace, logged at debug only.
                        return tracing::debug_span!("http", service, %method, path, request_id);
                    }
                    let span = tracing::info_span!("http", service, %method, path, request_id);
                    // The caller's trace goes on here (a new one when there is none).
                    let traceparent = req.headers().get(trace_context::TRACEPARENT);
                    trace_context::set_remote_parent(
                        &span,
                        traceparent.and_then(|v| v.to_str().ok()),
                    );
                    span
                })
                .on_response(
                    |response: &Response, latency: Duration, span: &tracing::Span| {
                        let status = response.status().as_u16();
                        let latency_ms = latency.as_secs_f64() * 1000.0;
                        if span
                            .metadata()
                            .is_some_and(|m| *m.level() == tracing::Level::DEBUG)
                        {
                            tracing::debug!(status, latency_ms, "request finished");
                        } else {
                            tracing::info!(status, latency_ms, "request finished");
                        }
                    },
                ),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Liveness, readiness and metrics: polled all the time, not worth a trace.
fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
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

/// How long a client has to send a request's headers, from the moment the
/// connection is open or the previous answer is sent: a slow or idle client
/// (slowloris) cannot hold a connection and its task forever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client of our servers keeps an idle keep-alive connection.
/// Shorter than [`HEADER_READ_TIMEOUT`], after which the server closes an
/// idle connection: with a longer one (reqwest's default is 90 s) a request
/// sent on a connection just as the server closes it is reset, and a
/// checkout without an `Idempotency-Key` cannot be retried (seen as 502s at
/// 300 checkouts/s).
pub const CLIENT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
const _: () = assert!(CLIENT_POOL_IDLE_TIMEOUT.as_millis() < HEADER_READ_TIMEOUT.as_millis());

/// How long in-flight requests may take to finish once shutdown has begun.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `router` over HTTP/1.1 until `stop`, then lets in-flight requests
/// finish (bounded by 20 s) and closes idle keep-alive connections.
///
/// The same as `axum::serve` plus what it does not do: a header read timeout
/// on every connection ([`HEADER_READ_TIMEOUT`]), and the peer address in
/// each request's extensions as `ConnectInfo<SocketAddr>` (per-client rate
/// limiting keys on it).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or the peer gave up before the
                    // accept: not fatal. Pause so a full fd table is not a busy loop.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small request/answer pairs: send each answer at once.
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    request.map(Body::new)
                });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Client resets, header timeouts, malformed requests.
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}; closing");
    }
    Ok(())
}
