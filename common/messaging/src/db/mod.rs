//! PostgreSQL: the pool every service uses, the database created if missing
//! and migrated at start.
//!
//! The pool fails fast (`acquire_timeout` 3 s instead of sqlx's 30 s) so a
//! database outage turns into quick 503s and retries, not a pile of stuck
//! requests. A connection that sat idle for more than [`PING_IDLE_AFTER`] is
//! pinged before it is handed out, so those that died while PostgreSQL
//! restarted are discarded. sqlx's default pings before *every* acquire: one
//! extra round trip per statement or transaction. A
//! connection in constant use that breaks fails its next statement instead
//! (sqlx then drops it): that request answers 503 and that message is
//! retried, like any other failure during an outage.
//!
//! Every connection of a service's pool plans each statement for its actual
//! parameters (`plan_cache_mode = force_custom_plan`, [`SESSION_SETUP`];
//! [`Plans::PerExecution`]). PostgreSQL's default switches a prepared
//! statement to a generic plan after five runs and keeps it for the
//! connection's life; a plan made while a table was empty (a sequential
//! scan) then stays while the table grows. Planning every time has a price,
//! so a statement that looks nothing up but by primary key (order-service's
//! checkout insert) gets a pool that keeps PostgreSQL's cached plans
//! ([`Plans::Cached`]). The measurements are in `docs/performance.md`.
//!
//! The schema: [`migrate`] applies the runtime's tables, then the service's.

pub mod batch;
mod migrate;

pub use migrate::{MigrationError, RUNTIME_MIGRATOR, migrate};

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, Executor, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use runtime::{
    config::{self, ConfigError},
    health::StartupProgress,
};

/// Run on every new connection (see the module comment).
pub const SESSION_SETUP: &str = "SET plan_cache_mode = force_custom_plan";

/// How a pool's connections plan prepared statements (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plans {
    /// For its parameters, on every execution ([`SESSION_SETUP`]): the
    /// default, safe for any statement whatever the tables' statistics say.
    PerExecution,
    /// PostgreSQL's default: a generic plan once five executions show it is
    /// no worse. Only for statements whose every plan is an index lookup.
    Cached,
}

/// Idle longer than this, a pooled connection is checked before use.
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Its `Debug` shows the URL without its password.
#[derive(Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &config::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl DatabaseSettings {
    /// `DATABASE_URL` (default: local PostgreSQL, database `default_db`) and
    /// `DATABASE_MAX_CONNECTIONS` (default 10).
    pub fn from_env(default_db: &str) -> Result<Self, ConfigError> {
        let default_url = format!("postgres://postgres:postgres@127.0.0.1:5432/{default_db}");
        let url = config::var_or("DATABASE_URL", &default_url)?;
        url.parse::<PgConnectOptions>()
            .map_err(|e| ConfigError::new("DATABASE_URL", e))?;
        Ok(Self {
            url,
            max_connections: config::parse_or("DATABASE_MAX_CONNECTIONS", 10)?,
            acquire_timeout: Duration::from_secs(3),
        })
    }

    fn options(&self) -> anyhow::Result<PgConnectOptions> {
        let options: PgConnectOptions = self.url.parse().context("parsing DATABASE_URL")?;
        // Statements are logged at debug only; at info they flood the logs.
        Ok(options.log_statements(tracing::log::LevelFilter::Debug))
    }
}

