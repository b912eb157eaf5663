//! # dead-letters — the operator's tool for parked messages
//!
//! Inspect, replay and purge the messages parked in a work queue's
//! `<queue>.dlq`, as a library and as the `dlq` binary
//! (`docs/operations.md`, the dead-letter tool).
//!
//! A message reaches the dead-letter queue in one of two ways:
//! - the consumer gave up on it and published it to the dead-letter exchange
//!   with `x-park-reason`, `x-retry-count`, `x-parked-at`, `x-parked-by` and
//!   `x-original-routing-key` (see `messaging::consumer`);
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
//! [`replay`](fn@replay) publishes a message back to its work queue through the
//! default exchange (routing key = queue name, so it reaches that one queue and
//! does not fan out to the topic's other subscribers again), with publisher
//! confirms, and acks it on the dead-letter queue only after a positive,
//! non-returned confirm: a replay that fails leaves the message parked. The
//! replayed copy starts with `x-retry-count` 0 and without the park headers and
//! the broker's death history, with `x-replayed-at` added.
//!
//! The same operations are the `dlq` command line ([`cli`]):
//! `dlq --queue payment_service_queue list`.

pub mod cli;
mod inspect;
mod json;
mod parked;
mod purge;
mod render;
mod replay;
mod scan;

pub use inspect::{count, list, show};
pub use json::{header_to_json, headers_to_json};
pub use parked::{ParkedDetail, ParkedMessage};
pub use purge::purge;
pub use replay::replay;

/// When the message was replayed from the dead-letter queue (unix seconds).
pub const REPLAYED_AT: &str = "x-replayed-at";

/// How much of the body [`ParkedMessage::body_preview`] holds.
pub const PREVIEW_BYTES: usize = 500;
