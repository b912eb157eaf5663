//! payment-service in process against the real PostgreSQL and RabbitMQ: a
//! fresh database and a unique queue prefix per test.

use runtime::service::Service as _;
use std::time::Duration;

use chrono::Utc;
use contract::{
    api::TimelineStep,
    events::{
        CancelReason, Event, OrderCreated, PaymentProcessed, RefundProcessed, RefundRequested,
        SCHEMA_VERSION,
    },
    names::{EMAIL_QUEUE, ORDER_REFUND_QUEUE, PAYMENT_QUEUE, PAYMENT_REFUND_QUEUE},
};
use lapin::Connection;
use messaging::{AmqpSettings, headers, topology::Topology};
use payment_service::{Application, Settings, config::ProviderSettings};
use rust_decimal::Decimal;
use sqlx::PgPool;
use test_support::{self, BrokerCleanup, QueueCounts};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct TestApp {
    pub pool: PgPool,
    /// `http://127.0.0.1:<port>` of the service.
    pub base_url: String,
    pub amqp: AmqpSettings,
    pub conn: Connection,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _cleanup: BrokerCleanup,
}

/// [`BrokerCleanup::all`] and the refund queues (payment-service's, and
/// order-service's, where the tests read `payment.refund.processed`).
pub fn broker_cleanup(amqp: &AmqpSettings) -> BrokerCleanup {
    let mut cleanup = BrokerCleanup::all(amqp);
    let topology = Topology::new(amqp);
    for queue in [
        topology.queue(PAYMENT_REFUND_QUEUE, RefundRequested::ROUTING_KEY),
        topology.queue(ORDER_REFUND_QUEUE, RefundProcessed::ROUTING_KEY),
    ] {
        if !cleanup.queues.iter().any(|q| q.name == queue.name) {
            // In front: the last queue's clean-up also deletes the exchanges.
            cleanup.queues.insert(0, queue);
        }
    }
    cleanup
}

/// The `order.refund.requested` order-service sends for `order`, paid as
/// `payment` says.
pub fn refund_request(order: &OrderCreated, payment: &PaymentProcessed) -> RefundRequested {
    RefundRequested {
        event_type: RefundRequested::EVENT_TYPE.into(),
        event_id: Uuid::new_v4(),
        timestamp: Utc::now(),
        schema_version: SCHEMA_VERSION,
        order_id: order.order_id,
        payment_id: payment.payment_id,
        transaction_id: payment.transaction_id.clone().unwrap_or_default(),
        user_id: order.user_id,
        user_email: order.user_email.clone(),
        amount: payment.amount,
        currency: payment.currency.clone(),
        items: order.items.clone(),
        reason: CancelReason::Customer,
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        test_support::init_logs();
        let amqp = test_support::fresh_amqp();
        let cleanup = broker_cleanup(&amqp);
        let settings = Settings {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            database: test_support::fresh_database("payment"),
            amqp: amqp.clone(),
            provider: ProviderSettings {
                delay: Duration::ZERO,
                decline_above: Decimal::from(10_000),
            },
        };
        let app = Application::build(settings)
            .await
            .expect("payment-service builds");
        let pool = app.foundation().pool.clone();
        let base_url = format!("http://127.0.0.1:{}", app.foundation().port());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let conn = test_support::test_connection().await;
        // Where payment.payment.processed lands: email-service's queue.
        let topology = Topology::new(&amqp);
        topology
            .declare_queue(
                &conn,
                &topology.queue(EMAIL_QUEUE, PaymentProcessed::ROUTING_KEY),
            )
            .await
            .unwrap();
        let test_app = Self {
            pool,
            base_url,
            amqp,
            conn,
            shutdown,
            task,
            _cleanup: cleanup,
        };
        test_app.wait_until_consuming().await;
        test_app
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.amqp)
    }

    pub fn queue(&self, base: &str) -> String {
        format!("{}{base}", self.amqp.prefix)
    }

    async fn wait_until_consuming(&self) {
        for queue in [PAYMENT_QUEUE, PAYMENT_REFUND_QUEUE] {
            test_support::wait_for_consumers(&self.conn, &self.queue(queue), 1).await;
        }
    }

    pub async fn publish(&self, event: &OrderCreated) {
        let body = serde_json::to_vec(event).unwrap();
        self.publish_raw(&body, &event.event_id.to_string()).await;
    }

    pub async fn publish_raw(&self, body: &[u8], message_id: &str) {
        test_support::publish_raw(
            &self.conn,
            &self.topology().exchange(),
            OrderCreated::ROUTING_KEY,
            body,
            message_id,
        )
        .await;
    }

    pub async fn payment_events(&self, count: usize) -> Vec<PaymentProcessed> {
        self.take(EMAIL_QUEUE, count).await
    }

    /// Publishes `order` and waits for its payment's outcome.
    pub async fn pay(&self, order: &OrderCreated) -> PaymentProcessed {
        self.publish(order).await;
        let events = self.payment_events(1).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].order_id, order.order_id);
        events.into_iter().next().unwrap()
    }

    /// Declares order-service's refund queue, where `payment.refund.processed`
    /// lands ([`TestApp::refund_events`]).
    pub async fn bind_refund_results(&self) {
        let topology = self.topology();
        topology
            .declare_queue(
                &self.conn,
                &topology.queue(ORDER_REFUND_QUEUE, RefundProcessed::ROUTING_KEY),
            )
            .await
            .unwrap();
    }

    /// Publishes `request` with the properties order-service's relay gives
    /// it (the order id as `correlation_id`: retries reach its timeline).
    pub async fn publish_refund(&self, request: &RefundRequested) {
        let properties = headers::event_properties(
            &request.event_id.to_string(),
            RefundRequested::EVENT_TYPE,
            &request.order_id.to_string(),
            "order-service",
            0,
        );
        test_support::publish_with(
            &self.conn,
            &self.topology().exchange(),
            RefundRequested::ROUTING_KEY,
            &serde_json::to_vec(request).unwrap(),
            properties,
        )
        .await;
    }

    /// Takes at least `count` refund results (after
    /// [`TestApp::bind_refund_results`]).
    pub async fn refund_events(&self, count: usize) -> Vec<RefundProcessed> {
        self.take(ORDER_REFUND_QUEUE, count).await
    }

    async fn take<E: Event>(&self, base: &str, count: usize) -> Vec<E> {
        test_support::take_messages(
            &self.conn,
            &self.queue(base),
            count,
            Duration::from_secs(10),
        )
        .await
        .iter()
        .map(|m| serde_json::from_slice(&m.delivery.data).unwrap())
        .collect()
    }

    /// `/metrics` of the service, scraped over HTTP.
    pub async fn metrics(&self) -> test_support::Metrics {
        let text = reqwest::get(format!("{}/metrics", self.base_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        test_support::Metrics::parse(&text)
    }

    /// This service's part of the order's timeline, over HTTP.
    pub async fn timeline(&self, order_id: Uuid) -> Vec<TimelineStep> {
        reqwest::get(format!("{}/timeline/{order_id}", self.base_url))
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the consumer metrics of work queue `base` read `expected`.
    pub async fn wait_for_queue_counts(&self, base: &str, expected: QueueCounts) {
        let queue = self.queue(base);
        let mut last = QueueCounts::default();
        let reached = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                last = self.metrics().await.queue(&queue);
                if last == expected {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "queue metrics of {queue} {last:?}, expected {expected:?}"
        );
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .unwrap()
            .expect("payment-service stops cleanly");
    }
}
