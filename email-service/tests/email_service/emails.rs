//! email-service against the real PostgreSQL, RabbitMQ and a real SMTP server
//! (mailcrab in-process): what the customer receives, and that it is received
//! once.

use std::time::Duration;

use crate::support::{CONFIRMATION, TestApp, header};
use contract::{
    events::PaymentProcessed,
    names::{EMAIL_CANCELLATION_QUEUE, EMAIL_QUEUE, EMAIL_REFUND_QUEUE},
};
use test_support::SmtpSink;
use test_support::fixtures::{payment_completed, payment_declined};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_completed_payment_sends_one_confirmation_email_with_items_total_and_transaction_id() {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    let event = payment_completed("test@example.com");
    let transaction_id = event.transaction_id.clone().unwrap();

    app.publish(&event).await;

    let emails = sink.wait_for(1, WAIT).await;
    let email = &emails[0];
    assert_eq!(
        email["subject"],
        format!("Order Confirmation - Order #{}", event.order_id),
        "{email:#}"
    );
    assert_eq!(email["to"][0]["email"], "test@example.com", "{email:#}");
    assert_eq!(email["from"]["email"], "noreply@ecommerce.com", "{email:#}");
    assert_eq!(
        header(email, "Message-ID"),
        Some(format!("<order-{}@ecommerce.com>", event.order_id).as_str())
    );
    for part in ["text", "html"] {
        let body = email[part].as_str().unwrap_or_default();
        for expected in [
            "Gaming Laptop",
            "Wireless Mouse",
            "1299.99",
            "59.98",
            "1359.97 USD",
            &transaction_id,
        ] {
            assert!(
                body.contains(expected),
                "{part} part lacks {expected:?}:\n{body}"
            );
        }
    }
    assert!(
        email["text"]
            .as_str()
            .unwrap()
            .contains("2 x 29.99 USD = 59.98 USD"),
        "{email:#}"
    );
    assert!(
        email["html"]
            .as_str()
            .unwrap()
            .contains("white-space:nowrap;\">2</td>"),
        "{email:#}"
    );
    let row = app
        .wait_for_log(event.order_id, CONFIRMATION, "the row to be sent", |r| {
            r.status == "sent"
        })
        .await;
    assert_eq!(row.kind, "confirmation");
    assert_eq!(row.recipient, "test@example.com");
    assert_eq!(row.event_id, event.event_id);
    assert_eq!(row.attempts, 1);
    assert!(row.sent_at.is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_failed_payment_sends_a_payment_failed_email_with_the_reason() {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    let event = payment_declined("buyer+decline@example.com", "card_declined");

    app.publish(&event).await;

    let emails = sink.wait_for(1, WAIT).await;
    let email = &emails[0];
    assert_eq!(
        email["subject"],
        format!("Payment Failed - Order #{}", event.order_id),
        "{email:#}"
    );
    assert_eq!(email["to"][0]["email"], "buyer+decline@example.com");
    assert_eq!(
        header(email, "Message-ID"),
        Some(format!("<order-{}@ecommerce.com>", event.order_id).as_str())
    );
    for part in ["text", "html"] {
        let body = email[part].as_str().unwrap_or_default();
        for expected in ["card_declined", "Gaming Laptop", "1359.97 USD"] {
            assert!(
                body.contains(expected),
                "{part} part lacks {expected:?}:\n{body}"
            );
        }
        assert!(!body.contains("Transaction ID"), "{part}:\n{body}");
    }
    let row = app
        .wait_for_log(
            event.order_id,
            "payment_failed",
            "the row to be sent",
            |r| r.status == "sent",
        )
        .await;
    assert_eq!(row.kind, "payment_failed");
    app.stop().await;
}

#[tokio::test]
async fn the_same_payment_event_delivered_twice_or_republished_sends_exactly_one_email() {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    let event = payment_completed("test@example.com");
    // The same order under a new event id: the payment event published twice (W3).
    let republished = PaymentProcessed {
        event_id: Uuid::new_v4(),
        ..event.clone()
    };
    let marker = payment_completed("marker@example.com");

    app.publish(&event).await;
    app.publish(&event).await;
    app.publish(&republished).await;
    app.publish(&marker).await;

    app.wait_until_processed("acked", 4).await;
    let emails = sink.wait_for(2, WAIT).await;
    let subjects: Vec<&str> = emails
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    assert_eq!(emails.len(), 2, "{subjects:?}");
    let for_order = format!("Order Confirmation - Order #{}", event.order_id);
    assert_eq!(
        subjects.iter().filter(|s| **s == for_order).count(),
        1,
        "{subjects:?}"
    );
    assert_eq!(
        test_support::count_rows(&app.pool, "email_log")
            .await
            .unwrap(),
        2
    );
    let row = app.email_log(event.order_id, CONFIRMATION).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 1));
    app.stop().await;
}

