//! A service's broker connection after the service is done with it, against
//! the real RabbitMQ behind a cuttable proxy.
//!
//! A service that fails while its connection is recovering is rebuilt with a
//! new connection (`runtime::service::supervise`). lapin cannot close a
//! connection that is recovering, and its recovery goes on without any
//! handle: once the broker is back it re-subscribes the old consumers, whose
//! deliveries nobody reads and nobody acks. This checks that the old
//! connection is closed as soon as it comes back, so the broker requeues
//! whatever it took.

use std::time::Duration;

use lapin::{
    options::{BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::FieldTable,
};
use messaging::broker::Broker;
use runtime::health::StartupProgress;
use test_support::{self, FaultProxy, eventually};

#[tokio::test]
async fn a_replaced_connection_is_closed_when_it_recovers_and_keeps_no_consumer() {
    let mut settings = test_support::fresh_amqp();
    let proxy = FaultProxy::start(test_support::socket_addr_of(&settings.url)).await;
    settings.url = proxy.rewrite_url(&settings.url);
    let queue = format!("{}replaced", settings.prefix);
    let observer = test_support::test_connection().await;

    let broker = Broker::connect(settings, "replaced-test", &StartupProgress::new("test"))
        .await
        .unwrap();
    let channel = broker.conn.create_channel().await.unwrap();
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "old".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    test_support::wait_for_consumers(&observer, &queue, 1).await;

    // The broker goes away; the service gives up on the connection while
    // lapin is still recovering it, as after a watchdog failure.
    proxy.cut();
    let old = broker.conn.clone();
    eventually(
        Duration::from_secs(10),
        "lapin to start recovering the connection",
        || async { old.status().reconnecting().then_some(()) },
    )
    .await;
    drop(consumer);
    drop(channel);
    broker.close().await;
    drop(broker);
    proxy.restore();

    eventually(
        Duration::from_secs(30),
        "the old connection to be closed once it recovered",
        || async { old.status().closed().then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "no consumer left on the queue",
        || async { (test_support::consumer_count(&observer, &queue).await == 0).then_some(()) },
    )
    .await;

    let channel = observer.create_channel().await.unwrap();
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
}
