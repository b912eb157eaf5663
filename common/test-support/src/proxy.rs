//! A TCP proxy a test can cut, to give one service under test a database,
//! broker or SMTP outage without disturbing the shared servers (and the other
//! tests running against them).
//!
//! `cut()` closes every open connection through the proxy and refuses new
//! ones, like a server that went away; `restore()` accepts again.
//! `freeze()` leaves the open connections open but forwards nothing more on
//! them, in either direction: a half-open link, where the peer is silent and
//! never closes. New connections are forwarded as before.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub struct FaultProxy {
    /// A loopback address of the proxy's own (127.x.y.z, never 127.0.0.1): while
    /// cut, its port is closed, and no other test's `127.0.0.1:0` listener can
    /// take it over meanwhile (they would be a different address).
    pub ip: std::net::Ipv4Addr,
    pub port: u16,
    /// `true` while the proxy forwards; every change is seen by the tasks.
    up: watch::Sender<bool>,
    /// Raised by each [`FaultProxy::freeze`]: connections opened before it
    /// stop forwarding.
    frozen: watch::Sender<u64>,
    /// Connections accepted so far.
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Forwards `127.0.0.1:<port>` to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let ip = std::net::Ipv4Addr::new(
            127,
            rand::random_range(1..=254),
            rand::random(),
            rand::random_range(1..=254),
        );
        let listener = TcpListener::bind((ip, 0)).await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let (up, _) = watch::channel(true);
        let (frozen, _) = watch::channel(0);
        let accepted = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(serve(
            listener,
            target,
            up.clone(),
            frozen.clone(),
            accepted.clone(),
        ));
        Self {
            ip,
            port,
            up,
            frozen,
            accepted,
            task,
        }
    }

    /// How many connections the proxy has accepted so far: a client that
    /// replaced its connection shows here even if its flags were down too
    /// briefly to be seen.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stops forwarding on every open connection, without closing any: each
    /// side sees silence, not an end. New connections are forwarded.
    pub fn freeze(&self) {
        self.frozen.send_modify(|epoch| *epoch += 1);
    }

    /// Drops every connection and closes the port: new connections are
    /// refused (ECONNREFUSED), as when the server is down.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Listens again on the same port.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn rewrite_url(&self, url: &str) -> String {
        rewrite_url(url, &format!("{}:{}", self.ip, self.port))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn serve(
    mut listener: TcpListener,
    target: SocketAddr,
    up: watch::Sender<bool>,
    frozen: watch::Sender<u64>,
    count: Arc<AtomicU64>,
) {
    let address = listener.local_addr().unwrap();
    let mut state = up.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                count.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(forward(client, target, up.subscribe(), frozen.subscribe()));
            }
            _ = state.wait_for(|up| !*up) => {}
        }
        if !*state.borrow() {
            drop(listener);
            let _ = state.wait_for(|up| *up).await;
            listener = TcpListener::bind(address)
                .await
                .expect("rebind the proxy port");
        }
    }
}

async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    mut up: watch::Receiver<bool>,
    mut frozen: watch::Receiver<u64>,
) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let opened_in = *frozen.borrow_and_update();
    let froze = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
        _ = up.wait_for(|up| !*up) => false,
        _ = frozen.wait_for(|epoch| *epoch > opened_in) => true,
    };
    if froze {
        // Half-open: hold both sockets, forward nothing, until cut or the
        // proxy goes.
        let _ = up.wait_for(|up| !*up).await.is_ok();
    }
}

fn rewrite_url(url: &str, host_port: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL with a scheme");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}{host_port}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_pointed_at_the_proxy() {
        assert_eq!(
            rewrite_url("postgres://postgres@127.0.0.1:5432/db", "127.0.0.1:4242"),
            "postgres://postgres@127.0.0.1:4242/db"
        );
        assert_eq!(
            rewrite_url("amqp://guest:guest@host:5672/%2f", "127.0.0.1:4242"),
            "amqp://guest:guest@127.0.0.1:4242/%2f"
        );
    }
}
