//! Real service processes for crash tests, each in its own RabbitMQ vhost.
//!
//! A binary reads its configuration from the environment only, so a process
//! test cannot hand it a name prefix; a vhost of its own gives the same
//! isolation (queues, exchanges and messages are per vhost).

use std::{
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use uuid::Uuid;

/// A vhost created for one test and deleted when dropped.
pub struct TestVhost {
    pub name: String,
    /// `amqp://guest:guest@127.0.0.1:5672/<vhost>`
    pub url: String,
}

impl TestVhost {
    pub fn create() -> Self {
        let name = format!("test_{}", Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let base = crate::amqp_url();
        let base = base
            .rsplit_once('/')
            .map_or(base.as_str(), |(b, _)| b)
            .to_owned();
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        rabbitmqctl(&["delete_vhost", &self.name]);
    }
}

/// Runs `rabbitmqctl` (or the command in `RABBITMQCTL`, for example
/// `docker compose exec -T rabbitmq rabbitmqctl`) and asserts it succeeded.
pub fn rabbitmqctl(args: &[&str]) {
    rabbitmqctl_with(args, None);
}

/// [`rabbitmqctl`] with `stdin` as standard input; returns standard output.
pub fn rabbitmqctl_with(args: &[&str], stdin: Option<&[u8]>) -> String {
    let command = std::env::var("RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".into());
    let mut words = command.split_whitespace();
    let mut child = Command::new(words.next().expect("RABBITMQCTL is not empty"))
        .args(words)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rabbitmqctl is installed");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input).expect("writing to rabbitmqctl");
    }
    let output = child.wait_with_output().expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A service binary running as a child process, logging to a file.
pub struct ServiceProcess {
    child: Child,
    pub log: PathBuf,
}

impl ServiceProcess {
    /// Starts `binary` with `env` (plus `LOG_FORMAT=json`).
    pub fn spawn(binary: &str, env: &[(&str, String)]) -> Self {
        let dir = std::env::temp_dir().join("checkout-pipeline-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let name = binary.rsplit('/').next().unwrap_or("service");
        let log = dir.join(format!("{name}-{}.log", Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LOG_FORMAT", "json")
            .env(
                "RUST_LOG",
                std::env::var("TEST_SERVICE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        Self { child, log }
    }

    /// Waits for the process to exit by itself (a fail point) within `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "process did not exit within {timeout:?}; log: {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.wait_exit(timeout).await
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
