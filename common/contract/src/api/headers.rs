//! The HTTP facts the gateway and order-service share: the idempotency
//! headers and their rule, where a created order lives, and the largest
//! checkout body.

use http::{HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

/// A client's key for one order attempt: the same key with the same body
/// answers the first answer again.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// `true` on an answer replayed for an `Idempotency-Key` seen before.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The longest `Idempotency-Key` accepted (it is stored and logged).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The largest checkout body accepted (64 KiB: fifty items fit many times).
pub const MAX_CHECKOUT_BODY_BYTES: usize = 64 * 1024;

/// Why an `Idempotency-Key` header was refused (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadIdempotencyKey {
    #[error("send one Idempotency-Key header")]
    Repeated,
    #[error("the Idempotency-Key header must be 1 to 255 visible ASCII characters")]
    Malformed,
}

/// The optional `Idempotency-Key`: at most one header, of 1 to
/// [`MAX_IDEMPOTENCY_KEY_LEN`] visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, BadIdempotencyKey> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadIdempotencyKey::Repeated);
    }
    let bytes = value.as_bytes();
    if (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&bytes.len())
        && bytes.iter().all(u8::is_ascii_graphic)
    {
        // Visible ASCII is valid UTF-8.
        Ok(value.to_str().ok())
    } else {
        Err(BadIdempotencyKey::Malformed)
    }
}

/// `Location` of a created order.
pub fn order_location(id: Uuid) -> HeaderValue {
    HeaderValue::try_from(format!("/api/orders/{id}")).expect("a UUID path is a header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(keys: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for key in keys {
            map.append(IDEMPOTENCY_KEY, HeaderValue::from_str(key).unwrap());
        }
        map
    }

    #[test]
    fn idempotency_keys_must_be_short_visible_ascii_and_single() {
        assert_eq!(idempotency_key(&headers(&[])), Ok(None));
        assert_eq!(
            idempotency_key(&headers(&["order-42"])),
            Ok(Some("order-42"))
        );
        let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN);
        assert_eq!(
            idempotency_key(&headers(&[&longest])),
            Ok(Some(longest.as_str()))
        );
        let long = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
        for bad in [&[""][..], &["has space"], &[long.as_str()]] {
            assert_eq!(
                idempotency_key(&headers(bad)),
                Err(BadIdempotencyKey::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            idempotency_key(&headers(&["a", "b"])),
            Err(BadIdempotencyKey::Repeated)
        );
    }

    #[test]
    fn an_order_lives_under_api_orders() {
        let id = Uuid::nil();
        assert_eq!(order_location(id), format!("/api/orders/{id}"));
    }
}
