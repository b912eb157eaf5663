//! Test harness: the real gateway, a scriptable fake order-service that
//! records every request it gets, and a client.

use runtime::service::Service as _;
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
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
use tokio::io::AsyncReadExt;
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
    /// status on reads of a known id (`404` problem otherwise), the catalog;
    /// a cancel by `user_id` 1 of a known order as order-service answers it
    /// (`pending` → `cancelled` `200`, `paid` or `refund_pending` →
    /// `refund_pending` `202`, otherwise `409` with `order_status`), `404`
    /// for an unknown order or another user.
    Healthy,
    /// `409` price-mismatch problem to every checkout.
    PriceChanged,
    /// `422` unknown-product problem to every checkout.
    UnknownProduct,
    /// Sleeps this long before answering.
    Slow(Duration),
    /// Sleeps this long before answering the first write (`POST`) only, as
    /// a stalled replica would; answers later calls at once.
    SlowFirstWrite(Duration),
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
    /// The status of each order the healthy fake knows; cancels change it.
    orders: Arc<Mutex<HashMap<Uuid, &'static str>>>,
}

/// A fake order-service on a free port; stops when dropped.
pub struct FakeOrderService {
    pub addr: SocketAddr,
    /// An order the healthy fake knows, `pending` (until cancelled), of
    /// `user_id` 1.
    pub known_order: Uuid,
    /// An order the healthy fake knows, `paid` (until cancelled), of
    /// `user_id` 1.
    pub paid_order: Uuid,
    calls: Arc<Mutex<Vec<Recorded>>>,
    stop: CancellationToken,
}

impl FakeOrderService {
    pub async fn start(behaviour: Upstream) -> Self {
        let (known_order, paid_order) = (Uuid::new_v4(), Uuid::new_v4());
        let state = FakeState {
            behaviour,
            calls: Arc::default(),
            orders: Arc::new(Mutex::new(HashMap::from([
                (known_order, "pending"),
                (paid_order, "paid"),
            ]))),
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
            known_order,
            paid_order,
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
        Upstream::SlowFirstWrite(delay) => {
            let writes = state
                .calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.method == Method::POST)
                .count();
            if writes == 1 {
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
    let segments: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
    let known = |id: &str| {
        let id = Uuid::try_parse(id).ok()?;
        let status = *state.orders.lock().unwrap().get(&id)?;
        Some((id, status))
    };
    match (call.method.clone(), segments.as_slice()) {
        (Method::POST, ["orders"]) => {
            (StatusCode::CREATED, Json(order(Uuid::new_v4()))).into_response()
        }
        (Method::GET, ["orders", id]) => match known(id) {
            Some((id, status)) => Json(order_in(id, status)).into_response(),
            None => not_found(),
        },
        (Method::GET, ["orders", id, "status"]) => match known(id) {
            Some((id, status)) => {
                Json(json!({"id": id, "status": status, "payment": null})).into_response()
            }
            None => not_found(),
        },
        (Method::POST, ["orders", id, "cancel"]) => cancel(state, known(id), call),
        (Method::GET, ["products"]) => Json(json!([product()])).into_response(),
        (Method::GET, ["products", "1"]) => Json(product()).into_response(),
        _ => not_found(),
    }
}

/// order-service's answer to `POST /orders/{id}/cancel` of `order` (its id
/// and status, if it exists).
fn cancel(state: &FakeState, order: Option<(Uuid, &'static str)>, call: &Recorded) -> Response {
    let user_id = serde_json::from_slice::<Value>(&call.body)
        .ok()
        .and_then(|body| body["user_id"].as_i64());
    let Some((id, status)) = order.filter(|_| user_id == Some(1)) else {
        return not_found();
    };
    let (answer, now) = match status {
        "pending" => (StatusCode::OK, "cancelled"),
        "paid" | "refund_pending" => (StatusCode::ACCEPTED, "refund_pending"),
        other => {
            return problem(
                StatusCode::CONFLICT,
                json!({"type": "/problems/order-not-cancellable",
                       "title": "Order not cancellable", "status": 409,
                       "detail": format!("a {other} order cannot be cancelled"),
                       "order_status": other}),
            );
        }
    };
    state.orders.lock().unwrap().insert(id, now);
    (answer, Json(order_in(id, now))).into_response()
}

fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        json!({"type": "/problems/not-found", "title": "Not found", "status": 404,
               "detail": "no such order"}),
    )
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
    order_in(id, "pending")
}

/// An order of `user_id` 1 in `status`, as order-service serialises it.
fn order_in(id: Uuid, status: &str) -> Value {
    let paid = matches!(status, "paid" | "refund_pending" | "refunded");
    json!({
        "id": id, "status": status, "user_id": 1, "user_email": "test@example.com",
        "total_amount": "1299.99", "currency": "USD",
        "items": [{"product_id": 1, "name": "Gaming Laptop", "unit_price": "1299.99",
                   "quantity": 1, "line_total": "1299.99"}],
        "payment": paid.then(|| json!({"status": "completed",
            "transaction_id": "TXN-9423F6A26202", "amount": "1299.99",
            "processed_at": "2025-01-01T00:00:01Z"})),
        "cancel_reason": (status == "cancelled").then_some("customer"),
        "refund": null,
        "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
        "processing_duration_ms": 3.2
    })
}

fn product() -> Value {
    json!({"id": 1, "name": "Gaming Laptop", "description": "", "price": "1299.99",
           "currency": "USD", "stock": 1000000})
}

/// An order-service that reads each request in full and then closes the
/// connection without answering (it crashed mid-request: the request may
/// have been acted on). Counts the requests it received; stops when dropped.
pub struct HangingUpOrderService {
    pub addr: SocketAddr,
    received: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl HangingUpOrderService {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (counter, stopped) = (received.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap(),
                    () = stopped.cancelled() => return,
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    if read_request(&mut stream).await {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    // Dropped: closed without a byte of answer.
                });
            }
        });
        Self {
            addr,
            received,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many whole requests arrived.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for HangingUpOrderService {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Reads one HTTP/1.1 request (head and `Content-Length` body); false if
/// the connection ended first.
async fn read_request(stream: &mut tokio::net::TcpStream) -> bool {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buffer.len() >= end + 4 + length {
                return true;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
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

    /// `POST /api/orders/{id}/cancel` (`id` as written) with `body` as JSON.
    pub async fn post_cancel(&self, id: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(format!("{}/api/orders/{id}/cancel", self.address))
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
