//! The catalog table (read into memory by the `catalog` module).

use rust_decimal::Decimal;
use sqlx::PgPool;

use crate::domain::pricing::Product;

pub async fn list_products(pool: &PgPool) -> sqlx::Result<Vec<Product>> {
    let rows: Vec<(i64, String, String, Decimal, String)> =
        sqlx::query_as("SELECT id, name, description, price, currency FROM products ORDER BY id")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, description, price, currency)| Product {
            id,
            name,
            description,
            price,
            currency,
            stock: None,
        })
        .collect())
}
