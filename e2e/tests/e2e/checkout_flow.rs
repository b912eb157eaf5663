//! The checkout flow end to end: HTTP in, a paid order and an email out.

use std::time::Duration;

use e2e::Pipeline;
use serde_json::{Value, json};
use test_support::eventually;

fn seed_checkout(email: &str) -> Value {
    json!({"user_id": 1, "user_email": email,
           "items": [{"product_id": 1, "quantity": 1, "price": "1299.99"}]})
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn field<'a>(mail: &'a Value, key: &str) -> &'a str {
    mail[key].as_str().unwrap_or_default()
}

#[tokio::test]
async fn the_seed_checkout_becomes_a_paid_order_and_a_confirmation_email() {
    let mut pipeline = Pipeline::start().await;

    let (status, order) = pipeline.checkout(&seed_checkout("test@example.com")).await;

    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(order["status"], "pending");
    let settled = pipeline.settled_order(&id).await;
    assert_eq!(settled["status"], "paid");
    let transaction_id = settled["payment"]["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        transaction_id.starts_with("TXN-") && transaction_id.len() == 16,
        "{transaction_id}"
    );
    let status_view = pipeline.get(&format!("/api/orders/{id}/status")).await;
    assert_eq!(status_view["status"], "paid");

    let mails = pipeline.smtp.wait_for(1, Duration::from_secs(20)).await;
    let mail = &mails[0];
    assert_eq!(
        field(mail, "subject"),
        format!("Order Confirmation - Order #{id}")
    );
    let text = field(mail, "text");
    for expected in ["Gaming Laptop", "1299.99", transaction_id.as_str()] {
        assert!(
            text.contains(expected),
            "text part lacks {expected}: {text}"
        );
    }
    assert!(field(mail, "html").contains(&transaction_id));
    assert!(
        mail["to"].to_string().contains("test@example.com"),
        "{}",
        mail["to"]
    );

    assert_eq!(
        count(&pipeline.payment_db, "SELECT count(*) FROM payments").await,
        1
    );
    // The mail reaches the server a moment before email-service records it.
    eventually(
        Duration::from_secs(10),
        "the email recorded sent",
        || async {
            let sent = count(
                &pipeline.email_db,
                "SELECT count(*) FROM email_log WHERE status = 'sent'",
            )
            .await;
            (sent == 1).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // a duplicate would show by now
    assert_eq!(pipeline.smtp.messages().len(), 1, "exactly one email");
    pipeline.stop().await;
}

#[tokio::test]
async fn a_declined_payment_fails_the_order_and_sends_a_failure_email() {
    let mut pipeline = Pipeline::start().await;

    let (status, order) = pipeline
        .checkout(&seed_checkout("buyer+decline@example.com"))
        .await;

    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    let settled = pipeline.settled_order(&id).await;
    assert_eq!(settled["status"], "failed");
    assert_eq!(settled["payment"]["transaction_id"], Value::Null);
    assert_eq!(settled["payment"]["failure_reason"], "card_declined");

    let mails = pipeline.smtp.wait_for(1, Duration::from_secs(20)).await;
    let mail = &mails[0];
    assert!(
        field(mail, "subject").contains(&id),
        "{}",
        field(mail, "subject")
    );
    assert!(
        !field(mail, "subject").starts_with("Order Confirmation"),
        "a failure has its own email"
    );
    assert!(
        field(mail, "text").contains("declined"),
        "{}",
        field(mail, "text")
    );
    pipeline.stop().await;
}

#[tokio::test]
async fn a_rejected_checkout_leaves_nothing_behind_anywhere() {
    let pipeline = Pipeline::start().await;
    let mut tampered = seed_checkout("test@example.com");
    tampered["items"][0]["price"] = json!("1.00");

    let (status, problem) = pipeline.checkout(&tampered).await;

    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["current_prices"]["1"], "1299.99");
    assert_eq!(
        count(&pipeline.order_db, "SELECT count(*) FROM orders").await,
        0
    );
    assert_eq!(
        count(&pipeline.order_db, "SELECT count(*) FROM outbox").await,
        0
    );
    pipeline.stop().await;
}
