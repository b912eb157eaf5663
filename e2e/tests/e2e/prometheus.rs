//! The monitoring profile's Prometheus configuration, dashboard and alert
//! rules on a real Prometheus (Debian's package, which scripts/test.sh
//! unpacks into target/tools/prometheus; `PROMETHEUS` names another). The
//! shipped `deploy/prometheus/prometheus.yml` runs as it is, but for its
//! targets, pointed at the four binaries and at a RabbitMQ node of the
//! test's own with rabbitmq_prometheus, and a one-second scrape and
//! evaluation interval. After a burst with every outcome (paid, declined,
//! retried, parked, duplicate, 4xx, 5xx), every dashboard query returns
//! series, and every alert rule is evaluated without error.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use contract::events::{Event, OrderCreated};
use e2e::processes::{ProcessPipeline, Setup};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;
use test_support::{BrokerNode, eventually};
use uuid::Uuid;

use crate::deployment::{read, workspace};

/// `scripts/rabbitmq-nodes.sh` node of this test (others use 1–3 and 9).
const NODE: u32 = 8;

/// The dashboard's `$__rate_interval`: a few scrapes at one per second.
const RATE_INTERVAL: &str = "30s";

/// A Prometheus server on a free port, killed when dropped.
struct Prometheus {
    url: String,
    child: Child,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Runs the shipped configuration with each job's targets replaced by
    /// `targets[job]` (every job must have some).
    fn start(targets: &BTreeMap<&str, String>) -> Self {
        let mut config: Yaml =
            serde_yaml_ng::from_str(&read("deploy/prometheus/prometheus.yml")).unwrap();
        config["global"]["scrape_interval"] = "1s".into();
        config["global"]["evaluation_interval"] = "1s".into();
        let rules = workspace().join("deploy/prometheus/alerts.yml");
        config["rule_files"] = Yaml::Sequence(vec![rules.display().to_string().into()]);
        // No Alertmanager here: the rules' state is read from the API.
        config.as_mapping_mut().unwrap().remove("alerting");
        for job in config["scrape_configs"].as_sequence_mut().unwrap() {
            let name = job["job_name"].as_str().unwrap().to_owned();
            let target = targets
                .get(name.as_str())
                .unwrap_or_else(|| panic!("no target for the job {name}"));
            let job = job.as_mapping_mut().unwrap();
            job.remove("dns_sd_configs");
            let static_configs: Yaml =
                serde_yaml_ng::from_str(&format!("[{{targets: ['{target}']}}]")).unwrap();
            job.insert("static_configs".into(), static_configs);
        }
        let dir = std::env::temp_dir().join(format!("prometheus-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        let port = test_support::free_port();
        let binary = std::env::var_os("PROMETHEUS").map_or_else(
            || workspace().join("target/tools/prometheus/usr/bin/prometheus"),
            PathBuf::from,
        );
        assert!(
            binary.exists(),
            "{} is missing: scripts/test.sh installs it (install_prometheus_tools), or set PROMETHEUS",
            binary.display()
        );
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        }
    }

    /// The `data` of an API answer, or why there is none.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/{path}", self.url), query)
            .map_err(|e| e.to_string())?;
        let answer = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = answer.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(body.to_string());
        }
        Ok(body["data"].clone())
    }

    /// The series of an instant query.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("query", &[("query", expr)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
}

/// Every query of the shipped Grafana dashboard, `$__rate_interval` set.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/checkout-pipeline.json")).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            queries.push((
                panel["title"].as_str().unwrap().to_owned(),
                expr.replace("$__rate_interval", RATE_INTERVAL),
            ));
        }
    }
    queries
}

async fn checkout(pipeline: &ProcessPipeline, email: &str) -> (u16, Value) {
    let body = json!({"user_id": 5, "user_email": email,
                      "items": [{"product_id": 1, "quantity": 1}]});
    pipeline.post("/api/checkout", &body).await
}

