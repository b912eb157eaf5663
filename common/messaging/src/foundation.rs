//! What every consuming service is built on: its HTTP port, its database
//! (created if missing and migrated) and its RabbitMQ connection.

use std::net::SocketAddr;

use axum::Router;
use sqlx::{PgPool, migrate::Migrator};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    AmqpSettings,
    broker::Broker,
    db::{self, DatabaseSettings, PostgresCheck},
};
use runtime::health::{Flag, Readiness, StartupProgress};
use runtime::service::{Tasks, startup::StartupServer};

pub struct Foundation {
    pub pool: PgPool,
    pub broker: Broker,
    listener: TcpListener,
    service: &'static str,
}

impl Foundation {
    /// Binds `bind_addr`, then connects to PostgreSQL and RabbitMQ, waiting
    /// for either if it is not up yet. Meanwhile the port answers probes
    /// ([`StartupServer`]): alive, not ready, and why.
    pub async fn connect(
        service: &'static str,
        bind_addr: SocketAddr,
        database: &DatabaseSettings,
        migrator: &'static Migrator,
        amqp: AmqpSettings,
    ) -> anyhow::Result<Self> {
        runtime::metrics::install();
        runtime::metrics::service_info(service);
        let listener = TcpListener::bind(bind_addr).await?;
        let progress = StartupProgress::new("connecting to PostgreSQL");
        let startup = StartupServer::start(listener, service, progress.clone());
        let pool = db::connect_with_retry(database, migrator, &progress).await?;
        progress.set("connecting to RabbitMQ");
        let broker = Broker::connect(amqp, service, &progress).await?;
        let listener = startup.finish().await?;
        Ok(Self {
            pool,
            broker,
            listener,
            service,
        })
    }

    /// What the service's port serves: `routes` (its API or its part of the
    /// timeline), `/health`, `/metrics`, and `/ready`, which checks
    /// PostgreSQL, the broker connection and each consumer's attachment;
    /// all behind the standard HTTP layers.
    pub fn router(&self, routes: Router, consumers: &[(String, Flag)]) -> Router {
        let readiness = self.broker.readiness(
            Readiness::default().with("database", PostgresCheck(self.pool.clone())),
            consumers,
        );
        runtime::http::with_standard_layers(
            routes.merge(runtime::health::router(readiness)),
            self.service,
        )
    }

    /// Serves `router` on the bound port beside the service's `tasks` until
    /// `shutdown`, with the broker connection's supervisor; then closes the connection.
    pub async fn run(
        self,
        router: Router,
        mut tasks: Tasks,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let Self {
            listener, broker, ..
        } = self;
        tasks.intake("http", move |stop| {
            runtime::http::serve(listener, router, stop)
        });
        broker.run(tasks, shutdown).await
    }

    /// The bound port (useful when `bind_addr` asked for port 0).
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }
}
