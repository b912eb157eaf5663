//! The consumer loop: manual ack, bounded prefetch, concurrent handlers,
//! retries through delay queues, parking in the dead-letter queue, and
//! supervision.
//!
//! Per delivery (all in `process.rs`):
//! 1. decode: too large, not JSON, wrong shape or wrong contract ⇒ park at once;
//! 2. run the handler (a panic is caught and treated as a transient failure);
//! 3. `Ok` ⇒ ack. `Transient` ⇒ republish to the next retry tier (confirmed),
//!    then ack: the prefetch slot is freed while the message waits, and there is
//!    no hot requeue loop. After the last tier ⇒ park. `Permanent` ⇒ park.
//!    `Unavailable` (a dependency is down) ⇒ the first tier again, without
//!    counting a retry: an outage never parks healthy messages;
//! 4. park = publish to the dead-letter exchange with the reason in headers
//!    (confirmed), then ack. If that publish fails, `reject(requeue=false)`
//!    lets the broker dead-letter it natively, so it is still never dropped.
//!
//! Acks are coalesced (`acks.rs`): deliveries that finished together, from
//! the oldest unsettled one on, are settled by one `basic.ack(multiple)`.
//!
//! An ack that returns `Ok(false)` was not sent (the channel died); the broker
//! will redeliver and the idempotent handler makes that harmless.
//!
//! Supervision ([`Consumer::run`]): a stream that ends (consumer cancelled by
//! the broker) or errors (channel closed by the broker) is detected, and the
//! channel, queue and consumer are rebuilt; after a lost connection, on the
//! next one as soon as the connection's supervisor has it. If rebuilding
//! keeps failing on a connection that is up, `run` returns an error and the
//! service is restarted in process (`runtime::service::supervise`). On shutdown the
//! consumer is cancelled, in-flight deliveries finish and are acked within
//! `drain_timeout`, and the channel is closed (unstarted ones are requeued).

use std::{
    marker::PhantomData,
    sync::Arc,
    time::{Duration, Instant},
};

mod acks;
mod process;

use anyhow::anyhow;
use futures::StreamExt;
use lapin::{
    Channel, Connection,
    message::Delivery,
    options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument as _;

use super::{
    AmqpSettings,
    connection::Link,
    publisher::Publisher,
    topology::{QueueSpec, Topology},
};
use crate::timeline::Journal;
use contract::events::Event;

use runtime::health::Flag;

/// What a handler reports when it could not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might work later (database or SMTP unavailable, provider hiccup): retried.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never work (bad data, rejected by a downstream for good): parked.
    #[error("permanent: {0}")]
    Permanent(String),
    /// A dependency is unreachable (database down, SMTP server refusing
    /// connections): nothing is wrong with the message. Retried after the first
    /// retry delay for as long as the outage lasts, without using up the
    /// message's retries, so an outage longer than the retry schedule never
    /// parks healthy messages.
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
}

impl HandlerError {
    pub fn transient(e: impl std::fmt::Display) -> Self {
        HandlerError::Transient(e.to_string())
    }
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        HandlerError::Permanent(e.to_string())
    }
}

/// The database being unreachable is [`HandlerError::Unavailable`]; any
/// other database error is transient (retried, then parked).
impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&e) {
            HandlerError::Unavailable(format!("database: {e}"))
        } else {
            HandlerError::Transient(format!("database: {e}"))
        }
    }
}

/// A decoded delivery, free of AMQP types.
#[derive(Debug, Clone)]
pub struct Incoming<E> {
    pub event: E,
    /// How many times this message was retried before (0 on the first try).
    pub attempt: u32,
    /// The broker redelivered it (a consumer died before acking it).
    pub redelivered: bool,
}

/// Business logic for one event type.
#[async_trait::async_trait]
pub trait Handler<E: Event>: Send + Sync + 'static {
    async fn handle(&self, message: Incoming<E>) -> Result<(), HandlerError>;
}

/// A consumer of one work queue.
pub struct Consumer<E, H> {
    pub link: Link,
    pub settings: AmqpSettings,
    pub topology: Topology,
    pub queue: QueueSpec,
    pub handler: Arc<H>,
    /// Name of the consuming service (parked-by header, consumer tag, metrics).
    pub service: &'static str,
    /// Set while a consumer is attached to the queue (drives `/ready`).
    pub attached: Flag,
    /// Schedules retries and parks messages.
    pub publisher: Publisher,
    /// Where retries and dead-lettering are noted for the order's timeline
    /// ([`Consumer::with_journal`]); none by default.
    pub journal: Option<Journal>,
    pub _event: PhantomData<fn() -> E>,
}

