//! deploy/rabbitmq/definitions.json against what the services declare, and
//! each service's own credentials.

use std::collections::BTreeSet;

use contract::names::WORK_QUEUES;
use serde_json::{Value, json};

use super::{
    RUST_SERVICES, compose, configuration_of, consumed_queues, environment, read, services,
};
use crate::deployment::{assert_rabbitmq_permissions_are_limited, consumed_queue, url_parts};

/// One entity of definitions.json without its vhost, comparable.
fn without_vhost(mut item: Value) -> Value {
    item.as_object_mut().unwrap().remove("vhost");
    item
}

#[test]
fn the_rabbitmq_definitions_are_what_the_services_declare() {
    let definitions = test_support::definitions();
    let services = services(&compose());
    let (mut queues, mut bindings, mut exchanges) = (Vec::new(), Vec::new(), BTreeSet::new());
    for binary in RUST_SERVICES {
        let report = configuration_of(binary, &environment(&services[binary]));
        if report["queues"].is_null() {
            continue;
        }
        for queue in report["queues"].as_array().unwrap() {
            let mut queue = queue.clone();
            queue["durable"] = true.into();
            queue["auto_delete"] = false.into();
            queues.push(queue);
        }
        for binding in report["bindings"].as_array().unwrap() {
            let mut binding = binding.clone();
            binding["destination_type"] = "queue".into();
            binding["arguments"] = json!({});
            bindings.push(binding);
        }
        for exchange in report["exchanges"].as_array().unwrap() {
            exchanges.insert(exchange.to_string());
        }
    }
    let sorted = |mut items: Vec<Value>| {
        items.sort_by_key(|v| v.to_string());
        items
    };
    let provisioned = |section: &str| -> Vec<Value> {
        definitions[section]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                assert_eq!(item["vhost"], "/", "{section}: everything in vhost /");
                without_vhost(item.clone())
            })
            .collect()
    };
    // Every work queue, with its tiers and dead-letter queue, is declared
    // by its consumer, so each is compared below.
    for queue in WORK_QUEUES {
        for name in [queue.to_owned(), format!("{queue}.dlq")] {
            assert!(
                queues.iter().any(|q| q["name"] == name.as_str()),
                "no service declares {name}"
            );
        }
        assert!(
            queues.iter().any(|q| q["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{queue}.retry."))),
            "no service declares a retry tier of {queue}"
        );
    }
    let expected_queues = sorted(queues);
    let actual_queues = sorted(provisioned("queues"));
    assert_eq!(
        actual_queues,
        expected_queues,
        "definitions.json queues differ from what the services declare; expected:\n{}",
        serde_json::to_string_pretty(&expected_queues).unwrap()
    );
    assert_eq!(sorted(provisioned("bindings")), sorted(bindings));
    let provisioned_exchanges: BTreeSet<String> = provisioned("exchanges")
        .into_iter()
        .map(|e| {
            assert_eq!(e["durable"], true);
            assert_eq!(e["auto_delete"], false);
            json!({"name": e["name"], "type": e["type"]}).to_string()
        })
        .collect();
    assert_eq!(provisioned_exchanges, exchanges);
}

