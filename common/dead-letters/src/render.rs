//! What the `dlq` commands print: the `list` table, and `show` as text or
//! JSON.

use serde_json::{Value, json};

use crate::{ParkedDetail, ParkedMessage, headers_to_json};

/// The widest the reason column of `list` gets.
const REASON_WIDTH: usize = 80;

pub(super) fn messages(n: usize) -> String {
    if n == 1 {
        "1 message".into()
    } else {
        format!("{n} messages")
    }
}

/// The `list` table.
pub fn table(dlq: &str, total: u32, parked: &[ParkedMessage]) -> String {
    if parked.is_empty() {
        return format!("{dlq}: no parked messages.\n");
    }
    let mut out = format!("{dlq}: {} parked", messages(total as usize));
    if parked.len() < total as usize {
        out.push_str(&format!(
            ", showing the oldest {} (use --limit)",
            parked.len()
        ));
    }
    out.push_str(".\n\n");
    let rows: Vec<[String; 6]> = parked
        .iter()
        .map(|m| {
            [
                m.message_id.clone().unwrap_or_else(|| "(none)".into()),
                m.parked_at
                    .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                m.parked_by.clone().unwrap_or_else(|| "-".into()),
                m.retries.map_or_else(|| "-".into(), |r| r.to_string()),
                m.body_bytes.to_string(),
                clip(m.reason.as_deref().unwrap_or("-"), REASON_WIDTH),
            ]
        })
        .collect();
    let heading = [
        "MESSAGE ID",
        "PARKED AT (UTC)",
        "PARKED BY",
        "RETRIES",
        "BYTES",
        "REASON",
    ]
    .map(String::from);
    let widths: Vec<usize> = (0..heading.len())
        .map(|col| {
            std::iter::once(&heading)
                .chain(&rows)
                .map(|row| row[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&heading).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One line, control characters replaced, at most `width` characters.
fn clip(text: &str, width: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= width {
        clean
    } else {
        let mut cut: String = clean.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

fn properties_json(detail: &ParkedDetail) -> Value {
    let p = &detail.properties;
    let s = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| s.to_string());
    json!({
        "message_id": s(p.message_id()),
        "correlation_id": s(p.correlation_id()),
        "type": s(p.kind()),
        "app_id": s(p.app_id()),
        "timestamp": p.timestamp(),
        "content_type": s(p.content_type()),
        "delivery_mode": p.delivery_mode(),
    })
}

fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

pub(super) fn detail_json(detail: &ParkedDetail) -> Value {
    json!({
        "summary": detail.summary,
        "properties": properties_json(detail),
        "headers": detail.properties.headers().as_ref().map(headers_to_json),
        "body": body_json(&detail.body),
    })
}

pub(super) fn detail_text(detail: &ParkedDetail, n: usize, of: usize, dlq: &str) -> String {
    let mut out = format!("Parked message {n} of {of} with this id in {dlq}\n\nProperties:\n");
    if let Value::Object(properties) = properties_json(detail) {
        for (key, value) in properties {
            let when = match (key.as_str(), value.as_i64()) {
                ("timestamp", Some(secs)) => chrono::DateTime::from_timestamp(secs, 0)
                    .map(|t| format!(" ({})", t.to_rfc3339()))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            if !value.is_null() {
                out.push_str(&format!("  {key}: {}{when}\n", plain(&value)));
            }
        }
    }
    out.push_str("\nHeaders:\n");
    match detail.properties.headers().as_ref().map(headers_to_json) {
        Some(Value::Object(headers)) if !headers.is_empty() => {
            for (key, value) in headers {
                out.push_str(&format!("  {key}: {}\n", plain(&value)));
            }
        }
        _ => out.push_str("  (none)\n"),
    }
    out.push_str(&format!("\nBody ({} bytes):\n", detail.body.len()));
    let body = match serde_json::from_slice::<Value>(&detail.body) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&detail.body).into_owned(),
    };
    out.push_str(&body);
    out.push('\n');
    out
}

/// A JSON value for humans: strings without quotes.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_clips_long_reasons_to_one_line() {
        let message = ParkedMessage {
            message_id: Some("id-1".into()),
            reason: Some(format!("line one\nline two {}", "x".repeat(200))),
            retries: Some(3),
            parked_at: chrono::DateTime::from_timestamp(0, 0),
            parked_by: Some("payment-service".into()),
            original_routing_key: None,
            body_preview: "{}".into(),
            body_bytes: 2,
        };
        let out = table("q.dlq", 2, &[message]);
        assert!(out.starts_with("q.dlq: 2 messages parked, showing the oldest 1"));
        let row = out.lines().last().unwrap();
        assert!(row.starts_with("id-1"), "{row}");
        assert!(row.contains("1970-01-01 00:00:00"), "{row}");
        assert!(row.contains("line one line two"), "{row}");
        assert!(row.ends_with('…'), "{row}");
        assert_eq!(table("q.dlq", 0, &[]), "q.dlq: no parked messages.\n");
    }
}
