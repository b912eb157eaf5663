//! What the email-service tests share: the real service started in-process
//! against the real PostgreSQL and RabbitMQ (a fresh database and a unique
//! queue prefix per test), events to publish, and a scripted SMTP server for
//! the upstream's failures.

use runtime::service::Service as _;
use std::time::Duration;

use contract::{
    events::{Event, PaymentProcessed},
    names::EMAIL_QUEUE,
};
use email_service::{
    Application, Settings,
    config::{SmtpSettings, SmtpTls},
    db::{self, EmailLog},
};
use lapin::Connection;
use messaging::{AmqpSettings, topology::Topology};
use sqlx::PgPool;
use test_support::{self, BrokerCleanup, eventually};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A running email-service (one or more replicas) and a connection to publish
/// and inspect queues with.
pub struct TestApp {
    pub settings: Settings,
    pub pool: PgPool,
    pub conn: Connection,
    pub port: u16,
    replicas: Vec<Replica>,
    _cleanup: BrokerCleanup,
}

struct Replica {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Settings for a test: the SMTP server on 127.0.0.1:`smtp_port` without TLS,
/// a fresh database, a unique queue prefix and fast retries (200/400/800 ms).
pub fn settings(smtp_port: u16) -> Settings {
    let database = test_support::fresh_database("email");
    let amqp = test_support::fresh_amqp();
    Settings {
        bind_addr: "127.0.0.1:0".parse().unwrap(),
        database,
        amqp,
        smtp: smtp_settings(smtp_port),
        email_from: "noreply@ecommerce.com".parse().unwrap(),
    }
}

/// The SMTP server on 127.0.0.1:`port`, without TLS, 2 s timeout.
pub fn smtp_settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        credentials: None,
        timeout: Duration::from_secs(2),
    }
}

impl TestApp {
    pub async fn spawn(smtp_port: u16) -> Self {
        Self::spawn_with(settings(smtp_port)).await
    }

    pub async fn spawn_with(settings: Settings) -> Self {
        test_support::init_logs();
        let cleanup = BrokerCleanup::all(&settings.amqp);
        let (replica, pool, port) = start(&settings).await;
        let conn = test_support::test_connection().await;
        let app = Self {
            settings,
            pool,
            conn,
            port,
            replicas: vec![replica],
            _cleanup: cleanup,
        };
        app.wait_until_consumers(1).await;
        app
    }

    /// Starts one more replica on the same database and queues.
    pub async fn add_replica(&mut self) {
        let (replica, _, _) = start(&self.settings).await;
        self.replicas.push(replica);
        self.wait_until_consumers(self.replicas.len() as u32).await;
    }

    pub fn amqp(&self) -> &AmqpSettings {
        &self.settings.amqp
    }

    pub fn queue_name(&self) -> String {
        format!("{}{EMAIL_QUEUE}", self.amqp().prefix)
    }

    pub fn dlq_name(&self) -> String {
        format!("{}.dlq", self.queue_name())
    }

    async fn wait_until_consumers(&self, count: u32) {
        test_support::wait_for_consumers(&self.conn, &self.queue_name(), count).await;
    }

    pub async fn publish(&self, event: &PaymentProcessed) {
        let body = serde_json::to_vec(event).unwrap();
        self.publish_raw(&body, &event.event_id.to_string()).await;
    }

    pub async fn publish_raw(&self, body: &[u8], message_id: &str) {
        let exchange = Topology::new(self.amqp()).exchange();
        test_support::publish_raw(
            &self.conn,
            &exchange,
            PaymentProcessed::ROUTING_KEY,
            body,
            message_id,
        )
        .await;
    }

    pub async fn email_log(&self, order_id: Uuid) -> Option<EmailLog> {
        db::find_email(&self.pool, order_id).await.unwrap()
    }

    /// Waits until the order's email_log row satisfies `done`.
    pub async fn wait_for_log(
        &self,
        order_id: Uuid,
        what: &str,
        done: impl Fn(&EmailLog) -> bool,
    ) -> EmailLog {
        eventually(Duration::from_secs(15), what, || async {
            self.email_log(order_id).await.filter(|row| done(row))
        })
        .await
    }

    /// Waits until this test's consumers have acked (or parked) `count`
    /// deliveries in all: after that, every message published so far has been
    /// handled and any email it caused has been sent.
    pub async fn wait_until_processed(&self, outcome: &str, count: u64) {
        let what = format!("{count} deliveries with outcome {outcome}");
        eventually(Duration::from_secs(15), &what, || async {
            (self.processed(outcome) >= count).then_some(())
        })
        .await;
    }

    /// `messages_processed_total` of this test's queue (its name is unique to
    /// the test, so other tests in the process do not count).
    pub fn processed(&self, outcome: &str) -> u64 {
        let queue = format!("queue=\"{}\"", self.queue_name());
        let outcome = format!("outcome=\"{outcome}\"");
        runtime::metrics::render()
            .lines()
            .filter(|l| {
                l.starts_with("messages_processed_total{")
                    && l.contains(&queue)
                    && l.contains(&outcome)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    /// Parked messages: (message_id, park reason, retries before parking).
    pub async fn parked(&self, count: usize) -> Vec<(String, String, u32)> {
        test_support::take_parked(&self.conn, &self.dlq_name(), count, Duration::from_secs(15))
            .await
    }

    pub async fn dlq_depth(&self) -> u32 {
        test_support::queue_depth(&self.conn, &self.dlq_name()).await
    }

    pub async fn stop(self) {
        for replica in self.replicas {
            replica.shutdown.cancel();
            replica
                .task
                .await
                .unwrap()
                .expect("email-service stops cleanly");
        }
    }
}

async fn start(settings: &Settings) -> (Replica, PgPool, u16) {
    let app = Application::build(settings.clone())
        .await
        .expect("email-service builds");
    let pool = app.foundation().pool.clone();
    let port = app.foundation().port();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    (Replica { shutdown, task }, pool, port)
}

/// A header of a received email; mailcrab keeps raw values (leading space,
/// trailing CRLF), so they are trimmed.
pub fn header<'a>(email: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    email["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
        .map(str::trim)
}
