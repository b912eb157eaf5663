//! # test-support — helpers for the integration tests of every crate (dev-only)
//!
//! Tests run against the real PostgreSQL and RabbitMQ of the machine and a
//! real SMTP server in-process, isolated from each other: a fresh database per
//! test, a unique prefix for every exchange and queue, and bounded polling
//! instead of sleeps.

mod broker_node;
pub mod fixtures;
mod logs;
mod metrics;
mod process;
mod provision;
mod proxy;
mod scenario;

pub use broker_node::{BrokerCluster, BrokerNode};
pub use logs::{LogCapture, init_logs};
pub use metrics::{Metrics, QueueCounts, Sample};
pub use process::{ServiceProcess, TestVhost, rabbitmqctl, rabbitmqctl_with};
pub use provision::{ProvisionedBroker, ServiceDatabase, definitions, deploy_dir};
pub use proxy::FaultProxy;
pub use scenario::{ProcessScenario, scrape};

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use lapin::{Connection, ConnectionProperties, options::BasicPublishOptions};
use serde_json::Value;
use tokio::sync::broadcast;
use uuid::Uuid;

use messaging::{
    AmqpSettings,
    db::DatabaseSettings,
    topology::{QueueSpec, Topology},
};

/// Administrative URL of the test PostgreSQL (`TEST_DATABASE_URL`, default
/// local trust auth).
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `TEST_RABBITMQ_URL`, default the local broker.
pub fn amqp_url() -> String {
    std::env::var("TEST_RABBITMQ_URL").unwrap_or_else(|_| AmqpSettings::DEFAULT_URL.into())
}

/// `host:port` of a URL such as `postgres://user@127.0.0.1:5432/db`.
pub fn socket_addr_of(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = host_port.replace("localhost", "127.0.0.1");
    std::net::ToSocketAddrs::to_socket_addrs(&host_port)
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve {host_port}"))
}

/// Settings for a database that does not exist yet; the service creates and
/// migrates it at start, as in production.
pub fn fresh_database(service: &str) -> DatabaseSettings {
    let admin = admin_database_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    let name = format!(
        "test_{}_{}",
        service.replace('-', "_"),
        Uuid::new_v4().simple()
    );
    DatabaseSettings {
        url: format!("{base}/{name}"),
        // Small: several services of several concurrent tests share one server.
        max_connections: 5,
        acquire_timeout: Duration::from_secs(3),
    }
}

/// AMQP settings with a unique name prefix and fast retries.
pub fn fresh_amqp() -> AmqpSettings {
    let mut settings =
        AmqpSettings::local(format!("t{}_", &Uuid::new_v4().simple().to_string()[..12]));
    settings.url = amqp_url();
    settings.retry_delays = vec![
        Duration::from_millis(200),
        Duration::from_millis(400),
        Duration::from_millis(800),
    ];
    settings.drain_timeout = Duration::from_secs(10);
    settings
}

/// Deletes every queue and exchange of a test's prefix when dropped (on
/// success and on panic alike), so test runs do not pile up quorum queues.
pub struct BrokerCleanup {
    pub settings: AmqpSettings,
    pub queues: Vec<QueueSpec>,
}

impl BrokerCleanup {
    /// Every work queue of the system under the settings' prefix.
    pub fn all(settings: &AmqpSettings) -> Self {
        let topology = Topology::new(settings);
        Self {
            settings: settings.clone(),
            queues: contract::names::WORK_QUEUES
                .iter()
                .map(|&queue| {
                    let routing_key = contract::names::routing_key_of(queue)
                        .expect("every work queue has its event");
                    topology.queue(queue, routing_key)
                })
                .collect(),
        }
    }
}

impl Drop for BrokerCleanup {
    fn drop(&mut self) {
        let settings = self.settings.clone();
        let queues = std::mem::take(&mut self.queues);
        // Drop cannot be async: a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let conn = Connection::connect(&settings.url, ConnectionProperties::default())
                    .await
                    .ok()?;
                let topology = Topology::new(&settings);
                for (i, queue) in queues.iter().enumerate() {
                    let channel = conn.create_channel().await.ok()?;
                    let _ =
                        delete_topology(&channel, &topology, queue, i + 1 == queues.len()).await;
                }
                let _ = conn.close(200, "test cleanup".into()).await;
                Some(())
            })
        })
        .join();
    }
}

/// A direct connection for tests that publish or inspect queues themselves.
pub async fn test_connection() -> Connection {
    Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("RabbitMQ reachable for tests")
}

/// Publishes raw bytes to `exchange` (unconfirmed is not enough: confirmed).
pub async fn publish_raw(
    conn: &Connection,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    message_id: &str,
) {
    let properties = messaging::headers::event_properties(message_id, "test", "test", "tests", 0);
    publish_with(conn, exchange, routing_key, body, properties).await;
}

/// [`publish_raw`] with the given properties (headers such as `traceparent`).
pub async fn publish_with(
    conn: &Connection,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: lapin::BasicProperties,
) {
    let channel = conn.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let _ = channel.close(200, "done".into()).await;
}

/// Number of ready messages in `queue`.
pub async fn queue_depth(conn: &Connection, queue: &str) -> u32 {
    let channel = conn.create_channel().await.unwrap();
    let q = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let _ = channel.close(200, "done".into()).await;
    q.message_count()
}

/// Number of consumers attached to `queue` (0 if it does not exist).
pub async fn consumer_count(conn: &Connection, queue: &str) -> u32 {
    let Ok(channel) = conn.create_channel().await else {
        return 0;
    };
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let declared = channel
        .queue_declare(queue.into(), options, Default::default())
        .await;
    let _ = channel.close(200, "done".into()).await;
    declared.map(|q| q.consumer_count()).unwrap_or(0)
}

