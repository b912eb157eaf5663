//! One checkout is one trace: the JSON log lines of all four services about
//! one order carry the same `trace_id`, whether the client sent a
//! `traceparent` or the gateway started the trace. The log is the binaries'
//! own JSON format, captured in memory; the services run in-process, each
//! line told apart by the `service` field of its span. The trace crosses
//! every hop here: gateway → order-service over HTTP, order-service's outbox
//! and relay → payment-service over AMQP, payment-service's outbox →
//! email-service and order-service over AMQP; breaking any of them changes
//! the trace id of the lines after it.

use std::time::Duration;

use e2e::Pipeline;
use runtime::trace_context::TraceParent;
use serde_json::{Value, json};
use test_support::LogCapture;

/// The line of each hop about an order: (service, span, message).
const HOPS: [(&str, &str, &str); 5] = [
    ("gateway", "http", "request finished"),
    ("order-service", "http", "order created"),
    ("payment-service", "message", "payment processed"),
    ("email-service", "message", "email sent"),
    ("order-service", "message", "payment result applied"),
];

/// Posts a checkout, with `traceparent` when given; the order id and the
/// request id the gateway answered with.
async fn checkout(pipeline: &Pipeline, traceparent: Option<&str>) -> (String, String) {
    let mut request = pipeline
        .http
        .post(format!("{}/api/checkout", pipeline.gateway))
        .json(&json!({"user_id": 7, "user_email": "trace@example.com",
                      "items": [{"product_id": 1, "quantity": 1}]}));
    if let Some(value) = traceparent {
        request = request.header("traceparent", value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 201);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let order: Value = response.json().await.unwrap();
    (order["id"].as_str().unwrap().to_owned(), request_id)
}

fn text<'a>(line: &'a Value, pointer: &str) -> &'a str {
    line.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The line of `hop` about the order (by `order_id`, or for the gateway by
/// its request id), once it is there.
fn find<'a>(
    lines: &'a [Value],
    (service, span, message): (&str, &str, &str),
    order_id: &str,
    request_id: &str,
) -> Option<&'a Value> {
    lines.iter().find(|line| {
        text(line, "/span/service") == service
            && text(line, "/span/name") == span
            && text(line, "/message") == message
            && if service == "gateway" {
                text(line, "/span/request_id") == request_id
                    && text(line, "/span/path") == "/api/checkout"
            } else {
                text(line, "/order_id") == order_id
            }
    })
}

/// Waits for every hop's line about the order; returns them.
async fn hop_lines(logs: &LogCapture, order_id: &str, request_id: &str) -> Vec<Value> {
    test_support::eventually(
        Duration::from_secs(20),
        "a log line of every hop",
        || async {
            let lines = logs.lines();
            HOPS.iter()
                .map(|hop| find(&lines, *hop, order_id, request_id).cloned())
                .collect::<Option<Vec<_>>>()
        },
    )
    .await
}

fn assert_one_trace(lines: &[Value], trace_id: &str) {
    for (line, hop) in lines.iter().zip(HOPS) {
        assert_eq!(
            text(line, "/trace_id"),
            trace_id,
            "{hop:?} is in the checkout's trace: {line}"
        );
        assert_eq!(text(line, "/span_id").len(), 16, "{line}");
    }
    let mut span_ids: Vec<&str> = lines.iter().map(|l| text(l, "/span_id")).collect();
    span_ids.sort_unstable();
    span_ids.dedup();
    assert_eq!(span_ids.len(), HOPS.len(), "each hop is its own span");
}

#[tokio::test]
async fn one_checkout_is_one_trace_in_the_logs_of_all_four_services() {
    let logs = LogCapture::install();
    let mut pipeline = Pipeline::start().await;

    // The gateway starts the trace.
    let (first, first_request) = checkout(&pipeline, None).await;
    // The client's trace goes on.
    let client = "00-5a1f0e2b3c4d5e6f708192a3b4c5d6e7-1234567890abcdef-01";
    let (second, second_request) = checkout(&pipeline, Some(client)).await;
    for id in [&first, &second] {
        assert_eq!(pipeline.settled_order(id).await["status"], "paid");
    }
    pipeline.smtp.wait_for(2, Duration::from_secs(20)).await;

    let lines = hop_lines(&logs, &first, &first_request).await;
    let started = text(&lines[0], "/trace_id").to_owned();
    assert!(
        TraceParent::parse(&format!("00-{started}-1234567890abcdef-01")).is_some(),
        "a valid trace id: {started:?}"
    );
    assert_one_trace(&lines, &started);

    let lines = hop_lines(&logs, &second, &second_request).await;
    assert_one_trace(&lines, "5a1f0e2b3c4d5e6f708192a3b4c5d6e7");
    assert_ne!(started, "5a1f0e2b3c4d5e6f708192a3b4c5d6e7");

    // What the relays published carries it too.
    let stored: Option<String> =
        sqlx::query_scalar("SELECT traceparent FROM outbox WHERE correlation_id = $1::uuid")
            .bind(&second)
            .fetch_one(&pipeline.order_db)
            .await
            .unwrap();
    let stored = TraceParent::parse(&stored.expect("a traceparent with the outbox row")).unwrap();
    assert_eq!(stored.trace_id_hex(), "5a1f0e2b3c4d5e6f708192a3b4c5d6e7");
    pipeline.stop().await;
}
