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
//!   declares for the settings compose gives each service, for every work
//!   queue it consumes; each service's RabbitMQ rights name its own queues
//!   and no other's; and each service's RabbitMQ and PostgreSQL user and
//!   password are the ones provisioned;
//! - `.env.example` lists every variable compose interpolates, with its default;
//! - the Grafana dashboard uses only metric names the code records;
//! - the alert rules and Alertmanager's configuration pass promtool and
//!   amtool, and the rules their unit tests ([`alerts`]).
//!
//! This module holds the compose reader and the environment checks; the
//! others are in [`docker`], [`rabbitmq`], [`dashboard`] and [`alerts`]. What the
//! Kubernetes checks read alike (the files, the child process that reads a
//! configuration) is in [`crate::deployment`].

mod alerts;
mod dashboard;
mod docker;
mod rabbitmq;

use std::collections::{BTreeMap, BTreeSet};

use contract::names::{
    EMAIL_CANCELLATION_QUEUE, EMAIL_QUEUE, EMAIL_REFUND_QUEUE, ORDER_QUEUE, ORDER_REFUND_QUEUE,
    PAYMENT_QUEUE, PAYMENT_REFUND_QUEUE, WORK_QUEUES, routing_key_of,
};
use messaging::topology::Topology;
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;

use crate::deployment::{
    ConfigurationProbe, RUST_SERVICES, compose, declared_queues, read, substitute, workspace,
};

/// Reads a service's configuration with compose's environment, in a child
/// process running [`child_reads_a_services_configuration`].
const PROBE: ConfigurationProbe = ConfigurationProbe {
    name: "compose-check",
    test: "compose_config::child_reads_a_services_configuration",
    environment: "compose's environment",
};

/// The service that consumes work queue `queue`: each has exactly one.
pub(crate) fn consumer_of(queue: &str) -> &'static str {
    match queue {
        ORDER_QUEUE | ORDER_REFUND_QUEUE => "order-service",
        PAYMENT_QUEUE | PAYMENT_REFUND_QUEUE => "payment-service",
        EMAIL_QUEUE | EMAIL_CANCELLATION_QUEUE | EMAIL_REFUND_QUEUE => "email-service",
        other => panic!("which service consumes {other}? Say so here"),
    }
}

/// Every work queue `binary` consumes, in the order of the pipeline: the
/// one it is scaled on ([`crate::deployment::consumed_queue`]) first, then the cancellation's
/// and the refund's. Empty for the gateway.
pub(crate) fn consumed_queues(binary: &str) -> Vec<&'static str> {
    WORK_QUEUES
        .into_iter()
        .filter(|queue| consumer_of(queue) == binary)
        .collect()
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
    substitute(raw, |rest| {
        let Some(inner) = rest.strip_prefix('{') else {
            panic!("bare $ in {raw:?}: write $$ or ${{NAME}}");
        };
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
        (value, &inner[end + 1..])
    })
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
    PROBE.report(binary, env)
}

/// Run by [`configuration_of`] in a child process whose environment is
/// exactly one compose service's; does nothing in a normal test run. Reports
/// the variables read and the queues and bindings the service would declare
/// for every work queue it consumes.
#[test]
fn child_reads_a_services_configuration() {
    PROBE.in_child(|binary, _, amqp| {
        let mut report = json!({});
        let bases = consumed_queues(binary);
        if let Some(amqp) = amqp.filter(|_| !bases.is_empty()) {
            let topology = Topology::new(&amqp);
            let (mut queues, mut bindings) = (Vec::new(), Vec::new());
            for base in bases {
                let queue = topology.queue(base, routing_key_of(base).unwrap());
                queues.extend(declared_queues(&topology, &queue));
                bindings.extend(topology.bindings(&queue).into_iter().map(|b| {
                    json!({"source": b.exchange, "destination": b.queue, "routing_key": b.routing_key})
                }));
            }
            report["exchanges"] = json!([
                {"name": topology.exchange(), "type": "topic"},
                {"name": topology.dead_letter_exchange(), "type": "direct"},
            ]);
            report["queues"] = queues.into();
            report["bindings"] = bindings.into();
            report["rabbitmq_url"] = amqp.url.into();
        }
        report
    });
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
