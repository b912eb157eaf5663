//! Every service's `/metrics` after two checkouts through the whole pipeline
//! (one paid, one declined): the counters of each step moved, per queue and
//! per service, and every series names its replica.
//!
//! In-process, the four services share one metrics registry, so each
//! assertion selects its series by label (the queue names carry this test's
//! unique prefix; HTTP series carry `service`; outbox series carry `app`).
//! Counters not keyed by a unique label are compared before and after.

use std::time::Duration;

use e2e::Pipeline;
use serde_json::json;
use test_support::{Metrics, QueueCounts, eventually};

use contract::names::{EMAIL_QUEUE, ORDER_QUEUE, PAYMENT_QUEUE, WORK_QUEUES};

/// The queues a checkout goes through.
const QUEUES: [&str; 3] = [PAYMENT_QUEUE, EMAIL_QUEUE, ORDER_QUEUE];

#[tokio::test]
async fn a_checkout_moves_the_counters_of_every_service() {
    let mut pipeline = Pipeline::start().await;
    let before = pipeline.metrics(&pipeline.gateway).await;
    let checkout_201 = [
        ("service", "gateway"),
        ("method", "POST"),
        ("path", "/api/checkout"),
        ("status", "201"),
    ];
    let completed = [("status", "completed"), ("reason", "none")];
    let declined = [("status", "failed"), ("reason", "card_declined")];
    let confirmation_sent = [("kind", "confirmation"), ("status", "sent")];
    let failure_sent = [("kind", "payment_failed"), ("status", "sent")];

    let mut ids = Vec::new();
    for email in ["test@example.com", "buyer+decline@example.com"] {
        let body = json!({"user_id": 1, "user_email": email,
            "items": [{"product_id": 1, "quantity": 1}]});
        let (status, order) = pipeline.checkout(&body).await;
        assert_eq!(status, 201, "{order}");
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        pipeline.settled_order(id).await;
    }
    pipeline.smtp.wait_for(2, Duration::from_secs(20)).await;

    // The last ack (order-service settling the order) may land just after
    // the order reads as settled: wait until every queue reports both.
    let prefix = pipeline.amqp.prefix.clone();
    let queue = |base: &str| format!("{prefix}{base}");
    eventually(
        Duration::from_secs(10),
        "two acks on every queue",
        || async {
            let m = pipeline.metrics(&pipeline.order_service).await;
            QUEUES
                .iter()
                .all(|q| {
                    m.sum(
                        "messages_processed_total",
                        &[("queue", &queue(q)), ("outcome", "acked")],
                    ) == 2.0
                })
                .then_some(())
        },
    )
    .await;

    // gateway: the checkouts, counted and timed by route and status.
    let gateway = pipeline.metrics(&pipeline.gateway).await;
    assert_moved(&before, &gateway, "http_requests_total", &checkout_201, 2.0);
    assert_moved(
        &before,
        &gateway,
        "http_request_duration_seconds_count",
        &checkout_201[..3],
        2.0,
    );
    assert_moved(
        &before,
        &gateway,
        "gateway_upstream_requests_total",
        &[("operation", "create_order"), ("outcome", "ok")],
        2.0,
    );

    // order-service: its HTTP route, the orders, its outbox and its queue.
    let order = pipeline.metrics(&pipeline.order_service).await;
    assert_moved(
        &before,
        &order,
        "http_requests_total",
        &[
            ("service", "order-service"),
            ("path", "/orders"),
            ("status", "201"),
        ],
        2.0,
    );
    assert_moved(&before, &order, "orders_created_total", &[], 2.0);
    assert_outbox(&before, &order, "order-service", 2.0);
    assert_queue_counted(&order, &queue(ORDER_QUEUE), 2.0);
    assert_moved(
        &before,
        &order,
        "orders_settled_total",
        &[("payment_status", "completed")],
        1.0,
    );
    assert_moved(
        &before,
        &order,
        "orders_settled_total",
        &[("payment_status", "failed")],
        1.0,
    );

    // payment-service: its queue, the payments by outcome, its outbox.
    let payment = pipeline.metrics(&pipeline.payment_service).await;
    assert_queue_counted(&payment, &queue(PAYMENT_QUEUE), 2.0);
    assert_moved(&before, &payment, "payments_total", &completed, 1.0);
    assert_moved(&before, &payment, "payments_total", &declined, 1.0);
    assert_outbox(&before, &payment, "payment-service", 2.0);

    // email-service: its queue and the emails sent, by kind.
    let email = pipeline.metrics(&pipeline.email_service).await;
    assert_queue_counted(&email, &queue(EMAIL_QUEUE), 2.0);
    assert_moved(&before, &email, "emails_total", &confirmation_sent, 1.0);
    assert_moved(&before, &email, "emails_total", &failure_sent, 1.0);
    assert!(email.has("email_send_duration_seconds_count", &[("status", "sent")]));

    for (name, metrics) in [
        ("order-service", &order),
        ("payment-service", &payment),
        ("email-service", &email),
    ] {
        assert!(
            metrics.has("service_info", &[("service", name)]),
            "service_info for {name}"
        );
        assert_eq!(metrics.sum("amqp_connection_up", &[]), 1.0, "broker up");
        // Every series names the process it comes from.
        let replica = runtime::metrics::replica();
        let unlabelled: Vec<&str> = metrics
            .samples
            .iter()
            .filter(|s| s.label("replica") != Some(replica.as_str()))
            .map(|s| s.name.as_str())
            .collect();
        assert!(
            unlabelled.is_empty(),
            "without replica label: {unlabelled:?}"
        );
    }
    pipeline.stop().await;
}

