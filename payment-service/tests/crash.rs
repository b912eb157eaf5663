//! payment-service killed at the worst moments (reliability matrix M1, M2),
//! and its consumer channel closed by the broker (M10): the real binary,
//! misbehaving at a fail point.

use std::time::Duration;

use common::{
    events::{Event, OrderCreated, PaymentProcessed},
    messaging::{
        AmqpSettings,
        topology::{EMAIL_QUEUE, PAYMENT_QUEUE, Topology},
    },
    testing::{self, ServiceProcess, TestVhost, eventually},
};
use lapin::{Connection, ConnectionProperties};
use sqlx::PgPool;

const BINARY: &str = env!("CARGO_BIN_EXE_payment-service");

struct Scenario {
    vhost: TestVhost,
    database_url: String,
    conn: Connection,
    topology: Topology,
}

impl Scenario {
    async fn new() -> Self {
        let vhost = TestVhost::create();
        let conn = Connection::connect(&vhost.url, ConnectionProperties::default())
            .await
            .unwrap();
        let mut settings = AmqpSettings::local(String::new());
        settings.url = vhost.url.clone();
        let topology = Topology::new(&settings);
        let channel = conn.create_channel().await.unwrap();
        for (queue, key) in [
            (PAYMENT_QUEUE, OrderCreated::ROUTING_KEY),
            (EMAIL_QUEUE, PaymentProcessed::ROUTING_KEY),
        ] {
            topology
                .declare_queue(&channel, &topology.queue(queue, key))
                .await
                .unwrap();
        }
        Self {
            database_url: testing::fresh_database("payment").url,
            vhost,
            conn,
            topology,
        }
    }

    fn start(&self, port: u16, fail_point: Option<&str>) -> ServiceProcess {
        let mut env = vec![
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("DATABASE_URL", self.database_url.clone()),
            ("RABBITMQ_URL", self.vhost.url.clone()),
            ("PAYMENT_DELAY_MS", "0".to_owned()),
        ];
        if let Some(point) = fail_point {
            env.push(("FAIL_POINT", point.to_owned()));
        }
        ServiceProcess::spawn(BINARY, &env)
    }

    async fn publish(&self, order: &OrderCreated) {
        let body = serde_json::to_vec(order).unwrap();
        let id = order.event_id.to_string();
        testing::publish_raw(
            &self.conn,
            &self.topology.exchange(),
            OrderCreated::ROUTING_KEY,
            &body,
            &id,
        )
        .await;
    }

    async fn pool(&self) -> PgPool {
        PgPool::connect(&self.database_url).await.unwrap()
    }

    async fn published_events(&self) -> Vec<PaymentProcessed> {
        let mut events = Vec::new();
        while let Some(message) = testing::get_message(&self.conn, EMAIL_QUEUE).await {
            events.push(serde_json::from_slice(&message.delivery.data).unwrap());
        }
        events
    }
}

/// `messages_processed_total` for the payment queue and `outcome`, from /metrics.
async fn processed(port: u16, outcome: &str) -> Option<u64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let label = format!("outcome=\"{outcome}\"");
    let value = text
        .lines()
        .filter(|l| l.starts_with("messages_processed_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    Some(value)
}

async fn count_payments(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Restarts the service without a fail point until the redelivered message is
/// acked, then stops it with SIGTERM (which must succeed).
async fn recover(scenario: &Scenario) {
    let port = testing::free_port();
    let mut service = scenario.start(port, None);
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
    let order = testing::order_created("test@example.com");
    scenario.publish(&order).await;

    let mut crashing = scenario.start(testing::free_port(), Some("consumer-after-handle"));
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
        testing::queue_depth(&scenario.conn, "payment_service_queue.dlq").await,
        0
    );
}

#[tokio::test]
async fn a_payment_service_killed_before_handling_a_message_processes_it_after_restart() {
    let scenario = Scenario::new().await;
    let order = testing::order_created("test@example.com");
    scenario.publish(&order).await;

    let mut crashing = scenario.start(testing::free_port(), Some("consumer-before-handle"));
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
    let port = testing::free_port();
    // On the first delivery the consumer acks a tag the broker never sent: the
    // broker closes the channel (PRECONDITION_FAILED) while the connection stays
    // up, and the delivery in hand can no longer be acked there.
    let mut service = scenario.start(port, Some("consumer-unknown-ack"));
    scenario
        .publish(&testing::order_created("test@example.com"))
        .await;

    eventually(Duration::from_secs(30), "the channel rebuilt", || async {
        service
            .log_text()
            .contains("rebuilding channel and consumer")
            .then_some(())
    })
    .await;
    scenario
        .publish(&testing::order_created("test@example.com"))
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
        testing::queue_depth(&scenario.conn, "payment_service_queue.dlq").await,
        0
    );
}
