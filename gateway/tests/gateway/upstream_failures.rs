//! What the client sees when order-service is down, slow or broken: a 5xx
//! problem that carries the request id and nothing about the cause.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use runtime::{health::StartupProgress, service::startup::StartupServer};

use crate::helpers::{
    SEED_CHECKOUT, TEST_UPSTREAM_TIMEOUT, TestApp, Upstream, assert_problem, closed_port_url,
    spawn_app, spawn_with,
};

/// Checkout with a known request id; returns the problem body.
async fn failed_checkout(
    app: &TestApp,
    status: u16,
) -> (serde_json::Value, reqwest::header::HeaderMap) {
    let response = app
        .client
        .post(format!("{}/api/checkout", app.address))
        .header("content-type", "application/json")
        .header("x-request-id", "req-failure-1")
        .body(SEED_CHECKOUT)
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let problem = assert_problem(response, status).await;
    assert_eq!(problem["request_id"], "req-failure-1", "{problem}");
    (problem, headers)
}

#[tokio::test]
async fn order_service_down_is_a_503_problem_with_retry_after() {
    let app = spawn_app(closed_port_url()).await;

    let (_, headers) = failed_checkout(&app, 503).await;
    let read = app
        .get(&format!("/api/orders/{}", uuid::Uuid::new_v4()))
        .await;

    assert_eq!(headers["retry-after"], "1");
    assert!(read.headers().contains_key("retry-after"));
    assert_problem(read, 503).await;
}

#[tokio::test]
async fn order_service_503_keeps_its_retry_after_but_not_its_body() {
    let (app, upstream) = spawn_with(Upstream::Overloaded).await;

    let (problem, headers) = failed_checkout(&app, 503).await;

    assert_eq!(headers["retry-after"], "7");
    assert!(!problem.to_string().contains("hunter2"), "{problem}");
    assert_eq!(upstream.calls().len(), 1);
}

#[tokio::test]
async fn a_slow_order_service_is_a_504_problem_after_the_timeout() {
    let (app, _upstream) = spawn_with(Upstream::Slow(Duration::from_secs(5))).await;
    let started = Instant::now();

    failed_checkout(&app, 504).await;
    let read = app.get("/api/products").await;

    assert!(started.elapsed() < 2 * TEST_UPSTREAM_TIMEOUT + Duration::from_secs(1));
    assert_problem(read, 504).await;
}

#[tokio::test]
async fn a_checkout_without_an_idempotency_key_that_times_out_is_never_sent_twice() {
    let (app, upstream) = spawn_with(Upstream::SlowFirstWrite(Duration::from_secs(5))).await;

    failed_checkout(&app, 504).await;

    let checkouts = upstream
        .calls()
        .iter()
        .filter(|c| c.path == "/orders")
        .count();
    assert_eq!(checkouts, 1, "the order may exist: no second attempt");
}

#[tokio::test]
async fn a_keyed_checkout_that_times_out_is_sent_once_more_with_the_same_key_and_answered() {
    // Arrange: the first attempt stalls past the gateway's timeout.
    let (app, upstream) = spawn_with(Upstream::SlowFirstWrite(Duration::from_secs(5))).await;

    // Act
    let response = app
        .client
        .post(format!("{}/api/checkout", app.address))
        .header("content-type", "application/json")
        .header("idempotency-key", "retry-me-1")
        .body(SEED_CHECKOUT)
        .send()
        .await
        .unwrap();

    // Assert: answered by the second attempt, which carried the same key (so
    // order-service answers it with the first attempt's order, never a second).
    assert_eq!(response.status(), 201);
    let checkouts: Vec<_> = upstream
        .calls()
        .into_iter()
        .filter(|c| c.path == "/orders")
        .collect();
    assert_eq!(checkouts.len(), 2);
    for call in &checkouts {
        assert_eq!(call.headers["idempotency-key"], "retry-me-1");
        assert_eq!(call.body, checkouts[0].body, "the same checkout");
    }
}

#[tokio::test]
async fn an_order_service_500_is_a_502_problem_with_the_request_id_and_no_internals() {
    let (app, _upstream) = spawn_with(Upstream::Crashing).await;

    let (problem, _) = failed_checkout(&app, 502).await;

    let text = problem.to_string();
    for internal in [
        "panicked",
        "postgres",
        "hunter2",
        "127.0.0.1",
        "error sending request",
    ] {
        assert!(!text.contains(internal), "leaked {internal:?}: {text}");
    }
}

#[tokio::test]
async fn an_order_service_answer_that_is_not_json_is_a_502_problem() {
    let (app, _upstream) = spawn_with(Upstream::Garbage).await;

    failed_checkout(&app, 502).await;
}

#[tokio::test]
async fn the_gateway_is_not_ready_while_order_service_is_still_starting() {
    // order-service's own start-up server: its port answers before it can serve.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let progress = StartupProgress::new("waiting for PostgreSQL");
    let starting = StartupServer::start(listener, "order-service", progress);
    let app = spawn_app(url).await;

    let response = app.get("/ready").await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["order_service"], "order-service is starting");
    starting.finish().await.unwrap();
}
