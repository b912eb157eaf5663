//! The test harness: order-service started as in production, on a fresh
//! database and a unique queue prefix.

use runtime::service::Service as _;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use contract::{
    events::{Event, OrderCreated, PaymentProcessed},
    names::{ORDER_QUEUE, PAYMENT_QUEUE},
};
use lapin::Connection;
use messaging::{AmqpSettings, outbox::OutboxRow, topology::Topology};
use order_service::{
    Application, Settings,
    db::orders::{NewOrder, OrderWrite},
    domain::pricing::{PricedLine, PricedOrder},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use test_support::{self, BrokerCleanup};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
    pub amqp: AmqpSettings,
    pub conn: Connection,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _cleanup: BrokerCleanup,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with_database(test_support::fresh_database("order")).await
    }

    /// Started on `database` (for example a fresh one behind a `FaultProxy`).
    pub async fn spawn_with_database(database: messaging::db::DatabaseSettings) -> Self {
        Self::spawn_with(database, 900).await
    }

    /// Started with `ORDER_PAYMENT_TIMEOUT_SECS` = `payment_timeout_secs`.
    pub async fn spawn_expiring(payment_timeout_secs: u64) -> Self {
        Self::spawn_with(test_support::fresh_database("order"), payment_timeout_secs).await
    }

    async fn spawn_with(
        database: messaging::db::DatabaseSettings,
        payment_timeout_secs: u64,
    ) -> Self {
        test_support::init_logs();
        let amqp = test_support::fresh_amqp();
        let cleanup = BrokerCleanup::all(&amqp);
        let settings = Settings {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            database,
            amqp: amqp.clone(),
            payment_timeout_secs,
        };
        let app = Application::build(settings)
            .await
            .expect("order-service builds");
        let base = format!("http://127.0.0.1:{}", app.foundation().port());
        let pool = app.foundation().pool.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let conn = test_support::test_connection().await;
        // Until the consumer is attached, order_service_queue may not exist
        // or be bound yet, and a payment result published now would be lost.
        test_support::wait_for_consumers(&conn, &format!("{}{ORDER_QUEUE}", amqp.prefix), 1).await;
        // Where order.order.created lands: payment-service's queue.
        let topology = Topology::new(&amqp);
        topology
            .declare_queue(
                &conn,
                &topology.queue(PAYMENT_QUEUE, OrderCreated::ROUTING_KEY),
            )
            .await
            .unwrap();
        Self {
            base,
            pool,
            amqp,
            conn,
            http: reqwest::Client::new(),
            shutdown,
            task,
            _cleanup: cleanup,
        }
    }

    pub async fn post_order(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/orders", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn order_created_events(&self, count: usize) -> Vec<OrderCreated> {
        let queue = format!("{}{PAYMENT_QUEUE}", self.amqp.prefix);
        test_support::take_messages(&self.conn, &queue, count, Duration::from_secs(10))
            .await
            .iter()
            .map(|m| serde_json::from_slice(&m.delivery.data).unwrap())
            .collect()
    }

    pub async fn publish_payment(&self, event: &PaymentProcessed) {
        self.publish(event).await;
    }

    /// Publishes `event` as its producer would.
    pub async fn publish<E: Event>(&self, event: &E) {
        let body = serde_json::to_vec(event).unwrap();
        let exchange = Topology::new(&self.amqp).exchange();
        test_support::publish_raw(
            &self.conn,
            &exchange,
            E::ROUTING_KEY,
            &body,
            &event.event_id().to_string(),
        )
        .await;
    }

    /// Declares the work queue `queue` (bound to its event), so the events
    /// order-service publishes for it can be read (before publishing them).
    pub async fn declare_queue(&self, queue: &str) {
        let topology = Topology::new(&self.amqp);
        let routing_key = contract::names::routing_key_of(queue).unwrap();
        topology
            .declare_queue(&self.conn, &topology.queue(queue, routing_key))
            .await
            .unwrap();
    }

    /// Takes at least `count` events off the work queue `queue` (declared
    /// with [`Self::declare_queue`]).
    pub async fn events<E: Event>(&self, queue: &str, count: usize) -> Vec<E> {
        let queue = format!("{}{queue}", self.amqp.prefix);
        test_support::take_messages(&self.conn, &queue, count, Duration::from_secs(10))
            .await
            .iter()
            .map(|m| serde_json::from_slice(&m.delivery.data).unwrap())
            .collect()
    }

    pub async fn cancel(&self, id: Uuid, user_id: i64) -> reqwest::Response {
        self.http
            .post(format!("{}/orders/{id}/cancel", self.base))
            .json(&json!({ "user_id": user_id }))
            .send()
            .await
            .unwrap()
    }

    /// The product's stock in the table (`None`: not tracked).
    pub async fn stock(&self, product_id: i64) -> Option<i64> {
        sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
            .bind(product_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Waits until the inbox holds `count` events (each one handled).
    pub async fn wait_for_handled(&self, count: i64) {
        test_support::eventually(Duration::from_secs(10), "events handled", || async {
            let handled: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_messages")
                .fetch_one(&self.pool)
                .await
                .unwrap();
            (handled == count).then_some(())
        })
        .await;
    }

    /// Waits until one statement on this database waits for a lock.
    pub async fn wait_for_a_lock_waiter(&self) {
        test_support::eventually(Duration::from_secs(10), "a statement waiting", || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&self.pool)
            .await
            .unwrap();
            (waiting == 1).then_some(())
        })
        .await;
    }

    pub async fn set_stock(&self, product_id: i64, units: Option<i64>) {
        sqlx::query("UPDATE products SET stock = $2 WHERE id = $1")
            .bind(product_id)
            .bind(units)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    pub async fn order_status(&self, id: Uuid) -> String {
        let order: Value = self
            .get(&format!("/orders/{id}"))
            .await
            .json()
            .await
            .unwrap();
        order["status"].as_str().unwrap().to_owned()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .unwrap()
            .expect("order-service stops cleanly");
    }
}

pub fn seed_checkout() -> Value {
    json!({"user_id": 1, "user_email": "test@example.com",
           "items": [{"product_id": 1, "quantity": 1, "price": "1299.99"}]})
}

pub use test_support::fixtures::payment_for;

/// The `n`th of some distinct two-line orders with their outbox rows, as
/// the checkout handler writes them (products 1 and 2 of the catalog).
pub fn order_write(n: i64) -> OrderWrite {
    let line = |product_id: i64, price: &str| PricedLine {
        product_id,
        name: format!("product {product_id}"),
        unit_price: price.parse().unwrap(),
        quantity: 1,
        line_total: price.parse().unwrap(),
    };
    let id = Uuid::new_v4();
    OrderWrite {
        order: NewOrder {
            id,
            user_id: 1000 + n,
            user_email: format!("buyer{n}@example.com"),
            priced: PricedOrder {
                currency: "USD".into(),
                total: "1349.98".parse().unwrap(),
                lines: vec![line(1, "1299.99"), line(2, "49.99")],
            },
            created_at: Utc::now().trunc_subsecs(6),
            processing_duration_ms: 0.1,
        },
        event: OutboxRow {
            id: Uuid::new_v4(),
            routing_key: "order.order.created",
            event_type: "order.created",
            correlation_id: id,
            payload: "{}".into(),
            traceparent: None,
        },
    }
}
