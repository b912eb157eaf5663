//! HTTP plumbing shared by the services: request ids, request metrics,
//! problem+json for every error, and serving with connection timeouts and
//! graceful shutdown ([`serve`]).

mod serve;

pub(crate) use serve::serve_borrowed;
pub use serve::{CLIENT_POOL_IDLE_TIMEOUT, HEADER_READ_TIMEOUT, serve};

use std::time::{Duration, Instant};

use axum::{
    Router,
    extract::{MatchedPath, Request},
    http::{HeaderMap, HeaderName, Method, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

use contract::problem::Problem;

use crate::trace_context;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds the layers every service has: a request id (kept from the caller
/// when it is usable, else made up; echoed in the response), a tracing span
/// per request carrying it and continuing the caller's trace (`traceparent`
/// header), one `request finished` line per request (at debug for `/health`,
/// `/ready` and `/metrics`), request metrics, and problem+json for every
/// error answer.
pub fn with_standard_layers(router: Router, service: &'static str) -> Router {
    router
        .layer(middleware::from_fn(problem_answers))
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
        // Outermost: an unusable id is dropped before one is kept or made up.
        .layer(middleware::map_request(drop_unusable_request_id))
}

/// The longest `X-Request-Id` kept from a caller. The id is echoed, logged
/// on every line of the request and forwarded, so a longer one (or one with
/// spaces or control characters) is replaced by a fresh one.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A caller's request id is kept only when it is one header of 1 to
/// [`MAX_REQUEST_ID_LEN`] visible ASCII characters.
fn is_usable_request_id(headers: &HeaderMap) -> bool {
    let mut ids = headers.get_all(REQUEST_ID).iter();
    match (ids.next(), ids.next()) {
        (Some(id), None) => {
            let bytes = id.as_bytes();
            (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len())
                && bytes.iter().all(u8::is_ascii_graphic)
        }
        (None, _) => true,
        (Some(_), Some(_)) => false,
    }
}

async fn drop_unusable_request_id(mut request: Request) -> Request {
    if !is_usable_request_id(request.headers()) {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

/// Liveness, readiness and metrics: polled all the time, not worth a trace
/// (nor a rate limit).
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

/// Every label value comes from a closed set, so no request can add series:
/// the method is a standard one or `other`, the path a route template or
/// `unmatched`, the status a number.
async fn record_metrics(service: &'static str, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "service" => service, "method" => method, "path" => path.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "service" => service, "method" => method, "path" => path)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a metric label: one of the nine standard methods, else
/// `other` (a client may send any token as a method).
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// Every error answer is problem+json, and carries the request id, so a
/// client reporting a 5xx gives the operator the key to the logs (and
/// nothing internal). An error with no body of its own (a route of a
/// library, such as the docs page's files, or a layer's refusal) gets a
/// problem for its status.
async fn problem_answers(req: Request, next: Next) -> Response {
    let request_id = request_id(req.headers());
    let response = next.run(req).await;
    let problem = match response.extensions().get::<Problem>() {
        Some(problem) if problem.request_id.is_none() => problem.clone(),
        Some(_) => return response,
        None if is_bare_error(&response) => Problem::for_status(response.status()),
        None => return response,
    };
    let (parts, _) = response.into_parts();
    let mut rebuilt = problem.with_request_id(request_id).into_response();
    // Keep headers the handler set (Location, Retry-After, Allow, ...), but
    // not those describing the body it replaces.
    let mut kept = parts.headers;
    kept.remove(header::CONTENT_TYPE);
    kept.remove(header::CONTENT_LENGTH);
    // `extend` replaces the problem's own value of a header the handler set.
    rebuilt.headers_mut().extend(kept);
    rebuilt
}

/// An error status with no declared content: nothing a client could read.
fn is_bare_error(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && !response.headers().contains_key(header::CONTENT_TYPE)
}

/// The request id of the request being handled, if any.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for made_up in ["XABC", "get", "PROPFIND"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }

    #[test]
    fn only_short_visible_single_request_ids_are_kept() {
        let with = |ids: &[&str]| {
            let mut headers = HeaderMap::new();
            for id in ids {
                headers.append(REQUEST_ID, HeaderValue::from_str(id).unwrap());
            }
            is_usable_request_id(&headers)
        };
        assert!(with(&[]));
        assert!(with(&["3f2a-client-id"]));
        assert!(with(&[&"x".repeat(MAX_REQUEST_ID_LEN)]));
        assert!(!with(&[&"x".repeat(MAX_REQUEST_ID_LEN + 1)]));
        assert!(!with(&[""]));
        assert!(!with(&["has space"]));
        assert!(!with(&["tab\there"]));
        assert!(!with(&["a", "b"]));
    }
}
