//! The pipeline as real processes on a three-node RabbitMQ cluster of the
//! test's own, for the node-loss tests (`tests/e2e/cluster.rs`): the four
//! binaries, payment-service twice, each given `RABBITMQ_URL` listing the
//! three nodes, each on a fresh database, with a real SMTP server
//! in-process.
//!
//! Its tests run on the multi-threaded runtime: the nodes' commands block
//! for seconds, and the SMTP server and the burst's clients must go on
//! meanwhile.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use sqlx::PgPool;
use test_support::{BrokerCluster, ServiceProcess, SmtpSink};

use crate::{Burst, audit::Audit};

/// One service process and where it serves.
pub struct Process {
    pub name: &'static str,
    pub port: u16,
    pub process: ServiceProcess,
}

pub struct ClusterPipeline {
    cluster: BrokerCluster,
    /// `http://127.0.0.1:<port>` of the gateway.
    pub gateway: String,
    /// The processes that hold a broker connection: order-service first,
    /// the two payment-service replicas, email-service.
    pub consumers: Vec<Process>,
    pub http: reqwest::Client,
    pub smtp: SmtpSink,
    order_db: PgPool,
    payment_db: PgPool,
    email_db: PgPool,
    _gateway: ServiceProcess,
}

/// The binaries `cargo nextest run --workspace` builds beside this test's
/// own (`target/<profile>/`).
fn binary(name: &str) -> String {
    let exe = std::env::current_exe().expect("the test knows its path");
    let dir: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps")
        .into();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --bins, or run the whole workspace's tests)",
        path.display()
    );
    path.display().to_string()
}

