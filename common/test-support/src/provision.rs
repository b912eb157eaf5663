//! The deployment's own provisioning applied to the test servers, under
//! unique names: `deploy/postgres/init.sql` (a database and a least-privilege
//! role per service) and `deploy/rabbitmq/definitions.json` (topology, users,
//! permissions). Tests then run the services as those roles and users, so a
//! right missing from the deployment files fails a test.

use std::{collections::BTreeMap, path::PathBuf, process::Command, time::Duration};

use serde_json::Value;
use uuid::Uuid;

use crate::{TestVhost, admin_database_url, process::rabbitmqctl_with};
use messaging::db::DatabaseSettings;

/// The workspace's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Runs `psql` as the test administrator on `database` with `args`.
fn psql(database: &str, args: &[&str]) -> Result<(), String> {
    let admin = admin_database_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let output = Command::new("psql")
        .arg(format!("{base}/{database}"))
        .args(["--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .output()
        .expect("psql is installed");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "psql {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A service database and its login role, created by `deploy/postgres/init.sql`
/// under unique names; both dropped when this is dropped.
pub struct ServiceDatabase {
    pub database: String,
    pub role: String,
    /// `DATABASE_URL` as the role.
    pub settings: DatabaseSettings,
}

impl ServiceDatabase {
    /// Runs `init.sql` for `service` (`order`, `payment`, `email`).
    pub fn provision(service: &str) -> Self {
        let id = &Uuid::new_v4().simple().to_string()[..12];
        let database = format!("test_{service}_db_{id}");
        let role = format!("test_{service}_role_{id}");
        let password = Uuid::new_v4().simple().to_string();
        let script = deploy_dir().join("postgres/init.sql");
        psql(
            "postgres",
            &[
                "-v",
                &format!("db={database}"),
                "-v",
                &format!("role={role}"),
                "-v",
                &format!("password={password}"),
                "-f",
                script.to_str().expect("UTF-8 path"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let admin = admin_database_url();
        let rest = admin.split_once("://").map_or(admin.as_str(), |(_, r)| r);
        let host = rest.split('/').next().unwrap_or(rest);
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        Self {
            settings: DatabaseSettings {
                url: format!("postgres://{role}:{password}@{host}/{database}"),
                max_connections: 5,
                acquire_timeout: Duration::from_secs(3),
            },
            database,
            role,
        }
    }

    /// `DATABASE_URL` as this role, on another database.
    pub fn url_on(&self, database: &str) -> String {
        let (base, _) = self.settings.url.rsplit_once('/').expect("URL has a path");
        format!("{base}/{database}")
    }
}

impl Drop for ServiceDatabase {
    fn drop(&mut self) {
        let database = &self.database;
        let role = &self.role;
        let _ = psql(
            "postgres",
            &[
                "-c",
                &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
                "-c",
                &format!("DROP ROLE IF EXISTS \"{role}\""),
            ],
        );
    }
}

/// A fresh vhost provisioned from `deploy/rabbitmq/definitions.json`: its
/// exchanges, queues, bindings and permissions, with every user renamed with a
/// unique prefix (users are global) and given a random password. The users
/// are deleted, then the vhost, when this is dropped.
pub struct ProvisionedBroker {
    /// Users by their name in definitions.json: (test user name, password).
    pub users: BTreeMap<String, (String, String)>,
    pub vhost: TestVhost,
}

impl ProvisionedBroker {
    /// definitions.json as it is.
    pub fn provision() -> Self {
        Self::provision_with(|_| {})
    }

    /// definitions.json changed by `edit` first (to show that a narrower
    /// permission fails).
    pub fn provision_with(edit: impl FnOnce(&mut Value)) -> Self {
        let mut definitions = definitions();
        edit(&mut definitions);
        let vhost = TestVhost::create();
        let prefix = format!("t{}_", &Uuid::new_v4().simple().to_string()[..10]);
        let mut users = BTreeMap::new();
        for user in definitions["users"].as_array_mut().expect("users") {
            let name = user["name"].as_str().expect("user name").to_owned();
            let password = Uuid::new_v4().simple().to_string();
            let test_name = format!("{prefix}{name}");
            user["name"] = test_name.clone().into();
            user["password"] = password.clone().into();
            users.insert(name, (test_name, password));
        }
        for permission in definitions["permissions"]
            .as_array_mut()
            .expect("permissions")
        {
            let name = permission["user"].as_str().expect("user").to_owned();
            permission["user"] = users[&name].0.clone().into();
        }
        definitions["vhosts"] = serde_json::json!([{"name": vhost.name}]);
        for section in ["permissions", "exchanges", "queues", "bindings"] {
            for item in definitions[section].as_array_mut().expect(section) {
                item["vhost"] = vhost.name.clone().into();
            }
        }
        let broker = Self { users, vhost };
        rabbitmqctl_with(
            &["import_definitions", "--format", "json"],
            Some(definitions.to_string().as_bytes()),
        );
        // The import runs asynchronously on the node: wait for its last parts.
        let expected_queues = definitions["queues"].as_array().map_or(0, Vec::len);
        let expected_users = broker.users.len();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let queues = rabbitmqctl_with(
                &[
                    "list_queues",
                    "-q",
                    "--no-table-headers",
                    "-p",
                    &broker.vhost.name,
                    "name",
                ],
                None,
            );
            let permissions = rabbitmqctl_with(
                &[
                    "list_permissions",
                    "-q",
                    "--no-table-headers",
                    "-p",
                    &broker.vhost.name,
                ],
                None,
            );
            let users_with_rights = broker
                .users
                .values()
                .filter(|(name, _)| permissions.lines().any(|l| l.starts_with(name.as_str())))
                .count();
            if queues.lines().count() >= expected_queues && users_with_rights == expected_users {
                return broker;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "definitions not imported within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `RABBITMQ_URL` for the user named `user` in definitions.json.
    pub fn url_for(&self, user: &str) -> String {
        let (name, password) = &self.users[user];
        let rest = self
            .vhost
            .url
            .split_once('@')
            .map_or(self.vhost.url.as_str(), |(_, r)| r);
        format!("amqp://{name}:{password}@{rest}")
    }
}

impl Drop for ProvisionedBroker {
    fn drop(&mut self) {
        for (name, _) in self.users.values() {
            let _ = std::panic::catch_unwind(|| rabbitmqctl_with(&["delete_user", name], None));
        }
    }
}

/// `deploy/rabbitmq/definitions.json`, parsed.
pub fn definitions() -> Value {
    let path = deploy_dir().join("rabbitmq/definitions.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
