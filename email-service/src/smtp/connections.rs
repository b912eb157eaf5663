//! SMTP connections kept open between mails.
//!
//! Opening a connection costs a TCP handshake, the server's greeting, `EHLO`
//! (and TLS and `AUTH` where configured) before the first mail, and `QUIT`
//! after it: most of a mail's SMTP round trips. So a connection whose mail
//! was accepted goes back to an idle list and carries the next mail.
//!
//! lettre 0.11 has a pool, but it takes back a connection whose send was
//! cut off (a timeout drops the send future, and nothing marks the connection
//! broken): the next mail on it would read the cancelled conversation's late
//! replies, one out of step, possibly taking a rejection for an acceptance.
//! Here a connection comes back only through [`Connections::check_in`], which
//! the sender calls after the server's `250` for the whole mail, when the
//! connection is between transactions in a known state. A send that fails,
//! times out or is cancelled owns its connection and drops it (closing the
//! socket), so it is never reused.
//!
//! Servers close idle clients after a while (RFC 5321 suggests five minutes;
//! catchers often sooner): a connection idle longer than [`CHECK_AFTER`] is
//! checked with `NOOP` before it is reused, and one idle longer than
//! [`MAX_IDLE_TIME`] is closed instead.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use lettre::transport::smtp::{
    self,
    authentication::{Credentials, DEFAULT_MECHANISMS},
    client::{AsyncSmtpConnection, TlsParameters},
    extension::ClientId,
};

use crate::config::{SmtpSettings, SmtpTls};

/// Idle connections kept at most; more concurrent sends open more, and the
/// extra ones are closed when they finish.
pub const MAX_IDLE: usize = 32;
/// A connection idle longer than this is checked with `NOOP` before reuse.
pub const CHECK_AFTER: Duration = Duration::from_secs(2);
/// A connection idle longer than this is closed, not reused.
pub const MAX_IDLE_TIME: Duration = Duration::from_secs(30);
/// How long closing a connection politely (`QUIT`) may take.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach the server, and the connections open to it.
pub struct Connections {
    host: String,
    port: u16,
    connect_timeout: Duration,
    tls: Encryption,
    credentials: Option<Credentials>,
    hello_name: ClientId,
    idle: Mutex<Vec<Idle>>,
}

/// A connection for one mail.
pub struct CheckedOut {
    pub connection: AsyncSmtpConnection,
    /// It carried an earlier mail: the server may have closed it since.
    pub reused: bool,
}

enum Encryption {
    None,
    /// `STARTTLS` after the greeting (port 587).
    StartTls(TlsParameters),
    /// TLS from the first byte (port 465).
    Wrapper(TlsParameters),
}

struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

impl Connections {
    pub fn new(settings: &SmtpSettings) -> anyhow::Result<Self> {
        let tls = match settings.tls {
            SmtpTls::None => Encryption::None,
            SmtpTls::StartTls => Encryption::StartTls(TlsParameters::new(settings.host.clone())?),
            SmtpTls::Tls => Encryption::Wrapper(TlsParameters::new(settings.host.clone())?),
        };
        Ok(Self {
            host: settings.host.clone(),
            port: settings.port,
            connect_timeout: settings.timeout,
            tls,
            credentials: settings
                .credentials
                .as_ref()
                .map(|(user, password)| Credentials::new(user.clone(), password.expose().into())),
            hello_name: ClientId::default(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// An open connection, between transactions: the most recently used
    /// idle one that still answers, or a new one.
    pub async fn check_out(&self) -> Result<CheckedOut, smtp::Error> {
        loop {
            // The most recent first: under load it was used a moment ago and
            // needs no check; the oldest age out at the bottom.
            let Some(idle) = self.idle.lock().expect("not poisoned").pop() else {
                return Ok(CheckedOut {
                    connection: self.connect().await?,
                    reused: false,
                });
            };
            let idle_for = idle.since.elapsed();
            let mut connection = idle.connection;
            if idle_for > MAX_IDLE_TIME {
                close(connection);
            } else if idle_for <= CHECK_AFTER || connection.test_connected().await {
                return Ok(CheckedOut {
                    connection,
                    reused: true,
                });
            }
            // Closed by the server, or too old: try the next one.
        }
    }

    /// Gives back a connection whose last mail the server accepted.
    pub fn check_in(&self, connection: AsyncSmtpConnection) {
        if connection.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().expect("not poisoned");
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                connection,
                since: Instant::now(),
            });
        } else {
            drop(idle);
            close(connection);
        }
    }

    /// Closes the connections idle longer than [`MAX_IDLE_TIME`], so a quiet
    /// service does not hold sockets the server has long given up on.
    pub fn close_stale(&self) {
        let stale: Vec<Idle> = {
            let mut idle = self.idle.lock().expect("not poisoned");
            let (stale, fresh) = idle
                .drain(..)
                .partition(|c| c.since.elapsed() > MAX_IDLE_TIME);
            *idle = fresh;
            stale
        };
        for idle in stale {
            close(idle.connection);
        }
    }

    /// Connections idle right now (for tests and the gauge).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().expect("not poisoned").len()
    }

    /// A new connection: TCP (and TLS), greeting, `EHLO`, `STARTTLS` and
    /// `AUTH` as configured, what lettre's transport does for each mail.
    pub async fn connect(&self) -> Result<AsyncSmtpConnection, smtp::Error> {
        let wrapper = match &self.tls {
            Encryption::Wrapper(parameters) => Some(parameters.clone()),
            _ => None,
        };
        let mut connection = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.connect_timeout),
            &self.hello_name,
            wrapper,
            None,
        )
        .await?;
        if let Encryption::StartTls(parameters) = &self.tls {
            connection
                .starttls(parameters.clone(), &self.hello_name)
                .await?;
        }
        if let Some(credentials) = &self.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        metrics::counter!("smtp_connections_opened_total").increment(1);
        Ok(connection)
    }
}

/// Says `QUIT` in the background, bounded, and closes the socket.
pub fn close(mut connection: AsyncSmtpConnection) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(QUIT_TIMEOUT, connection.abort()).await;
    });
}