/// `name{labels}` grew by exactly `by` between the two scrapes.
fn assert_moved(before: &Metrics, after: &Metrics, name: &str, labels: &[(&str, &str)], by: f64) {
    let moved = after.sum(name, labels) - before.sum(name, labels);
    assert_eq!(
        moved, by,
        "{name}{labels:?} moved by {moved}, expected {by}"
    );
}

/// The queue's consumer counted `n` deliveries taken, acked and timed, none
/// retried or parked, none still in flight.
fn assert_queue_counted(m: &Metrics, queue: &str, n: f64) {
    let expected = QueueCounts {
        consumed: n,
        acked: n,
        ..QueueCounts::default()
    };
    assert_eq!(m.queue(queue), expected, "{queue}");
    let timed = m.sum(
        "message_processing_seconds_count",
        &[("queue", queue), ("outcome", "acked")],
    );
    assert_eq!(timed, n, "{queue} processing time recorded");
}

/// The relay published `published` events of `app` and measured its backlog.
/// (Each test's service has its own database, but the `app` label is shared
/// by every test of this process, so the gauges are checked for presence.)
fn assert_outbox(before: &Metrics, after: &Metrics, app: &str, published: f64) {
    let label = [("app", app)];
    assert_moved(before, after, "outbox_published_total", &label, published);
    assert!(
        after.has("outbox_pending_events", &label),
        "{app} backlog gauge"
    );
    assert!(
        after.has("outbox_oldest_pending_age_seconds", &label),
        "{app} oldest pending age gauge"
    );
}

/// A dashboard panel over a counter that has not moved yet shows 0, not "no
/// data": a fresh pipeline already has its consumers' outcome and restart
/// counters and its restarts at 0. Each scrape also says whether the
/// service is ready and how busy its database pool is (the alert rules'
/// `service_ready` and `db_pool_*`).
#[tokio::test]
async fn a_fresh_pipeline_shows_its_counters_at_zero_its_readiness_and_its_pool() {
    let pipeline = Pipeline::start().await;
    let prefix = pipeline.amqp.prefix.clone();
    let metrics = pipeline.metrics(&pipeline.order_service).await;
    for base in WORK_QUEUES {
        let queue = format!("{prefix}{base}");
        for outcome in ["acked", "retried", "parked", "requeued"] {
            let labels = [("queue", queue.as_str()), ("outcome", outcome)];
            assert!(
                metrics.has("messages_processed_total", &labels),
                "{labels:?}"
            );
            assert_eq!(metrics.sum("messages_processed_total", &labels), 0.0);
        }
        assert!(metrics.has("consumer_restarts_total", &[("queue", &queue)]));
        assert_eq!(
            metrics.sum("consumer_restarts_total", &[("queue", &queue)]),
            0.0
        );
    }
    for service in [
        &pipeline.gateway,
        &pipeline.order_service,
        &pipeline.payment_service,
        &pipeline.email_service,
    ] {
        let metrics = pipeline.metrics(service).await;
        assert_eq!(metrics.sum("service_ready", &[]), 1.0, "{service}");
    }
    let metrics = pipeline.metrics(&pipeline.payment_service).await;
    assert!(metrics.sum("db_pool_max_connections", &[]) >= 1.0);
    assert!(metrics.has("db_pool_connections_in_use", &[]));
    pipeline.stop().await;
}
