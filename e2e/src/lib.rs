//! The whole pipeline in one process, for end-to-end tests: gateway,
//! order-service, payment-service and email-service, each built exactly as its
//! `main` builds it, on a fresh database each, one unique broker prefix, and a
//! real SMTP server in-process.

pub mod audit;
mod burst;
pub mod cluster;
pub mod postgres_node;
pub mod processes;

pub use burst::{Burst, BurstResult};

use runtime::service::Service as _;
use std::time::Duration;

use runtime::service::supervise;

use messaging::{AmqpSettings, db::DatabaseSettings};
use serde_json::Value;
use sqlx::PgPool;
use test_support::{self, BrokerCleanup, FaultProxy, SmtpSink};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How to start the pipeline.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Connect every service to RabbitMQ through a [`FaultProxy`] the test can cut.
    pub broker_proxy: bool,
    /// The simulated provider's latency (default none).
    pub payment_delay: Duration,
    /// Each service's own database and broker settings (for example a
    /// least-privilege role and user, see `tests/least_privilege.rs`) instead
    /// of a fresh database and a fresh name prefix. The test owns their
    /// clean-up; the broker names are used as they are.
    pub connections: Option<Connections>,
    /// order-service's `ORDER_PAYMENT_TIMEOUT_SECS` (default 900).
    pub payment_timeout_secs: Option<u64>,
}

/// Database and broker settings of the three services that have them.
#[derive(Debug, Clone)]
pub struct Connections {
    pub order: (DatabaseSettings, AmqpSettings),
    pub payment: (DatabaseSettings, AmqpSettings),
    pub email: (DatabaseSettings, AmqpSettings),
}

pub struct Pipeline {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub gateway: String,
    /// `http://127.0.0.1:<port>` of each service behind it (health, metrics).
    pub order_service: String,
    pub payment_service: String,
    pub email_service: String,
    pub http: reqwest::Client,
    pub smtp: SmtpSink,
    pub amqp: AmqpSettings,
    pub order_db: PgPool,
    pub payment_db: PgPool,
    pub email_db: PgPool,
    /// The proxy between the services and RabbitMQ, when asked for.
    pub broker: Option<FaultProxy>,
    shutdown: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
    _cleanup: Option<BrokerCleanup>,
}

impl Pipeline {
    /// Starts all four services; the simulated provider answers at once.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        test_support::init_logs();
        let smtp = SmtpSink::start().await;
        let direct = test_support::fresh_amqp();
        // Clean-up talks to the broker directly, never through the proxy.
        let cleanup = options
            .connections
            .is_none()
            .then(|| BrokerCleanup::all(&direct));
        let mut amqp = direct;
        assert!(
            !(options.broker_proxy && options.connections.is_some()),
            "broker_proxy and connections do not combine"
        );
        let broker = if options.broker_proxy {
            let proxy = FaultProxy::start(test_support::socket_addr_of(&amqp.url)).await;
            amqp.url = proxy.rewrite_url(&amqp.url);
            Some(proxy)
        } else {
            None
        };
        let connections = options.connections.clone().unwrap_or_else(|| Connections {
            order: (test_support::fresh_database("order"), amqp.clone()),
            payment: (test_support::fresh_database("payment"), amqp.clone()),
            email: (test_support::fresh_database("email"), amqp.clone()),
        });
        if options.connections.is_some() {
            amqp = connections.order.1.clone();
        }
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();

        let mut settings = order_service::Settings {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            database: connections.order.0.clone(),
            amqp: connections.order.1.clone(),
            payment_timeout_secs: options.payment_timeout_secs.unwrap_or(900),
        };
        let order = order_service::Application::build(settings.clone())
            .await
            .expect("order-service builds");
        // A restart keeps the port the gateway calls.
        settings.bind_addr.set_port(order.foundation().port());
        let order_url = format!("http://127.0.0.1:{}", order.foundation().port());
        let order_db = order.foundation().pool.clone();
        // Each service runs as its binary runs it: restarted in place after a
        // failure (a wedged broker connection), see `runtime::service::supervise`.
        tasks.push((
            "order-service",
            tokio::spawn(supervise(order, settings, shutdown.clone())),
        ));

        let settings = payment_service::Settings {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            database: connections.payment.0.clone(),
            amqp: connections.payment.1.clone(),
            provider: payment_service::config::ProviderSettings {
                delay: options.payment_delay,
                decline_above: rust_decimal::Decimal::from(10_000),
            },
        };
        let payment = payment_service::Application::build(settings.clone())
            .await
            .expect("payment-service builds");
        let payment_db = payment.foundation().pool.clone();
        let payment_url = format!("http://127.0.0.1:{}", payment.foundation().port());
        tasks.push((
            "payment-service",
            tokio::spawn(supervise(payment, settings, shutdown.clone())),
        ));

