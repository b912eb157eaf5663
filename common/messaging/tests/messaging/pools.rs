//! How pooled connections plan their statements (`messaging::db::Plans`),
//! against the real PostgreSQL.

use messaging::db::{self, Plans};
use sqlx::PgPool;

/// `plan_cache_mode` on each of the pool's connections, all held at once
/// so that none is asked twice.
async fn plan_modes(pool: &PgPool, connections: usize) -> Vec<String> {
    let mut held = Vec::new();
    let mut modes = Vec::new();
    for _ in 0..connections {
        let mut conn = pool.acquire().await.unwrap();
        let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        modes.push(mode);
        held.push(conn);
    }
    modes
}

#[tokio::test]
async fn each_connection_plans_as_its_pool_says() {
    let settings = test_support::fresh_database("pools");
    db::create_database_if_missing(&settings).await.unwrap();
    let connections = settings.max_connections as usize;

    let per_execution = db::connect(&settings, Plans::PerExecution).await.unwrap();
    assert_eq!(
        plan_modes(&per_execution, connections).await,
        vec!["force_custom_plan"; connections]
    );
    per_execution.close().await;

    let cached = db::connect(&settings, Plans::Cached).await.unwrap();
    assert_eq!(
        plan_modes(&cached, connections).await,
        vec!["auto"; connections],
        "PostgreSQL's default"
    );
    cached.close().await;
}