/// How often the supervisor rebuilds a failed channel in a row before giving up.
const MAX_CONSECUTIVE_FAILURES: u32 = 10;

/// How long opening the channel, declaring the queue and subscribing may
/// take. Without a majority of a quorum queue's replicas (two of three
/// nodes down) the broker answers none of them: the queue does not, and
/// the publishes waiting for it put the whole connection in flow control.
/// The broker gives up only after a minute, closing the connection.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(15);

impl<E: Event, H: Handler<E>> Consumer<E, H> {
    pub fn new(
        link: Link,
        settings: AmqpSettings,
        queue: QueueSpec,
        handler: Arc<H>,
        service: &'static str,
        attached: Flag,
        publisher: Publisher,
    ) -> Self {
        process::register_counters(&queue.name);
        Self {
            topology: Topology::new(&settings),
            publisher,
            link,
            settings,
            queue,
            handler,
            service,
            attached,
            journal: None,
            _event: PhantomData,
        }
    }

    /// The queue's name and the flag set while this consumer is attached to
    /// it: one `/ready` check, named `consumer:<queue>` by the broker.
    pub fn attachment(&self) -> (String, Flag) {
        (self.queue.name.clone(), self.attached.clone())
    }

    /// Notes each retry scheduled and each delivery dead-lettered in the
    /// service's journal, under the message's `correlation_id` (the order).
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Consumes until `shutdown`, rebuilding the channel after failures.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let publisher = self.publisher.clone();
        let mut failures = 0;
        let mut backoff = Duration::from_millis(200);
        loop {
            let Some(conn) = self.link.wait(&shutdown).await else {
                return Ok(());
            };
            let outcome = self.consume_once(&conn, &publisher, &shutdown).await;
            if let Err(ConsumeError::BeforeAttach(error)) = &outcome {
                self.attached.set_down(format!("{error:#}"));
            } else {
                self.attached.set(false);
            }
            if outcome.is_err() && !conn.status().connected() {
                // The connection went: nothing to count against this queue.
                // Start again on the next one.
                metrics::counter!("consumer_restarts_total", "queue" => self.queue.name.clone())
                    .increment(1);
                tracing::info!(queue = %self.queue.name, "connection lost; the consumer waits for the next one");
                failures = 0;
                backoff = Duration::from_millis(200);
                continue;
            }
            let error = match outcome {
                Ok(()) => return Ok(()),
                Err(ConsumeError::AfterAttach(e)) => {
                    failures = 1;
                    backoff = Duration::from_millis(200);
                    e
                }
                Err(ConsumeError::BeforeAttach(e)) => {
                    failures += 1;
                    e
                }
            };
            metrics::counter!("consumer_restarts_total", "queue" => self.queue.name.clone())
                .increment(1);
            if failures >= MAX_CONSECUTIVE_FAILURES {
                return Err(error.context(format!(
                    "consumer on {} failed {failures} times in a row",
                    self.queue.name
                )));
            }
            tracing::warn!(queue = %self.queue.name, error = format!("{error:#}"), retry_in = ?backoff,
                "consumer stopped; rebuilding channel and consumer");
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn consume_once(
        &self,
        conn: &Connection,
        publisher: &Publisher,
        shutdown: &CancellationToken,
    ) -> Result<(), ConsumeError> {
        let tag = format!("{}-{}", self.service, uuid::Uuid::new_v4().simple());
        let opened = std::sync::Mutex::new(None);
        let attach = async {
            let channel = conn.create_channel().await?;
            *opened.lock().unwrap_or_else(|e| e.into_inner()) = Some(channel.clone());
            // Prefetch bounds the unacked deliveries, i.e. the concurrent
            // handlers. Set before basic_consume; per consumer
            // (global=false), as quorum queues require.
            channel
                .basic_qos(self.settings.prefetch, BasicQosOptions { global: false })
                .await?;
            self.topology.declare_queue(conn, &self.queue).await?;
            let stream = channel
                .basic_consume(
                    self.queue.name.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(), // no_ack = false: manual acks
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((channel, stream))
        };
        let (channel, mut stream) = match tokio::time::timeout(ATTACH_TIMEOUT, attach).await {
            Ok(attached) => attached.map_err(before)?,
            Err(_) => {
                // The broker still holds the subscription asked for and
                // would make it once the queue is back: a consumer nobody
                // reads, holding up to a prefetch of messages unacked. The
                // channel's close, queued behind it, cancels it then.
                let abandoned = opened.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(channel) = abandoned {
                    tokio::spawn(async move {
                        let _ = channel.close(200, "attach timed out".into()).await;
                    });
                }
                return Err(ConsumeError::BeforeAttach(anyhow!(
                    "the broker did not let the consumer attach within {ATTACH_TIMEOUT:?}: \
                     is a majority of the queue's nodes up?"
                )));
            }
        };
        self.attached.set(true);
        tracing::info!(queue = %self.queue.name, prefetch = self.settings.prefetch, "consumer attached");

        let tracker = TaskTracker::new();
        let acks = acks::Acks::start(&self.queue.name);
        let result = loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Ok(()),
                next = stream.next() => match next {
                    Some(Ok(delivery)) => {
                        if runtime::failpoint::fire_once("consumer-unknown-ack") {
                            // Test-only: acking a tag the broker never sent makes it
                            // close this channel (PRECONDITION_FAILED).
                            let bogus = delivery.delivery_tag + 1_000_000;
                            let _ = channel.basic_ack(bogus, BasicAckOptions::default()).await;
                        }
                        tracker.spawn(self.process_owned(delivery, publisher.clone(), &acks));
                    }
                    Some(Err(e)) => break Err(ConsumeError::AfterAttach(
                        anyhow!(e).context("consumer channel failed (closed by the broker?)"))),
                    None => break Err(ConsumeError::AfterAttach(
                        anyhow!("consumer cancelled by the broker (queue deleted?)"))),
                }
            }
        };
        if result.is_ok() {
            self.drain(&channel, &tag, &mut stream, &tracker, publisher, &acks)
                .await;
        }
        acks.close();
        result
    }

