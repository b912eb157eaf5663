//! A JSON document read strictly, for request bodies that are checked field
//! by field. Compared with `serde_json::Value` it keeps what a check needs
//! and what a filter in front of the service would see:
//!
//! - a key repeated in one object is an error, not "the last one wins" (a
//!   parser differential: a filter reading the first `user_email` would
//!   pass a body whose mail goes to the second);
//! - a number is kept exactly as written (`1299.9900000000001` is not
//!   rounded to `1299.99`, `-0` keeps its sign);
//! - nesting is limited to [`MAX_DEPTH`] levels.
//!
//! The parsing itself is serde_json's: each value of an array or object is
//! read as raw text first, so a number's text is at hand.

use std::{cell::Cell, fmt};

use serde::{
    Deserializer,
    de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor},
};
use serde_json::value::RawValue;

/// The deepest nesting accepted; a checkout needs three levels.
pub const MAX_DEPTH: usize = 16;

/// A JSON value; an object's members keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Object),
}

/// A JSON number as written in the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Number(String);

impl Number {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as an `i64`, if it is written as an integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    /// Whether it is written as an integer too large for an `i64`.
    pub fn is_big_integer(&self) -> bool {
        !self.0.starts_with('-')
            && self.0.bytes().all(|b| b.is_ascii_digit())
            && self.as_i64().is_none()
    }
}

/// A JSON object with distinct keys, in document order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object(Vec<(String, Json)>);

impl Object {
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

/// Why a body is not a document this module accepts.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("the body is not well-formed JSON")]
    Malformed(#[source] serde_json::Error),
    #[error("the key {0:?} appears twice in one object")]
    RepeatedKey(String),
    #[error("the body nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl Json {
    /// Reads a whole document.
    pub fn parse(bytes: &[u8]) -> Result<Self, JsonError> {
        let broken = Cell::new(None);
        serde_json::from_slice::<&RawValue>(bytes)
            .and_then(|raw| Level::top(&broken).read(raw))
            .map_err(|error| broken.take().unwrap_or(JsonError::Malformed(error)))
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Json::Object(object) => Some(object),
            _ => None,
        }
    }
}

/// Reads one value at nesting level `depth`, noting in `broken` which of
/// this module's rules a document broke (serde only carries a message).
#[derive(Clone, Copy)]
struct Level<'a> {
    depth: usize,
    broken: &'a Cell<Option<JsonError>>,
}

impl<'a> Level<'a> {
    fn top(broken: &'a Cell<Option<JsonError>>) -> Self {
        Self { depth: 0, broken }
    }

    fn read(self, raw: &RawValue) -> serde_json::Result<Json> {
        let text = raw.get();
        if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Ok(Json::Number(Number(text.to_owned())));
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let value = self.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(value)
    }

    fn child<E: de::Error>(self, raw: &RawValue) -> Result<Json, E> {
        if self.depth + 1 >= MAX_DEPTH {
            return Err(self.break_rule(JsonError::TooDeep));
        }
        let child = Level {
            depth: self.depth + 1,
            ..self
        };
        child.read(raw).map_err(E::custom)
    }

    fn break_rule<E: de::Error>(self, rule: JsonError) -> E {
        let error = E::custom(&rule);
        self.broken.set(Some(rule));
        error
    }
}

impl<'de> DeserializeSeed<'de> for Level<'_> {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            items.push(self.child(raw)?);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let raw = map.next_value::<&RawValue>()?;
            members.push((key, self.child(raw)?));
        }
        // Sorted, not compared pairwise: a body may hold thousands of keys.
        let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
            let shown = pair[0].chars().take(64).collect();
            return Err(self.break_rule(JsonError::RepeatedKey(shown)));
        }
        Ok(Json::Object(Object(members)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_text() {
        let doc = Json::parse(br#"{"a": 1299.9900000000001, "b": -0, "c": [1e-400, 7]}"#).unwrap();
        let object = doc.as_object().unwrap();
        let number = |v: &Json| match v {
            Json::Number(n) => n.as_str().to_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(number(object.get("a").unwrap()), "1299.9900000000001");
        assert_eq!(number(object.get("b").unwrap()), "-0");
        let Some(Json::Array(c)) = object.get("c") else {
            panic!("c is an array")
        };
        assert_eq!(c.iter().map(number).collect::<Vec<_>>(), ["1e-400", "7"]);
        assert_eq!(object.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn a_repeated_key_is_an_error_at_any_depth() {
        for doc in [
            r#"{"user_email": "good@example.com", "user_email": "evil@example.com"}"#,
            r#"{"items": [{"quantity": 1, "quantity": 2}]}"#,
        ] {
            let error = Json::parse(doc.as_bytes()).unwrap_err();
            assert!(matches!(error, JsonError::RepeatedKey(_)), "{doc}: {error}");
        }
        assert!(Json::parse(br#"{"a": {"k": 1}, "b": {"k": 2}}"#).is_ok());
        let many: Vec<String> = (0..5000).map(|i| format!("\"k{i}\": {i}")).collect();
        let mut doc = format!("{{{}}}", many.join(","));
        assert!(Json::parse(doc.as_bytes()).is_ok());
        doc.insert_str(1, "\"k4999\": 0, ");
        assert!(matches!(
            Json::parse(doc.as_bytes()),
            Err(JsonError::RepeatedKey(k)) if k == "k4999"
        ));
    }

    #[test]
    fn nesting_is_limited_and_syntax_errors_stay_syntax_errors() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let error = Json::parse(deep.as_bytes()).unwrap_err();
        assert!(matches!(error, JsonError::TooDeep), "{error}");
        let fits = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(Json::parse(fits.as_bytes()).is_ok());
        for bad in [&b"{"[..], b"{\"a\": 1,}", b"[1] [2]", b"\xff"] {
            let error = Json::parse(bad).unwrap_err();
            assert!(matches!(error, JsonError::Malformed(_)), "{bad:?}: {error}");
        }
    }

    #[test]
    fn scalars_and_strings_are_read_as_json_says() {
        let doc = Json::parse(br#"[null, true, "a\"b\u00e9", {}]"#).unwrap();
        assert_eq!(
            doc,
            Json::Array(vec![
                Json::Null,
                Json::Bool(true),
                Json::String("a\"bé".to_owned()),
                Json::Object(Object::default()),
            ])
        );
    }
}
