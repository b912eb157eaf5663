//! payment-service's refunds through the real broker: `order.refund.requested`
//! on `payment_service_refund_queue` in, `payment.refund.processed` out (read
//! from order-service's refund queue, bound by the test).

use contract::{
    events::{Event, RefundProcessed},
    names::PAYMENT_REFUND_QUEUE,
};
use payment_service::db::{self, refunds};
use sqlx::PgPool;
use std::time::Duration;
use test_support::{self, QueueCounts, eventually};
use uuid::Uuid;

use crate::app::{TestApp, refund_request};

/// Rows of `payment.refund.processed` in the outbox for `order_id`.
async fn refund_events_stored(pool: &PgPool, order_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE routing_key = $1 AND correlation_id = $2")
        .bind(RefundProcessed::ROUTING_KEY)
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn in_inbox(pool: &PgPool, message_id: Uuid) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM processed_messages WHERE message_id = $1)")
        .bind(message_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_paid_order_is_refunded_once_and_the_refund_published() {
    let app = TestApp::spawn().await;
    app.bind_refund_results().await;
    let order = test_support::fixtures::order_created("test@example.com");
    let payment = app.pay(&order).await;
    let charge_id = payment.transaction_id.clone().expect("a completed charge");
    let request = refund_request(&order, &payment);

    app.publish_refund(&request).await;

    let events = app.refund_events(1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    let refund = refunds::find_refund(&app.pool, order.order_id)
        .await
        .unwrap()
        .expect("refund stored");
    assert_eq!(event.event_type, "refund.processed");
    assert_eq!(event.schema_version, 1);
    assert_eq!(event.refund_id, refund.id);
    assert_eq!(event.payment_id, payment.payment_id);
    assert_eq!(event.order_id, order.order_id);
    assert_eq!(event.user_id, order.user_id);
    assert_eq!(event.user_email, "test@example.com");
    assert_eq!(event.amount, order.total_amount);
    assert_eq!(event.currency, order.currency);
    assert_eq!(event.transaction_id, charge_id, "the refunded charge");
    assert_eq!(event.refund_transaction_id, refund.transaction_id);
    assert_eq!(event.items, order.items);
    let rfd = &refund.transaction_id;
    assert!(rfd.starts_with("RFD-") && rfd.len() == 16, "{rfd}");
    assert!(
        rfd[4..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
        "{rfd}"
    );

    assert_eq!(refund.payment_id, payment.payment_id);
    assert_eq!(refund.amount, order.total_amount);
    assert_eq!(refund.currency, order.currency);
    assert_eq!(refund.source_event_id, request.event_id);
    assert_eq!(refund.attempts, 1);
    assert!(in_inbox(&app.pool, request.event_id).await);

    let metrics = app.metrics().await;
    assert_eq!(metrics.sum("refunds_total", &[]), 1.0);
    // The timeline shows the refund, with its refund id, when it was made.
    let steps = app.timeline(order.order_id).await;
    let refunded: Vec<_> = steps
        .iter()
        .filter(|s| s.step == "refund.completed")
        .collect();
    assert_eq!(refunded.len(), 1, "{steps:?}");
    assert_eq!(refunded[0].detail.as_deref(), Some(rfd.as_str()));
    assert_eq!(refunded[0].at, refund.processed_at);
    assert_eq!(refunded[0].service, "payment-service");
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_or_republished_refund_request_refunds_only_once() {
    let app = TestApp::spawn().await;
    app.bind_refund_results().await;
    let order = test_support::fixtures::order_created("test@example.com");
    let payment = app.pay(&order).await;
    let request = refund_request(&order, &payment);

    app.publish_refund(&request).await;
    app.publish_refund(&request).await;
    // The same refund under a new event id (order-service asked twice).
    let mut again = request.clone();
    again.event_id = Uuid::new_v4();
    app.publish_refund(&again).await;

    app.wait_for_queue_counts(
        PAYMENT_REFUND_QUEUE,
        QueueCounts {
            consumed: 3.0,
            acked: 3.0,
            retried: 0.0,
            parked: 0.0,
            in_flight: 0.0,
        },
    )
    .await;
    assert_eq!(
        test_support::count_rows(&app.pool, "refunds")
            .await
            .unwrap(),
        1
    );
    assert_eq!(refund_events_stored(&app.pool, order.order_id).await, 1);
    let metrics = app.metrics().await;
    assert_eq!(metrics.sum("refunds_total", &[]), 1.0);
    assert_eq!(
        metrics.sum(
            "duplicate_deliveries_total",
            &[("consumer", "payment-service")]
        ),
        2.0,
        "both duplicates counted"
    );
    eventually(Duration::from_secs(10), "the outbox relayed", || async {
        (test_support::pending_outbox_rows(&app.pool).await.ok()? == 0).then_some(())
    })
    .await;
    let events = app.refund_events(1).await;
    assert_eq!(events.len(), 1, "one payment.refund.processed: {events:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_refund_request_without_a_completed_payment_is_parked_and_records_nothing() {
    let app = TestApp::spawn().await;
    // A declined charge: nothing to refund.
    let declined = test_support::fixtures::order_created("buyer+decline@example.com");
    let failed = app.pay(&declined).await;
    assert_eq!(failed.status.as_str(), "failed");
    let for_declined = refund_request(&declined, &failed);
    // An order payment-service never charged.
    let unknown_order = test_support::fixtures::order_created("test@example.com");
    let mut for_unknown = refund_request(&unknown_order, &failed);
    for_unknown.payment_id = Uuid::new_v4();

    app.publish_refund(&for_declined).await;
    app.publish_refund(&for_unknown).await;

    let dlq = app.queue(&format!("{PAYMENT_REFUND_QUEUE}.dlq"));
    let parked = test_support::take_parked(&app.conn, &dlq, 2, Duration::from_secs(10)).await;
    let reason_of = |id: Uuid| {
        let (_, reason, retries) = parked
            .iter()
            .find(|(message_id, _, _)| *message_id == id.to_string())
            .unwrap_or_else(|| panic!("{id} parked: {parked:?}"));
        assert_eq!(*retries, 0, "parked at once, never retried");
        reason.clone()
    };
    let reason = reason_of(for_declined.event_id);
    assert!(reason.contains("failed, not completed"), "{reason}");
    let reason = reason_of(for_unknown.event_id);
    assert!(reason.contains("has no payment"), "{reason}");

    assert_eq!(
        test_support::count_rows(&app.pool, "refunds")
            .await
            .unwrap(),
        0
    );
    for request in [&for_declined, &for_unknown] {
        assert!(
            !in_inbox(&app.pool, request.event_id).await,
            "not recorded, so a replay is processed afresh"
        );
        assert_eq!(refund_events_stored(&app.pool, request.order_id).await, 0);
    }
    app.wait_for_queue_counts(
        PAYMENT_REFUND_QUEUE,
        QueueCounts {
            consumed: 2.0,
            acked: 0.0,
            retried: 0.0,
            parked: 2.0,
            in_flight: 0.0,
        },
    )
    .await;
    assert_eq!(app.metrics().await.sum("refunds_total", &[]), 0.0);
    // The declined payment itself is untouched.
    let payment = db::find_payment(&app.pool, declined.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payment.status, "failed");
    app.stop().await;
}

#[tokio::test]
async fn a_flaky_refund_is_retried_with_backoff_until_it_succeeds() {
    let app = TestApp::spawn().await;
    app.bind_refund_results().await;
    // The charge is flaky as well: paid on its third attempt.
    let order = test_support::fixtures::order_created("buyer+flaky@example.com");
    let payment = app.pay(&order).await;
    let request = refund_request(&order, &payment);

    app.publish_refund(&request).await;

    let events = app.refund_events(1).await;
    assert_eq!(events[0].order_id, order.order_id);
    let refund = refunds::find_refund(&app.pool, order.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refund.attempts, 3, "two transient failures, then success");
    assert_eq!(events[0].refund_transaction_id, refund.transaction_id);
    let dlq = app.queue(&format!("{PAYMENT_REFUND_QUEUE}.dlq"));
    assert_eq!(
        test_support::queue_depth(&app.conn, &dlq).await,
        0,
        "nothing parked"
    );
    app.wait_for_queue_counts(
        PAYMENT_REFUND_QUEUE,
        QueueCounts {
            consumed: 3.0,
            acked: 1.0,
            retried: 2.0,
            parked: 0.0,
            in_flight: 0.0,
        },
    )
    .await;
    // Both retries are on the order's timeline.
    let steps = app.timeline(order.order_id).await;
    let refund_retries = steps
        .iter()
        .filter(|s| {
            s.step == "message.retry_scheduled"
                && s.detail
                    .as_deref()
                    .unwrap_or("")
                    .contains(PAYMENT_REFUND_QUEUE)
        })
        .count();
    assert_eq!(refund_retries, 2, "{steps:?}");
    app.stop().await;
}
