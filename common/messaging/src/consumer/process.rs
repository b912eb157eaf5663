//! One delivery, from decoding to ack, retry or parking (see the module
//! above for the rules).

use std::{
    any::Any,
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::FutureExt;
use lapin::{message::Delivery, options::BasicRejectOptions};

use uuid::Uuid;

use super::{
    Handler, HandlerError, Incoming,
    acks::{Acks, Ticket},
};
use contract::events::Event;

use crate::{
    AmqpSettings, headers,
    publisher::{Outgoing, Publisher},
    timeline::Journal,
    topology::{QueueSpec, Topology},
};

/// Everything one delivery needs, owned so it can run on its own task.
pub(super) struct ProcessContext<H> {
    pub(super) handler: Arc<H>,
    pub(super) queue: QueueSpec,
    pub(super) settings: AmqpSettings,
    pub(super) topology: Topology,
    pub(super) service: &'static str,
    pub(super) publisher: Publisher,
    pub(super) journal: Option<Journal>,
    /// The channel's acks, and this delivery's place among them.
    pub(super) acks: Acks,
    pub(super) ticket: Ticket,
}

/// What happened to a delivery: the `outcome` label of
/// `messages_processed_total` and `message_processing_seconds` (`acked`,
/// `retried`, `parked` = dead-lettered, `requeued`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acked,
    Retried,
    Parked,
    /// The retry could not be scheduled; handed back to the broker.
    Requeued,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Acked,
        Outcome::Retried,
        Outcome::Parked,
        Outcome::Requeued,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Acked => "acked",
            Outcome::Retried => "retried",
            Outcome::Parked => "parked",
            Outcome::Requeued => "requeued",
        }
    }
}

/// Registers the queue's counters, so that a dashboard shows 0 for them,
/// not "no data", until the first one moves. (Adding 0 keeps the counts of
/// a consumer rebuilt in the same process.)
pub(super) fn register_counters(queue: &str) {
    for outcome in Outcome::ALL {
        metrics::counter!("messages_processed_total", "queue" => queue.to_owned(), "outcome" => outcome.label())
            .increment(0);
    }
    for counter in [
        "messages_consumed_total",
        "consumer_restarts_total",
        "acks_not_sent_total",
    ] {
        metrics::counter!(counter, "queue" => queue.to_owned()).increment(0);
    }
}

