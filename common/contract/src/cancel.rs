//! The cancel request (`POST /api/orders/{id}/cancel`), read as strictly as
//! a checkout ([`crate::checkout`]): the gateway refuses a bad body before
//! any network hop, and order-service checks it again.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    checkout::{CheckoutError, json::Json, positive_int, reject_unknown_fields},
    problem::FieldError,
};

/// Who asks to cancel. There is no authentication yet: an order whose
/// `user_id` differs answers `404`, as if it did not exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": 1}))]
pub struct CancelRequest {
    #[schema(minimum = 1, example = 1)]
    pub user_id: i64,
}

/// Reads and validates a cancel body: `400` when it is not JSON, `422`
/// with every invalid field otherwise.
pub fn parse_cancel(body: &[u8]) -> Result<CancelRequest, CheckoutError> {
    let document = Json::parse(body)?;
    let Some(object) = document.as_object() else {
        return Err(CheckoutError::Invalid(vec![FieldError::new(
            "",
            "the body must be a JSON object",
        )]));
    };
    let mut errors = Vec::new();
    reject_unknown_fields(object, &["user_id"], "", &mut errors);
    let user_id = positive_int(object.get("user_id"), "user_id", i64::MAX, &mut errors);
    match user_id {
        Some(user_id) if errors.is_empty() => Ok(CancelRequest { user_id }),
        _ => Err(CheckoutError::Invalid(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Vec<String> {
        match parse_cancel(body.as_bytes()) {
            Err(CheckoutError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_positive_user_id_is_all_it_takes() {
        assert_eq!(
            parse_cancel(br#"{"user_id": 7}"#).unwrap(),
            CancelRequest { user_id: 7 }
        );
    }

    #[test]
    fn bad_bodies_name_their_fields() {
        assert_eq!(fields(r#"{}"#), vec!["user_id"]);
        assert_eq!(fields(r#"{"user_id": 0}"#), vec!["user_id"]);
        assert_eq!(fields(r#"{"user_id": "7"}"#), vec!["user_id"]);
        assert_eq!(fields(r#"{"user_id": 7, "reason": "x"}"#), vec!["reason"]);
        assert_eq!(fields("[1]"), vec![""]);
        assert!(matches!(
            parse_cancel(b"{nope"),
            Err(CheckoutError::Malformed(_))
        ));
        assert!(matches!(
            parse_cancel(br#"{"user_id": 1, "user_id": 2}"#),
            Err(CheckoutError::Malformed(_))
        ));
    }
}
