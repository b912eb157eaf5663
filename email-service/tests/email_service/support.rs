//! What the email-service tests share: the real service started in-process
//! against the real PostgreSQL and RabbitMQ (a fresh database and a unique
//! queue prefix per test), events to publish, and a scripted SMTP server for
//! the upstream's failures.
//!
//! The service consumes three queues; the helpers without a queue argument
//! are about `email_service_queue` (payment results), those ending in `_on`
//! take the queue's base name.

use runtime::service::Service as _;
use std::time::Duration;

use chrono::Utc;
use contract::{
    events::{
        CancelReason, Event, OrderCancelled, OrderCreatedItem, PaymentProcessed, RefundProcessed,
        SCHEMA_VERSION,
    },
    names::{EMAIL_CANCELLATION_QUEUE, EMAIL_QUEUE, EMAIL_REFUND_QUEUE},
};
use email_service::{
    Application, Settings,
    config::{SmtpSettings, SmtpTls},
    db::{self, EmailLog},
};
use lapin::Connection;
use messaging::{AmqpSettings, topology::Topology};
use rust_decimal::Decimal;
use sqlx::PgPool;
use test_support::{self, BrokerCleanup, eventually};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The `email_log.kind` of each email.
pub const CONFIRMATION: &str = "confirmation";
pub const CANCELLED: &str = "cancelled";
pub const REFUND: &str = "refund";

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
        reply_to: None,
        branding: email_service::templates::Branding::defaults("noreply@ecommerce.com"),
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

    /// This test's name of work queue `base`.
    pub fn queue_name_of(&self, base: &str) -> String {
        format!("{}{base}", self.amqp().prefix)
    }

    pub fn dlq_name(&self) -> String {
        self.dlq_name_of(EMAIL_QUEUE)
    }

    pub fn dlq_name_of(&self, base: &str) -> String {
        format!("{}.dlq", self.queue_name_of(base))
    }

    /// Waits until `count` consumers are attached to each of the service's queues.
    async fn wait_until_consumers(&self, count: u32) {
        for base in [EMAIL_QUEUE, EMAIL_CANCELLATION_QUEUE, EMAIL_REFUND_QUEUE] {
            test_support::wait_for_consumers(&self.conn, &self.queue_name_of(base), count).await;
        }
    }

    /// Publishes `event` under its routing key (so to its queue).
    pub async fn publish<E: Event>(&self, event: &E) {
        let body = serde_json::to_vec(event).unwrap();
        self.publish_raw_as(E::ROUTING_KEY, &body, &event.event_id().to_string())
            .await;
    }

    /// A raw body for `email_service_queue`.
    pub async fn publish_raw(&self, body: &[u8], message_id: &str) {
        self.publish_raw_as(PaymentProcessed::ROUTING_KEY, body, message_id)
            .await;
    }

    pub async fn publish_raw_as(&self, routing_key: &str, body: &[u8], message_id: &str) {
        let exchange = Topology::new(self.amqp()).exchange();
        test_support::publish_raw(&self.conn, &exchange, routing_key, body, message_id).await;
    }

    /// The order's email of `kind`, as recorded.
    pub async fn email_log(&self, order_id: Uuid, kind: &str) -> Option<EmailLog> {
        db::find_email(&self.pool, order_id, kind).await.unwrap()
    }

    /// Waits until the order's email_log row of `kind` satisfies `done`.
    pub async fn wait_for_log(
        &self,
        order_id: Uuid,
        kind: &str,
        what: &str,
        done: impl Fn(&EmailLog) -> bool,
    ) -> EmailLog {
        eventually(Duration::from_secs(15), what, || async {
            self.email_log(order_id, kind).await.filter(|row| done(row))
        })
        .await
    }

    /// Waits until this test's consumers have acked (or parked) `count`
    /// deliveries in all: after that, every message published so far has been
    /// handled and any email it caused has been sent.
    pub async fn wait_until_processed(&self, outcome: &str, count: u64) {
        self.wait_until_processed_on(EMAIL_QUEUE, outcome, count)
            .await;
    }

    /// [`TestApp::wait_until_processed`] on work queue `base`.
    pub async fn wait_until_processed_on(&self, base: &str, outcome: &str, count: u64) {
        let what = format!("{count} deliveries on {base} with outcome {outcome}");
        eventually(Duration::from_secs(15), &what, || async {
            (self.processed_on(base, outcome) >= count).then_some(())
        })
        .await;
    }

    /// `messages_processed_total` of this test's queue (its name is unique to
    /// the test, so other tests in the process do not count).
    pub fn processed(&self, outcome: &str) -> u64 {
        self.processed_on(EMAIL_QUEUE, outcome)
    }

    /// [`TestApp::processed`] of work queue `base`.
    pub fn processed_on(&self, base: &str, outcome: &str) -> u64 {
        let queue = format!("queue=\"{}\"", self.queue_name_of(base));
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
        self.parked_on(EMAIL_QUEUE, count).await
    }

    /// [`TestApp::parked`] from work queue `base`'s dead-letter queue.
    pub async fn parked_on(&self, base: &str, count: usize) -> Vec<(String, String, u32)> {
        test_support::take_parked(
            &self.conn,
            &self.dlq_name_of(base),
            count,
            Duration::from_secs(15),
        )
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

/// An `order.order.cancelled` for a fresh order of one Gaming Laptop and two
/// Wireless Mice (1359.97), as [`test_support::fixtures::payment_completed`].
pub fn order_cancelled(email: &str, reason: CancelReason) -> OrderCancelled {
    let payment = test_support::fixtures::payment_completed(email);
    OrderCancelled {
        event_type: OrderCancelled::EVENT_TYPE.into(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: SCHEMA_VERSION,
        order_id: payment.order_id,
        user_id: payment.user_id,
        user_email: payment.user_email,
        total_amount: payment.amount,
        currency: payment.currency,
        items: payment.items,
        reason,
    }
}

/// The `payment.refund.processed` that gives back the charge of `payment`
/// (a completed one), with a fresh `RFD-` id.
pub fn refund_of(payment: &PaymentProcessed) -> RefundProcessed {
    RefundProcessed {
        event_type: RefundProcessed::EVENT_TYPE.into(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: SCHEMA_VERSION,
        refund_id: Uuid::new_v4(),
        payment_id: payment.payment_id,
        order_id: payment.order_id,
        user_id: payment.user_id,
        user_email: payment.user_email.clone(),
        amount: payment.amount,
        currency: payment.currency.clone(),
        transaction_id: payment.transaction_id.clone().expect("a completed payment"),
        refund_transaction_id: format!(
            "RFD-{}",
            &Uuid::new_v4().simple().to_string().to_uppercase()[..12]
        ),
        items: payment.items.clone(),
    }
}

/// A refund for a fresh order, from `email`.
pub fn refund_processed(email: &str) -> RefundProcessed {
    refund_of(&test_support::fixtures::payment_completed(email))
}

/// An order line whose name tries to inject HTML.
pub fn hostile_item() -> OrderCreatedItem {
    OrderCreatedItem {
        product_id: 9,
        name: "<script>alert('x')</script> & \"Co\"".into(),
        quantity: 1,
        price: Decimal::new(1_000, 2),
    }
}

/// [`hostile_item`]'s name as it must appear in the HTML part.
pub const HOSTILE_ESCAPED: &str =
    "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;Co&#34;";
