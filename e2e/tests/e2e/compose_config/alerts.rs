//! The monitoring profile's alert rules and Alertmanager configuration:
//! valid for Prometheus' and Alertmanager's own checkers, every rule with a
//! `for:`, a severity and what to do, every rule unit-tested both firing and
//! not firing (`promtool test rules`), and every metric a rule reads one
//! the code records. scripts/test.sh unpacks promtool and amtool from
//! Debian's packages into target/tools/prometheus; `PROMTOOL` and `AMTOOL`
//! name other installs. Without them the tests fail and say so.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Command,
};

use serde_yaml_ng::Value as Yaml;

use super::dashboard::{metric_names, recorded_metrics};
use crate::deployment::{read, workspace};

const RULES: &str = "deploy/prometheus/alerts.yml";
const RULE_TESTS: &str = "deploy/prometheus/alerts.test.yml";

fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return path.into();
    }
    let path = workspace()
        .join("target/tools/prometheus/usr/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: scripts/test.sh installs it (install_prometheus_tools), or set {var}",
        path.display()
    );
    path
}

/// Runs `tool args…` in the workspace; fails the test with its output
/// unless it succeeds.
fn run(tool: PathBuf, args: &[&str]) {
    let output = Command::new(&tool)
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", tool.display()));
    assert!(
        output.status.success(),
        "{} {}:\n{}{}",
        tool.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn yaml(path: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Each alert's rule, by name.
fn alerts() -> BTreeMap<String, Yaml> {
    let mut alerts = BTreeMap::new();
    for group in yaml(RULES)["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().expect("only alerting rules");
            assert!(
                alerts.insert(name.to_owned(), rule.clone()).is_none(),
                "{name} twice"
            );
        }
    }
    alerts
}

#[test]
fn prometheus_accepts_its_configuration_and_rules_and_alertmanager_its_own() {
    // Checks the rule files it names too.
    run(
        tool("PROMTOOL", "promtool"),
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
    run(tool("PROMTOOL", "promtool"), &["check", "rules", RULES]);
    run(
        tool("AMTOOL", "amtool"),
        &["check-config", "deploy/alertmanager/alertmanager.yml"],
    );
}

#[test]
fn the_alert_rules_pass_their_unit_tests() {
    run(tool("PROMTOOL", "promtool"), &["test", "rules", RULE_TESTS]);
}

#[test]
fn every_alert_waits_has_a_severity_and_says_what_to_do() {
    let alerts = alerts();
    assert!(alerts.len() >= 8, "{:?}", alerts.keys());
    for (name, rule) in &alerts {
        assert!(rule["for"].as_str().is_some(), "{name}: no `for:`");
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("page" | "ticket")),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            let text = rule["annotations"][annotation].as_str().unwrap_or("");
            assert!(text.len() > 20, "{name}: {annotation} {text:?}");
        }
    }
}

/// A rule tested only firing could fire always; one tested only silent
/// could never fire.
#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for test in yaml(RULE_TESTS)["tests"].as_sequence().unwrap() {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap().to_owned();
            match case["exp_alerts"].as_sequence() {
                Some(expected) if !expected.is_empty() => firing.insert(name),
                _ => silent.insert(name),
            };
        }
    }
    for name in alerts().keys() {
        assert!(firing.contains(name), "{name} is never tested firing");
        assert!(silent.contains(name), "{name} is never tested silent");
    }
}

#[test]
fn the_alert_rules_read_only_metrics_the_code_records() {
    let recorded = recorded_metrics();
    for (name, rule) in alerts() {
        for metric in metric_names(rule["expr"].as_str().unwrap()) {
            // Prometheus' own and RabbitMQ's (rabbitmq_prometheus) series.
            if metric == "up" || metric.starts_with("rabbitmq_") {
                continue;
            }
            let base = metric.strip_suffix("_bucket").unwrap_or(&metric);
            assert!(
                recorded.contains(base),
                "{name} reads {metric}, which no code records"
            );
        }
    }
}
