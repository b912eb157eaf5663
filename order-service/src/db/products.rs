//! The catalog table (read into memory by [`crate::catalog`]).

use sqlx::PgPool;

use crate::domain::pricing::Product;

pub async fn list_products(pool: &PgPool) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as("SELECT id, name, description, price, currency FROM products ORDER BY id")
        .fetch_all(pool)
        .await
}
