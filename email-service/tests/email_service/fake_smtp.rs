//! A scripted SMTP server, for tests about the upstream's failures: replies a
//! real server only gives when something is wrong (550, 451, silence).
//! Deliveries that should succeed go to the real SMTP server
//! (`test_support::SmtpSink`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// The reply to the n-th `RCPT TO` (0-based), e.g. `"550 5.1.1 mailbox unavailable"`.
type RcptScript = Arc<dyn Fn(u32) -> &'static str + Send + Sync>;

/// How the server misbehaves besides its `RCPT TO` replies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quirks {
    /// The first mail's acceptance (`250` after the final `.`) comes this late.
    pub late_first_acceptance: Option<Duration>,
    /// Hangs up after accepting each mail, as servers do with a client they
    /// kept idle too long or that sent its quota for one connection.
    pub hang_up_after_each_mail: bool,
}

#[derive(Clone)]
struct Behaviour {
    script: RcptScript,
    quirks: Quirks,
}

pub struct FakeSmtp {
    pub port: u16,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU32,
    rcpt: AtomicU32,
    delivered: AtomicU32,
}

impl FakeSmtp {
    /// Speaks SMTP, answering `RCPT TO` by `script` and accepting `DATA`.
    pub async fn start(script: impl Fn(u32) -> &'static str + Send + Sync + 'static) -> Self {
        Self::start_with(script, Quirks::default()).await
    }

    /// Like [`FakeSmtp::start`], misbehaving as `quirks` says.
    pub async fn start_with(
        script: impl Fn(u32) -> &'static str + Send + Sync + 'static,
        quirks: Quirks,
    ) -> Self {
        Self::spawn(Some(Behaviour {
            script: Arc::new(script),
            quirks,
        }))
        .await
    }

    /// Accepts TCP connections and never says a word.
    pub async fn silent() -> Self {
        Self::spawn(None).await
    }

    async fn spawn(behaviour: Option<Behaviour>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                match &behaviour {
                    Some(behaviour) => {
                        tokio::spawn(converse(stream, behaviour.clone(), shared.clone()));
                    }
                    None => held.push(stream),
                }
            }
        });
        Self {
            port,
            counters,
            task,
        }
    }

    pub fn connections(&self) -> u32 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// `RCPT TO` commands received: one per delivery attempt.
    pub fn rcpt_commands(&self) -> u32 {
        self.counters.rcpt.load(Ordering::SeqCst)
    }

    /// Messages accepted after `DATA`.
    pub fn delivered(&self) -> u32 {
        self.counters.delivered.load(Ordering::SeqCst)
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn converse(
    stream: TcpStream,
    behaviour: Behaviour,
    counters: Arc<Counters>,
) -> std::io::Result<()> {
    let Behaviour { script, quirks } = behaviour;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 fake.test ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &str = match command.as_str() {
            "EHLO" | "HELO" => "250 fake.test",
            "RCPT" => script(counters.rcpt.fetch_add(1, Ordering::SeqCst)),
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                let earlier = counters.delivered.fetch_add(1, Ordering::SeqCst);
                if let (0, Some(delay)) = (earlier, quirks.late_first_acceptance) {
                    tokio::time::sleep(delay).await;
                }
                if quirks.hang_up_after_each_mail {
                    write.write_all(b"250 2.0.0 queued\r\n").await?;
                    return Ok(());
                }
                "250 2.0.0 queued"
            }
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            // MAIL, RSET, NOOP
            _ => "250 2.0.0 ok",
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}
