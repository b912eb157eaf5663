//! Test harness: the real gateway, a scriptable fake order-service that
//! records every request it gets, and a client.

use runtime::service::Service as _;
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use gateway::{config::Settings, startup::Application};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const SEED_CHECKOUT: &str = r#"{"user_id":1,"user_email":"test@example.com","items":[{"product_id":1,"quantity":1,"price":"1299.99"}]}"#;

pub fn seed_checkout() -> Value {
    serde_json::from_str(SEED_CHECKOUT).unwrap()
}

/// How the fake order-service answers.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// Like the real one: `201` order on `POST /orders`, the order or its
    /// status on reads of a known id (`404` problem otherwise), the catalog.
    Healthy,
    /// `409` price-mismatch problem to every checkout.
    PriceChanged,
    /// `422` unknown-product problem to every checkout.
    UnknownProduct,
    /// Sleeps this long before answering.
    Slow(Duration),
    /// Sleeps this long before answering the first checkout only, as a
    /// stalled replica would; answers later calls at once.
    SlowFirstCheckout(Duration),
    /// `500` with a body full of internals.
    Crashing,
    /// `503` with `Retry-After: 7`.
    Overloaded,
    /// `200`/`201` with a body that is not JSON.
    Garbage,
}

/// One request as order-service received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the gateway sends JSON")
    }
}

#[derive(Clone)]
struct FakeState {
    behaviour: Upstream,
    calls: Arc<Mutex<Vec<Recorded>>>,
    known_order: Uuid,
}

/// A fake order-service on a free port; stops when dropped.
pub struct FakeOrderService {
    pub addr: SocketAddr,
    /// The one order id the healthy fake knows.
    pub known_order: Uuid,
    calls: Arc<Mutex<Vec<Recorded>>>,
    stop: CancellationToken,
}

impl FakeOrderService {
    pub async fn start(behaviour: Upstream) -> Self {
        let state = FakeState {
            behaviour,
            calls: Arc::default(),
            known_order: Uuid::new_v4(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let router = Router::new().fallback(answer).with_state(state.clone());
        let serving =
            axum::serve(listener, router).with_graceful_shutdown(stop.clone().cancelled_owned());
        tokio::spawn(async move { serving.await });
        Self {
            addr,
            known_order: state.known_order,
            calls: state.calls,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, `/health` probes excluded.
    pub fn calls(&self) -> Vec<Recorded> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.path != "/health")
            .cloned()
            .collect()
    }
}

impl Drop for FakeOrderService {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn answer(State(state): State<FakeState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let call = Recorded {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body,
    };
    state.calls.lock().unwrap().push(call.clone());
    if call.path == "/health" {
        return Json(json!({"status": "ok"})).into_response();
    }
    match state.behaviour {
        Upstream::Healthy => healthy(&state, &call),
        Upstream::PriceChanged => problem(
            StatusCode::CONFLICT,
            json!({"type": "/problems/price-mismatch", "title": "Price changed", "status": 409,
                   "detail": "the price of product 1 is now 1199.99", "current_price": "1199.99"}),
        ),
        Upstream::UnknownProduct => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"type": "/problems/validation", "title": "Invalid request", "status": 422,
                   "detail": "one or more fields are invalid",
                   "errors": [{"field": "items[0].product_id", "message": "no such product"}]}),
        ),
        Upstream::Slow(delay) => {
            tokio::time::sleep(delay).await;
            healthy(&state, &call)
        }
        Upstream::SlowFirstCheckout(delay) => {
            let checkouts = state
                .calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.path == "/orders")
                .count();
            if checkouts == 1 {
                tokio::time::sleep(delay).await;
            }
            healthy(&state, &call)
        }
        Upstream::Crashing => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "thread 'tokio-runtime-worker' panicked at src/db.rs:42: \
             connection to postgres://orders:hunter2@db/order_db refused",
        )
            .into_response(),
        Upstream::Overloaded => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "7")],
            Json(json!({"type": "/problems/unavailable", "status": 503,
                        "detail": "pool timed out: postgres://orders:hunter2@db"})),
        )
            .into_response(),
        Upstream::Garbage => (StatusCode::CREATED, "<html>oops</html>").into_response(),
    }
}

