//! Runs a service's long-lived tasks and stops them in order.
//!
//! Two groups: *intake* tasks take work in (the HTTP server, consumers) and are
//! stopped first on shutdown, each draining its in-flight work; *background*
//! tasks (the outbox relay, the broker connection's supervisor) keep going until intake has
//! drained, so the relay publishes what the drain committed, then stop.
//!
//! Any task that ends before shutdown was asked for (an error, or a loop that
//! should never return) fails the whole service: everything else is stopped and
//! the error returned, and [`keep_running`] builds and starts the service
//! afresh, in the same process, with backoff. A service is never left
//! half-alive. Only a failure of the first start (bad configuration, port
//! taken) ends the process, with a non-zero exit.

mod binary;
pub mod startup;

pub use binary::{Service, main, supervise};

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

type Task = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> + Send>;

#[derive(Default)]
pub struct Tasks {
    intake: Vec<(&'static str, Task)>,
    background: Vec<(&'static str, Task)>,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// A task that takes work in; stopped first.
    pub fn intake<F>(
        &mut self,
        name: &'static str,
        task: impl FnOnce(CancellationToken) -> F + Send + 'static,
    ) where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.intake
            .push((name, Box::new(move |stop| Box::pin(task(stop)))));
    }

    /// A task that serves the others; stopped after intake has drained.
    pub fn background<F>(
        &mut self,
        name: &'static str,
        task: impl FnOnce(CancellationToken) -> F + Send + 'static,
    ) where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.background
            .push((name, Box::new(move |stop| Box::pin(task(stop)))));
    }

    /// Runs every task until `shutdown` fires or one of them ends.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let intake_stop = CancellationToken::new();
        let background_stop = CancellationToken::new();
        let mut intake = spawn_all(self.intake, &intake_stop);
        let mut background = spawn_all(self.background, &background_stop);

        let mut failure: Option<anyhow::Error> = None;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            Some(ended) = intake.join_next() => failure = Some(unexpected_end(ended)),
            Some(ended) = background.join_next() => failure = Some(unexpected_end(ended)),
        }
        if let Some(e) = &failure {
            tracing::error!(
                error = format!("{e:#}"),
                "a service task failed; stopping the service"
            );
        }

        intake_stop.cancel();
        collect(&mut intake, Duration::from_secs(30), &mut failure).await;
        background_stop.cancel();
        collect(&mut background, Duration::from_secs(15), &mut failure).await;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Runs a service and, when it fails after having started, starts it afresh
/// with backoff, as compose's `restart: unless-stopped` would restart the
/// process. This covers the failures a service cannot heal in place (a
/// consumer that cannot attach again and again, a task that died): a fresh
/// start gets fresh connections and tasks. `first` is the already built service's run; `restart`
/// builds and runs a new one. Returns when `shutdown` fires.
pub async fn keep_running(
    name: &'static str,
    shutdown: CancellationToken,
    first: impl Future<Output = anyhow::Result<()>> + Send,
    restart: impl Fn() -> BoxFuture<'static, anyhow::Result<()>>,
) -> anyhow::Result<()> {
    // At 0 from the start, so that a dashboard shows 0 rather than no data.
    metrics::counter!("service_restarts_total", "service" => name).increment(0);
    let mut backoff = Duration::from_secs(1);
    let mut started = tokio::time::Instant::now();
    let mut result = first.await;
    loop {
        let error = match result {
            Err(e) if !shutdown.is_cancelled() => e,
            other => return other,
        };
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1); // it had been running well
        }
        metrics::counter!("service_restarts_total", "service" => name).increment(1);
        tracing::error!(service = name, error = format!("{error:#}"), restart_in = ?backoff, "service failed; restarting it");
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
        started = tokio::time::Instant::now();
        result = restart().await;
    }
}

fn spawn_all(
    tasks: Vec<(&'static str, Task)>,
    stop: &CancellationToken,
) -> JoinSet<(&'static str, anyhow::Result<()>)> {
    let mut set = JoinSet::new();
    for (name, task) in tasks {
        let future = task(stop.clone());
        set.spawn(async move { (name, future.await) });
    }
    set
}

fn unexpected_end(
    ended: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> anyhow::Error {
    match ended {
        Ok((name, Ok(()))) => anyhow::anyhow!("task {name} stopped unexpectedly"),
        Ok((name, Err(e))) => e.context(format!("task {name} failed")),
        Err(e) => anyhow::anyhow!("a task panicked: {e}"),
    }
}

async fn collect(
    set: &mut JoinSet<(&'static str, anyhow::Result<()>)>,
    deadline: Duration,
    failure: &mut Option<anyhow::Error>,
) {
    let drained = tokio::time::timeout(deadline, async {
        while let Some(ended) = set.join_next().await {
            match ended {
                Ok((_, Ok(()))) => {}
                Ok((name, Err(e))) => {
                    tracing::error!(
                        task = name,
                        error = format!("{e:#}"),
                        "task failed while stopping"
                    );
                    failure.get_or_insert(e.context(format!("task {name} failed")));
                }
                Err(e) => {
                    failure.get_or_insert(anyhow::anyhow!("a task panicked: {e}"));
                }
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(?deadline, "tasks did not stop in time; aborting them");
        set.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_task_stops_the_others_and_is_reported() {
        let mut tasks = Tasks::new();
        tasks.intake("server", |stop| async move {
            stop.cancelled().await;
            Ok(())
        });
        tasks.background("relay", |_| async { anyhow::bail!("broker gone") });
        let err = tasks.run(CancellationToken::new()).await.unwrap_err();
        assert!(format!("{err:#}").contains("broker gone"), "{err:#}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_that_fails_is_started_again_until_shutdown() {
        let shutdown = CancellationToken::new();
        let starts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (count, stop) = (starts.clone(), shutdown.clone());
        let restart = move || {
            let (count, stop) = (count.clone(), stop.clone());
            Box::pin(async move {
                if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                    stop.cancel(); // the second restart runs until shutdown
                    return Ok(());
                }
                anyhow::bail!("a consumer could not attach")
            }) as BoxFuture<'static, anyhow::Result<()>>
        };
        let first = async { anyhow::bail!("first run failed") };
        keep_running("test", shutdown, first, restart)
            .await
            .unwrap();
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn background_tasks_stop_after_intake_has_drained() {
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Tasks::new();
        let o = order.clone();
        tasks.intake("consumer", move |stop| async move {
            stop.cancelled().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            o.lock().unwrap().push("intake drained");
            Ok(())
        });
        let o = order.clone();
        tasks.background("relay", move |stop| async move {
            stop.cancelled().await;
            o.lock().unwrap().push("relay flushed");
            Ok(())
        });
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        tasks.run(shutdown).await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["intake drained", "relay flushed"]);
    }
}
