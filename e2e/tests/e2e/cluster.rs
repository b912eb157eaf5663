//! Node loss on a three-node RabbitMQ cluster (faults C1–C3 in
//! `docs/guarantees.md`): the real binaries, `RABBITMQ_URL` listing the
//! three nodes, a burst of checkouts, and the audit. Each test boots a
//! cluster of its own beside the machine's broker
//! (`scripts/rabbitmq-nodes.sh`), so the tests are ignored by default and
//! run alone, after the rest of the suite (`scripts/test.sh`).

use std::time::{Duration, Instant};

use e2e::{Burst, cluster::ClusterPipeline};
use test_support::eventually;

const ORDERS: usize = 300;

/// Starts a burst of `ORDERS` checkouts from `clients` clients, each pausing
/// `pause` between checkouts, and waits until a third of it is accepted.
/// The pace makes the rest of the burst outlast the scenario's fault.
async fn a_third_into_a_burst(
    pipeline: &ClusterPipeline,
    clients: usize,
    pause: Duration,
) -> Burst {
    let burst = pipeline.burst(ORDERS, clients, pause);
    eventually(
        Duration::from_secs(60),
        "a third of the burst accepted",
        || async { (burst.accepted_so_far().await >= ORDERS / 3).then_some(()) },
    )
    .await;
    burst
}

/// Every checkout answered 201: the broker is not on the checkout's path.
fn all_accepted(statuses: &[u16]) {
    assert_eq!(statuses.len(), ORDERS);
    assert!(
        statuses.iter().all(|s| *s == 201),
        "every checkout accepted: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "runs a three-node RabbitMQ cluster; run alone (scripts/test.sh does)"]
async fn the_busiest_node_killed_for_good_loses_nothing() {
    let mut pipeline = ClusterPipeline::start().await;
    assert!(
        pipeline.queues_not_on_every_node().is_empty(),
        "every queue has a replica on each node: {:?}",
        pipeline.queues_not_on_every_node()
    );
    // About 70 checkouts a second: the kill is over at once.
    let burst = a_third_into_a_burst(&pipeline, 8, Duration::from_millis(20)).await;

    let victim = pipeline.busiest_node().await;
    let killed = Instant::now();
    pipeline.kill(victim);
    let consuming = pipeline
        .wait_until_ready(Duration::from_secs(60), Some(victim))
        .await;
    let result = burst.finish().await;
    all_accepted(&result.statuses);
    pipeline
        .wait_until_final(result.accepted.len(), Duration::from_secs(120))
        .await;
    let final_after = killed.elapsed();
    eprintln!(
        "C1 node {victim} killed: every service consuming again after {consuming:.1?}, \
         every order final {final_after:.1?} after the kill"
    );
    let survivor = if victim == 1 { 2 } else { 1 };
    pipeline.audit(&result.accepted, survivor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "runs a three-node RabbitMQ cluster; run alone (scripts/test.sh does)"]
async fn a_rolling_restart_loses_nothing() {
    let mut pipeline = ClusterPipeline::start().await;
    // About 5 checkouts a second, for the minute the restarts take.
    let burst = a_third_into_a_burst(&pipeline, 2, Duration::from_millis(400)).await;

    let started = Instant::now();
    for node in 1..=3 {
        pipeline.halt(node);
        pipeline.boot(node);
        // The next node stops only once this one's replicas are back in
        // every queue, as an operator's rolling restart waits.
        pipeline
            .wait_for_every_replica(Duration::from_secs(60))
            .await;
    }
    let restarted = started.elapsed();
    let result = burst.finish().await;
    all_accepted(&result.statuses);
    let consuming = pipeline
        .wait_until_ready(Duration::from_secs(60), None)
        .await;
    pipeline
        .wait_until_final(result.accepted.len(), Duration::from_secs(120))
        .await;
    eprintln!(
        "C2 rolling restart of three nodes took {restarted:.1?}; every order final \
         {:.1?} after it began (services ready {consuming:.1?} after the last node)",
        started.elapsed()
    );
    pipeline.audit(&result.accepted, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "runs a three-node RabbitMQ cluster; run alone (scripts/test.sh does)"]
async fn a_lost_majority_holds_work_in_the_outbox_until_it_returns() {
    let mut pipeline = ClusterPipeline::start().await;
    // About 5 checkouts a second, for the minute the outage takes.
    let burst = a_third_into_a_burst(&pipeline, 4, Duration::from_millis(800)).await;

    pipeline.halt(2);
    pipeline.halt(3);
    let before = burst.accepted_so_far().await;
    let why = eventually(
        Duration::from_secs(60),
        "a service saying why it cannot publish or consume",
        || async {
            let answers = pipeline.readiness().await;
            answers.iter().find_map(|(_, body)| {
                let checks = body["checks"].as_object()?;
                checks
                    .values()
                    .filter_map(|said| said.as_str())
                    .find(|said| said.contains("majority"))
                    .map(str::to_owned)
            })
        },
    )
    .await;
    // order-service keeps publishing its outbox, and says the broker
    // confirms none of it.
    let unconfirmed = eventually(
        Duration::from_secs(60),
        "order-service saying its publishes go unconfirmed",
        || async {
            let (_, body) = pipeline.readiness().await.swap_remove(0);
            let said = body["checks"]["rabbitmq"].as_str()?.to_owned();
            said.contains("confirmed no publish").then_some(said)
        },
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "checkouts accepted without a majority",
        || async { (burst.accepted_so_far().await >= before + 20).then_some(()) },
    )
    .await;

    let returned = Instant::now();
    pipeline.boot(2);
    pipeline.boot(3);
    let result = burst.finish().await;
    all_accepted(&result.statuses);
    let consuming = pipeline
        .wait_until_ready(Duration::from_secs(90), None)
        .await;
    pipeline
        .wait_until_final(result.accepted.len(), Duration::from_secs(180))
        .await;
    eprintln!(
        "C3 majority lost: /ready said {why}, and {unconfirmed}; once two nodes were back, every service \
         consuming after {consuming:.1?}, every order final after {:.1?}",
        returned.elapsed()
    );
    pipeline.audit(&result.accepted, 1).await;
}
