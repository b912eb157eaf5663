//! A PostgreSQL server of the test's own (`scripts/postgres-node.sh`), for
//! faults that must not touch the server every other test uses: crashed with
//! `kill -9` and restarted. Dropping the guard stops it and deletes its data,
//! on success and on panic alike.

use std::process::{Command, Output};

use messaging::db::DatabaseSettings;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres-node.sh");

pub struct PostgresNode {
    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub admin_url: String,
}

impl PostgresNode {
    /// Starts the server (initialised on first use).
    pub async fn start() -> Self {
        run("start").await;
        let admin_url = String::from_utf8(run("url").await.stdout)
            .expect("UTF-8 URL")
            .trim()
            .to_owned();
        Self { admin_url }
    }

    /// [`test_support::fresh_database`], on this server.
    pub fn fresh_database(&self, service: &str) -> DatabaseSettings {
        let mut settings = test_support::fresh_database(service);
        let name = settings.url.rsplit_once('/').expect("a database URL").1;
        let base = self.admin_url.rsplit_once('/').expect("a database URL").0;
        settings.url = format!("{base}/{name}");
        settings
    }

    /// `kill -9` of the postmaster and its children: a crash. Returns once
    /// none of them is left.
    pub async fn kill(&self) {
        run("kill").await;
    }

    /// Starts the server again after [`Self::kill`]; crash recovery runs.
    /// Returns once it accepts connections.
    pub async fn restart(&self) {
        run("restart").await;
    }
}

impl Drop for PostgresNode {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT).arg("stop").status();
    }
}

/// Runs the script without blocking the runtime the services run on.
async fn run(command: &str) -> Output {
    let output = tokio::process::Command::new(SCRIPT)
        .arg(command)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"));
    assert!(
        output.status.success(),
        "postgres-node.sh {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
