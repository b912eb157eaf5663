//! A service's real binary as child processes sharing one fresh RabbitMQ
//! vhost and one fresh database: for the crash, replica and scaling tests,
//! and for the scaling benchmark.

use contract::events::Event;
use lapin::{Connection, ConnectionProperties, options::BasicPublishOptions};
use messaging::{AmqpSettings, topology::Topology};
use sqlx::PgPool;

use crate::{Metrics, ServiceProcess, TestVhost};

pub struct ProcessScenario {
    /// The broker's URL: a fresh vhost of the machine's broker, or a node of
    /// the test's own ([`ProcessScenario::on_broker`]).
    pub amqp_url: String,
    pub database_url: String,
    pub conn: Connection,
    pub topology: Topology,
    _vhost: Option<TestVhost>,
}

impl ProcessScenario {
    /// A fresh vhost with `queues` (work queue, bound routing key) declared as
    /// the services declare them, and a database for `service` that does not
    /// exist yet (the binary creates and migrates it).
    pub async fn new(service: &str, queues: &[(&str, &'static str)]) -> Self {
        let vhost = TestVhost::create();
        Self::declare(vhost.url.clone(), Some(vhost), service, queues).await
    }

    /// [`ProcessScenario::new`] on the broker at `amqp_url`, which the test
    /// owns (nothing else uses its names).
    pub async fn on_broker(
        amqp_url: String,
        service: &str,
        queues: &[(&str, &'static str)],
    ) -> Self {
        Self::declare(amqp_url, None, service, queues).await
    }

    async fn declare(
        amqp_url: String,
        vhost: Option<TestVhost>,
        service: &str,
        queues: &[(&str, &'static str)],
    ) -> Self {
        let conn = Connection::connect(&amqp_url, ConnectionProperties::default())
            .await
            .unwrap();
        let mut settings = AmqpSettings::local(String::new());
        settings.url = amqp_url.clone();
        let topology = Topology::new(&settings);
        for (queue, key) in queues {
            topology
                .declare_queue(&conn, &topology.queue(queue, key))
                .await
                .unwrap();
        }
        Self {
            database_url: crate::fresh_database(service).url,
            amqp_url,
            conn,
            topology,
            _vhost: vhost,
        }
    }

    /// Starts `binary` serving on `port`, connected to this scenario's
    /// database and vhost, with `env` added.
    pub fn start(&self, binary: &str, port: u16, env: &[(&str, String)]) -> ServiceProcess {
        let mut all = vec![
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("DATABASE_URL", self.database_url.clone()),
            ("RABBITMQ_URL", self.amqp_url.clone()),
        ];
        all.extend(env.iter().cloned());
        ServiceProcess::spawn(binary, &all)
    }

    /// Publishes every event on one channel, then waits for all confirms: a
    /// burst that arrives at once.
    pub async fn publish_burst<E: Event>(&self, events: &[E]) {
        let channel = self.conn.create_channel().await.unwrap();
        channel.confirm_select(Default::default()).await.unwrap();
        let exchange = self.topology.exchange();
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            let properties = messaging::headers::event_properties(
                &event.event_id().to_string(),
                E::EVENT_TYPE,
                &event.order_id().to_string(),
                "tests",
                0,
            );
            let body = serde_json::to_vec(event).unwrap();
            let confirm = channel
                .basic_publish(
                    exchange.as_str().into(),
                    E::ROUTING_KEY.into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await
                .unwrap();
            confirms.push(confirm);
        }
        for confirm in confirms {
            assert!(confirm.await.unwrap().is_ack(), "the broker took the event");
        }
        let _ = channel.close(200, "done".into()).await;
    }

    /// A pool on the scenario's database (once a binary has created it).
    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.database_url).await.unwrap()
    }

    /// Takes every message waiting in `queue`, as `E`.
    pub async fn take_all<E: Event>(&self, queue: &str) -> Vec<E> {
        let mut events = Vec::new();
        while let Some(message) = crate::get_message(&self.conn, queue).await {
            events.push(serde_json::from_slice(&message.delivery.data).unwrap());
        }
        events
    }
}

/// The `/metrics` of the process serving on `port`, if it answers.
pub async fn scrape(port: u16) -> Option<Metrics> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(Metrics::parse(&text))
}
