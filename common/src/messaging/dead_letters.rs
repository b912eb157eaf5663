//! Dead-letter tooling: inspect, replay and purge the messages parked in a
//! work queue's `<queue>.dlq` (DESIGN.md: "a parked message can be inspected
//! and replayed").
//!
//! A message reaches the dead-letter queue in one of two ways:
//! - the consumer gave up on it and published it to the dead-letter exchange
//!   with `x-park-reason`, `x-retry-count`, `x-parked-at`, `x-parked-by` and
//!   `x-original-routing-key` (see [`super::consumer`]);
//! - the broker dead-lettered it through the work queue's own settings
//!   (rejected without requeue, delivery limit exceeded): then only RabbitMQ's
//!   `x-death` array says why.
//!
//! Every operation reads the queue with `basic.get` without acking on one
//! channel, so messages it does not take stay parked: closing the channel
//! hands every unacked message back to the queue. An operation looks at no
//! more messages than the queue held when it started, so a replayed message
//! that fails again and is parked anew is not picked up a second time.
//!
//! [`replay`] publishes a message back to its work queue through the default
//! exchange (routing key = queue name, so it reaches that one queue and does
//! not fan out to the topic's other subscribers again), with publisher
//! confirms, and acks it on the dead-letter queue only after a positive,
//! non-returned confirm: a replay that fails leaves the message parked.
//! The replayed copy starts with `x-retry-count` 0 and without the park
//! headers and the broker's death history, with `x-replayed-at` added.
//!
//! The same operations are on the command line of every consuming service
//! ([`cli`]): `payment-service dlq list`.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use lapin::{
    BasicProperties, Channel, Connection,
    message::Delivery,
    options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions, QueuePurgeOptions},
    types::{AMQPValue, FieldTable},
};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    AmqpSettings, headers,
    publisher::{Outgoing, Publisher},
    topology::QueueSpec,
};

/// When the message was replayed from the dead-letter queue (unix seconds).
pub const REPLAYED_AT: &str = "x-replayed-at";

/// How much of the body [`ParkedMessage::body_preview`] holds.
pub const PREVIEW_BYTES: usize = 500;

/// Headers a replayed message leaves behind.
///
/// The broker's death history has to go too: RabbitMQ drops a message that is
/// dead-lettered back into a queue already named in its `x-death` without a
/// rejection in between ("dead-letter cycle"). A replayed message that had
/// been dead-lettered from its work queue (delivery limit) would be dropped
/// silently on its way back from the first retry tier (TTL expiry).
const CLEARED_ON_REPLAY: &[&str] = &[
    headers::PARK_REASON,
    headers::PARKED_AT,
    headers::PARKED_BY,
    headers::LAST_ERROR,
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "x-first-death-exchange",
    "x-last-death-reason",
    "x-last-death-queue",
    "x-last-death-exchange",
    "x-delivery-count",
];

/// A summary of one parked message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParkedMessage {
    /// The AMQP `message_id` (the event id); absent on a malformed message
    /// published without one.
    pub message_id: Option<String>,
    /// Why it was parked: `x-park-reason`, or for a message the broker
    /// dead-lettered itself, the reason recorded in `x-death`.
    pub reason: Option<String>,
    /// Retries it had before it was parked (`x-retry-count`).
    pub retries: Option<u32>,
    pub parked_at: Option<DateTime<Utc>>,
    /// The service that parked it, or `broker` when RabbitMQ dead-lettered it.
    pub parked_by: Option<String>,
    /// The routing key it was first published with.
    pub original_routing_key: Option<String>,
    /// The first [`PREVIEW_BYTES`] bytes of the body, as lossy UTF-8.
    pub body_preview: String,
    pub body_bytes: usize,
}

