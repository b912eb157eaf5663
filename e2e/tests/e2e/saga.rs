//! Stock, cancellation and refunds through the whole pipeline, each run
//! ended by the audit (charges − refunds = paid orders, stock + reserved +
//! sold = the starting stock, the emails of each final state once).

use std::time::Duration;

use e2e::{Options, Pipeline};
use futures::future::join_all;
use serde_json::{Value, json};
use test_support::eventually;

fn laptop(user: usize, email: &str) -> Value {
    json!({"user_id": user, "user_email": email,
           "items": [{"product_id": 1, "quantity": 1}]})
}

async fn set_stock(pipeline: &Pipeline, units: i64) {
    sqlx::query("UPDATE products SET stock = $1 WHERE id = 1")
        .bind(units)
        .execute(&pipeline.order_db)
        .await
        .unwrap();
}

async fn cancel(pipeline: &Pipeline, id: &str, user: usize) -> (u16, Value) {
    let response = pipeline
        .http
        .post(format!("{}/api/orders/{id}/cancel", pipeline.gateway))
        .json(&json!({ "user_id": user }))
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn wait_for(pipeline: &Pipeline, id: &str, status: &str) -> Value {
    eventually(Duration::from_secs(30), status, || async {
        let order = pipeline.get(&format!("/api/orders/{id}")).await;
        (order["status"] == status).then_some(order)
    })
    .await
}

#[tokio::test]
async fn a_hundred_concurrent_checkouts_for_ten_units_make_ten_orders() {
    let mut pipeline = Pipeline::start().await;
    set_stock(&pipeline, 10).await;

    let answers = join_all((0..100).map(|i| {
        let body = laptop(i + 1, &format!("buyer{i}@example.com"));
        let pipeline = &pipeline;
        async move { pipeline.checkout(&body).await }
    }))
    .await;

    let mut accepted = Vec::new();
    for (status, body) in answers {
        match status {
            201 => accepted.push(body["id"].as_str().unwrap().to_owned()),
            409 => {
                assert!(
                    body["type"]
                        .as_str()
                        .unwrap()
                        .ends_with("insufficient-stock")
                );
                assert_eq!(body["available"], json!({"1": 0}));
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(accepted.len(), 10);
    let laptop = pipeline.get("/api/products/1").await;
    assert_eq!(laptop["stock"], 0);
    pipeline.audit_stock(&accepted, &[(1, 10)]).await;
    pipeline.stop().await;
}

#[tokio::test]
async fn a_pending_order_cancelled_and_a_paid_one_refunded() {
    let mut pipeline = Pipeline::start_with(Options {
        payment_delay: Duration::from_millis(1500),
        ..Default::default()
    })
    .await;
    let (_, pending) = pipeline.checkout(&laptop(1, "early@example.com")).await;
    let (_, paid) = pipeline.checkout(&laptop(2, "late@example.com")).await;
    let pending = pending["id"].as_str().unwrap().to_owned();
    let paid = paid["id"].as_str().unwrap().to_owned();

    let (status, order) = cancel(&pipeline, &pending, 1).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "cancelled");
    assert_eq!(
        cancel(&pipeline, &paid, 1).await.0,
        404,
        "not this user's order"
    );

    wait_for(&pipeline, &paid, "paid").await;
    let (status, order) = cancel(&pipeline, &paid, 2).await;
    assert_eq!(status, 202, "{order}");
    assert_eq!(order["status"], "refund_pending");
    let refunded = wait_for(&pipeline, &paid, "refunded").await;
    assert!(
        refunded["refund"]["transaction_id"]
            .as_str()
            .unwrap()
            .starts_with("RFD-")
    );
    assert_eq!(cancel(&pipeline, &paid, 2).await.0, 409);

    let accepted = [pending.clone(), paid.clone()];
    pipeline.audit(&accepted).await;
    let subjects: Vec<String> = pipeline
        .smtp
        .messages()
        .iter()
        .filter_map(|m| m["subject"].as_str().map(str::to_owned))
        .collect();
    for expected in [
        format!("Order Cancelled - Order #{pending}"),
        format!("Order Confirmation - Order #{paid}"),
        format!("Refund Processed - Order #{paid}"),
    ] {
        assert!(subjects.contains(&expected), "{expected} in {subjects:?}");
    }
    let timeline = pipeline.get(&format!("/api/orders/{paid}/timeline")).await;
    assert_eq!(timeline["status"], "refunded");
    let steps: Vec<&str> = timeline["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    for step in [
        "stock.reserved",
        "order.cancelled",
        "refund.requested",
        "refund.completed",
        "order.refunded",
    ] {
        assert!(steps.contains(&step), "{step} in {steps:?}");
    }
    pipeline.stop().await;
}

#[tokio::test]
async fn cancels_during_a_broker_outage_are_answered_and_settle_after_it() {
    let mut pipeline = Pipeline::start_with(Options {
        broker_proxy: true,
        payment_delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (status, order) = pipeline
            .checkout(&laptop(i + 1, &format!("b{i}@example.com")))
            .await;
        assert_eq!(status, 201);
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    let proxy = pipeline.broker.as_ref().unwrap();
    proxy.cut();
    // Whatever each order's state, the cancel is answered from the database.
    for (i, id) in ids.iter().enumerate().step_by(2) {
        let (status, order) = cancel(&pipeline, id, i + 1).await;
        assert!(status == 200 || status == 202, "{status} {order}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    pipeline.audit(&ids).await;
    pipeline.stop().await;
}

#[tokio::test]
async fn orders_whose_payment_is_slower_than_the_timeout_expire_and_are_refunded() {
    let mut pipeline = Pipeline::start_with(Options {
        payment_delay: Duration::from_secs(3),
        payment_timeout_secs: Some(1),
        ..Default::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let email = if i == 0 {
            "d+decline@example.com".to_owned()
        } else {
            format!("t{i}@example.com")
        };
        let (status, order) = pipeline.checkout(&laptop(i + 1, &email)).await;
        assert_eq!(status, 201);
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let order = wait_for(&pipeline, id, "cancelled").await;
        assert_eq!(order["cancel_reason"], "payment_timeout");
    }
    pipeline.audit(&ids).await;
    let refunds: i64 = sqlx::query_scalar("SELECT count(*) FROM refunds")
        .fetch_one(&pipeline.payment_db)
        .await
        .unwrap();
    assert_eq!(
        refunds, 4,
        "every late charge refunded; the declined one had none"
    );
    pipeline.stop().await;
}
