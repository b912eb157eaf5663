//! `Idempotency-Key` on `POST /api/checkout`, through the whole pipeline:
//! a retried checkout never makes a second order, payment or email.

use std::time::Duration;

use e2e::Pipeline;
use serde_json::{Value, json};

fn checkout(user_id: u64, quantity: u64) -> Value {
    json!({"user_id": user_id, "user_email": "test@example.com",
           "items": [{"product_id": 1, "quantity": quantity, "price": "1299.99"}]})
}

async fn post(pipeline: &Pipeline, key: &str, body: &Value) -> (u16, Option<String>, Value) {
    let response = pipeline
        .http
        .post(format!("{}/api/checkout", pipeline.gateway))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, replayed, response.json().await.unwrap())
}

async fn orders(pipeline: &Pipeline) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pipeline.order_db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retried_checkout_with_the_same_key_and_body_gets_the_first_answer_again() {
    let pipeline = Pipeline::start().await;

    let (first_status, first_replayed, first) = post(&pipeline, "key-1", &checkout(1, 1)).await;
    let (second_status, second_replayed, second) = post(&pipeline, "key-1", &checkout(1, 1)).await;

    assert_eq!((first_status, second_status), (201, 201));
    assert_eq!(first_replayed, None);
    assert_eq!(
        second_replayed.as_deref(),
        Some("true"),
        "marked as a replay"
    );
    assert_eq!(second, first, "the same order, byte for byte");
    assert_eq!(orders(&pipeline).await, 1);
    pipeline.stop().await;
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_refused_and_creates_nothing() {
    let pipeline = Pipeline::start().await;
    assert_eq!(post(&pipeline, "key-2", &checkout(1, 1)).await.0, 201);

    let (status, _, problem) = post(&pipeline, "key-2", &checkout(1, 2)).await;

    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["type"], "/problems/idempotency-key-reused");
    assert_eq!(orders(&pipeline).await, 1);
    pipeline.stop().await;
}

#[tokio::test]
async fn keys_are_scoped_per_client_and_a_rejected_first_try_does_not_burn_the_key() {
    let pipeline = Pipeline::start().await;
    let mut tampered = checkout(1, 1);
    tampered["items"][0]["price"] = json!("1.00");

    assert_eq!(
        post(&pipeline, "shared", &tampered).await.0,
        409,
        "rejected: nothing stored"
    );
    let (fixed, _, mine) = post(&pipeline, "shared", &checkout(1, 1)).await;
    let (other, replayed, theirs) = post(&pipeline, "shared", &checkout(2, 1)).await;

    assert_eq!((fixed, other), (201, 201));
    assert_eq!(replayed, None, "another client's key is its own");
    assert_ne!(mine["id"], theirs["id"]);
    assert_eq!(orders(&pipeline).await, 2);
    pipeline.stop().await;
}

#[tokio::test]
async fn ten_concurrent_checkouts_with_one_key_make_one_order_one_payment_and_one_email() {
    let mut pipeline = Pipeline::start().await;
    let body = checkout(7, 1);

    let answers =
        futures::future::join_all((0..10).map(|_| post(&pipeline, "burst-key", &body))).await;

    assert!(
        answers.iter().all(|(status, _, _)| *status == 201),
        "{answers:?}"
    );
    let id = &answers[0].2["id"];
    assert!(
        answers.iter().all(|(_, _, order)| &order["id"] == id),
        "every answer names the same order"
    );
    assert_eq!(
        answers
            .iter()
            .filter(|(_, replayed, _)| replayed.is_none())
            .count(),
        1,
        "one original"
    );
    pipeline.smtp.wait_for(1, Duration::from_secs(20)).await;
    pipeline.settled_order(id.as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // a duplicate would show by now
    assert_eq!(orders(&pipeline).await, 1);
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&pipeline.payment_db)
        .await
        .unwrap();
    assert_eq!(payments, 1);
    assert_eq!(pipeline.smtp.messages().len(), 1);
    pipeline.stop().await;
}