/// A parked message in full: its summary, properties and body.
#[derive(Debug, Clone)]
pub struct ParkedDetail {
    pub summary: ParkedMessage,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

impl ParkedMessage {
    /// Summarises a delivery from the dead-letter queue of work queue `work_queue`.
    pub fn from_delivery(delivery: &Delivery, work_queue: &str) -> Self {
        let properties = &delivery.properties;
        let death = latest_death(properties, work_queue);
        let parked_by_us = headers::get_str(properties, headers::PARK_REASON);
        let reason = parked_by_us.clone().or_else(|| {
            let (reason, queue) = match &death {
                Some(death) => (death_str(death, "reason")?, death_str(death, "queue")),
                None => (
                    headers::get_str(properties, "x-first-death-reason")?,
                    headers::get_str(properties, "x-first-death-queue"),
                ),
            };
            let mut text = format!("dead-lettered by the broker: {reason}");
            if let Some(queue) = queue {
                text.push_str(&format!(" (from {queue})"));
            }
            if let Some(error) = headers::get_str(properties, headers::LAST_ERROR) {
                text.push_str(&format!("; last error: {error}"));
            }
            Some(text)
        });
        let parked_at = headers::get_str(properties, headers::PARKED_AT)
            .and_then(|s| s.trim().parse::<i64>().ok())
            .or_else(|| match death.as_ref()?.inner().get("time")? {
                AMQPValue::Timestamp(t) => i64::try_from(*t).ok(),
                _ => None,
            })
            .and_then(|secs| DateTime::from_timestamp(secs, 0));
        let parked_by = headers::get_str(properties, headers::PARKED_BY).or_else(|| {
            (parked_by_us.is_none() && (death.is_some() || reason.is_some()))
                .then(|| "broker".to_owned())
        });
        let original_routing_key = headers::get_str(properties, headers::ORIGINAL_ROUTING_KEY)
            .or_else(|| match death.as_ref()?.inner().get("routing-keys")? {
                AMQPValue::FieldArray(keys) => keys.as_slice().first().and_then(value_str),
                _ => None,
            });
        let preview = &delivery.data[..delivery.data.len().min(PREVIEW_BYTES)];
        Self {
            message_id: properties.message_id().as_ref().map(|id| id.to_string()),
            reason,
            retries: headers::get_u32(properties, headers::RETRY_COUNT),
            parked_at,
            parked_by,
            original_routing_key,
            body_preview: String::from_utf8_lossy(preview).into_owned(),
            body_bytes: delivery.data.len(),
        }
    }
}

/// The `x-death` entry that explains why the message is in the dead-letter
/// queue: the most recent one from the work queue itself (entries are sorted
/// most recent first), else the most recent one. Entries from retry tiers
/// (`expired`) are only how retries travel, not why the message was parked.
fn latest_death(properties: &BasicProperties, work_queue: &str) -> Option<FieldTable> {
    let deaths = match properties.headers().as_ref()?.inner().get("x-death")? {
        AMQPValue::FieldArray(deaths) => deaths,
        _ => return None,
    };
    let tables: Vec<&FieldTable> = deaths
        .as_slice()
        .iter()
        .filter_map(|d| match d {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        })
        .collect();
    tables
        .iter()
        .find(|t| death_str(t, "queue").as_deref() == Some(work_queue))
        .or_else(|| tables.first())
        .map(|t| (*t).clone())
}

fn death_str(death: &FieldTable, key: &str) -> Option<String> {
    value_str(death.inner().get(key)?)
}

fn value_str(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Ready messages in the dead-letter queue of `queue`.
pub async fn count(conn: &Connection, queue: &QueueSpec) -> anyhow::Result<u32> {
    let scan = Scan::open(conn, &queue.dead_letter_queue, usize::MAX).await?;
    let depth = scan.depth;
    scan.close().await;
    Ok(depth)
}

/// Up to `limit` parked messages, oldest first, without removing any.
pub async fn list(
    conn: &Connection,
    queue: &QueueSpec,
    limit: usize,
) -> anyhow::Result<Vec<ParkedMessage>> {
    let mut scan = Scan::open(conn, &queue.dead_letter_queue, limit).await?;
    let mut parked = Vec::new();
    let outcome = async {
        while let Some(delivery) = scan.next().await? {
            parked.push(ParkedMessage::from_delivery(&delivery, &queue.name));
        }
        anyhow::Ok(())
    }
    .await;
    // Nothing was acked: closing the channel returns every message.
    scan.close().await;
    outcome.map(|()| parked)
}

/// Every parked message whose `message_id` is `message_id`, in full, without
/// removing any.
pub async fn show(
    conn: &Connection,
    queue: &QueueSpec,
    message_id: &str,
) -> anyhow::Result<Vec<ParkedDetail>> {
    let mut scan = Scan::open(conn, &queue.dead_letter_queue, usize::MAX).await?;
    let mut found = Vec::new();
    let outcome = async {
        while let Some(delivery) = scan.next().await? {
            if has_id(&delivery, Some(message_id)) {
                found.push(ParkedDetail {
                    summary: ParkedMessage::from_delivery(&delivery, &queue.name),
                    properties: delivery.properties,
                    body: delivery.data,
                });
            }
        }
        anyhow::Ok(())
    }
    .await;
    scan.close().await;
    outcome.map(|()| found)
}

/// Publishes parked messages back to their work queue and removes them from
/// the dead-letter queue: those whose `message_id` is `filter` (every copy),
/// or all when `filter` is `None`; at most `limit`. Returns how many.
///
/// Each one is published through the default exchange to the work queue with
/// confirms, and acked on the dead-letter queue only after a positive,
/// non-returned confirm. On the first failure the replay stops with an error
/// (saying how many went back before it); that message stays parked.
pub async fn replay(
    conn: &Arc<Connection>,
    settings: &AmqpSettings,
    queue: &QueueSpec,
    filter: Option<&str>,
    limit: usize,
) -> anyhow::Result<usize> {
    // The default exchange needs no declaring.
    let publisher = Publisher::new(conn.clone(), settings.confirm_timeout, |_| {
        async { Ok(()) }.boxed()
    });
    let mut scan = Scan::open(conn, &queue.dead_letter_queue, usize::MAX).await?;
    let mut replayed = 0;
    let outcome = async {
        while replayed < limit {
            let Some(delivery) = scan.next().await? else {
                break;
            };
            if !has_id(&delivery, filter) {
                continue; // stays unacked: back in the queue when the scan closes
            }
            let id = describe_id(&delivery);
            let message = Outgoing {
                exchange: String::new(),
                routing_key: queue.name.clone(),
                payload: delivery.data.clone(),
                properties: replay_properties(&delivery.properties, unix_now()),
            };
            publisher
                .publish(message)
                .await
                .with_context(|| format!("publishing {id} back to {}", queue.name))?;
            ack(&delivery).await.with_context(|| {
                format!(
                    "{id} was published back to {} but could not be removed from {}; \
                     it is still parked (consumers are idempotent: a second replay is harmless)",
                    queue.name, queue.dead_letter_queue
                )
            })?;
            tracing::info!(message_id = %id, queue = %queue.name, "replayed a parked message");
            replayed += 1;
        }
        anyhow::Ok(())
    }
    .await;
    scan.close().await;
    outcome
        .map(|()| replayed)
        .map_err(|e| e.context(format!("replay stopped after {replayed} message(s)")))
}

/// Deletes parked messages for good: those whose `message_id` is `filter`
/// (every copy), or all ready messages (`queue.purge`) when `filter` is
/// `None`. Returns how many.
pub async fn purge(
    conn: &Connection,
    queue: &QueueSpec,
    filter: Option<&str>,
) -> anyhow::Result<usize> {
    let dlq = &queue.dead_letter_queue;
    let mut scan = Scan::open(conn, dlq, usize::MAX).await?;
    let Some(id) = filter else {
        let purged = scan
            .channel
            .queue_purge(dlq.as_str().into(), QueuePurgeOptions::default())
            .await
            .with_context(|| format!("purging {dlq}"));
        scan.close().await;
        return Ok(purged? as usize);
    };
    let mut purged = 0;
    let outcome = async {
        while let Some(delivery) = scan.next().await? {
            if has_id(&delivery, Some(id)) {
                ack(&delivery).await?;
                tracing::info!(message_id = %id, queue = %dlq, "purged a parked message");
                purged += 1;
            }
        }
        anyhow::Ok(())
    }
    .await;
    scan.close().await;
    outcome
        .map(|()| purged)
        .map_err(|e| e.context(format!("purge stopped after {purged} message(s)")))
}

/// `basic.get` without ack over one channel, looking at no more messages than
/// the queue held when it was opened (and at most `limit`).
struct Scan {
    channel: Channel,
    queue: String,
    depth: u32,
    remaining: usize,
}

impl Scan {
    async fn open(conn: &Connection, queue: &str, limit: usize) -> anyhow::Result<Self> {
        let channel = conn
            .create_channel()
            .await
            .context("opening a RabbitMQ channel")?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| {
                format!("looking up {queue} (the service declares it when it first starts)")
            })?;
        let depth = declared.message_count();
        Ok(Self {
            channel,
            queue: queue.to_owned(),
            depth,
            remaining: limit.min(depth as usize),
        })
    }

    async fn next(&mut self) -> anyhow::Result<Option<Delivery>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let message = self
            .channel
            .basic_get(
                self.queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .with_context(|| format!("reading {}", self.queue))?;
        Ok(message.map(|m| m.delivery))
    }

    /// Closes the channel: every message taken and not acked goes back to the
    /// queue (a channel that died returns them too).
    async fn close(self) {
        if let Err(e) = self
            .channel
            .close(200, "dead-letter scan done".into())
            .await
        {
            tracing::warn!(queue = %self.queue, error = %e, "closing the dead-letter scan channel failed; unacked messages return to the queue when the connection closes");
        }
    }
}

fn has_id(delivery: &Delivery, filter: Option<&str>) -> bool {
    match filter {
        None => true,
        Some(id) => delivery
            .properties
            .message_id()
            .as_ref()
            .is_some_and(|m| m.as_str() == id),
    }
}

fn describe_id(delivery: &Delivery) -> String {
    match delivery.properties.message_id() {
        Some(id) => format!("message {id}"),
        None => "a message without message_id".to_owned(),
    }
}

async fn ack(delivery: &Delivery) -> anyhow::Result<()> {
    match delivery.ack(BasicAckOptions::default()).await {
        Ok(true) => Ok(()),
        Ok(false) => bail!("ack not sent: the channel was closed"),
        Err(e) => Err(anyhow!(e).context("ack failed")),
    }
}

/// The properties a replayed message travels with: a fresh retry count, no
/// park headers or death history, and `x-replayed-at`.
fn replay_properties(properties: &BasicProperties, now_secs: u64) -> BasicProperties {
    let mut kept = properties
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    kept.retain(|key, _| !CLEARED_ON_REPLAY.contains(&key.as_str()));
    let mut table = FieldTable::from(kept);
    headers::insert_u32(&mut table, headers::RETRY_COUNT, 0);
    headers::insert_str(&mut table, REPLAYED_AT, &now_secs.to_string());
    properties.clone().with_headers(table)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// An AMQP header value as JSON, for `show`.
pub fn header_to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(v) => json!(v),
        AMQPValue::ShortShortUInt(v) => json!(v),
        AMQPValue::ShortInt(v) => json!(v),
        AMQPValue::ShortUInt(v) => json!(v),
        AMQPValue::LongInt(v) => json!(v),
        AMQPValue::LongUInt(v) => json!(v),
        AMQPValue::LongLongInt(v) => json!(v),
        AMQPValue::Float(v) => json!(v),
        AMQPValue::Double(v) => json!(v),
        AMQPValue::DecimalValue(d) => json!(format!("{}e-{}", d.value, d.scale)),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(s.to_string()),
        AMQPValue::FieldArray(values) => {
            Value::Array(values.as_slice().iter().map(header_to_json).collect())
        }
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(table) => headers_to_json(table),
        AMQPValue::ByteArray(bytes) => json!(
            bytes
                .as_slice()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        AMQPValue::Void => Value::Null,
    }
}

/// A header table as a JSON object (keys sorted).
pub fn headers_to_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(k, v)| (k.to_string(), header_to_json(v)))
            .collect(),
    )
}

