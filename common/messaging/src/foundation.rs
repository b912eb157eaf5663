//! What every consuming service is built on: its HTTP port, its database
//! (created if missing and migrated) and its RabbitMQ connection.

use std::net::SocketAddr;

use sqlx::{PgPool, migrate::Migrator};
use tokio::net::TcpListener;

use crate::{
    AmqpSettings,
    broker::Broker,
    db::{self, DatabaseSettings},
};
use runtime::health::StartupProgress;
use runtime::service::startup::StartupServer;

pub struct Foundation {
    pub listener: TcpListener,
    pub pool: PgPool,
    pub broker: Broker,
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
            listener,
            pool,
            broker,
        })
    }

    /// The bound port (useful when `bind_addr` asked for port 0).
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }
}