#[tokio::test]
async fn two_replicas_receiving_copies_of_one_event_at_once_send_exactly_one_email() {
    let mut sink = SmtpSink::start().await;
    let mut app = TestApp::spawn(sink.port).await;
    app.add_replica().await;
    let event = payment_completed("test@example.com");

    for i in 0..10 {
        let copy = if i % 2 == 0 {
            event.clone()
        } else {
            PaymentProcessed {
                event_id: Uuid::new_v4(),
                ..event.clone()
            }
        };
        app.publish(&copy).await;
    }

    app.wait_until_processed("acked", 10).await;
    sink.wait_for(1, WAIT).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "exactly one email for ten copies on two replicas"
    );
    let row = app.email_log(event.order_id, CONFIRMATION).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 1));
    app.stop().await;
}

#[tokio::test]
async fn an_email_claimed_by_a_delivery_that_died_is_sent_once_its_lease_has_run_out() {
    // Arrange: a claim left behind by a replica killed mid-send, live for
    // another 1.5 s (as db::claim leaves it, before the SMTP conversation).
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    let event = payment_completed("test@example.com");
    let lease_end: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "INSERT INTO email_log (order_id, event_id, recipient, kind, status, message_id, claimed_until) \
         VALUES ($1, $2, 'test@example.com', 'confirmation', 'sending', 'x', now() + interval '1.5 seconds') \
         RETURNING claimed_until",
    )
    .bind(event.order_id)
    .bind(event.event_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();

    // Act: the broker redelivers the event.
    app.publish(&event).await;

    // Assert: the live claim is respected (the delivery comes back later),
    // then taken over: one email, sent after the lease ended.
    let emails = sink.wait_for(1, WAIT).await;
    assert_eq!(emails.len(), 1);
    let row = app
        .wait_for_log(event.order_id, CONFIRMATION, "email sent", |r| {
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
        app.processed("retried") >= 1,
        "came back while the claim was live"
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_messages_and_bad_addresses_are_parked_at_once_and_the_next_good_one_is_emailed()
{
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    let mut wrong_schema = serde_json::to_value(payment_completed("a@example.com")).unwrap();
    wrong_schema["schema_version"] = 99.into();
    // Header injection attempt that bypassed the gateway (B6/S6): never reaches lettre's builder.
    let injected = payment_completed("a@example.com\r\nBcc: x@evil.example");
    let good = payment_completed("good@example.com");

    app.publish_raw(b"{not json", "poison-1").await;
    app.publish_raw(&serde_json::to_vec(&wrong_schema).unwrap(), "poison-2")
        .await;
    app.publish_raw(&serde_json::to_vec(&injected).unwrap(), "poison-3")
        .await;
    app.publish(&good).await;

    let emails = sink.wait_for(1, WAIT).await;
    assert_eq!(emails[0]["to"][0]["email"], "good@example.com");
    let parked = app.parked(3).await;
    let ids: Vec<&str> = parked.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["poison-1", "poison-2", "poison-3"]);
    assert!(parked[0].1.contains("malformed"), "{:?}", parked[0]);
    assert!(parked[1].1.contains("schema_version"), "{:?}", parked[1]);
    assert!(parked[2].1.contains("invalid recipient"), "{:?}", parked[2]);
    assert!(
        parked.iter().all(|(_, _, retries)| *retries == 0),
        "parked at once, never retried"
    );
    app.wait_until_processed("acked", 1).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "nothing but the good email was sent"
    );
    assert!(
        app.email_log(injected.order_id, CONFIRMATION)
            .await
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn readiness_reports_database_broker_and_consumer_and_stays_ready_while_smtp_is_down() {
    let closed_port = test_support::free_port();
    let app = TestApp::spawn(closed_port).await;

    let response = reqwest::get(format!("http://127.0.0.1:{}/ready", app.port))
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    for check in ["database", "rabbitmq"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }
    // One check per consumer, named by its queue.
    for queue in [EMAIL_QUEUE, EMAIL_CANCELLATION_QUEUE, EMAIL_REFUND_QUEUE] {
        let key = format!("consumer:{}", app.queue_name_of(queue));
        assert_eq!(body["checks"][&key], "ok", "{key} in {body}");
    }
    assert!(
        body["checks"].get("smtp").is_none(),
        "SMTP is reported as a metric, not a readiness check: {body}"
    );
    app.stop().await;
}
