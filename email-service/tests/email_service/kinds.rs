//! The cancellation and refund emails, each from its own queue, through the
//! real broker, PostgreSQL and SMTP server (mailcrab in-process): what the
//! customer receives, and that an order's emails of different kinds are
//! each sent once (their guarantees per kind: `kinds_once.rs`).

use std::time::Duration;

use contract::{
    events::{CancelReason, RefundProcessed},
    names::{EMAIL_CANCELLATION_QUEUE, EMAIL_QUEUE, EMAIL_REFUND_QUEUE},
};
use serde_json::Value;
use test_support::{SmtpSink, fixtures::payment_completed};
use uuid::Uuid;

use crate::support::{
    CANCELLED, CONFIRMATION, HOSTILE_ESCAPED, REFUND, TestApp, header, hostile_item,
    order_cancelled, refund_of, refund_processed,
};

const WAIT: Duration = Duration::from_secs(15);

/// The text and HTML parts of `email`.
fn parts(email: &Value) -> [(&'static str, &str); 2] {
    ["text", "html"].map(|part| (part, email[part].as_str().unwrap_or_default()))
}

/// The text part shows the hostile name as it is; the HTML part escaped.
fn assert_hostile_name_escaped(email: &Value) {
    let item = hostile_item();
    let text = email["text"].as_str().unwrap_or_default();
    assert!(text.contains(&item.name), "text:\n{text}");
    let html = email["html"].as_str().unwrap_or_default();
    assert!(html.contains(HOSTILE_ESCAPED), "html:\n{html}");
    assert!(!html.contains("<script>"), "html:\n{html}");
}

#[tokio::test]
async fn a_cancelled_order_gets_one_cancellation_email_saying_why_with_items_and_total() {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    let mut asked = order_cancelled("buyer@example.com", CancelReason::Customer);
    asked.items.push(hostile_item());
    asked.total_amount += hostile_item().price;
    let timed_out = order_cancelled("late@example.com", CancelReason::PaymentTimeout);

    app.publish(&asked).await;
    app.publish(&timed_out).await;

    let emails = sink.wait_for(2, WAIT).await;
    for (event, why) in [
        (&asked, "as you asked"),
        (&timed_out, "payment did not arrive in time"),
    ] {
        let email = emails
            .iter()
            .find(|e| e["to"][0]["email"] == event.user_email.as_str())
            .unwrap_or_else(|| panic!("no email to {}: {emails:#?}", event.user_email));
        assert_eq!(
            email["subject"],
            format!("Order Cancelled - Order #{}", event.order_id),
            "{email:#}"
        );
        assert_eq!(email["from"]["email"], "noreply@ecommerce.com");
        assert_eq!(
            header(email, "Message-ID"),
            Some(format!("<order-{}-cancelled@ecommerce.com>", event.order_id).as_str())
        );
        let total = format!("{:.2} USD", event.total_amount);
        for (part, body) in parts(email) {
            for expected in [
                why,
                "Gaming Laptop",
                "Wireless Mouse",
                "59.98",
                &total,
                "any payment for it that still arrives will be refunded",
            ] {
                assert!(
                    body.contains(expected),
                    "{part} part lacks {expected:?}:\n{body}"
                );
            }
            assert!(!body.contains("Transaction ID"), "{part}:\n{body}");
        }
        let row = app
            .wait_for_log(event.order_id, CANCELLED, "the row to be sent", |r| {
                r.status == "sent"
            })
            .await;
        assert_eq!(
            (row.event_id, row.attempts, row.recipient.as_str()),
            (event.event_id, 1, event.user_email.as_str())
        );
    }
    let asked_email = emails
        .iter()
        .find(|e| e["to"][0]["email"] == "buyer@example.com")
        .unwrap();
    assert_hostile_name_escaped(asked_email);
    app.wait_until_processed_on(EMAIL_CANCELLATION_QUEUE, "acked", 2)
        .await;
    assert_eq!(sink.messages().len(), 2, "one email each");
    wait_until_counted(CANCELLED, 2.0).await;
    app.stop().await;
}

#[tokio::test]
async fn a_processed_refund_sends_one_refund_email_with_the_amount_and_both_transaction_ids() {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    let mut event = refund_processed("buyer@example.com");
    event.items.push(hostile_item());
    event.amount += hostile_item().price;

    app.publish(&event).await;

    let emails = sink.wait_for(1, WAIT).await;
    let email = &emails[0];
    assert_eq!(
        email["subject"],
        format!("Refund Processed - Order #{}", event.order_id),
        "{email:#}"
    );
    assert_eq!(email["to"][0]["email"], "buyer@example.com");
    assert_eq!(
        header(email, "Message-ID"),
        Some(format!("<order-{}-refund@ecommerce.com>", event.order_id).as_str())
    );
    for (part, body) in parts(email) {
        for expected in [
            "refunded",
            "1369.97 USD",
            &event.transaction_id,
            &event.refund_transaction_id,
            "Gaming Laptop",
            "Wireless Mouse",
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
            .contains(&format!("Refund ID: {}", event.refund_transaction_id)),
        "{email:#}"
    );
    assert_hostile_name_escaped(email);
    let row = app
        .wait_for_log(event.order_id, REFUND, "the row to be sent", |r| {
            r.status == "sent"
        })
        .await;
    assert_eq!((row.event_id, row.attempts), (event.event_id, 1));
    wait_until_counted(REFUND, 1.0).await;
    app.stop().await;
}

#[tokio::test]
async fn an_order_confirmed_then_refunded_gets_both_emails_each_once_and_a_step_for_each() {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn(sink.port).await;
    let payment = payment_completed("test@example.com");
    let refund = refund_of(&payment);

    // Each delivered twice, the refund also re-published under a new id.
    app.publish(&payment).await;
    app.wait_for_log(payment.order_id, CONFIRMATION, "the confirmation", |r| {
        r.status == "sent"
    })
    .await;
    app.publish(&payment).await;
    app.publish(&refund).await;
    app.publish(&refund).await;
    app.publish(&RefundProcessed {
        event_id: Uuid::new_v4(),
        ..refund.clone()
    })
    .await;

    app.wait_until_processed_on(EMAIL_QUEUE, "acked", 2).await;
    app.wait_until_processed_on(EMAIL_REFUND_QUEUE, "acked", 3)
        .await;
    let emails = sink.wait_for(2, WAIT).await;
    let subjects: Vec<&str> = emails
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    assert_eq!(
        subjects,
        [
            format!("Order Confirmation - Order #{}", payment.order_id),
            format!("Refund Processed - Order #{}", payment.order_id),
        ],
        "two emails, each once"
    );
    let ids: Vec<Option<&str>> = emails.iter().map(|e| header(e, "Message-ID")).collect();
    assert_eq!(
        ids,
        [
            Some(format!("<order-{}@ecommerce.com>", payment.order_id).as_str()),
            Some(format!("<order-{}-refund@ecommerce.com>", payment.order_id).as_str()),
        ]
    );
    for kind in [CONFIRMATION, REFUND] {
        let row = app.email_log(payment.order_id, kind).await.unwrap();
        assert_eq!((row.status.as_str(), row.attempts), ("sent", 1), "{kind}");
    }

    let timeline: Vec<Value> = reqwest::get(format!(
        "http://127.0.0.1:{}/timeline/{}",
        app.port, payment.order_id
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let sent: Vec<&str> = timeline
        .iter()
        .filter(|s| s["step"] == "email.sent")
        .filter_map(|s| s["detail"].as_str())
        .collect();
    assert_eq!(sent, [CONFIRMATION, REFUND], "{timeline:#?}");
    app.stop().await;
}

/// `emails_total{kind, status="sent"}` in this test's process (nextest runs
/// each test in a process of its own).
/// The counter moves just after the row is recorded sent: a bounded wait.
async fn wait_until_counted(kind: &str, at_least: f64) {
    test_support::eventually(WAIT, "sent emails counted under their kind", || async {
        (emails_sent(kind) >= at_least).then_some(())
    })
    .await;
}

fn emails_sent(kind: &str) -> f64 {
    let kind = format!("kind=\"{kind}\"");
    runtime::metrics::render()
        .lines()
        .filter(|l| {
            l.starts_with("emails_total{") && l.contains(&kind) && l.contains("status=\"sent\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
