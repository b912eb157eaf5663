//! The repository stands on its own: every file or document its docs and
//! comments cite is in it, and the Rust version it declares builds every
//! locked dependency.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The tracked files whose text may cite others: docs, code, scripts, config.
fn cited_from() -> Vec<(String, String)> {
    let listed = Command::new("git")
        .args(["ls-files"])
        .current_dir(root())
        .output()
        .expect("git runs");
    assert!(listed.status.success(), "git ls-files failed");
    String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .filter(|name| {
            [".md", ".rs", ".sh", ".yml", ".yaml", ".toml"]
                .iter()
                .any(|ext| name.ends_with(ext))
                || ["Dockerfile", ".ci/run"].contains(name)
        })
        .filter_map(|name| {
            let text = std::fs::read_to_string(root().join(name)).ok()?;
            Some((name.to_owned(), text))
        })
        .collect()
}

/// Top-level folders of the repository: a backticked path starting with one
/// of them is a path from the root.
const TOP_LEVEL: &[&str] = &[
    "docs/",
    "scripts/",
    "deploy/",
    "e2e/",
    "common/",
    "gateway/",
    "order-service/",
    "payment-service/",
    "email-service/",
    "loadgen/",
    "bench/",
    ".ci/",
    ".config/",
];

/// Paths from the root written in backticks (`docs/guarantees.md`); those
/// with placeholders (`{id}`, `*`, `<name>`) are patterns, not files.
fn backticked_paths(text: &str) -> Vec<&str> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| TOP_LEVEL.iter().any(|top| s.starts_with(top)))
        .filter(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        })
        .map(|s| s.trim_end_matches('.'))
        .collect()
}

/// Relative Markdown link targets (`[text](docs/x.md#anchor)`), without
/// their anchor.
fn markdown_links(text: &str) -> Vec<&str> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split([')', ' ']).next())
        .filter(|target| !target.contains("://") && !target.starts_with(['#', '<']))
        .filter(|target| !target.starts_with("mailto:"))
        .map(|target| target.split('#').next().unwrap_or(target))
        .collect()
}

#[test]
fn every_cited_file_is_in_the_repository() {
    let mut dangling = Vec::new();
    for (name, text) in cited_from() {
        for path in backticked_paths(&text) {
            if !root().join(path).exists() {
                dangling.push(format!("{name}: `{path}`"));
            }
        }
        if name.ends_with(".md") {
            let dir = root().join(&name).parent().unwrap().to_owned();
            for target in markdown_links(&text) {
                if !dir.join(target).exists() {
                    dangling.push(format!("{name}: ({target})"));
                }
            }
        }
    }
    assert!(
        dangling.is_empty(),
        "dangling references:\n{}",
        dangling.join("\n")
    );
}

#[test]
fn nothing_cites_documents_that_live_outside_the_repository() {
    // Spelled in pieces so this file does not cite them itself.
    let outside = [
        ["DESIGN", ".md"].concat(),
        ["failure-windows", ".md"].concat(),
        ["lapin-4", ".md"].concat(),
        ["reliability", " matrix"].concat(),
        ["../", "shared"].concat(),
    ];
    let mut cited = Vec::new();
    for (name, text) in cited_from() {
        for document in &outside {
            if text.contains(document.as_str()) {
                cited.push(format!("{name} cites {document}"));
            }
        }
    }
    assert!(cited.is_empty(), "{}", cited.join("\n"));
}

#[test]
fn the_declared_rust_version_builds_every_locked_dependency() {
    let metadata = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        metadata.status.success(),
        "{}",
        String::from_utf8_lossy(&metadata.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap();
    // `1.94` is `1.94.0`.
    let version = |v: &str| -> Vec<u32> {
        let mut parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
        parts.resize(3, 0);
        parts
    };
    let workspace: Vec<&serde_json::Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"].is_null())
        .collect();
    let declared = workspace[0]["rust_version"]
        .as_str()
        .expect("the workspace declares a rust-version");
    let too_new: Vec<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(declared))
                .then(|| format!("{} {} needs {needs}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        too_new.is_empty(),
        "rust-version is {declared}, but:\n{}",
        too_new.join("\n")
    );
}
