//! [`Broker`]: a service's one RabbitMQ connection and the parts built on it
//! (publisher, outbox relay, consumers, watchdog), so every service wires its
//! messaging the same way in a few lines.

use std::{sync::Arc, time::Duration};

use futures::{FutureExt, future::BoxFuture};
use lapin::Connection;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{
    AmqpSettings, connection,
    consumer::{Consumer, Handler},
    outbox::Relay,
    publisher::Publisher,
    topology::Topology,
};
use contract::events::Event;

use runtime::{
    health::{Flag, FlagCheck, Readiness, StartupProgress},
    service::Tasks,
};

pub struct Broker {
    pub conn: Arc<Connection>,
    pub settings: AmqpSettings,
    pub topology: Topology,
    /// Up while the connection is established (kept by [`Broker::watch`]).
    pub connected: Flag,
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
        let conn = connection::connect(&settings, &name, progress).await?;
        let connected = Flag::default();
        connected.set(true);
        Ok(Self {
            conn: Arc::new(conn),
            topology: Topology::new(&settings),
            settings,
            connected,
            service,
        })
    }

    /// A confirm-mode publisher whose channels declare the exchanges first.
    pub fn publisher(&self) -> Publisher {
        let topology = self.topology.clone();
        Publisher::new(
            self.conn.clone(),
            self.settings.confirm_timeout,
            move |channel| {
                let topology = topology.clone();
                async move { topology.declare_exchanges(&channel).await }.boxed()
            },
        )
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
    /// to `E`'s routing key; `attached` is set while it consumes.
    pub fn consumer<E: Event, H: Handler<E>>(
        &self,
        base: &str,
        handler: Arc<H>,
        attached: Flag,
    ) -> Consumer<E, H> {
        let queue = self.topology.queue(base, E::ROUTING_KEY);
        Consumer::new(
            self.conn.clone(),
            self.settings.clone(),
            queue,
            handler,
            self.service,
            attached,
            self.publisher(),
        )
    }

    /// `/ready` checks for the connection and for each consumer's flag.
    pub fn readiness(&self, readiness: Readiness, consumers: &[Flag]) -> Readiness {
        let mut readiness = readiness.with(
            "rabbitmq",
            FlagCheck {
                flag: self.connected.clone(),
                when_down: "RabbitMQ connection down; reconnecting",
            },
        );
        for flag in consumers {
            readiness = readiness.with(
                "consumer",
                FlagCheck {
                    flag: flag.clone(),
                    when_down: "consumer not attached to its queue",
                },
            );
        }
        readiness
    }

    /// Runs a service's `tasks` until `shutdown` with the connection's
    /// watchdog beside them, then closes the connection.
    pub async fn run(&self, mut tasks: Tasks, shutdown: CancellationToken) -> anyhow::Result<()> {
        tasks.background("broker-watchdog", self.watch_task());
        let result = tasks.run(shutdown).await;
        self.close().await;
        result
    }

    /// The watchdog task (see [`connection::watch`]), for `Tasks::background`.
    pub fn watch_task(
        &self,
    ) -> impl FnOnce(CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> + Send + 'static
    {
        let (conn, url) = (self.conn.clone(), self.settings.url.clone());
        let (connected, limit) = (self.connected.clone(), self.settings.max_disconnected);
        move |stop| connection::watch(conn, url, connected, limit, stop).boxed()
    }

    /// Closes the connection after every task has stopped. A connection that
    /// is down cannot be closed, and lapin goes on recovering it without any
    /// handle: it is left to [`connection::close_when_recovered`], so that a
    /// service rebuilt after a failure leaves no old consumer behind.
    pub async fn close(&self) {
        let close = self.conn.close(200, "service stopping".into());
        if !matches!(
            tokio::time::timeout(Duration::from_secs(5), close).await,
            Ok(Ok(()))
        ) {
            connection::close_when_recovered(self.conn.clone());
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| std::process::id().to_string())
}
