//! RabbitMQ: the RabbitmqCluster runs compose's broker and loads compose's
//! definitions with the passwords from the Secrets; each service logs in
//! as its own user; KEDA scales each consumer on the depth of its own queue,
//! logged in as that service.

use std::collections::{BTreeMap, BTreeSet};

use contract::names::WORK_QUEUES;
use serde_json::{Value, json};

use super::{
    Manifests, compose, consumed_queue, container,
    env::{Source, configuration_of, env_entries, resolved_env},
    manifests, name, read, replica_range, strings, url_parts,
};
use crate::deployment::assert_rabbitmq_permissions_are_limited;

fn the_rabbitmq_cluster(m: &Manifests) -> &Value {
    let clusters = m.of_kind("RabbitmqCluster");
    assert_eq!(clusters.len(), 1, "one RabbitmqCluster");
    assert_eq!(clusters[0]["apiVersion"], "rabbitmq.com/v1beta1");
    clusters[0]
}

/// The pod template the RabbitMQ operator is given, and its init container
/// that runs entrypoint.sh.
fn rabbitmq_pod(cluster: &Value) -> (&Value, &Value) {
    let pod = &cluster["spec"]["override"]["statefulSet"]["spec"]["template"]["spec"];
    let init = pod["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["command"].to_string().contains("entrypoint.sh"))
        .expect("an init container runs entrypoint.sh");
    (pod, init)
}

/// `name=value` of a shell script's assignment.
fn shell_assignment(script: &str, var: &str) -> String {
    script
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")))
        .unwrap_or_else(|| panic!("entrypoint.sh sets {var}"))
        .to_owned()
}

fn split_path(path: &str) -> (&str, &str) {
    path.rsplit_once('/').expect("an absolute path")
}

/// The volume a container mounts at `path`.
fn volume_at<'a>(pod: &'a Value, container: &Value, path: &str) -> &'a Value {
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["mountPath"] == path)
        .unwrap_or_else(|| panic!("{} mounts {path}", container["name"]));
    pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("a volume {}", mount["name"]))
}

#[test]
fn the_rabbitmq_cluster_runs_composes_broker_and_loads_its_definitions() {
    let m = manifests();
    let cluster = the_rabbitmq_cluster(m);
    let spec = &cluster["spec"];
    assert_eq!(
        spec["replicas"], 3,
        "three nodes: quorum queues survive one"
    );
    assert_eq!(
        spec["image"],
        compose()["services"]["rabbitmq"]["image"],
        "compose's version"
    );
    assert!(
        spec["persistence"]["storage"].is_string(),
        "persistent storage"
    );
    assert!(
        spec["resources"]["limits"]["memory"].is_string(),
        "a memory limit"
    );

    let entrypoint = read("deploy/rabbitmq/entrypoint.sh");
    let (template_dir, template) = split_path_owned(&shell_assignment(&entrypoint, "template"));
    let (target_dir, target) = split_path_owned(&shell_assignment(&entrypoint, "target"));
    let (pod, init) = rabbitmq_pod(cluster);
    assert_eq!(init["image"], spec["image"]);
    assert!(
        init["command"]
            .to_string()
            .contains(&format!("{template_dir}/entrypoint.sh"))
    );
    let files = volume_at(pod, init, &template_dir);
    let config_map = m.get(
        "ConfigMap",
        files["configMap"]["name"].as_str().expect("a ConfigMap"),
    );
    for file in [template.as_str(), "entrypoint.sh"] {
        assert!(
            config_map["data"][file].is_string(),
            "the ConfigMap holds {file}"
        );
    }
    let rendered = volume_at(pod, init, &target_dir);
    assert!(
        rendered["emptyDir"].is_object(),
        "rendered into an emptyDir"
    );
    let broker = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rabbitmq")
        .expect("the rabbitmq container's mounts");
    let mount = broker["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == rendered["name"])
        .expect("the broker mounts the rendered definitions");
    let load = format!(
        "load_definitions = {}/{target}",
        mount["mountPath"].as_str().unwrap()
    );
    assert!(
        spec["rabbitmq"]["additionalConfig"]
            .as_str()
            .unwrap_or("")
            .lines()
            .any(|l| l.trim() == load),
        "additionalConfig says: {load}"
    );

    // Every password placeholder is filled from a Secret.
    let from: BTreeMap<String, Source> = env_entries(init).into_iter().collect();
    for variable in provisioned_users().into_values() {
        assert!(
            matches!(from.get(&variable), Some(Source::Secret { .. })),
            "the init container takes {variable} from a Secret"
        );
    }
    // The operator's default user, whose password the operator writes and
    // uses, is definitions.json's administrator.
    let config = spec["rabbitmq"]["additionalConfig"].as_str().unwrap_or("");
    let default_user = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("default_user = "))
        .expect("additionalConfig names the operator's default_user");
    let definitions = test_support::definitions();
    let admins: Vec<&Value> = definitions["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["tags"].to_string().contains("administrator"))
        .collect();
    assert_eq!(admins.len(), 1, "one administrator");
    assert_eq!(
        admins[0]["name"], default_user,
        "the operator's user is the administrator"
    );
    let operators = Source::Secret {
        name: format!("{}-default-user", name(cluster)),
        key: "password".into(),
    };
    assert_eq!(
        from.get(&provisioned_users()[default_user]),
        Some(&operators),
        "{default_user}'s password is the one the operator writes"
    );
    // compose's plugins: the operator enables these and peer discovery.
    let mut plugins: BTreeSet<String> = ["rabbitmq_management", "rabbitmq_prometheus"]
        .map(String::from)
        .into();
    plugins.extend(strings(&spec["rabbitmq"]["additionalPlugins"]));
    let enabled = read("deploy/rabbitmq/enabled_plugins");
    for plugin in enabled
        .trim()
        .trim_start_matches('[')
        .trim_end_matches("].")
        .split(',')
    {
        assert!(plugins.contains(plugin.trim()), "{plugin} is enabled");
    }
}

/// definitions.json's users and the variable each one's password comes
/// from (`${RABBITMQ_ORDER_PASSWORD}`).
fn provisioned_users() -> BTreeMap<String, String> {
    test_support::definitions()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| {
            let placeholder = user["password"].as_str().unwrap();
            let variable = placeholder.trim_start_matches("${").trim_end_matches('}');
            (
                user["name"].as_str().unwrap().to_owned(),
                variable.to_owned(),
            )
        })
        .collect()
}

