//! The catalog held in memory follows the products table.

use rust_decimal::Decimal;

use crate::helpers::TestApp;
use order_service::catalog::Catalog;

#[tokio::test]
async fn a_price_changed_in_the_table_is_used_after_a_refresh_and_a_failed_refresh_keeps_the_last_one()
 {
    // Arrange
    let app = TestApp::spawn().await;
    let catalog = Catalog::load(&app.pool).await.unwrap();
    let laptop = |c: &Catalog| c.snapshot().by_id[&1].price;
    assert_eq!(laptop(&catalog), Decimal::new(129_999, 2));

    // Act: the price changes, and the catalog is read again.
    sqlx::query("UPDATE products SET price = 1199.99 WHERE id = 1")
        .execute(&app.pool)
        .await
        .unwrap();
    catalog.refresh(&app.pool).await.unwrap();

    // Assert
    assert_eq!(laptop(&catalog), Decimal::new(119_999, 2));
    assert_eq!(catalog.snapshot().listing.len(), 7);

    // A database that cannot be reached leaves the last reading in place.
    let unreachable = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect_lazy("postgres://postgres@127.0.0.1:1/order_db")
        .unwrap();
    assert!(catalog.refresh(&unreachable).await.is_err());
    assert_eq!(laptop(&catalog), Decimal::new(119_999, 2));
    app.stop().await;
}
