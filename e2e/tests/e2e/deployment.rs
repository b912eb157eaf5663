//! What the checks of the two deployments share: docker-compose.yml's
//! ([`crate::compose_config`]) and deploy/kubernetes/'s
//! ([`crate::kubernetes`]) both run the same binaries with the same
//! provisioning, so they read the same files, ports and URLs the same way,
//! and learn what a binary makes of an environment the same way, in a child
//! process. One copy here keeps the two checks from drifting apart.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use contract::names::{EMAIL_QUEUE, ORDER_QUEUE, PAYMENT_QUEUE};
use dead_letters::headers_to_json;
use messaging::{
    AmqpSettings,
    db::DatabaseSettings,
    topology::{QueueSpec, Topology},
};
use serde_json::{Value, json};

/// The Rust services: compose service = Deployment = binary name.
pub(crate) const RUST_SERVICES: [&str; 4] = [
    "gateway",
    "order-service",
    "payment-service",
    "email-service",
];

/// The workspace root: the deployment files are named from it.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A workspace file's text; a missing file fails the test, naming it.
pub(crate) fn read(path: &str) -> String {
    let path = workspace().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// docker-compose.yml with its anchors and `<<` merge keys resolved: the
/// reference both deployments are held to.
pub(crate) fn compose() -> serde_yaml_ng::Value {
    let mut compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    compose.apply_merge().expect("merge keys resolve");
    compose
}

/// The port of `BIND_ADDR`, of a `scheme://host:port/...` URL, or of a
/// `[ip:]host:container` port mapping (the container side): what a health
/// check, probe or published port must agree with.
pub(crate) fn port_of(text: &str) -> u16 {
    let authority = text.split_once("://").map_or(text, |(_, r)| r);
    let authority = authority.split('/').next().unwrap();
    authority
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("no port in {text:?}: {e}"))
}

/// `scheme://user:password@host:port/path` → (user, password, host, port,
/// path): a service's database and broker logins are checked from its URLs.
pub(crate) fn url_parts(url: &str) -> (String, String, String, String, String) {
    let rest = url.split_once("://").unwrap().1;
    let (userinfo, host_path) = rest.rsplit_once('@').expect("credentials in the URL");
    let (user, password) = userinfo.split_once(':').expect("user:password");
    let (host_port, path) = host_path.split_once('/').unwrap_or((host_path, ""));
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, ""));
    [user, password, host, port, path].map(str::to_owned).into()
}

/// `raw` with each `$` reference replaced: `$$` is a literal `$` both where
/// compose interpolates and where the kubelet expands, and `reference` gets
/// the text after any other `$`, returning its value and the text after it.
/// The two deployments differ only in what a reference looks like.
pub(crate) fn substitute<'a>(
    raw: &'a str,
    mut reference: impl FnMut(&'a str) -> (String, &'a str),
) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else {
            let (value, after) = reference(rest);
            out.push_str(&value);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A service's broker user may touch only its own resources: whichever
/// deployment runs the broker loads deploy/rabbitmq/definitions.json, so
/// its permissions for `user` must exist and none may be `.*`.
pub(crate) fn assert_rabbitmq_permissions_are_limited(definitions: &Value, user: &str) {
    let permissions = definitions["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user"] == user)
        .unwrap_or_else(|| panic!("{user} has permissions"));
    for kind in ["configure", "write", "read"] {
        assert_ne!(permissions[kind], ".*", "{user}: {kind} is limited");
    }
}

/// The queue a consuming service works on (`None` for the gateway).
pub(crate) fn consumed_queue(binary: &str) -> Option<&'static str> {
    match binary {
        "order-service" => Some(ORDER_QUEUE),
        "payment-service" => Some(PAYMENT_QUEUE),
        "email-service" => Some(EMAIL_QUEUE),
        _ => None,
    }
}

/// The queues declared for `queue`, as definitions.json lists them (name
/// and arguments), so that what a binary declares can be compared with what
/// the broker is provisioned with.
pub(crate) fn declared_queues(topology: &Topology, queue: &QueueSpec) -> Vec<Value> {
    topology
        .queue_declarations(queue)
        .into_iter()
        .map(|q| json!({"name": q.name, "arguments": headers_to_json(&q.arguments)}))
        .collect()
}

/// Learns what a binary makes of an environment by reading its
/// configuration in a child process: the settings come from the process's
/// own environment, and `runtime::config::variables_read` records every
/// variable the process has read, so each environment needs a fresh process
/// holding exactly it. The child is this test binary running only `test`,
/// which calls [`ConfigurationProbe::in_child`].
pub(crate) struct ConfigurationProbe {
    /// `compose-check`: names the child's logs, its report file and the
    /// variables that ask it for one (`COMPOSE_CHECK_SERVICE`,
    /// `COMPOSE_CHECK_OUT`).
    pub(crate) name: &'static str,
    /// The test the child runs (`compose_config::child_reads_...`).
    pub(crate) test: &'static str,
    /// Whose environment it is, for the failure ("compose's environment").
    pub(crate) environment: &'static str,
}

impl ConfigurationProbe {
    fn variable(&self, what: &str) -> String {
        format!("{}_{what}", self.name.to_uppercase().replace('-', "_"))
    }

    /// The child's report on `binary` run with exactly `env`; fails the test
    /// if the binary rejects that environment.
    pub(crate) fn report(&self, binary: &str, env: &BTreeMap<String, String>) -> Value {
        let out = std::env::temp_dir().join(format!(
            "{}-{binary}-{}.json",
            self.name,
            uuid::Uuid::new_v4().simple()
        ));
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", self.test, "--nocapture"])
            .env_clear()
            .envs(env)
            .env(self.variable("SERVICE"), binary)
            .env(self.variable("OUT"), &out)
            .output()
            .expect("the test binary runs");
        assert!(
            output.status.success(),
            "{binary} rejects {} {env:?}: {}{}",
            self.environment,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(&out).expect("the child wrote its report");
        let _ = std::fs::remove_file(&out);
        serde_json::from_str(&text).unwrap()
    }

    /// In the child [`Self::report`] starts (and nothing in a normal test
    /// run): reads the configuration as the binary's `main` does, logging
    /// first, then the settings; writes the JSON object `report` makes of
    /// the binary's name and settings, with the variables read as `read`.
    pub(crate) fn in_child(
        &self,
        report: impl FnOnce(&str, Option<DatabaseSettings>, Option<AmqpSettings>) -> Value,
    ) {
        let (Ok(binary), Ok(out)) = (
            std::env::var(self.variable("SERVICE")),
            std::env::var(self.variable("OUT")),
        ) else {
            return;
        };
        runtime::telemetry::init(self.name).expect("logging configuration");
        let (database, amqp) = match binary.as_str() {
            "gateway" => {
                gateway::Settings::from_env().expect("gateway configuration");
                (None, None)
            }
            "order-service" => {
                let settings = order_service::Settings::from_env().expect("configuration");
                (Some(settings.database), Some(settings.amqp))
            }
            "payment-service" => {
                let settings = payment_service::Settings::from_env().expect("configuration");
                (Some(settings.database), Some(settings.amqp))
            }
            "email-service" => {
                let settings = email_service::Settings::from_env().expect("configuration");
                (Some(settings.database), Some(settings.amqp))
            }
            other => panic!("unknown service {other}"),
        };
        let mut report = report(&binary, database, amqp);
        report["read"] = json!(runtime::config::variables_read());
        std::fs::write(out, report.to_string()).unwrap();
    }
}
