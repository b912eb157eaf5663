//! Group commit (`messaging::db::batch`) against the real local PostgreSQL, a
//! fresh database per test.
//!
//! Every test first occupies both workers with one held statement each, so
//! what is submitted next is certainly waiting together when they are
//! released: the batches below are exact, not probable.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use messaging::db::{
    self,
    batch::{BatchStatement, Batcher, MAX_BATCH, WORKERS},
};
use sqlx::{PgPool, postgres::PgPoolOptions};
use test_support::{self, eventually};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// One row to insert: `n` must be ≥ 0 (a CHECK constraint); `n == PANIC`
/// makes the statement panic.
#[derive(Debug, Clone, Copy)]
struct Row {
    id: Uuid,
    n: i32,
}

const PANIC: i32 = i32::MIN;

/// Inserts rows (`ON CONFLICT DO NOTHING`) and answers whether each was
/// new. Records the size of every statement, and holds each one until the
/// test opens the gate.
struct InsertRows {
    sizes: Arc<Mutex<Vec<usize>>>,
    gate: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl BatchStatement for InsertRows {
    type Item = Row;
    type Output = bool;
    type Key = Uuid;
    const NAME: &'static str = "test_insert_rows";

    fn keys(row: &Row) -> Vec<Uuid> {
        vec![row.id]
    }

    async fn run(&self, pool: &PgPool, rows: &[Row]) -> sqlx::Result<Vec<bool>> {
        self.sizes.lock().unwrap().push(rows.len());
        self.gate.acquire().await.unwrap().forget();
        assert!(rows.iter().all(|r| r.n != PANIC), "asked to panic");
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let ns: Vec<i32> = rows.iter().map(|r| r.n).collect();
        let inserted: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO rows (id, n) SELECT * FROM unnest($1::uuid[], $2::int[]) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(&ids)
        .bind(&ns)
        .fetch_all(pool)
        .await?;
        Ok(ids.iter().map(|id| inserted.contains(id)).collect())
    }
}

struct Fixture {
    batcher: Batcher<InsertRows>,
    sizes: Arc<Mutex<Vec<usize>>>,
    gate: Arc<Semaphore>,
    pool: PgPool,
}

impl Fixture {
    async fn new() -> Self {
        let settings = test_support::fresh_database("batch");
        db::create_database_if_missing(&settings).await.unwrap();
        let pool = PgPoolOptions::new()
            // Every worker may hold a connection; the test's own queries need more.
            .max_connections(WORKERS as u32 + 2)
            .connect(&settings.url)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE rows (id uuid PRIMARY KEY, n int NOT NULL CHECK (n >= 0))")
            .execute(&pool)
            .await
            .unwrap();
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let statement = InsertRows {
            sizes: sizes.clone(),
            gate: gate.clone(),
        };
        let batcher = Batcher::start(statement, pool.clone());
        Self {
            batcher,
            sizes,
            gate,
            pool,
        }
    }

    /// Puts one held statement on each worker; their answers come after
    /// [`Fixture::open`].
    async fn occupy_workers(&self) -> Vec<tokio::task::JoinHandle<sqlx::Result<bool>>> {
        let mut held = Vec::new();
        for running in 1..=WORKERS {
            held.push(tokio::spawn(self.batcher.submit(row(0))));
            eventually(
                Duration::from_secs(5),
                "a worker to take the item",
                || async { (self.sizes.lock().unwrap().len() == running).then_some(()) },
            )
            .await;
        }
        held
    }

    /// Lets every statement run from now on.
    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    fn sizes(&self) -> Vec<usize> {
        self.sizes.lock().unwrap().clone()
    }

