//! [`Broker`]: a service's one RabbitMQ connection and the parts built on it
//! (publisher, outbox relay, consumers, the connection's supervisor), so
//! every service wires its messaging the same way in a few lines.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::FutureExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{
    AmqpSettings, address,
    connection::{self, Blocked, Link, Supervisor},
    consumer::{Consumer, Handler},
    outbox::Relay,
    publisher::{Publisher, Unconfirmed},
    topology::Topology,
};
use contract::events::Event;

use runtime::{
    health::{Flag, FlagCheck, Readiness, ReadinessCheck, StartupProgress},
    service::Tasks,
};

pub struct Broker {
    /// The connection as it is now (replaced after each failure).
    pub link: Link,
    pub settings: AmqpSettings,
    pub topology: Topology,
    /// Up while the connection is established (kept by the supervisor).
    pub connected: Flag,
    /// Set while the broker blocks publishing (kept by the supervisor).
    pub blocked: Blocked,
    /// Set while the broker confirms none of this service's publishes.
    pub unconfirmed: Unconfirmed,
    /// Taken by [`Broker::run`], which runs it beside the service's tasks.
    supervisor: Mutex<Option<Supervisor>>,
    service: &'static str,
}

impl Broker {
    /// Connects as `service` (the connection name shown in the management
    /// UI), waiting for a broker that is not up yet; `progress` says why
    /// meanwhile.
    pub async fn connect(
        settings: AmqpSettings,
        service: &'static str,
        progress: &StartupProgress,
    ) -> anyhow::Result<Self> {
        let name = format!("{service}@{}", hostname());
        let (connected, blocked) = (Flag::default(), Blocked::default());
        let (link, supervisor) = connection::connect(
            &settings,
            &name,
            connected.clone(),
            blocked.clone(),
            progress,
        )
        .await?;
        Ok(Self {
            link,
            topology: Topology::new(&settings),
            settings,
            connected,
            blocked,
            unconfirmed: Unconfirmed::default(),
            supervisor: Mutex::new(Some(supervisor)),
            service,
        })
    }

    /// A confirm-mode publisher whose channels declare the exchanges first.
    pub fn publisher(&self) -> Publisher {
        let topology = self.topology.clone();
        Publisher::new(
            self.link.clone(),
            self.settings.confirm_timeout,
            move |channel| {
                let topology = topology.clone();
                async move { topology.declare_exchanges(&channel).await }.boxed()
            },
        )
        .reporting_to(self.unconfirmed.clone())
    }

    /// An outbox relay publishing this service's events to the exchange.
    pub fn relay(&self, pool: PgPool) -> Relay {
        Relay::new(
            pool,
            self.publisher(),
            self.topology.exchange(),
            self.service,
        )
    }

    /// A supervised consumer of work queue `base` (a `topology::*_QUEUE`), bound
    /// to `E`'s routing key; its [`Consumer::attachment`] is set while it
    /// consumes.
    pub fn consumer<E: Event, H: Handler<E>>(&self, base: &str, handler: Arc<H>) -> Consumer<E, H> {
        let queue = self.topology.queue(base, E::ROUTING_KEY);
        Consumer::new(
            self.link.clone(),
            self.settings.clone(),
            queue,
            handler,
            self.service,
            Flag::default(),
            self.publisher(),
        )
    }

    /// `/ready` checks for the connection and, named `consumer:<queue>`, for
    /// each consumer's attachment ([`Consumer::attachment`]).
    pub fn readiness(&self, readiness: Readiness, consumers: &[(String, Flag)]) -> Readiness {
        let mut readiness = readiness.with(
            "rabbitmq",
            BrokerCheck {
                connected: self.connected.clone(),
                blocked: self.blocked.clone(),
                unconfirmed: self.unconfirmed.clone(),
                link: self.link.clone(),
                nodes: address::parse(&self.settings.url)
                    .map(|list| list.iter().map(|a| a.node().to_owned()).collect())
                    .unwrap_or_default(),
            },
        );
        for (queue, flag) in consumers {
            readiness = readiness.with(
                format!("consumer:{queue}"),
                FlagCheck {
                    flag: flag.clone(),
                    when_down: "consumer not attached to its queue",
                },
            );
        }
        readiness
    }

    /// Runs a service's `tasks` until `shutdown` with the connection's
    /// supervisor beside them, then closes the connection.
    pub async fn run(&self, mut tasks: Tasks, shutdown: CancellationToken) -> anyhow::Result<()> {
        let supervisor = self.supervisor.lock().map(|mut s| s.take()).ok().flatten();
        if let Some(supervisor) = supervisor {
            tasks.background("broker-connection", move |stop| {
                supervisor.run(stop).boxed()
            });
        }
        let result = tasks.run(shutdown).await;
        self.close().await;
        result
    }

    /// Closes the connection, if it is up, after every task has stopped.
    pub async fn close(&self) {
        if let Some(conn) = self.link.current() {
            let close = conn.close(200, "service stopping".into());
            if tokio::time::timeout(Duration::from_secs(5), close)
                .await
                .is_err()
            {
                tracing::warn!("closing the RabbitMQ connection timed out");
            }
        }
    }
}

/// How long publishes must have failed before `/ready` says so: longer than
/// a node's loss takes to heal.
const UNCONFIRMED_NOTE_AFTER: Duration = Duration::from_secs(5);

/// `/ready`'s `rabbitmq` check: not ready while the connection is down. A
/// broker that blocks publishing (a memory or disk alarm) leaves the service
/// ready, since it keeps taking work in (events wait in the outbox; a retry
/// or a parking waits with its unacked delivery), and is said in place of
/// "ok". Its details name the node the connection is on and the nodes
/// listed.
struct BrokerCheck {
    connected: Flag,
    blocked: Blocked,
    unconfirmed: Unconfirmed,
    link: Link,
    nodes: Vec<String>,
}

#[async_trait::async_trait]
impl ReadinessCheck for BrokerCheck {
    async fn check(&self) -> Result<(), String> {
        if self.connected.get() {
            Ok(())
        } else {
            Err(format!(
                "RabbitMQ connection down; reconnecting to one of {}",
                self.nodes.join(", ")
            ))
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({"node": self.link.node(), "nodes": self.nodes}))
    }

    fn note(&self) -> Option<String> {
        if let Some(reason) = self.blocked.get() {
            return Some(format!(
                "connected, but RabbitMQ blocks publishing ({reason}); what this service publishes waits (events in the outbox, retries with their delivery) until the broker takes it again"
            ));
        }
        let (failing, reason) = self.unconfirmed.get()?;
        (failing >= UNCONFIRMED_NOTE_AFTER).then(|| {
            format!(
                "connected, but RabbitMQ has confirmed no publish for {} s ({reason}): are a majority of its nodes up? What this service publishes waits (events in the outbox) until the broker takes it again",
                failing.as_secs()
            )
        })
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| std::process::id().to_string())
}
