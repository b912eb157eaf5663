//! `order-service stock set|show`: the real binary against a real database.

use std::process::Output;

use messaging::db::{self, DatabaseSettings, Plans};
use sqlx::PgPool;
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_order-service");

/// The binary run with `args` and `DATABASE_URL` = `database_url`.
async fn run(database_url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(BINARY)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("DATABASE_MAX_CONNECTIONS")
        .kill_on_drop(true)
        .output()
        .await
        .expect("order-service runs")
}

fn text(output: &Output) -> (i32, String, String) {
    (
        output.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A fresh database, migrated as order-service migrates it at start.
async fn migrated() -> (DatabaseSettings, PgPool) {
    let settings = test_support::fresh_database("order");
    let pool = db::connect_and_migrate(&settings, &order_service::startup::MIGRATOR)
        .await
        .expect("the database is created and migrated");
    (settings, pool)
}

/// Stock, reserved and sold of product `id` in a `show` or `set` table.
fn figures(stdout: &str, id: i64) -> [String; 3] {
    let line = stdout
        .lines()
        .skip(1)
        .find(|l| l.split_whitespace().next() == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("no line for product {id} in:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let [.., stock, reserved, sold] = words[..] else {
        panic!("short line {line:?}");
    };
    [stock, reserved, sold].map(String::from)
}

async fn stock_of(pool: &PgPool, id: i64) -> Option<i64> {
    sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn set_then_show_round_trips_and_untracked_stops_tracking() {
    let (database, pool) = migrated().await;
    let url = &database.url;

    let (code, stdout, stderr) = text(&run(url, &["stock", "set", "2", "7"]).await);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ID  NAME"), "{stdout}");
    assert!(stdout.contains("Wireless Mouse"), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        2,
        "heading and the product: {stdout}"
    );
    assert_eq!(figures(&stdout, 2), ["7", "0", "0"]);
    assert_eq!(stock_of(&pool, 2).await, Some(7));

    let (code, shown, _) = text(&run(url, &["stock", "show", "2"]).await);
    assert_eq!(code, 0);
    assert_eq!(shown, stdout, "show prints the line set printed");

    let (code, stdout, stderr) = text(&run(url, &["stock", "set", "2", "untracked"]).await);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(figures(&stdout, 2)[0], "untracked");
    assert_eq!(stock_of(&pool, 2).await, None);

    let (code, stdout, _) = text(&run(url, &["stock", "set", "3", "0"]).await);
    assert_eq!(code, 0);
    assert_eq!(figures(&stdout, 3)[0], "0");

    // Every product, in id order; only the ones set (and 1) are tracked.
    let (code, all, _) = text(&run(url, &["stock", "show"]).await);
    assert_eq!(code, 0);
    let ids: Vec<&str> = all
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(figures(&all, 1)[0], "1000000");
    assert_eq!(figures(&all, 3)[0], "0");
    assert_eq!(figures(&all, 4)[0], "untracked");
}

#[tokio::test]
async fn an_unknown_product_exits_1_and_changes_nothing() {
    let (database, pool) = migrated().await;
    for args in [
        ["stock", "set", "99", "5"].as_slice(),
        &["stock", "show", "99"],
    ] {
        let (code, stdout, stderr) = text(&run(&database.url, args).await);
        assert_eq!(code, 1, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("no product with id 99"), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
    let tracked: i64 = sqlx::query_scalar("SELECT count(*) FROM products WHERE stock IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tracked, 1);
}

#[tokio::test]
async fn bad_usage_exits_2_with_the_usage_and_help_lists_stock() {
    // Nothing listens there: a command that got past its usage would exit 1.
    let nowhere = "postgres://postgres@127.0.0.1:1/order_db";
    for args in [
        ["stock", "set", "1", "-5"].as_slice(),
        &["stock", "set", "1", "lots"],
        &["stock", "set", "1"],
        &["stock", "frob"],
        &["stock"],
        &["frob"],
        &["--port", "1"],
    ] {
        let (code, stdout, stderr) = text(&run(nowhere, args).await);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        // clap: the usage, or for a bad value the error and a pointer to it.
        assert!(
            stderr.contains("Usage:") || stderr.contains("try '--help'"),
            "{args:?}: {stderr}"
        );
    }
    let (_, _, stderr) = text(&run(nowhere, &["stock", "set", "1", "-5"]).await);
    assert!(stderr.contains("or `untracked`"), "{stderr}");

    let (code, help, _) = text(&run(nowhere, &["--help"]).await);
    assert_eq!(code, 0);
    assert!(help.contains("stock"), "{help}");
    assert!(help.contains("DATABASE_URL"), "{help}");
    let (code, help, _) = text(&run(nowhere, &["stock", "--help"]).await);
    assert_eq!(code, 0);
    assert!(help.contains("set") && help.contains("show"), "{help}");
    let (code, version, _) = text(&run(nowhere, &["--version"]).await);
    assert_eq!(code, 0);
    assert!(version.starts_with("order-service "), "{version}");
}

#[tokio::test]
async fn no_arguments_still_runs_the_service() {
    // The service's own configuration error, not a usage error: it got as
    // far as reading its settings.
    let output = tokio::process::Command::new(BINARY)
        .env("BIND_ADDR", "not-an-address")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let (code, _, stderr) = text(&output);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("BIND_ADDR"), "{stderr}");
}

#[tokio::test]
async fn a_database_not_migrated_is_never_created_nor_migrated() {
    let missing = test_support::fresh_database("order");
    let (code, _, stderr) = text(&run(&missing.url, &["stock", "show"]).await);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(
        stderr.contains("run order-service once to create and migrate its database"),
        "{stderr}"
    );
    let admin = PgPool::connect(&test_support::admin_database_url())
        .await
        .unwrap();
    let name = missing.url.rsplit('/').next().unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(!exists, "the command created {name}");

    // Created but empty, then with a catalog from before stock existed.
    db::create_database_if_missing(&missing).await.unwrap();
    let pool = db::connect(&missing, Plans::PerExecution).await.unwrap();
    for (step, expected) in [
        (None, "no products table"),
        (
            Some("CREATE TABLE products (id bigint PRIMARY KEY, name text NOT NULL)"),
            "no stock column",
        ),
    ] {
        if let Some(sql) = step {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        for args in [["stock", "show"].as_slice(), &["stock", "set", "1", "5"]] {
            let (code, _, stderr) = text(&run(&missing.url, args).await);
            assert_eq!(code, 1, "{args:?}: {stderr}");
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
            assert!(stderr.contains("run order-service once"), "{stderr}");
        }
    }
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tables, 1, "nothing migrated: only the table made above");
}

/// An order of `quantity` units of `product` in `status`; `reserved` when
/// the line took them from stock.
async fn insert_order(pool: &PgPool, status: &str, product: i64, quantity: i32, reserved: bool) {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO orders (id, user_id, user_email, status, total_amount, currency, \
                             processing_duration_ms) \
         VALUES ($1, 1, 'buyer@example.com', $2, 10, 'USD', 0.1)",
    )
    .bind(id)
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO order_items (order_id, line_no, product_id, name, unit_price, quantity, \
                                  line_total, reserved) \
         VALUES ($1, 1, $2, 'x', 1, $3, $3, $4)",
    )
    .bind(id)
    .bind(product)
    .bind(quantity)
    .bind(reserved)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn show_counts_reserved_units_of_pending_and_sold_of_paid_orders() {
    let (database, pool) = migrated().await;
    for (status, quantity) in [
        ("pending", 2),
        ("pending", 3),
        ("paid", 5),
        ("refund_pending", 7),
        // Units given back: neither reserved nor sold.
        ("failed", 11),
        ("cancelled", 13),
        ("refunded", 17),
    ] {
        insert_order(&pool, status, 1, quantity, true).await;
    }
    // Lines that never took units (the product was not tracked then).
    insert_order(&pool, "pending", 1, 19, false).await;
    insert_order(&pool, "paid", 1, 23, false).await;
    insert_order(&pool, "paid", 4, 29, true).await;

    let (code, stdout, stderr) = text(&run(&database.url, &["stock", "show"]).await);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(figures(&stdout, 1), ["1000000", "5", "12"]);
    assert_eq!(figures(&stdout, 2), ["untracked", "0", "0"]);
    assert_eq!(figures(&stdout, 4), ["untracked", "0", "29"]);

    let (code, stdout, _) = text(&run(&database.url, &["stock", "set", "1", "40"]).await);
    assert_eq!(code, 0);
    assert_eq!(figures(&stdout, 1), ["40", "5", "12"]);
}
