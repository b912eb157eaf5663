//! The NetworkPolicies, evaluated the way the API defines them for every
//! kind of pod here (the Deployments', the RabbitMQ nodes', each PostgreSQL
//! cluster's, labelled as their operators label them): only the gateway is
//! open to the outside, and each service reaches exactly what its
//! environment says it talks to, with the other side letting it in.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    Manifests, RUST_SERVICES, container,
    env::{Source, env_entries, resolved_env},
    manifests, name,
    workloads::{host_of, selects},
};
use crate::deployment::port_of;

/// Prometheus's namespace (network-policies.yaml).
const MONITORING: &str = "monitoring";

/// The other side of a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    /// Pods of this namespace: a Deployment's, `RabbitmqCluster/<name>`'s
    /// nodes, `Cluster/<name>`'s PostgreSQL instances.
    Pods(String),
    /// Pods of another namespace.
    Namespace(String),
    /// Anyone: no `from`/`to`, an empty namespace selector, an ipBlock.
    Anywhere,
}

/// (peer, port); port 0 is every port.
type Allowed = BTreeSet<(Peer, u64)>;

/// Every kind of pod in the namespace, with its labels.
fn pods(m: &Manifests) -> Vec<(String, Value)> {
    let mut pods: Vec<(String, Value)> = RUST_SERVICES
        .iter()
        .map(|b| {
            let labels = m.deployment(b)["spec"]["template"]["metadata"]["labels"].clone();
            (b.to_string(), labels)
        })
        .collect();
    // As the RabbitMQ Cluster Operator and CloudNativePG label their pods.
    for cluster in m.of_kind("RabbitmqCluster") {
        let labels = json!({"app.kubernetes.io/name": name(cluster),
            "app.kubernetes.io/component": "rabbitmq", "app.kubernetes.io/part-of": "rabbitmq"});
        pods.push((format!("RabbitmqCluster/{}", name(cluster)), labels));
    }
    for cluster in m.of_kind("Cluster") {
        let labels = json!({"cnpg.io/cluster": name(cluster), "cnpg.io/podRole": "instance"});
        pods.push((format!("Cluster/{}", name(cluster)), labels));
    }
    pods
}

fn peers(m: &Manifests, list: &Value) -> Vec<Peer> {
    let entries = list.as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return vec![Peer::Anywhere];
    }
    let mut out = Vec::new();
    for entry in entries {
        let namespace = &entry["namespaceSelector"];
        if !entry["ipBlock"].is_null() {
            out.push(Peer::Anywhere);
            continue;
        }
        let namespace = if namespace.is_null() {
            m.namespace.clone()
        } else {
            let labels = namespace["matchLabels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let Some(named) = labels.get("kubernetes.io/metadata.name") else {
                out.push(Peer::Anywhere);
                continue;
            };
            assert_eq!(
                labels.len(),
                1,
                "namespaces are chosen by name: {namespace}"
            );
            named.as_str().unwrap().to_owned()
        };
        if namespace != m.namespace {
            out.push(Peer::Namespace(namespace));
            continue;
        }
        let selector = &entry["podSelector"];
        let chosen: Vec<Peer> = pods(m)
            .into_iter()
            .filter(|(_, labels)| selector.is_null() || selects(selector, labels))
            .map(|(pod, _)| Peer::Pods(pod))
            .collect();
        assert!(!chosen.is_empty(), "{entry} selects no pod");
        out.extend(chosen);
    }
    out
}

/// What the policies selecting pods with `labels` allow in one direction.
fn allowed(m: &Manifests, labels: &Value, ingress: bool) -> Allowed {
    let (kind, rules, side) = if ingress {
        ("Ingress", "ingress", "from")
    } else {
        ("Egress", "egress", "to")
    };
    let mut allowed = Allowed::new();
    for policy in m.of_kind("NetworkPolicy") {
        let spec = &policy["spec"];
        let types = spec["policyTypes"]
            .as_array()
            .expect("explicit policyTypes");
        if !selects(&spec["podSelector"], labels) || !types.iter().any(|t| t == kind) {
            continue;
        }
        for rule in spec[rules].as_array().into_iter().flatten() {
            let ports: Vec<u64> = match rule["ports"].as_array() {
                Some(ports) => ports
                    .iter()
                    .map(|p| p["port"].as_u64().expect("a port number"))
                    .collect(),
                None => vec![0],
            };
            for peer in peers(m, &rule[side]) {
                for port in &ports {
                    allowed.insert((peer.clone(), *port));
                }
            }
        }
    }
    allowed
}

fn labels_of<'a>(pods: &'a [(String, Value)], pod: &str) -> &'a Value {
    &pods.iter().find(|(p, _)| p == pod).unwrap().1
}

