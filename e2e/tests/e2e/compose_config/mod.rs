//! docker-compose.yml and the deploy/ files agree with what the binaries
//! read and declare. No Docker engine runs here, so this is what can be
//! checked natively:
//!
//! - every variable compose sets on a Rust service is one its binary reads,
//!   and every value parses (measured: each binary's configuration is read
//!   in a child process with exactly compose's environment, and
//!   `runtime::config::variables_read` lists what it looked up);
//! - each service's `BIND_ADDR` port is the one of its health check and of
//!   its published or exposed ports; payment-service has no fixed container
//!   name and no host port (it is scaled);
//! - every service has a health check and every `depends_on` waits for
//!   `service_healthy`;
//! - the Dockerfile builds and copies every binary compose runs;
//! - deploy/rabbitmq/definitions.json provisions exactly the exchanges,
//!   queues (with their arguments) and bindings that `messaging::topology`
//!   declares for the settings compose gives each service, and each service's
//!   RabbitMQ and PostgreSQL user and password are the ones provisioned;
//! - `.env.example` lists every variable compose interpolates, with its default;
//! - the Grafana dashboard uses only metric names the code records.
//!
//! This module holds the compose reader and the environment checks; the
//! others are in [`docker`], [`rabbitmq`] and [`dashboard`].

mod dashboard;
mod docker;
mod rabbitmq;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use contract::{
    events::{Event, OrderCreated, PaymentProcessed},
    names::{EMAIL_QUEUE, ORDER_QUEUE, PAYMENT_QUEUE},
};
use dead_letters::headers_to_json;
use messaging::{AmqpSettings, topology::Topology};
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;

/// The Rust services: compose service name = binary name.
const RUST_SERVICES: [&str; 4] = [
    "gateway",
    "order-service",
    "payment-service",
    "email-service",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    let path = workspace().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// docker-compose.yml with its anchors and `<<` merge keys resolved.
fn compose() -> Yaml {
    let mut compose: Yaml =
        serde_yaml_ng::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    compose.apply_merge().expect("merge keys resolve");
    compose
}

fn services(compose: &Yaml) -> BTreeMap<String, Yaml> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

/// `${NAME:-default}`, `${NAME}` and `$$` as compose interpolates them, with
/// an environment of its own (the dev defaults when `env` is empty).
fn interpolate(raw: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = rest.strip_prefix('{') {
            let end = inner
                .find('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {raw}"));
            let expr = &inner[..end];
            let value = match expr.split_once(":-") {
                Some((name, default)) => env
                    .get(name)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| default.to_owned()),
                None => env
                    .get(expr)
                    .cloned()
                    .unwrap_or_else(|| panic!("{expr} has no default in {raw:?}")),
            };
            out.push_str(&value);
            rest = &inner[end + 1..];
        } else {
            panic!("bare $ in {raw:?}: write $$ or ${{NAME}}");
        }
    }
    out.push_str(rest);
    out
}

