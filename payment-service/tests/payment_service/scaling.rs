//! Scaling, proven on the real binary: payment-service processes competing
//! for one queue, as `docker compose up --scale payment-service=N` runs them.
//!
//! - `three_replicas_split_a_burst_and_sigterm_mid_burst_loses_and_duplicates_nothing`
//!   (asserted): every replica does some of the work, each is told apart in
//!   its metrics, and two of them stopped with SIGTERM in the middle of the
//!   burst lose and duplicate nothing.
//! - `scaling_figures` (`#[ignore]`d: timing is a figure to read, not an
//!   assertion): drains one burst with 1 and then 3 replicas and prints the
//!   drain times, the speed-up and the work split. Run it with
//!   `scripts/scaling.sh` (README, "Scaling").

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use crate::support::{Scenario, count_payments, scrape, wait_for_consumers};
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
        let metrics = scrape(self.port)
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
    wait_for_consumers(&scenario, 3).await;
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

/// Drain time of one burst by `count` replicas; the payments per replica.
async fn drain(
    count: usize,
    orders_in_burst: usize,
    delay_ms: u64,
    prefetch: u16,
) -> (Duration, Vec<f64>) {
    let scenario = Scenario::new().await;
    let mut replicas: Vec<Replica> = (0..count)
        .map(|_| Replica::start(&scenario, delay_ms, prefetch))
        .collect();
    wait_for_consumers(&scenario, count as u32).await;
    let pool = scenario.pool().await;
    let burst = orders(orders_in_burst);

    let started = Instant::now();
    scenario.publish_burst(&burst).await;
    loop {
        if count_payments(&pool).await == orders_in_burst as i64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the burst drains"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();

    // A replica counts a payment just after committing it.
    let split = eventually(Duration::from_secs(10), "every payment counted", || async {
        let mut split = Vec::new();
        for replica in &replicas {
            split.push(replica.payments().await.0);
        }
        (split.iter().sum::<f64>() == orders_in_burst as f64).then_some(split)
    })
    .await;
    for replica in &mut replicas {
        replica.stop().await;
    }
    (elapsed, split)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Prints the drain time of one burst with 1 and with 3 replicas (or
/// `SCALING_REPLICAS`, e.g. `1,2,3`). Settings: `SCALING_ORDERS` (60),
/// `PAYMENT_DELAY_MS` (300), `CONSUMER_PREFETCH` (1).
#[tokio::test]
#[ignore = "prints timing figures; run alone with scripts/scaling.sh"]
#[expect(clippy::print_stdout, reason = "the figures are this test's output")]
async fn scaling_figures() {
    let orders_in_burst: usize = env_or("SCALING_ORDERS", 60);
    let delay_ms: u64 = env_or("PAYMENT_DELAY_MS", 300);
    let prefetch: u16 = env_or("CONSUMER_PREFETCH", 1);
    let counts: Vec<usize> = std::env::var("SCALING_REPLICAS")
        .unwrap_or_else(|_| "1,3".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!(
        "scaling: {orders_in_burst} orders, PAYMENT_DELAY_MS={delay_ms}, \
         CONSUMER_PREFETCH={prefetch}; load average before: {}",
        load_average()
    );
    let mut baseline: Option<Duration> = None;
    for count in counts {
        let (elapsed, split) = drain(count, orders_in_burst, delay_ms, prefetch).await;
        let base = *baseline.get_or_insert(elapsed);
        let ideal = orders_in_burst as f64 * delay_ms as f64 / 1000.0 / count as f64;
        println!(
            "scaling: {count} replica(s): drained in {:.2} s (ideal {ideal:.2} s), \
             {:.1} payments/s, speed-up {:.2}x; payments per replica {split:?}",
            elapsed.as_secs_f64(),
            orders_in_burst as f64 / elapsed.as_secs_f64(),
            base.as_secs_f64() / elapsed.as_secs_f64(),
        );
    }
    println!("scaling: load average after: {}", load_average());
}
