//! PostgreSQL unreachable while orders arrive (faults D3, M21 in `docs/guarantees.md`):
//! payment-service keeps retrying without using up the messages' retries, so
//! an outage longer than the whole retry schedule parks nothing, and every
//! order is paid once the database is back. The database is reached through
//! a proxy the test cuts.

use runtime::service::Service as _;
use std::time::Duration;

use contract::{
    events::{Event, OrderCreated},
    names::PAYMENT_QUEUE,
};
use messaging::topology::Topology;
use payment_service::{Application, Settings, config::ProviderSettings};
use rust_decimal::Decimal;
use test_support::{self, FaultProxy, eventually};

use crate::app::broker_cleanup;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_database_outage_longer_than_the_retry_schedule_parks_nothing() {
    test_support::init_logs();
    let amqp = test_support::fresh_amqp(); // retries after 200, 400 and 800 ms
    let _cleanup = broker_cleanup(&amqp);
    let proxy = FaultProxy::start(test_support::socket_addr_of(
        &test_support::admin_database_url(),
    ))
    .await;
    let mut database = test_support::fresh_database("payment");
    database.url = proxy.rewrite_url(&database.url);
    let app = Application::build(Settings {
        bind_addr: "127.0.0.1:0".parse().unwrap(),
        database,
        amqp: amqp.clone(),
        provider: ProviderSettings {
            delay: Duration::ZERO,
            decline_above: Decimal::from(10_000),
        },
    })
    .await
    .unwrap();
    let pool = app.foundation().pool.clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    let conn = test_support::test_connection().await;
    let topology = Topology::new(&amqp);
    let work_queue = format!("{}{PAYMENT_QUEUE}", amqp.prefix);
    test_support::wait_for_consumers(&conn, &work_queue, 1).await;

    proxy.cut();
    let orders: Vec<OrderCreated> = (0..5)
        .map(|_| test_support::fixtures::order_created("test@example.com"))
        .collect();
    for order in &orders {
        let body = serde_json::to_vec(order).unwrap();
        test_support::publish_raw(
            &conn,
            &topology.exchange(),
            OrderCreated::ROUTING_KEY,
            &body,
            &order.event_id.to_string(),
        )
        .await;
    }
    // Three times the whole retry schedule (1.4 s).
    tokio::time::sleep(Duration::from_millis(4200)).await;
    proxy.restore();

    eventually(
        Duration::from_secs(30),
        "every order paid after the outage",
        || async {
            let paid: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
                .fetch_one(&pool)
                .await
                .ok()?;
            (paid == orders.len() as i64).then_some(())
        },
    )
    .await;
    let dlq = format!("{work_queue}.dlq");
    assert_eq!(
        test_support::queue_depth(&conn, &dlq).await,
        0,
        "nothing parked for an outage"
    );
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM payments")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        attempts.iter().all(|a| *a == 1),
        "the outage used none of the retries: {attempts:?}"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}
