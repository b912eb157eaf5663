//! The guarantees of the payment's email, held by the cancellation and
//! refund emails too, per email (an order and a kind): a redelivered or
//! re-published event sends nothing more, duplicates on two replicas send
//! once, a live claim holds back its own kind only and is taken over once
//! its lease ran out, and an event that cannot become an email is parked at
//! once from its own queue.

use std::time::Duration;

use contract::{
    events::{CancelReason, OrderCancelled, RefundProcessed},
    names::{EMAIL_CANCELLATION_QUEUE, EMAIL_REFUND_QUEUE},
};
use test_support::{SmtpSink, fixtures::payment_completed};
use uuid::Uuid;

use crate::support::{
    CANCELLED, CONFIRMATION, REFUND, TestApp, order_cancelled, refund_of, refund_processed,
};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn the_same_cancellation_delivered_twice_or_republished_sends_exactly_one_email() {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    let event = order_cancelled("test@example.com", CancelReason::PaymentTimeout);
    let republished = OrderCancelled {
        event_id: Uuid::new_v4(),
        ..event.clone()
    };
    let marker = order_cancelled("marker@example.com", CancelReason::Customer);

    app.publish(&event).await;
    app.publish(&event).await;
    app.publish(&republished).await;
    app.publish(&marker).await;

    app.wait_until_processed_on(EMAIL_CANCELLATION_QUEUE, "acked", 4)
        .await;
    let emails = sink.wait_for(2, WAIT).await;
    let to: Vec<&str> = emails
        .iter()
        .filter_map(|e| e["to"][0]["email"].as_str())
        .collect();
    assert_eq!(emails.len(), 2, "{to:?}");
    assert_eq!(
        to.iter().filter(|t| **t == "test@example.com").count(),
        1,
        "{to:?}"
    );
    let row = app.email_log(event.order_id, CANCELLED).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 1));
    assert_eq!(row.event_id, event.event_id, "the first delivery's event");
    app.stop().await;
}

#[tokio::test]
async fn two_replicas_receiving_copies_of_one_refund_at_once_send_exactly_one_email() {
    let mut sink = SmtpSink::start().await;
    let mut app = TestApp::spawn(sink.port).await;
    app.add_replica().await;
    let event = refund_processed("test@example.com");

    for i in 0..10 {
        let copy = if i % 2 == 0 {
            event.clone()
        } else {
            RefundProcessed {
                event_id: Uuid::new_v4(),
                ..event.clone()
            }
        };
        app.publish(&copy).await;
    }

    app.wait_until_processed_on(EMAIL_REFUND_QUEUE, "acked", 10)
        .await;
    sink.wait_for(1, WAIT).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "exactly one email for ten copies on two replicas"
    );
    let row = app.email_log(event.order_id, REFUND).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 1));
    app.stop().await;
}

#[tokio::test]
async fn a_live_claim_holds_back_its_own_kind_only_and_is_taken_over_once_its_lease_ran_out() {
    // Arrange: the order's refund email claimed by a replica killed
    // mid-send, live for another 3 s.
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    let payment = payment_completed("test@example.com");
    let refund = refund_of(&payment);
    let lease_end: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "INSERT INTO email_log (order_id, event_id, recipient, kind, status, message_id, claimed_until) \
         VALUES ($1, $2, 'test@example.com', 'refund', 'sending', 'x', now() + interval '3 seconds') \
         RETURNING claimed_until",
    )
    .bind(refund.order_id)
    .bind(refund.event_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();

    // Act: the refund is redelivered, and the payment's result arrives.
    app.publish(&refund).await;
    app.publish(&payment).await;

    // Assert: the confirmation goes out at once; the refund waits for its
    // lease, then is taken over and sent once.
    let confirmation = app
        .wait_for_log(payment.order_id, CONFIRMATION, "the confirmation", |r| {
            r.status == "sent"
        })
        .await;
    assert!(
        confirmation.sent_at.unwrap() < lease_end,
        "the refund's claim held back the confirmation until {:?}",
        confirmation.sent_at
    );
    let row = app
        .wait_for_log(refund.order_id, REFUND, "the refund sent", |r| {
            r.status == "sent"
        })
        .await;
    assert!(
        row.sent_at.unwrap() >= lease_end,
        "sent at {:?}, while the lease held until {lease_end}",
        row.sent_at
    );
    assert_eq!(row.claimed_until, None, "the lease is released");
    assert!(
        app.processed_on(EMAIL_REFUND_QUEUE, "retried") >= 1,
        "came back while the claim was live"
    );
    let emails = sink.wait_for(2, WAIT).await;
    assert_eq!(emails.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_cancellation_or_refund_that_cannot_become_an_email_is_parked_at_once() {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    // Header injection that bypassed the gateway (B6/S6).
    let injected = order_cancelled(
        "a@example.com\r\nBcc: x@evil.example",
        CancelReason::Customer,
    );
    let mut zero = refund_processed("a@example.com");
    zero.items[0].quantity = 0;
    let mut wrong_type = serde_json::to_value(refund_processed("a@example.com")).unwrap();
    wrong_type["event_type"] = "payment.processed".into();
    let good = refund_processed("good@example.com");

    app.publish_raw_as(
        "order.order.cancelled",
        &serde_json::to_vec(&injected).unwrap(),
        "poison-1",
    )
    .await;
    app.publish_raw_as(
        "payment.refund.processed",
        &serde_json::to_vec(&zero).unwrap(),
        "poison-2",
    )
    .await;
    app.publish_raw_as(
        "payment.refund.processed",
        &serde_json::to_vec(&wrong_type).unwrap(),
        "poison-3",
    )
    .await;
    app.publish(&good).await;

    let emails = sink.wait_for(1, WAIT).await;
    assert_eq!(emails[0]["to"][0]["email"], "good@example.com");
    let parked = app.parked_on(EMAIL_CANCELLATION_QUEUE, 1).await;
    assert_eq!(parked[0].0, "poison-1");
    assert!(parked[0].1.contains("invalid recipient"), "{:?}", parked[0]);
    let parked = app.parked_on(EMAIL_REFUND_QUEUE, 2).await;
    let ids: Vec<&str> = parked.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["poison-2", "poison-3"]);
    assert!(parked[0].1.contains("out of range"), "{:?}", parked[0]);
    assert!(parked[1].1.contains("event_type"), "{:?}", parked[1]);
    assert!(
        parked.iter().all(|(_, _, retries)| *retries == 0),
        "parked at once, never retried"
    );
    app.wait_until_processed_on(EMAIL_REFUND_QUEUE, "acked", 1)
        .await;
    assert_eq!(sink.messages().len(), 1, "nothing but the good email");
    assert!(app.email_log(injected.order_id, CANCELLED).await.is_none());
    assert!(app.email_log(zero.order_id, REFUND).await.is_none());
    app.stop().await;
}
