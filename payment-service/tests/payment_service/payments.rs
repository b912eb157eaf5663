//! payment-service's charges against the real PostgreSQL and RabbitMQ: a
//! fresh database and a unique queue prefix per test ([`TestApp`]).

use std::time::Duration;

use contract::{
    events::{Event, OrderCreated},
    names::{EMAIL_QUEUE, PAYMENT_QUEUE},
};
use messaging::headers;
use payment_service::db;
use test_support::{self, QueueCounts, eventually};
use uuid::Uuid;

use crate::app::TestApp;

#[tokio::test]
async fn an_order_is_charged_once_and_its_outcome_published() {
    let app = TestApp::spawn().await;
    let order = test_support::fixtures::order_created("test@example.com");

    app.publish(&order).await;

    let events = app.payment_events(1).await;
    let payment = db::find_payment(&app.pool, order.order_id)
        .await
        .unwrap()
        .expect("payment stored");
    assert_eq!(payment.status, "completed");
    assert_eq!(payment.amount, order.total_amount);
    let event = &events[0];
    assert_eq!(event.order_id, order.order_id);
    assert_eq!(event.payment_id, payment.id);
    assert_eq!(event.transaction_id, payment.transaction_id);
    assert_eq!(event.user_email, "test@example.com");
    assert_eq!(event.items, order.items);
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_order_created_event_creates_no_second_payment() {
    let app = TestApp::spawn().await;
    let order = test_support::fixtures::order_created("test@example.com");

    app.publish(&order).await;
    app.publish(&order).await;
    // The same order under a new event id (a producer bug) is no second charge either.
    let mut same_order = order.clone();
    same_order.event_id = Uuid::new_v4();
    app.publish(&same_order).await;
    // A marker published last: once it is paid, the duplicates were consumed.
    let marker = test_support::fixtures::order_created("marker@example.com");
    app.publish(&marker).await;

    let events = app.payment_events(2).await;
    eventually(Duration::from_secs(10), "the marker payment", || async {
        db::find_payment(&app.pool, marker.order_id).await.unwrap()
    })
    .await;
    assert_eq!(
        test_support::count_rows(&app.pool, "payments")
            .await
            .unwrap(),
        2
    );
    let for_order = events
        .iter()
        .filter(|e| e.order_id == order.order_id)
        .count();
    assert_eq!(for_order, 1, "one payment.processed for the order");
    app.stop().await;
}

#[tokio::test]
async fn a_declined_card_stores_a_failed_payment_and_publishes_the_failure() {
    let app = TestApp::spawn().await;
    let order = test_support::fixtures::order_created("buyer+decline@example.com");

    app.publish(&order).await;

    let events = app.payment_events(1).await;
    assert_eq!(events[0].status.as_str(), "failed");
    assert_eq!(events[0].transaction_id, None);
    assert_eq!(events[0].failure_reason.as_deref(), Some("card_declined"));
    let payment = db::find_payment(&app.pool, order.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payment.status, "failed");
    app.stop().await;
}

#[tokio::test]
async fn a_flaky_provider_is_retried_with_backoff_until_it_succeeds() {
    let app = TestApp::spawn().await;
    let order = test_support::fixtures::order_created("buyer+flaky@example.com");

    app.publish(&order).await;

    let events = app.payment_events(1).await;
    assert_eq!(events[0].status.as_str(), "completed");
    let payment = db::find_payment(&app.pool, order.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payment.attempts, 3, "two transient failures, then success");
    let dlq = app.queue(&format!("{PAYMENT_QUEUE}.dlq"));
    assert_eq!(
        test_support::queue_depth(&app.conn, &dlq).await,
        0,
        "nothing parked"
    );
    // The metrics tell the same story: three deliveries, two retried, one acked.
    app.wait_for_queue_counts(
        PAYMENT_QUEUE,
        QueueCounts {
            consumed: 3.0,
            acked: 1.0,
            retried: 2.0,
            parked: 0.0,
            in_flight: 0.0,
        },
    )
    .await;
    let queue = app.queue(PAYMENT_QUEUE);
    let timed = app.metrics().await.sum(
        "message_processing_seconds_count",
        &[("queue", &queue), ("outcome", "retried")],
    );
    assert_eq!(timed, 2.0, "both retries timed");
    app.stop().await;
}

#[tokio::test]
async fn malformed_and_wrong_schema_messages_are_parked_at_once_and_others_keep_flowing() {
    let app = TestApp::spawn().await;
    let mut wrong_schema =
        serde_json::to_value(test_support::fixtures::order_created("a@example.com")).unwrap();
    wrong_schema["schema_version"] = 99.into();
    let mut missing_order_id =
        serde_json::to_value(test_support::fixtures::order_created("a@example.com")).unwrap();
    missing_order_id.as_object_mut().unwrap().remove("order_id");
    let good = test_support::fixtures::order_created("good@example.com");

    app.publish_raw(b"{not json", "poison-1").await;
    app.publish_raw(&serde_json::to_vec(&wrong_schema).unwrap(), "poison-2")
        .await;
    app.publish_raw(&serde_json::to_vec(&missing_order_id).unwrap(), "poison-3")
        .await;
    app.publish_raw(&vec![b' '; 100 * 1024], "poison-4").await;
    app.publish(&good).await;

    app.payment_events(1).await;
    let dlq = app.queue(&format!("{PAYMENT_QUEUE}.dlq"));
    let parked = test_support::take_parked(&app.conn, &dlq, 4, Duration::from_secs(10)).await;
    let ids: Vec<&str> = parked.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["poison-1", "poison-2", "poison-3", "poison-4"]);
    assert!(parked[0].1.contains("malformed"), "{:?}", parked[0]);
    assert!(parked[1].1.contains("schema_version"), "{:?}", parked[1]);
    assert!(parked[2].1.contains("order_id"), "{:?}", parked[2]);
    assert!(parked[3].1.contains("exceeds"), "{:?}", parked[3]);
    assert!(
        parked.iter().all(|(_, _, retries)| *retries == 0),
        "parked at once, never retried"
    );
    assert_eq!(
        test_support::count_rows(&app.pool, "payments")
            .await
            .unwrap(),
        1
    );
    // Counted as dead-lettered (outcome "parked"), the good one as acked.
    app.wait_for_queue_counts(
        PAYMENT_QUEUE,
        QueueCounts {
            consumed: 5.0,
            acked: 1.0,
            retried: 0.0,
            parked: 4.0,
            in_flight: 0.0,
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn expired_outbox_and_inbox_rows_are_purged_and_recent_ones_kept() {
    let app = TestApp::spawn().await;
    let insert_outbox = "INSERT INTO outbox (id, routing_key, event_type, correlation_id, payload, published_at) \
                         VALUES ($1, 'k', 't', $1, '{}', now() - make_interval(days => $2))";
    let insert_inbox = "INSERT INTO processed_messages (consumer, message_id, processed_at) \
                        VALUES ('test', $1, now() - make_interval(days => $2))";
    let mut recent = Vec::new();
    for (sql, old_days, recent_days) in [(insert_outbox, 8, 6), (insert_inbox, 31, 29)] {
        for days in [old_days, recent_days] {
            let id = Uuid::new_v4();
            sqlx::query(sql)
                .bind(id)
                .bind(days)
                .execute(&app.pool)
                .await
                .unwrap();
            if days == recent_days {
                recent.push(id);
            }
        }
    }

    // The service's own retention task may delete some of them first (it
    // runs at start): what counts is what is left afterwards.
    messaging::retention::purge_once(&app.pool).await.unwrap();

    let mut left: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM outbox UNION ALL SELECT message_id FROM processed_messages",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    left.sort();
    recent.sort();
    assert_eq!(left, recent, "only the expired rows are gone");
    app.stop().await;
}

/// Publishes `body` to the work queue's exchange with a `traceparent` header.
async fn publish_traced(app: &TestApp, body: &[u8], message_id: &str, traceparent: &str) {
    let properties = headers::with_headers(
        &headers::event_properties(message_id, "test", "test", "tests", 0),
        |h| headers::insert_str(h, headers::TRACEPARENT, traceparent),
    );
    let exchange = app.topology().exchange();
    test_support::publish_with(
        &app.conn,
        &exchange,
        OrderCreated::ROUTING_KEY,
        body,
        properties,
    )
    .await;
}

#[tokio::test]
async fn the_trace_goes_on_through_retries_into_the_outbox_and_the_published_outcome_and_into_the_dead_letter_queue()
 {
    use runtime::trace_context::TraceParent;
    let app = TestApp::spawn().await;
    let sent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let sent_parsed = TraceParent::parse(sent).unwrap();
    // Fails twice transiently: the third delivery, from the second retry
    // queue, is the one that pays and publishes.
    let order = test_support::fixtures::order_created("buyer+flaky@example.com");
    publish_traced(
        &app,
        &serde_json::to_vec(&order).unwrap(),
        &order.event_id.to_string(),
        sent,
    )
    .await;

    let published = test_support::take_messages(
        &app.conn,
        &app.queue(EMAIL_QUEUE),
        1,
        Duration::from_secs(20),
    )
    .await;
    let header = headers::get_str(&published[0].delivery.properties, headers::TRACEPARENT)
        .expect("the outcome carries a traceparent");
    let outcome = TraceParent::parse(&header).expect("a valid traceparent");
    assert_eq!(
        outcome.trace_id_hex(),
        sent_parsed.trace_id_hex(),
        "same trace after two retries"
    );
    assert_ne!(
        outcome.span_id, sent_parsed.span_id,
        "its parent is payment-service's span, not the sender's"
    );
    let stored: Option<String> = sqlx::query_scalar("SELECT traceparent FROM outbox")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        stored.as_deref(),
        Some(header.as_str()),
        "kept with the outbox row"
    );
    let payment = db::find_payment(&app.pool, order.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payment.attempts, 3, "it was retried twice");

    // A message that cannot be decoded is parked with its trace context.
    let poison = "00-11111111111111111111111111111111-2222222222222222-01";
    publish_traced(&app, b"{not json", "poison-traced", poison).await;
    let parked = test_support::take_messages(
        &app.conn,
        &app.queue("payment_service_queue.dlq"),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        headers::get_str(&parked[0].delivery.properties, headers::TRACEPARENT).as_deref(),
        Some(poison)
    );
    app.stop().await;
}
