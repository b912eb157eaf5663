//! A service's database gets the runtime's tables from one source, then the
//! service's own; a database whose history does not match the code is
//! refused at once, with the reason, instead of being waited on forever.

use std::{path::Path, time::Duration};

use messaging::db;
use runtime::health::StartupProgress;
use sqlx::{PgPool, migrate::Migrator};

/// A service's migrator from `files` (name, SQL), written to a fresh folder.
async fn service_migrator(files: &[(&str, &str)]) -> Migrator {
    let dir = std::env::temp_dir().join(format!("migrations-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
    let migrator = Migrator::new(Path::new(&dir)).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    migrator
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_runtime_tables_come_first_and_once_then_the_services() {
    let settings = test_support::fresh_database("migrations");
    let service = service_migrator(&[(
        "0001_things.sql",
        // Needs the runtime's outbox to exist already.
        "CREATE TABLE things (id bigint PRIMARY KEY); \
         CREATE INDEX things_outbox ON outbox (event_type);",
    )])
    .await;
    let pool = db::connect_and_migrate(&settings, &service).await.unwrap();
    // A restart applies nothing twice.
    let pool_again = db::connect_and_migrate(&settings, &service).await.unwrap();
    pool_again.close().await;

    for (table, column) in [
        ("outbox", "traceparent"),
        ("processed_messages", "message_id"),
        ("message_journal", "order_id"),
        ("things", "id"),
    ] {
        let found = count(
            &pool,
            &format!(
                "SELECT count(*) FROM information_schema.columns \
                 WHERE table_name = '{table}' AND column_name = '{column}'"
            ),
        )
        .await;
        assert_eq!(found, 1, "{table}.{column}");
    }
    let runtime_versions = db::RUNTIME_MIGRATOR.iter().count() as i64;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM _messaging_migrations").await,
        runtime_versions
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM _sqlx_migrations").await,
        1
    );
    pool.close().await;
}

#[tokio::test]
async fn a_database_with_another_schema_history_is_refused_at_once_with_the_reason() {
    let settings = test_support::fresh_database("migrations");
    let before = service_migrator(&[("0001_things.sql", "CREATE TABLE things (id bigint);")]).await;
    db::connect_and_migrate(&settings, &before)
        .await
        .unwrap()
        .close()
        .await;

    // The same version, other content: what an edited migration looks like.
    let after = service_migrator(&[("0001_things.sql", "CREATE TABLE things (id text);")]).await;
    let progress = StartupProgress::new("PostgreSQL");
    let started = tokio::time::timeout(
        Duration::from_secs(30),
        db::connect_with_retry(&settings, &after, &progress),
    )
    .await
    .expect("refused, not retried");
    let error = format!("{:#}", started.expect_err("the history does not match"));
    assert!(error.contains("migration 1"), "{error}");
    assert!(error.contains("docs/operations.md"), "{error}");
}
