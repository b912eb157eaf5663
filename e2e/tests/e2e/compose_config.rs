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

/// The port of `BIND_ADDR`, of a `http://host:port/...` URL, or of a
/// `[ip:]host:container` port mapping (the container side).
fn port_of(text: &str) -> u16 {
    let authority = text.split_once("://").map_or(text, |(_, r)| r);
    let authority = authority.split('/').next().unwrap();
    authority
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("no port in {text:?}: {e}"))
}

#[test]
fn ports_health_checks_and_dependencies_are_consistent() {
    let services = services(&compose());
    for binary in RUST_SERVICES {
        let service = &services[binary];
        let env = environment(service);
        let port = port_of(&env["BIND_ADDR"]);
        let test = strings(&service["healthcheck"]["test"]);
        let url = test
            .iter()
            .find(|a| a.starts_with("http://"))
            .unwrap_or_else(|| panic!("{binary}'s health check calls a URL: {test:?}"));
        assert_eq!(port_of(url), port, "{binary}: health check {url}");
        assert!(
            url.ends_with("/ready"),
            "{binary} is healthy when ready: {url}"
        );
        for mapping in strings(&service["ports"]) {
            assert_eq!(
                port_of(&mapping),
                port,
                "{binary}: published port {mapping}"
            );
        }
        for exposed in strings(&service["expose"]) {
            assert_eq!(exposed.parse::<u16>().unwrap(), port, "{binary}: expose");
        }
        assert!(
            !service["ports"].is_null() || !service["expose"].is_null(),
            "{binary} publishes or exposes its port (Prometheus scrapes it)"
        );
        assert_eq!(
            strings(&service["command"]),
            [binary],
            "{binary} runs its own binary"
        );
    }

    let payment = &services["payment-service"];
    assert!(
        payment["container_name"].is_null(),
        "payment-service is scaled: no container_name"
    );
    assert!(
        payment["ports"].is_null(),
        "payment-service is scaled: no host port"
    );

    for (name, service) in &services {
        assert!(
            service["healthcheck"]["test"].is_sequence(),
            "{name} has a health check"
        );
        assert!(!service["restart"].is_null(), "{name} has a restart policy");
        let Some(depends_on) = service["depends_on"].as_mapping() else {
            assert!(
                service["depends_on"].is_null(),
                "{name}: depends_on in its long form"
            );
            continue;
        };
        for (dependency, condition) in depends_on {
            let dependency = dependency.as_str().unwrap();
            assert!(
                services.contains_key(dependency),
                "{name} depends on unknown {dependency}"
            );
            assert_eq!(
                condition["condition"].as_str(),
                Some("service_healthy"),
                "{name} waits for {dependency} to be healthy"
            );
        }
    }
}

#[test]
fn the_dockerfile_builds_and_copies_every_binary_compose_runs() {
    let dockerfile = read("Dockerfile");
    // Continuation lines joined, so one instruction is one line.
    let joined = dockerfile.replace("\\\n", " ");
    let build = joined
        .lines()
        .find(|l| l.trim_start().starts_with("RUN cargo build"))
        .expect("a cargo build step");
    let copy = joined
        .lines()
        .find(|l| l.contains("COPY --from=builder"))
        .expect("a COPY of the binaries");
    for (name, service) in services(&compose()) {
        if service["build"].is_null() {
            continue;
        }
        let binary = strings(&service["command"])
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("{name} picks its binary with command:"));
        assert!(
            build
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["--bin", binary.as_str()]),
            "the Dockerfile builds {binary}: {build}"
        );
        assert!(
            copy.contains(&format!("/app/target/release/{binary} ")),
            "the Dockerfile copies {binary}: {copy}"
        );
    }
}

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

/// `scheme://user:password@host:port/path` → (user, password, path).
fn credentials(url: &str) -> (String, String, String) {
    let rest = url.split_once("://").unwrap().1;
    let (userinfo, host_path) = rest.rsplit_once('@').expect("credentials in the URL");
    let (user, password) = userinfo.split_once(':').expect("user:password");
    let path = host_path.split_once('/').map_or("", |(_, p)| p);
    (user.to_owned(), password.to_owned(), path.to_owned())
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
        let (role, password, database) = credentials(&env["DATABASE_URL"]);
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
        let (user, password, vhost) = credentials(&env["RABBITMQ_URL"]);
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
        let permissions = definitions["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["user"] == user.as_str())
            .unwrap_or_else(|| panic!("{user} has permissions"));
        for kind in ["configure", "write", "read"] {
            assert_ne!(permissions[kind], ".*", "{user}: {kind} is limited");
        }
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
fn the_dashboard_uses_only_metrics_the_code_records() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/checkout-pipeline.json")).unwrap();
    let mut recorded = BTreeSet::new();
    for dir in [
        "common/runtime/src",
        "common/messaging/src",
        "gateway/src",
        "order-service/src",
        "payment-service/src",
        "email-service/src",
    ] {
        collect_recorded_metrics(&workspace().join(dir), &mut recorded);
    }
    assert!(recorded.contains("http_requests_total"), "{recorded:?}");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            used.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    for name in &used {
        // Prometheus' own and RabbitMQ's (rabbitmq_prometheus) series.
        if name == "up" || name.starts_with("rabbitmq_") {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| recorded.contains(*b))
            .unwrap_or(name);
        assert!(
            recorded.contains(base),
            "the dashboard uses {name}, which no code records (recorded: {recorded:?})"
        );
    }
}

/// Names in `counter!("…"`, `gauge!("…"` and `histogram!("…"` calls.
fn collect_recorded_metrics(dir: &Path, names: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_recorded_metrics(&path, names);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                for (at, _) in text.match_indices(macro_name) {
                    let rest = text[at + macro_name.len()..].trim_start();
                    if let Some(quoted) = rest.strip_prefix('"') {
                        names.insert(quoted.split('"').next().unwrap().to_owned());
                    }
                }
            }
        }
    }
}

/// The metric names in a PromQL expression: identifiers that are neither
/// functions, keywords nor label names (`by (…)`, `{…}` and `[…]` removed).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut text = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    for c in expr.chars() {
        match c {
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            c => text.push(c),
        }
    }
    // Label lists of aggregations: `by (a, b)`, `without (a)`.
    for keyword in ["by", "without"] {
        while let Some(at) = text.find(&format!("{keyword} (")) {
            let end = text[at..].find(')').unwrap() + at;
            text.replace_range(at..=end, " ");
        }
    }
    let mut names = BTreeSet::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_alphabetic() || chars[i] == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if next != Some(&'(') {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn promql_metric_names_are_found() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket{status=~"5.."}[5m]))) / max by (app) (outbox_pending_events)"#,
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "http_request_duration_seconds_bucket".to_owned(),
            "outbox_pending_events".to_owned()
        ])
    );
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
