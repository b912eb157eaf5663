//! AMQP header values as JSON, for `show`.

use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};

/// An AMQP header value as JSON, for `show`.
pub fn header_to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(v) => json!(v),
        AMQPValue::ShortShortUInt(v) => json!(v),
        AMQPValue::ShortInt(v) => json!(v),
        AMQPValue::ShortUInt(v) => json!(v),
        AMQPValue::LongInt(v) => json!(v),
        AMQPValue::LongUInt(v) => json!(v),
        AMQPValue::LongLongInt(v) => json!(v),
        AMQPValue::Float(v) => json!(v),
        AMQPValue::Double(v) => json!(v),
        AMQPValue::DecimalValue(d) => json!(format!("{}e-{}", d.value, d.scale)),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(s.to_string()),
        AMQPValue::FieldArray(values) => {
            Value::Array(values.as_slice().iter().map(header_to_json).collect())
        }
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(table) => headers_to_json(table),
        AMQPValue::ByteArray(bytes) => json!(
            bytes
                .as_slice()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        AMQPValue::Void => Value::Null,
    }
}

/// A header table as a JSON object (keys sorted).
pub fn headers_to_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(k, v)| (k.to_string(), header_to_json(v)))
            .collect(),
    )
}
