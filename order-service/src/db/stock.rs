//! Stock: taking a checkout's units when its order is stored, giving them
//! back, and the operator's view of it.
//!
//! A product with `stock IS NULL` is not tracked. A tracked product's row is
//! locked (`FOR UPDATE`) by whatever stores orders for it, until that
//! transaction commits, so concurrent checkouts take its units one after the
//! other and can never sell more than there is. Every checkout of the
//! product waits for the one before it, which is why checkouts arriving
//! together share one statement ([`InsertOrders`]), and why that statement
//! is its own transaction whenever the stock covers them all.

use std::collections::{BTreeMap, HashMap, HashSet};

use messaging::db::batch::BatchStatement;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::orders::{OrderWrite, insert_orders_if_stocked};

/// Too few units of some products for a checkout: the units available of
/// each of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub available: BTreeMap<i64, i64>,
}

/// Stores the orders whose tracked products have the units, in the order
/// given, and takes those units; an order that does not fit gets its
/// [`Shortage`] and is not stored. Runs in `tx`, which must commit for any
/// of it to count; the tracked products' rows stay locked until then.
pub async fn store_orders(
    tx: &mut PgConnection,
    writes: &[OrderWrite],
) -> sqlx::Result<Vec<Result<(), Shortage>>> {
    let products: Vec<i64> = writes
        .iter()
        .flat_map(|w| w.order.priced.lines.iter().map(|l| l.product_id))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // In id order, so two transactions lock the same rows in the same order.
    let levels: HashMap<i64, i64> = sqlx::query_as(
        "SELECT id, stock FROM products WHERE id = ANY($1) AND stock IS NOT NULL \
         ORDER BY id FOR UPDATE",
    )
    .bind(&products)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();

    let outcomes = allocate(writes, &levels);
    let accepted: Vec<&OrderWrite> = writes
        .iter()
        .zip(&outcomes)
        .filter_map(|(w, o)| o.is_ok().then_some(w))
        .collect();
    if !accepted.is_empty() && !insert_orders_if_stocked(&mut *tx, &accepted).await? {
        // The rows are locked by this transaction since they were read.
        return Err(sqlx::Error::Protocol(
            "the stock of a locked product changed under its lock".into(),
        ));
    }
    Ok(outcomes)
}

/// Which orders the stock `levels` (tracked products only) covers, first
/// come first served.
fn allocate(writes: &[OrderWrite], levels: &HashMap<i64, i64>) -> Vec<Result<(), Shortage>> {
    let mut left = levels.clone();
    writes
        .iter()
        .map(|write| {
            let lines = &write.order.priced.lines;
            let available: BTreeMap<i64, i64> = lines
                .iter()
                .filter_map(|l| {
                    let units = *left.get(&l.product_id)?;
                    (units < i64::from(l.quantity)).then_some((l.product_id, units))
                })
                .collect();
            if !available.is_empty() {
                return Err(Shortage { available });
            }
            for line in lines {
                if let Some(units) = left.get_mut(&line.product_id) {
                    *units -= i64::from(line.quantity);
                }
            }
            Ok(())
        })
        .collect()
}

/// Gives back the units the orders' lines took (`order_items.reserved`).
/// The caller changes the orders' status in the same transaction, so units
/// are given back once per order.
pub async fn release(conn: impl PgExecutor<'_>, order_ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE products SET stock = products.stock + r.units \
         FROM (SELECT product_id, sum(quantity)::bigint AS units FROM order_items \
               WHERE order_id = ANY($1) AND reserved GROUP BY product_id) AS r \
         WHERE products.id = r.product_id AND products.stock IS NOT NULL",
    )
    .bind(order_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// The live stock of every tracked product, by id (the catalog in memory
/// holds prices, not stock).
pub async fn levels(conn: impl PgExecutor<'_>) -> sqlx::Result<HashMap<i64, i64>> {
    sqlx::query_as("SELECT id, stock FROM products WHERE stock IS NOT NULL")
        .fetch_all(conn)
        .await
        .map(|rows| rows.into_iter().collect())
}

/// The checkouts in flight together (`messaging::db::batch`) stored in one
/// statement, which is its own transaction, and so one wait for a tracked
/// product's row lock and one commit. Only when the stock does not cover
/// them all are they served in turn ([`store_orders`]).
pub struct InsertOrders;

#[async_trait::async_trait]
impl BatchStatement for InsertOrders {
    type Item = OrderWrite;
    type Output = Result<(), Shortage>;
    type Key = Uuid;
    const NAME: &'static str = "insert_orders";
    /// Checkouts wait on their commit with nothing else to do, so more
    /// statements in flight let PostgreSQL flush their commits together.
    /// The consumers' statements keep 2 (`docs/performance.md`, "Group
    /// commit", has the runs that chose both).
    const WORKERS: usize = 4;

    fn keys(write: &OrderWrite) -> Vec<Uuid> {
        vec![write.order.id]
    }

    async fn run(
        &self,
        pool: &PgPool,
        writes: &[OrderWrite],
    ) -> sqlx::Result<Vec<Result<(), Shortage>>> {
        let all: Vec<&OrderWrite> = writes.iter().collect();
        if insert_orders_if_stocked(pool, &all).await? {
            return Ok(vec![Ok(()); writes.len()]);
        }
        let mut tx = pool.begin().await?;
        let outcomes = store_orders(&mut tx, writes).await?;
        tx.commit().await?;
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::orders::tests::write_of;

    #[test]
    fn orders_are_served_in_turn_and_a_short_one_takes_nothing() {
        let writes = [
            write_of(&[(1, 3)]),
            write_of(&[(1, 2), (2, 5)]),
            write_of(&[(1, 1), (3, 100)]),
            write_of(&[(2, 1)]),
        ];
        let levels = HashMap::from([(1, 4), (2, 5)]);
        let outcomes = allocate(&writes, &levels);
        assert_eq!(outcomes[0], Ok(()));
        assert_eq!(
            outcomes[1],
            Err(Shortage {
                available: BTreeMap::from([(1, 1)])
            })
        );
        // Product 3 is not tracked: any quantity.
        assert_eq!(outcomes[2], Ok(()));
        assert_eq!(outcomes[3], Ok(()));
    }
}
