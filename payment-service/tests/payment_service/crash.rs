//! payment-service killed at the worst moments (faults M1, M2 in `docs/guarantees.md`),
//! its consumer channel closed by the broker (M10), and started while its
//! broker is unreachable: the real binary, misbehaving at a fail point or
//! facing a dependency that is not there.

use std::time::Duration;

use crate::support::{Scenario, count_payments, fail_point, processed};
use test_support::{self, eventually};

/// Restarts the service without a fail point until the redelivered message is
/// acked, then stops it with SIGTERM (which must succeed).
async fn recover(scenario: &Scenario) {
    let port = test_support::free_port();
    let mut service = scenario.start(port, &[]);
    eventually(
        Duration::from_secs(30),
        "the redelivery to be acked",
        || async { (processed(port, "acked").await? >= 1).then_some(()) },
    )
    .await;
    let status = service.terminate(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "SIGTERM stops cleanly: {status}; log {}",
        service.log.display()
    );
}

#[tokio::test]
async fn a_payment_service_killed_after_its_commit_and_before_its_ack_never_charges_twice() {
    let scenario = Scenario::new().await;
    let order = test_support::fixtures::order_created("test@example.com");
    scenario.publish(&order).await;

    let mut crashing = scenario.start(
        test_support::free_port(),
        &[fail_point("consumer-after-handle")],
    );
    let status = crashing.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success(), "the fail point aborted the process");
    let pool = scenario.pool().await;
    assert_eq!(
        count_payments(&pool).await,
        1,
        "the payment was committed before the crash"
    );

    recover(&scenario).await;

    assert_eq!(
        count_payments(&pool).await,
        1,
        "the redelivery charged nothing"
    );
    let events = scenario.published_events().await;
    assert!(!events.is_empty(), "the outcome was published");
    assert!(
        events
            .iter()
            .all(|e| e.order_id == order.order_id && e.payment_id == events[0].payment_id)
    );
    assert_eq!(
        test_support::queue_depth(&scenario.conn, "payment_service_queue.dlq").await,
        0
    );
}

#[tokio::test]
async fn a_payment_service_killed_before_handling_a_message_processes_it_after_restart() {
    let scenario = Scenario::new().await;
    let order = test_support::fixtures::order_created("test@example.com");
    scenario.publish(&order).await;

    let mut crashing = scenario.start(
        test_support::free_port(),
        &[fail_point("consumer-before-handle")],
    );
    assert!(!crashing.wait_exit(Duration::from_secs(30)).await.success());
    let pool = scenario.pool().await;
    assert_eq!(count_payments(&pool).await, 0, "nothing was committed");

    recover(&scenario).await;

    assert_eq!(count_payments(&pool).await, 1);
    let events = scenario.published_events().await;
    assert_eq!(events.len(), 1, "exactly one outcome published");
    assert_eq!(events[0].order_id, order.order_id);
}

#[tokio::test]
async fn a_consumer_channel_closed_by_the_broker_is_rebuilt_and_the_service_keeps_working() {
    let scenario = Scenario::new().await;
    let port = test_support::free_port();
    // On the first delivery the consumer acks a tag the broker never sent: the
    // broker closes the channel (PRECONDITION_FAILED) while the connection stays
    // up, and the delivery in hand can no longer be acked there.
    let mut service = scenario.start(port, &[fail_point("consumer-unknown-ack")]);
    scenario
        .publish(&test_support::fixtures::order_created("test@example.com"))
        .await;

    eventually(Duration::from_secs(30), "the channel rebuilt", || async {
        service
            .log_text()
            .contains("rebuilding channel and consumer")
            .then_some(())
    })
    .await;
    scenario
        .publish(&test_support::fixtures::order_created("test@example.com"))
        .await;

    let pool = scenario.pool().await;
    eventually(
        Duration::from_secs(30),
        "both orders paid by the same process",
        || async {
            (count_payments(&pool).await == 2 && processed(port, "acked").await? >= 2).then_some(())
        },
    )
    .await;
    assert!(service.is_running(), "the service recovered in place");
    assert!(service.terminate(Duration::from_secs(30)).await.success());
    assert_eq!(
        test_support::queue_depth(&scenario.conn, "payment_service_queue.dlq").await,
        0
    );
}

#[tokio::test]
async fn a_service_waiting_for_an_unreachable_broker_answers_probes_and_says_why() {
    let scenario = Scenario::new().await;
    let port = test_support::free_port();
    let nowhere = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f",
        test_support::free_port()
    );
    let service = scenario.start(port, &[("RABBITMQ_URL", nowhere)]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let get = |path: &'static str| client.get(format!("http://127.0.0.1:{port}{path}")).send();

    // Alive and answering, but not ready, with the reason.
    let reason = eventually(
        Duration::from_secs(20),
        "/ready to name the unreachable broker",
        || async {
            assert_eq!(get("/health").await.ok()?.status(), 200);
            let ready = get("/ready").await.ok()?;
            assert_eq!(ready.status(), 503);
            let body: serde_json::Value = ready.json().await.ok()?;
            let reason = body["checks"]["startup"].as_str()?.to_owned();
            reason.contains("refused").then_some(reason)
        },
    )
    .await;
    assert!(reason.contains("RabbitMQ"), "{reason}");
    assert!(
        !reason.contains("guest:guest"),
        "the password is shown: {reason}"
    );

    // And said so in the log, at warn level, without the password.
    let warning = eventually(Duration::from_secs(20), "a warning in the log", || async {
        let log = service.log_text();
        log.lines()
            .find(|l| l.contains("RabbitMQ not reachable yet") && l.contains("WARN"))
            .map(str::to_owned)
    })
    .await;
    assert!(!service.log_text().contains("guest:guest"), "{warning}");
}
