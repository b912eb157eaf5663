//! Publishing with publisher confirms.
//!
//! A message counts as sent only when the broker answered `Ack` *and* did not
//! return it as unroutable (`mandatory`): `Ack(Some(returned))` is a failure.
//! Every confirm is awaited under a timeout, because a confirm in flight when
//! the connection dies may never resolve (lapin 4). Messages are
//! pipelined: a batch is written, then all its confirms are awaited together.
//! After any channel-level error the channel is dropped and a new one is
//! opened for the next publish, on whatever connection is current then.

use std::{sync::Arc, time::Duration};

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

/// A confirm-mode channel on the shared connection, reopened after errors.
#[derive(Clone)]
pub struct Publisher {
    link: Link,
    channel: Arc<Mutex<Option<Channel>>>,
    confirm_timeout: Duration,
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
        }
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
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        (self.on_open)(channel.clone()).await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    async fn discard_channel(&self) {
        let channel = self.channel.lock().await.take();
        if let Some(channel) = channel
            && channel.status().connected()
        {
            let _ = channel.close(200, "reopening after an error".into()).await;
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
            Err(e) => return vec![Err(e); count],
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
                Err(PublishError::Channel(_) | PublishError::ConfirmTimeout(_))
            )
        }) {
            self.discard_channel().await;
        }
        results
    }
}
