//! The catalog, answered from memory ([`crate::catalog`]), with each
//! tracked product's stock read live (one small query: stock changes with
//! every checkout, the catalog only when an operator edits it).

use axum::{
    Json,
    extract::{Path, State},
};

use super::AppState;
use crate::{db::stock, domain::pricing::Product, error::ApiError};

pub async fn list_products(State(state): State<AppState>) -> Result<Json<Vec<Product>>, ApiError> {
    let levels = stock::levels(&state.pool).await?;
    let mut listing = state.catalog.snapshot().listing.clone();
    for product in &mut listing {
        product.stock = levels.get(&product.id).copied();
    }
    Ok(Json(listing))
}

pub async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Product>, ApiError> {
    let id: i64 = id
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest("product id must be a positive integer".into()))?;
    let mut product = state
        .catalog
        .snapshot()
        .by_id
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no product {id}")))?;
    product.stock = stock::levels(&state.pool).await?.get(&id).copied();
    Ok(Json(product))
}
