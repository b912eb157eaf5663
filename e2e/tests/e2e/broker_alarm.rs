//! A RabbitMQ memory alarm during checkouts (fault M8 in
//! `docs/guarantees.md`): the broker blocks every publisher. Checkouts are
//! still accepted (their events wait in the outbox), `/ready` stays ready
//! and says why, and everything is delivered once after the alarm clears.
//! The alarm is the whole broker's, so this is ignored by default and run
//! alone, after the rest of the suite: `scripts/test.sh` runs it with
//! `--run-ignored only` on one thread.

use std::time::Duration;

use e2e::Pipeline;
use test_support::{eventually, rabbitmqctl};

const ORDERS: usize = 40;

/// Sets the broker's memory high watermark so low that the alarm goes off,
/// and back to RabbitMQ's default (0.4 of the memory) when dropped, on
/// success and on panic alike.
struct MemoryAlarm;

impl MemoryAlarm {
    fn raise() -> Self {
        rabbitmqctl(&["set_vm_memory_high_watermark", "absolute", "1"]);
        Self
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        rabbitmqctl(&["set_vm_memory_high_watermark", "0.4"]);
    }
}

/// What order-service's `/ready` says of RabbitMQ, and its status.
async fn broker_readiness(pipeline: &Pipeline) -> (u16, String) {
    let response = pipeline
        .http
        .get(format!("{}/ready", pipeline.order_service))
        .send()
        .await
        .expect("order-service answers");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let said = body["checks"]["rabbitmq"].as_str().unwrap_or("").to_owned();
    (status, said)
}

#[tokio::test]
#[ignore = "sets a memory alarm on the shared RabbitMQ; run alone (scripts/test.sh does)"]
async fn checkouts_are_accepted_during_a_memory_alarm_and_delivered_after_it() {
    let mut pipeline = Pipeline::start().await;
    let alarm = MemoryAlarm::raise();
    let burst = pipeline.start_burst(ORDERS, 4, Duration::from_millis(10));
    let result = burst.finish().await;
    assert!(
        result.statuses.iter().all(|s| *s == 201),
        "every checkout accepted during the alarm: {:?}",
        result.statuses
    );
    // The broker tells a connection it is blocked when it first publishes
    // under the alarm: the relay's first publish of these events.
    let (status, said) = eventually(
        Duration::from_secs(30),
        "order-service to hear that the broker blocks it",
        || async {
            let (status, said) = broker_readiness(&pipeline).await;
            said.contains("blocks publishing").then_some((status, said))
        },
    )
    .await;
    assert_eq!(
        status, 200,
        "still ready: it keeps taking checkouts ({said})"
    );
    let waiting = test_support::pending_outbox_rows(&pipeline.order_db)
        .await
        .unwrap();
    assert!(
        waiting > 0,
        "the events wait in the outbox during the alarm"
    );

    drop(alarm);
    eventually(Duration::from_secs(30), "the block lifted", || async {
        (broker_readiness(&pipeline).await.1 == "ok").then_some(())
    })
    .await;
    pipeline.audit(&result.accepted).await;
    pipeline.stop().await;
}
