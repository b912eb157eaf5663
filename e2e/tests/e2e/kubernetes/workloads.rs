//! The Deployments: ports, probes and Services; image and command;
//! security; resources against the measured memory; shutdown against the
//! drain; disruption budgets.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    Manifests, RUST_SERVICES, container, env::resolved_env, manifests, name, read, replica_range,
};
use crate::deployment::port_of;

/// The host of a `scheme://[user@]host:port/...` URL.
pub(super) fn host_of(url: &str) -> &str {
    let authority = url.split_once("://").unwrap().1.split('/').next().unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port.split(':').next().unwrap()
}

/// Whether `selector` (`matchLabels` only) selects pods labelled `labels`.
pub(super) fn selects(selector: &Value, labels: &Value) -> bool {
    assert!(
        selector["matchExpressions"].is_null(),
        "only matchLabels is understood here: {selector}"
    );
    let wanted = selector["matchLabels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    wanted.iter().all(|(k, v)| &labels[k] == v)
}

fn pod_labels(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["metadata"]["labels"]
}

/// The container port a probe or a Service's targetPort names.
fn container_port(container: &Value, port: &Value) -> u64 {
    match port {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(named) => container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == named.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no container port named {named}")),
        other => panic!("a port: {other}"),
    }
}

#[test]
fn ports_probes_and_services_are_the_ones_the_binaries_serve() {
    let m = manifests();
    let mut ports = BTreeMap::new();
    for binary in RUST_SERVICES {
        let deployment = m.deployment(binary);
        let container = container(deployment);
        let port = u64::from(port_of(&resolved_env(m, container)["BIND_ADDR"]));
        ports.insert(binary, port);
        assert_eq!(
            container_port(container, &"http".into()),
            port,
            "{binary}: port http"
        );
        for (probe, path) in [
            ("startupProbe", "/health"),
            ("livenessProbe", "/health"),
            ("readinessProbe", "/ready"),
        ] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{binary}: {probe}");
            assert_eq!(
                container_port(container, &get["port"]),
                port,
                "{binary}: {probe}'s port"
            );
        }
        assert!(
            selects(&deployment["spec"]["selector"], pod_labels(deployment)),
            "{binary}: the selector selects its pods"
        );
        let service = m.get("Service", binary);
        assert!(selects(&json_selector(service), pod_labels(deployment)));
        let service_ports = service["spec"]["ports"].as_array().unwrap();
        assert_eq!(service_ports.len(), 1, "{binary}: one port");
        assert_eq!(
            service_ports[0]["port"].as_u64(),
            Some(port),
            "{binary}: Service port"
        );
        assert_eq!(
            container_port(container, &service_ports[0]["targetPort"]),
            port
        );
    }
    // The gateway's URLs name Services that reach the right pods.
    let env = resolved_env(m, container(m.deployment("gateway")));
    for (var, target) in [
        ("ORDER_SERVICE_URL", "order-service"),
        ("PAYMENT_SERVICE_URL", "payment-service"),
        ("EMAIL_SERVICE_URL", "email-service"),
    ] {
        let url = &env[var];
        let service = m.get("Service", host_of(url));
        let port = u64::from(port_of(url));
        assert!(
            service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == port),
            "{var}={url}: the Service has port {port}"
        );
        assert!(selects(
            &json_selector(service),
            pod_labels(m.deployment(target))
        ));
        assert_eq!(ports[target], port, "{var}={url}: {target}'s port");
    }
    let public = m.get("Service", "gateway");
    assert_eq!(
        public["spec"]["externalTrafficPolicy"], "Local",
        "the client's address is kept"
    );
}

/// A Service's selector in the `matchLabels` form.
fn json_selector(service: &Value) -> Value {
    serde_json::json!({"matchLabels": service["spec"]["selector"]})
}

#[test]
fn every_deployment_runs_its_binary_from_the_image_of_this_version() {
    let m = manifests();
    let version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .map(|v| v.trim_end_matches('"').to_owned())
        .expect("the workspace version");
    let images = m.kustomization["images"].as_array().expect("images");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["name"], "checkout-pipeline");
    assert_eq!(
        images[0]["newTag"],
        version.as_str(),
        "kustomization.yaml: the image of {version}"
    );
    for binary in RUST_SERVICES {
        let container = container(m.deployment(binary));
        assert_eq!(
            container["image"], "checkout-pipeline",
            "{binary}: the Dockerfile's image"
        );
        assert_eq!(
            container["args"],
            serde_json::json!([binary]),
            "{binary} runs its own binary"
        );
        assert!(
            container["command"].is_null(),
            "{binary}: the image's command"
        );
    }
}

/// Resource quantities (`96Mi`, `1Gi`, `500m`, `2`) in bytes or millicores.
fn quantity(value: &Value) -> f64 {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("a quantity: {other}"),
    };
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let number: f64 = text[..split].parse().unwrap();
    let unit = match &text[split..] {
        "" => 1.0,
        "m" => 0.001,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        other => panic!("unit {other} in {text}"),
    };
    number * unit
}

