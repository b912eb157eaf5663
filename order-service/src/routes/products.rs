use axum::{
    Json,
    extract::{Path, State},
};

use super::AppState;
use crate::{db, domain::pricing::Product, error::ApiError};

pub async fn list_products(State(state): State<AppState>) -> Result<Json<Vec<Product>>, ApiError> {
    Ok(Json(db::products::list_products(&state.pool).await?))
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
    db::products::find_product(&state.pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no product {id}")))
}
