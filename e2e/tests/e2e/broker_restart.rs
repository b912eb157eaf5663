//! The real RabbitMQ restarted (`rabbitmqctl stop_app` / `start_app`) during a
//! burst (faults M4 in `docs/guarantees.md`). It stops the broker every other test uses,
//! so it is ignored by default and run alone, after the rest of the suite:
//! `scripts/test.sh` runs it with `--run-ignored only` on one thread.

use std::time::Duration;

use e2e::Pipeline;
use test_support::{eventually, rabbitmqctl};

const ORDERS: usize = 150;

#[tokio::test]
#[ignore = "restarts the shared RabbitMQ; run alone (scripts/test.sh does)"]
async fn a_broker_restart_during_a_burst_loses_and_duplicates_nothing() {
    let mut pipeline = Pipeline::start().await;
    let burst = pipeline.start_burst(ORDERS, 8, Duration::from_millis(30));
    eventually(
        Duration::from_secs(30),
        "a third of the burst accepted",
        || async { (burst.accepted_so_far().await >= ORDERS / 3).then_some(()) },
    )
    .await;

    rabbitmqctl(&["stop_app"]);
    let before = burst.accepted_so_far().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = burst.accepted_so_far().await - before;
    rabbitmqctl(&["start_app"]);
    let result = burst.finish().await;

    assert!(
        result.statuses.iter().all(|s| *s == 201),
        "every checkout accepted, no 5xx: {:?}",
        result.statuses
    );
    assert!(
        during > 0,
        "checkouts kept being accepted while the broker was down"
    );
    pipeline.audit(&result.accepted).await;
    pipeline.stop().await;
}
