//! The HTTP client for order-service's internal API, and the one place that
//! decides what an upstream answer means for the gateway's client:
//!
//! | order-service | gateway answers |
//! | --- | --- |
//! | 2xx with a JSON body | the same status and body |
//! | 4xx with a JSON object (a problem) | the same status and body |
//! | 503 | 503 problem, its `Retry-After` kept |
//! | cannot connect | 503 problem with `Retry-After` |
//! | no answer within the timeout | 504 problem |
//! | any other status, a body that is not JSON, a broken connection | 502 problem |
//! | (too many calls already in flight, none finished within 1 s) | 503 problem, nothing sent |
//!
//! A failed call is sent once more, 50 ms later, when that cannot do harm:
//! after a failure to connect (nothing reached order-service) for every
//! call; after a broken connection for reads; and after a timeout or a
//! broken connection for a checkout that carries an `Idempotency-Key`,
//! because order-service answers a repeated key with the first order (or
//! waits for it) instead of making a second one. A checkout without a key,
//! and a cancel, are never sent twice once they may have arrived: the client
//! gets the 504 or 502 and decides. Each attempt has the whole `ORDER_SERVICE_TIMEOUT_MS`, so a
//! keyed checkout may take up to twice that before its 504.
//!
//! 5xx problems carry the request id and nothing about the cause, which is
//! logged here at error level.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use contract::{cancel::CancelRequest, checkout::CheckoutRequest};
use runtime::{health::ReadinessCheck, http::REQUEST_ID};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{config::Settings, error::ApiError};

mod exchange;
use exchange::{RETRY_PAUSE, Retry, error_chain, exchange};

/// The largest answer read from order-service (the catalog is the biggest);
/// anything larger is treated as garbage rather than buffered.
pub const MAX_UPSTREAM_BODY: usize = 4 * 1024 * 1024;

/// How long `/ready` waits for order-service's `/health`.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// One pooled keep-alive client for the life of the process; cheap to clone.
#[derive(Clone)]
pub struct OrderClient {
    http: reqwest::Client,
    base: Arc<str>,
    /// One permit per call in flight (`ORDER_SERVICE_MAX_CONCURRENCY`).
    slots: Arc<Semaphore>,
    slot_wait: Duration,
}

/// A 2xx or 4xx answer from order-service whose body is JSON, to be passed
/// through to the client unchanged.
#[derive(Debug)]
pub struct Upstream {
    pub status: StatusCode,
    pub body: Bytes,
    /// order-service answered a checkout again from its `Idempotency-Key`
    /// record (`Idempotent-Replayed: true`, passed on to the client).
    pub replayed: bool,
}

/// Marks an answer replayed for a repeated `Idempotency-Key`.
pub const IDEMPOTENT_REPLAYED: header::HeaderName =
    header::HeaderName::from_static("idempotent-replayed");

impl IntoResponse for Upstream {
    fn into_response(self) -> Response {
        let content_type = if self.status.is_client_error() {
            contract::problem::CONTENT_TYPE
        } else {
            "application/json"
        };
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            self.body,
        )
            .into_response();
        if self.replayed {
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
        response
    }
}

