//! Coalesced acks (`consumer/acks.rs`) against the real RabbitMQ: one ack
//! frame settles deliveries that finished together, and never one that is
//! still being handled. What the broker still holds is read after the
//! consumer's connection is closed: every unacked delivery is then ready
//! again.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use contract::{
    events::{Event, OrderCreated},
    names::PAYMENT_QUEUE,
};
use messaging::{
    AmqpSettings,
    broker::Broker,
    consumer::{Handler, HandlerError, Incoming},
    topology::{QueueSpec, Topology},
};
use runtime::health::StartupProgress;
use test_support::{self, BrokerCleanup, Metrics, eventually};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Handles every order at once, except those in `held`: they wait for `gate`
/// to open.
struct GatedHandler {
    held: HashSet<Uuid>,
    gate: watch::Receiver<bool>,
    handled: Mutex<Vec<Uuid>>,
}

#[async_trait::async_trait]
impl Handler<OrderCreated> for GatedHandler {
    async fn handle(&self, message: Incoming<OrderCreated>) -> Result<(), HandlerError> {
        let order = message.event.order_id;
        if self.held.contains(&order) {
            let mut gate = self.gate.clone();
            let _ = gate.wait_for(|open| *open).await;
        }
        self.handled.lock().unwrap().push(order);
        Ok(())
    }
}

struct Fixture {
    settings: AmqpSettings,
    queue: QueueSpec,
    broker: Broker,
    observer: lapin::Connection,
    consumer: tokio::task::JoinHandle<anyhow::Result<()>>,
    handler: Arc<GatedHandler>,
    gate: watch::Sender<bool>,
    _cleanup: BrokerCleanup,
}

impl Fixture {
    /// A consumer of a fresh payment queue whose handler holds `held` orders.
    async fn start(held: &[Uuid]) -> Self {
        test_support::init_logs();
        runtime::metrics::install();
        let mut settings = test_support::fresh_amqp();
        settings.prefetch = 50;
        let queue = Topology::new(&settings).queue(PAYMENT_QUEUE, OrderCreated::ROUTING_KEY);
        let cleanup = BrokerCleanup {
            settings: settings.clone(),
            queues: vec![queue.clone()],
        };
        let (gate, gate_rx) = watch::channel(false);
        let handler = Arc::new(GatedHandler {
            held: held.iter().copied().collect(),
            gate: gate_rx,
            handled: Mutex::default(),
        });
        let broker = Broker::connect(settings.clone(), "acks-test", &StartupProgress::new("test"))
            .await
            .unwrap();
        let consumer = broker.consumer::<OrderCreated, _>(PAYMENT_QUEUE, handler.clone());
        let consumer = tokio::spawn(consumer.run(CancellationToken::new()));
        let observer = test_support::test_connection().await;
        test_support::wait_for_consumers(&observer, &queue.name, 1).await;
        Self {
            settings,
            queue,
            broker,
            observer,
            consumer,
            handler,
            gate,
            _cleanup: cleanup,
        }
    }

    async fn publish(&self, orders: &[Uuid]) {
        let exchange = Topology::new(&self.settings).exchange();
        for order in orders {
            let mut event = test_support::fixtures::order_created("acks@example.com");
            event.order_id = *order;
            let body = serde_json::to_vec(&event).unwrap();
            let id = event.event_id.to_string();
            test_support::publish_raw(
                &self.observer,
                &exchange,
                OrderCreated::ROUTING_KEY,
                &body,
                &id,
            )
            .await;
        }
    }

    fn handled(&self) -> usize {
        self.handler.handled.lock().unwrap().len()
    }

    /// `(ack frames, deliveries they settled)` on this test's queue.
    fn ack_frames(&self) -> (f64, f64) {
        let metrics = Metrics::parse(&runtime::metrics::install().render());
        let labels = [("queue", self.queue.name.as_str())];
        (
            metrics.sum("consumer_ack_batch_size_count", &labels),
            metrics.sum("consumer_ack_batch_size_sum", &labels),
        )
    }

    async fn wait_for_acks(&self, deliveries: f64) {
        eventually(Duration::from_secs(10), "the acks to be sent", || async {
            (self.ack_frames().1 >= deliveries).then_some(())
        })
        .await;
    }

    /// Stops the consumer without draining and closes its connection: the
    /// broker makes whatever was not acked ready again.
    async fn kill_consumer(&self) {
        self.consumer.abort();
        self.broker.close().await;
    }

    /// The order ids of the messages left in the queue (taken off it).
    async fn left_in_queue(&self, at_least: usize) -> Vec<Uuid> {
        test_support::take_messages(
            &self.observer,
            &self.queue.name,
            at_least,
            Duration::from_secs(10),
        )
        .await
        .iter()
        .map(|m| {
            serde_json::from_slice::<OrderCreated>(&m.data)
                .unwrap()
                .order_id
        })
        .collect()
    }
}

fn orders(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::new_v4()).collect()
}

#[tokio::test]
async fn deliveries_that_finish_together_share_one_ack() {
    let orders = orders(20);
    let fixture = Fixture::start(&orders).await;
    fixture.publish(&orders).await;
    eventually(
        Duration::from_secs(10),
        "all 20 deliveries to reach the handler",
        || async {
            (test_support::queue_depth(&fixture.observer, &fixture.queue.name).await == 0)
                .then_some(())
        },
    )
    .await;
    // Let every handler reach the gate, then open it: they finish together.
    eventually(Duration::from_secs(10), "the handlers to wait", || async {
        (fixture.gate.receiver_count() >= 21).then_some(())
    })
    .await;
    fixture.gate.send_replace(true);
    fixture.wait_for_acks(20.0).await;

    let (frames, settled) = fixture.ack_frames();
    assert_eq!(settled, 20.0);
    assert!(
        frames <= 2.0,
        "20 deliveries finishing together took {frames} ack frames"
    );
    // The broker took the multiple ack for all of them.
    fixture.kill_consumer().await;
    assert_eq!(
        test_support::queue_depth(&fixture.observer, &fixture.queue.name).await,
        0
    );
}

#[tokio::test]
async fn a_delivery_still_being_handled_is_not_acked_by_the_ones_after_it() {
    let orders = orders(10);
    let slow = orders[0];
    let fixture = Fixture::start(&[slow]).await;
    fixture.publish(&orders).await;
    eventually(
        Duration::from_secs(10),
        "the nine others to be handled",
        || async { (fixture.handled() == 9).then_some(()) },
    )
    .await;
    // They finished after the slow one arrived, so each waits out its hold
    // and is acked alone.
    fixture.wait_for_acks(9.0).await;
    assert_eq!(fixture.ack_frames().0, 9.0);

    // The consumer dies with the first order unfinished: the broker still
    // has it, and only it.
    fixture.kill_consumer().await;
    assert_eq!(fixture.left_in_queue(1).await, vec![slow]);
    assert_eq!(
        test_support::queue_depth(&fixture.observer, &fixture.queue.name).await,
        0
    );
}
