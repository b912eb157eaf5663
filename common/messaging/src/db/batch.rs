//! Group commit: the same write from many concurrent callers (consumer
//! handlers, one per delivery in flight) sent to PostgreSQL as one
//! statement.
//!
//! Why: a small write's cost is mostly per statement (round trip, executor
//! start-up, commit, WAL flush), not per row (`docs/performance.md`,
//! "Group commit").
//!
//! How: a caller [`Batcher::submit`]s its item and awaits its own result.
//! [`BatchStatement::WORKERS`] tasks each take whatever is waiting (up to
//! [`MAX_BATCH`]) and run one statement for it. They never wait for more to
//! arrive: on an idle system a batch of one goes out at once; under load, a
//! batch holds what arrived while the previous statement ran. Batching adds
//! no delay of its own.
//!
//! What each caller sees is what it would see writing alone:
//! - items that share a key ([`BatchStatement::keys`]: the event id, the order
//!   id) never share a statement (the later one runs right after, on its
//!   own), so "first delivery wins" and `ON CONFLICT` keep their meaning;
//! - a statement that fails for several items is retried item by item
//!   (concurrently), so each caller gets its own result or error, and one bad
//!   item cannot fail its neighbours; except when the database is
//!   unavailable, which every item is told as it is;
//! - the caller's result arrives after the statement committed: a handler
//!   acks only what is durable, exactly as before.
//!
//! Two batches running at once (two workers, or two replicas) may hold items
//! with a key in common, exactly as two deliveries on two replicas may: the
//! statements' own unique keys and row locks order them. Should that make
//! PostgreSQL break a deadlock, the failed statement's items are retried one
//! by one like any other failure.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
    panic::AssertUnwindSafe,
    sync::Arc,
};

use futures::FutureExt as _;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

/// Statements of one kind that may run at the same time, unless the
/// statement says otherwise ([`BatchStatement::WORKERS`]): one collects the
/// next batch while another runs.
pub const WORKERS: usize = 2;

/// The most items in one statement.
pub const MAX_BATCH: usize = 64;

/// One kind of statement that can be applied to many items at once.
#[async_trait::async_trait]
pub trait BatchStatement: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;
    type Key: Eq + Hash + Send;

    /// The `statement` label of the batch metrics.
    const NAME: &'static str;
    /// How many of these statements may run at once (each on a connection
    /// of the pool).
    const WORKERS: usize = WORKERS;

    /// Two items with a key in common never share a statement.
    fn keys(item: &Self::Item) -> Vec<Self::Key>;

    /// One statement for all `items` (no key appears twice among them): one
    /// output per item, in the items' order.
    async fn run(&self, pool: &PgPool, items: &[Self::Item]) -> sqlx::Result<Vec<Self::Output>>;
}

struct Job<W: BatchStatement> {
    item: W::Item,
    reply: oneshot::Sender<sqlx::Result<W::Output>>,
}

/// Hands items to the workers; cheap to clone. The workers stop when the
/// last clone is dropped.
pub struct Batcher<W: BatchStatement> {
    jobs: mpsc::UnboundedSender<Job<W>>,
}

impl<W: BatchStatement> Clone for Batcher<W> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

impl<W: BatchStatement> Batcher<W> {
    /// Starts the workers on the current Tokio runtime.
    pub fn start(statement: W, pool: PgPool) -> Self {
        // Unbounded: callers are bounded already (each one is a delivery in
        // flight, and prefetch bounds those).
        let (jobs, receiver) = mpsc::unbounded_channel();
        let worker = Arc::new(Worker {
            statement,
            pool,
            jobs: Mutex::new(receiver),
        });
        for _ in 0..W::WORKERS {
            tokio::spawn(worker.clone().run());
        }
        Self { jobs }
    }

    /// Queues `item` at once (so items are taken in the order of these
    /// calls) and returns its output once the statement that carried it has
    /// committed.
    pub fn submit(
        &self,
        item: W::Item,
    ) -> impl Future<Output = sqlx::Result<W::Output>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = self.jobs.send(Job { item, reply });
        async move {
            queued.map_err(|_| sqlx::Error::WorkerCrashed)?;
            answer.await.map_err(|_| sqlx::Error::WorkerCrashed)?
        }
    }
}

