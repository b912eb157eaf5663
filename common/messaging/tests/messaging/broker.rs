//! A service's broker connection behind a proxy in front of the real
//! RabbitMQ, which cuts it or freezes it: when the connection fails, its
//! supervisor opens a new one and the consumer is back on its queue there,
//! once, without the service restarting.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use contract::{
    events::{Event, OrderCreated},
    names::PAYMENT_QUEUE,
};
use messaging::{
    broker::Broker,
    consumer::{Handler, HandlerError, Incoming},
    topology::{QueueSpec, Topology},
};
use runtime::{
    health::{Flag, StartupProgress},
    service::Tasks,
};
use test_support::{self, BrokerCleanup, FaultProxy, eventually};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Default)]
struct Recorder(Mutex<Vec<Uuid>>);

#[async_trait::async_trait]
impl Handler<OrderCreated> for Recorder {
    async fn handle(&self, message: Incoming<OrderCreated>) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(message.event.order_id);
        Ok(())
    }
}

/// A consumer of a fresh payment queue run as a service runs it (the
/// connection's supervisor beside it), connected through `proxy`.
struct Service {
    proxy: FaultProxy,
    topology: Topology,
    queue: QueueSpec,
    connected: Flag,
    attached: Flag,
    recorder: Arc<Recorder>,
    observer: lapin::Connection,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    _cleanup: BrokerCleanup,
}

impl Service {
    /// `url_suffix` is appended to the broker URL (`?heartbeat=2`).
    async fn start(url_suffix: &str) -> Self {
        test_support::init_logs();
        let mut settings = test_support::fresh_amqp();
        let topology = Topology::new(&settings);
        let queue = topology.queue(PAYMENT_QUEUE, OrderCreated::ROUTING_KEY);
        let cleanup = BrokerCleanup {
            settings: settings.clone(),
            queues: vec![queue.clone()],
        };
        let proxy = FaultProxy::start(test_support::socket_addr_of(&settings.url)).await;
        settings.url = proxy.rewrite_url(&settings.url) + url_suffix;
        let broker = Broker::connect(settings, "reconnect-test", &StartupProgress::new("test"))
            .await
            .unwrap();
        let connected = broker.connected.clone();
        let recorder = Arc::new(Recorder::default());
        let consumer = broker.consumer::<OrderCreated, _>(PAYMENT_QUEUE, recorder.clone());
        let attached = consumer.attached.clone();
        let mut tasks = Tasks::new();
        tasks.intake("consumer", move |stop| consumer.run(stop));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { broker.run(tasks, shutdown).await }
        });
        let observer = test_support::test_connection().await;
        test_support::wait_for_consumers(&observer, &queue.name, 1).await;
        Self {
            proxy,
            topology,
            queue,
            connected,
            attached,
            recorder,
            observer,
            shutdown,
            task,
            _cleanup: cleanup,
        }
    }

    async fn wait_until_lost(&self, within: Duration) {
        eventually(within, "the connection seen lost", || async {
            (!self.connected.get() && !self.attached.get()).then_some(())
        })
        .await;
    }

    async fn wait_until_back(&self, within: Duration) {
        eventually(within, "the consumer back on a new connection", || async {
            (self.connected.get() && self.attached.get()).then_some(())
        })
        .await;
    }

    /// An event published now is handled; exactly one consumer is on the
    /// queue; the service never stopped. Then stops it.
    async fn consumes_once_and_stops(self) {
        let event = test_support::fixtures::order_created("reconnect@example.com");
        test_support::publish_raw(
            &self.observer,
            &self.topology.exchange(),
            OrderCreated::ROUTING_KEY,
            &serde_json::to_vec(&event).unwrap(),
            &event.event_id.to_string(),
        )
        .await;
        eventually(Duration::from_secs(10), "the event handled", || async {
            let handled = self.recorder.0.lock().unwrap().contains(&event.order_id);
            handled.then_some(())
        })
        .await;
        eventually(
            Duration::from_secs(15),
            "one consumer on the queue, none left from the lost connection",
            || async {
                (test_support::consumer_count(&self.observer, &self.queue.name).await == 1)
                    .then_some(())
            },
        )
        .await;
        assert!(!self.task.is_finished(), "the service never stopped");
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_lost_connection_is_replaced_and_the_consumer_consumes_again_once() {
    let service = Service::start("").await;
    service.proxy.cut();
    service.wait_until_lost(Duration::from_secs(10)).await;
    eventually(
        Duration::from_secs(10),
        "the broker to drop the old consumer",
        || async {
            (test_support::consumer_count(&service.observer, &service.queue.name).await == 0)
                .then_some(())
        },
    )
    .await;
    service.proxy.restore();
    service.wait_until_back(Duration::from_secs(20)).await;
    service.consumes_once_and_stops().await;
}

/// M7: the peer goes silent without closing. Heartbeats (2 s here) find it
/// out after two silent intervals; the supervisor then connects again.
/// Without them the frozen link would be kept for good.
#[tokio::test]
async fn a_half_open_connection_is_found_by_heartbeats_and_replaced() {
    let service = Service::start("?heartbeat=2").await;
    let before = service.proxy.connections_accepted();
    let frozen = Instant::now();
    service.proxy.freeze();
    // A new link goes through at once, so the flags may be down for less
    // than a poll: the new connection is what shows the old one was dropped.
    eventually(Duration::from_secs(20), "a new connection", || async {
        (service.proxy.connections_accepted() > before).then_some(())
    })
    .await;
    service.wait_until_back(Duration::from_secs(10)).await;
    tracing::info!(after = ?frozen.elapsed(), "consuming again after the link froze");
    service.consumes_once_and_stops().await;
}