        let settings = email_service::Settings {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            database: connections.email.0.clone(),
            amqp: connections.email.1.clone(),
            smtp: email_service::config::SmtpSettings {
                host: "127.0.0.1".into(),
                port: smtp.port,
                tls: email_service::config::SmtpTls::None,
                credentials: None,
                timeout: Duration::from_secs(10),
            },
            email_from: "noreply@ecommerce.com".parse().unwrap(),
            reply_to: None,
            branding: email_service::templates::Branding::defaults("noreply@ecommerce.com"),
        };
        let email = email_service::Application::build(settings.clone())
            .await
            .expect("email-service builds");
        let email_db = email.foundation().pool.clone();
        let email_url = format!("http://127.0.0.1:{}", email.foundation().port());
        tasks.push((
            "email-service",
            tokio::spawn(supervise(email, settings, shutdown.clone())),
        ));

        let gateway = gateway::Application::build(gateway::Settings {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            order_service_url: order_url.clone(),
            payment_service_url: payment_url.clone(),
            email_service_url: email_url.clone(),
            order_service_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            order_service_max_concurrency: gateway::Settings::DEFAULT_MAX_CONCURRENCY,
            // Bursts from one test client are the point of these tests.
            rate_limit: None,
        })
        .await
        .expect("gateway builds");
        let gateway_url = format!("http://127.0.0.1:{}", gateway.port());
        tasks.push((
            "gateway",
            tokio::spawn(gateway.run_until_stopped(shutdown.clone())),
        ));

        let pipeline = Self {
            gateway: gateway_url,
            order_service: order_url,
            payment_service: payment_url,
            email_service: email_url,
            http: reqwest::Client::new(),
            smtp,
            amqp,
            order_db,
            payment_db,
            email_db,
            broker,
            shutdown,
            tasks,
            _cleanup: cleanup,
        };
        pipeline.wait_until_ready().await;
        pipeline
    }

    /// Every service answers `/ready`: in particular each consumer is
    /// attached, so its queue exists before the first event is published (an
    /// event published before a queue is declared never reaches that queue).
    async fn wait_until_ready(&self) {
        for (name, base) in [
            ("order-service", &self.order_service),
            ("payment-service", &self.payment_service),
            ("email-service", &self.email_service),
            ("gateway", &self.gateway),
        ] {
            let what = format!("{name} to be ready");
            test_support::eventually(Duration::from_secs(20), &what, || async {
                let response = self.http.get(format!("{base}/ready")).send().await.ok()?;
                response.status().is_success().then_some(())
            })
            .await;
        }
    }

    /// `POST /api/checkout` with `body`; the status and the JSON answer.
    pub async fn checkout(&self, body: &Value) -> (u16, Value) {
        post(&self.http, &self.gateway, "/api/checkout", body).await
    }

    /// `GET` a gateway path as JSON.
    pub async fn get(&self, path: &str) -> Value {
        get(&self.http, &self.gateway, path).await
    }

    /// One scrape of `<base>/metrics` (`base` one of the service URLs above).
    /// In-process, all services record into one registry, so a test reads
    /// each service's metrics by their labels (queue, app, service).
    pub async fn metrics(&self, base: &str) -> test_support::Metrics {
        let response = self
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("service answers /metrics");
        assert!(response.status().is_success(), "{base}/metrics answers 200");
        test_support::Metrics::parse(&response.text().await.expect("metrics text"))
    }

    /// Polls the order until its status is not `pending`, then returns it.
    pub async fn settled_order(&self, id: &str) -> Value {
        test_support::eventually(
            Duration::from_secs(20),
            "the order to be settled",
            || async {
                let order = self.get(&format!("/api/orders/{id}")).await;
                (order["status"] != "pending").then_some(order)
            },
        )
        .await
    }

    /// Stops every service the way SIGTERM does; each must stop cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for (name, task) in self.tasks {
            task.await
                .unwrap_or_else(|e| panic!("{name} panicked: {e}"))
                .unwrap_or_else(|e| panic!("{name} stopped with an error: {e:#}"));
        }
    }
}

impl Pipeline {
    /// Starts `orders` checkouts of product 2 from `clients` clients, each
    /// pausing `pause` between requests.
    pub fn start_burst(&self, orders: usize, clients: usize, pause: Duration) -> Burst {
        Burst::start(&self.http, &self.gateway, orders, clients, pause)
    }

    /// Waits until every accepted order is settled and emailed, then checks
    /// the invariants ([`audit::Audit`]).
    pub async fn audit(&mut self, accepted: &[String]) {
        self.audit_stock(accepted, &audit::FRESH_STOCK).await;
    }

    /// [`Self::audit`] for a run whose tracked products started at
    /// `starting` units.
    pub async fn audit_stock(&mut self, accepted: &[String], starting: &[(i64, i64)]) {
        let broker = test_support::test_connection().await;
        audit::Audit {
            order_db: &self.order_db,
            payment_db: &self.payment_db,
            email_db: &self.email_db,
            smtp: &mut self.smtp,
            broker: &broker,
            prefix: &self.amqp.prefix,
        }
        .check_stock(accepted, starting)
        .await;
    }
}

/// `POST` `body` as JSON to `<base><path>`; the status and the JSON answer.
pub(crate) async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = http
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `GET` `<base><path>` as JSON.
pub(crate) async fn get(http: &reqwest::Client, base: &str, path: &str) -> Value {
    http.get(format!("{base}{path}"))
        .send()
        .await
        .expect("the service answers")
        .json()
        .await
        .expect("JSON answer")
}
