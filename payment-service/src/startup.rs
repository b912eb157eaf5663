//! Builds and runs payment-service: database, broker, the consumer of
//! `payment_service_queue`, the outbox relay, and the health endpoints.

use std::{sync::Arc, time::Duration};

use contract::{events::OrderCreated, names::PAYMENT_QUEUE};
use messaging::{
    Foundation,
    db::PostgresCheck,
    retention,
    timeline::{Journal, PURGE_JOURNAL},
};
use runtime::{
    health::{Flag, Readiness},
    service::Tasks,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::timeline::PaymentTimeline;
use crate::{SERVICE, Settings, handler::PaymentHandler, provider::Provider};

/// This service's own tables (`migrations/`). The outbox, inbox and journal
/// come from the messaging runtime, applied first (`messaging::db::migrate`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub struct Application {
    foundation: Foundation,
    settings: Settings,
}

impl Application {
    pub fn port(&self) -> u16 {
        self.foundation.port()
    }

    pub fn pool(&self) -> &PgPool {
        &self.foundation.pool
    }
}

#[async_trait::async_trait]
impl runtime::service::Service for Application {
    type Settings = Settings;
    const NAME: &'static str = SERVICE;

    /// Binds the port and connects to PostgreSQL (created and migrated) and
    /// RabbitMQ, waiting for either if they are not up yet.
    async fn build(settings: Settings) -> anyhow::Result<Self> {
        let foundation = Foundation::connect(
            SERVICE,
            settings.bind_addr,
            &settings.database,
            &MIGRATOR,
            settings.amqp.clone(),
        )
        .await?;
        Ok(Self {
            foundation,
            settings,
        })
    }

    /// Runs until `shutdown`: drains in-flight payments, flushes the outbox.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            foundation:
                Foundation {
                    listener,
                    pool,
                    broker,
                },
            settings,
        } = self;
        let relay = broker.relay(pool.clone());
        let retention_pool = pool.clone();
        let handler = PaymentHandler::new(
            pool.clone(),
            Provider::new(settings.provider.clone()),
            relay.notifier(),
        );
        let attached = Flag::default();
        let consumer = broker
            .consumer::<OrderCreated, _>(PAYMENT_QUEUE, Arc::new(handler), attached.clone())
            .with_journal(Journal::new(pool.clone(), SERVICE));
        let timeline = messaging::timeline::router(PaymentTimeline(pool.clone()));
        let readiness = broker.readiness(
            Readiness::default().with("database", PostgresCheck(pool)),
            &[attached],
        );
        let router = runtime::http::with_standard_layers(
            timeline.merge(runtime::health::router(readiness)),
            SERVICE,
        );

        let mut tasks = Tasks::new();
        tasks.intake("http", move |stop| {
            runtime::http::serve(listener, router, stop)
        });
        tasks.intake("consumer", move |stop| consumer.run(stop));
        tasks.background("outbox-relay", move |stop| relay.run(stop));
        tasks.background("retention", move |stop| {
            retention::run(
                retention_pool,
                Duration::from_secs(3600),
                &[PURGE_JOURNAL],
                stop,
            )
        });
        broker.run(tasks, shutdown).await
    }
}
