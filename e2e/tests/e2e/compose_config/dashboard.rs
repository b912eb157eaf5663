//! The Grafana dashboard against the metrics the code records.

use std::{collections::BTreeSet, path::Path};

use serde_json::Value;

use super::{read, workspace};

#[test]
fn the_dashboard_uses_only_metrics_the_code_records() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/checkout-pipeline.json")).unwrap();
    let recorded = recorded_metrics();
    assert!(recorded.contains("http_requests_total"), "{recorded:?}");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            used.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    for name in &used {
        // Prometheus' own and RabbitMQ's (rabbitmq_prometheus) series.
        if name == "up" || name.starts_with("rabbitmq_") {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| recorded.contains(*b))
            .unwrap_or(name);
        assert!(
            recorded.contains(base),
            "the dashboard uses {name}, which no code records (recorded: {recorded:?})"
        );
    }
}

/// The metric names the services' code records.
pub(super) fn recorded_metrics() -> BTreeSet<String> {
    let mut recorded = BTreeSet::new();
    for dir in [
        "common/runtime/src",
        "common/messaging/src",
        "gateway/src",
        "order-service/src",
        "payment-service/src",
        "email-service/src",
    ] {
        collect_recorded_metrics(&workspace().join(dir), &mut recorded);
    }
    recorded
}

/// Names in `counter!("…"`, `gauge!("…"` and `histogram!("…"` calls.
fn collect_recorded_metrics(dir: &Path, names: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_recorded_metrics(&path, names);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                for (at, _) in text.match_indices(macro_name) {
                    let rest = text[at + macro_name.len()..].trim_start();
                    if let Some(quoted) = rest.strip_prefix('"') {
                        names.insert(quoted.split('"').next().unwrap().to_owned());
                    }
                }
            }
        }
    }
}

/// The metric names in a PromQL expression: identifiers that are neither
/// functions, keywords nor label names (`by (…)`, `{…}` and `[…]` removed).
pub(super) fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut text = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    for c in expr.chars() {
        match c {
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            c => text.push(c),
        }
    }
    // Label lists of aggregations (`by (a, b)`, `without (a)`) and of
    // vector matching (`on (a)`, `ignoring (a)`, `group_left (a)`).
    for keyword in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        while let Some(at) = text.find(&format!("{keyword} (")) {
            let end = text[at..].find(')').unwrap() + at;
            text.replace_range(at..=end, " ");
        }
    }
    let mut names = BTreeSet::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_alphabetic() || chars[i] == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let operator = ["and", "or", "unless", "bool", "offset"].contains(&word.as_str());
            if next != Some(&'(') && !operator {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn promql_metric_names_are_found() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket{status=~"5.."}[5m]))) / max by (app) (outbox_pending_events) > 0 or max(smtp_up) == bool 0 and on (service) up"#,
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "http_request_duration_seconds_bucket".to_owned(),
            "outbox_pending_events".to_owned(),
            "smtp_up".to_owned(),
            "up".to_owned(),
        ])
    );
}
