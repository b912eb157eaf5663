//! The outbox relay when the broker cannot route an event (fault M12 in
//! `docs/guarantees.md`): a publish returned as unroutable is not a delivery, so the row stays
//! pending and goes out once a queue is bound again. Meanwhile the relay's
//! backlog gauges report it (each nextest test runs in its own process, so
//! the `app="order-service"` gauges are this test's relay's). And when the
//! exchange itself is deleted under the relay (M13).

use std::time::Duration;

use contract::{
    events::{Event, OrderCreated},
    names::PAYMENT_QUEUE,
};
use messaging::topology::Topology;
use test_support::{self, eventually};

use crate::helpers::{TestApp, seed_checkout};

#[tokio::test]
async fn an_unroutable_event_stays_in_the_outbox_until_it_can_be_delivered() {
    let app = TestApp::spawn().await;
    let topology = Topology::new(&app.amqp);
    let queue = format!("{}{PAYMENT_QUEUE}", app.amqp.prefix);
    let channel = app.conn.create_channel().await.unwrap();
    channel
        .queue_unbind(
            queue.as_str().into(),
            topology.exchange().into(),
            OrderCreated::ROUTING_KEY.into(),
            Default::default(),
        )
        .await
        .unwrap();

    checkout_stays_pending(&app, "returned, so not marked published").await;
    let error: Option<String> = sqlx::query_scalar("SELECT last_error FROM outbox")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(error.unwrap_or_default().contains("unroutable"));
    // The relay reports the stuck row: a backlog of one, ageing.
    eventually(
        Duration::from_secs(10),
        "a backlog of one, ageing",
        || async {
            let (pending, oldest_age) = backlog(&app).await?;
            (pending == 1.0 && oldest_age > 0.0).then_some(())
        },
    )
    .await;

    channel
        .queue_bind(
            queue.as_str().into(),
            topology.exchange().into(),
            OrderCreated::ROUTING_KEY.into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(15),
        "the row published once routable",
        || async { (test_support::pending_outbox_rows(&app.pool).await.ok()? == 0).then_some(()) },
    )
    .await;
    let delivered = test_support::take_messages(&app.conn, &queue, 1, Duration::from_secs(5)).await;
    assert_eq!(delivered.len(), 1);
    eventually(
        Duration::from_secs(10),
        "the backlog gauges back to 0",
        || async { (backlog(&app).await? == (0.0, 0.0)).then_some(()) },
    )
    .await;
    app.stop().await;
}

/// M13: the exchange deleted under a running relay. The broker closes the
/// channel of the publish, so the row stays pending; the relay's next
/// channel declares the exchange again, and once the queue is bound again
/// (what payment-service declares when it starts) the event goes out, once.
#[tokio::test]
async fn a_deleted_exchange_keeps_the_events_pending_until_the_topology_is_back() {
    let app = TestApp::spawn().await;
    let topology = Topology::new(&app.amqp);
    let channel = app.conn.create_channel().await.unwrap();
    channel
        .exchange_delete(topology.exchange().into(), Default::default())
        .await
        .unwrap();

    checkout_stays_pending(&app, "not delivered, so not marked published").await;

    let queue = topology.queue(PAYMENT_QUEUE, OrderCreated::ROUTING_KEY);
    topology.declare_queue(&app.conn, &queue).await.unwrap();
    eventually(
        Duration::from_secs(15),
        "the row published once the topology is back",
        || async { (test_support::pending_outbox_rows(&app.pool).await.ok()? == 0).then_some(()) },
    )
    .await;
    let delivered =
        test_support::take_messages(&app.conn, &queue.name, 1, Duration::from_secs(5)).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        test_support::queue_depth(&app.conn, &queue.name).await,
        0,
        "delivered once"
    );
    app.stop().await;
}

/// A checkout whose event the relay tries to publish and fails: its outbox
/// row stays pending.
async fn checkout_stays_pending(app: &TestApp, why: &str) {
    assert_eq!(app.post_order(&seed_checkout()).await.status(), 201);
    eventually(
        Duration::from_secs(10),
        "the relay to have tried and failed",
        || async {
            let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM outbox")
                .fetch_one(&app.pool)
                .await
                .ok()?;
            (attempts >= 1).then_some(())
        },
    )
    .await;
    assert_eq!(
        test_support::pending_outbox_rows(&app.pool).await.unwrap(),
        1,
        "{why}"
    );
}

/// The relay's backlog gauges from `/metrics`: pending rows, oldest age.
async fn backlog(app: &TestApp) -> Option<(f64, f64)> {
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let metrics = test_support::Metrics::parse(&text);
    let label = [("app", "order-service")];
    Some((
        metrics.sum("outbox_pending_events", &label),
        metrics.sum("outbox_oldest_pending_age_seconds", &label),
    ))
}