/// Waits (at most 30 s) until at least `count` consumers are attached to `queue`.
pub async fn wait_for_consumers(conn: &Connection, queue: &str, count: u32) {
    eventually(Duration::from_secs(30), "consumers to attach", || async {
        (consumer_count(conn, queue).await >= count).then_some(())
    })
    .await;
}

/// `SELECT count(*)` of `table`, a name the test writes.
pub async fn count_rows(pool: &sqlx::PgPool, table: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
}

/// Outbox rows the relay has not published yet.
pub async fn pending_outbox_rows(pool: &sqlx::PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
}

/// Deletes `queue`, its retry tiers, its dead-letter queue and (when
/// `with_exchanges`) the topology's exchanges.
async fn delete_topology(
    channel: &lapin::Channel,
    topology: &Topology,
    queue: &QueueSpec,
    with_exchanges: bool,
) -> lapin::Result<()> {
    let names = std::iter::once(&queue.name)
        .chain(std::iter::once(&queue.dead_letter_queue))
        .chain(queue.retry_queues.iter().map(|(n, _)| n));
    for name in names {
        channel
            .queue_delete(name.as_str().into(), Default::default())
            .await?;
    }
    if with_exchanges {
        for exchange in [topology.exchange(), topology.dead_letter_exchange()] {
            channel
                .exchange_delete(exchange.into(), Default::default())
                .await?;
        }
    }
    Ok(())
}

/// Takes one message off `queue` (acked), if any.
pub async fn get_message(
    conn: &Connection,
    queue: &str,
) -> Option<lapin::message::BasicGetMessage> {
    let channel = conn.create_channel().await.unwrap();
    let message = channel
        .basic_get(
            queue.into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap();
    let _ = channel.close(200, "done".into()).await;
    message
}

/// Takes `count` parked messages off dead-letter queue `dlq` (or panics
/// after `timeout`): each as (message_id, park reason, retries before
/// parking), sorted.
pub async fn take_parked(
    conn: &Connection,
    dlq: &str,
    count: usize,
    timeout: Duration,
) -> Vec<(String, String, u32)> {
    use messaging::headers;
    let mut parked: Vec<_> = take_messages(conn, dlq, count, timeout)
        .await
        .iter()
        .map(|message| {
            let props = &message.delivery.properties;
            let id = props
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default();
            let reason = headers::get_str(props, headers::PARK_REASON).unwrap_or_default();
            let retries = headers::get_u32(props, headers::RETRY_COUNT).unwrap_or(99);
            (id, reason, retries)
        })
        .collect();
    parked.sort();
    parked
}

/// Takes messages off `queue` until at least `count` arrived (or panics after
/// `timeout`); returns all taken.
pub async fn take_messages(
    conn: &Connection,
    queue: &str,
    count: usize,
    timeout: Duration,
) -> Vec<lapin::message::BasicGetMessage> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut taken = Vec::new();
    loop {
        while let Some(message) = get_message(conn, queue).await {
            taken.push(message);
        }
        if taken.len() >= count {
            return taken;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "expected {count} messages on {queue} within {timeout:?}, got {}",
                taken.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real SMTP server in-process (mailcrab), collecting what it receives.
pub struct SmtpSink {
    pub port: u16,
    token: tokio_util::sync::CancellationToken,
    /// Filled as mail arrives, by a task of its own: mailcrab's channel keeps
    /// only the last 128 messages for a reader that falls behind.
    arrived: Arc<Mutex<Arrived>>,
    received: Vec<Value>,
}

#[derive(Default)]
struct Arrived {
    messages: Vec<Value>,
    lost: u64,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// A sink on `port`, e.g. one a service was pointed at while no SMTP
    /// server listened there (an outage that ends).
    pub async fn start_on(port: u16) -> Self {
        let handle = mailcrab::development_mail_server([127, 0, 0, 1], port).await;
        let arrived = Arc::new(Mutex::new(Arrived::default()));
        tokio::spawn(collect(handle.rx, arrived.clone()));
        // The server binds in a spawned task: wait until it accepts.
        eventually(
            Duration::from_secs(5),
            "SMTP sink to listen",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        Self {
            port,
            token: handle.token,
            arrived,
            received: Vec::new(),
        }
    }

    /// Messages received so far, as JSON (mailcrab's fields are private but
    /// serialisable: `subject`, `to`, `text`, `html`, `headers`, …).
    pub fn messages(&mut self) -> &[Value] {
        let arrived = self.arrived.lock().unwrap();
        assert_eq!(arrived.lost, 0, "the SMTP sink fell behind and lost mail");
        let new = &arrived.messages[self.received.len()..];
        self.received.extend_from_slice(new);
        drop(arrived);
        &self.received
    }

    /// Waits until at least `count` messages arrived, then returns all of them.
    pub async fn wait_for(&mut self, count: usize, timeout: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.messages().len() < count {
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "expected {count} emails within {timeout:?}, got {}",
                    self.received.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.received.clone()
    }

    /// Stops the server: the port refuses connections (an SMTP outage).
    pub fn stop(&self) {
        self.token.cancel();
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn collect(mut rx: broadcast::Receiver<mailcrab::MailMessage>, into: Arc<Mutex<Arrived>>) {
    loop {
        match rx.recv().await {
            Ok(message) => {
                let message = serde_json::to_value(&message).expect("mail messages serialise");
                into.lock().unwrap().messages.push(message);
            }
            Err(broadcast::error::RecvError::Lagged(lost)) => into.lock().unwrap().lost += lost,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