fn scalar(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A service's `environment:` (map form), interpolated with the defaults.
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let key = k.as_str().unwrap().to_owned();
                    (key, interpolate(&scalar(v), &BTreeMap::new()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| s.iter().map(scalar).collect())
        .unwrap_or_default()
}

/// What a binary's configuration does with an environment: the variables it
/// reads, and the broker topology it would declare.
fn configuration_of(binary: &str, env: &BTreeMap<String, String>) -> Value {
    let out = std::env::temp_dir().join(format!(
        "compose-config-{binary}-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "compose_config::child_reads_a_services_configuration",
            "--nocapture",
        ])
        .env_clear()
        .envs(env)
        .env("COMPOSE_CHECK_SERVICE", binary)
        .env("COMPOSE_CHECK_OUT", &out)
        .output()
        .expect("the test binary runs");
    assert!(
        output.status.success(),
        "{binary} rejects compose's environment {env:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).expect("the child wrote its report");
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&text).unwrap()
}

/// The queue a consuming service declares: its base name and routing key.
fn consumed_queue(binary: &str) -> Option<(&'static str, &'static str)> {
    match binary {
        "order-service" => Some((ORDER_QUEUE, PaymentProcessed::ROUTING_KEY)),
        "payment-service" => Some((PAYMENT_QUEUE, OrderCreated::ROUTING_KEY)),
        "email-service" => Some((EMAIL_QUEUE, PaymentProcessed::ROUTING_KEY)),
        _ => None,
    }
}

/// Run by [`configuration_of`] in a child process whose environment is
/// exactly one compose service's; does nothing in a normal test run. Reads
/// the configuration as the binary's `main` does (logging first, then the
/// settings) and reports the variables read and the queues and bindings the
/// service would declare.
#[test]
fn child_reads_a_services_configuration() {
    let (Ok(binary), Ok(out)) = (
        std::env::var("COMPOSE_CHECK_SERVICE"),
        std::env::var("COMPOSE_CHECK_OUT"),
    ) else {
        return;
    };
    runtime::telemetry::init("compose-check").expect("logging configuration");
    let amqp: Option<AmqpSettings> = match binary.as_str() {
        "gateway" => {
            gateway::Settings::from_env().expect("gateway configuration");
            None
        }
        "order-service" => Some(
            order_service::Settings::from_env()
                .expect("configuration")
                .amqp,
        ),
        "payment-service" => Some(
            payment_service::Settings::from_env()
                .expect("configuration")
                .amqp,
        ),
        "email-service" => Some(
            email_service::Settings::from_env()
                .expect("configuration")
                .amqp,
        ),
        other => panic!("unknown service {other}"),
    };
    let mut report = json!({"read": runtime::config::variables_read()});
    if let (Some(amqp), Some((base, routing_key))) = (amqp, consumed_queue(&binary)) {
        let topology = Topology::new(&amqp);
        let queue = topology.queue(base, routing_key);
        report["exchanges"] = json!([
            {"name": topology.exchange(), "type": "topic"},
            {"name": topology.dead_letter_exchange(), "type": "direct"},
        ]);
        report["queues"] = topology
            .queue_declarations(&queue)
            .into_iter()
            .map(|q| json!({"name": q.name, "arguments": headers_to_json(&q.arguments)}))
            .collect();
        report["bindings"] = topology
            .bindings(&queue)
            .into_iter()
            .map(|b| json!({"source": b.exchange, "destination": b.queue, "routing_key": b.routing_key}))
            .collect();
        report["rabbitmq_url"] = amqp.url.into();
    }
    std::fs::write(out, report.to_string()).unwrap();
}

#[test]
fn every_variable_compose_sets_is_read_by_the_service_and_parses() {
    let services = services(&compose());
    for binary in RUST_SERVICES {
        let service = &services[binary];
        let env = environment(service);
        assert!(!env.is_empty(), "{binary} has an environment");
        let report = configuration_of(binary, &env);
        let read: BTreeSet<String> = report["read"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        // Sanity: the measurement sees the variables every service reads.
        for always in ["BIND_ADDR", "LOG_FORMAT", "RUST_LOG"] {
            assert!(read.contains(always), "{binary} reads {always}: {read:?}");
        }
        for name in env.keys() {
            assert!(
                read.contains(name),
                "compose sets {name} on {binary}, which never reads it (it reads {read:?})"
            );
        }
    }
}

/// `.env.example` lists every variable compose interpolates, with compose's
/// own default, and nothing else.
#[test]
fn env_example_lists_every_interpolated_variable_with_its_default() {
    let compose = read("docker-compose.yml");
    let mut interpolated = BTreeMap::new();
    for (at, _) in compose.match_indices("${") {
        let inner = &compose[at + 2..];
        let expr = &inner[..inner.find('}').unwrap()];
        let (name, default) = expr
            .split_once(":-")
            .unwrap_or_else(|| panic!("${{{expr}}} has a default"));
        if let Some(previous) = interpolated.insert(name.to_owned(), default.to_owned()) {
            assert_eq!(previous, default, "{name} has one default everywhere");
        }
    }
    let example: BTreeMap<String, String> = read(".env.example")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_eq!(example, interpolated);
}
