//! The pipeline as real processes: the four binaries, each service on a
//! fresh database, every broker-connected process given one `RABBITMQ_URL`
//! (a vhost of the machine's broker, or the address list of a cluster), and
//! a real SMTP server in-process. A test stops and starts processes as an
//! operator or a crash would ([`Process::kill`], [`Process::start`]).
//!
//! The binaries are the ones `cargo nextest run --workspace` builds beside
//! the tests (`target/<profile>/`), with the `test-hooks` feature that
//! makes `FAIL_POINT` work.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use lapin::Connection;
use serde_json::Value;
use sqlx::PgPool;
use test_support::{ServiceProcess, SmtpSink};

use crate::{Burst, audit::Audit};

/// What to start.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Every broker-connected process's `RABBITMQ_URL`.
    pub rabbitmq_url: String,
    pub payment_replicas: usize,
    /// The simulated provider's latency.
    pub payment_delay: Duration,
    /// Added to order-service's environment (e.g. `ORDER_PAYMENT_TIMEOUT_SECS`).
    pub order_env: Vec<(&'static str, String)>,
    /// Added to every process's environment (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub env: Vec<(&'static str, String)>,
}

impl Setup {
    pub fn on(rabbitmq_url: String) -> Self {
        Self {
            rabbitmq_url,
            payment_replicas: 1,
            payment_delay: Duration::from_millis(20),
            order_env: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// One service binary, where it serves, and how it was started; running or
/// not.
pub struct Process {
    pub name: &'static str,
    pub port: u16,
    pub process: Option<ServiceProcess>,
    env: Vec<(&'static str, String)>,
}

impl Process {
    fn new(name: &'static str, env: Vec<(&'static str, String)>) -> Self {
        let mut process = Self {
            name,
            port: test_support::free_port(),
            process: None,
            env,
        };
        process.start(&[]);
        process
    }

    /// Starts the binary again on its port, with `extra` added to its
    /// environment (e.g. a `FAIL_POINT`). A running process is killed first.
    pub fn start(&mut self, extra: &[(&'static str, String)]) {
        self.process = None;
        let mut env = vec![("BIND_ADDR", format!("127.0.0.1:{}", self.port))];
        env.extend(self.env.iter().cloned());
        env.extend(extra.iter().cloned());
        self.process = Some(ServiceProcess::spawn(&binary(self.name), &env));
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        self.process = None;
    }

    pub fn running(&mut self) -> &mut ServiceProcess {
        self.process
            .as_mut()
            .unwrap_or_else(|| panic!("{} is stopped", self.name))
    }

    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(ServiceProcess::is_running)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub struct ProcessPipeline {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub gateway: String,
    /// The processes that hold a broker connection: order-service first,
    /// then the payment-service replicas, email-service last.
    pub consumers: Vec<Process>,
    pub http: reqwest::Client,
    pub smtp: SmtpSink,
    pub order_db: PgPool,
    pub payment_db: PgPool,
    pub email_db: PgPool,
    _gateway: Process,
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
        "{} is missing: build the binaries first (run the whole workspace's tests)",
        path.display()
    );
    path.display().to_string()
}

impl ProcessPipeline {
    /// Starts every service and waits until each is ready.
    pub async fn start(setup: Setup) -> Self {
        test_support::init_logs();
        let smtp = SmtpSink::start().await;
        let database = |service: &str| test_support::fresh_database(service).url;
        let (order_url, payment_url, email_url) =
            (database("order"), database("payment"), database("email"));
        let broker = |db: &str| {
            let mut env = setup.env.clone();
            env.extend([
                ("DATABASE_URL", db.to_owned()),
                ("RABBITMQ_URL", setup.rabbitmq_url.clone()),
            ]);
            env
        };
        let mut order_env = broker(&order_url);
        order_env.extend(setup.order_env.iter().cloned());
        let mut consumers = vec![Process::new("order-service", order_env)];
        let mut payment_env = broker(&payment_url);
        payment_env.push((
            "PAYMENT_DELAY_MS",
            setup.payment_delay.as_millis().to_string(),
        ));
        for _ in 0..setup.payment_replicas {
            consumers.push(Process::new("payment-service", payment_env.clone()));
        }
        let mut email_env = broker(&email_url);
        email_env.extend([
            ("SMTP_HOST", "127.0.0.1".into()),
            ("SMTP_PORT", smtp.port.to_string()),
        ]);
        consumers.push(Process::new("email-service", email_env));
        let mut gateway_env = setup.env.clone();
        gateway_env.extend([
            ("ORDER_SERVICE_URL", consumers[0].url()),
            ("PAYMENT_SERVICE_URL", consumers[1].url()),
            ("EMAIL_SERVICE_URL", consumers[consumers.len() - 1].url()),
            ("RATE_LIMIT_PER_SECOND", "0".into()),
        ]);
        let gateway = Process::new("gateway", gateway_env);
        let pipeline = Self {
            gateway: gateway.url(),
            http: reqwest::Client::new(),
            smtp,
            order_db: pool(&order_url).await,
            payment_db: pool(&payment_url).await,
            email_db: pool(&email_url).await,
            consumers,
            _gateway: gateway,
        };
        pipeline
            .wait_until_ready(Duration::from_secs(60), |_| true)
            .await;
        pipeline
    }

    /// `POST` `body` to a gateway `path`; the status and the JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        crate::post(&self.http, &self.gateway, path, body).await
    }

    /// `GET` a gateway path as JSON.
    pub async fn get(&self, path: &str) -> Value {
        crate::get(&self.http, &self.gateway, path).await
    }

    /// The payment-service replica `index` (from 0).
    pub fn payment(&mut self, index: usize) -> &mut Process {
        let process = &mut self.consumers[1 + index];
        assert_eq!(process.name, "payment-service");
        process
    }

    /// `/ready` of every broker-connected process: its status and body
    /// (status 0 when it does not answer).
    pub async fn readiness(&self) -> Vec<(u16, Value)> {
        let mut answers = Vec::new();
        for p in &self.consumers {
            let url = format!("{}/ready", p.url());
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

    /// Waits until every process is ready and `accept`s its `/ready` body;
    /// how long that took.
    pub async fn wait_until_ready(
        &self,
        timeout: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Duration {
        let started = Instant::now();
        test_support::eventually(timeout, "every service ready", || async {
            let answers = self.readiness().await;
            answers
                .iter()
                .all(|(status, body)| *status == 200 && accept(body))
                .then_some(())
        })
        .await;
        started.elapsed()
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

    /// The audit of [`Audit`] (through `broker`, a connection to the
    /// services' broker), from a fresh database's stock; then every process
    /// must still be running.
    pub async fn audit(&mut self, accepted: &[String], broker: &Connection) {
        Audit {
            order_db: &self.order_db,
            payment_db: &self.payment_db,
            email_db: &self.email_db,
            smtp: &mut self.smtp,
            broker,
            prefix: "",
        }
        .check(accepted)
        .await;
        for p in &mut self.consumers {
            let log = p
                .process
                .as_ref()
                .map(|s| s.log.display().to_string())
                .unwrap_or_default();
            assert!(p.is_running(), "{} is still running; log: {log}", p.name);
        }
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
