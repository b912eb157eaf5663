//! deploy/kubernetes/ against what the binaries read and serve, as
//! `compose_config` checks docker-compose.yml. No cluster runs here, so this
//! is what can be checked without one:
//!
//! - the folder holds what kustomization.yaml applies and nothing else, the
//!   RabbitMQ ConfigMap is generated from compose's own files
//!   (deploy/rabbitmq/, a kustomization of its own), and no Secret is
//!   shipped;
//! - every variable a Deployment sets is one its binary reads, and parses
//!   (its configuration read in a child process with exactly that
//!   environment, stand-ins for the Secrets' values), and no manifest
//!   holds a secret ([`env`]);
//! - ports, probes, Services, security contexts, resources, shutdown and
//!   disruption budgets ([`workloads`]);
//! - RabbitMQ: the RabbitmqCluster loads compose's definitions, each
//!   service logs in as its own user, KEDA scales the consumers on their
//!   own queues ([`broker`]);
//! - PostgreSQL: one CloudNativePG cluster per service with compose's
//!   database and role, and the connection budget at the most replicas
//!   ([`databases`]);
//! - the network policies: only the gateway is open to the outside, and
//!   each pod reaches its own dependencies and nothing else ([`network`]);
//! - kustomize's real build, validated against Kubernetes' schemas with
//!   kubectl and kubernetes-validate, which scripts/test.sh installs
//!   ([`tools`]).
//!
//! The kustomization is read here as kustomize applies it (resources, among
//! them folders that are kustomizations of their own, the namespace, the
//! ConfigMap generators); [`tools`] checks that reading against kustomize
//! itself.

mod broker;
mod databases;
mod env;
mod network;
mod tools;
mod workloads;

use std::{collections::BTreeSet, path::Path, sync::OnceLock};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::deployment::{RUST_SERVICES, consumed_queue, read, url_parts, workspace};

/// The folder `kubectl apply -k` takes.
const DIR: &str = "deploy/kubernetes";

/// Every document of a YAML stream, as JSON values.
fn documents(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|e| panic!("{origin} is not YAML: {e}"))
        })
        .filter(|document| !document.is_null())
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().expect("metadata.name")
}

/// `relative` to the folder `dir`, both from the workspace, `..` resolved:
/// `deploy/kubernetes` and `../rabbitmq` → `deploy/rabbitmq`.
fn join(dir: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().expect("a path inside the workspace");
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// What `kubectl apply -k` would apply, read the way kustomize reads it.
#[derive(Default)]
struct Manifests {
    namespace: String,
    /// deploy/kubernetes/kustomization.yaml.
    kustomization: Value,
    /// The `configMapGenerator` entries of it and of the kustomizations it
    /// takes as resources.
    generators: Vec<Value>,
    /// Every file read for it, from the workspace
    /// (`deploy/rabbitmq/definitions.json`).
    files: BTreeSet<String>,
    objects: Vec<Value>,
}

fn manifests() -> &'static Manifests {
    static MANIFESTS: OnceLock<Manifests> = OnceLock::new();
    MANIFESTS.get_or_init(|| {
        let mut m = Manifests::default();
        m.kustomization = m.read_kustomization(DIR);
        m.namespace = m.kustomization["namespace"]
            .as_str()
            .expect("kustomization.yaml sets the namespace")
            .to_owned();
        for object in &mut m.objects {
            if object["kind"] != "Namespace" {
                object["metadata"]["namespace"] = m.namespace.clone().into();
            }
        }
        m
    })
}

impl Manifests {
    /// Reads the kustomization in `dir` into `self` and returns it: its
    /// resources, files or folders that are kustomizations of their own (read
    /// alike), and the ConfigMaps it generates; the namespace is the caller's.
    fn read_kustomization(&mut self, dir: &str) -> Value {
        let file = format!("{dir}/kustomization.yaml");
        let kustomization = documents(&read(&file), &file).remove(0);
        self.files.insert(file);
        for resource in strings(&kustomization["resources"]) {
            let path = join(dir, &resource);
            if workspace().join(&path).is_dir() {
                let nested = self.read_kustomization(&path);
                let understood = ["apiVersion", "kind", "resources", "configMapGenerator"];
                for field in nested.as_object().unwrap().keys() {
                    assert!(
                        understood.contains(&field.as_str()),
                        "{path}/kustomization.yaml: {field} is not read here"
                    );
                }
                continue;
            }
            for object in documents(&read(&path), &path) {
                for field in ["apiVersion", "kind"] {
                    assert!(object[field].is_string(), "{path}: {field} in {object}");
                }
                name(&object);
                assert!(
                    object["kind"] == "Namespace" || object["metadata"]["namespace"].is_null(),
                    "{path}: {} takes its namespace from {DIR}/kustomization.yaml",
                    name(&object)
                );
                self.objects.push(object);
            }
            self.files.insert(path);
        }
        for configuration in strings(&kustomization["configurations"]) {
            self.files.insert(join(dir, &configuration));
        }
        for generator in kustomization["configMapGenerator"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let mut data = serde_json::Map::new();
            for file in strings(&generator["files"]) {
                let path = join(dir, &file);
                let key = file.rsplit('/').next().unwrap().to_owned();
                data.insert(key, read(&path).into());
                self.files.insert(path);
            }
            self.objects.push(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }));
            self.generators.push(generator.clone());
        }
        kustomization
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn find(&self, kind: &str, wanted: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && name(o) == wanted)
    }

    fn get(&self, kind: &str, wanted: &str) -> &Value {
        self.find(kind, wanted)
            .unwrap_or_else(|| panic!("no {kind} {wanted} in {DIR}"))
    }

    fn deployment(&self, binary: &str) -> &Value {
        self.get("Deployment", binary)
    }
}