/// `<binary> dlq …`: the dead-letter queue of one service from the command line.
pub mod cli {
    use std::{io::Write, sync::Arc, time::Duration};

    use anyhow::{Context, anyhow, bail};
    use lapin::{Connection, ConnectionProperties};
    use serde_json::{Value, json};

    use super::{ParkedDetail, ParkedMessage, headers_to_json};
    use crate::messaging::{AmqpSettings, topology::Topology};

    /// Default of `list --limit`.
    pub const DEFAULT_LIST_LIMIT: usize = 50;
    /// The widest the reason column of `list` gets.
    const REASON_WIDTH: usize = 80;

    /// A parsed `dlq` command line.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Command {
        Help,
        List { limit: usize, json: bool },
        Show { message_id: String, json: bool },
        Replay { target: Target, limit: usize },
        Purge { target: Target },
    }

    /// Which parked messages a replay or purge applies to.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Target {
        One(String),
        All,
    }

    impl Target {
        fn filter(&self) -> Option<&str> {
            match self {
                Target::One(id) => Some(id),
                Target::All => None,
            }
        }
    }

    /// Runs `<binary> dlq <args…>` (`args` are the words after `dlq`) against
    /// the dead-letter queue of work queue `queue_base` and prints the result
    /// to stdout. Usage errors and failures are returned.
    pub async fn run(
        args: impl IntoIterator<Item = String>,
        settings: AmqpSettings,
        queue_base: &str,
        routing_key: &'static str,
    ) -> anyhow::Result<()> {
        let output = execute(args, settings, queue_base, routing_key).await?;
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(output.as_bytes())
            .and_then(|()| stdout.flush())
        {
            // `… | head` closed the pipe: not an error.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(anyhow!(e).context("writing to stdout"))
            }
            _ => Ok(()),
        }
    }

    /// [`run`], returning what it would print.
    pub async fn execute(
        args: impl IntoIterator<Item = String>,
        settings: AmqpSettings,
        queue_base: &str,
        routing_key: &'static str,
    ) -> anyhow::Result<String> {
        let program = program_name(queue_base);
        let queue = Topology::new(&settings).queue(queue_base, routing_key);
        let args: Vec<String> = args.into_iter().collect();
        let command = match parse(&args) {
            Ok(command) => command,
            Err(message) => bail!(
                "{message}\n\n{}\nRun `{program} dlq --help` for details.",
                short_usage(&program)
            ),
        };
        if command == Command::Help {
            return Ok(usage(&program, &queue.name, &queue.dead_letter_queue));
        }
        let conn = Arc::new(connect(&settings, &program).await?);
        let result = execute_on(&conn, &settings, &queue, command).await;
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            conn.close(200, "dlq command done".into()),
        )
        .await;
        result
    }

    async fn execute_on(
        conn: &Arc<Connection>,
        settings: &AmqpSettings,
        queue: &crate::messaging::topology::QueueSpec,
        command: Command,
    ) -> anyhow::Result<String> {
        let dlq = &queue.dead_letter_queue;
        match command {
            Command::Help => unreachable!("answered without connecting"),
            Command::List { limit, json } => {
                let total = super::count(conn, queue).await?;
                let parked = super::list(conn, queue, limit).await?;
                if json {
                    Ok(format!("{}\n", serde_json::to_string_pretty(&parked)?))
                } else {
                    Ok(table(dlq, total, &parked))
                }
            }
            Command::Show { message_id, json } => {
                let found = super::show(conn, queue, &message_id).await?;
                if found.is_empty() {
                    bail!("no parked message with message_id {message_id} in {dlq}");
                }
                if json {
                    let all: Vec<Value> = found.iter().map(detail_json).collect();
                    Ok(format!("{}\n", serde_json::to_string_pretty(&all)?))
                } else {
                    Ok(found
                        .iter()
                        .enumerate()
                        .map(|(i, d)| detail_text(d, i + 1, found.len(), dlq))
                        .collect::<Vec<_>>()
                        .join("\n"))
                }
            }
            Command::Replay { target, limit } => {
                let replayed = super::replay(conn, settings, queue, target.filter(), limit).await?;
                if replayed == 0
                    && let Target::One(id) = &target
                {
                    bail!("no parked message with message_id {id} in {dlq}");
                }
                Ok(format!(
                    "Replayed {} from {dlq} to {} (retry count reset to 0).\n",
                    messages(replayed),
                    queue.name
                ))
            }
            Command::Purge { target } => {
                let purged = super::purge(conn, queue, target.filter()).await?;
                if purged == 0
                    && let Target::One(id) = &target
                {
                    bail!("no parked message with message_id {id} in {dlq}");
                }
                Ok(format!("Purged {} from {dlq}.\n", messages(purged)))
            }
        }
    }

    /// Parses the words after `dlq`.
    pub fn parse(args: &[String]) -> Result<Command, String> {
        if args
            .iter()
            .any(|a| matches!(a.as_str(), "-h" | "--help" | "help"))
        {
            return Ok(Command::Help);
        }
        let Some((name, rest)) = args.split_first() else {
            return Err("missing command".into());
        };
        let mut limit: Option<usize> = None;
        let mut json = false;
        let mut all = false;
        let mut positional: Vec<&str> = Vec::new();
        let mut words = rest.iter();
        while let Some(word) = words.next() {
            match word.as_str() {
                "--json" => json = true,
                "--all" => all = true,
                "--limit" => {
                    let value = words.next().ok_or("--limit needs a number")?;
                    limit = Some(parse_limit(value)?);
                }
                w if w.starts_with("--limit=") => limit = Some(parse_limit(&w[8..])?),
                w if w.starts_with('-') => return Err(format!("unknown option {w}")),
                w => positional.push(w),
            }
        }
        let refuse = |flag: &str, given: bool| {
            if given {
                Err(format!("{name} does not take {flag}"))
            } else {
                Ok(())
            }
        };
        let target = |all: bool, positional: &[&str]| match (all, positional) {
            (true, []) => Ok(Target::All),
            (false, [id]) => Ok(Target::One((*id).to_owned())),
            (true, [_]) => Err(format!(
                "{name}: give either a message id or --all, not both"
            )),
            (false, []) => Err(format!(
                "{name} needs a message id or --all (it never applies to everything by default)"
            )),
            (_, _) => Err(format!("{name} takes one message id")),
        };
        match name.as_str() {
            "list" => {
                refuse("--all", all)?;
                if let Some(extra) = positional.first() {
                    return Err(format!("list takes no argument (got {extra})"));
                }
                Ok(Command::List {
                    limit: limit.unwrap_or(DEFAULT_LIST_LIMIT),
                    json,
                })
            }
            "show" => {
                refuse("--all", all)?;
                refuse("--limit", limit.is_some())?;
                match positional.as_slice() {
                    [id] => Ok(Command::Show {
                        message_id: (*id).to_owned(),
                        json,
                    }),
                    [] => Err("show needs a message id".into()),
                    _ => Err("show takes one message id".into()),
                }
            }
            "replay" => {
                refuse("--json", json)?;
                Ok(Command::Replay {
                    target: target(all, &positional)?,
                    limit: limit.unwrap_or(usize::MAX),
                })
            }
            "purge" => {
                refuse("--json", json)?;
                refuse("--limit", limit.is_some())?;
                Ok(Command::Purge {
                    target: target(all, &positional)?,
                })
            }
            other => Err(format!("unknown command {other:?}")),
        }
    }

    fn parse_limit(value: &str) -> Result<usize, String> {
        match value.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("--limit must be a positive number, got {value:?}")),
        }
    }

    fn short_usage(program: &str) -> String {
        format!(
            "Usage: {program} dlq list [--limit N] [--json]\n       \
             {program} dlq show <message_id> [--json]\n       \
             {program} dlq replay (<message_id> | --all) [--limit N]\n       \
             {program} dlq purge (<message_id> | --all)\n"
        )
    }

    /// The `--help` text.
    pub fn usage(program: &str, queue: &str, dlq: &str) -> String {
        format!(
            "Inspect, replay and purge the messages {program} parked.\n\
             \n  \
             work queue:        {queue}\n  \
             dead-letter queue: {dlq}\n\
             \n\
             {short}\
             \n\
             Commands:\n  \
             list      List parked messages, oldest first (default --limit {DEFAULT_LIST_LIMIT}).\n            \
                       Nothing is removed. --json prints a JSON array.\n  \
             show      Print the properties, headers and full body of the parked\n            \
                       message(s) with this message_id (the event id).\n  \
             replay    Publish the message with this id (every copy), or all of them\n            \
                       (--all, at most --limit), back to the work queue with\n            \
                       x-retry-count 0. Each is removed from the dead-letter queue\n            \
                       only after the broker has confirmed its republish.\n  \
             purge     Delete the message with this id (every copy), or all of them\n            \
                       (--all), for good.\n\
             \n\
             replay and purge need a message id or --all. Without `dlq`, {program}\n\
             runs the service. The command connects with RABBITMQ_URL\n\
             (default {url}).\n",
            short = short_usage(program),
            url = AmqpSettings::DEFAULT_URL,
        )
    }

    /// The binary's name (`payment-service`), else derived from the queue name.
    fn program_name(queue_base: &str) -> String {
        std::env::args_os()
            .next()
            .and_then(|arg0| {
                std::path::Path::new(&arg0)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .filter(|name| name.ends_with("-service"))
            .unwrap_or_else(|| {
                queue_base
                    .trim_end_matches("_queue")
                    .replace('_', "-")
                    .to_string()
            })
    }

    /// A plain connection that fails fast: an operator tool should say the
    /// broker is unreachable, not retry for minutes like a service.
    async fn connect(settings: &AmqpSettings, program: &str) -> anyhow::Result<Connection> {
        let url = crate::config::redact_url(&settings.url);
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("{program} dlq (pid {})", std::process::id()).into());
        tokio::time::timeout(
            Duration::from_secs(10),
            Connection::connect(&settings.url, properties),
        )
        .await
        .map_err(|_| anyhow!("timed out connecting to RabbitMQ at {url}"))?
        .with_context(|| format!("connecting to RabbitMQ at {url}"))
    }

    fn messages(n: usize) -> String {
        if n == 1 {
            "1 message".into()
        } else {
            format!("{n} messages")
        }
    }

    /// The `list` table.
    pub fn table(dlq: &str, total: u32, parked: &[ParkedMessage]) -> String {
        if parked.is_empty() {
            return format!("{dlq}: no parked messages.\n");
        }
        let mut out = format!("{dlq}: {} parked", messages(total as usize));
        if parked.len() < total as usize {
            out.push_str(&format!(
                ", showing the oldest {} (use --limit)",
                parked.len()
            ));
        }
        out.push_str(".\n\n");
        let rows: Vec<[String; 6]> = parked
            .iter()
            .map(|m| {
                [
                    m.message_id.clone().unwrap_or_else(|| "(none)".into()),
                    m.parked_at
                        .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                    m.parked_by.clone().unwrap_or_else(|| "-".into()),
                    m.retries.map_or_else(|| "-".into(), |r| r.to_string()),
                    m.body_bytes.to_string(),
                    clip(m.reason.as_deref().unwrap_or("-"), REASON_WIDTH),
                ]
            })
            .collect();
        let heading = [
            "MESSAGE ID",
            "PARKED AT (UTC)",
            "PARKED BY",
            "RETRIES",
            "BYTES",
            "REASON",
        ]
        .map(String::from);
        let widths: Vec<usize> = (0..heading.len())
            .map(|col| {
                std::iter::once(&heading)
                    .chain(&rows)
                    .map(|row| row[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in std::iter::once(&heading).chain(&rows) {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// One line, control characters replaced, at most `width` characters.
    fn clip(text: &str, width: usize) -> String {
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if clean.chars().count() <= width {
            clean
        } else {
            let mut cut: String = clean.chars().take(width - 1).collect();
            cut.push('…');
            cut
        }
    }

    fn properties_json(detail: &ParkedDetail) -> Value {
        let p = &detail.properties;
        let s = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| s.to_string());
        json!({
            "message_id": s(p.message_id()),
            "correlation_id": s(p.correlation_id()),
            "type": s(p.kind()),
            "app_id": s(p.app_id()),
            "timestamp": p.timestamp(),
            "content_type": s(p.content_type()),
            "delivery_mode": p.delivery_mode(),
        })
    }

    fn body_json(body: &[u8]) -> Value {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
    }

    fn detail_json(detail: &ParkedDetail) -> Value {
        json!({
            "summary": detail.summary,
            "properties": properties_json(detail),
            "headers": detail.properties.headers().as_ref().map(headers_to_json),
            "body": body_json(&detail.body),
        })
    }

    fn detail_text(detail: &ParkedDetail, n: usize, of: usize, dlq: &str) -> String {
        let mut out = format!("Parked message {n} of {of} with this id in {dlq}\n\nProperties:\n");
        if let Value::Object(properties) = properties_json(detail) {
            for (key, value) in properties {
                let when = match (key.as_str(), value.as_i64()) {
                    ("timestamp", Some(secs)) => chrono::DateTime::from_timestamp(secs, 0)
                        .map(|t| format!(" ({})", t.to_rfc3339()))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                if !value.is_null() {
                    out.push_str(&format!("  {key}: {}{when}\n", plain(&value)));
                }
            }
        }
        out.push_str("\nHeaders:\n");
        match detail.properties.headers().as_ref().map(headers_to_json) {
            Some(Value::Object(headers)) if !headers.is_empty() => {
                for (key, value) in headers {
                    out.push_str(&format!("  {key}: {}\n", plain(&value)));
                }
            }
            _ => out.push_str("  (none)\n"),
        }
        out.push_str(&format!("\nBody ({} bytes):\n", detail.body.len()));
        let body = match serde_json::from_slice::<Value>(&detail.body) {
            Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(&detail.body).into_owned(),
        };
        out.push_str(&body);
        out.push('\n');
        out
    }

    /// A JSON value for humans: strings without quotes.
    fn plain(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn args(words: &str) -> Vec<String> {
            words.split_whitespace().map(String::from).collect()
        }

        #[test]
        fn list_takes_a_limit_and_json() {
            assert_eq!(
                parse(&args("list")),
                Ok(Command::List {
                    limit: DEFAULT_LIST_LIMIT,
                    json: false
                })
            );
            assert_eq!(
                parse(&args("list --limit 5 --json")),
                Ok(Command::List {
                    limit: 5,
                    json: true
                })
            );
            assert_eq!(
                parse(&args("list --limit=7")),
                Ok(Command::List {
                    limit: 7,
                    json: false
                })
            );
            assert!(parse(&args("list --limit 0")).is_err());
            assert!(parse(&args("list --limit")).is_err());
            assert!(parse(&args("list extra")).is_err());
        }

        #[test]
        fn purge_needs_an_explicit_id_or_all() {
            let refused = parse(&args("purge")).unwrap_err();
            assert!(refused.contains("--all"), "{refused}");
            assert_eq!(
                parse(&args("purge abc")),
                Ok(Command::Purge {
                    target: Target::One("abc".into())
                })
            );
            assert_eq!(
                parse(&args("purge --all")),
                Ok(Command::Purge {
                    target: Target::All
                })
            );
            assert!(parse(&args("purge abc --all")).is_err());
            assert!(parse(&args("purge a b")).is_err());
        }

        #[test]
        fn replay_needs_an_explicit_id_or_all_too() {
            assert!(parse(&args("replay")).is_err());
            assert_eq!(
                parse(&args("replay abc")),
                Ok(Command::Replay {
                    target: Target::One("abc".into()),
                    limit: usize::MAX
                })
            );
            assert_eq!(
                parse(&args("replay --all --limit 10")),
                Ok(Command::Replay {
                    target: Target::All,
                    limit: 10
                })
            );
        }

        #[test]
        fn show_needs_one_id() {
            assert_eq!(
                parse(&args("show abc --json")),
                Ok(Command::Show {
                    message_id: "abc".into(),
                    json: true
                })
            );
            assert!(parse(&args("show")).is_err());
            assert!(parse(&args("show --all")).is_err());
        }

        #[test]
        fn help_wins_and_unknown_words_are_refused() {
            assert_eq!(parse(&args("--help")), Ok(Command::Help));
            assert_eq!(parse(&args("purge -h")), Ok(Command::Help));
            assert_eq!(parse(&args("help")), Ok(Command::Help));
            assert!(parse(&args("")).is_err());
            assert!(parse(&args("drop")).is_err());
            assert!(parse(&args("list --force")).is_err());
        }

        #[test]
        fn the_table_clips_long_reasons_to_one_line() {
            let message = ParkedMessage {
                message_id: Some("id-1".into()),
                reason: Some(format!("line one\nline two {}", "x".repeat(200))),
                retries: Some(3),
                parked_at: chrono::DateTime::from_timestamp(0, 0),
                parked_by: Some("payment-service".into()),
                original_routing_key: None,
                body_preview: "{}".into(),
                body_bytes: 2,
            };
            let out = table("q.dlq", 2, &[message]);
            assert!(out.starts_with("q.dlq: 2 messages parked, showing the oldest 1"));
            let row = out.lines().last().unwrap();
            assert!(row.starts_with("id-1"), "{row}");
            assert!(row.contains("1970-01-01 00:00:00"), "{row}");
            assert!(row.contains("line one line two"), "{row}");
            assert!(row.ends_with('…'), "{row}");
            assert_eq!(table("q.dlq", 0, &[]), "q.dlq: no parked messages.\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::{FieldArray, LongString, ShortString};

    use super::*;

    fn death(queue: &str, reason: &str, time: u64) -> AMQPValue {
        let mut t = FieldTable::default();
        t.insert("queue".into(), AMQPValue::LongString(queue.into()));
        t.insert("reason".into(), AMQPValue::LongString(reason.into()));
        t.insert("time".into(), AMQPValue::Timestamp(time));
        t.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
                LongString::from("order.order.created"),
            )])),
        );
        AMQPValue::FieldTable(t)
    }

    fn delivery(properties: BasicProperties, body: &[u8]) -> Delivery {
        let mut d = Delivery::mock(
            1,
            ShortString::from(""),
            ShortString::from("q.dlq"),
            false,
            body.to_vec(),
        );
        d.properties = properties;
        d
    }

    #[test]
    fn a_broker_dead_lettered_message_is_explained_by_its_work_queue_death_not_by_a_retry_tier() {
        let mut h = FieldTable::default();
        // Most recent first: the work queue's delivery limit, after a retry
        // tier's expiry (how a retry travels back).
        h.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![
                death("q.retry.1s", "expired", 100),
                death("q", "delivery_limit", 200),
            ])),
        );
        h.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString("expired".into()),
        );
        let d = delivery(
            BasicProperties::default()
                .with_message_id("m1".into())
                .with_headers(h),
            b"{}",
        );
        let parked = ParkedMessage::from_delivery(&d, "q");
        assert_eq!(
            parked.reason.as_deref(),
            Some("dead-lettered by the broker: delivery_limit (from q)")
        );
        assert_eq!(parked.parked_by.as_deref(), Some("broker"));
        assert_eq!(parked.parked_at, DateTime::from_timestamp(200, 0));
        assert_eq!(
            parked.original_routing_key.as_deref(),
            Some("order.order.created")
        );
    }

    #[test]
    fn the_park_reason_header_wins_and_the_preview_is_bounded() {
        let props = headers::with_headers(&BasicProperties::default(), |h| {
            headers::insert_str(h, headers::PARK_REASON, "malformed message: eof");
            headers::insert_u32(h, headers::RETRY_COUNT, 3);
            headers::insert_str(h, headers::PARKED_AT, "1700000000");
            headers::insert_str(h, headers::PARKED_BY, "payment-service");
        });
        let body = vec![b'a'; 2000];
        let parked = ParkedMessage::from_delivery(&delivery(props, &body), "q");
        assert_eq!(parked.reason.as_deref(), Some("malformed message: eof"));
        assert_eq!(parked.retries, Some(3));
        assert_eq!(parked.parked_by.as_deref(), Some("payment-service"));
        assert_eq!(parked.parked_at, DateTime::from_timestamp(1_700_000_000, 0));
        assert_eq!(parked.message_id, None);
        assert_eq!(parked.body_bytes, 2000);
        assert_eq!(parked.body_preview.len(), PREVIEW_BYTES);
    }

    #[test]
    fn a_replayed_message_keeps_its_identity_and_loses_its_park_and_death_headers() {
        let mut props = headers::with_headers(
            &BasicProperties::default().with_message_id("m1".into()),
            |h| {
                headers::insert_str(h, headers::PARK_REASON, "boom");
                headers::insert_u32(h, headers::RETRY_COUNT, 3);
                headers::insert_str(h, headers::PARKED_AT, "1");
                headers::insert_str(h, headers::PARKED_BY, "svc");
                headers::insert_str(h, headers::LAST_ERROR, "boom");
                headers::insert_str(h, headers::ORIGINAL_ROUTING_KEY, "order.order.created");
                headers::insert_str(h, headers::TRACEPARENT, "00-abc-def-01");
            },
        );
        props = headers::with_headers(&props, |h| {
            h.insert(
                "x-death".into(),
                AMQPValue::FieldArray(FieldArray::from(vec![death("q", "rejected", 1)])),
            );
        });
        let replayed = replay_properties(&props, 42);
        let keys: Vec<String> = replayed
            .headers()
            .as_ref()
            .unwrap()
            .inner()
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "traceparent",
                "x-original-routing-key",
                "x-replayed-at",
                "x-retry-count"
            ]
        );
        assert_eq!(headers::get_u32(&replayed, headers::RETRY_COUNT), Some(0));
        assert_eq!(
            headers::get_str(&replayed, REPLAYED_AT).as_deref(),
            Some("42")
        );
        assert_eq!(
            replayed.message_id().as_ref().map(|s| s.as_str()),
            Some("m1")
        );
    }
}
