//! Builds and runs order-service: database, broker, the HTTP API, the outbox
//! relay for `order.order.created`, and the consumer of payment results.

use std::{sync::Arc, time::Duration};

use anyhow::Context;

use contract::{
    events::{CancelReason, PaymentProcessed, PaymentStatus, RefundProcessed},
    names::{ORDER_QUEUE, ORDER_REFUND_QUEUE},
};
use messaging::{
    Foundation,
    db::{
        DatabaseSettings, Plans,
        batch::{BatchStatement, Batcher},
    },
    retention,
    timeline::{Journal, PURGE_JOURNAL},
};
use runtime::service::Tasks;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE, Settings,
    db::stock::InsertOrders,
    handler::{PaymentResultHandler, RefundResultHandler},
    routes::{self, AppState},
};
use crate::{catalog::Catalog, timeline::OrderTimeline};

/// This service's own tables (`migrations/`). The outbox, inbox and journal
/// come from the messaging runtime, applied first (`messaging::db::migrate`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub struct Application {
    foundation: Foundation,
    /// The checkout insert's own connections ([`insert_pool`]).
    inserts: PgPool,
    catalog: Catalog,
    payment_timeout_secs: u64,
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

    /// Binds the port and connects to PostgreSQL (created, migrated, catalog
    /// seeded) and RabbitMQ, waiting for either if they are not up yet.
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
        let catalog = Catalog::load(&foundation.pool)
            .await
            .context("cannot read the catalog")?;
        let inserts = insert_pool(&settings.database).await?;
        Ok(Self {
            foundation,
            inserts,
            catalog,
            payment_timeout_secs: settings.payment_timeout_secs,
        })
    }

    /// Runs until `shutdown`: finishes in-flight requests, payment and
    /// refund results, then flushes the outbox.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            foundation,
            inserts,
            catalog,
            payment_timeout_secs,
        } = self;
        let pool = foundation.pool.clone();
        let relay = foundation.broker.relay(pool.clone());
        let consumer = foundation
            .broker
            .consumer::<PaymentProcessed, _>(
                ORDER_QUEUE,
                Arc::new(PaymentResultHandler::new(pool.clone(), relay.notifier())),
            )
            .with_journal(Journal::new(pool.clone(), SERVICE));
        let refunds = foundation
            .broker
            .consumer::<RefundProcessed, _>(
                ORDER_REFUND_QUEUE,
                Arc::new(RefundResultHandler::new(pool.clone())),
            )
            .with_journal(Journal::new(pool.clone(), SERVICE));
        let api = routes::router(AppState {
            orders: Batcher::start(InsertOrders, inserts),
            pool: pool.clone(),
            catalog: catalog.clone(),
            relay: relay.notifier(),
        })
        .merge(messaging::timeline::router(OrderTimeline(pool.clone())));
        let router = foundation.router(api, &[consumer.attachment(), refunds.attachment()]);

        let mut tasks = Tasks::new();
        tasks.intake("consumer", move |stop| consumer.run(stop));
        tasks.intake("refund-consumer", move |stop| refunds.run(stop));
        let (expiry_pool, expiry_relay) = (pool.clone(), relay.notifier());
        tasks.background("expiry", move |stop| {
            crate::expiry::run(expiry_pool, payment_timeout_secs, expiry_relay, stop)
        });
        tasks.background("outbox-relay", move |stop| relay.run(stop));
        let catalog_pool = pool.clone();
        tasks.background("catalog", move |stop| {
            catalog.keep_fresh(catalog_pool, stop)
        });
        tasks.background("retention", move |stop| {
            retention::run(
                pool,
                Duration::from_secs(3600),
                &[crate::db::idempotency::PURGE_EXPIRED, PURGE_JOURNAL],
                stop,
            )
        });
        foundation.run(router, tasks, shutdown).await
    }
}

/// The connections of the checkout insert, one per batch worker, keeping
/// PostgreSQL's cached plans (`messaging::db::Plans::Cached`): the statement
/// inserts from its parameters and looks up nothing but the foreign keys'
/// primary keys, so no table's statistics can make its plan a scan, and
/// planning it (with its foreign-key checks, row by row) on every checkout
/// would cost a quarter of the checkout's PostgreSQL time.
async fn insert_pool(database: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let settings = DatabaseSettings {
        max_connections: InsertOrders::WORKERS as u32,
        ..database.clone()
    };
    messaging::db::connect(&settings, Plans::Cached)
        .await
        .context("connecting the checkout insert's pool")
}

/// The service's counters at 0 from the start, so that a dashboard shows 0
/// rather than "no data" until the first order moves them.
fn register_counters() {
    for counter in [
        "orders_created_total",
        "orders_expired_total",
        "late_charges_total",
        "orders_refunded_total",
    ] {
        metrics::counter!(counter).increment(0);
    }
    for status in [PaymentStatus::Completed, PaymentStatus::Failed] {
        metrics::counter!("orders_settled_total", "payment_status" => status.as_str()).increment(0);
    }
    let customer = CancelReason::Customer.as_str();
    metrics::counter!("orders_cancelled_total", "reason" => customer).increment(0);
    metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE).increment(0);
}
