//! `GET /api/orders/{id}/timeline` through the whole pipeline: a paid, a
//! declined, a retried and a dead-lettered order each show their steps, in
//! order, from all three services.

use std::time::Duration;

use e2e::Pipeline;
use lapin::{BasicProperties, Connection, ConnectionProperties, options::BasicPublishOptions};
use messaging::{headers, topology::Topology};
use serde_json::{Value, json};

fn checkout(email: &str) -> Value {
    json!({"user_id": 7, "user_email": email,
           "items": [{"product_id": 1, "quantity": 1, "price": "1299.99"}]})
}

async fn place(pipeline: &Pipeline, email: &str) -> String {
    let (status, order) = pipeline.checkout(&checkout(email)).await;
    assert_eq!(status, 201, "{order}");
    order["id"].as_str().unwrap().to_owned()
}

/// The timeline once it holds every step of `wanted` (order-service and
/// email-service take their last steps independently, in either order).
async fn timeline_with(pipeline: &Pipeline, id: &str, wanted: &[&str]) -> Value {
    test_support::eventually(Duration::from_secs(20), &wanted.join(", "), || async {
        let timeline = pipeline.get(&format!("/api/orders/{id}/timeline")).await;
        let steps = names(&timeline);
        wanted
            .iter()
            .all(|w| steps.contains(&(*w).to_owned()))
            .then_some(timeline)
    })
    .await
}

/// No queue name and no raw error text in any public detail.
fn assert_no_internals(timeline: &Value) {
    for step in timeline["steps"].as_array().unwrap() {
        let detail = step["detail"].as_str().unwrap_or_default();
        for internal in [
            "_queue",
            "after attempt",
            "malformed",
            "provider unavailable",
        ] {
            assert!(!detail.contains(internal), "{internal} shown in {step}");
        }
    }
}

/// A service's own part of the timeline, from its internal port (text).
async fn internal_timeline(service: &str, pipeline: &Pipeline, id: &str) -> String {
    pipeline
        .http
        .get(format!("{service}/timeline/{id}"))
        .send()
        .await
        .expect("the service answers")
        .text()
        .await
        .unwrap()
}

const PAID: &[&str] = &["order-service:order.paid", "email-service:email.sent"];

fn names(timeline: &Value) -> Vec<String> {
    timeline["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    format!(
                        "{}:{}",
                        s["service"].as_str().unwrap(),
                        s["step"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn detail_of<'a>(timeline: &'a Value, step: &str) -> &'a str {
    timeline["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .and_then(|s| s["detail"].as_str())
        .unwrap_or_else(|| panic!("no {step} with a detail in {timeline}"))
}

fn assert_oldest_first(timeline: &Value) {
    let times: Vec<chrono::DateTime<chrono::Utc>> = timeline["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{timeline}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paid_order_shows_every_step_from_every_service_in_order() {
    let pipeline = Pipeline::start().await;
    let id = place(&pipeline, "buyer@example.com").await;

    let timeline = timeline_with(&pipeline, &id, PAID).await;

    assert_eq!(timeline["order_id"], id.as_str());
    assert_eq!(timeline["status"], "paid");
    assert_eq!(timeline["incomplete"], json!([]));
    let steps = names(&timeline);
    for expected in [
        "order-service:order.created",
        "order-service:event.published",
        "payment-service:payment.completed",
        "payment-service:event.published",
        "order-service:order.paid",
        "email-service:email.sent",
    ] {
        assert!(
            steps.contains(&expected.to_owned()),
            "{expected} in {steps:?}"
        );
    }
    assert!(!steps.iter().any(|s| s.contains("message.")), "{steps:?}");
    assert!(detail_of(&timeline, "payment.completed").starts_with("TXN-"));
    assert_oldest_first(&timeline);
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_order_shows_the_decline_and_the_failure_email() {
    let pipeline = Pipeline::start().await;
    let id = place(&pipeline, "buyer+decline@example.com").await;

    let timeline = timeline_with(
        &pipeline,
        &id,
        &["order-service:order.failed", "email-service:email.sent"],
    )
    .await;

    assert_eq!(timeline["status"], "failed");
    let steps = names(&timeline);
    assert!(
        steps.contains(&"payment-service:payment.failed".to_owned()),
        "{steps:?}"
    );
    assert!(
        steps.contains(&"order-service:order.failed".to_owned()),
        "{steps:?}"
    );
    assert_eq!(detail_of(&timeline, "payment.failed"), "card_declined");
    assert_eq!(detail_of(&timeline, "email.sent"), "payment_failed");
    assert_oldest_first(&timeline);
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_order_shows_each_retry_and_why() {
    let pipeline = Pipeline::start().await;
    let id = place(&pipeline, "buyer+flaky@example.com").await;

    let timeline = timeline_with(&pipeline, &id, PAID).await;

    assert_eq!(timeline["status"], "paid");
    let retries: Vec<&Value> = timeline["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "message.retry_scheduled")
        .collect();
    assert_eq!(retries.len(), 2, "{timeline}");
    assert!(retries.iter().all(|r| r["service"] == "payment-service"));
    // The public timeline says a retry happened, not which queue or error.
    let first = retries[0]["detail"].as_str().unwrap();
    assert!(first.contains("retrying"), "{first}");
    assert_no_internals(&timeline);
    assert!(detail_of(&timeline, "payment.completed").ends_with("(attempt 3)"));
    assert_oldest_first(&timeline);
    // payment-service's own timeline, on its internal port, keeps the cause.
    let internal = internal_timeline(&pipeline.payment_service, &pipeline, &id).await;
    assert!(
        internal.contains("payment_service_queue after attempt 1"),
        "{internal}"
    );
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_message_shows_on_its_order() {
    let pipeline = Pipeline::start().await;
    let id = place(&pipeline, "buyer@example.com").await;
    timeline_with(&pipeline, &id, PAID).await;

    // A malformed copy of the order's event: parked at once, under its order.
    let conn = Connection::connect(&pipeline.amqp.url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    let properties: BasicProperties =
        headers::event_properties("not-a-uuid", "order.created", &id, "tests", 0);
    channel
        .basic_publish(
            Topology::new(&pipeline.amqp).exchange().as_str().into(),
            "order.order.created".into(),
            BasicPublishOptions::default(),
            b"{not json",
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let timeline = timeline_with(&pipeline, &id, &["payment-service:message.dead_lettered"]).await;
    assert_no_internals(&timeline);
    let internal = internal_timeline(&pipeline.payment_service, &pipeline, &id).await;
    assert!(internal.contains("payment_service_queue"), "{internal}");
    let _ = conn.close(200, "done".into()).await;
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_order_has_no_timeline() {
    let pipeline = Pipeline::start().await;

    let unknown = pipeline
        .http
        .get(format!(
            "{}/api/orders/{}/timeline",
            pipeline.gateway,
            uuid::Uuid::new_v4()
        ))
        .send()
        .await
        .unwrap();
    let malformed = pipeline
        .http
        .get(format!("{}/api/orders/42/timeline", pipeline.gateway))
        .send()
        .await
        .unwrap();

    assert_eq!(unknown.status(), 404);
    assert_eq!(malformed.status(), 400);
    pipeline.stop().await;
}
