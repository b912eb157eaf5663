//! payment-service as real processes (the binary), for the crash and scaling
//! tests: one RabbitMQ vhost and one database per scenario, shared by every
//! process started in it.

// Each test file uses a different part of this module.

use std::time::Duration;

use contract::{
    events::{Event, OrderCreated, PaymentProcessed},
    names::{EMAIL_QUEUE, PAYMENT_QUEUE},
};
use lapin::{Connection, ConnectionProperties, options::BasicPublishOptions};
use messaging::{AmqpSettings, topology::Topology};
use sqlx::PgPool;
use test_support::{self, Metrics, ServiceProcess, TestVhost};

pub const BINARY: &str = env!("CARGO_BIN_EXE_payment-service");

pub struct Scenario {
    pub vhost: TestVhost,
    pub database_url: String,
    pub conn: Connection,
    pub topology: Topology,
}

impl Scenario {
    /// A fresh vhost with the work queue and the queue payment outcomes land
    /// in (email-service's), and a database that does not exist yet.
    pub async fn new() -> Self {
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
            database_url: test_support::fresh_database("payment").url,
            vhost,
            conn,
            topology,
        }
    }

    /// Starts the binary on `port` with an instant provider, plus `env`
    /// (which wins over those defaults).
    pub fn start(&self, port: u16, env: &[(&str, String)]) -> ServiceProcess {
        let mut all = vec![
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("DATABASE_URL", self.database_url.clone()),
            ("RABBITMQ_URL", self.vhost.url.clone()),
            ("PAYMENT_DELAY_MS", "0".to_owned()),
        ];
        all.extend(env.iter().cloned());
        ServiceProcess::spawn(BINARY, &all)
    }

    pub async fn publish(&self, order: &OrderCreated) {
        let body = serde_json::to_vec(order).unwrap();
        let id = order.event_id.to_string();
        test_support::publish_raw(
            &self.conn,
            &self.topology.exchange(),
            OrderCreated::ROUTING_KEY,
            &body,
            &id,
        )
        .await;
    }

    /// Publishes every order on one channel, then waits for all confirms: a
    /// burst that arrives at once.
    pub async fn publish_burst(&self, orders: &[OrderCreated]) {
        let channel = self.conn.create_channel().await.unwrap();
        channel.confirm_select(Default::default()).await.unwrap();
        let exchange = self.topology.exchange();
        let mut confirms = Vec::with_capacity(orders.len());
        for order in orders {
            let properties = messaging::headers::event_properties(
                &order.event_id.to_string(),
                OrderCreated::EVENT_TYPE,
                &order.order_id.to_string(),
                "tests",
                0,
            );
            let body = serde_json::to_vec(order).unwrap();
            let confirm = channel
                .basic_publish(
                    exchange.as_str().into(),
                    OrderCreated::ROUTING_KEY.into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await
                .unwrap();
            confirms.push(confirm);
        }
        for confirm in confirms {
            assert!(confirm.await.unwrap().is_ack(), "the broker took the order");
        }
        let _ = channel.close(200, "done".into()).await;
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.database_url).await.unwrap()
    }

    /// Takes every payment outcome published so far.
    pub async fn published_events(&self) -> Vec<PaymentProcessed> {
        let mut events = Vec::new();
        while let Some(message) = test_support::get_message(&self.conn, EMAIL_QUEUE).await {
            events.push(serde_json::from_slice(&message.delivery.data).unwrap());
        }
        events
    }
}

/// `FAIL_POINT=<point>` for [`Scenario::start`].
pub fn fail_point(point: &str) -> (&'static str, String) {
    ("FAIL_POINT", point.to_owned())
}

/// The `/metrics` of the process on `port`, if it answers.
pub async fn scrape(port: u16) -> Option<Metrics> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(Metrics::parse(&text))
}

/// `messages_processed_total` of the work queue for `outcome`, from /metrics.
pub async fn processed(port: u16, outcome: &str) -> Option<u64> {
    let metrics = scrape(port).await?;
    let value = metrics.sum(
        "messages_processed_total",
        &[("queue", PAYMENT_QUEUE), ("outcome", outcome)],
    );
    Some(value as u64)
}

pub async fn count_payments(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until `count` consumers are attached to the work queue.
pub async fn wait_for_consumers(scenario: &Scenario, count: u32) {
    test_support::eventually(Duration::from_secs(60), "consumers to attach", || async {
        (test_support::consumer_count(&scenario.conn, PAYMENT_QUEUE).await == count).then_some(())
    })
    .await;
}
