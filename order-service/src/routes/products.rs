//! The catalog, answered from memory ([`crate::catalog`]).

use axum::{
    Json,
    extract::{Path, State},
};

use super::AppState;
use crate::{domain::pricing::Product, error::ApiError};

pub async fn list_products(State(state): State<AppState>) -> Json<Vec<Product>> {
    Json(state.catalog.snapshot().listing.clone())
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
    state
        .catalog
        .snapshot()
        .by_id
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no product {id}")))
}