/// Creates the database if it does not exist (safe to race with other replicas).
///
/// The database itself is tried first: when it exists nothing else is needed,
/// so a least-privilege role that owns its database but may neither create
/// databases nor connect to `postgres` (deploy/postgres/init.sql) starts fine.
/// Only when it is missing (`3D000`) does this connect to `postgres` to create it.
pub async fn create_database_if_missing(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let options = settings.options()?;
    let name = options
        .get_database()
        .context("DATABASE_URL names no database")?
        .to_owned();
    match options.connect().await {
        Ok(conn) => {
            let _ = conn.close().await;
            return Ok(());
        }
        // 3D000 invalid_catalog_name: the database does not exist.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {}
        Err(e) => return Err(e).context(format!("connecting to database {name}")),
    }
    let mut admin = options
        .database("postgres")
        .connect()
        .await
        .context("connecting to database postgres")?;
    let quoted = name.replace('"', "\"\"");
    match admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE \"{quoted}\"")))
        .await
    {
        Ok(_) => tracing::info!(database = %name, "database created"),
        // 42P04 duplicate_database: another replica created it first.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
        Err(e) => return Err(e).context(format!("creating database {name}")),
    }
    let _ = admin.close().await;
    Ok(())
}

/// A pool on a created database, migrated: the runtime's tables and then
/// the service's (`migrator`).
pub async fn connect_and_migrate(
    settings: &DatabaseSettings,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    create_database_if_missing(settings).await?;
    let pool = connect(settings, Plans::PerExecution).await?;
    migrate(&pool, migrator).await?;
    Ok(pool)
}

/// A pool on an existing database, its connections planning as `plans` says.
pub async fn connect(settings: &DatabaseSettings, plans: Plans) -> anyhow::Result<PgPool> {
    let options = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false);
    let options = match plans {
        Plans::PerExecution => options.after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SESSION_SETUP).await?;
                Ok(())
            })
        }),
        Plans::Cached => options,
    };
    options
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(settings.options()?)
        .await
        .context("connecting to the database")
}

/// [`connect_and_migrate`], retried with backoff until it works, so a
/// service started before its database waits instead of dying. Each failed
/// attempt is logged at warn and shown in `progress`; the pause between
/// attempts doubles from 200 ms up to 5 s. A migration that cannot work
/// however often it is tried (a history that does not match the code) ends
/// the wait with that error.
pub async fn connect_with_retry(
    settings: &DatabaseSettings,
    migrator: &Migrator,
    progress: &StartupProgress,
) -> anyhow::Result<PgPool> {
    let mut delay = Duration::from_millis(200);
    loop {
        match connect_and_migrate(settings, migrator).await {
            Ok(pool) => return Ok(pool),
            Err(e)
                if e.downcast_ref::<MigrationError>()
                    .is_some_and(|m| !m.is_transient()) =>
            {
                return Err(e);
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::warn!(%error, retry_in = ?delay, "database not available yet");
                progress.set(format!("waiting for PostgreSQL: {error}"));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// True for errors that mean "the database is unavailable right now" (connection
/// refused or lost, pool timeout, server shutting down or starting up), which
/// callers answer with 503 / a retry rather than a failure.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(e) => matches!(
            e.code().as_deref(),
            // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections,
            // and class 08 connection exceptions.
            Some(
                "57P01"
                    | "57P02"
                    | "57P03"
                    | "53300"
                    | "08000"
                    | "08003"
                    | "08006"
                    | "08001"
                    | "08004"
            )
        ),
        _ => false,
    }
}

/// PostgreSQL answers `SELECT 1` within two seconds.
pub struct PostgresCheck(pub PgPool);

#[async_trait::async_trait]
impl runtime::health::ReadinessCheck for PostgresCheck {
    async fn check(&self) -> Result<(), String> {
        let ping = sqlx::query("SELECT 1").execute(&self.0);
        match tokio::time::timeout(Duration::from_secs(2), ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("database unreachable: {e}")),
            Err(_) => Err("database did not answer within 2s".into()),
        }
    }

    fn record_gauges(&self) {
        // Read one after the other: the pool may change in between.
        let in_use = (self.0.size() as usize).saturating_sub(self.0.num_idle());
        metrics::gauge!("db_pool_connections_in_use").set(in_use as f64);
        metrics::gauge!("db_pool_max_connections")
            .set(f64::from(self.0.options().get_max_connections()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password() {
        let settings = DatabaseSettings {
            url: "postgres://order_service:s3cret-pw@postgres:5432/order_db".into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("order_service:***@postgres"), "{shown}");
    }
}
