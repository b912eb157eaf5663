//! Cancellation, expiry and refunds, from order-service's side.

use std::time::Duration;

use chrono::Utc;
use contract::{
    events::{
        CancelReason, Event, OrderCancelled, PaymentStatus, RefundProcessed, RefundRequested,
        SCHEMA_VERSION,
    },
    names::{EMAIL_CANCELLATION_QUEUE, PAYMENT_REFUND_QUEUE},
};
use serde_json::{Value, json};
use test_support::eventually;
use uuid::Uuid;

use crate::helpers::{TestApp, payment_for};

async fn checkout(app: &TestApp, quantity: i64) -> Uuid {
    let response = app
        .post_order(&json!({"user_id": 1, "user_email": "test@example.com",
            "items": [{"product_id": 1, "quantity": quantity}]}))
        .await;
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();
    order["id"].as_str().unwrap().parse().unwrap()
}

async fn wait_for_status(app: &TestApp, id: Uuid, status: &str) {
    eventually(Duration::from_secs(15), status, || async {
        (app.order_status(id).await == status).then_some(())
    })
    .await;
}

fn refund_of(request: &RefundRequested) -> RefundProcessed {
    RefundProcessed {
        event_type: RefundProcessed::EVENT_TYPE.into(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: SCHEMA_VERSION,
        refund_id: Uuid::new_v4(),
        payment_id: request.payment_id,
        order_id: request.order_id,
        user_id: request.user_id,
        user_email: request.user_email.clone(),
        amount: request.amount,
        currency: request.currency.clone(),
        transaction_id: request.transaction_id.clone(),
        refund_transaction_id: "RFD-0A1B2C3D4E5F".into(),
        items: request.items.clone(),
    }
}

#[tokio::test]
async fn a_pending_order_is_cancelled_at_once_and_its_units_return() {
    let app = TestApp::spawn().await;
    app.declare_queue(EMAIL_CANCELLATION_QUEUE).await;
    let id = checkout(&app, 2).await;
    assert_eq!(app.stock(1).await, Some(999_998));

    let answer = app.cancel(id, 2).await;
    assert_eq!(answer.status(), 404, "another user's order does not exist");
    let answer = app.cancel(id, 1).await;
    assert_eq!(answer.status(), 200);
    let order: Value = answer.json().await.unwrap();
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "customer");
    assert_eq!(app.stock(1).await, Some(1_000_000));

    let events: Vec<OrderCancelled> = app.events(EMAIL_CANCELLATION_QUEUE, 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].order_id, id);
    assert_eq!(events[0].reason, CancelReason::Customer);
    assert_eq!(events[0].items[0].quantity, 2);

    // Repeating changes nothing: 409 naming the status, no second event.
    let again = app.cancel(id, 1).await;
    assert_eq!(again.status(), 409);
    let problem: Value = again.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("order-not-cancellable")
    );
    assert_eq!(problem["order_status"], "cancelled");
    assert_eq!(app.stock(1).await, Some(1_000_000));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let more: Vec<OrderCancelled> = app.events(EMAIL_CANCELLATION_QUEUE, 0).await;
    assert!(more.is_empty(), "one cancellation event");
    app.stop().await;
}

#[tokio::test]
async fn a_paid_order_is_refunded_once_and_then_gives_its_units_back() {
    let app = TestApp::spawn().await;
    app.declare_queue(PAYMENT_REFUND_QUEUE).await;
    let id = checkout(&app, 1).await;
    app.publish_payment(&payment_for(id, PaymentStatus::Completed))
        .await;
    wait_for_status(&app, id, "paid").await;

    let answer = app.cancel(id, 1).await;
    assert_eq!(answer.status(), 202);
    let order: Value = answer.json().await.unwrap();
    assert_eq!(order["status"], "refund_pending");
    let again = app.cancel(id, 1).await;
    assert_eq!(again.status(), 202, "a repeat while the refund is pending");

    let requests: Vec<RefundRequested> = app.events(PAYMENT_REFUND_QUEUE, 1).await;
    assert_eq!(requests.len(), 1, "one refund request for two cancels");
    let request = &requests[0];
    assert_eq!(request.order_id, id);
    assert_eq!(request.reason, CancelReason::Customer);
    assert_eq!(app.stock(1).await, Some(999_999), "sold until refunded");

    let refund = refund_of(request);
    app.publish(&refund).await;
    app.publish(&refund).await;
    let mut second = refund_of(request);
    second.refund_transaction_id = "RFD-FFFFFFFFFFFF".into();
    app.publish(&second).await;
    wait_for_status(&app, id, "refunded").await;
    app.wait_for_handled(3).await;
    let order: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["refund"]["transaction_id"], "RFD-0A1B2C3D4E5F");
    assert_eq!(order["refund"]["amount"], "1299.99");
    assert_eq!(app.stock(1).await, Some(1_000_000), "units back once");
    assert_eq!(app.cancel(id, 1).await.status(), 409);
    let timeline: Value = app
        .get(&format!("/timeline/{id}"))
        .await
        .json()
        .await
        .unwrap();
    let steps: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for expected in [
        "order.created",
        "stock.reserved",
        "order.paid",
        "order.cancelled",
        "refund.requested",
        "order.refunded",
        "stock.released",
    ] {
        assert!(steps.contains(&expected), "{expected} in {steps:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_charge_for_a_cancelled_order_is_refunded_never_kept() {
    let app = TestApp::spawn().await;
    app.declare_queue(PAYMENT_REFUND_QUEUE).await;
    let id = checkout(&app, 1).await;
    assert_eq!(app.cancel(id, 1).await.status(), 200);

    let charge = payment_for(id, PaymentStatus::Completed);
    app.publish_payment(&charge).await;
    app.publish_payment(&charge).await;

    let requests: Vec<RefundRequested> = app.events(PAYMENT_REFUND_QUEUE, 1).await;
    assert_eq!(requests[0].payment_id, charge.payment_id);
    assert_eq!(
        requests[0].transaction_id,
        charge.transaction_id.clone().unwrap()
    );
    app.wait_for_handled(1).await;
    let order: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "cancelled", "never paid");
    assert_eq!(order["payment"]["status"], "completed");
    let more: Vec<RefundRequested> = app.events(PAYMENT_REFUND_QUEUE, 0).await;
    assert!(
        more.is_empty(),
        "one refund request for a charge delivered twice"
    );

    app.publish(&refund_of(&requests[0])).await;
    eventually(Duration::from_secs(10), "the refund recorded", || async {
        let order: Value = app
            .get(&format!("/orders/{id}"))
            .await
            .json()
            .await
            .unwrap();
        (!order["refund"].is_null()).then_some(())
    })
    .await;
    assert_eq!(app.order_status(id).await, "cancelled");
    assert_eq!(
        app.stock(1).await,
        Some(1_000_000),
        "given back once, at the cancel"
    );
    app.stop().await;
}

