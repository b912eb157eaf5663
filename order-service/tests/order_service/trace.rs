//! The real binary with `LOG_FORMAT=json`: a checkout that arrives with a
//! `traceparent` is logged with its trace id, and the `order.order.created`
//! event the relay publishes carries the same trace in its header.

use std::time::Duration;

use contract::{
    events::{Event, OrderCreated},
    names::PAYMENT_QUEUE,
};
use messaging::headers;
use runtime::trace_context::TraceParent;
use serde_json::{Value, json};
use test_support::{self, ProcessScenario, eventually};

const BINARY: &str = env!("CARGO_BIN_EXE_order-service");
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn the_binary_logs_the_callers_trace_id_and_publishes_it_with_the_event() {
    let scenario =
        ProcessScenario::new("order", &[(PAYMENT_QUEUE, OrderCreated::ROUTING_KEY)]).await;
    let port = test_support::free_port();
    let service = scenario.start(BINARY, port, &[]);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(30), "order-service ready", || async {
        let response = http.get(format!("{base}/ready")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    let response = http
        .post(format!("{base}/orders"))
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .json(&json!({"user_id": 1, "user_email": "test@example.com",
                      "items": [{"product_id": 1, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();
    let order_id = order["id"].as_str().unwrap().to_owned();

    let messages =
        test_support::take_messages(&scenario.conn, PAYMENT_QUEUE, 1, Duration::from_secs(20))
            .await;
    let header = headers::get_str(&messages[0].delivery.properties, headers::TRACEPARENT)
        .expect("the event carries a traceparent");
    assert_eq!(
        TraceParent::parse(&header).unwrap().trace_id_hex(),
        TRACE_ID
    );

    let lines: Vec<Value> = service
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let created = lines
        .iter()
        .find(|l| l["message"] == "order created" && l["order_id"] == order_id.as_str())
        .unwrap_or_else(|| panic!("an 'order created' line in {}", service.log.display()));
    assert_eq!(created["trace_id"], TRACE_ID, "{created}");
    let finished = lines
        .iter()
        .find(|l| l["message"] == "request finished" && l["span"]["path"] == "/orders")
        .expect("a 'request finished' line");
    assert_eq!(finished["trace_id"], TRACE_ID, "{finished}");
    assert_eq!(finished["span"]["service"], "order-service");
}