    async fn count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM rows")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

fn row(n: i32) -> Row {
    Row {
        id: Uuid::new_v4(),
        n,
    }
}

#[tokio::test]
async fn items_waiting_together_share_one_statement_and_each_gets_its_own_answer() {
    let fx = Fixture::new().await;
    let held = fx.occupy_workers().await;
    let first = row(1);
    let first_answer = fx.batcher.submit(first);
    let waiting: Vec<_> = (0..20).map(|n| fx.batcher.submit(row(n))).collect();
    fx.open();
    for h in held {
        assert!(h.await.unwrap().unwrap());
    }
    assert!(first_answer.await.unwrap());
    for answer in waiting {
        assert!(answer.await.unwrap(), "each item answers for itself");
    }
    // The same row again, in a statement of its own: not new any more.
    assert!(!fx.batcher.submit(first).await.unwrap());
    assert_eq!(
        fx.sizes(),
        [1, 1, 21, 1],
        "held, held, all that waited, the repeat"
    );
    assert_eq!(fx.count().await, 2 + 21);
}

#[tokio::test]
async fn a_batch_holds_at_most_max_batch_items() {
    let fx = Fixture::new().await;
    let held = fx.occupy_workers().await;
    let waiting: Vec<_> = (0..MAX_BATCH + 5)
        .map(|n| fx.batcher.submit(row(n as i32)))
        .collect();
    fx.open();
    for h in held {
        h.await.unwrap().unwrap();
    }
    futures::future::try_join_all(waiting).await.unwrap();
    let mut sizes = fx.sizes();
    sizes.sort_unstable();
    assert_eq!(sizes, [1, 1, 5, MAX_BATCH]);
}

#[tokio::test]
async fn items_with_a_key_in_common_never_share_a_statement() {
    let fx = Fixture::new().await;
    let held = fx.occupy_workers().await;
    let twice = row(7);
    let a = fx.batcher.submit(twice);
    let b = fx.batcher.submit(row(8));
    let again = fx.batcher.submit(twice);
    fx.open();
    for h in held {
        h.await.unwrap().unwrap();
    }
    assert!(a.await.unwrap(), "the first of two with one key stores it");
    assert!(b.await.unwrap());
    assert!(
        !again.await.unwrap(),
        "the second runs after the first, alone"
    );
    assert_eq!(fx.sizes(), [1, 1, 2, 1]);
}

#[tokio::test]
async fn a_failing_item_fails_alone_and_its_neighbours_are_stored() {
    let fx = Fixture::new().await;
    let held = fx.occupy_workers().await;
    let good = [row(1), row(2)];
    let before = fx.batcher.submit(good[0]);
    let bad = fx.batcher.submit(row(-1));
    let after = fx.batcher.submit(good[1]);
    fx.open();
    for h in held {
        h.await.unwrap().unwrap();
    }
    assert!(before.await.unwrap());
    assert!(after.await.unwrap());
    match bad.await {
        Err(sqlx::Error::Database(e)) => assert_eq!(e.code().as_deref(), Some("23514")),
        other => panic!("expected the CHECK violation, got {other:?}"),
    }
    // The three together failed, then each ran alone.
    assert_eq!(fx.sizes(), [1, 1, 3, 1, 1, 1]);
    assert_eq!(fx.count().await, 2 + 2);
}

#[tokio::test]
async fn a_panicking_statement_is_an_error_and_the_batcher_goes_on() {
    let fx = Fixture::new().await;
    fx.open();
    let panicked = fx.batcher.submit(row(PANIC)).await;
    assert!(
        matches!(&panicked, Err(sqlx::Error::Protocol(text)) if text.contains("panicked")),
        "{panicked:?}"
    );
    for _ in 0..WORKERS {
        assert!(fx.batcher.submit(row(3)).await.unwrap());
    }
    assert_eq!(fx.count().await, WORKERS as i64);
}

#[tokio::test]
async fn a_database_that_is_gone_is_an_unavailable_error_for_every_item() {
    let fx = Fixture::new().await;
    fx.open();
    fx.pool.close().await;
    let answers = futures::future::join_all((0..5).map(|n| fx.batcher.submit(row(n)))).await;
    for answer in answers {
        let error = answer.expect_err("nothing can be stored");
        assert!(db::is_unavailable(&error), "{error:?}");
    }
}

#[tokio::test]
async fn a_batch_that_loses_its_database_is_not_written_again_item_by_item() {
    let fx = Fixture::new().await;
    let held = fx.occupy_workers().await;
    let batch: Vec<_> = (0..3)
        .map(|n| tokio::spawn(fx.batcher.submit(row(n))))
        .collect();
    fx.pool.close().await;
    fx.open();
    for answer in futures::future::join_all(held.into_iter().chain(batch)).await {
        let error = answer.unwrap().expect_err("nothing can be stored");
        assert!(db::is_unavailable(&error), "{error:?}");
    }
    let mut after_held = fx.sizes().split_off(WORKERS);
    after_held.sort_unstable();
    assert_eq!(
        after_held,
        [3],
        "one statement for the three, none per item"
    );
}