/// Paid, declined and retried orders; a poison message (parked) and an
/// event delivered twice (a duplicate); a 4xx and, with order-service
/// stopped, a 5xx. Returns once the orders are final and emailed.
async fn every_outcome(pipeline: &mut ProcessPipeline, broker: &Connection) {
    let emails = [
        "paid-1@example.com",
        "paid-2@example.com",
        "paid-3@example.com",
        "buyer+decline@example.com",
        "buyer+flaky@example.com",
    ];
    for email in emails {
        let (status, order) = checkout(pipeline, email).await;
        assert_eq!(status, 201, "{order}");
    }
    let exchange = contract::names::EXCHANGE;
    test_support::publish_raw(
        broker,
        exchange,
        OrderCreated::ROUTING_KEY,
        b"not an event",
        &Uuid::new_v4().to_string(),
    )
    .await;
    let twice = test_support::fixtures::order_created("twice@example.com");
    for _ in 0..2 {
        test_support::publish_raw(
            broker,
            exchange,
            OrderCreated::ROUTING_KEY,
            &serde_json::to_vec(&twice).unwrap(),
            &twice.event_id.to_string(),
        )
        .await;
    }
    let (status, _) = pipeline.post("/api/checkout", &json!({"user_id": 5})).await;
    assert_eq!(status / 100, 4, "a checkout without items");

    pipeline.consumers[0].kill();
    let (status, answer) = checkout(pipeline, "down@example.com").await;
    assert_eq!(status / 100, 5, "order-service stopped: {answer}");
    pipeline.consumers[0].start(&[]);
    pipeline
        .wait_until_ready(Duration::from_secs(60), |_| true)
        .await;
    pipeline
        .wait_until_final(emails.len(), Duration::from_secs(60))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs a RabbitMQ node, the four binaries and Prometheus: run alone by scripts/test.sh"]
async fn every_dashboard_query_has_data_and_every_alert_rule_evaluates_on_a_real_prometheus() {
    let node = tokio::task::block_in_place(|| {
        BrokerNode::boot_with_plugins(NODE, &["rabbitmq_prometheus"])
    });
    let mut pipeline = ProcessPipeline::start(Setup::on(node.url())).await;
    let address = |url: &str| url.trim_start_matches("http://").to_owned();
    let targets = BTreeMap::from([
        ("gateway", address(&pipeline.gateway)),
        ("order-service", address(&pipeline.consumers[0].url())),
        ("payment-service", address(&pipeline.consumers[1].url())),
        ("email-service", address(&pipeline.consumers[2].url())),
        ("rabbitmq", node.metrics_address()),
        ("rabbitmq-node", node.metrics_address()),
    ]);
    let prometheus = Prometheus::start(&targets);
    eventually(
        Duration::from_secs(60),
        "every target scraped and up",
        || async {
            let up = prometheus.query("up == 1").await.ok()?;
            (up.len() == targets.len()).then_some(())
        },
    )
    .await;

    let broker = Connection::connect(&node.url(), ConnectionProperties::default())
        .await
        .unwrap();
    every_outcome(&mut pipeline, &broker).await;

    // Rates need two scrapes after the last change; a bounded wait for all.
    let queries = dashboard_queries();
    assert!(queries.len() >= 28, "{} queries", queries.len());
    let mut empty = Vec::new();
    for _ in 0..30 {
        empty.clear();
        for (title, expr) in &queries {
            match prometheus.query(expr).await {
                Ok(series) if !series.is_empty() => {}
                Ok(_) => empty.push(format!("{title}: {expr}")),
                Err(error) => panic!("{title}: {expr} fails: {error}"),
            }
        }
        if empty.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        empty.is_empty(),
        "queries without data:\n{}",
        empty.join("\n")
    );

    let groups = prometheus.api("rules", &[]).await.unwrap()["groups"].clone();
    let rules: Vec<&Value> = groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(rules.len() >= 8, "{groups}");
    for rule in rules {
        assert_eq!(rule["health"], "ok", "{rule}");
        prometheus
            .query(rule["query"].as_str().unwrap())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", rule["name"]));
    }
    drop(prometheus);
    drop(pipeline);
    tokio::task::block_in_place(|| drop(node));
}