/// docs/performance.md's measured peak memory per service, in bytes
/// (scripts/bench.sh's "MB" are VmHWM's kB divided by 1024).
fn measured_peaks() -> BTreeMap<String, f64> {
    let doc = read("docs/performance.md");
    let line = doc
        .lines()
        .find(|l| l.starts_with("| memory |") && l.contains("at most"))
        .expect("docs/performance.md has the measured memory");
    let figures = line
        .split("at most")
        .nth(1)
        .unwrap()
        .split(" MB")
        .next()
        .unwrap();
    figures
        .split(',')
        .map(|part| {
            let (service, mb) = part.trim().split_once(' ').expect("<service> <MB>");
            let binary = match service {
                "gateway" => service.to_owned(),
                other => format!("{other}-service"),
            };
            (binary, mb.parse::<f64>().unwrap() * 1024.0 * 1024.0)
        })
        .collect()
}

/// The pod templates that run here: the Deployments' and the one the
/// RabbitMQ operator is given.
pub(super) fn pod_templates(m: &Manifests) -> Vec<(String, &Value)> {
    let mut templates: Vec<(String, &Value)> = RUST_SERVICES
        .iter()
        .map(|b| (b.to_string(), &m.deployment(b)["spec"]["template"]["spec"]))
        .collect();
    for cluster in m.of_kind("RabbitmqCluster") {
        let spec = &cluster["spec"]["override"]["statefulSet"]["spec"]["template"]["spec"];
        templates.push((format!("RabbitmqCluster {}", name(cluster)), spec));
    }
    templates
}

pub(super) fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(move |field| pod[field].as_array().into_iter().flatten())
}

#[test]
fn every_deployment_runs_as_non_root_read_only_and_within_limits() {
    let m = manifests();
    let dockerfile = read("Dockerfile");
    let uid: u64 = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .and_then(|u| u.split(':').next())
        .and_then(|u| u.trim().parse().ok())
        .expect("the Dockerfile's USER uid");
    let peaks = measured_peaks();
    for binary in RUST_SERVICES {
        let pod = &m.deployment(binary)["spec"]["template"]["spec"];
        let pod_security = &pod["securityContext"];
        assert_eq!(
            pod["automountServiceAccountToken"], false,
            "{binary}: no API token"
        );
        assert_eq!(pod_security["runAsNonRoot"], true, "{binary}: runAsNonRoot");
        assert_eq!(
            pod_security["runAsUser"].as_u64(),
            Some(uid),
            "{binary}: the image's user"
        );
        let peak = peaks[binary];
        for c in containers(pod) {
            let security = &c["securityContext"];
            assert_eq!(
                security["readOnlyRootFilesystem"], true,
                "{binary}: read-only root"
            );
            assert_eq!(
                security["allowPrivilegeEscalation"], false,
                "{binary}: no escalation"
            );
            assert_eq!(
                security["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{binary}"
            );
            assert_ne!(security["privileged"], true);
            let seccomp = [&security["seccompProfile"], &pod_security["seccompProfile"]];
            assert!(
                seccomp.iter().any(|s| s["type"] == "RuntimeDefault"),
                "{binary}: seccomp RuntimeDefault"
            );
            let resources = &c["resources"];
            for kind in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        !resources[kind][resource].is_null(),
                        "{binary}: {kind}.{resource}"
                    );
                }
            }
            let (request, limit) = (
                quantity(&resources["requests"]["memory"]),
                quantity(&resources["limits"]["memory"]),
            );
            assert!(
                request >= peak,
                "{binary}: a memory request of {request} B is below the measured peak {peak} B"
            );
            assert!(
                limit >= 2.0 * peak,
                "{binary}: a memory limit of {limit} B leaves no room over the peak {peak} B"
            );
        }
    }
}

#[test]
fn every_pod_is_given_longer_to_stop_than_the_drain_takes() {
    let m = manifests();
    let drain = messaging::AmqpSettings::local(String::new())
        .drain_timeout
        .as_secs();
    for binary in RUST_SERVICES {
        let pod = &m.deployment(binary)["spec"]["template"]["spec"];
        let grace = pod["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{binary}: terminationGracePeriodSeconds"));
        let pre_stop = container(m.deployment(binary))["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap_or(0);
        assert!(
            grace > pre_stop + drain,
            "{binary}: {grace} s is not more than the preStop pause ({pre_stop} s) and the drain ({drain} s)"
        );
    }
}

#[test]
fn every_deployment_has_a_disruption_budget_a_node_drain_can_meet() {
    let m = manifests();
    for binary in RUST_SERVICES {
        let deployment = m.deployment(binary);
        let budgets: Vec<&Value> = m
            .of_kind("PodDisruptionBudget")
            .into_iter()
            .filter(|b| selects(&b["spec"]["selector"], pod_labels(deployment)))
            .collect();
        assert_eq!(budgets.len(), 1, "{binary}: one PodDisruptionBudget");
        let spec = &budgets[0]["spec"];
        let (least, _) = replica_range(m, deployment);
        if let Some(min_available) = spec["minAvailable"].as_u64() {
            assert!(
                least > min_available,
                "{binary}: at {least} replicas, minAvailable {min_available} blocks every drain"
            );
        } else {
            assert!(
                spec["maxUnavailable"].as_u64() >= Some(1),
                "{binary}: maxUnavailable"
            );
        }
    }
}
