//! Reading a dead-letter queue without taking anything off it: `basic.get`
//! without ack on one channel, then whatever is not acked is handed back.

use anyhow::{Context, anyhow, bail};
use lapin::{
    Channel, Connection,
    message::Delivery,
    options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions},
    types::FieldTable,
};

/// `basic.get` without ack over one channel, looking at no more messages than
/// the queue held when it was opened (and at most `limit`).
pub(super) struct Scan {
    pub(super) channel: Channel,
    queue: String,
    pub(super) depth: u32,
    remaining: usize,
}

impl Scan {
    pub(super) async fn open(conn: &Connection, queue: &str, limit: usize) -> anyhow::Result<Self> {
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

    pub(super) async fn next(&mut self) -> anyhow::Result<Option<Delivery>> {
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

    /// Hands back every message taken and not acked, then closes the channel.
    /// The explicit `basic.nack(requeue)` says they were not processed:
    /// RabbitMQ 4.3 and later do not count it as a delivery against the
    /// queue's delivery limit, as they count messages a closed channel
    /// returns. A channel that died returns them too.
    pub(super) async fn close(self) {
        let all_unacked = BasicNackOptions {
            multiple: true,
            requeue: true,
        };
        if let Err(e) = self.channel.basic_nack(0, all_unacked).await {
            tracing::warn!(queue = %self.queue, error = %e, "handing back the scanned messages failed; closing the channel returns them");
        }
        if let Err(e) = self
            .channel
            .close(200, "dead-letter scan done".into())
            .await
        {
            tracing::warn!(queue = %self.queue, error = %e, "closing the dead-letter scan channel failed; unacked messages return to the queue when the connection closes");
        }
    }
}

pub(super) fn has_id(delivery: &Delivery, filter: Option<&str>) -> bool {
    match filter {
        None => true,
        Some(id) => delivery
            .properties
            .message_id()
            .as_ref()
            .is_some_and(|m| m.as_str() == id),
    }
}

pub(super) async fn ack(delivery: &Delivery) -> anyhow::Result<()> {
    match delivery.ack(BasicAckOptions::default()).await {
        Ok(true) => Ok(()),
        Ok(false) => bail!("ack not sent: the channel was closed"),
        Err(e) => Err(anyhow!(e).context("ack failed")),
    }
}
