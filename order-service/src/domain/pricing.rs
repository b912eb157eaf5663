//! Pricing: a validated checkout plus the catalog gives a priced order, or
//! says why not. Pure: no I/O, so every rule is unit-tested.
//!
//! Never trust the client: unit prices and names come from the catalog; a
//! price the client sent is only compared (a mismatch means the client showed
//! a stale price, answered 409 with the current prices). Money is
//! `rust_decimal` (exact), and every sum is checked.

use std::collections::HashMap;

use contract::{checkout::CheckoutRequest, problem::FieldError};
use rust_decimal::Decimal;

pub use contract::api::Product;

/// An order line priced from the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct PricedLine {
    pub product_id: i64,
    pub name: String,
    pub unit_price: Decimal,
    pub quantity: i32,
    pub line_total: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PricedOrder {
    pub currency: String,
    pub total: Decimal,
    pub lines: Vec<PricedLine>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PricingError {
    /// 422: some product ids are not in the catalog.
    #[error("unknown products")]
    UnknownProducts(Vec<FieldError>),
    /// 409: the client's price differs from the catalog's.
    #[error("prices changed")]
    PriceChanged {
        errors: Vec<FieldError>,
        current_prices: Vec<(i64, Decimal)>,
    },
    /// 422: the catalog prices these products in different currencies.
    #[error("items are priced in different currencies")]
    MixedCurrencies,
    /// 422: the total does not fit the money type.
    #[error("order total too large")]
    TotalTooLarge,
}

/// Prices `request` from `catalog` (which holds at least its products).
pub fn price_order(
    request: &CheckoutRequest,
    catalog: &HashMap<i64, Product>,
) -> Result<PricedOrder, PricingError> {
    let mut unknown = Vec::new();
    let mut changed = Vec::new();
    let mut current_prices = Vec::new();
    let mut lines = Vec::with_capacity(request.items.len());
    for (i, item) in request.items.iter().enumerate() {
        let Some(product) = catalog.get(&item.product_id) else {
            unknown.push(FieldError::new(
                format!("items[{i}].product_id"),
                "no such product in the catalog",
            ));
            continue;
        };
        if let Some(client_price) = item.price
            && client_price != product.price
        {
            changed.push(FieldError::new(
                format!("items[{i}].price"),
                format!("the current price is {}", product.price),
            ));
            current_prices.push((product.id, product.price));
        }
        let line_total = product
            .price
            .checked_mul(Decimal::from(item.quantity))
            .ok_or(PricingError::TotalTooLarge)?;
        lines.push(PricedLine {
            product_id: product.id,
            name: product.name.clone(),
            unit_price: product.price,
            quantity: item.quantity,
            line_total,
        });
    }
    if !unknown.is_empty() {
        return Err(PricingError::UnknownProducts(unknown));
    }
    if !changed.is_empty() {
        return Err(PricingError::PriceChanged {
            errors: changed,
            current_prices,
        });
    }
    let currency = catalog[&request.items[0].product_id].currency.clone();
    if request
        .items
        .iter()
        .any(|i| catalog[&i.product_id].currency != currency)
    {
        return Err(PricingError::MixedCurrencies);
    }
    let total = lines
        .iter()
        .try_fold(Decimal::ZERO, |sum, line| sum.checked_add(line.line_total))
        .ok_or(PricingError::TotalTooLarge)?;
    // numeric(12, 2) holds at most 9_999_999_999.99.
    if total >= Decimal::from(10_000_000_000_i64) {
        return Err(PricingError::TotalTooLarge);
    }
    Ok(PricedOrder {
        currency,
        total,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::checkout::CheckoutItem;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn catalog() -> HashMap<i64, Product> {
        [
            (1, "Gaming Laptop", "1299.99", "USD"),
            (2, "Wireless Mouse", "49.99", "USD"),
            (9, "Euro Thing", "5.00", "EUR"),
        ]
        .into_iter()
        .map(|(id, name, price, currency)| {
            (
                id,
                Product {
                    id,
                    name: name.into(),
                    description: String::new(),
                    price: dec(price),
                    currency: currency.into(),
                    stock: None,
                },
            )
        })
        .collect()
    }

    fn request(items: &[(i64, i32, Option<&str>)]) -> CheckoutRequest {
        CheckoutRequest {
            user_id: 1,
            user_email: "test@example.com".into(),
            items: items
                .iter()
                .map(|(product_id, quantity, price)| CheckoutItem {
                    product_id: *product_id,
                    quantity: *quantity,
                    price: price.map(dec),
                })
                .collect(),
        }
    }

    #[test]
    fn lines_and_total_come_from_the_catalog() {
        let priced = price_order(
            &request(&[(1, 2, Some("1299.99")), (2, 3, None)]),
            &catalog(),
        )
        .unwrap();
        assert_eq!(priced.total, dec("2749.95"));
        assert_eq!(priced.currency, "USD");
        assert_eq!(priced.lines[0].name, "Gaming Laptop");
        assert_eq!(priced.lines[0].line_total, dec("2599.98"));
        assert_eq!(priced.lines[1].line_total, dec("149.97"));
    }

    #[test]
    fn an_equal_price_written_differently_is_accepted() {
        assert!(price_order(&request(&[(1, 1, Some("1299.990"))]), &catalog()).is_ok());
    }

    #[test]
    fn a_tampered_price_is_a_conflict_naming_the_current_price() {
        let Err(PricingError::PriceChanged {
            errors,
            current_prices,
        }) = price_order(&request(&[(2, 1, None), (1, 1, Some("0.01"))]), &catalog())
        else {
            panic!("expected a price conflict");
        };
        assert_eq!(errors[0].field, "items[1].price");
        assert!(errors[0].message.contains("1299.99"));
        assert_eq!(current_prices, vec![(1, dec("1299.99"))]);
    }

    #[test]
    fn unknown_products_are_named() {
        let Err(PricingError::UnknownProducts(errors)) =
            price_order(&request(&[(1, 1, None), (404, 1, None)]), &catalog())
        else {
            panic!("expected unknown products");
        };
        assert_eq!(
            errors,
            vec![FieldError::new(
                "items[1].product_id",
                "no such product in the catalog"
            )]
        );
    }

    #[test]
    fn mixed_currencies_are_refused() {
        assert_eq!(
            price_order(&request(&[(1, 1, None), (9, 1, None)]), &catalog()),
            Err(PricingError::MixedCurrencies)
        );
    }
}
