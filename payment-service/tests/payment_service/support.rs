//! payment-service as real processes (the binary), for the crash and scaling
//! tests: one RabbitMQ vhost and one database per scenario, shared by every
//! process started in it.

use contract::{
    events::{Event, OrderCreated, PaymentProcessed},
    names::{EMAIL_QUEUE, PAYMENT_QUEUE},
};
use sqlx::PgPool;
use test_support::{self, ProcessScenario, ServiceProcess};

const QUEUES: [(&str, &str); 2] = [
    (PAYMENT_QUEUE, OrderCreated::ROUTING_KEY),
    (EMAIL_QUEUE, PaymentProcessed::ROUTING_KEY),
];

pub const BINARY: &str = env!("CARGO_BIN_EXE_payment-service");

/// payment-service's queues (its work queue, and email-service's, where the
/// outcomes land) in a fresh vhost, and a fresh database.
pub struct Scenario(ProcessScenario);

impl std::ops::Deref for Scenario {
    type Target = ProcessScenario;

    fn deref(&self) -> &ProcessScenario {
        &self.0
    }
}

impl Scenario {
    pub async fn new() -> Self {
        Self(ProcessScenario::new("payment", &QUEUES).await)
    }

    /// [`Scenario::new`] on a broker the test owns.
    pub async fn on_broker(amqp_url: String) -> Self {
        Self(ProcessScenario::on_broker(amqp_url, "payment", &QUEUES).await)
    }

    /// Starts the binary on `port` with an instant provider, plus `env`
    /// (which wins over that default).
    pub fn start(&self, port: u16, env: &[(&str, String)]) -> ServiceProcess {
        let mut all = vec![("PAYMENT_DELAY_MS", "0".to_owned())];
        all.extend(env.iter().cloned());
        self.0.start(BINARY, port, &all)
    }

    pub async fn publish(&self, order: &OrderCreated) {
        self.publish_burst(std::slice::from_ref(order)).await;
    }

    /// Takes every payment outcome published so far.
    pub async fn published_events(&self) -> Vec<PaymentProcessed> {
        self.take_all(EMAIL_QUEUE).await
    }
}

/// `FAIL_POINT=<point>` for [`Scenario::start`].
pub fn fail_point(point: &str) -> (&'static str, String) {
    ("FAIL_POINT", point.to_owned())
}

/// `messages_processed_total` of the work queue for `outcome`, from /metrics.
pub async fn processed(port: u16, outcome: &str) -> Option<u64> {
    let metrics = test_support::scrape(port).await?;
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
