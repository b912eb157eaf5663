//! Ports, health checks, dependencies and the Dockerfile.

use super::{RUST_SERVICES, compose, environment, read, services, strings};
use crate::deployment::port_of;

#[test]
fn ports_health_checks_and_dependencies_are_consistent() {
    let services = services(&compose());
    for binary in RUST_SERVICES {
        let service = &services[binary];
        let env = environment(service);
        let port = port_of(&env["BIND_ADDR"]);
        let test = strings(&service["healthcheck"]["test"]);
        let url = test
            .iter()
            .find(|a| a.starts_with("http://"))
            .unwrap_or_else(|| panic!("{binary}'s health check calls a URL: {test:?}"));
        assert_eq!(port_of(url), port, "{binary}: health check {url}");
        assert!(
            url.ends_with("/ready"),
            "{binary} is healthy when ready: {url}"
        );
        for mapping in strings(&service["ports"]) {
            assert_eq!(
                port_of(&mapping),
                port,
                "{binary}: published port {mapping}"
            );
        }
        for exposed in strings(&service["expose"]) {
            assert_eq!(exposed.parse::<u16>().unwrap(), port, "{binary}: expose");
        }
        assert!(
            !service["ports"].is_null() || !service["expose"].is_null(),
            "{binary} publishes or exposes its port (Prometheus scrapes it)"
        );
        assert_eq!(
            strings(&service["command"]),
            [binary],
            "{binary} runs its own binary"
        );
    }

    let payment = &services["payment-service"];
    assert!(
        payment["container_name"].is_null(),
        "payment-service is scaled: no container_name"
    );
    assert!(
        payment["ports"].is_null(),
        "payment-service is scaled: no host port"
    );

    for (name, service) in &services {
        assert!(
            service["healthcheck"]["test"].is_sequence(),
            "{name} has a health check"
        );
        assert!(!service["restart"].is_null(), "{name} has a restart policy");
        let Some(depends_on) = service["depends_on"].as_mapping() else {
            assert!(
                service["depends_on"].is_null(),
                "{name}: depends_on in its long form"
            );
            continue;
        };
        for (dependency, condition) in depends_on {
            let dependency = dependency.as_str().unwrap();
            assert!(
                services.contains_key(dependency),
                "{name} depends on unknown {dependency}"
            );
            assert_eq!(
                condition["condition"].as_str(),
                Some("service_healthy"),
                "{name} waits for {dependency} to be healthy"
            );
        }
    }
}

#[test]
fn the_dockerfile_builds_and_copies_every_binary_compose_runs() {
    let dockerfile = read("Dockerfile");
    // Continuation lines joined, so one instruction is one line.
    let joined = dockerfile.replace("\\\n", " ");
    let build = joined
        .lines()
        .find(|l| l.trim_start().starts_with("RUN cargo build"))
        .expect("a cargo build step");
    let copy = joined
        .lines()
        .find(|l| l.contains("COPY --from=builder"))
        .expect("a COPY of the binaries");
    for (name, service) in services(&compose()) {
        if service["build"].is_null() {
            continue;
        }
        let binary = strings(&service["command"])
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("{name} picks its binary with command:"));
        assert!(
            build
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["--bin", binary.as_str()]),
            "the Dockerfile builds {binary}: {build}"
        );
        assert!(
            copy.contains(&format!("/app/target/release/{binary} ")),
            "the Dockerfile copies {binary}: {copy}"
        );
    }
}
