//! The workspace's shape holds: the gateway links neither the broker's nor
//! the database's client, no crate holds more than about a third of the
//! code, and no two modules of a crate depend on each other.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo tree -p <package> -e <edges>`, one package per line.
fn tree(package: &str, edges: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "-p", package, "-e", edges])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn links(tree: &[String], package: &str) -> bool {
    tree.iter()
        .any(|line| line.split_whitespace().next() == Some(package))
}

#[test]
fn the_gateway_links_neither_lapin_nor_sqlx() {
    let gateway = tree("gateway", "normal");
    for package in ["lapin", "sqlx", "messaging"] {
        assert!(!links(&gateway, package), "the gateway links {package}");
    }
    // The check can fail: order-service links both.
    let order_service = tree("order-service", "normal");
    assert!(links(&order_service, "lapin") && links(&order_service, "sqlx"));
}

#[test]
fn the_contract_does_no_io() {
    let contract = tree("contract", "normal");
    for package in ["tokio", "hyper", "reqwest", "lapin", "sqlx", "runtime"] {
        assert!(!links(&contract, package), "the contract links {package}");
    }
}

#[test]
fn service_binaries_are_built_without_fail_points() {
    for package in [
        "gateway",
        "order-service",
        "payment-service",
        "email-service",
        "dead-letters",
    ] {
        let built = tree(package, "normal,features").join("\n");
        assert!(
            !built.contains("runtime feature \"test-hooks\""),
            "{package} is built with fail points"
        );
    }
    // The check can fail: the tests' builds have them.
    let tested = tree("order-service", "normal,dev,features").join("\n");
    assert!(tested.contains("runtime feature \"test-hooks\""));
    // And the image builds the binaries with their default features only.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        !dockerfile.contains("--all-features") && !dockerfile.contains("--features"),
        "the Dockerfile turns features on"
    );
}

/// Every workspace member's folder, from `cargo metadata`.
fn members() -> Vec<(String, PathBuf)> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--no-deps", "--format-version", "1"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success());
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
            let dir = manifest.parent().unwrap().to_owned();
            (package["name"].as_str().unwrap().to_owned(), dir)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Another member's folder is counted for that member.
            if !path.join("Cargo.toml").exists() && !path.ends_with("target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_crate_holds_more_than_35_percent_of_the_rust_lines() {
    let mut lines: BTreeMap<String, usize> = BTreeMap::new();
    for (name, dir) in members() {
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        let count = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
            .sum();
        lines.insert(name, count);
    }
    let total: usize = lines.values().sum();
    for (name, count) in &lines {
        let share = *count as f64 / total as f64;
        assert!(
            share <= 0.35,
            "{name} holds {:.0} % of the {total} lines: {lines:?}",
            share * 100.0
        );
    }
}

/// A crate's modules, as paths (`routes::checkout`), with the text of each
/// file up to its unit tests.
fn modules(src: &Path) -> BTreeMap<Vec<String>, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(src).unwrap();
            let mut path: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if matches!(
                path.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                path.pop();
            }
            // Binaries beside the library (`src/bin/*`) are crates of their own.
            if relative.starts_with("bin") {
                return None;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap().to_owned();
            Some((path, code))
        })
        .collect()
}

/// The modules `code` (in module `from`) names with `crate::` or `super::`.
fn uses(from: &[String], code: &str, known: &BTreeSet<Vec<String>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("crate::") || w.starts_with("super::"))
        .collect();
    // `use crate::{a, b::c}` lists several modules after one prefix.
    let mut groups = Vec::new();
    for (at, _) in code
        .match_indices("crate::{")
        .chain(code.match_indices("super::{"))
    {
        let prefix = &code[at..at + code[at..].find('{').unwrap()];
        let body = &code[at + prefix.len() + 1..];
        let mut depth = 1;
        let mut item = String::new();
        for c in body.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                break;
            }
            if depth == 1 && c == ',' {
                groups.push(format!("{prefix}{}", item.trim()));
                item.clear();
            } else if depth == 1 {
                item.push(c);
            } else if depth == 2 && c == '{' {
                // Inner groups name deeper items of the same module.
                item.push_str("::_");
            }
        }
        groups.push(format!("{prefix}{}", item.trim()));
    }
    for word in words.into_iter().map(str::to_owned).chain(groups) {
        let mut segments = word.split("::").filter(|s| !s.is_empty());
        let mut path: Vec<String> = match segments.next() {
            Some("crate") => Vec::new(),
            Some("super") => {
                // In `a/b.rs` (module `a::b`) super is `a`; in `a/mod.rs` too
                // the file is module `a`, whose super is the crate.
                let mut base = from.to_vec();
                base.pop();
                base
            }
            _ => continue,
        };
        for segment in segments {
            if segment == "super" {
                path.pop();
                continue;
            }
            let mut next = path.clone();
            next.push(segment.to_owned());
            if known.contains(&next) {
                path = next;
            } else {
                break;
            }
        }
        if !path.is_empty() {
            found.push(path);
        }
    }
    found
}

/// Edges between sibling modules: `a::x` using `b::y` is `a` -> `b` under
/// their common parent.
fn sibling_edges(src: &Path) -> BTreeSet<(Vec<String>, Vec<String>)> {
    let modules = modules(src);
    let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    let mut edges = BTreeSet::new();
    for (from, code) in &modules {
        for to in uses(from, code, &known) {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                edges.insert((from[..=common].to_vec(), to[..=common].to_vec()));
            }
        }
    }
    edges
}

/// The edges that lie on a cycle: `a -> b` where `b` leads back to `a`.
fn cyclic_edges(edges: &BTreeSet<(Vec<String>, Vec<String>)>) -> Vec<(Vec<String>, Vec<String>)> {
    let reaches = |from: &Vec<String>, to: &Vec<String>| {
        let mut seen = BTreeSet::from([from.clone()]);
        let mut todo = vec![from.clone()];
        while let Some(node) = todo.pop() {
            if &node == to {
                return true;
            }
            for (a, b) in edges {
                if *a == node && seen.insert(b.clone()) {
                    todo.push(b.clone());
                }
            }
        }
        false
    };
    edges
        .iter()
        .filter(|(a, b)| reaches(b, a))
        .cloned()
        .collect()
}

#[test]
fn no_two_modules_of_a_crate_depend_on_each_other() {
    let mut cycles = Vec::new();
    for (name, dir) in members() {
        let src = dir.join("src");
        if !src.exists() {
            continue;
        }
        for (a, b) in cyclic_edges(&sibling_edges(&src)) {
            cycles.push(format!("{name}: {} -> {}", a.join("::"), b.join("::")));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let dir = std::env::temp_dir().join(format!("cycle-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("routes")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod error;\nmod routes;\n").unwrap();
    std::fs::write(
        dir.join("error.rs"),
        "use crate::routes::checkout::LIMIT;\n",
    )
    .unwrap();
    std::fs::write(dir.join("routes/mod.rs"), "pub mod checkout;\n").unwrap();
    std::fs::write(
        dir.join("routes/checkout.rs"),
        "use crate::{error::Error, routes::other};\n",
    )
    .unwrap();
    let edges = sibling_edges(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let module = |name: &str| vec![name.to_owned()];
    assert_eq!(
        cyclic_edges(&edges),
        [
            (module("error"), module("routes")),
            (module("routes"), module("error"))
        ]
    );
}
