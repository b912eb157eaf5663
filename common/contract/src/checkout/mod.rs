//! The checkout request and its validation, shared by the gateway (which
//! rejects bad input before any network hop) and order-service (which never
//! trusts its caller either).
//!
//! Parse, don't validate: [`parse_checkout`] turns an untrusted body into a
//! [`CheckoutRequest`] whose fields are known good, or into the full list of
//! field errors. It reads the body as a [`json::Json`] document so every
//! field gets its own clear message (`quantity` given as `1.5`, `"2"` or
//! `1e20` is "must be an integer", not a generic deserialisation error), a
//! key given twice is refused, and a price given as a number is checked
//! exactly as it is written.

mod email;
pub mod json;
mod price;

use std::collections::HashSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use self::email::check_email;
use self::{
    email::email,
    json::{Json, JsonError, Object},
    price::{price, price_schema},
};
use crate::problem::FieldError;

pub const MAX_ITEMS: usize = 50;
pub const MAX_QUANTITY: i64 = 100;
pub const MAX_EMAIL_LEN: usize = 254;

/// A checkout whose every field passed validation. Its OpenAPI schema states
/// the same rules as [`parse_checkout`] (the gateway's document and its
/// fuzz tests rely on that): unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": 1, "user_email": "test@example.com",
    "items": [{"product_id": 1, "quantity": 1, "price": "1299.99"}]}))]
pub struct CheckoutRequest {
    #[schema(minimum = 1, example = 1)]
    pub user_id: i64,
    /// Where the confirmation email goes: a plain `name@example.com` address
    /// (no quoted local parts, IP literals or spaces).
    #[schema(max_length = 254, format = Email, example = "test@example.com")]
    pub user_email: String,
    /// One line per product (a product listed twice is refused).
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<CheckoutItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutItem {
    #[schema(minimum = 1, example = 1)]
    pub product_id: i64,
    #[schema(minimum = 1, maximum = 100, example = 1)]
    pub quantity: i32,
    /// The unit price the client showed; when present it must equal the
    /// catalog price (else `409` with the current prices). Prices, totals
    /// and currency are always the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = price_schema)]
    pub price: Option<Decimal>,
}

/// Why a checkout body was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// `400`: not a JSON document this service reads (malformed, a key
    /// given twice, nested too deep).
    #[error(transparent)]
    Malformed(#[from] JsonError),
    /// `422`: a document whose fields are invalid, each listed.
    #[error("invalid checkout request")]
    Invalid(Vec<FieldError>),
}

/// Reads and validates a checkout body.
pub fn parse_checkout(body: &[u8]) -> Result<CheckoutRequest, CheckoutError> {
    let document = Json::parse(body)?;
    validate(&document).map_err(CheckoutError::Invalid)
}

/// Validates a checkout document; duplicate `product_id` lines are rejected
/// (the client should send one line per product with its quantity).
fn validate(body: &Json) -> Result<CheckoutRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(object) = body.as_object() else {
        return Err(vec![FieldError::new("", "the body must be a JSON object")]);
    };
    reject_unknown_fields(object, &["user_id", "user_email", "items"], "", &mut errors);

    let user_id = positive_int(object.get("user_id"), "user_id", i64::MAX, &mut errors);
    let user_email = email(object.get("user_email"), "user_email", &mut errors);
    let items = items(object.get("items"), &mut errors);

    match (user_id, user_email, items) {
        (Some(user_id), Some(user_email), Some(items)) if errors.is_empty() => {
            Ok(CheckoutRequest {
                user_id,
                user_email,
                items,
            })
        }
        _ => Err(errors),
    }
}

pub(crate) fn reject_unknown_fields(
    object: &Object,
    known: &[&str],
    prefix: &str,
    errors: &mut Vec<FieldError>,
) {
    for key in object.keys().filter(|k| !known.contains(k)) {
        let shown: String = key.chars().take(64).collect();
        errors.push(FieldError::new(format!("{prefix}{shown}"), "unknown field"));
    }
}

