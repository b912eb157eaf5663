//! A line's optional `price`: what clients may send, and how it is read.

use std::str::FromStr;

use rust_decimal::Decimal;
use utoipa::openapi::{
    RefOr, Schema,
    schema::{ObjectBuilder, OneOfBuilder, Type},
};

use super::json::{Json, Number};
use crate::problem::FieldError;

/// A price as clients may send it: a decimal string with at most two
/// decimals, or a non-negative JSON number; `null` is the same as absent.
pub(super) fn price_schema() -> impl Into<RefOr<Schema>> {
    let string = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(PRICE_PATTERN))
        .examples(["1299.99"]);
    let number = ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(0.0));
    let null = ObjectBuilder::new().schema_type(Type::Null);
    OneOfBuilder::new().item(string).item(number).item(null)
}

/// What a price string must look like: digits, optionally a point and one or
/// two more digits. Nothing else (no sign, spaces or exponent).
const PRICE_PATTERN: &str = r"^[0-9]{1,15}(\.[0-9]{1,2})?$";

/// `Ok(None)` when absent; a string matching [`PRICE_PATTERN`], or a number
/// that, exactly as written, is a non-negative amount with at most two
/// decimals.
pub(super) fn price(
    value: Option<&Json>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Result<Option<Decimal>, ()> {
    let checked = match value {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::String(s)) if is_price_string(s) => {
            Decimal::from_str(s).map_err(|_| "must be a decimal amount such as \"1299.99\"")
        }
        Some(Json::String(_)) => Err("must be a decimal amount such as \"1299.99\""),
        Some(Json::Number(n)) => number_price(n),
        Some(_) => Err("must be a decimal string or a number"),
    };
    checked.map(Some).map_err(|message| {
        errors.push(FieldError::new(field, message));
    })
}

/// A price written as a JSON number, judged by its text rather than by a
/// rounded value: `1299.9900000000001` has thirteen decimals, `-0` is
/// negative. An exponent is fine where the value still has at most two
/// decimals (`1.5e1` is 15).
fn number_price(n: &Number) -> Result<Decimal, &'static str> {
    let text = n.as_str();
    if text.starts_with('-') {
        return Err("must not be negative");
    }
    // JSON's grammar: digits, optionally `.` and digits, optionally `e`, an
    // optional sign and digits.
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().ok()),
        None => (text, Some(0)),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let fraction = fraction.trim_end_matches('0');
    let digits = format!("{whole}{fraction}");
    let mut significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(Decimal::ZERO);
    }
    // The value is `significant` × 10^-decimals.
    let Some(mut decimals) = exponent.map(|e| fraction.len() as i64 - e) else {
        return Err(if text.contains("e-") || text.contains("E-") {
            "must have at most two decimals"
        } else {
            "is too large"
        });
    };
    // `1000e-3` is 1.
    while decimals > 2
        && let Some(shorter) = significant.strip_suffix('0')
    {
        significant = shorter;
        decimals -= 1;
    }
    if decimals > 2 {
        return Err("must have at most two decimals");
    }
    // At most 15 whole digits, as for a price string.
    if significant.len() as i64 - decimals > 15 {
        return Err("is too large");
    }
    let mantissa: i128 = significant.parse().map_err(|_| "is too large")?;
    Ok(if decimals >= 0 {
        Decimal::from_i128_with_scale(mantissa, decimals as u32)
    } else {
        Decimal::from_i128_with_scale(mantissa * 10_i128.pow(decimals.unsigned_abs() as u32), 0)
    })
}

/// [`PRICE_PATTERN`] without a regex engine: 1–15 digits, then optionally a
/// point and 1–2 digits.
fn is_price_string(s: &str) -> bool {
    let (whole, fraction) = match s.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (s, None),
    };
    let digits = |part: &str, max: usize| {
        (1..=max).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    digits(whole, 15) && fraction.is_none_or(|f| digits(f, 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkout::{CheckoutError, CheckoutRequest, parse_checkout};

    /// The seed body with its price written as `price` (JSON text).
    fn with_price(price: &str) -> Result<CheckoutRequest, CheckoutError> {
        let body = format!(
            r#"{{"user_id": 1, "user_email": "test@example.com",
                "items": [{{"product_id": 1, "quantity": 1, "price": {price}}}]}}"#
        );
        parse_checkout(body.as_bytes())
    }

    fn price_error(price: &str) -> String {
        match with_price(price) {
            Err(CheckoutError::Invalid(errors)) => {
                assert_eq!(errors.len(), 1, "{price}: {errors:?}");
                assert_eq!(errors[0].field, "items[0].price");
                errors[0].message.clone()
            }
            other => panic!("{price}: {other:?}"),
        }
    }

    #[test]
    fn number_prices_are_judged_exactly_as_written() {
        assert_eq!(
            price_error("1299.9900000000001"),
            "must have at most two decimals"
        );
        assert_eq!(price_error("1e-400"), "must have at most two decimals");
        assert_eq!(price_error("0.001"), "must have at most two decimals");
        assert_eq!(price_error("-0"), "must not be negative");
        assert_eq!(price_error("-1e-400"), "must not be negative");
        assert_eq!(price_error("-0.0"), "must not be negative");
        assert_eq!(price_error("1e15"), "is too large");
        assert_eq!(price_error("1e999999999999999999999"), "is too large");
        for (written, expected) in [
            ("1299.99", "1299.99"),
            ("1299.990000", "1299.99"),
            ("1.5e1", "15"),
            ("1000e-3", "1"),
            ("12E-1", "1.2"),
            ("0", "0"),
            ("0e-400", "0"),
            ("999999999999999.99", "999999999999999.99"),
        ] {
            let request = with_price(written).unwrap_or_else(|e| panic!("{written}: {e:?}"));
            assert_eq!(
                request.items[0].price,
                Some(Decimal::from_str(expected).unwrap()),
                "{written}"
            );
        }
    }
}
