//! An SMTP server inside the load generator (`--smtp-sink 127.0.0.1:1025`):
//! the services deliver their mail to it, and the audit reads what arrived
//! from memory instead of a catcher's HTTP API.
//!
//! Why: a benchmark should measure the pipeline, not its mail catcher. An
//! external catcher cost as much CPU per mail as a whole service and
//! competed with the pipeline for the cores (`docs/performance.md`); this
//! server (mailcrab, a real SMTP server in Rust, also used by the tests)
//! costs a fraction of that. It speaks real SMTP, so nothing in the services
//! changes.
//!
//! mailcrab hands each message to a bounded broadcast channel; a task drains
//! it at once, keeping only the subject. Should the channel ever overflow,
//! the messages it dropped are counted and the audit refuses to judge the
//! mailbox rather than report them as lost.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// The running server; stops when dropped.
#[derive(Debug)]
pub struct SmtpSink {
    addr: SocketAddr,
    subjects: Arc<Mutex<Vec<String>>>,
    dropped: Arc<AtomicU64>,
    token: CancellationToken,
}

impl SmtpSink {
    /// Listens on `addr`, or fails if something else does already.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        // mailcrab binds in a task of its own and only logs a failure to bind:
        // find out first, so another server on the port is not taken for ours.
        drop(
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("--smtp-sink {addr}: cannot listen there"))?,
        );
        let handle = mailcrab::development_mail_server(addr.ip(), addr.port()).await;
        let sink = Self {
            addr,
            subjects: Arc::default(),
            dropped: Arc::default(),
            token: handle.token,
        };
        tokio::spawn(collect(
            handle.rx,
            sink.subjects.clone(),
            sink.dropped.clone(),
        ));
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(sink);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("--smtp-sink {addr}: the SMTP server did not start listening")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The subject of every message received so far.
    pub fn subjects(&self) -> anyhow::Result<Vec<String>> {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            bail!("the SMTP sink could not keep up and dropped {dropped} messages uncounted");
        }
        Ok(self.subjects.lock().expect("sink lock poisoned").clone())
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn collect(
    mut rx: tokio::sync::broadcast::Receiver<mailcrab::MailMessage>,
    subjects: Arc<Mutex<Vec<String>>>,
    dropped: Arc<AtomicU64>,
) {
    loop {
        match rx.recv().await {
            Ok(message) => {
                // mailcrab's fields are private but serialisable.
                let subject = serde_json::to_value(&message)
                    .ok()
                    .and_then(|m| m["subject"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                subjects.lock().expect("sink lock poisoned").push(subject);
            }
            Err(RecvError::Lagged(n)) => {
                dropped.fetch_add(n, Ordering::Relaxed);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    #[tokio::test]
    async fn mail_sent_over_smtp_is_counted_by_subject_and_a_taken_port_is_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let sink = SmtpSink::start(addr).await.unwrap();
        let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .build();
        for n in 0..3 {
            let message = Message::builder()
                .from("noreply@ecommerce.com".parse().unwrap())
                .to("test@example.com".parse().unwrap())
                .subject(format!("Order Confirmation - Order #{n}"))
                .body(String::from("hello"))
                .unwrap();
            smtp.send(message).await.unwrap();
        }
        let mut subjects = Vec::new();
        for _ in 0..100 {
            subjects = sink.subjects().unwrap();
            if subjects.len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(subjects.len(), 3, "{subjects:?}");
        assert!(subjects.contains(&"Order Confirmation - Order #2".to_owned()));
        assert!(SmtpSink::start(addr).await.is_err(), "the port is ours");
    }
}