pub(crate) fn positive_int(
    value: Option<&Json>,
    field: &str,
    max: i64,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    let message = match value {
        None | Some(Json::Null) => "is required".to_owned(),
        Some(Json::Number(n)) => match n.as_i64() {
            Some(v) if (1..=max).contains(&v) => return Some(v),
            Some(_) if max == i64::MAX => "must be a positive integer".to_owned(),
            Some(_) => format!("must be an integer from 1 to {max}"),
            None if n.is_big_integer() => format!("must be at most {max}"),
            None => "must be an integer".to_owned(),
        },
        Some(_) => "must be an integer".to_owned(),
    };
    errors.push(FieldError::new(field, message));
    None
}

fn items(value: Option<&Json>, errors: &mut Vec<FieldError>) -> Option<Vec<CheckoutItem>> {
    let list = match value {
        None | Some(Json::Null) => {
            errors.push(FieldError::new("items", "is required"));
            return None;
        }
        Some(Json::Array(list)) => list,
        Some(_) => {
            errors.push(FieldError::new("items", "must be an array"));
            return None;
        }
    };
    if list.is_empty() || list.len() > MAX_ITEMS {
        errors.push(FieldError::new(
            "items",
            format!("must hold 1 to {MAX_ITEMS} entries"),
        ));
        return None;
    }
    let mut seen = HashSet::new();
    let mut parsed = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let prefix = format!("items[{i}].");
        let Some(object) = entry.as_object() else {
            errors.push(FieldError::new(format!("items[{i}]"), "must be an object"));
            continue;
        };
        reject_unknown_fields(
            object,
            &["product_id", "quantity", "price"],
            &prefix,
            errors,
        );
        let product_id = positive_int(
            object.get("product_id"),
            &format!("{prefix}product_id"),
            i64::MAX,
            errors,
        );
        let quantity = positive_int(
            object.get("quantity"),
            &format!("{prefix}quantity"),
            MAX_QUANTITY,
            errors,
        );
        let price = price(object.get("price"), &format!("{prefix}price"), errors);
        if let Some(id) = product_id
            && !seen.insert(id)
        {
            errors.push(FieldError::new(
                format!("{prefix}product_id"),
                "appears twice; send one line per product",
            ));
        }
        if let (Some(product_id), Some(quantity), Ok(price)) = (product_id, quantity, price) {
            let quantity = i32::try_from(quantity).expect("bounded by MAX_QUANTITY");
            parsed.push(CheckoutItem {
                product_id,
                quantity,
                price,
            });
        }
    }
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use serde_json::{Value, json};

    use super::*;

    fn seed_body() -> Value {
        json!({"user_id": 1, "user_email": "test@example.com",
               "items": [{"product_id": 1, "quantity": 1, "price": "1299.99"}]})
    }

    fn parse(body: &Value) -> Result<CheckoutRequest, Vec<FieldError>> {
        match parse_checkout(body.to_string().as_bytes()) {
            Ok(request) => Ok(request),
            Err(CheckoutError::Invalid(errors)) => Err(errors),
            Err(other) => panic!("{body}: {other}"),
        }
    }

    fn fields(body: Value) -> Vec<String> {
        parse(&body)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn the_seed_checkout_body_is_valid() {
        let request = parse(&seed_body()).unwrap();
        assert_eq!(request.user_id, 1);
        assert_eq!(
            request.items[0].price,
            Some(Decimal::from_str("1299.99").unwrap())
        );
    }

    #[test]
    fn price_is_optional_and_may_be_a_number() {
        let mut body = seed_body();
        body["items"][0]["price"] = json!(1299.99);
        assert_eq!(
            parse(&body).unwrap().items[0].price,
            Some(Decimal::from_str("1299.99").unwrap())
        );
        body["items"][0].as_object_mut().unwrap().remove("price");
        assert_eq!(parse(&body).unwrap().items[0].price, None);
    }

    #[test]
    fn quantities_that_are_not_small_positive_integers_are_rejected() {
        for bad in [
            json!(-1),
            json!(0),
            json!(1.5),
            json!("2"),
            json!(1e20),
            json!(101),
            json!(9223372036854775808u64),
        ] {
            let mut body = seed_body();
            body["items"][0]["quantity"] = bad.clone();
            assert_eq!(fields(body), vec!["items[0].quantity"], "quantity {bad}");
        }
    }

    #[test]
    fn user_id_must_be_a_positive_integer() {
        for bad in [json!(0), json!(-5), json!("1"), json!(1.0), json!(null)] {
            let mut body = seed_body();
            body["user_id"] = bad.clone();
            assert_eq!(fields(body), vec!["user_id"], "user_id {bad}");
        }
    }

    #[test]
    fn items_must_hold_one_to_fifty_distinct_products() {
        let mut body = seed_body();
        body["items"] = json!([]);
        assert_eq!(fields(body.clone()), vec!["items"]);
        body["items"] = Value::Array(
            (1..=51)
                .map(|i| json!({"product_id": i, "quantity": 1}))
                .collect(),
        );
        assert_eq!(fields(body.clone()), vec!["items"]);
        body["items"] = json!([{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]);
        assert_eq!(fields(body), vec!["items[1].product_id"]);
    }

    #[test]
    fn client_supplied_totals_and_statuses_are_unknown_fields() {
        let mut body = seed_body();
        body["total_amount"] = json!("0.01");
        body["status"] = json!("paid");
        body["items"][0]["unit_price"] = json!("0.01");
        let mut got = fields(body);
        got.sort();
        assert_eq!(got, vec!["items[0].unit_price", "status", "total_amount"]);
    }

    #[test]
    fn bad_prices_are_rejected() {
        // Strings exactly as the OpenAPI pattern says: no sign, spaces,
        // exponent or third decimal (the schema's fuzz tests send these).
        for bad in [
            json!("-1"),
            json!("+1.5"),
            json!(" 1.50"),
            json!("1e3"),
            json!("1."),
            json!(".5"),
            json!("abc"),
            json!("1.999"),
            json!(-0.5),
            json!(1.999),
            json!(true),
        ] {
            let mut body = seed_body();
            body["items"][0]["price"] = bad.clone();
            assert_eq!(fields(body), vec!["items[0].price"], "price {bad}");
        }
    }

    #[test]
    fn good_price_spellings_are_accepted() {
        for (good, expected) in [
            (json!("1299.99"), "1299.99"),
            (json!("0"), "0"),
            (json!("7.5"), "7.5"),
            (json!(1299.99), "1299.99"),
            (json!(12), "12"),
        ] {
            let mut body = seed_body();
            body["items"][0]["price"] = good.clone();
            let parsed = parse(&body).unwrap_or_else(|e| panic!("{good}: {e:?}"));
            assert_eq!(
                parsed.items[0].price,
                Some(Decimal::from_str(expected).unwrap()),
                "{good}"
            );
        }
    }

    #[test]
    fn a_key_given_twice_makes_the_body_malformed() {
        let body = br#"{"user_id": 1, "user_email": "good@example.com",
            "user_email": "evil@example.com",
            "items": [{"product_id": 1, "quantity": 1}]}"#;
        let error = parse_checkout(body).unwrap_err();
        assert!(
            matches!(&error, CheckoutError::Malformed(JsonError::RepeatedKey(k)) if k == "user_email"),
            "{error:?}"
        );
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let got = fields(json!({"user_id": -1, "user_email": "nope", "items": "x"}));
        assert_eq!(got, vec!["user_id", "user_email", "items"]);
        assert_eq!(fields(json!([1, 2])), vec![""]);
    }
}
