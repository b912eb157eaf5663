//! The pipeline as real processes on a three-node RabbitMQ cluster of the
//! test's own, for the node-loss tests (`tests/e2e/cluster.rs`): the four
//! binaries, payment-service twice, each given `RABBITMQ_URL` listing the
//! three nodes, each on a fresh database, with a real SMTP server
//! in-process.
//!
//! Its tests run on the multi-threaded runtime: the nodes' commands block
//! for seconds, and the SMTP server and the burst's clients must go on
//! meanwhile.

use std::{collections::HashMap, time::Duration};

use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use test_support::BrokerCluster;

use crate::processes::{ProcessPipeline, Setup};

/// The pipeline's processes ([`ProcessPipeline`], which this dereferences
/// to) on a cluster of the test's own.
pub struct ClusterPipeline {
    cluster: BrokerCluster,
    processes: ProcessPipeline,
}

impl std::ops::Deref for ClusterPipeline {
    type Target = ProcessPipeline;

    fn deref(&self) -> &ProcessPipeline {
        &self.processes
    }
}

impl std::ops::DerefMut for ClusterPipeline {
    fn deref_mut(&mut self) -> &mut ProcessPipeline {
        &mut self.processes
    }
}

impl ClusterPipeline {
    /// Boots a three-node cluster, starts every service on it
    /// (payment-service twice) and waits until each is ready.
    pub async fn start() -> Self {
        test_support::init_logs();
        let cluster = tokio::task::block_in_place(|| BrokerCluster::start(3));
        let processes = ProcessPipeline::start(Setup {
            payment_replicas: 2,
            ..Setup::on(cluster.urls())
        })
        .await;
        Self { cluster, processes }
    }

    /// `kill -9` of node `index` (a crash); it stays down.
    pub fn kill(&self, index: u32) {
        tokio::task::block_in_place(|| self.cluster.kill(index));
    }

    /// A clean stop of node `index`.
    pub fn halt(&self, index: u32) {
        tokio::task::block_in_place(|| self.cluster.halt(index));
    }

    /// Node `index` started again; it rejoins the cluster.
    pub fn boot(&self, index: u32) {
        tokio::task::block_in_place(|| self.cluster.boot(index));
    }

    /// Waits until every process is ready, none of them on node `not_on`;
    /// how long that took.
    pub async fn wait_until_ready(&self, timeout: Duration, not_on: Option<u32>) -> Duration {
        self.processes
            .wait_until_ready(timeout, |body| {
                not_on.is_none() || self.node_index(body) != not_on
            })
            .await
    }

    /// The node a process's `/ready` body says its connection is on.
    pub fn node_index(&self, ready: &Value) -> Option<u32> {
        let node = ready["details"]["rabbitmq"]["node"].as_str()?;
        self.cluster.index_of(node)
    }

    /// The node most processes are connected to.
    pub async fn busiest_node(&self) -> u32 {
        let mut count: HashMap<u32, usize> = HashMap::new();
        for (_, body) in self.readiness().await {
            if let Some(index) = self.node_index(&body) {
                *count.entry(index).or_default() += 1;
            }
        }
        count
            .into_iter()
            .max_by_key(|(index, n)| (*n, std::cmp::Reverse(*index)))
            .map(|(index, _)| index)
            .expect("the services report their node")
    }

    /// The audit of [`ProcessPipeline::audit`], through a connection to
    /// node `via` (a live one).
    pub async fn audit(&mut self, accepted: &[String], via: u32) {
        let broker = Connection::connect(&self.cluster.url(via), ConnectionProperties::default())
            .await
            .expect("a live node");
        self.processes.audit(accepted, &broker).await;
    }

    /// Waits until every queue has a replica online on each node.
    pub async fn wait_for_every_replica(&self, timeout: Duration) {
        test_support::eventually(timeout, "every queue's replicas online", || async {
            let listing = tokio::task::block_in_place(|| {
                self.cluster
                    .ctl(1, &["list_queues", "name", "online", "--no-table-headers"])
            });
            let lines: Vec<&str> = listing.lines().filter(|l| !l.trim().is_empty()).collect();
            let all = !lines.is_empty()
                && lines
                    .iter()
                    .all(|line| (1..=3).all(|i| line.contains(&format!("rq{i}@localhost"))));
            all.then_some(())
        })
        .await;
    }

    /// The queues of the cluster whose replicas are not on every node.
    pub fn queues_not_on_every_node(&self) -> Vec<String> {
        let listing = tokio::task::block_in_place(|| {
            self.cluster
                .ctl(1, &["list_queues", "name", "members", "--no-table-headers"])
        });
        listing
            .lines()
            .filter(|line| !line.trim().is_empty())
            .filter(|line| (1..=3).any(|i| !line.contains(&format!("rq{i}@localhost"))))
            .map(str::to_owned)
            .collect()
    }
}