#[test]
fn each_service_logs_in_with_its_own_provisioned_credentials() {
    let services = services(&compose());
    let definitions = test_support::definitions();
    let postgres = environment(&services["postgres"]);
    let rabbitmq = environment(&services["rabbitmq"]);
    let init_sh = read("deploy/postgres/init.sh");
    let mut users = BTreeSet::new();
    for binary in ["order-service", "payment-service", "email-service"] {
        let env = environment(&services[binary]);

        // PostgreSQL: init.sh creates `service <db> <role> "$<PASSWORD VAR>"`.
        let (role, password, _, _, database) = url_parts(&env["DATABASE_URL"]);
        let line = init_sh
            .lines()
            .find(|l| l.starts_with(&format!("service {database} {role} ")))
            .unwrap_or_else(|| panic!("init.sh creates {database} owned by {role}"));
        let variable = line
            .rsplit('$')
            .next()
            .unwrap()
            .trim_matches(['"', '{', '}']);
        assert_eq!(
            postgres.get(variable),
            Some(&password),
            "{binary}: DATABASE_URL's password is the one postgres gets as {variable}"
        );

        // RabbitMQ: a user of its own in definitions.json, whose password
        // placeholder the rabbitmq container fills from the same variable.
        let (user, password, _, _, vhost) = url_parts(&env["RABBITMQ_URL"]);
        assert_eq!(vhost, "%2f", "{binary} uses vhost /");
        assert!(users.insert(user.clone()), "{user} is not shared");
        let entry = definitions["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == user.as_str())
            .unwrap_or_else(|| panic!("definitions.json has user {user}"));
        let placeholder = entry["password"].as_str().unwrap();
        let variable = placeholder.trim_start_matches("${").trim_end_matches('}');
        assert_eq!(
            rabbitmq.get(variable),
            Some(&password),
            "{binary}: RABBITMQ_URL's password is {variable} of the rabbitmq container"
        );
        assert_rabbitmq_permissions_are_limited(&definitions, &user);
    }
    // Every placeholder of definitions.json is filled by the rabbitmq container.
    for user in definitions["users"].as_array().unwrap() {
        let placeholder = user["password"].as_str().unwrap();
        let variable = placeholder.trim_start_matches("${").trim_end_matches('}');
        assert!(rabbitmq.contains_key(variable), "rabbitmq sets {variable}");
        let entrypoint = read("deploy/rabbitmq/entrypoint.sh");
        assert!(
            entrypoint.contains(variable),
            "entrypoint.sh fills {variable}"
        );
    }
}

#[test]
fn every_work_queue_has_one_consumer_and_each_consumer_scales_on_its_first() {
    let mut consumed: Vec<&str> = Vec::new();
    for binary in RUST_SERVICES {
        let queues = consumed_queues(binary);
        assert_eq!(
            queues.first().copied(),
            consumed_queue(binary),
            "{binary}: the queue it is scaled on comes first"
        );
        consumed.extend(queues);
    }
    consumed.sort_unstable();
    let mut all = WORK_QUEUES.to_vec();
    all.sort_unstable();
    assert_eq!(consumed, all, "each work queue, consumed once");
}

/// Whether the right `kind` of `permission` names `queue` as one of its
/// literal alternatives (the regex read as text; the broker itself applies
/// it in `least_privilege`).
fn named_in(permission: &Value, kind: &str, queue: &str) -> bool {
    let regex = permission[kind].as_str().unwrap();
    regex
        .split(['(', ')', '|', '^', '$'])
        .any(|part| part == queue)
}

/// Each service user's rights name each of its own work queues, as the
/// rights on its first queue are written, and no other service's queue: a
/// new queue needs the same rights as the others (configure, read, write for
/// the bindings), and nothing wider.
#[test]
fn each_service_users_rights_name_its_own_work_queues_and_no_others() {
    let definitions = test_support::definitions();
    for binary in ["order-service", "payment-service", "email-service"] {
        let user = binary.replace('-', "_");
        let permission = definitions["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["user"] == user.as_str())
            .unwrap_or_else(|| panic!("{user} has permissions"));
        let own = consumed_queues(binary);
        for kind in ["configure", "write", "read"] {
            for queue in WORK_QUEUES {
                assert_eq!(
                    named_in(permission, kind, queue),
                    own.contains(&queue),
                    "{user}'s {kind} right {} {queue}",
                    if own.contains(&queue) {
                        "lacks"
                    } else {
                        "must not name"
                    }
                );
            }
            // Whatever suffixes (dead-letter queue, retry tiers) the first
            // queue's right allows, the others' are allowed alike: one group
            // of the work queues, followed by the one suffix group.
            let group = format!("({})", own.join("|"));
            let regex = permission[kind].as_str().unwrap();
            assert_eq!(
                regex.matches(group.as_str()).count(),
                1,
                "{user}'s {kind} right writes its queues as {group}: {regex}"
            );
        }
    }
}
