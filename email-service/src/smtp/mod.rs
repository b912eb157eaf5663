//! The SMTP side: sends over reused connections ([`connections`]), classified
//! into permanent and transient failures, and a probe that reports whether
//! the SMTP server is reachable.
//!
//! lettre does not retry: a failed `send` returns an
//! error, and we decide. A 5xx reply is permanent — the server refused this
//! mail for good, retrying is a storm against a mailbox that does not exist.
//! Everything else is transient: a 4xx, a timeout, a refused connection (which
//! lettre classifies as neither), a TLS hiccup; those go through the retry
//! tiers and are never acked away.

pub mod connections;

use std::{error::Error as _, sync::Arc, time::Duration};

use lettre::{Message, transport::smtp::client::AsyncSmtpConnection};
use tokio_util::sync::CancellationToken;

use self::connections::{CheckedOut, Connections};
use crate::config::SmtpSettings;

/// Why a send failed, and so what happens to the message.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server refused the mail with a 5xx: park it.
    #[error("SMTP server refused the mail permanently: {0}")]
    Permanent(String),
    /// A 4xx, or no answer in time: retry later, within the retry budget.
    #[error("SMTP send failed, will retry: {0}")]
    Transient(String),
    /// The server cannot be reached at all (connection refused, DNS, TLS
    /// handshake): an outage, not a problem of this mail; retried for as long
    /// as it lasts without using up the message's retries.
    #[error("SMTP server unreachable, will retry: {0}")]
    Unreachable(String),
}

/// Sends mail over SMTP, reusing connections; cheap to clone.
///
/// lettre 0.11's async client bounds only the TCP connect; reads have no
/// timeout (the blocking transport sets socket timeouts, the async one does
/// not), so a server that accepts and then stalls would hold the delivery, and
/// its claim on the email_log row, forever. Every send is therefore bounded as
/// a whole, taking a connection included, by `send_timeout` (3 ×
/// `SMTP_TIMEOUT_MS`, 30 s by default: generous, since giving up after the
/// final `.` risks a W6 duplicate). A send cut off that way drops its
/// connection; only a connection whose mail was accepted carries the next one
/// (see [`connections`] for why not lettre's pool).
#[derive(Clone)]
pub struct Mailer {
    connections: Arc<Connections>,
    send_timeout: Duration,
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> anyhow::Result<Self> {
        Ok(Self {
            connections: Arc::new(Connections::new(settings)?),
            send_timeout: settings.timeout * 3,
        })
    }

    /// How long a delivery claims an order's email (`db::claim`): twice the
    /// longest a send can take, so a claim never runs out while its send may
    /// still be in progress (which would let a duplicate send a second copy).
    pub fn lease(&self) -> Duration {
        self.send_timeout * 2
    }

    /// Connections open and idle between mails.
    pub fn idle_connections(&self) -> usize {
        self.connections.idle_count()
    }

    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        let attempt = async {
            let CheckedOut { connection, reused } = self.connections.check_out().await?;
            match self.send_on(connection, message).await {
                // The server hung up on a connection it had kept for us (an
                // idle timeout, a per-connection quota): a new one, at once.
                // If it had in fact accepted the mail and only the answer was
                // lost, this sends it twice, as the retry tier would.
                Err(e) if reused && matches!(classify(&e), SendError::Unreachable(_)) => {
                    tracing::debug!(error = %e, "reused SMTP connection failed; sending on a new one");
                    let connection = self.connections.connect().await?;
                    self.send_on(connection, message).await
                }
                result => result,
            }
        };
        match tokio::time::timeout(self.send_timeout, attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(SendError::Transient(format!(
                "no answer within {:?}",
                self.send_timeout
            ))),
        }
    }

    /// One mail on `connection`, which goes back to the idle ones once the
    /// server has accepted the mail: it is then between transactions. On an
    /// error, or if this future is dropped, the connection is dropped.
    async fn send_on(
        &self,
        mut connection: AsyncSmtpConnection,
        message: &Message,
    ) -> Result<(), lettre::transport::smtp::Error> {
        connection
            .send(message.envelope(), &message.formatted())
            .await?;
        self.connections.check_in(connection);
        Ok(())
    }

    /// Opens a new connection (TLS and authentication included), checks it
    /// with `NOOP`, and quits: whether a mail could be sent now.
    async fn probe(&self) -> Result<(), String> {
        let attempt = async {
            let mut connection = self.connections.connect().await?;
            let answered = connection.test_connected().await;
            connections::close(connection);
            Ok::<_, lettre::transport::smtp::Error>(answered)
        };
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err("SMTP server did not answer NOOP".into()),
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err(format!(
                "SMTP server did not answer within {PROBE_TIMEOUT:?}"
            )),
        }
    }
}

/// A 5xx is permanent; a 4xx or a timeout transient; anything else (refused,
/// reset, DNS, TLS), which lettre classifies as neither, means unreachable.
fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    if error.is_permanent() {
        SendError::Permanent(describe(error))
    } else if error.is_transient() || error.is_timeout() {
        SendError::Transient(describe(error))
    } else {
        SendError::Unreachable(describe(error))
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// Probes the SMTP server every 30 s until `stop`, keeping the `smtp_up` gauge
/// current and logging each change.
///
/// Deliberately *not* a readiness check: readiness decides whether this
/// replica should get work, and an SMTP outage is not this replica's fault —
/// every replica is equally cut off, the consumer keeps taking messages and
/// parks them in the retry tiers (minutes long) until SMTP is back. Failing
/// `/ready` would only make an orchestrator take all replicas out of service
/// for an outage they already handle. So it is reported (gauge, logs), not
/// enforced.
pub async fn watch(mailer: Mailer, stop: CancellationToken) -> anyhow::Result<()> {
    let mut last: Option<bool> = None;
    loop {
        let result = mailer.probe().await;
        let up = result.is_ok();
        metrics::gauge!("smtp_up").set(if up { 1.0 } else { 0.0 });
        match (&result, last) {
            (Err(reason), Some(true) | None) => {
                tracing::warn!(reason = %reason, "SMTP server unreachable; emails wait in the retry tiers")
            }
            (Ok(()), Some(false)) => tracing::info!("SMTP server reachable again"),
            _ => {}
        }
        last = Some(up);
        mailer.connections.close_stale();
        metrics::gauge!("smtp_idle_connections").set(mailer.idle_connections() as f64);
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

/// The error with its causes, e.g. `Connection error: Connection refused (os error 111)`.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
