//! The containers' environments: each Deployment's as its process will
//! see it, checked against what its binary reads (in a child process), and
//! no secret written into any manifest.

use std::collections::{BTreeMap, BTreeSet};

use contract::names::routing_key_of;
use messaging::topology::Topology;
use serde_json::{Value, json};

use super::{
    Manifests, RUST_SERVICES, container, manifests, name, strings,
    workloads::{containers, pod_templates},
};
use crate::{
    compose_config::consumed_queues,
    deployment::{ConfigurationProbe, declared_queues, substitute},
};

/// Where one `env` entry's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Source {
    Value(String),
    Secret { name: String, key: String },
}

pub(super) fn env_entries(container: &Value) -> Vec<(String, Source)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let var = entry["name"].as_str().expect("env name").to_owned();
            let source = if let Some(value) = entry["value"].as_str() {
                Source::Value(value.to_owned())
            } else if let Some(secret) = entry["valueFrom"]["secretKeyRef"].as_object() {
                Source::Secret {
                    name: secret["name"].as_str().unwrap().to_owned(),
                    key: secret["key"].as_str().unwrap().to_owned(),
                }
            } else {
                panic!("{var}: a value or a secretKeyRef, not {entry}")
            };
            (var, source)
        })
        .collect()
}

/// `$(NAME)` as the kubelet expands it: from entries defined before, `$$`
/// for a literal `$`, anything else left as it is.
fn expand(raw: &str, defined: &BTreeMap<String, String>) -> String {
    substitute(raw, |rest| {
        match rest
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .filter(|(var, _)| defined.contains_key(*var))
        {
            Some((var, after)) => (defined[var].clone(), after),
            None => ("$".to_owned(), rest),
        }
    })
}

/// A Secret's value as it will be: CloudNativePG's `<cluster>-app` `uri` is
/// the URL it writes; anything else a stand-in.
fn secret_stand_in(m: &Manifests, secret: &str, key: &str) -> String {
    let cluster = secret
        .strip_suffix("-app")
        .and_then(|c| m.find("Cluster", c));
    match (cluster, key) {
        (Some(cluster), "uri") => {
            let initdb = &cluster["spec"]["bootstrap"]["initdb"];
            format!(
                "postgresql://{}:stand-in@{}-rw.{}:5432/{}",
                initdb["owner"].as_str().unwrap(),
                name(cluster),
                m.namespace,
                initdb["database"].as_str().unwrap()
            )
        }
        _ => "stand-in".to_owned(),
    }
}

/// A container's environment as the process will see it.
pub(super) fn resolved_env(m: &Manifests, container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (var, source) in env_entries(container) {
        let value = match source {
            Source::Value(raw) => expand(&raw, &env),
            Source::Secret { name, key } => secret_stand_in(m, &name, &key),
        };
        env.insert(var, value);
    }
    env
}

/// Reads a binary's configuration with its Deployment's environment, in a
/// child process running [`child_reads_a_deployments_configuration`].
const PROBE: ConfigurationProbe = ConfigurationProbe {
    name: "kubernetes-check",
    test: "kubernetes::env::child_reads_a_deployments_configuration",
    environment: "its Deployment's environment",
};

/// What a binary does with an environment: the variables it reads, its
/// database pool size and the queues it declares.
pub(super) fn configuration_of(binary: &str, env: &BTreeMap<String, String>) -> Value {
    PROBE.report(binary, env)
}

/// Run by [`configuration_of`] in a child process whose environment is
/// exactly one Deployment's; does nothing in a normal test run.
#[test]
fn child_reads_a_deployments_configuration() {
    PROBE.in_child(|binary, database, amqp| {
        // The queues it declares for every work queue it consumes, as
        // definitions.json lists them.
        let queues: Vec<Value> = match amqp {
            Some(amqp) => {
                let topology = Topology::new(&amqp);
                consumed_queues(binary)
                    .into_iter()
                    .flat_map(|base| {
                        let queue = topology.queue(base, routing_key_of(base).unwrap());
                        declared_queues(&topology, &queue)
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        json!({
            "pool": database.map(|database| database.max_connections),
            "queues": queues,
        })
    });
}

#[test]
fn every_variable_a_deployment_sets_is_read_by_its_binary_and_parses() {
    let m = manifests();
    let deployments: BTreeSet<&str> = m.of_kind("Deployment").into_iter().map(name).collect();
    assert_eq!(deployments, RUST_SERVICES.into());
    for binary in RUST_SERVICES {
        let container = container(m.deployment(binary));
        let env = resolved_env(m, container);
        let report = configuration_of(binary, &env);
        let read: BTreeSet<String> = strings(&report["read"]).into_iter().collect();
        for always in ["BIND_ADDR", "LOG_FORMAT", "RUST_LOG"] {
            assert!(read.contains(always), "{binary} reads {always}: {read:?}");
        }
        // Set only to build another variable's value (`$(NAME)`).
        let helpers: BTreeSet<String> = env_entries(container)
            .into_iter()
            .filter_map(|(_, source)| match source {
                Source::Value(raw) => Some(raw),
                Source::Secret { .. } => None,
            })
            .flat_map(|raw| {
                raw.split("$(")
                    .skip(1)
                    .filter_map(|r| r.split_once(')').map(|(var, _)| var.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (var, value) in &env {
            assert!(
                !value.contains("$("),
                "{binary}: {var} = {value} expands fully"
            );
            assert!(
                read.contains(var) || helpers.contains(var),
                "{binary} sets {var}, which its binary never reads (it reads {read:?})"
            );
        }
    }
}

/// The password of a `scheme://user:password@host...` value, if it has one.
fn url_password(value: &str) -> Option<&str> {
    let rest = value.split_once("://")?.1;
    let authority = rest.split('/').next().unwrap();
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, password)| password)
}

#[test]
fn no_secret_is_written_into_a_manifest() {
    let m = manifests();
    for (owner, pod) in pod_templates(m) {
        for c in containers(pod) {
            assert!(c["envFrom"].is_null(), "{owner}: every variable is named");
            let entries = env_entries(c);
            let from_secrets: Vec<&String> = entries
                .iter()
                .filter(|(_, s)| matches!(s, Source::Secret { .. }))
                .map(|(var, _)| var)
                .collect();
            for (var, source) in &entries {
                let Source::Value(value) = source else {
                    continue;
                };
                assert!(
                    !["PASSWORD", "SECRET", "TOKEN"]
                        .iter()
                        .any(|w| var.contains(w)),
                    "{owner}: {var} is written here; take it from a Secret (secretKeyRef)"
                );
                if let Some(password) = url_password(value) {
                    let reference = password
                        .strip_prefix("$(")
                        .and_then(|p| p.strip_suffix(')'));
                    assert!(
                        reference.is_some_and(|r| from_secrets.iter().any(|s| *s == r)),
                        "{owner}: {var} carries a password; write $(VAR) with VAR from a Secret"
                    );
                }
            }
        }
    }
}
