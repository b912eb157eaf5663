//! Declaring the topology on a broker that already holds it, as an earlier
//! version declared it.

use contract::names::PAYMENT_QUEUE;
use lapin::{
    options::{BasicPublishOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use messaging::topology::Topology;
use test_support::{BrokerCleanup, LogCapture};

/// A dead-letter or retry queue as version 0.2 declared it: quorum, no
/// `x-delivery-limit`.
fn without_delivery_limit(arguments: &FieldTable) -> FieldTable {
    let mut older = FieldTable::default();
    for (key, value) in arguments.inner() {
        if key.as_str() != "x-delivery-limit" {
            older.insert(key.clone(), value.clone());
        }
    }
    older
}

#[tokio::test]
async fn queues_declared_without_a_delivery_limit_are_kept_and_the_rest_is_declared() {
    let logs = LogCapture::install();
    let settings = test_support::fresh_amqp();
    let _cleanup = BrokerCleanup::all(&settings);
    let topology = Topology::new(&settings);
    let queue = topology.queue(PAYMENT_QUEUE, "order.order.created");
    let conn = test_support::test_connection().await;
    let channel = conn.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut older = 0;
    for declaration in topology.queue_declarations(&queue) {
        if declaration.name != queue.name {
            let arguments = without_delivery_limit(&declaration.arguments);
            channel
                .queue_declare(declaration.name.as_str().into(), durable, arguments)
                .await
                .unwrap();
            older += 1;
        }
    }

    topology.declare_queue(&conn, &queue).await.unwrap();

    let warnings = logs
        .lines()
        .into_iter()
        .filter(|line| line["level"] == "WARN")
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains("without x-delivery-limit"))
        })
        .count();
    assert_eq!(warnings, older, "one warning per queue kept as it was");
    // The work queue was declared with its limit, and bound.
    let work = topology.queue_declarations(&queue).remove(0);
    assert_eq!(
        work.arguments.inner().get("x-delivery-limit"),
        Some(&AMQPValue::LongInt(settings.delivery_limit as i32))
    );
    channel
        .queue_declare(queue.name.as_str().into(), durable, work.arguments)
        .await
        .expect("the work queue exists with the arguments of this version");
    let confirm = channel
        .basic_publish(
            topology.exchange().as_str().into(),
            "order.order.created".into(),
            BasicPublishOptions::default(),
            b"{}",
            Default::default(),
        )
        .await
        .unwrap();
    confirm.await.unwrap();
    test_support::eventually(
        std::time::Duration::from_secs(10),
        "the message routed to the work queue",
        || async { (test_support::queue_depth(&conn, &queue.name).await == 1).then_some(()) },
    )
    .await;
}