impl OrderClient {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let http = internal_client(settings, settings.order_service_timeout)?;
        Ok(Self {
            http,
            base: settings.order_service_url.as_str().into(),
            slots: Arc::new(Semaphore::new(settings.order_service_max_concurrency)),
            slot_wait: Settings::SLOT_WAIT,
        })
    }

    /// `POST /orders` with the validated checkout.
    pub async fn create_order(
        &self,
        checkout: &CheckoutRequest,
        idempotency_key: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<Upstream, ApiError> {
        let mut request = self.http.post(self.url("/orders")).json(checkout);
        if let Some(key) = idempotency_key {
            request = request.header(contract::api::headers::IDEMPOTENCY_KEY, key);
        }
        let retry = match idempotency_key {
            Some(_) => Retry::Idempotent,
            None => Retry::IfNothingWasSent,
        };
        self.send("create_order", request, retry, request_id).await
    }

    /// `POST /orders/{id}/cancel` with the validated cancel request. Sent
    /// once more only if it never reached order-service.
    pub async fn cancel_order(
        &self,
        id: Uuid,
        cancel: &CancelRequest,
        request_id: Option<&str>,
    ) -> Result<Upstream, ApiError> {
        let request = self
            .http
            .post(self.url(&format!("/orders/{id}/cancel")))
            .json(cancel);
        self.send("cancel_order", request, Retry::IfNothingWasSent, request_id)
            .await
    }

    /// `GET /orders/{id}`.
    pub async fn get_order(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<Upstream, ApiError> {
        let request = self.http.get(self.url(&format!("/orders/{id}")));
        self.send("get_order", request, Retry::Reads, request_id)
            .await
    }

    /// `GET /orders/{id}/status`.
    pub async fn get_order_status(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<Upstream, ApiError> {
        let request = self.http.get(self.url(&format!("/orders/{id}/status")));
        self.send("get_order_status", request, Retry::Reads, request_id)
            .await
    }

    /// `GET /timeline/{id}`: order-service's part of the order's timeline.
    pub async fn get_timeline(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<Upstream, ApiError> {
        let request = self.http.get(self.url(&format!("/timeline/{id}")));
        self.send("get_timeline", request, Retry::Reads, request_id)
            .await
    }

    /// `GET /products`.
    pub async fn list_products(&self, request_id: Option<&str>) -> Result<Upstream, ApiError> {
        let request = self.http.get(self.url("/products"));
        self.send("list_products", request, Retry::Reads, request_id)
            .await
    }

    /// `GET /products/{id}`.
    pub async fn get_product(
        &self,
        id: i64,
        request_id: Option<&str>,
    ) -> Result<Upstream, ApiError> {
        let request = self.http.get(self.url(&format!("/products/{id}")));
        self.send("get_product", request, Retry::Reads, request_id)
            .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends one request, forwarding the request id and the trace context, and classifies the
    /// outcome (see the module table). Every call is counted and timed.
    async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
        retry: Retry,
        request_id: Option<&str>,
    ) -> Result<Upstream, ApiError> {
        let request = match request_id {
            Some(id) => request.header(REQUEST_ID, id),
            None => request,
        };
        // order-service's request span joins this request's trace.
        let request = match runtime::trace_context::current() {
            Some(trace) => request.header(runtime::trace_context::TRACEPARENT, trace.to_string()),
            None => request,
        };
        let Ok(Ok(_slot)) = tokio::time::timeout(self.slot_wait, self.slots.acquire()).await else {
            metrics::counter!("gateway_upstream_requests_total", "operation" => operation, "outcome" => "overloaded")
                .increment(1);
            tracing::warn!(
                operation,
                request_id = request_id.unwrap_or("-"),
                "no free slot for an order-service call; answering 503"
            );
            return Err(ApiError::Overloaded {
                request_id: request_id.map(str::to_owned),
            });
        };
        let started = Instant::now();
        let again = request.try_clone();
        let mut result = exchange(request).await;
        if let (Err(failure), Some(again)) = (&result, again)
            && retry.allows(failure)
        {
            metrics::counter!("gateway_upstream_retries_total", "operation" => operation)
                .increment(1);
            tracing::warn!(
                operation,
                request_id = request_id.unwrap_or("-"),
                error = error_chain(failure),
                "order-service call failed; sending it once more"
            );
            tokio::time::sleep(RETRY_PAUSE).await;
            result = exchange(again).await;
        }
        metrics::histogram!("gateway_upstream_request_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(answer) if answer.status.is_success() => "ok",
            Ok(_) => "client_error",
            Err(failure) => failure.label(),
        };
        metrics::counter!("gateway_upstream_requests_total", "operation" => operation, "outcome" => outcome)
            .increment(1);
        result.map_err(|failure| {
            tracing::error!(
                operation,
                request_id = request_id.unwrap_or("-"),
                error = error_chain(&failure),
                "order-service call failed"
            );
            failure.into_api_error(request_id.map(str::to_owned))
        })
    }
}

/// A client for the services behind the gateway, each call bounded by
/// `timeout`.
pub(crate) fn internal_client(
    settings: &Settings,
    timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(timeout)
        .pool_idle_timeout(runtime::http::CLIENT_POOL_IDLE_TIMEOUT)
        // Internal traffic: never through an egress proxy from the
        // environment, never following redirects.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// `/ready`: order-service's `/health` answers 2xx within two seconds, and
/// not that it is still starting (its port answers from the first second,
/// before it can serve).
#[async_trait::async_trait]
impl ReadinessCheck for OrderClient {
    async fn check(&self) -> Result<(), String> {
        let probe = self
            .http
            .get(self.url("/health"))
            .timeout(READINESS_TIMEOUT)
            .send()
            .await;
        // The report is served publicly: say what is wrong, not where.
        match probe {
            Ok(response) if response.status().is_success() => {
                let health: serde_json::Value = response.json().await.unwrap_or_default();
                if health["status"] == runtime::health::STARTING {
                    Err("order-service is starting".into())
                } else {
                    Ok(())
                }
            }
            Ok(response) => Err(format!("order-service answered {}", response.status())),
            Err(e) if e.is_connect() => {
                tracing::warn!(
                    error = error_chain(&e),
                    "readiness: order-service unreachable"
                );
                Err("order-service unreachable".into())
            }
            Err(e) if e.is_timeout() => Err("order-service did not answer within 2s".into()),
            Err(e) => {
                tracing::warn!(
                    error = error_chain(&e),
                    "readiness: order-service call failed"
                );
                Err("order-service call failed".into())
            }
        }
    }
}
