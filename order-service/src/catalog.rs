//! The catalog in memory: read from the `products` table at start and again
//! every [`REFRESH`], so pricing a checkout and answering `GET /products`
//! cost no database round trip. The table stays the source of truth: a price
//! changed there reaches checkouts within [`REFRESH`] (until then a client
//! sending the new price gets `409` with the one still in memory, never a
//! wrong charge: the order records the price it was priced at). A refresh
//! that fails (database down) keeps the last good catalog.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{db, domain::pricing::Product};

/// How often the catalog is read again.
pub const REFRESH: Duration = Duration::from_secs(30);

/// One reading of the table: products by id, and the listing in id order.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub by_id: HashMap<i64, Product>,
    pub listing: Vec<Product>,
}

/// The current snapshot, shared by every request; cheap to clone.
#[derive(Clone, Default)]
pub struct Catalog {
    current: Arc<RwLock<Arc<Snapshot>>>,
}

impl Catalog {
    /// Reads the table once; an error means the database is not usable.
    pub async fn load(pool: &PgPool) -> sqlx::Result<Self> {
        let catalog = Self::default();
        catalog.refresh(pool).await?;
        Ok(catalog)
    }

    /// The catalog as last read (a lock held only to clone an `Arc`).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("catalog lock poisoned").clone()
    }

    /// Reads the table again; on an error the last snapshot stays.
    pub async fn refresh(&self, pool: &PgPool) -> sqlx::Result<()> {
        let listing = db::products::list_products(pool).await?;
        let by_id = listing.iter().map(|p| (p.id, p.clone())).collect();
        *self.current.write().expect("catalog lock poisoned") =
            Arc::new(Snapshot { by_id, listing });
        Ok(())
    }

    /// Reads the table every [`REFRESH`] until `stop`.
    pub async fn keep_fresh(self, pool: PgPool, stop: CancellationToken) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(REFRESH) => {}
            }
            if let Err(error) = self.refresh(&pool).await {
                tracing::warn!(%error, "cannot refresh the catalog; keeping the last one read");
            }
        }
    }
}