impl<H> ProcessContext<H> {
    pub(super) async fn process<E: Event>(self, delivery: Delivery)
    where
        H: Handler<E>,
    {
        let started = Instant::now();
        let queue = self.queue.name.clone();
        metrics::counter!("messages_consumed_total", "queue" => queue.clone()).increment(1);
        metrics::gauge!("messages_in_flight", "queue" => queue.clone()).increment(1.0);
        let attempt = headers::get_u32(&delivery.properties, headers::RETRY_COUNT).unwrap_or(0);
        runtime::failpoint::hit("consumer-before-handle");
        let result = match decode::<E>(&delivery, self.settings.max_message_bytes) {
            Err(reason) => Err(HandlerError::Permanent(reason)),
            Ok(event) => {
                let incoming = Incoming {
                    event,
                    attempt,
                    redelivered: delivery.redelivered,
                };
                match AssertUnwindSafe(self.handler.handle(incoming))
                    .catch_unwind()
                    .await
                {
                    Ok(result) => result,
                    Err(panic) => Err(HandlerError::Transient(format!(
                        "handler panicked: {}",
                        panic_text(&panic)
                    ))),
                }
            }
        };
        let outcome = match &result {
            Ok(()) => {
                runtime::failpoint::hit("consumer-after-handle");
                Outcome::Acked
            }
            Err(HandlerError::Unavailable(reason)) => match self.queue.retry_queues.first() {
                // The first tier, and the retry count unchanged.
                Some((retry_queue, delay)) => {
                    tracing::warn!(queue = %queue, retry_in = ?delay, reason = %reason, "dependency unavailable; will retry");
                    self.schedule_retry(&delivery, retry_queue, attempt, reason, &queue)
                        .await
                }
                None => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.requeue(&delivery).await;
                    Outcome::Requeued
                }
            },
            Err(HandlerError::Transient(reason)) => {
                match self.queue.retry_queues.get(attempt as usize) {
                    Some((retry_queue, delay)) => {
                        tracing::warn!(queue = %queue, attempt, retry_in = ?delay, reason = %reason, "processing failed; will retry");
                        self.schedule_retry(&delivery, retry_queue, attempt + 1, reason, &queue)
                            .await
                    }
                    None => {
                        let reason = format!("gave up after {attempt} retries: {reason}");
                        self.park(&delivery, &reason, attempt).await;
                        Outcome::Parked
                    }
                }
            }
            Err(HandlerError::Permanent(reason)) => {
                self.park(&delivery, reason, attempt).await;
                Outcome::Parked
            }
        };
        if matches!(outcome, Outcome::Acked | Outcome::Retried) {
            self.ack(&delivery).await;
        }
        if let Err(reason) = &result {
            self.note_in_journal(&delivery, outcome, attempt, reason)
                .await;
        }
        let label = outcome.label();
        metrics::counter!("messages_processed_total", "queue" => queue.clone(), "outcome" => label)
            .increment(1);
        metrics::histogram!("message_processing_seconds", "queue" => queue.clone(), "outcome" => label)
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!("messages_in_flight", "queue" => queue).decrement(1.0);
    }

    /// A retry or a dead-lettering, for the order's timeline.
    async fn note_in_journal(
        &self,
        delivery: &Delivery,
        outcome: Outcome,
        attempt: u32,
        error: &HandlerError,
    ) {
        let Some(journal) = &self.journal else { return };
        let Some(order_id) = delivery
            .properties
            .correlation_id()
            .as_ref()
            .and_then(|id| Uuid::try_parse(id.as_str()).ok())
        else {
            return;
        };
        let reason = match error {
            HandlerError::Transient(r)
            | HandlerError::Permanent(r)
            | HandlerError::Unavailable(r) => r,
        };
        let (step, detail) = match outcome {
            Outcome::Retried => (
                "message.retry_scheduled",
                format!(
                    "{} after attempt {}: {reason}",
                    self.queue.name,
                    attempt + 1
                ),
            ),
            Outcome::Parked => (
                "message.dead_lettered",
                format!(
                    "{} after attempt {}: {reason}",
                    self.queue.name,
                    attempt + 1
                ),
            ),
            Outcome::Acked | Outcome::Requeued => return,
        };
        journal.record(order_id, step, &detail).await;
    }

    async fn ack(&self, delivery: &Delivery) {
        if !self.acks.ack(self.ticket, delivery.acker.clone()).await {
            // Not sent: the channel died. The broker redelivers; idempotent
            // handlers make that harmless.
            metrics::counter!("acks_not_sent_total", "queue" => self.queue.name.clone())
                .increment(1);
            tracing::warn!(queue = %self.queue.name, "ack not sent (channel closed); message will be redelivered");
        }
    }

    /// Republishes to `retry_queue` with `retries` as the new retry count;
    /// if that fails, hands the delivery back to the broker after a pause
    /// (the queue's delivery limit bounds how often that can happen).
    async fn schedule_retry(
        &self,
        delivery: &Delivery,
        retry_queue: &str,
        retries: u32,
        reason: &str,
        queue: &str,
    ) -> Outcome {
        if self.retry(delivery, retry_queue, retries, reason).await {
            return Outcome::Retried;
        }
        tracing::warn!(queue, "retry not scheduled; requeueing the delivery");
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.requeue(delivery).await;
        Outcome::Requeued
    }

    async fn requeue(&self, delivery: &Delivery) {
        let _ = delivery
            .nack(lapin::options::BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await;
        self.acks.settled_otherwise(self.ticket);
    }

    /// Republishes to a retry tier with the retry count set to `retries`.
    async fn retry(
        &self,
        delivery: &Delivery,
        retry_queue: &str,
        retries: u32,
        reason: &str,
    ) -> bool {
        let properties = headers::with_headers(&delivery.properties, |h| {
            headers::insert_u32(h, headers::RETRY_COUNT, retries);
            headers::insert_str(h, headers::LAST_ERROR, reason);
            if headers::get_str(&delivery.properties, headers::ORIGINAL_ROUTING_KEY).is_none() {
                headers::insert_str(
                    h,
                    headers::ORIGINAL_ROUTING_KEY,
                    delivery.routing_key.as_str(),
                );
            }
        });
        let message = Outgoing {
            exchange: String::new(), // default exchange: routing key = queue name
            routing_key: retry_queue.to_owned(),
            payload: delivery.data.clone(),
            properties,
        };
        match self.publisher.publish(message).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(queue = %self.queue.name, error = %e, "could not schedule a retry");
                false
            }
        }
    }

    /// Parks the message in the queue's dead-letter queue with the reason.
    async fn park(&self, delivery: &Delivery, reason: &str, attempts: u32) {
        tracing::error!(queue = %self.queue.name, message_id = ?delivery.properties.message_id(), reason, "parking message in the dead-letter queue");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let properties = headers::with_headers(&delivery.properties, |h| {
            headers::insert_str(h, headers::PARK_REASON, reason);
            headers::insert_u32(h, headers::RETRY_COUNT, attempts);
            headers::insert_str(h, headers::PARKED_AT, &now.to_string());
            headers::insert_str(h, headers::PARKED_BY, self.service);
            if headers::get_str(&delivery.properties, headers::ORIGINAL_ROUTING_KEY).is_none() {
                headers::insert_str(
                    h,
                    headers::ORIGINAL_ROUTING_KEY,
                    delivery.routing_key.as_str(),
                );
            }
        });
        let message = Outgoing {
            exchange: self.topology.dead_letter_exchange(),
            routing_key: self.queue.name.clone(),
            payload: delivery.data.clone(),
            properties,
        };
        match self.publisher.publish(message).await {
            Ok(()) => self.ack(delivery).await,
            Err(e) => {
                // The queue's own dead-letter settings still park it, without
                // our headers; the broker records the reason `rejected`.
                tracing::error!(queue = %self.queue.name, error = %e, "could not publish to the dead-letter exchange; rejecting instead");
                let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
                self.acks.settled_otherwise(self.ticket);
            }
        }
    }
}

fn decode<E: Event>(delivery: &Delivery, max_bytes: usize) -> Result<E, String> {
    if delivery.data.len() > max_bytes {
        return Err(format!(
            "message of {} bytes exceeds the {max_bytes}-byte limit",
            delivery.data.len()
        ));
    }
    let event: E =
        serde_json::from_slice(&delivery.data).map_err(|e| format!("malformed message: {e}"))?;
    event
        .check_contract()
        .map_err(|e| format!("contract violation: {e}"))?;
    Ok(event)
}

fn panic_text(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}
