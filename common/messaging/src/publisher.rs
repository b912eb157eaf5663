//! Publishing with publisher confirms.
//!
//! A message counts as sent only when the broker answered `Ack` *and* did not
//! return it as unroutable (`mandatory`): `Ack(Some(returned))` is a failure.
//! Every confirm is awaited under a timeout, because a confirm in flight when
//! the connection dies may never resolve (lapin 4). Messages are
//! pipelined: a batch is written, then all its confirms are awaited together.
//! After any channel-level error, a confirm that timed out or a nack, the
//! channel is dropped and a new one is opened for the next publish, on
//! whatever connection is current then. A nack counts because the broker
//! keeps per-channel state about each quorum queue it publishes to: a
//! channel that first published while a queue's leader was lost (a cluster
//! node died) can have every later publish to that queue refused, on
//! RabbitMQ 3.10, while a new channel publishes at once.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use lapin::{
    BasicProperties, Channel, Confirmation,
    options::{BasicPublishOptions, ConfirmSelectOptions},
};
use tokio::sync::Mutex;

use crate::connection::Link;

/// Why a message is not known to be safely on the broker.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    #[error("broker channel error: {0}")]
    Channel(String),
    #[error("broker refused the message (nack)")]
    Nacked,
    #[error("message unroutable: {0}")]
    Returned(String),
    #[error("no publisher confirm within {0:?}")]
    ConfirmTimeout(Duration),
}

impl From<lapin::Error> for PublishError {
    fn from(e: lapin::Error) -> Self {
        PublishError::Channel(e.to_string())
    }
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub payload: Vec<u8>,
    pub properties: BasicProperties,
}

/// Since when the broker has taken none of a service's publishes, and the
/// last reason, while that lasts: a broker that is connected but cannot
/// confirm (a quorum queue without a majority of its nodes) shows here.
/// Shared by a service's publishers; cheap to clone.
#[derive(Clone, Default)]
pub struct Unconfirmed(Arc<std::sync::Mutex<Option<(Instant, String)>>>);

impl Unconfirmed {
    /// How long publishes have failed, and the last reason; `None` after a
    /// confirmed publish.
    pub fn get(&self) -> Option<(Duration, String)> {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state
            .as_ref()
            .map(|(since, why)| (since.elapsed(), why.clone()))
    }

    fn record(&self, results: &[Result<(), PublishError>]) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // An unroutable message is the topology's fault, not the broker's.
        let failed = results.iter().find_map(|r| {
            r.as_ref()
                .err()
                .filter(|e| !matches!(e, PublishError::Returned(_)))
        });
        match failed {
            _ if results.iter().any(Result::is_ok) => *state = None,
            Some(error) => {
                let since = state
                    .as_ref()
                    .map_or_else(Instant::now, |(since, _)| *since);
                *state = Some((since, error.to_string()));
            }
            None => {}
        }
    }
}

/// A confirm-mode channel on the shared connection, reopened after errors.
#[derive(Clone)]
pub struct Publisher {
    link: Link,
    channel: Arc<Mutex<Option<Channel>>>,
    confirm_timeout: Duration,
    unconfirmed: Unconfirmed,
    on_open: Arc<
        dyn Fn(Channel) -> futures::future::BoxFuture<'static, lapin::Result<()>> + Send + Sync,
    >,
}

impl Publisher {
    /// `on_open` runs on every new channel (declare the exchanges there, so
    /// a broker that lost them gets them back).
    pub fn new(
        link: Link,
        confirm_timeout: Duration,
        on_open: impl Fn(Channel) -> futures::future::BoxFuture<'static, lapin::Result<()>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self {
            link,
            channel: Arc::new(Mutex::new(None)),
            confirm_timeout,
            on_open: Arc::new(on_open),
            unconfirmed: Unconfirmed::default(),
        }
    }

    /// Reports failing publishes to `unconfirmed` (shared with `/ready`).
    pub fn reporting_to(mut self, unconfirmed: Unconfirmed) -> Self {
        self.unconfirmed = unconfirmed;
        self
    }

    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut slot = self.channel.lock().await;
        if let Some(channel) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let Some(conn) = self.link.current() else {
            return Err(PublishError::Channel(
                "RabbitMQ connection down; reconnecting".into(),
            ));
        };
        // Bounded: a connection in flow control answers nothing.
        let open = async {
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            (self.on_open)(channel.clone()).await?;
            Ok::<_, lapin::Error>(channel)
        };
        let channel = tokio::time::timeout(self.confirm_timeout, open)
            .await
            .map_err(|_| PublishError::ConfirmTimeout(self.confirm_timeout))??;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    async fn discard_channel(&self) {
        let channel = self.channel.lock().await.take();
        if let Some(channel) = channel
            && channel.status().connected()
        {
            let close = channel.close(200, "reopening after an error".into());
            let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
        }
    }

    /// Publishes one message and waits for its confirm.
    pub async fn publish(&self, message: Outgoing) -> Result<(), PublishError> {
        self.publish_all(vec![message])
            .await
            .pop()
            .expect("one result per message")
    }

    /// Publishes every message, then waits for all confirms; one result per
    /// message, in order.
    pub async fn publish_all(&self, messages: Vec<Outgoing>) -> Vec<Result<(), PublishError>> {
        let count = messages.len();
        let channel = match self.channel().await {
            Ok(channel) => channel,
            Err(e) => {
                let results = vec![Err(e); count];
                self.unconfirmed.record(&results);
                return results;
            }
        };
        let mut pending = Vec::with_capacity(count);
        for message in messages {
            let published = channel
                .basic_publish(
                    message.exchange.as_str().into(),
                    message.routing_key.as_str().into(),
                    // mandatory: an unroutable message comes back instead of
                    // vanishing, so it is never counted as delivered.
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &message.payload,
                    message.properties,
                )
                .await;
            pending.push(published);
        }
        let timeout = self.confirm_timeout;
        let results: Vec<Result<(), PublishError>> =
            join_all(pending.into_iter().map(|published| async move {
                let confirm = published?;
                match tokio::time::timeout(timeout, confirm).await {
                    Err(_) => Err(PublishError::ConfirmTimeout(timeout)),
                    Ok(Err(e)) => Err(e.into()),
                    Ok(Ok(Confirmation::Ack(None))) => Ok(()),
                    Ok(Ok(Confirmation::Ack(Some(returned)))) => Err(PublishError::Returned(
                        format!("{} {}", returned.reply_code, returned.reply_text),
                    )),
                    Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Nacked),
                    // Cannot happen on a confirm-mode channel; never count it as sent.
                    Ok(Ok(Confirmation::NotRequested)) => Err(PublishError::Nacked),
                }
            }))
            .await;
        if results.iter().any(|r| {
            matches!(
                r,
                Err(PublishError::Channel(_)
                    | PublishError::ConfirmTimeout(_)
                    | PublishError::Nacked)
            )
        }) {
            self.discard_channel().await;
        }
        self.unconfirmed.record(&results);
        results
    }
}