/// What a Deployment's environment says it talks to.
fn dependencies(m: &Manifests, binary: &str) -> Allowed {
    let container = container(m.deployment(binary));
    let env = resolved_env(m, container);
    let mut needs: Allowed = [(Peer::Namespace("kube-system".into()), 53)].into();
    if let Some(url) = env.get("RABBITMQ_URL") {
        let cluster = m.get("RabbitmqCluster", host_of(url));
        needs.insert((
            Peer::Pods(format!("RabbitmqCluster/{}", name(cluster))),
            port_of(url).into(),
        ));
    }
    for (var, source) in env_entries(container) {
        if let (true, Source::Secret { name: secret, .. }) = (var == "DATABASE_URL", source) {
            let cluster = m.get("Cluster", secret.strip_suffix("-app").unwrap());
            needs.insert((Peer::Pods(format!("Cluster/{}", name(cluster))), 5432));
        }
    }
    for (var, url) in &env {
        if var.ends_with("_SERVICE_URL") {
            let service = m.get("Service", host_of(url));
            let selector = json!({"matchLabels": service["spec"]["selector"]});
            let target = pods(m)
                .into_iter()
                .find(|(_, labels)| selects(&selector, labels))
                .expect("the Service selects pods");
            needs.insert((Peer::Pods(target.0), port_of(url).into()));
        }
    }
    if env.contains_key("SMTP_HOST") {
        let port = env.get("SMTP_PORT").expect("SMTP_PORT beside SMTP_HOST");
        needs.insert((Peer::Anywhere, port.parse().unwrap()));
    }
    needs
}

#[test]
fn only_the_gateway_is_open_to_the_outside() {
    let m = manifests();
    let deny_all = m.of_kind("NetworkPolicy").into_iter().any(|p| {
        let spec = &p["spec"];
        spec["podSelector"] == json!({})
            && spec["policyTypes"] == json!(["Ingress", "Egress"])
            && spec["ingress"].is_null()
            && spec["egress"].is_null()
    });
    assert!(deny_all, "a policy denies everything by default");
    let pods = pods(m);
    for (pod, labels) in &pods {
        let ingress = allowed(m, labels, true);
        if pod == "gateway" {
            let port = port_of(&resolved_env(m, container(m.deployment(pod)))["BIND_ADDR"]);
            assert_eq!(
                ingress,
                [(Peer::Anywhere, port.into())].into(),
                "gateway: its port, from anywhere"
            );
            continue;
        }
        assert!(
            ingress.iter().all(|(peer, _)| *peer != Peer::Anywhere),
            "{pod} is open to the outside: {ingress:?}"
        );
        if !RUST_SERVICES.contains(&pod.as_str()) {
            continue;
        }
        // A service lets in what calls it and the monitoring, on its port.
        let port = u64::from(port_of(
            &resolved_env(m, container(m.deployment(pod)))["BIND_ADDR"],
        ));
        for (peer, at) in &ingress {
            let caller = match peer {
                Peer::Pods(caller) => {
                    dependencies(m, caller).contains(&(Peer::Pods(pod.clone()), *at))
                }
                Peer::Namespace(namespace) => namespace == MONITORING && *at == port,
                Peer::Anywhere => false,
            };
            assert!(
                caller,
                "{pod} lets in {peer:?} on {at}, which does not call it"
            );
        }
    }
    let order_service = allowed(m, labels_of(&pods, "order-service"), true);
    let sources: BTreeSet<Peer> = order_service.into_iter().map(|(peer, _)| peer).collect();
    assert_eq!(
        sources,
        [
            Peer::Pods("gateway".into()),
            Peer::Namespace(MONITORING.into())
        ]
        .into(),
        "order-service: the gateway, and the scrapes"
    );
}

#[test]
fn each_pod_reaches_its_own_dependencies_and_nothing_else() {
    let m = manifests();
    let pods = pods(m);
    for binary in RUST_SERVICES {
        let needs = dependencies(m, binary);
        let egress = allowed(m, labels_of(&pods, binary), false);
        assert_eq!(
            egress, needs,
            "{binary}: what it may reach is what it talks to"
        );
        for (peer, port) in &needs {
            if let Peer::Pods(target) = peer {
                let ingress = allowed(m, labels_of(&pods, target), true);
                assert!(
                    ingress.contains(&(Peer::Pods(binary.into()), *port)),
                    "{target} does not let {binary} in on {port}"
                );
            }
        }
    }
    // The operators' pods reach each other and DNS, not the services.
    for (pod, labels) in pods.iter().filter(|(p, _)| p.contains('/')) {
        for (peer, port) in allowed(m, labels, false) {
            let fine = match &peer {
                Peer::Pods(other) => other == pod,
                Peer::Namespace(namespace) => namespace == "kube-system" && port == 53,
                // The Kubernetes API, for CloudNativePG's instance manager.
                Peer::Anywhere => pod.starts_with("Cluster/") && [443, 6443].contains(&port),
            };
            assert!(fine, "{pod} may reach {peer:?} on {port}");
        }
        let ingress = allowed(m, labels, true);
        assert!(
            ingress
                .iter()
                .any(|(peer, _)| *peer == Peer::Pods(pod.clone())),
            "{pod}: its members reach each other"
        );
    }
}
