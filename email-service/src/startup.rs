//! Builds and runs email-service: database, broker, SMTP transport, the
//! consumers of its three queues (`email_service_queue`,
//! `email_service_cancellation_queue`, `email_service_refund_queue`), and the
//! health endpoints.

use std::{sync::Arc, time::Duration};

use contract::{
    events::{OrderCancelled, PaymentProcessed, RefundProcessed},
    names::{EMAIL_CANCELLATION_QUEUE, EMAIL_QUEUE, EMAIL_REFUND_QUEUE},
};
use messaging::{Foundation, timeline::Journal};
use runtime::service::Tasks;
use tokio_util::sync::CancellationToken;

use crate::timeline::EmailTimeline;
use crate::{
    SERVICE, Settings,
    email::Composer,
    handler::EmailHandler,
    smtp::{self, Mailer},
};

/// This service's own tables (`migrations/`). The outbox, inbox and journal
/// come from the messaging runtime, applied first (`messaging::db::migrate`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub struct Application {
    foundation: Foundation,
    mailer: Mailer,
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

    /// Binds the port, builds the SMTP transport (it connects lazily, so a down
    /// SMTP server does not stop the start) and connects to PostgreSQL
    /// (created and migrated) and RabbitMQ, waiting for either if they are not
    /// up yet.
    async fn build(settings: Settings) -> anyhow::Result<Self> {
        let mailer = Mailer::new(&settings.smtp)?;
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
            mailer,
            settings,
        })
    }

    /// Runs until `shutdown`: drains in-flight emails, then stops.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            foundation,
            mailer,
            settings,
        } = self;
        let pool = foundation.pool.clone();
        // One handler for the three queues: they share its batched statements.
        let handler = Arc::new(EmailHandler::new(
            pool.clone(),
            Composer::new(
                settings.email_from.clone(),
                settings.reply_to.clone(),
                settings.branding.clone(),
            ),
            mailer.clone(),
        ));
        let journal = Journal::new(pool.clone(), SERVICE);
        let payment_consumer = foundation
            .broker
            .consumer::<PaymentProcessed, _>(EMAIL_QUEUE, handler.clone())
            .with_journal(journal.clone());
        let cancellation_consumer = foundation
            .broker
            .consumer::<OrderCancelled, _>(EMAIL_CANCELLATION_QUEUE, handler.clone())
            .with_journal(journal.clone());
        let refund_consumer = foundation
            .broker
            .consumer::<RefundProcessed, _>(EMAIL_REFUND_QUEUE, handler)
            .with_journal(journal);
        let timeline = messaging::timeline::router(EmailTimeline(pool.clone()));
        // SMTP is reported (the `smtp_up` gauge, logs) but not part of
        // readiness: see `smtp::watch` for why.
        let router = foundation.router(
            timeline,
            &[
                payment_consumer.attachment(),
                cancellation_consumer.attachment(),
                refund_consumer.attachment(),
            ],
        );

        let mut tasks = Tasks::new();
        tasks.intake("consumer", move |stop| payment_consumer.run(stop));
        tasks.intake("cancellation-consumer", move |stop| {
            cancellation_consumer.run(stop)
        });
        tasks.intake("refund-consumer", move |stop| refund_consumer.run(stop));
        tasks.background("smtp-probe", move |stop| smtp::watch(mailer, stop));
        tasks.background("retention", move |stop| {
            messaging::timeline::run_retention(pool, Duration::from_secs(3600), stop)
        });
        foundation.run(router, tasks, shutdown).await
    }
}

/// The service's counters at 0 from the start, so that a dashboard shows 0
/// rather than "no data" until the first email moves them.
fn register_counters() {
    for kind in crate::email::Kind::ALL {
        for status in ["sent", "failed", "deferred"] {
            metrics::counter!("emails_total", "kind" => kind.as_str(), "status" => status)
                .increment(0);
        }
    }
    for counter in [
        "emails_resent_unrecorded_total",
        "smtp_connections_opened_total",
    ] {
        metrics::counter!(counter).increment(0);
    }
    metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE).increment(0);
}
