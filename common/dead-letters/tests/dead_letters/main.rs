//! Dead-letter tooling against the real local RabbitMQ: a unique prefix per
//! test, its queues deleted afterwards. The operations are in [`operations`],
//! the `dlq` command line in [`command_line`]; this module holds the fixture.

mod command_line;
mod operations;

use std::{sync::Arc, time::Duration};

use clap::Parser as _;
use contract::{
    events::{Event, OrderCreated},
    names::PAYMENT_QUEUE,
};
use dead_letters::cli::{self, Cli};
use lapin::{
    BasicProperties, Connection,
    options::{BasicGetOptions, BasicPublishOptions, BasicRejectOptions},
};
use messaging::{
    AmqpSettings, headers,
    topology::{QueueSpec, Topology},
};
use test_support::{self, BrokerCleanup, eventually};

struct Fixture {
    settings: AmqpSettings,
    topology: Topology,
    queue: QueueSpec,
    conn: Arc<Connection>,
    _cleanup: BrokerCleanup,
}

impl Fixture {
    async fn new() -> Self {
        test_support::init_logs();
        let settings = test_support::fresh_amqp();
        let topology = Topology::new(&settings);
        let queue = topology.queue(PAYMENT_QUEUE, OrderCreated::ROUTING_KEY);
        let cleanup = BrokerCleanup {
            settings: settings.clone(),
            queues: vec![queue.clone()],
        };
        let conn = Arc::new(test_support::test_connection().await);
        topology.declare_queue(&conn, &queue).await.unwrap();
        Self {
            settings,
            topology,
            queue,
            conn,
            _cleanup: cleanup,
        }
    }

    /// Parks a message the way the consumer does: published to the
    /// dead-letter exchange with the work queue's name and the park headers.
    async fn park(&self, message_id: &str, reason: &str) {
        let properties = headers::with_headers(&properties(message_id), |h| {
            headers::insert_str(h, headers::PARK_REASON, reason);
            headers::insert_u32(h, headers::RETRY_COUNT, 3);
            headers::insert_str(h, headers::PARKED_AT, "1700000000");
            headers::insert_str(h, headers::PARKED_BY, "payment-service");
            headers::insert_str(h, headers::ORIGINAL_ROUTING_KEY, OrderCreated::ROUTING_KEY);
        });
        self.publish(
            &self.topology.dead_letter_exchange(),
            &self.queue.name,
            properties,
            message_id,
        )
        .await;
    }

    /// Parks a message through the work queue's own dead-letter settings: a
    /// consumer rejects it without requeue.
    async fn park_natively(&self, message_id: &str) {
        let before = self.dlq_depth().await;
        self.publish("", &self.queue.name, properties(message_id), message_id)
            .await;
        let channel = self.conn.create_channel().await.unwrap();
        let delivery = channel
            .basic_get(
                self.queue.name.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .unwrap()
            .expect("the message is on the work queue");
        delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
        let _ = channel.close(200, "rejected".into()).await;
        // At-least-once dead-lettering is asynchronous.
        self.wait_for_dlq_depth(before + 1).await;
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: BasicProperties,
        message_id: &str,
    ) {
        let channel = self.conn.create_channel().await.unwrap();
        channel.confirm_select(Default::default()).await.unwrap();
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body(message_id).as_bytes(),
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            matches!(confirm, lapin::Confirmation::Ack(None)),
            "{confirm:?}"
        );
        let _ = channel.close(200, "published".into()).await;
    }

    async fn dlq_depth(&self) -> u32 {
        test_support::queue_depth(&self.conn, &self.queue.dead_letter_queue).await
    }

    async fn work_depth(&self) -> u32 {
        test_support::queue_depth(&self.conn, &self.queue.name).await
    }

    /// Messages a channel returned on close are back after a short while.
    async fn wait_for_dlq_depth(&self, expected: u32) {
        eventually(
            Duration::from_secs(10),
            &format!("{expected} messages in the dead-letter queue"),
            || async move { (self.dlq_depth().await == expected).then_some(()) },
        )
        .await;
    }

    async fn parked_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = dead_letters::list(&self.conn, &self.queue, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.message_id.unwrap())
            .collect();
        ids.sort();
        ids
    }

    async fn cli(&self, words: &str) -> anyhow::Result<String> {
        let words = ["dlq", "--queue", PAYMENT_QUEUE]
            .into_iter()
            .chain(words.split_whitespace());
        let parsed = Cli::try_parse_from(words)?;
        cli::execute(&self.settings, &parsed.queue, parsed.command).await
    }
}

fn properties(message_id: &str) -> BasicProperties {
    headers::event_properties(
        message_id,
        "order.created",
        "order-1",
        "tests",
        1_700_000_000,
    )
}

fn body(message_id: &str) -> String {
    format!(r#"{{"event_type":"order.created","event_id":"{message_id}"}}"#)
}
