//! A handler slower than the broker's `consumer_timeout` (fault M11 in
//! `docs/guarantees.md`): the broker closes the consumer's channel and
//! returns the delivery while the handler still runs. The real binary, on a
//! RabbitMQ node of the test's own, since the timeout is a node setting.

use std::time::Duration;

use crate::support::{Scenario, count_payments, processed};
use test_support::{BrokerNode, eventually};

/// `scripts/rabbitmq-nodes.sh` node index: no other test uses it.
const NODE: u32 = 9;

#[tokio::test]
async fn a_handler_held_past_the_consumer_timeout_is_recovered_and_pays_once() {
    let node = BrokerNode::boot(NODE);
    // Checked on every channel tick; both are read when a channel opens, so
    // they apply to every channel the service opens.
    node.set_rabbit_env("consumer_timeout", "1000");
    node.set_rabbit_env("channel_tick_interval", "200");
    let scenario = Scenario::on_broker(node.url()).await;
    let port = test_support::free_port();
    // Each charge takes 2.5 s: the broker times the delivery out, and its
    // redelivery starts a second attempt while the first still runs.
    let mut service = scenario.start(port, &[("PAYMENT_DELAY_MS", "2500".to_owned())]);
    let slow = test_support::fixtures::order_created("slow@example.com");
    scenario.publish(&slow).await;

    eventually(
        Duration::from_secs(60),
        "the channel closed by the broker and rebuilt",
        || async {
            let log = service.log_text();
            (log.contains("timed out") && log.contains("rebuilding channel and consumer"))
                .then_some(())
        },
    )
    .await;
    // The binary created its database before it started consuming.
    let pool = scenario.pool().await;
    eventually(Duration::from_secs(60), "the order paid", || async {
        (count_payments(&pool).await == 1).then_some(())
    })
    .await;

    // The service still consumes: a second order is paid by the same process.
    let next = test_support::fixtures::order_created("next@example.com");
    scenario.publish(&next).await;
    eventually(Duration::from_secs(60), "the second order paid", || async {
        (count_payments(&pool).await == 2).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "every delivery settled",
        || async {
            let depth = test_support::queue_depth(&scenario.conn, "payment_service_queue").await;
            (depth == 0 && processed(port, "acked").await? >= 2).then_some(())
        },
    )
    .await;

    assert!(service.is_running(), "the service recovered in place");
    let metrics = test_support::scrape(port).await.expect("/metrics answers");
    assert_eq!(
        metrics.sum("service_restarts_total", &[]),
        0.0,
        "the consumer rebuilt its channel; the service was not restarted"
    );
    assert!(service.terminate(Duration::from_secs(30)).await.success());
    assert_eq!(count_payments(&pool).await, 2, "one payment per order");
    let mut paid: Vec<_> = scenario
        .published_events()
        .await
        .into_iter()
        .map(|e| e.order_id)
        .collect();
    paid.sort();
    let mut expected = vec![slow.order_id, next.order_id];
    expected.sort();
    assert_eq!(paid, expected, "one outcome published per order");
    assert_eq!(
        test_support::queue_depth(&scenario.conn, "payment_service_queue.dlq").await,
        0,
        "nothing parked"
    );
}
