//! Traces as a trace backend receives them: the four real binaries export
//! over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, as compose's monitoring
//! profile points them at Jaeger) to a receiver in this test, which decodes
//! the protobuf batches. One checkout is one trace with spans of all four
//! services, every span's parent in the same trace, and the two broker hops
//! linked: a payment-service span under an order-service one, an
//! email-service span under a payment-service one.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, routing::post};
use e2e::processes::{ProcessPipeline, Setup};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value::Value as AnyValue,
};
use prost::Message as _;
use serde_json::json;
use test_support::{TestVhost, eventually};

/// One exported span: its service, ids and parent.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    /// The string attributes (the span's fields).
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP receiver on a free port: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`, every span kept.
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let store = spans.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| async move {
            let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf batch");
            let mut received = store.lock().unwrap();
            for resource in request.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|a| a.key == "service.name")
                    .and_then(|a| a.value.as_ref()?.value.as_ref())
                    .map(|v| match v {
                        AnyValue::StringValue(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                    let attributes = span
                        .attributes
                        .iter()
                        .filter_map(|a| match a.value.as_ref()?.value.as_ref()? {
                            AnyValue::StringValue(s) => Some((a.key.clone(), s.clone())),
                            _ => None,
                        })
                        .collect();
                    received.push(Span {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        attributes,
                    });
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

/// Whether a span of `service` is among `span`'s ancestors.
fn descends_from(span: &Span, service: &str, by_id: &HashMap<Vec<u8>, Span>) -> bool {
    let mut parent = by_id.get(&span.parent_span_id);
    while let Some(p) = parent {
        if p.service == service {
            return true;
        }
        parent = by_id.get(&p.parent_span_id);
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_checkout_is_one_exported_trace_across_all_four_services_and_both_broker_hops() {
    let (collector, spans) = receiver().await;
    let vhost = TestVhost::create();
    let mut pipeline = ProcessPipeline::start(Setup {
        env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector),
            // Batches every 200 ms instead of 5 s, so the test waits less.
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ],
        ..Setup::on(vhost.url.clone())
    })
    .await;

    // The client's own trace: every span of the checkout must join it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let response = pipeline
        .http
        .post(format!("{}/api/checkout", pipeline.gateway))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&json!({"user_id": 7, "user_email": "otlp@example.com",
                      "items": [{"product_id": 1, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let order: serde_json::Value = response.json().await.unwrap();
    let order_id = order["id"].as_str().unwrap().to_owned();
    pipeline.smtp.wait_for(1, Duration::from_secs(30)).await;

    let trace_id = hex(trace_id);
    let services = [
        "gateway",
        "order-service",
        "payment-service",
        "email-service",
    ];
    let trace = eventually(
        Duration::from_secs(30),
        "spans of all four services exported",
        || async {
            let trace: Vec<Span> = spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            let seen: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
            // The last hop: order-service applying the payment result.
            let settled = trace
                .iter()
                .filter(|s| s.service == "order-service" && s.name == "message")
                .count();
            (services.iter().all(|s| seen.contains(s)) && settled > 0).then_some(trace)
        },
    )
    .await;

    let by_id: HashMap<Vec<u8>, Span> = trace
        .iter()
        .map(|s| (s.span_id.clone(), s.clone()))
        .collect();
    let client_span = hex(client_span);
    for span in &trace {
        assert!(
            span.parent_span_id == client_span || by_id.contains_key(&span.parent_span_id),
            "{span:?}: its parent is neither the client's span nor a span of the trace"
        );
    }
    let hop = |service: &str, under: &str| {
        trace
            .iter()
            .any(|s| s.service == service && s.name == "message" && descends_from(s, under, &by_id))
    };
    assert!(
        hop("payment-service", "order-service"),
        "order-service → payment-service over the broker: {trace:#?}"
    );
    assert!(
        hop("email-service", "payment-service"),
        "payment-service → email-service over the broker: {trace:#?}"
    );
    assert!(
        hop("order-service", "payment-service"),
        "payment-service → order-service over the broker: {trace:#?}"
    );
    assert!(
        trace
            .iter()
            .any(|s| s.service == "order-service" && descends_from(s, "gateway", &by_id)),
        "gateway → order-service over HTTP: {trace:#?}"
    );
    // How an operator finds the trace from the order id (docs/operations.md).
    assert!(
        trace.iter().any(|s| s.service == "payment-service"
            && s.attributes.get("correlation_id") == Some(&order_id)),
        "a payment-service span carries the order id as correlation_id: {trace:#?}"
    );
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
