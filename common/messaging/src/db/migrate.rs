//! The schema of a service's database: the runtime's own tables first
//! (outbox, inbox, timeline journal; `common/messaging/migrations/`), then the
//! service's (its crate's `migrations/`). Each set has its own history table,
//! so their version numbers never collide and no service copies the
//! runtime's DDL.

use std::borrow::Cow;

use sqlx::{
    PgPool,
    migrate::{MigrateError, Migrator},
};

/// The runtime's tables, applied to every service's database.
pub static RUNTIME_MIGRATOR: Migrator = Migrator {
    table_name: Cow::Borrowed("_messaging_migrations"),
    ..sqlx::migrate!("./migrations")
};

/// Applies the runtime's migrations, then the service's.
pub async fn migrate(pool: &PgPool, service: &Migrator) -> Result<(), MigrationError> {
    for (what, migrator) in [
        ("the runtime's tables", &RUNTIME_MIGRATOR),
        ("the service's tables", service),
    ] {
        migrator
            .run(pool)
            .await
            .map_err(|source| MigrationError { what, source })?;
    }
    Ok(())
}

/// A migration that did not apply, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("migrating {what}: {source}{}", self.hint())]
pub struct MigrationError {
    what: &'static str,
    #[source]
    source: MigrateError,
}

impl MigrationError {
    /// True when the database went away mid-way: a later attempt can work.
    /// Anything else (a history that does not match the code, a statement
    /// that fails) fails the same way every time.
    pub fn is_transient(&self) -> bool {
        match &self.source {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
                super::is_unavailable(e)
            }
            _ => false,
        }
    }

    fn hint(&self) -> &'static str {
        match self.source {
            MigrateError::VersionMismatch(_)
            | MigrateError::VersionMissing(_)
            | MigrateError::VersionNotPresent(_) => {
                " (the database was migrated by another version of the schema and \
                 cannot be upgraded in place; see docs/operations.md, upgrading)"
            }
            _ => "",
        }
    }
}
