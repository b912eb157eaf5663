//! Scaling, proven on the real binary: payment-service processes competing
//! for one queue, as `docker compose up --scale payment-service=N` runs them.
//! Every replica does some of the work, each is told apart in its metrics,
//! and two of them stopped with SIGTERM in the middle of the burst lose and
//! duplicate nothing. The speed-up is a figure, measured by the `scaling`
//! benchmark (`docs/performance.md`).

use std::{collections::HashSet, time::Duration};

use crate::support::{Scenario, count_payments};
use contract::names::PAYMENT_QUEUE;
use test_support::{self, ServiceProcess, eventually};

/// One payment-service process and the port its `/metrics` is on.
struct Replica {
    process: ServiceProcess,
    port: u16,
}

impl Replica {
    fn start(scenario: &Scenario, delay_ms: u64, prefetch: u16) -> Self {
        let port = test_support::free_port();
        let process = scenario.start(
            port,
            &[
                ("PAYMENT_DELAY_MS", delay_ms.to_string()),
                ("CONSUMER_PREFETCH", prefetch.to_string()),
            ],
        );
        Self { process, port }
    }

    /// Payments this replica stored (its `payments_total`), and its
    /// `replica` label.
    async fn payments(&self) -> (f64, String) {
        let metrics = test_support::scrape(self.port)
            .await
            .expect("the replica serves /metrics");
        let replica = metrics
            .matching("service_info", &[("service", "payment-service")])
            .find_map(|s| s.label("replica").map(str::to_owned))
            .expect("service_info names the replica");
        // The binary labels every series with its service and replica.
        assert!(
            metrics
                .samples
                .iter()
                .all(|s| s.label("service").is_some() && s.label("replica") == Some(&replica)),
            "every series carries service and replica"
        );
        (metrics.sum("payments_total", &[]), replica)
    }

    async fn stop(&mut self) {
        let status = self.process.terminate(Duration::from_secs(30)).await;
        assert!(
            status.success(),
            "SIGTERM drains and exits cleanly: {status}; log {}",
            self.process.log.display()
        );
    }
}

fn orders(count: usize) -> Vec<contract::events::OrderCreated> {
    (0..count)
        .map(|_| test_support::fixtures::order_created("test@example.com"))
        .collect()
}

#[tokio::test]
async fn three_replicas_split_a_burst_and_sigterm_mid_burst_loses_and_duplicates_nothing() {
    const ORDERS: usize = 150;
    let scenario = Scenario::new().await;
    // 100 ms per payment, two at a time: the three drain ~60 orders a second,
    // so the burst is still running when two of them are stopped.
    let mut replicas: Vec<Replica> = (0..3).map(|_| Replica::start(&scenario, 100, 2)).collect();
    test_support::wait_for_consumers(&scenario.conn, PAYMENT_QUEUE, 3).await;
    let burst = orders(ORDERS);
    scenario.publish_burst(&burst).await;

    let pool = scenario.pool().await;
    eventually(
        Duration::from_secs(60),
        "a fifth of the burst paid",
        || async { (count_payments(&pool).await >= (ORDERS / 5) as i64).then_some(()) },
    )
    .await;
    // The work split: every replica has paid some, and each is told apart by
    // its `replica` label (one Prometheus series per replica).
    let mut labels = HashSet::new();
    for replica in &replicas {
        let (paid, label) = replica.payments().await;
        assert!(paid > 0.0, "replica {label} took part in the burst");
        labels.insert(label);
    }
    assert_eq!(labels.len(), 3, "three distinct replica labels: {labels:?}");

    // Scale down to one in the middle of the burst.
    let remaining = count_payments(&pool).await;
    assert!(
        remaining < ORDERS as i64,
        "still mid-burst when scaling down"
    );
    for replica in &mut replicas[..2] {
        replica.stop().await;
    }
    eventually(
        Duration::from_secs(120),
        "the rest paid by the last replica",
        || async { (count_payments(&pool).await == ORDERS as i64).then_some(()) },
    )
    .await;
    let outcomes = test_support::take_messages(
        &scenario.conn,
        contract::names::EMAIL_QUEUE,
        ORDERS,
        Duration::from_secs(30),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // a late duplicate would show now
    let late = scenario.published_events().await.len();
    let order_ids: HashSet<String> = outcomes
        .iter()
        .map(|m| {
            let event: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
            event["order_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: HashSet<String> = burst.iter().map(|o| o.order_id.to_string()).collect();
    assert_eq!(order_ids, expected, "one outcome for every order");
    assert_eq!(outcomes.len() + late, ORDERS, "and no duplicate outcome");
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT order_id) FROM payments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(distinct, ORDERS as i64, "one payment per order");
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(unpublished, 0, "every outcome left the outboxes");
    for queue in [PAYMENT_QUEUE.to_owned(), format!("{PAYMENT_QUEUE}.dlq")] {
        assert_eq!(
            test_support::queue_depth(&scenario.conn, &queue).await,
            0,
            "{queue} empty"
        );
    }
    replicas[2].stop().await;
}