fn split_path_owned(path: &str) -> (String, String) {
    let (dir, file) = split_path(path);
    (dir.to_owned(), file.to_owned())
}

#[test]
fn each_service_logs_in_to_rabbitmq_as_its_own_user() {
    let m = manifests();
    let cluster = the_rabbitmq_cluster(m);
    let (_, init) = rabbitmq_pod(cluster);
    let filled: BTreeMap<String, Source> = env_entries(init).into_iter().collect();
    let provisioned = provisioned_users();
    let definitions = test_support::definitions();
    let mut users = BTreeSet::new();
    for binary in ["order-service", "payment-service", "email-service"] {
        let entries: BTreeMap<String, Source> = env_entries(container(m.deployment(binary)))
            .into_iter()
            .collect();
        let Some(Source::Value(url)) = entries.get("RABBITMQ_URL") else {
            panic!("{binary}: RABBITMQ_URL");
        };
        let (user, password, host, port, vhost) = url_parts(url);
        assert_eq!(
            (host.as_str(), port.as_str(), vhost.as_str()),
            (name(cluster), "5672", "%2f"),
            "{binary}: the operator's Service, vhost /"
        );
        assert!(users.insert(user.clone()), "{user} is not shared");
        // The password the broker is given for that user, from the same Secret.
        let variable = provisioned
            .get(&user)
            .unwrap_or_else(|| panic!("definitions.json provisions {user}"));
        let reference = password.trim_start_matches("$(").trim_end_matches(')');
        let secret = filled
            .get(variable)
            .unwrap_or_else(|| panic!("the broker is given {variable}"));
        assert_eq!(
            entries.get(reference),
            Some(secret),
            "{binary}: RABBITMQ_URL's password is the broker's {variable}"
        );
        assert_rabbitmq_permissions_are_limited(&definitions, &user);
    }
}

