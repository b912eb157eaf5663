//! The SMTP side: one lettre transport built at start, sends classified into permanent and transient failures, and a probe
//! that reports whether the SMTP server is reachable.
//!
//! lettre does not retry (failure-windows.md): a failed `send` returns an
//! error, and we decide. A 5xx reply is permanent — the server refused this
//! mail for good, retrying is a storm against a mailbox that does not exist.
//! Everything else is transient: a 4xx, a timeout, a refused connection (which
//! lettre classifies as neither), a TLS hiccup; those go through the retry
//! tiers and are never acked away.

use std::{error::Error as _, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    transport::smtp::{PoolConfig, authentication::Credentials},
};
use tokio_util::sync::CancellationToken;

use crate::config::{SmtpSettings, SmtpTls};

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

/// The SMTP transport, cheap to clone.
///
/// Two things lettre 0.11's *async* transport does not do, handled here:
///
/// - Its `timeout` bounds only the TCP connect; reads have no timeout (the
///   blocking transport sets socket timeouts, the async one does not), so a
///   server that accepts and then stalls would hold the delivery — and its
///   claim on the email_log row — forever. Every send is therefore bounded as a whole
///   by `send_timeout` (3 × `SMTP_TIMEOUT_MS`, 30 s by default: generous, since
///   giving up after the final `.` risks a W6 duplicate).
/// - Cancelling a send that way drops the connection mid-conversation, and
///   lettre's pool would take it back as healthy: the next mail on it would
///   read the stale replies of the cancelled one, one reply out of step,
///   possibly taking a rejection for an acceptance. So connections are never
///   reused (`max_size(0)`: each send opens its own and closes it with
///   `QUIT`). Transactional mail at checkout rate does not need the pool.
///   (lettre sends that `QUIT` from a spawned task without a timeout, so
///   against a server that stalls for good each timed-out send leaves a task
///   and a socket until the server closes the connection.)
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    send_timeout: Duration,
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> anyhow::Result<Self> {
        let builder = match settings.tls {
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
            SmtpTls::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)?,
        };
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(settings.timeout))
            .pool_config(PoolConfig::new().max_size(0));
        if let Some((user, password)) = &settings.credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            send_timeout: settings.timeout * 3,
        })
    }

    /// How long a delivery claims an order's email (`db::claim`): twice the
    /// longest a send can take, so a claim never runs out while its send may
    /// still be in progress (which would let a duplicate send a second copy).
    pub fn lease(&self) -> Duration {
        self.send_timeout * 2
    }

    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        match tokio::time::timeout(self.send_timeout, self.transport.send(message.clone())).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(describe(&e))),
            Ok(Err(e)) if e.is_transient() || e.is_timeout() => {
                Err(SendError::Transient(describe(&e)))
            }
            Ok(Err(e)) => Err(SendError::Unreachable(describe(&e))),
            Err(_) => Err(SendError::Transient(format!(
                "no answer within {:?}",
                self.send_timeout
            ))),
        }
    }

    /// Connects (TLS and authentication included), checks the connection with
    /// `NOOP`, and quits.
    async fn probe(&self) -> Result<(), String> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.transport.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err("SMTP server did not answer NOOP".into()),
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err(format!(
                "SMTP server did not answer within {PROBE_TIMEOUT:?}"
            )),
        }
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