    /// SIGTERM: stop new deliveries, finish what is already here, close.
    async fn drain(
        &self,
        channel: &Channel,
        tag: &str,
        stream: &mut lapin::Consumer,
        tracker: &TaskTracker,
        publisher: &Publisher,
        acks: &acks::Acks,
    ) {
        let deadline = Instant::now() + self.settings.drain_timeout;
        if let Err(e) = channel
            .basic_cancel(tag.into(), BasicCancelOptions::default())
            .await
        {
            tracing::warn!(error = %e, "basic.cancel failed during shutdown");
        } else {
            // Deliveries already buffered before the cancel took effect are
            // processed too; the stream then ends.
            while let Ok(Some(Ok(delivery))) =
                tokio::time::timeout_at(deadline.into(), stream.next()).await
            {
                tracker.spawn(self.process_owned(delivery, publisher.clone(), acks));
            }
        }
        tracker.close();
        if tokio::time::timeout_at(deadline.into(), tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(queue = %self.queue.name, "drain timed out; unfinished deliveries will be redelivered");
        }
        // Handlers wait for their acks, so after a clean drain this sends
        // nothing; after a timeout it sends those that finished at the
        // deadline before the channel goes.
        acks.close();
        acks.flushed().await;
        let _ = channel.close(200, "shutting down".into()).await;
        tracing::info!(queue = %self.queue.name, "consumer drained and closed");
    }

    fn process_owned(
        &self,
        delivery: Delivery,
        publisher: Publisher,
        acks: &acks::Acks,
    ) -> impl Future<Output = ()> + Send + 'static {
        let ticket = acks.register(delivery.delivery_tag);
        let ctx = process::ProcessContext {
            acks: acks.clone(),
            ticket,
            handler: self.handler.clone(),
            queue: self.queue.clone(),
            settings: self.settings.clone(),
            topology: self.topology.clone(),
            service: self.service,
            publisher,
            journal: self.journal.clone(),
        };
        let span = delivery_span(self.service, &self.queue.name, &delivery);
        async move { ctx.process::<E>(delivery).await }.instrument(span)
    }
}

/// The span one delivery is processed in: a child of the span that
/// published the message (its `traceparent` header, kept through retries),
/// so the handler's logs and whatever it publishes join the sender's trace.
fn delivery_span(service: &'static str, queue: &str, delivery: &Delivery) -> tracing::Span {
    let properties = &delivery.properties;
    let id = |value: &Option<lapin::types::ShortString>| {
        value.as_ref().map_or("-", |v| v.as_str()).to_owned()
    };
    let span = tracing::info_span!(
        "message",
        service,
        queue,
        message_id = id(properties.message_id()),
        correlation_id = id(properties.correlation_id()),
    );
    let traceparent = super::headers::get_str(properties, super::headers::TRACEPARENT);
    runtime::trace_context::set_remote_parent(&span, traceparent.as_deref());
    span
}

enum ConsumeError {
    /// Setting up the channel failed (the connection may be down).
    BeforeAttach(anyhow::Error),
    /// A consumer that was attached died: rebuild at once.
    AfterAttach(anyhow::Error),
}

fn before(e: lapin::Error) -> ConsumeError {
    ConsumeError::BeforeAttach(anyhow!(e).context("setting up the consumer channel"))
}