impl ClusterPipeline {
    /// Boots a three-node cluster, starts every service on it and waits
    /// until each is ready.
    pub async fn start() -> Self {
        test_support::init_logs();
        let cluster = tokio::task::block_in_place(|| BrokerCluster::start(3));
        let urls = cluster.urls();
        let smtp = SmtpSink::start().await;
        let database = |service: &str| test_support::fresh_database(service).url;
        let (order_url, payment_url, email_url) =
            (database("order"), database("payment"), database("email"));
        let spawn = |name: &'static str, env: Vec<(&'static str, String)>| {
            let port = test_support::free_port();
            let mut all = vec![("BIND_ADDR", format!("127.0.0.1:{port}"))];
            all.extend(env);
            let process = ServiceProcess::spawn(&binary(name), &all);
            Process {
                name,
                port,
                process,
            }
        };
        let broker = |db: &str| {
            vec![
                ("DATABASE_URL", db.to_owned()),
                ("RABBITMQ_URL", urls.clone()),
            ]
        };
        let order = spawn("order-service", broker(&order_url));
        let mut payment_env = broker(&payment_url);
        payment_env.push(("PAYMENT_DELAY_MS", "20".into()));
        let payments = [
            spawn("payment-service", payment_env.clone()),
            spawn("payment-service", payment_env),
        ];
        let mut email_env = broker(&email_url);
        email_env.extend([
            ("SMTP_HOST", "127.0.0.1".into()),
            ("SMTP_PORT", smtp.port.to_string()),
        ]);
        let email = spawn("email-service", email_env);
        let gateway_port = test_support::free_port();
        let service_url = |p: &Process| format!("http://127.0.0.1:{}", p.port);
        let gateway = ServiceProcess::spawn(
            &binary("gateway"),
            &[
                ("BIND_ADDR", format!("127.0.0.1:{gateway_port}")),
                ("ORDER_SERVICE_URL", service_url(&order)),
                ("PAYMENT_SERVICE_URL", service_url(&payments[0])),
                ("EMAIL_SERVICE_URL", service_url(&email)),
                ("RATE_LIMIT_PER_SECOND", "0".into()),
            ],
        );
        let mut consumers = vec![order];
        consumers.extend(payments);
        consumers.push(email);
        let pipeline = Self {
            gateway: format!("http://127.0.0.1:{gateway_port}"),
            http: reqwest::Client::new(),
            smtp,
            order_db: pool(&order_url).await,
            payment_db: pool(&payment_url).await,
            email_db: pool(&email_url).await,
            consumers,
            cluster,
            _gateway: gateway,
        };
        pipeline
            .wait_until_ready(Duration::from_secs(60), None)
            .await;
        pipeline
    }

    /// `kill -9` of node `index` (a crash); it stays down.
    pub fn kill(&self, index: u32) {
        tokio::task::block_in_place(|| self.cluster.kill(index));
    }

    /// A clean stop of node `index`.
    pub fn halt(&self, index: u32) {
        tokio::task::block_in_place(|| self.cluster.halt(index));
    }

    /// Node `index` started again; it rejoins the cluster.
    pub fn boot(&self, index: u32) {
        tokio::task::block_in_place(|| self.cluster.boot(index));
    }

    /// `/ready` of every broker-connected process: its status and body.
    pub async fn readiness(&self) -> Vec<(u16, Value)> {
        let mut answers = Vec::new();
        for p in &self.consumers {
            let url = format!("http://127.0.0.1:{}/ready", p.port);
            let answer = match self.http.get(url).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    (status, response.json().await.unwrap_or(Value::Null))
                }
                Err(_) => (0, Value::Null),
            };
            answers.push(answer);
        }
        answers
    }

    /// Waits until every process is ready, none of them on node `not_on`;
    /// how long that took.
    pub async fn wait_until_ready(&self, timeout: Duration, not_on: Option<u32>) -> Duration {
        let started = Instant::now();
        test_support::eventually(timeout, "every service ready", || async {
            let answers = self.readiness().await;
            answers
                .iter()
                .all(|(status, body)| {
                    *status == 200 && (not_on.is_none() || self.node_index(body) != not_on)
                })
                .then_some(())
        })
        .await;
        started.elapsed()
    }

    /// The node a process's `/ready` body says its connection is on.
    pub fn node_index(&self, ready: &Value) -> Option<u32> {
        let node = ready["details"]["rabbitmq"]["node"].as_str()?;
        self.cluster.index_of(node)
    }

    /// The node most processes are connected to.
    pub async fn busiest_node(&self) -> u32 {
        let mut count: HashMap<u32, usize> = HashMap::new();
        for (_, body) in self.readiness().await {
            if let Some(index) = self.node_index(&body) {
                *count.entry(index).or_default() += 1;
            }
        }
        count
            .into_iter()
            .max_by_key(|(index, n)| (*n, std::cmp::Reverse(*index)))
            .map(|(index, _)| index)
            .expect("the services report their node")
    }

    pub fn burst(&self, orders: usize, clients: usize, pause: Duration) -> Burst {
        Burst::start(&self.http, &self.gateway, orders, clients, pause)
    }

    /// How many orders are final (paid or failed) and emailed.
    pub async fn finished(&mut self) -> (i64, usize) {
        let settled: i64 =
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE status <> 'pending'")
                .fetch_one(&self.order_db)
                .await
                .unwrap_or(0);
        (settled, self.smtp.messages().len())
    }

    /// Waits until `count` orders are final and emailed; how long that took.
    pub async fn wait_until_final(&mut self, count: usize, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let (settled, emailed) = self.finished().await;
            if settled >= count as i64 && emailed >= count {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "{settled} of {count} orders final and {emailed} emailed after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The audit of [`Audit`], through a connection to node `via` (a live one).
    pub async fn audit(&mut self, accepted: &[String], via: u32) {
        let broker = Connection::connect(&self.cluster.url(via), ConnectionProperties::default())
            .await
            .expect("a live node");
        Audit {
            order_db: &self.order_db,
            payment_db: &self.payment_db,
            email_db: &self.email_db,
            smtp: &mut self.smtp,
            broker: &broker,
            prefix: "",
        }
        .check(accepted)
        .await;
        for p in &mut self.consumers {
            assert!(
                p.process.is_running(),
                "{} is still running; log: {}",
                p.name,
                p.process.log.display()
            );
        }
    }

    /// Waits until every queue has a replica online on each node.
    pub async fn wait_for_every_replica(&self, timeout: Duration) {
        test_support::eventually(timeout, "every queue's replicas online", || async {
            let listing = tokio::task::block_in_place(|| {
                self.cluster
                    .ctl(1, &["list_queues", "name", "online", "--no-table-headers"])
            });
            let lines: Vec<&str> = listing.lines().filter(|l| !l.trim().is_empty()).collect();
            let all = !lines.is_empty()
                && lines
                    .iter()
                    .all(|line| (1..=3).all(|i| line.contains(&format!("rq{i}@localhost"))));
            all.then_some(())
        })
        .await;
    }

    /// The queues of the cluster whose replicas are not on every node.
    pub fn queues_not_on_every_node(&self) -> Vec<String> {
        let listing = tokio::task::block_in_place(|| {
            self.cluster
                .ctl(1, &["list_queues", "name", "members", "--no-table-headers"])
        });
        listing
            .lines()
            .filter(|line| !line.trim().is_empty())
            .filter(|line| (1..=3).any(|i| !line.contains(&format!("rq{i}@localhost"))))
            .map(str::to_owned)
            .collect()
    }
}

async fn pool(url: &str) -> PgPool {
    // The binaries create their databases; poll until they have.
    test_support::eventually(
        Duration::from_secs(60),
        "the service's database",
        || async { PgPool::connect(url).await.ok() },
    )
    .await
}