struct Worker<W: BatchStatement> {
    statement: W,
    pool: PgPool,
    jobs: Mutex<mpsc::UnboundedReceiver<Job<W>>>,
}

impl<W: BatchStatement> Worker<W> {
    async fn run(self: Arc<Self>) {
        while let Some((batch, same_key_later)) = self.next_batch().await {
            self.answer(batch).await;
            for job in same_key_later {
                self.answer(vec![job]).await;
            }
        }
    }

    /// Waits for one job, then takes what else is waiting without waiting
    /// more. Jobs whose key is already in the batch are returned apart.
    async fn next_batch(&self) -> Option<(Vec<Job<W>>, Vec<Job<W>>)> {
        let mut jobs = self.jobs.lock().await;
        let first = jobs.recv().await?;
        let mut keys: HashSet<W::Key> = W::keys(&first.item).into_iter().collect();
        let mut batch = vec![first];
        let mut same_key_later = Vec::new();
        while batch.len() < MAX_BATCH {
            let Ok(job) = jobs.try_recv() else { break };
            let job_keys = W::keys(&job.item);
            if job_keys.iter().any(|key| keys.contains(key)) {
                same_key_later.push(job);
            } else {
                keys.extend(job_keys);
                batch.push(job);
            }
        }
        Some((batch, same_key_later))
    }

    /// Runs the statement for `batch` and answers each job.
    async fn answer(&self, batch: Vec<Job<W>>) {
        metrics::histogram!("db_batch_size", "statement" => W::NAME).record(batch.len() as f64);
        let (items, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|job| (job.item, job.reply)).unzip();
        match self.run_checked(&items).await {
            Ok(outputs) => {
                for (reply, output) in replies.into_iter().zip(outputs) {
                    let _ = reply.send(Ok(output));
                }
            }
            Err(e) if items.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
            // Not the items' fault, and the batch may have committed before
            // its connection went: written again one by one, an item could
            // meet its own row (a conflict where the answer is "stored").
            Err(e) if super::is_unavailable(&e) => {
                for reply in replies {
                    let _ = reply.send(Err(unavailable_like(&e)));
                }
            }
            Err(e) => {
                tracing::warn!(statement = W::NAME, items = items.len(), error = %e,
                    "batched statement failed; writing its items one by one");
                metrics::counter!("db_batch_fallbacks_total", "statement" => W::NAME).increment(1);
                let alone = items.iter().zip(replies).map(|(item, reply)| async move {
                    let result = self
                        .run_checked(std::slice::from_ref(item))
                        .await
                        .and_then(|mut outputs| outputs.pop().ok_or(sqlx::Error::RowNotFound));
                    let _ = reply.send(result);
                });
                futures::future::join_all(alone).await;
            }
        }
    }

    /// The statement, checked to answer every item; a panic in it
    /// is an error for these items, not the end of the worker.
    async fn run_checked(&self, items: &[W::Item]) -> sqlx::Result<Vec<W::Output>> {
        let outputs = AssertUnwindSafe(self.statement.run(&self.pool, items))
            .catch_unwind()
            .await
            .map_err(|_| sqlx::Error::Protocol(format!("{} panicked", W::NAME)))??;
        if outputs.len() != items.len() {
            return Err(sqlx::Error::Protocol(format!(
                "{} answered {} of {} items",
                W::NAME,
                outputs.len(),
                items.len()
            )));
        }
        Ok(outputs)
    }
}

/// An error that [`super::is_unavailable`] also takes for unavailable, for
/// each item of a batch that met `error` (sqlx errors do not clone).
fn unavailable_like(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Io(std::io::Error::other(other.to_string())),
    }
}

/// A batched statement's rows, keyed by item (`found`), put back in the
/// items' order, as [`BatchStatement::run`] answers. An item without a row
/// is an error: the statement must answer for every item.
pub fn in_order_of<I, K: Eq + Hash, T: Copy>(
    items: &[I],
    key: impl Fn(&I) -> K,
    found: &HashMap<K, T>,
) -> sqlx::Result<Vec<T>> {
    items
        .iter()
        .map(|item| {
            found
                .get(&key(item))
                .copied()
                .ok_or(sqlx::Error::RowNotFound)
        })
        .collect()
}
