//! A real PostgreSQL crash during a burst of checkouts (fault D2 in
//! `docs/guarantees.md`): `kill -9` of the postmaster under order-,
//! payment- and email-service, the server down for a few seconds, then
//! started again with crash recovery. Meanwhile checkouts answer `201` or
//! `503` and nothing else, consumers retry without spending their retries
//! (M21), and after recovery every order is paid once and emailed once. The
//! server is the test's own (`scripts/postgres-node.sh`): the machine's
//! PostgreSQL, which every other test uses, is never touched.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use contract::names::{EMAIL_QUEUE, ORDER_QUEUE, PAYMENT_QUEUE};
use e2e::{Connections, Options, Pipeline, postgres_node::PostgresNode};
use serde_json::Value;
use sqlx::PgPool;
use test_support::{BrokerCleanup, LogCapture, eventually};

const ORDERS: usize = 150;
/// How long the server stays down after the kill.
const OUTAGE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_postgres_crash_during_a_burst_loses_nothing() {
    let logs = LogCapture::install();
    let node = PostgresNode::start().await;
    let amqp = test_support::fresh_amqp();
    // Given `connections`, the pipeline leaves the broker's names to the test.
    let _cleanup = BrokerCleanup::all(&amqp);
    let connections = Connections {
        order: (node.fresh_database("order"), amqp.clone()),
        payment: (node.fresh_database("payment"), amqp.clone()),
        email: (node.fresh_database("email"), amqp.clone()),
    };
    let mut pipeline = Pipeline::start_with(Options {
        connections: Some(connections),
        // Slower than the checkouts: payments are being made when the
        // server dies, and their writes meet the crash.
        payment_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let [payment_queue, email_queue] =
        [PAYMENT_QUEUE, EMAIL_QUEUE].map(|q| format!("{}{q}", amqp.prefix));

    let burst = pipeline.start_burst(ORDERS, 8, Duration::from_millis(30));
    // The kill lands with payments and emails being handled (in process,
    // every service's metrics are in one registry). Payments take 100 ms:
    // theirs meet the crash. An email takes a few milliseconds, so its
    // handling may be over by the time the server dies: email-service's
    // encounter with the crash is reported, not asserted.
    let what = "a third of the burst accepted, payments and emails in flight";
    eventually(Duration::from_secs(30), what, || async {
        if burst.accepted_so_far().await < ORDERS / 3 {
            return None;
        }
        let metrics = pipeline.metrics(&pipeline.payment_service).await;
        let in_flight = |queue: &str| metrics.queue(queue).in_flight > 0.0;
        (in_flight(&payment_queue) && in_flight(&email_queue)).then_some(())
    })
    .await;

    node.kill().await;
    // Sent once every server process is gone: it cannot be stored.
    let (probe, ()) = tokio::join!(probe_checkout(&pipeline), tokio::time::sleep(OUTAGE));
    let restarting = Instant::now();
    node.restart().await;
    let restarted = restarting.elapsed();
    let at_restart = burst.accepted_so_far().await;
    let what = "a checkout accepted after the restart";
    eventually(Duration::from_secs(30), what, || async {
        (burst.accepted_so_far().await > at_restart).then_some(())
    })
    .await;
    let first_accepted = restarting.elapsed();
    // Bounded: a checkout that hangs fails the test here.
    let finishing = tokio::spawn(burst.finish());
    let what = "every checkout of the burst answered";
    eventually(Duration::from_secs(120), what, || async {
        finishing.is_finished().then_some(())
    })
    .await;
    let result = finishing.await.expect("the burst's clients");

    assert_eq!(probe, 503, "a checkout while the database is down");
    assert!(
        result.statuses.iter().all(|s| matches!(s, 201 | 503)),
        "every checkout answered 201 or 503: {:?}",
        result.statuses
    );
    let unavailable = result.statuses.iter().filter(|s| **s == 503).count();
    assert!(unavailable > 0, "the burst's checkouts met the outage");

    // A checkout whose commit reached the WAL just before the crash, but
    // whose answer did not reach the client, answered 503 and is stored: a
    // lost answer, not a lost order (a retry with its Idempotency-Key would
    // get the 201). It must be processed like any other.
    let stored: Vec<(String, i64)> = sqlx::query_as("SELECT id::text, user_id FROM orders")
        .fetch_all(&pipeline.order_db)
        .await
        .expect("order-service's database answers");
    let accepted: HashSet<&str> = result.accepted.iter().map(String::as_str).collect();
    let stored_ids: HashSet<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
    assert!(
        accepted.is_subset(&stored_ids),
        "every accepted order survived the crash"
    );
    // Each checkout of the burst has a user id of its own.
    let users: HashSet<i64> = stored.iter().map(|(_, user)| *user).collect();
    assert_eq!(users.len(), stored.len(), "no checkout stored twice");
    let answer_lost: Vec<String> = stored_ids
        .difference(&accepted)
        .map(|id| (*id).to_owned())
        .collect();
    assert!(answer_lost.len() <= unavailable);
    let orders: Vec<String> = result
        .accepted
        .iter()
        .chain(&answer_lost)
        .cloned()
        .collect();

    // An email claim that committed as the server died, its answer lost,
    // holds the order's email until its lease runs out: up to a minute.
    let what = "every order settled and its email recorded as sent";
    let total = orders.len() as i64;
    eventually(Duration::from_secs(180), what, || async {
        let settled = count(
            &pipeline.order_db,
            "SELECT count(*) FROM orders WHERE status <> 'pending'",
        );
        let sent = count(
            &pipeline.email_db,
            "SELECT count(*) FROM email_log WHERE status = 'sent'",
        );
        (settled.await? == total && sent.await? == total).then_some(())
    })
    .await;
    let final_after = restarting.elapsed();

    let retries = Retries::from_logs(&logs, &pipeline.amqp.prefix);
    // Counts the claims taken over after a lease ran out (sent or not).
    let taken_over = pipeline
        .metrics(&pipeline.email_service)
        .await
        .sum("emails_resent_unrecorded_total", &[]) as u64;
    eprintln!(
        "postgres crash: {} checkouts, {} accepted, {unavailable} answered 503 ({} of them \
         stored: answer lost); restart with recovery {restarted:.1?}; first 201 \
         {first_accepted:.1?} after the restart began; every order final {final_after:.1?} \
         after it; deliveries retried for the database: payment {}, email {}, order {}; \
         waits to record a sent email: {}; email claims taken over after their lease: \
         {taken_over} ({} retries waiting for one)",
        result.statuses.len(),
        result.accepted.len(),
        answer_lost.len(),
        retries.payment,
        retries.email,
        retries.order,
        retries.record_sent,
        retries.lease,
    );
    assert!(
        retries.payment > 0,
        "payment-service met the outage and retried"
    );
    assert!(
        retries.transient.is_empty(),
        "a database crash spends no retry: {:?}",
        retries.transient
    );
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM payments")
        .fetch_all(&pipeline.payment_db)
        .await
        .unwrap();
    assert!(
        attempts.iter().all(|a| *a == 1),
        "the outage used none of the payments' retries: {attempts:?}"
    );
    pipeline.audit(&orders).await;
    pipeline.stop().await;
}

/// One checkout sent straight to the gateway; a `503` must be problem+json
/// with `Retry-After`.
async fn probe_checkout(pipeline: &Pipeline) -> u16 {
    let body = serde_json::json!({"user_id": 999_999, "user_email": "probe@example.com",
        "items": [{"product_id": 2, "quantity": 1}]});
    let response = pipeline
        .http
        .post(format!("{}/api/checkout", pipeline.gateway))
        .json(&body)
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    if status == 503 {
        let headers = response.headers();
        assert_eq!(
            headers[reqwest::header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(headers.contains_key(reqwest::header::RETRY_AFTER));
        let problem: Value = response.json().await.expect("a JSON body");
        assert_eq!(problem["status"], 503, "{problem}");
    }
    status
}

/// `None` while the database does not answer.
async fn count(pool: &PgPool, sql: &'static str) -> Option<i64> {
    sqlx::query_scalar(sql).fetch_one(pool).await.ok()
}

/// The consumers' retries, from their log lines.
struct Retries {
    /// Retried because the database was unavailable, per work queue.
    payment: usize,
    email: usize,
    order: usize,
    /// email-service waiting for another claim's lease to run out.
    lease: usize,
    /// email-service waiting, the mail sent, for the database to record it.
    record_sent: usize,
    /// Retried as a transient failure (spending a retry): the reasons.
    transient: Vec<String>,
}

impl Retries {
    fn from_logs(logs: &LogCapture, prefix: &str) -> Self {
        let lines = logs.lines();
        let unavailable = |queue: &str, reason: &str| {
            let queue = format!("{prefix}{queue}");
            lines
                .iter()
                .filter(|l| l["message"] == "dependency unavailable; will retry")
                .filter(|l| l["queue"] == queue.as_str())
                .filter(|l| l["reason"].as_str().is_some_and(|r| r.starts_with(reason)))
                .count()
        };
        Self {
            payment: unavailable(PAYMENT_QUEUE, "database:"),
            email: unavailable(EMAIL_QUEUE, "database:"),
            order: unavailable(ORDER_QUEUE, "database:"),
            lease: unavailable(EMAIL_QUEUE, "another delivery"),
            record_sent: lines
                .iter()
                .filter(|l| {
                    l["message"]
                        == "email sent, but the database is unavailable to record it; retrying"
                })
                .count(),
            transient: lines
                .iter()
                .filter(|l| l["message"] == "processing failed; will retry")
                .map(|l| format!("{}: {}", l["queue"], l["reason"]))
                .collect(),
        }
    }
}
