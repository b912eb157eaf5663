//! A RabbitMQ node of the test's own, beside the machine's broker
//! (`scripts/rabbitmq-nodes.sh`): for faults that need a broker setting no
//! other test may see, such as a short `consumer_timeout`.

use std::process::Command;

/// Node `index` of `scripts/rabbitmq-nodes.sh`, standalone, stopped and its
/// data deleted when dropped. Give each test its own index.
pub struct BrokerNode {
    index: u32,
}

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/rabbitmq-nodes.sh"
);

fn nodes(args: &[&str]) -> String {
    nodes_with(args, &[])
}

/// `scripts/rabbitmq-nodes.sh args…` with `env` added; its output.
fn nodes_with(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("bash runs scripts/rabbitmq-nodes.sh");
    assert!(
        output.status.success(),
        "rabbitmq-nodes.sh {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl BrokerNode {
    /// Boots node `index` from a clean data directory (about 5 s).
    pub fn boot(index: u32) -> Self {
        nodes(&["stop", &index.to_string()]);
        nodes(&["boot", &index.to_string()]);
        Self { index }
    }

    /// [`BrokerNode::boot`] with `plugins` enabled; `rabbitmq_prometheus`
    /// then serves on [`BrokerNode::metrics_address`].
    pub fn boot_with_plugins(index: u32, plugins: &[&str]) -> Self {
        nodes(&["stop", &index.to_string()]);
        nodes_with(
            &["boot", &index.to_string()],
            &[("RABBITMQ_NODE_PLUGINS", &plugins.join(","))],
        );
        Self { index }
    }

    /// `127.0.0.1:<port>` of the node's rabbitmq_prometheus listener.
    pub fn metrics_address(&self) -> String {
        let port = nodes(&["metrics-port", &self.index.to_string()]);
        format!("127.0.0.1:{port}")
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`
    pub fn url(&self) -> String {
        let port = nodes(&["port", &self.index.to_string()]);
        format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
    }

    /// Sets the `rabbit` application's `key` to the Erlang term `value` on
    /// the running node. Settings read when a channel opens (such as
    /// `consumer_timeout`) apply to the channels opened afterwards.
    pub fn set_rabbit_env(&self, key: &str, value: &str) {
        let expression = format!("application:set_env(rabbit, {key}, {value}).");
        nodes(&["eval", &self.index.to_string(), &expression]);
    }
}

impl Drop for BrokerNode {
    fn drop(&mut self) {
        nodes(&["stop", &self.index.to_string()]);
    }
}

/// Nodes 1 to `size` of `scripts/rabbitmq-nodes.sh`, joined in one cluster,
/// for the node-loss tests; stopped and their data deleted when dropped.
/// Only one test at a time may run a cluster.
pub struct BrokerCluster {
    size: u32,
}

impl BrokerCluster {
    /// Boots the nodes from clean data directories and joins them (about
    /// 35 s for three).
    pub fn start(size: u32) -> Self {
        let cluster = Self { size };
        cluster.stop_all();
        nodes(&["start", &size.to_string()]);
        cluster
    }

    fn stop_all(&self) {
        for i in 1..=self.size {
            nodes(&["stop", &i.to_string()]);
        }
    }

    /// `RABBITMQ_URL` listing every node: the first URL carries the user,
    /// password and vhost that the others share.
    pub fn urls(&self) -> String {
        (1..=self.size)
            .map(|i| {
                let port = nodes(&["port", &i.to_string()]);
                if i == 1 {
                    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
                } else {
                    format!("amqp://127.0.0.1:{port}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `index`'s own URL.
    pub fn url(&self, index: u32) -> String {
        let port = nodes(&["port", &index.to_string()]);
        format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
    }

    /// The node whose AMQP address is `node` (`host:port`).
    pub fn index_of(&self, node: &str) -> Option<u32> {
        (1..=self.size).find(|i| node.ends_with(&format!(":{}", nodes(&["port", &i.to_string()]))))
    }

    /// `kill -9` of node `index`: a crash.
    pub fn kill(&self, index: u32) {
        nodes(&["kill", &index.to_string()]);
    }

    /// A clean stop of node `index`, keeping its data.
    pub fn halt(&self, index: u32) {
        nodes(&["halt", &index.to_string()]);
    }

    /// Starts node `index` again after a kill or a halt; it rejoins.
    pub fn boot(&self, index: u32) {
        nodes(&["boot", &index.to_string()]);
    }

    /// `rabbitmqctl ARGS` on node `index`; its output.
    pub fn ctl(&self, index: u32, args: &[&str]) -> String {
        let index = index.to_string();
        let mut all = vec!["ctl", index.as_str()];
        all.extend_from_slice(args);
        nodes(&all)
    }
}

impl Drop for BrokerCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
