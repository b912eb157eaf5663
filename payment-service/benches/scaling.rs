//! How payment-service scales out: one burst of `order.order.created` events
//! drained by 1 and then by 3 replica processes of the real binary, competing
//! for one queue in a fresh RabbitMQ vhost and sharing one fresh database.
//! Prints the drain times, the speed-up, the payments each replica made (from
//! its `/metrics`) and the load average, which skews the figures when other
//! work runs on the machine.
//!
//! `scripts/scaling.sh` runs it (`docs/performance.md`). Settings, from the
//! environment: `SCALING_ORDERS` (60), `SCALING_REPLICAS` (`1,3`),
//! `PAYMENT_DELAY_MS` (300), `CONSUMER_PREFETCH` (1). It needs PostgreSQL and
//! RabbitMQ as the tests do.

use std::time::{Duration, Instant};

use contract::{
    events::{Event, OrderCreated, PaymentProcessed},
    names::{EMAIL_QUEUE, PAYMENT_QUEUE},
};
use test_support::{ProcessScenario, ServiceProcess, eventually};

const BINARY: &str = env!("CARGO_BIN_EXE_payment-service");

struct Run {
    orders: usize,
    delay_ms: u64,
    prefetch: u16,
}

#[tokio::main]
#[expect(
    clippy::print_stdout,
    reason = "the figures are this benchmark's output"
)]
async fn main() {
    let run = Run {
        orders: env_or("SCALING_ORDERS", 60),
        delay_ms: env_or("PAYMENT_DELAY_MS", 300),
        prefetch: env_or("CONSUMER_PREFETCH", 1),
    };
    let counts: Vec<usize> = std::env::var("SCALING_REPLICAS")
        .unwrap_or_else(|_| "1,3".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!(
        "scaling: {} orders, PAYMENT_DELAY_MS={}, CONSUMER_PREFETCH={}; load average before: {}",
        run.orders,
        run.delay_ms,
        run.prefetch,
        load_average()
    );
    let mut baseline: Option<Duration> = None;
    for count in counts {
        let (elapsed, split) = run.drain(count).await;
        let base = *baseline.get_or_insert(elapsed);
        let ideal = run.orders as f64 * run.delay_ms as f64 / 1000.0 / count as f64;
        println!(
            "scaling: {count} replica(s): drained in {:.2} s (ideal {ideal:.2} s), \
             {:.1} payments/s, speed-up {:.2}x; payments per replica {split:?}",
            elapsed.as_secs_f64(),
            run.orders as f64 / elapsed.as_secs_f64(),
            base.as_secs_f64() / elapsed.as_secs_f64(),
        );
    }
    println!("scaling: load average after: {}", load_average());
}

impl Run {
    /// The drain time of one burst by `count` replicas, and the payments
    /// each replica made.
    async fn drain(&self, count: usize) -> (Duration, Vec<f64>) {
        let queues = [
            (PAYMENT_QUEUE, OrderCreated::ROUTING_KEY),
            (EMAIL_QUEUE, PaymentProcessed::ROUTING_KEY),
        ];
        let scenario = ProcessScenario::new("payment_scaling", &queues).await;
        let env = [
            ("PAYMENT_DELAY_MS", self.delay_ms.to_string()),
            ("CONSUMER_PREFETCH", self.prefetch.to_string()),
        ];
        let mut replicas: Vec<(ServiceProcess, u16)> = (0..count)
            .map(|_| {
                let port = test_support::free_port();
                (scenario.start(BINARY, port, &env), port)
            })
            .collect();
        test_support::wait_for_consumers(&scenario.conn, PAYMENT_QUEUE, count as u32).await;
        let pool = scenario.pool().await;
        let burst: Vec<OrderCreated> = (0..self.orders)
            .map(|_| test_support::fixtures::order_created("bench@example.com"))
            .collect();

        let started = Instant::now();
        scenario.publish_burst(&burst).await;
        let drained = Duration::from_secs(600);
        eventually(drained, "the burst drains", || async {
            let paid = test_support::count_rows(&pool, "payments").await.unwrap();
            (paid == self.orders as i64).then_some(())
        })
        .await;
        let elapsed = started.elapsed();

        // A replica counts a payment just after committing it.
        let split = eventually(Duration::from_secs(10), "every payment counted", || async {
            let mut split = Vec::new();
            for (_, port) in &replicas {
                let metrics = test_support::scrape(*port).await?;
                split.push(metrics.sum("payments_total", &[]));
            }
            (split.iter().sum::<f64>() == self.orders as f64).then_some(split)
        })
        .await;
        for (process, _) in &mut replicas {
            process.terminate(Duration::from_secs(30)).await;
        }
        (elapsed, split)
    }
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