fn healthy(state: &FakeState, call: &Recorded) -> Response {
    let known = format!("/orders/{}", state.known_order);
    match (call.method.clone(), call.path.as_str()) {
        (Method::POST, "/orders") => {
            (StatusCode::CREATED, Json(order(Uuid::new_v4()))).into_response()
        }
        (Method::GET, path) if path == known => Json(order(state.known_order)).into_response(),
        (Method::GET, path) if path == format!("{known}/status") => {
            Json(json!({"id": state.known_order, "status": "pending", "payment": null}))
                .into_response()
        }
        (Method::GET, "/products") => Json(json!([product()])).into_response(),
        (Method::GET, "/products/1") => Json(product()).into_response(),
        _ => problem(
            StatusCode::NOT_FOUND,
            json!({"type": "/problems/not-found", "title": "Not found", "status": 404,
                   "detail": "no such order"}),
        ),
    }
}

fn problem(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body.to_string(),
    )
        .into_response()
}

pub fn order(id: Uuid) -> Value {
    json!({
        "id": id, "status": "pending", "user_id": 1, "user_email": "test@example.com",
        "total_amount": "1299.99", "currency": "USD",
        "items": [{"product_id": 1, "name": "Gaming Laptop", "unit_price": "1299.99",
                   "quantity": 1, "line_total": "1299.99"}],
        "payment": null,
        "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
        "processing_duration_ms": null
    })
}

fn product() -> Value {
    json!({"id": 1, "name": "Gaming Laptop", "price": "1299.99", "currency": "USD"})
}

/// The real gateway, serving on its own port until dropped.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Upstream request timeout used by the tests (the default is 10 s).
pub const TEST_UPSTREAM_TIMEOUT: Duration = Duration::from_millis(500);

/// The gateway in front of `order_service_url`, without rate limiting.
pub async fn spawn_app(order_service_url: String) -> TestApp {
    spawn_app_with(order_service_url, |_| {}).await
}

/// The gateway in front of `order_service_url`, with settings adjusted by
/// `configure` (rate limit, concurrency).
pub async fn spawn_app_with(
    order_service_url: String,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    test_support::init_logs();
    let mut settings = Settings {
        bind_addr: "127.0.0.1:0".parse().unwrap(),
        order_service_url,
        // Nothing listens there: the gateway tests' timelines are incomplete.
        payment_service_url: "http://127.0.0.1:9".into(),
        email_service_url: "http://127.0.0.1:9".into(),
        order_service_timeout: TEST_UPSTREAM_TIMEOUT,
        connect_timeout: Duration::from_secs(2),
        order_service_max_concurrency: Settings::DEFAULT_MAX_CONCURRENCY,
        rate_limit: None,
    };
    configure(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("the gateway builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    TestApp {
        address,
        client,
        stop,
    }
}

/// The gateway in front of a fresh fake order-service.
pub async fn spawn_with(behaviour: Upstream) -> (TestApp, FakeOrderService) {
    let upstream = FakeOrderService::start(behaviour).await;
    let app = spawn_app(upstream.url()).await;
    (app, upstream)
}

/// An address where nothing listens: order-service is down.
pub fn closed_port_url() -> String {
    format!("http://127.0.0.1:{}", test_support::free_port())
}

impl TestApp {
    pub async fn post_checkout(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(format!("{}/api/checkout", self.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the gateway answers")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the gateway answers")
    }
}

/// Asserts an RFC 9457 problem with `status` and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json",
        "content type"
    );
    let body: Value = response.json().await.expect("a JSON problem body");
    assert_eq!(body["status"], status, "{body}");
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "problem without {member}: {body}");
    }
    body
}
