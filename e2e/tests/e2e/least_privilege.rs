//! The deployment's credentials are enough, and no more than enough.
//!
//! The broker is provisioned from `deploy/rabbitmq/definitions.json` (in a
//! vhost of its own, users renamed per test) and PostgreSQL from
//! `deploy/postgres/init.sql` (databases and roles under unique names); then
//! the whole pipeline runs with each service as its own restricted user and
//! role, with the production topology: no name prefix, each service's default
//! retry delays. A right missing from those files fails the checkout here
//! (a declare refused, a publish refused, a migration refused); a right too
//! broad fails the assertions on what a service must not be able to do.
//! Every work queue of `contract::names::WORK_QUEUES` is covered: each
//! service's consumers attach to all of theirs as the service's user, and
//! each user is checked on each of its own queues and refused every other
//! service's.

use std::{sync::Arc, time::Duration};

use contract::{
    events::{Event, OrderCreated, PaymentProcessed},
    names::{EMAIL_QUEUE, ORDER_QUEUE, PAYMENT_QUEUE, WORK_QUEUES, routing_key_of},
};
use e2e::{Connections, Options, Pipeline};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions},
    types::FieldTable,
};
use messaging::{AmqpSettings, topology::Topology};
use serde_json::json;
use sqlx::Connection as _;
use test_support::{self, ProvisionedBroker, ServiceDatabase};

use crate::compose_config::consumed_queues;

/// A service's production AMQP settings (from its own `Settings::from_env`:
/// no prefix, its default retry delays) on `url`.
fn amqp(mut settings: AmqpSettings, url: String) -> AmqpSettings {
    assert!(settings.prefix.is_empty());
    settings.url = url;
    settings.drain_timeout = Duration::from_secs(5);
    settings
}