/// A Deployment's own container (named after it; the only one).
fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "{}: one container", name(deployment));
    assert_eq!(containers[0]["name"], name(deployment));
    &containers[0]
}

/// The Deployment's replicas at the least and at the most, from its
/// autoscaler if it has one (only one may scale it, and then it sets no
/// `replicas` for an apply to reset).
fn replica_range(m: &Manifests, deployment: &Value) -> (u64, u64) {
    let target = name(deployment);
    let hpa: Vec<_> = m
        .of_kind("HorizontalPodAutoscaler")
        .into_iter()
        .filter(|h| h["spec"]["scaleTargetRef"]["name"] == target)
        .map(|h| (&h["spec"]["minReplicas"], &h["spec"]["maxReplicas"]))
        .collect();
    let keda: Vec<_> = m
        .of_kind("ScaledObject")
        .into_iter()
        .filter(|s| s["spec"]["scaleTargetRef"]["name"] == target)
        .map(|s| (&s["spec"]["minReplicaCount"], &s["spec"]["maxReplicaCount"]))
        .collect();
    let scalers: Vec<_> = hpa.into_iter().chain(keda).collect();
    let replicas = &deployment["spec"]["replicas"];
    match scalers.as_slice() {
        [] => {
            let fixed = replicas.as_u64().unwrap_or(1);
            (fixed, fixed)
        }
        [(min, max)] => {
            assert!(replicas.is_null(), "{target} is autoscaled: no replicas");
            let (min, max) = (
                min.as_u64().expect("a minimum"),
                max.as_u64().expect("a maximum"),
            );
            assert!(1 <= min && min <= max, "{target}: {min}..{max} replicas");
            (min, max)
        }
        _ => panic!("{target} has more than one autoscaler"),
    }
}

/// docker-compose.yml as JSON, anchors and merge keys resolved.
fn compose() -> Value {
    serde_json::to_value(crate::deployment::compose()).unwrap()
}

/// A rolling update's extra pods, a number here (not a percentage).
fn max_surge(deployment: &Value) -> u64 {
    deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}: maxSurge as a number", name(deployment)))
}

#[test]
fn the_folder_holds_what_the_kustomization_applies_and_no_secret() {
    let m = manifests();
    let k = &m.kustomization;
    // What kustomization.yaml names in this folder; what it takes from
    // others (../rabbitmq) is read too, and checked below.
    let listed: BTreeSet<&String> = m
        .files
        .iter()
        .filter(|f| f.starts_with(&format!("{DIR}/")))
        .collect();
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                out.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    let root = workspace();
    let mut present = BTreeSet::new();
    walk(&root.join(DIR), &root, &mut present);
    assert_eq!(
        present.iter().collect::<BTreeSet<_>>(),
        listed,
        "{DIR}: every file is applied or used"
    );

    let namespaces = m.of_kind("Namespace");
    assert_eq!(namespaces.len(), 1);
    assert_eq!(name(namespaces[0]), m.namespace);
    assert!(m.of_kind("Secret").is_empty(), "no Secret is shipped");
    assert!(k["secretGenerator"].is_null(), "no Secret is generated");
    let mut seen = BTreeSet::new();
    for object in &m.objects {
        let key = format!("{} {}", object["kind"], name(object));
        assert!(seen.insert(key.clone()), "{key} twice");
    }
}

/// The RabbitMQ nodes' ConfigMap is generated from the files compose mounts,
/// in deploy/rabbitmq/ (a kustomization of its own, a resource here): one
/// source, no copy to keep in step.
#[test]
fn the_rabbitmq_files_are_the_ones_compose_loads() {
    let m = manifests();
    let config_map = m.get("ConfigMap", "rabbitmq-definitions");
    for file in ["definitions.json", "entrypoint.sh"] {
        let source = format!("deploy/rabbitmq/{file}");
        assert!(
            m.files.contains(&source),
            "the ConfigMap is generated from {source}"
        );
        assert_eq!(config_map["data"][file], read(&source), "{file}");
    }
    let others: Vec<&String> = m
        .files
        .iter()
        .filter(|f| !f.starts_with(&format!("{DIR}/")))
        .collect();
    assert_eq!(
        others,
        [
            "deploy/rabbitmq/definitions.json",
            "deploy/rabbitmq/entrypoint.sh",
            "deploy/rabbitmq/kustomization.yaml",
        ],
        "what {DIR} takes from outside it"
    );
}