/// What each consumer declares with its Deployment's settings (its retry
/// tiers, say), for every work queue it consumes, is what the broker is
/// provisioned with: a service user may not create another's queues, and an
/// argument that differs is refused.
#[test]
fn the_queues_each_consumer_declares_are_the_provisioned_ones() {
    let m = manifests();
    let provisioned: Vec<Value> = test_support::definitions()["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| json!({"name": q["name"], "arguments": q["arguments"]}))
        .collect();
    let mut declared_anywhere = BTreeSet::new();
    for binary in ["order-service", "payment-service", "email-service"] {
        let env = resolved_env(m, container(m.deployment(binary)));
        let declared = configuration_of(binary, &env)["queues"].clone();
        let declared = declared.as_array().expect("queues");
        assert!(!declared.is_empty(), "{binary} declares its queues");
        for queue in declared {
            assert!(
                provisioned.contains(queue),
                "{binary} declares {queue}, which definitions.json does not provision"
            );
            declared_anywhere.insert(queue["name"].as_str().unwrap().to_owned());
        }
    }
    for queue in WORK_QUEUES {
        for name in [queue.to_owned(), format!("{queue}.dlq")] {
            assert!(
                declared_anywhere.contains(&name),
                "no consumer declares {name}"
            );
        }
    }
}

#[test]
fn the_consumers_scale_on_the_depth_of_their_own_queue() {
    let m = manifests();
    let definitions = test_support::definitions();
    let queues: BTreeSet<&str> = definitions["queues"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    let rabbitmq = name(the_rabbitmq_cluster(m));
    let mut targets = BTreeSet::new();
    for scaled in m.of_kind("ScaledObject") {
        assert_eq!(scaled["apiVersion"], "keda.sh/v1alpha1");
        let spec = &scaled["spec"];
        let target = spec["scaleTargetRef"]["name"]
            .as_str()
            .expect("scaleTargetRef.name");
        assert!(
            spec["scaleTargetRef"]["kind"].is_null()
                || spec["scaleTargetRef"]["kind"] == "Deployment"
        );
        let deployment = m.deployment(target);
        targets.insert(target);
        let (least, most) = replica_range(m, deployment);
        assert!(
            least >= 1,
            "{target}: never scaled to zero (the timeline asks it)"
        );
        let triggers = spec["triggers"].as_array().expect("triggers");
        assert_eq!(triggers.len(), 1, "{target}: one trigger");
        let trigger = &triggers[0];
        assert_eq!(trigger["type"], "rabbitmq", "{target}: a RabbitMQ trigger");
        let metadata = &trigger["metadata"];
        let queue = metadata["queueName"].as_str().expect("queueName");
        assert_eq!(
            Some(queue),
            consumed_queue(target),
            "{target} scales on its own queue"
        );
        assert!(
            WORK_QUEUES.contains(&queue) && queues.contains(queue),
            "{queue} is provisioned"
        );
        assert_eq!(
            metadata["mode"], "QueueLength",
            "{target}: scaled on the backlog"
        );
        assert!(
            metadata["value"]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v > 0.0),
            "{target}: value"
        );
        assert_eq!(
            metadata["protocol"], "amqp",
            "{target}: AMQP, as its own user can"
        );
        let host = format!("amqp://{rabbitmq}.{}.svc:5672/%2f", m.namespace);
        assert_eq!(
            metadata["host"],
            host.as_str(),
            "{target}: KEDA reaches the broker from its namespace"
        );
        // KEDA logs in as the service itself.
        let auth = m.get(
            "TriggerAuthentication",
            trigger["authenticationRef"]["name"].as_str().unwrap(),
        );
        assert_eq!(auth["apiVersion"], "keda.sh/v1alpha1");
        let params: BTreeMap<&str, (&Value, &Value)> = auth["spec"]["secretTargetRef"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["parameter"].as_str().unwrap(), (&r["name"], &r["key"])))
            .collect();
        let entries: BTreeMap<String, Source> =
            env_entries(container(deployment)).into_iter().collect();
        let Some(Source::Secret { name: secret, key }) = entries.get("RABBITMQ_PASSWORD") else {
            panic!("{target}: RABBITMQ_PASSWORD from a Secret");
        };
        assert_eq!(
            params.get("password"),
            Some(&(&Value::from(secret.as_str()), &Value::from(key.as_str())))
        );
        assert_eq!(
            params.get("username").map(|p| p.0),
            Some(&Value::from(secret.as_str()))
        );
        eprintln!("{target}: {least}..{most} replicas on {queue}");
    }
    assert_eq!(
        targets,
        BTreeSet::from(["payment-service", "email-service"])
    );
    for hpa in m.of_kind("HorizontalPodAutoscaler") {
        m.deployment(hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap());
    }
}
