//! RabbitMQ going away in the middle of a burst of checkouts (reliability
//! matrix M4/M5, per test through a proxy so other tests are not disturbed):
//! checkouts keep being accepted (the outbox holds the events), connections
//! recover by themselves, and every accepted order ends settled with exactly
//! one payment and one email.

use std::time::Duration;

use e2e::{Options, Pipeline};
use test_support::eventually;

const ORDERS: usize = 120;

#[tokio::test]
async fn a_broker_outage_during_a_burst_loses_and_duplicates_nothing() {
    let mut pipeline = Pipeline::start_with(Options {
        broker_proxy: true,
        ..Default::default()
    })
    .await;
    let burst = pipeline.start_burst(ORDERS, 8, Duration::from_millis(20));
    eventually(
        Duration::from_secs(30),
        "a third of the burst accepted",
        || async { (burst.accepted_so_far().await >= ORDERS / 3).then_some(()) },
    )
    .await;

    let proxy = pipeline.broker.as_ref().unwrap();
    proxy.cut();
    let before = burst.accepted_so_far().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = burst.accepted_so_far().await - before;
    proxy.restore();
    let result = burst.finish().await;

    assert!(
        result.statuses.iter().all(|s| *s == 201),
        "every checkout accepted, no 5xx: {:?}",
        result.statuses
    );
    assert!(
        during > 0,
        "checkouts kept being accepted while the broker was away"
    );
    assert_eq!(result.accepted.len(), ORDERS);
    pipeline.audit(&result.accepted).await;
    pipeline.stop().await;
}
