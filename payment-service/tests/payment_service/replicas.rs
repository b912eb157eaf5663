//! Competing payment-service replicas: one stopped with SIGTERM in the middle
//! of a burst (faults M15 in `docs/guarantees.md`), and a consumer whose queue is deleted
//! under it (M9).

use runtime::service::Service as _;
use std::time::Duration;

use contract::{
    events::{Event, OrderCreated, PaymentProcessed},
    names::{EMAIL_QUEUE, PAYMENT_QUEUE},
};
use messaging::{AmqpSettings, topology::Topology};
use payment_service::{Application, Settings, config::ProviderSettings};
use rust_decimal::Decimal;
use sqlx::PgPool;
use test_support::{self, eventually};

use crate::app::broker_cleanup;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Replica {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn start_replica(
    database: &messaging::db::DatabaseSettings,
    amqp: &AmqpSettings,
    delay: Duration,
) -> (Replica, PgPool) {
    let app = Application::build(Settings {
        bind_addr: "127.0.0.1:0".parse().unwrap(),
        database: database.clone(),
        amqp: amqp.clone(),
        provider: ProviderSettings {
            delay,
            decline_above: Decimal::from(10_000),
        },
    })
    .await
    .unwrap();
    let pool = app.foundation().pool.clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    (Replica { stop, task }, pool)
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_replica_stopped_mid_burst_loses_and_duplicates_nothing() {
    test_support::init_logs();
    const ORDERS: usize = 200;
    let mut amqp = test_support::fresh_amqp();
    amqp.prefetch = 10;
    let _cleanup = broker_cleanup(&amqp);
    let database = test_support::fresh_database("payment");
    let (a, pool) = start_replica(&database, &amqp, Duration::from_millis(20)).await;
    let (b, _) = start_replica(&database, &amqp, Duration::from_millis(20)).await;
    let conn = test_support::test_connection().await;
    let topology = Topology::new(&amqp);
    topology
        .declare_queue(
            &conn,
            &topology.queue(EMAIL_QUEUE, PaymentProcessed::ROUTING_KEY),
        )
        .await
        .unwrap();
    let work_queue = format!("{}{PAYMENT_QUEUE}", amqp.prefix);
    eventually(
        Duration::from_secs(10),
        "both replicas consuming",
        || async { (test_support::consumer_count(&conn, &work_queue).await == 2).then_some(()) },
    )
    .await;

    for _ in 0..ORDERS {
        let order = test_support::fixtures::order_created("test@example.com");
        let body = serde_json::to_vec(&order).unwrap();
        test_support::publish_raw(
            &conn,
            &topology.exchange(),
            OrderCreated::ROUTING_KEY,
            &body,
            &order.event_id.to_string(),
        )
        .await;
    }
    eventually(
        Duration::from_secs(30),
        "a quarter of the burst paid",
        || async {
            (scalar(&pool, "SELECT count(*) FROM payments").await >= (ORDERS / 4) as i64)
                .then_some(())
        },
    )
    .await;
    a.stop.cancel(); // what SIGTERM does
    a.task
        .await
        .unwrap()
        .expect("the stopped replica drains and exits cleanly");

    eventually(
        Duration::from_secs(60),
        "the rest paid by the remaining replica",
        || async {
            (scalar(&pool, "SELECT count(*) FROM payments").await == ORDERS as i64).then_some(())
        },
    )
    .await;
    let events = test_support::take_messages(
        &conn,
        &format!("{}{EMAIL_QUEUE}", amqp.prefix),
        ORDERS,
        Duration::from_secs(30),
    )
    .await;
    let mut order_ids: Vec<Uuid> = events
        .iter()
        .map(|m| {
            serde_json::from_slice::<PaymentProcessed>(&m.delivery.data)
                .unwrap()
                .order_id
        })
        .collect();
    order_ids.sort();
    order_ids.dedup();
    assert_eq!(order_ids.len(), ORDERS, "one outcome per order");
    assert_eq!(events.len(), ORDERS, "and no duplicate outcome");
    assert_eq!(
        scalar(&pool, "SELECT count(DISTINCT order_id) FROM payments").await,
        ORDERS as i64
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        0
    );
    b.stop.cancel();
    b.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_consumer_whose_queue_is_deleted_resubscribes_and_keeps_working() {
    test_support::init_logs();
    let amqp = test_support::fresh_amqp();
    let _cleanup = broker_cleanup(&amqp);
    let (replica, pool) = start_replica(
        &test_support::fresh_database("payment"),
        &amqp,
        Duration::ZERO,
    )
    .await;
    let conn = test_support::test_connection().await;
    let topology = Topology::new(&amqp);
    let work_queue = format!("{}{PAYMENT_QUEUE}", amqp.prefix);
    eventually(Duration::from_secs(10), "the consumer", || async {
        (test_support::consumer_count(&conn, &work_queue).await == 1).then_some(())
    })
    .await;

    // The broker cancels the consumer (lapin: the stream ends with None).
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_delete(work_queue.as_str().into(), Default::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the consumer to be back on a redeclared queue",
        || async { (test_support::consumer_count(&conn, &work_queue).await == 1).then_some(()) },
    )
    .await;
    let order = test_support::fixtures::order_created("test@example.com");
    let body = serde_json::to_vec(&order).unwrap();
    test_support::publish_raw(
        &conn,
        &topology.exchange(),
        OrderCreated::ROUTING_KEY,
        &body,
        &order.event_id.to_string(),
    )
    .await;

    eventually(Duration::from_secs(10), "the order paid", || async {
        (scalar(&pool, "SELECT count(*) FROM payments").await == 1).then_some(())
    })
    .await;
    replica.stop.cancel();
    replica.task.await.unwrap().unwrap();
}
