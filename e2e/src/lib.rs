//! The whole pipeline in one process, for end-to-end tests: gateway,
//! order-service, payment-service and email-service, each built exactly as its
//! `main` builds it, on a fresh database each, one unique broker prefix, and a
//! real SMTP server in-process.

use std::time::Duration;

use common::{
    messaging::AmqpSettings,
    testing::{self, BrokerCleanup, FaultProxy, SmtpSink},
};
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How to start the pipeline.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Connect every service to RabbitMQ through a [`FaultProxy`] the test can cut.
    pub broker_proxy: bool,
    /// The simulated provider's latency (default none).
    pub payment_delay: Duration,
}

pub struct Pipeline {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub gateway: String,
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
    _cleanup: BrokerCleanup,
}

impl Pipeline {
    /// Starts all four services; the simulated provider answers at once.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        common::telemetry::init_for_tests();
        let smtp = SmtpSink::start().await;
        let direct = testing::fresh_amqp();
        // Clean-up talks to the broker directly, never through the proxy.
        let cleanup = BrokerCleanup::all(&direct);
        let mut amqp = direct;
        let broker = if options.broker_proxy {
            let proxy = FaultProxy::start(testing::socket_addr_of(&amqp.url)).await;
            amqp.url = proxy.rewrite_url(&amqp.url);
            Some(proxy)
        } else {
            None
        };
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();

        let order = order_service::Application::build(order_service::Settings {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            database: testing::fresh_database("order"),
            amqp: amqp.clone(),
        })
        .await
        .expect("order-service builds");
        let order_url = format!("http://127.0.0.1:{}", order.port());
        let order_db = order.pool().clone();
        tasks.push((
            "order-service",
            tokio::spawn(order.run_until_stopped(shutdown.clone())),
        ));

        let payment = payment_service::Application::build(payment_service::Settings {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            database: testing::fresh_database("payment"),
            amqp: amqp.clone(),
            provider: payment_service::config::ProviderSettings {
                delay: options.payment_delay,
                decline_above: rust_decimal::Decimal::from(10_000),
            },
        })
        .await
        .expect("payment-service builds");
        let payment_db = payment.pool().clone();
        tasks.push((
            "payment-service",
            tokio::spawn(payment.run_until_stopped(shutdown.clone())),
        ));

        let email = email_service::Application::build(email_service::Settings {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            database: testing::fresh_database("email"),
            amqp: amqp.clone(),
            smtp: email_service::config::SmtpSettings {
                host: "127.0.0.1".into(),
                port: smtp.port,
                tls: email_service::config::SmtpTls::None,
                credentials: None,
                timeout: Duration::from_secs(10),
            },
            email_from: "noreply@ecommerce.com".parse().unwrap(),
        })
        .await
        .expect("email-service builds");
        let email_db = email.pool().clone();
        tasks.push((
            "email-service",
            tokio::spawn(email.run_until_stopped(shutdown.clone())),
        ));

        let gateway = gateway::Application::build(gateway::Settings {
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            order_service_url: order_url,
            order_service_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
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

    async fn wait_until_ready(&self) {
        testing::eventually(
            Duration::from_secs(20),
            "the gateway to be ready",
            || async {
                let response = self
                    .http
                    .get(format!("{}/ready", self.gateway))
                    .send()
                    .await
                    .ok()?;
                response.status().is_success().then_some(())
            },
        )
        .await;
    }

    /// `POST /api/checkout` with `body`; the status and the JSON answer.
    pub async fn checkout(&self, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/checkout", self.gateway))
            .json(body)
            .send()
            .await
            .expect("gateway answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET` a gateway path as JSON.
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.gateway))
            .send()
            .await
            .expect("gateway answers")
            .json()
            .await
            .expect("JSON answer")
    }

    /// Polls the order until its status is not `pending`, then returns it.
    pub async fn settled_order(&self, id: &str) -> Value {
        testing::eventually(
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
