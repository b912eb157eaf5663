//! Every exchange and queue of the system, declared in one place.
//!
//! ```text
//! ecommerce_events (topic) ──order.order.created──────► payment_service_queue
//!                          ──payment.payment.processed─► email_service_queue
//!                          ──payment.payment.processed─► order_service_queue
//!
//! <queue>.retry.<delay>  (TTL) ──expires via default exchange──► <queue>
//! ecommerce_events.dlx (direct) ──<queue>──► <queue>.dlq
//! ```
//!
//! Work queues are durable quorum queues (replicated, poison-message aware).
//! A retry tier holds a message for its delay and then dead-letters it through
//! the default exchange straight back to the one queue that failed, so a retry
//! never fans out to the other subscribers of the topic. Parked messages go to
//! the dead-letter exchange with the work queue's name as routing key, landing
//! only in that queue's `.dlq`.

use std::time::Duration;

use lapin::{
    Channel, Connection, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

use contract::names::{DEAD_LETTER_EXCHANGE, EXCHANGE};

use super::AmqpSettings;

/// Names of everything on the broker, with the settings' prefix applied.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    retry_delays: Vec<Duration>,
    delivery_limit: u32,
}

/// One durable queue as the services declare it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDeclaration {
    pub name: String,
    pub arguments: FieldTable,
}

/// A queue bound to an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub exchange: String,
    pub queue: String,
    pub routing_key: String,
}

/// One work queue with its binding, retry tiers and dead-letter queue.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: String,
    pub routing_key: &'static str,
    pub retry_queues: Vec<(String, Duration)>,
    pub dead_letter_queue: String,
}

impl Topology {
    pub fn new(settings: &AmqpSettings) -> Self {
        Self {
            prefix: settings.prefix.clone(),
            retry_delays: settings.retry_delays.clone(),
            delivery_limit: settings.delivery_limit,
        }
    }

    pub fn exchange(&self) -> String {
        format!("{}{EXCHANGE}", self.prefix)
    }

    pub fn dead_letter_exchange(&self) -> String {
        format!("{}{DEAD_LETTER_EXCHANGE}", self.prefix)
    }

    /// The work queue `base` (one of the `*_QUEUE` constants) bound to `routing_key`.
    pub fn queue(&self, base: &str, routing_key: &'static str) -> QueueSpec {
        let name = format!("{}{base}", self.prefix);
        QueueSpec {
            retry_queues: self
                .retry_delays
                .iter()
                .map(|d| (format!("{name}.retry.{}", delay_label(*d)), *d))
                .collect(),
            dead_letter_queue: format!("{name}.dlq"),
            routing_key,
            name,
        }
    }

    /// Declares the exchanges (idempotent). Publishers call this on their channel.
    pub async fn declare_exchanges(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await
    }

    /// Declares `queue` with its binding, retry tiers and dead-letter queue
    /// (idempotent), on a channel of its own. Consumers call this each time
    /// they attach, so a broker that lost the queue gets it back.
    ///
    /// A dead-letter or retry queue declared by an earlier version, without
    /// `x-delivery-limit`, is kept as it is, with a warning: the broker
    /// refuses to change a queue's arguments, and its messages must not be
    /// lost to a failed start.
    pub async fn declare_queue(&self, conn: &Connection, queue: &QueueSpec) -> lapin::Result<()> {
        let mut channel = conn.create_channel().await?;
        self.declare_exchanges(&channel).await?;
        for declaration in self.queue_declarations(queue) {
            match declare(&channel, &declaration.name, declaration.arguments).await {
                Err(e) if declaration.name != queue.name && lacks_delivery_limit(&e) => {
                    tracing::warn!(queue = %declaration.name, "queue declared without x-delivery-limit by an earlier version; kept as it is. On RabbitMQ 4 the default limit of 20 deliveries applies to it: set a delivery-limit policy (docs/operations.md)");
                    // The refusal closed the channel.
                    channel = conn.create_channel().await?;
                }
                other => other?,
            }
        }
        for binding in self.bindings(queue) {
            channel
                .queue_bind(
                    binding.queue.as_str().into(),
                    binding.exchange.as_str().into(),
                    binding.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        channel.close(200, "topology declared".into()).await
    }

    /// The queues [`Topology::declare_queue`] declares for `queue` (durable,
    /// with these arguments): the work queue, its dead-letter queue, its retry
    /// tiers. A broker provisioned ahead (deploy/rabbitmq/definitions.json)
    /// must hold exactly these, or the service's declare fails.
    pub fn queue_declarations(&self, queue: &QueueSpec) -> Vec<QueueDeclaration> {
        let mut work = quorum_args();
        // Backstop for messages that kill the consumer before it can ack or
        // park them (panic, OOM, SIGKILL loops): after this many deliveries the
        // broker dead-letters the message itself.
        work.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(self.delivery_limit as i32),
        );
        work.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.dead_letter_exchange()),
        );
        // Without an explicit key the message would keep its topic routing key.
        work.insert("x-dead-letter-routing-key".into(), long_string(&queue.name));
        let mut declarations = vec![
            QueueDeclaration {
                name: queue.name.clone(),
                arguments: work,
            },
            QueueDeclaration {
                name: queue.dead_letter_queue.clone(),
                arguments: unlimited_quorum_args(),
            },
        ];
        for (retry_queue, delay) in &queue.retry_queues {
            let mut args = unlimited_quorum_args();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(delay.as_millis() as i64),
            );
            // Expired messages go through the default exchange, whose routing
            // key is a queue name: straight back to the work queue only.
            args.insert("x-dead-letter-exchange".into(), long_string(""));
            args.insert("x-dead-letter-routing-key".into(), long_string(&queue.name));
            declarations.push(QueueDeclaration {
                name: retry_queue.clone(),
                arguments: args,
            });
        }
        declarations
    }

    /// The bindings [`Topology::declare_queue`] creates for `queue`: the work
    /// queue to the topic exchange, the dead-letter queue to the dead-letter
    /// exchange.
    pub fn bindings(&self, queue: &QueueSpec) -> Vec<Binding> {
        vec![
            Binding {
                exchange: self.exchange(),
                queue: queue.name.clone(),
                routing_key: queue.routing_key.to_owned(),
            },
            Binding {
                exchange: self.dead_letter_exchange(),
                queue: queue.dead_letter_queue.clone(),
                routing_key: queue.name.clone(),
            },
        ]
    }
}

