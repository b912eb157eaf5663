//! PostgreSQL: one CloudNativePG cluster per service, with the database
//! and least-privilege role compose makes (deploy/postgres/), and the
//! connection budget: every pool at the most replicas fits each cluster's
//! max_connections.

use std::collections::{BTreeMap, BTreeSet};

use messaging::db::batch::BatchStatement;
use order_service::db::stock::InsertOrders;

use super::{
    RUST_SERVICES, compose, container,
    env::{Source, configuration_of, env_entries, resolved_env},
    manifests, max_surge, name, read, replica_range, strings, url_parts,
};

/// CloudNativePG's own connections to each instance, on top of the
/// superuser-reserved ones: the instance manager, its metrics exporter, an
/// operator's psql.
const CNPG_OWN_CONNECTIONS: u64 = 10;

#[test]
fn the_postgres_clusters_are_composes_least_privilege_databases() {
    let m = manifests();
    let init_sh = read("deploy/postgres/init.sh");
    let expected: BTreeSet<(String, String)> = init_sh
        .lines()
        .filter_map(|l| l.strip_prefix("service "))
        .map(|l| {
            let mut words = l.split_whitespace();
            (
                words.next().unwrap().to_owned(),
                words.next().unwrap().to_owned(),
            )
        })
        .collect();
    let image = compose()["services"]["postgres"]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    let major = image
        .split(':')
        .nth(1)
        .unwrap()
        .split(['-', '.'])
        .next()
        .unwrap()
        .to_owned();
    assert!(read("deploy/postgres/init.sql").contains("REVOKE ALL ON DATABASE"));
    let mut made = BTreeSet::new();
    for cluster in m.of_kind("Cluster") {
        let who = name(cluster);
        assert_eq!(cluster["apiVersion"], "postgresql.cnpg.io/v1");
        let spec = &cluster["spec"];
        assert_eq!(spec["instances"], 3, "{who}: a primary and two replicas");
        assert!(spec["storage"]["size"].is_string(), "{who}: storage.size");
        let tag = spec["imageName"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap();
        assert_eq!(
            tag.split(['-', '.']).next(),
            Some(major.as_str()),
            "{who}: PostgreSQL {major}, as compose"
        );
        assert_ne!(
            spec["enableSuperuserAccess"], true,
            "{who}: no superuser password"
        );
        let initdb = &spec["bootstrap"]["initdb"];
        let (db, role) = (
            initdb["database"].as_str().unwrap(),
            initdb["owner"].as_str().unwrap(),
        );
        made.insert((db.to_owned(), role.to_owned()));
        assert!(
            strings(&initdb["postInitApplicationSQL"])
                .contains(&format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC")),
            "{who}: as init.sql, only {role} may connect to {db}"
        );
        assert!(
            strings(&spec["postgresql"]["pg_hba"]).contains(&format!("host all {role} all reject")),
            "{who}: {role} reaches no other database"
        );
        for parameter in ["max_connections", "superuser_reserved_connections"] {
            assert!(
                spec["postgresql"]["parameters"][parameter]
                    .as_str()
                    .is_some_and(|v| v.parse::<u64>().is_ok()),
                "{who}: {parameter}"
            );
        }
    }
    assert_eq!(
        made, expected,
        "one cluster per database and role of init.sh"
    );
}

#[test]
fn each_service_owns_composes_database_in_a_cluster_of_its_own() {
    let m = manifests();
    let compose = compose();
    let mut clusters = BTreeSet::new();
    for binary in ["order-service", "payment-service", "email-service"] {
        let entries: BTreeMap<String, Source> = env_entries(container(m.deployment(binary)))
            .into_iter()
            .collect();
        let Some(Source::Secret { name: secret, key }) = entries.get("DATABASE_URL") else {
            panic!("{binary}: DATABASE_URL from a Secret");
        };
        assert_eq!(
            key, "uri",
            "{binary}: the connection URL CloudNativePG writes"
        );
        let cluster = secret
            .strip_suffix("-app")
            .and_then(|c| m.find("Cluster", c))
            .unwrap_or_else(|| panic!("{binary}: {secret} is a Cluster's <name>-app"));
        assert!(
            clusters.insert(name(cluster)),
            "{} is shared",
            name(cluster)
        );
        let initdb = &cluster["spec"]["bootstrap"]["initdb"];
        let composed = compose["services"][binary]["environment"]["DATABASE_URL"]
            .as_str()
            .unwrap();
        let (role, _, _, _, database) = url_parts(composed);
        assert_eq!(
            (initdb["owner"].as_str(), initdb["database"].as_str()),
            (Some(role.as_str()), Some(database.as_str())),
            "{binary}: compose's role and database"
        );
    }
}

#[test]
fn the_connection_budget_holds_at_the_most_replicas() {
    let m = manifests();
    let mut report = Vec::new();
    for cluster in m.of_kind("Cluster") {
        let parameters = &cluster["spec"]["postgresql"]["parameters"];
        let number = |p: &str| {
            parameters[p]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{p}"))
        };
        let available = number("max_connections")
            - number("superuser_reserved_connections")
            - CNPG_OWN_CONNECTIONS;
        let mut used = 0;
        for binary in RUST_SERVICES {
            let deployment = m.deployment(binary);
            let container = container(deployment);
            let secret = format!("{}-app", name(cluster));
            let uses = env_entries(container).into_iter().any(|(var, source)| {
                var == "DATABASE_URL"
                    && matches!(&source, Source::Secret { name, .. } if *name == secret)
            });
            if !uses {
                continue;
            }
            let pool = configuration_of(binary, &resolved_env(m, container))["pool"]
                .as_u64()
                .expect("a pool");
            // order-service's checkout insert has connections of its own.
            let extra = if binary == "order-service" {
                InsertOrders::WORKERS as u64
            } else {
                0
            };
            let (_, most) = replica_range(m, deployment);
            let pods = most + max_surge(deployment);
            used += pods * (pool + extra);
            report.push(format!(
                "{}: {binary} {pods} pods × ({pool} + {extra})",
                name(cluster)
            ));
        }
        report.push(format!("{}: {used} of {available}", name(cluster)));
        assert!(used > 0, "{} serves a service", name(cluster));
        assert!(
            used <= available,
            "{}: {used} connections at the most replicas, {available} available \
             (max_connections less the reserved ones):\n{}",
            name(cluster),
            report.join("\n")
        );
    }
    eprintln!("{}", report.join("\n"));
}
