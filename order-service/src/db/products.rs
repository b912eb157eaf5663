//! The catalog.

use std::collections::HashMap;

use sqlx::PgPool;

use crate::domain::pricing::Product;

pub async fn list_products(pool: &PgPool) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as("SELECT id, name, description, price, currency FROM products ORDER BY id")
        .fetch_all(pool)
        .await
}

pub async fn find_product(pool: &PgPool, id: i64) -> sqlx::Result<Option<Product>> {
    sqlx::query_as("SELECT id, name, description, price, currency FROM products WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The products among `ids` that exist, by id.
pub async fn find_products(pool: &PgPool, ids: &[i64]) -> sqlx::Result<HashMap<i64, Product>> {
    let products: Vec<Product> = sqlx::query_as(
        "SELECT id, name, description, price, currency FROM products WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(products.into_iter().map(|p| (p.id, p)).collect())
}