/// Durable quorum queue with at-least-once dead-lettering: the broker keeps a
/// dead-lettered message until the target queue has confirmed it (this needs
/// `reject-publish` overflow).
fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    args.insert("x-overflow".into(), long_string("reject-publish"));
    args
}

/// The largest delivery limit there is, for the queues whose messages are
/// not handled by consumers: a parked message that an operator reads again
/// and again (each read returns it to the queue) is never dropped. Explicit,
/// because RabbitMQ 4 gives a quorum queue without one a limit of 20, and a
/// dead-letter queue has nowhere to send a message over it. (-1, "no limit"
/// on 4.x, would drop a message on its first return on 3.x.)
pub const UNLIMITED_DELIVERIES: i32 = i32::MAX;

fn unlimited_quorum_args() -> FieldTable {
    let mut args = quorum_args();
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(UNLIMITED_DELIVERIES),
    );
    args
}

/// The broker refused a declaration because the queue exists without the
/// `x-delivery-limit` this version gives it.
fn lacks_delivery_limit(error: &lapin::Error) -> bool {
    error
        .to_string()
        .contains("inequivalent arg 'x-delivery-limit'")
}

async fn declare(channel: &Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .map(|_| ())
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

/// `10s`, `1500ms`: part of a retry queue's name, so changing a delay declares
/// a new tier instead of clashing with the old queue's arguments.
fn delay_label(delay: Duration) -> String {
    let ms = delay.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_work_queue() {
        let mut settings = AmqpSettings::local(String::new());
        settings.retry_delays = vec![Duration::from_secs(10), Duration::from_millis(1500)];
        let topology = Topology::new(&settings);
        let queue = topology.queue(contract::names::PAYMENT_QUEUE, "order.order.created");
        assert_eq!(queue.name, "payment_service_queue");
        assert_eq!(queue.dead_letter_queue, "payment_service_queue.dlq");
        let retry: Vec<&str> = queue.retry_queues.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            retry,
            [
                "payment_service_queue.retry.10s",
                "payment_service_queue.retry.1500ms"
            ]
        );
        assert_eq!(topology.exchange(), "ecommerce_events");
    }

    #[test]
    fn every_queue_has_an_explicit_delivery_limit() {
        let topology = Topology::new(&AmqpSettings::local(String::new()));
        let queue = topology.queue(contract::names::ORDER_QUEUE, "payment.payment.processed");
        for declaration in topology.queue_declarations(&queue) {
            let expected = if declaration.name == queue.name {
                AMQPValue::LongInt(5)
            } else {
                AMQPValue::LongInt(UNLIMITED_DELIVERIES)
            };
            assert_eq!(
                declaration.arguments.inner().get("x-delivery-limit"),
                Some(&expected),
                "{}",
                declaration.name
            );
        }
    }

    #[test]
    fn a_prefix_applies_to_every_name() {
        let topology = Topology::new(&AmqpSettings::local("t_1_".into()));
        let queue = topology.queue(contract::names::EMAIL_QUEUE, "payment.payment.processed");
        assert_eq!(queue.name, "t_1_email_service_queue");
        assert!(
            queue
                .retry_queues
                .iter()
                .all(|(n, _)| n.starts_with("t_1_email_service_queue.retry."))
        );
        assert_eq!(topology.dead_letter_exchange(), "t_1_ecommerce_events.dlx");
    }
}