#[tokio::test]
async fn cancels_racing_payment_results_refund_every_charge_exactly_once() {
    let app = TestApp::spawn().await;
    app.declare_queue(PAYMENT_REFUND_QUEUE).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(checkout(&app, 1).await);
    }
    let shared = &app;
    let races = ids.iter().map(|&id| async move {
        let app = shared;
        let charge = payment_for(id, PaymentStatus::Completed);
        let (answer, ()) = tokio::join!(app.cancel(id, 1), app.publish_payment(&charge));
        answer.status().as_u16()
    });
    let answers = futures::future::join_all(races).await;
    assert!(
        answers.iter().all(|s| *s == 200 || *s == 202),
        "{answers:?}"
    );

    let requests: Vec<RefundRequested> = app.events(PAYMENT_REFUND_QUEUE, 20).await;
    let mut refunded: Vec<Uuid> = requests.iter().map(|r| r.order_id).collect();
    refunded.sort();
    ids.sort();
    assert_eq!(refunded, ids, "one refund request per charged order");
    for &id in &ids {
        let status = app.order_status(id).await;
        assert!(
            status == "cancelled" || status == "refund_pending",
            "{status}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let more: Vec<RefundRequested> = app.events(PAYMENT_REFUND_QUEUE, 0).await;
    assert!(more.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_pending_order_expires_and_a_payment_after_that_is_refunded() {
    let app = TestApp::spawn_expiring(1).await;
    app.declare_queue(EMAIL_CANCELLATION_QUEUE).await;
    app.declare_queue(PAYMENT_REFUND_QUEUE).await;
    let id = checkout(&app, 5).await;

    wait_for_status(&app, id, "cancelled").await;
    let order: Value = app
        .get(&format!("/orders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["cancel_reason"], "payment_timeout");
    assert_eq!(app.stock(1).await, Some(1_000_000));
    let events: Vec<OrderCancelled> = app.events(EMAIL_CANCELLATION_QUEUE, 1).await;
    assert_eq!(events[0].reason, CancelReason::PaymentTimeout);

    app.publish_payment(&payment_for(id, PaymentStatus::Completed))
        .await;
    let requests: Vec<RefundRequested> = app.events(PAYMENT_REFUND_QUEUE, 1).await;
    assert_eq!(requests[0].order_id, id);
    assert_eq!(requests[0].reason, CancelReason::PaymentTimeout);
    app.stop().await;
}

/// A payment result settled while a cancellation of its order is being
/// committed is judged by the cancelled order (a late charge, to refund),
/// never by the pending one it read first.
#[tokio::test]
async fn a_settlement_waiting_on_a_cancellation_sees_the_order_cancelled() {
    use order_service::db::settlement::{Settlement, settle_orders};
    let app = TestApp::spawn().await;
    let id = checkout(&app, 1).await;

    let mut cancelling = app.pool.begin().await.unwrap();
    sqlx::query("UPDATE orders SET status = 'cancelled', cancel_reason = 'customer' WHERE id = $1")
        .bind(id)
        .execute(&mut *cancelling)
        .await
        .unwrap();
    let pool = app.pool.clone();
    let settling = tokio::spawn(async move {
        settle_orders(&pool, "test", &[payment_for(id, PaymentStatus::Completed)]).await
    });
    app.wait_for_a_lock_waiter().await;
    cancelling.commit().await.unwrap();

    assert_eq!(settling.await.unwrap().unwrap(), [Settlement::LateCharge]);
    app.stop().await;
}