async fn connect(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// Whether `error` is the broker's 403 ACCESS_REFUSED.
fn refused(error: &lapin::Error) -> bool {
    let text = format!("{error:?} {error}");
    text.contains("ACCESS_REFUSED") || text.contains("AccessRefused") || text.contains("403")
}

#[tokio::test]
async fn the_pipeline_runs_with_the_deployments_least_privilege_users_and_roles() {
    run_pipeline_as_service_users(ProvisionedBroker::provision()).await;
}

/// The same with only the users and permissions provisioned: each service
/// creates its exchanges, queues, retry tiers and bindings itself (a broker
/// reset without definitions, a queue deleted by an operator, a new retry
/// tier), which needs more than re-declaring what exists: creating a queue
/// with a dead-letter exchange needs read on the queue and write on that
/// exchange.
#[tokio::test]
async fn service_users_can_create_their_own_topology_on_an_empty_vhost() {
    run_pipeline_as_service_users(users_and_rights_only()).await;
}

/// definitions.json's users and permissions only: no exchange, queue or
/// binding.
fn users_and_rights_only() -> ProvisionedBroker {
    ProvisionedBroker::provision_with(|definitions| {
        for section in ["exchanges", "queues", "bindings"] {
            definitions[section] = json!([]);
        }
    })
}

async fn run_pipeline_as_service_users(broker: ProvisionedBroker) {
    let (order_db, payment_db, email_db) = (
        ServiceDatabase::provision("order"),
        ServiceDatabase::provision("payment"),
        ServiceDatabase::provision("email"),
    );
    let order = order_service::Settings::from_env().unwrap();
    let payment = payment_service::Settings::from_env().unwrap();
    let email = email_service::Settings::from_env().unwrap();
    let payment_amqp = amqp(payment.amqp, broker.url_for("payment_service"));
    let connections = Connections {
        order: (
            order_db.settings.clone(),
            amqp(order.amqp, broker.url_for("order_service")),
        ),
        payment: (payment_db.settings.clone(), payment_amqp.clone()),
        email: (
            email_db.settings.clone(),
            amqp(email.amqp, broker.url_for("email_service")),
        ),
    };
    let mut pipeline = Pipeline::start_with(Options {
        connections: Some(connections),
        ..Options::default()
    })
    .await;
    let admin = connect(&broker.vhost.url).await;
    // Each service attached to every one of its queues as its own user.
    for queue in WORK_QUEUES {
        test_support::eventually(
            Duration::from_secs(30),
            &format!("a consumer on {queue}"),
            || async { (test_support::consumer_count(&admin, queue).await >= 1).then_some(()) },
        )
        .await;
    }

    // A paid order, a declined one, and one whose provider fails twice
    // (two retries through the retry tiers: publishing to the default
    // exchange, the tier dead-lettering back to the work queue).
    let mut ids = Vec::new();
    for email in [
        "paid@example.com",
        "someone+decline@example.com",
        "someone+flaky@example.com",
    ] {
        let body = json!({"user_id": 1, "user_email": email,
            "items": [{"product_id": 1, "quantity": 1}]});
        let (status, order) = pipeline.checkout(&body).await;
        assert_eq!(status, 201, "{order}");
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    let mut statuses = Vec::new();
    for id in &ids {
        let order =
            test_support::eventually(Duration::from_secs(30), "the order settled", || async {
                let order = pipeline.get(&format!("/api/orders/{id}")).await;
                (order["status"] != "pending").then_some(order)
            })
            .await;
        statuses.push(order["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(statuses, ["paid", "failed", "paid"]);
    let mails = pipeline.smtp.wait_for(3, Duration::from_secs(30)).await;
    for id in &ids {
        assert!(
            mails
                .iter()
                .any(|m| m["subject"].as_str().unwrap_or("").ends_with(id.as_str())),
            "an email for {id}"
        );
    }

    // The dead-letter tool as payment-service's user: a malformed message is
    // parked at once (publish to the dead-letter exchange), listed, replayed
    // (publish to the default exchange; parked again) and purged.
    test_support::publish_raw(&admin, "", PAYMENT_QUEUE, b"not json", "malformed-1").await;
    let tool = Arc::new(connect(&payment_amqp.url).await);
    let queue = Topology::new(&payment_amqp).queue(PAYMENT_QUEUE, OrderCreated::ROUTING_KEY);
    let parked_once = || async {
        let n = dead_letters::count(&tool, &queue).await.unwrap();
        (n == 1).then_some(())
    };
    test_support::eventually(Duration::from_secs(10), "the message parked", parked_once).await;
    let listed = dead_letters::list(&tool, &queue, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    // `list` hands the message back when its channel closes; a quorum queue
    // counts it as ready again a moment later.
    test_support::eventually(Duration::from_secs(10), "listed back", parked_once).await;
    let replayed = dead_letters::replay(&tool, &payment_amqp, &queue, None, 10)
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    test_support::eventually(Duration::from_secs(10), "parked again", parked_once).await;
    assert_eq!(dead_letters::purge(&tool, &queue, None).await.unwrap(), 1);

    pipeline.stop().await;
    let _ = admin.close(200, "done".into()).await;
    let _ = tool.close(200, "done".into()).await;
}

#[tokio::test]
async fn a_service_user_is_refused_outside_its_own_queues_and_exchanges() {
    let broker = ProvisionedBroker::provision();
    let payment = connect(&broker.url_for("payment_service")).await;
    let email = connect(&broker.url_for("email_service")).await;

    // payment-service cannot read email-service's queue or its parked mail.
    for queue in [EMAIL_QUEUE, "email_service_queue.dlq"] {
        let channel = payment.create_channel().await.unwrap();
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await;
        assert!(
            got.as_ref().is_err_and(refused),
            "payment_service reading {queue}: {got:?}"
        );
    }
    // Nor declare (configure) or delete it, nor declare a queue of its own choosing.
    for queue in [ORDER_QUEUE, "anything"] {
        let channel = payment.create_channel().await.unwrap();
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        assert!(
            declared.as_ref().is_err_and(refused),
            "payment_service declaring {queue}: {declared:?}"
        );
    }
    // email-service publishes nothing on the event exchange: a forged
    // payment event from it is refused.
    let channel = email.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let published = async {
        channel
            .basic_publish(
                "ecommerce_events".into(),
                PaymentProcessed::ROUTING_KEY.into(),
                BasicPublishOptions::default(),
                b"{}",
                BasicProperties::default(),
            )
            .await?
            .await
    }
    .await;
    assert!(
        published.as_ref().is_err_and(refused),
        "email_service publishing to ecommerce_events: {published:?}"
    );
    // The admin user is not a service's: it may do anything in the vhost, and
    // exists for the management UI only.
    let _ = payment.close(200, "done".into()).await;
    let _ = email.close(200, "done".into()).await;
}

/// Each service user, with only the users and rights provisioned, declares
/// each of its work queues as its consumers do (the queue, its dead-letter
/// queue and retry tiers, their bindings) and reads each of them; and it is
/// refused reading or declaring any other service's work queue or
/// dead-letter queue. Unlike the pipeline above, this does not depend on
/// which queues the services consume yet.
#[tokio::test]
async fn each_service_user_has_its_rights_on_each_of_its_queues_and_none_on_the_others() {
    let broker = users_and_rights_only();
    let services = [
        (
            "order-service",
            "order_service",
            order_service::Settings::from_env().unwrap().amqp,
        ),
        (
            "payment-service",
            "payment_service",
            payment_service::Settings::from_env().unwrap().amqp,
        ),
        (
            "email-service",
            "email_service",
            email_service::Settings::from_env().unwrap().amqp,
        ),
    ];
    let mut logins = Vec::new();
    for (binary, user, settings) in services {
        let settings = amqp(settings, broker.url_for(user));
        let conn = connect(&settings.url).await;
        let topology = Topology::new(&settings);
        let own = consumed_queues(binary);
        assert!(!own.is_empty(), "{binary} consumes a queue");
        for base in own {
            let queue = topology.queue(base, routing_key_of(base).unwrap());
            topology
                .declare_queue(&conn, &queue)
                .await
                .unwrap_or_else(|e| panic!("{user} declaring {base} and its tiers: {e}"));
            let names = [&queue.name, &queue.dead_letter_queue]
                .into_iter()
                .chain(queue.retry_queues.iter().map(|(name, _)| name));
            for name in names {
                let channel = conn.create_channel().await.unwrap();
                let got = channel
                    .basic_get(name.as_str().into(), BasicGetOptions { no_ack: true })
                    .await;
                assert!(got.is_ok(), "{user} reading {name}: {got:?}");
                let _ = channel.close(200, "done".into()).await;
            }
        }
        logins.push((binary, user, conn));
    }

    // Every queue now exists: what is refused is refused for want of rights.
    for (binary, user, conn) in &logins {
        let own = consumed_queues(binary);
        for queue in WORK_QUEUES.into_iter().filter(|q| !own.contains(q)) {
            for name in [queue.to_owned(), format!("{queue}.dlq")] {
                let channel = conn.create_channel().await.unwrap();
                let got = channel
                    .basic_get(name.as_str().into(), BasicGetOptions { no_ack: true })
                    .await;
                assert!(
                    got.as_ref().is_err_and(refused),
                    "{user} reading {name}: {got:?}"
                );
            }
            let channel = conn.create_channel().await.unwrap();
            let declared = channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await;
            assert!(
                declared.as_ref().is_err_and(refused),
                "{user} declaring {queue}: {declared:?}"
            );
        }
    }
    for (_, _, conn) in logins {
        let _ = conn.close(200, "done".into()).await;
    }
}

#[tokio::test]
async fn a_service_role_owns_its_database_and_reaches_no_other() {
    let order = ServiceDatabase::provision("order");
    let payment = ServiceDatabase::provision("payment");

    // Its own database: connects, creates tables (the migrations do).
    let mut own = sqlx::PgConnection::connect(&order.settings.url)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE probe (id int)")
        .execute(&mut own)
        .await
        .unwrap();
    let (superuser, create_db, create_role): (bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut own)
    .await
    .unwrap();
    assert!(!superuser && !create_db && !create_role);
    let created = sqlx::query("CREATE DATABASE should_not_exist")
        .execute(&mut own)
        .await;
    assert!(created.is_err(), "the role cannot create databases");
    own.close().await.unwrap();

    // Another service's database: refused at connect (CONNECT revoked from PUBLIC).
    let other = sqlx::PgConnection::connect(&order.url_on(&payment.database)).await;
    let error = other.expect_err("connecting to another service's database fails");
    assert!(
        error.to_string().contains("permission denied"),
        "unexpected error: {error}"
    );
}

/// In the compose deployment a service role cannot even connect to the
/// `postgres` maintenance database (deploy/postgres/init.sh revokes it). The
/// service's start-up (create the database if missing, then migrate) must
/// not need it when the database exists. Locked out of `postgres` here for
/// this one role only (a setting that makes its connection there fail), so
/// the shared test server is not changed for anyone else.
#[tokio::test]
async fn a_service_starts_without_reaching_the_maintenance_database() {
    let order = ServiceDatabase::provision("order");
    let mut admin = sqlx::PgConnection::connect(&test_support::admin_database_url())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE \"{}\" IN DATABASE postgres SET session_preload_libraries = 'no_such_library'",
        order.role
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let locked_out = sqlx::PgConnection::connect(&order.url_on("postgres")).await;
    assert!(locked_out.is_err(), "the role is locked out of postgres");

    let pool =
        messaging::db::connect_and_migrate(&order.settings, &order_service::startup::MIGRATOR)
            .await
            .expect("starts on its existing database");
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(products > 0, "migrated, with the catalog");
    pool.close().await;
    admin.close().await.unwrap();
}
