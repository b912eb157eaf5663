//! Dead-letter tooling against the real local RabbitMQ: a unique prefix per
//! test, its queues deleted afterwards.

use std::{sync::Arc, time::Duration};

use clap::Parser as _;
use contract::{
    events::{Event, OrderCreated},
    names::PAYMENT_QUEUE,
};
use dead_letters::{
    REPLAYED_AT,
    cli::{self, Cli},
};
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
        let channel = conn.create_channel().await.unwrap();
        topology.declare_queue(&channel, &queue).await.unwrap();
        let _ = channel.close(200, "declared".into()).await;
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

#[tokio::test]
async fn listing_shows_parked_and_broker_dead_lettered_messages_without_removing_them() {
    let f = Fixture::new().await;
    f.park("m-1", "gave up after 3 retries: provider down")
        .await;
    f.park("m-2", "malformed message: expected value").await;
    f.park_natively("m-3").await;
    f.wait_for_dlq_depth(3).await;

    let parked = dead_letters::list(&f.conn, &f.queue, 10).await.unwrap();
    assert_eq!(parked.len(), 3);
    let by_id = |id: &str| {
        parked
            .iter()
            .find(|m| m.message_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    let ours = by_id("m-1");
    assert_eq!(
        ours.reason.as_deref(),
        Some("gave up after 3 retries: provider down")
    );
    assert_eq!(ours.retries, Some(3));
    assert_eq!(ours.parked_by.as_deref(), Some("payment-service"));
    assert_eq!(
        ours.parked_at,
        chrono::DateTime::from_timestamp(1_700_000_000, 0)
    );
    assert_eq!(
        ours.original_routing_key.as_deref(),
        Some(OrderCreated::ROUTING_KEY)
    );
    assert_eq!(ours.body_preview, body("m-1"));
    assert_eq!(ours.body_bytes, body("m-1").len());

    let native = by_id("m-3");
    let reason = native.reason.as_deref().unwrap();
    assert!(reason.contains("rejected"), "{reason}");
    assert!(reason.contains(&f.queue.name), "{reason}");
    assert_eq!(native.parked_by.as_deref(), Some("broker"));
    assert!(native.parked_at.is_some());
    assert_eq!(native.retries, None);

    // Nothing was removed: the same three are there, and can be listed again.
    f.wait_for_dlq_depth(3).await;
    assert_eq!(f.parked_ids().await, ["m-1", "m-2", "m-3"]);
    f.wait_for_dlq_depth(3).await;

    // The limit bounds the listing; the oldest come first.
    let first_two = dead_letters::list(&f.conn, &f.queue, 2).await.unwrap();
    assert_eq!(first_two.len(), 2);
    f.wait_for_dlq_depth(3).await;
    assert_eq!(f.work_depth().await, 0);
}

#[tokio::test]
async fn replaying_one_id_puts_exactly_that_message_back_on_the_work_queue_with_retry_count_zero() {
    let f = Fixture::new().await;
    f.park("m-1", "boom").await;
    f.park("m-2", "boom").await;
    f.park_natively("m-3").await;
    f.wait_for_dlq_depth(3).await;

    let replayed = dead_letters::replay(&f.conn, &f.settings, &f.queue, Some("m-2"), usize::MAX)
        .await
        .unwrap();
    assert_eq!(replayed, 1);

    f.wait_for_dlq_depth(2).await;
    assert_eq!(f.parked_ids().await, ["m-1", "m-3"]);
    let back = test_support::take_messages(&f.conn, &f.queue.name, 1, Duration::from_secs(5)).await;
    assert_eq!(back.len(), 1);
    let message = &back[0];
    assert_eq!(
        message.properties.message_id().as_ref().unwrap().as_str(),
        "m-2"
    );
    assert_eq!(message.data, body("m-2").as_bytes());
    assert_eq!(
        headers::get_u32(&message.properties, headers::RETRY_COUNT),
        Some(0)
    );
    assert_eq!(
        headers::get_str(&message.properties, headers::PARK_REASON),
        None
    );
    assert_eq!(
        headers::get_str(&message.properties, headers::PARKED_BY),
        None
    );
    assert!(headers::get_str(&message.properties, REPLAYED_AT).is_some());
    // The event's own properties travel unchanged.
    assert_eq!(
        message
            .properties
            .correlation_id()
            .as_ref()
            .unwrap()
            .as_str(),
        "order-1"
    );
    assert_eq!(
        headers::get_str(&message.properties, headers::ORIGINAL_ROUTING_KEY).as_deref(),
        Some(OrderCreated::ROUTING_KEY)
    );
}

#[tokio::test]
async fn replaying_all_moves_every_parked_message_back_without_the_broker_death_history() {
    let f = Fixture::new().await;
    f.park("m-1", "boom").await;
    f.park_natively("m-2").await;
    f.wait_for_dlq_depth(2).await;

    let replayed = dead_letters::replay(&f.conn, &f.settings, &f.queue, None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(replayed, 2);
    f.wait_for_dlq_depth(0).await;

    let back = test_support::take_messages(&f.conn, &f.queue.name, 2, Duration::from_secs(5)).await;
    let mut ids: Vec<&str> = back
        .iter()
        .map(|m| m.properties.message_id().as_ref().unwrap().as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["m-1", "m-2"]);
    for message in &back {
        let headers = message.properties.headers().as_ref().unwrap().inner();
        assert!(!headers.contains_key("x-death"), "{headers:?}");
        assert!(!headers.contains_key("x-first-death-reason"), "{headers:?}");
        assert_eq!(
            headers::get_u32(&message.properties, headers::RETRY_COUNT),
            Some(0)
        );
    }
}

#[tokio::test]
async fn a_replay_the_broker_does_not_confirm_leaves_the_message_parked() {
    let f = Fixture::new().await;
    f.park("m-1", "boom").await;
    f.wait_for_dlq_depth(1).await;
    // No work queue: the republish is returned as unroutable.
    let channel = f.conn.create_channel().await.unwrap();
    channel
        .queue_delete(f.queue.name.as_str().into(), Default::default())
        .await
        .unwrap();

    let error = dead_letters::replay(&f.conn, &f.settings, &f.queue, None, usize::MAX)
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("unroutable"), "{error:#}");

    f.wait_for_dlq_depth(1).await;
    assert_eq!(f.parked_ids().await, ["m-1"]);
}

#[tokio::test]
async fn purging_one_id_deletes_only_that_message() {
    let f = Fixture::new().await;
    f.park("m-1", "boom").await;
    f.park("m-2", "boom").await;
    f.park_natively("m-3").await;
    f.wait_for_dlq_depth(3).await;

    let purged = dead_letters::purge(&f.conn, &f.queue, Some("m-3"))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    f.wait_for_dlq_depth(2).await;
    assert_eq!(f.parked_ids().await, ["m-1", "m-2"]);
    assert_eq!(f.work_depth().await, 0);

    let none = dead_letters::purge(&f.conn, &f.queue, Some("unknown"))
        .await
        .unwrap();
    assert_eq!(none, 0);
    f.wait_for_dlq_depth(2).await;
}

#[tokio::test]
async fn purging_all_empties_the_dead_letter_queue() {
    let f = Fixture::new().await;
    f.park("m-1", "boom").await;
    f.park("m-2", "boom").await;
    f.park_natively("m-3").await;
    f.wait_for_dlq_depth(3).await;

    let purged = dead_letters::purge(&f.conn, &f.queue, None).await.unwrap();
    assert_eq!(purged, 3);
    assert_eq!(f.dlq_depth().await, 0);
    assert_eq!(f.work_depth().await, 0);
}

#[tokio::test]
async fn the_command_line_lists_shows_replays_and_purges() {
    let f = Fixture::new().await;
    assert_eq!(
        f.cli("list").await.unwrap(),
        format!("{}: no parked messages.\n", f.queue.dead_letter_queue)
    );
    f.park("m-1", "gave up after 3 retries: provider down")
        .await;
    f.park("m-2", "malformed message").await;
    f.park_natively("m-3").await;
    f.wait_for_dlq_depth(3).await;

    let table = f.cli("list").await.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        format!("{}: 3 messages parked.", f.queue.dead_letter_queue)
    );
    assert!(lines[2].starts_with("MESSAGE ID"), "{table}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("m-1") && l.contains("provider down")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("m-3") && l.contains("broker") && l.contains("rejected")),
        "{table}"
    );
    f.wait_for_dlq_depth(3).await;

    let limited = f.cli("list --limit 1").await.unwrap();
    assert!(limited.contains("showing the oldest 1"), "{limited}");

    let json: serde_json::Value =
        serde_json::from_str(&f.cli("list --json").await.unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert!(json[0]["message_id"].is_string());
    f.wait_for_dlq_depth(3).await;

    let shown = f.cli("show m-1").await.unwrap();
    assert!(shown.contains("message_id: m-1"), "{shown}");
    assert!(
        shown.contains("x-park-reason: gave up after 3 retries: provider down"),
        "{shown}"
    );
    assert!(shown.contains("\"event_id\": \"m-1\""), "{shown}");
    let unknown = f.cli("show nope").await.unwrap_err();
    assert!(
        format!("{unknown:#}").contains("no parked message"),
        "{unknown:#}"
    );

    let refused = f.cli("purge").await.unwrap_err();
    assert!(format!("{refused:#}").contains("--all"), "{refused:#}");
    f.wait_for_dlq_depth(3).await;

    assert_eq!(
        f.cli("replay m-2").await.unwrap(),
        format!(
            "Replayed 1 message from {} to {} (retry count reset to 0).\n",
            f.queue.dead_letter_queue, f.queue.name
        )
    );
    assert_eq!(
        f.cli("purge m-1").await.unwrap(),
        format!("Purged 1 message from {}.\n", f.queue.dead_letter_queue)
    );
    f.wait_for_dlq_depth(1).await;
    assert_eq!(
        f.cli("purge --all").await.unwrap(),
        format!("Purged 1 message from {}.\n", f.queue.dead_letter_queue)
    );
    assert_eq!(f.dlq_depth().await, 0);
    assert_eq!(f.work_depth().await, 1);
}

/// The binary itself: usage errors exit with 2 before connecting anywhere,
/// `--help` and `--version` answer and exit 0.
#[test]
fn the_binary_answers_help_and_version_and_refuses_bad_usage_with_2() {
    let dlq = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dlq"))
            .args(args)
            // Unreachable: a usage error must not try the broker.
            .env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
            .output()
            .unwrap()
    };
    let help = dlq(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    for word in ["--queue", "list", "show", "replay", "purge", "RABBITMQ_URL"] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    assert_eq!(dlq(&["--version"]).status.code(), Some(0));
    for bad in [
        &["--queue", PAYMENT_QUEUE, "lsit"][..],
        &["--queue", "no_such_queue", "list"],
        &["list"],
        &["--queue", PAYMENT_QUEUE, "purge"],
        &["--queue", PAYMENT_QUEUE, "purge", "m-1", "--all"],
        &["--queue", PAYMENT_QUEUE, "list", "--limit", "0"],
    ] {
        let out = dlq(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error:"),
            "{bad:?}: {out:?}"
        );
    }
    // A well-formed command that cannot reach the broker is a failure (1),
    // and says where it tried without the password.
    let out = dlq(&["--queue", PAYMENT_QUEUE, "list"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("guest:guest"), "{stderr}");
}
