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
    let output = Command::new("bash")
        .arg(SCRIPT)
        .args(args)
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
