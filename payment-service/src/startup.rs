//! Builds and runs payment-service: database, broker, the consumers of
//! `payment_service_queue` (charges) and `payment_service_refund_queue`
//! (refunds), the outbox relay, and the health endpoints.

use std::{sync::Arc, time::Duration};

use contract::{
    events::{OrderCreated, RefundRequested},
    names::{PAYMENT_QUEUE, PAYMENT_REFUND_QUEUE},
};
use messaging::{
    Foundation, retention,
    timeline::{Journal, PURGE_JOURNAL},
};
use runtime::service::Tasks;
use tokio_util::sync::CancellationToken;

use crate::timeline::PaymentTimeline;
use crate::{
    SERVICE, Settings,
    handler::{PaymentHandler, RefundHandler},
    provider::Provider,
};

/// This service's own tables (`migrations/`). The outbox, inbox and journal
/// come from the messaging runtime, applied first (`messaging::db::migrate`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub struct Application {
    foundation: Foundation,
    settings: Settings,
}

impl Application {
    /// Its port and database pool, for tests and tools.
    pub fn foundation(&self) -> &Foundation {
        &self.foundation
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
        register_counters();
        Ok(Self {
            foundation,
            settings,
        })
    }

    /// Runs until `shutdown`: drains in-flight payments and refunds, flushes
    /// the outbox.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            foundation,
            settings,
        } = self;
        let pool = foundation.pool.clone();
        let relay = foundation.broker.relay(pool.clone());
        let handler = PaymentHandler::new(
            pool.clone(),
            Provider::new(settings.provider.clone()),
            relay.notifier(),
        );
        let consumer = foundation
            .broker
            .consumer::<OrderCreated, _>(PAYMENT_QUEUE, Arc::new(handler))
            .with_journal(Journal::new(pool.clone(), SERVICE));
        let refunds = RefundHandler::new(
            pool.clone(),
            Provider::new(settings.provider.clone()),
            relay.notifier(),
        );
        let refund_consumer = foundation
            .broker
            .consumer::<RefundRequested, _>(PAYMENT_REFUND_QUEUE, Arc::new(refunds))
            .with_journal(Journal::new(pool.clone(), SERVICE));
        let timeline = messaging::timeline::router(PaymentTimeline(pool.clone()));
        let router = foundation.router(
            timeline,
            &[consumer.attachment(), refund_consumer.attachment()],
        );

        let mut tasks = Tasks::new();
        tasks.intake("consumer", move |stop| consumer.run(stop));
        tasks.intake("refund-consumer", move |stop| refund_consumer.run(stop));
        tasks.background("outbox-relay", move |stop| relay.run(stop));
        tasks.background("retention", move |stop| {
            retention::run(pool, Duration::from_secs(3600), &[PURGE_JOURNAL], stop)
        });
        foundation.run(router, tasks, shutdown).await
    }
}

/// The service's counters at 0 from the start, so that a dashboard shows 0
/// rather than "no data" until the first payment moves them.
fn register_counters() {
    metrics::counter!("payments_total", "status" => "completed", "reason" => "none").increment(0);
    for reason in crate::provider::DECLINE_REASONS {
        metrics::counter!("payments_total", "status" => "failed", "reason" => reason).increment(0);
    }
    metrics::counter!("refunds_total").increment(0);
    metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE).increment(0);
}
