//! The binary's command line: no arguments runs the service; `stock set`
//! and `stock show` are the operator's commands on the catalog's stock,
//! straight on the service's database (`DATABASE_URL`), which they never
//! create or migrate.

use std::{io::Write, process::ExitCode};

use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand};
use messaging::db::{self, DatabaseSettings, Plans};
use sqlx::{PgConnection, PgPool};

const NOT_MIGRATED: &str = "run order-service once to create and migrate its database";

/// Runs order-service, configured by the environment (docs/configuration.md).
///
/// With a subcommand, runs that operator command on its database instead.
#[derive(Debug, Parser)]
#[command(
    name = "order-service",
    version,
    after_help = "The stock commands use the service's DATABASE_URL (default \
                  postgres://postgres:postgres@127.0.0.1:5432/order_db).\n\
                  Usage errors exit with 2, failures (unknown product, no database) with 1."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Set or show the catalog's stock: the units left to order.
    #[command(subcommand)]
    Stock(StockCommand),
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum StockCommand {
    /// Set a product's stock, then print its line.
    ///
    /// The units are what checkouts may take from now on: units pending
    /// orders already took are not counted. `untracked` accepts any quantity.
    Set {
        /// The product's id (`stock show` lists them).
        product_id: i64,
        /// A whole number of units, 0 or more, or `untracked`.
        // Negative numbers reach the parser, which says what is wrong.
        #[arg(value_parser = units, allow_negative_numbers = true)]
        units: Units,
    },
    /// Show the stock of every product, or of one.
    ///
    /// RESERVED: the units pending orders took. SOLD: those of paid orders,
    /// refunds pending included.
    Show {
        /// Only this product.
        product_id: Option<i64>,
    },
}

/// A product's stock as the operator sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    Tracked(i64),
    /// `stock IS NULL`: any quantity is accepted.
    Untracked,
}

fn units(value: &str) -> Result<Units, String> {
    match value {
        "untracked" => Ok(Units::Untracked),
        _ => match value.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Units::Tracked(n)),
            _ => Err(format!(
                "must be a whole number of units (0 or more) or `untracked`, got {value:?}"
            )),
        },
    }
}

/// One line of the `show` table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StockLine {
    pub id: i64,
    pub name: String,
    pub stock: Option<i64>,
    pub reserved: i64,
    pub sold: i64,
}

/// The whole `main` of `order-service stock …`: 0 on success, 1 with the
/// error on stderr otherwise.
pub async fn main(command: StockCommand) -> ExitCode {
    let result = async {
        let settings = DatabaseSettings::from_env("order_db")?;
        run(&settings, command).await
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e:#}", crate::SERVICE);
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` and prints its result to stdout.
pub async fn run(settings: &DatabaseSettings, command: StockCommand) -> anyhow::Result<()> {
    let output = execute(settings, command).await?;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `… | head` closed the pipe: not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow!(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// [`run`], returning what it would print.
pub async fn execute(settings: &DatabaseSettings, command: StockCommand) -> anyhow::Result<String> {
    let pool = connect(settings).await?;
    let result = execute_on(&pool, command).await;
    pool.close().await;
    result
}

async fn execute_on(pool: &PgPool, command: StockCommand) -> anyhow::Result<String> {
    check_schema(pool).await?;
    match command {
        StockCommand::Set { product_id, units } => {
            let stock = match units {
                Units::Tracked(n) => Some(n),
                Units::Untracked => None,
            };
            // The line printed is the one this update left.
            let mut tx = pool.begin().await?;
            let updated = sqlx::query("UPDATE products SET stock = $2 WHERE id = $1")
                .bind(product_id)
                .bind(stock)
                .execute(&mut *tx)
                .await
                .context("setting the stock")?
                .rows_affected();
            if updated == 0 {
                bail!("no product with id {product_id}");
            }
            let lines = lines(&mut tx, Some(product_id)).await?;
            tx.commit().await?;
            Ok(table(&lines))
        }
        StockCommand::Show { product_id } => {
            let mut conn = pool.acquire().await?;
            let lines = lines(&mut conn, product_id).await?;
            match product_id {
                Some(id) if lines.is_empty() => bail!("no product with id {id}"),
                None if lines.is_empty() => Ok("The catalog has no products.\n".into()),
                _ => Ok(table(&lines)),
            }
        }
    }
}

/// One connection is all a command needs; a database that does not exist
/// is an order-service that never ran, not a reason to create it.
async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let settings = DatabaseSettings {
        max_connections: 1,
        ..settings.clone()
    };
    let url = runtime::config::redact_url(&settings.url);
    match db::connect(&settings, Plans::PerExecution).await {
        Ok(pool) => Ok(pool),
        // 3D000 invalid_catalog_name: the database does not exist.
        Err(e)
            if e.downcast_ref::<sqlx::Error>()
                .and_then(|e| e.as_database_error())
                .and_then(|e| e.code())
                .as_deref()
                == Some("3D000") =>
        {
            Err(e.context(format!("{url} does not exist: {NOT_MIGRATED}")))
        }
        Err(e) => Err(e.context(format!("cannot reach the database at {url}"))),
    }
}

/// The `products` table and its `stock` column (migration 0003, which also
/// adds `order_items.reserved`) must be there already.
async fn check_schema(pool: &PgPool) -> anyhow::Result<()> {
    let (table, column): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('products') IS NOT NULL, \
         EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('products') \
                 AND attname = 'stock' AND NOT attisdropped)",
    )
    .fetch_one(pool)
    .await
    .context("reading the database's schema")?;
    match (table, column) {
        (false, _) => bail!("the database has no products table: {NOT_MIGRATED}"),
        (true, false) => bail!("the products table has no stock column: {NOT_MIGRATED}"),
        (true, true) => Ok(()),
    }
}

/// The stock lines of every product, or of `product_id`, by id. Only lines
/// that took units (`reserved`) count: the others never touched the stock.
async fn lines(conn: &mut PgConnection, product_id: Option<i64>) -> anyhow::Result<Vec<StockLine>> {
    sqlx::query_as(
        "SELECT p.id, p.name, p.stock, \
           coalesce(sum(i.quantity) FILTER (WHERE o.status = 'pending'), 0)::bigint \
             AS reserved, \
           coalesce(sum(i.quantity) FILTER (WHERE o.status IN ('paid', 'refund_pending')), 0) \
             ::bigint AS sold \
         FROM products p \
         LEFT JOIN order_items i ON i.product_id = p.id AND i.reserved \
         LEFT JOIN orders o ON o.id = i.order_id \
         WHERE $1::bigint IS NULL OR p.id = $1 \
         GROUP BY p.id ORDER BY p.id",
    )
    .bind(product_id)
    .fetch_all(conn)
    .await
    .context("reading the stock")
}

/// The lines as a table, numbers aligned right.
pub fn table(lines: &[StockLine]) -> String {
    let heading = ["ID", "NAME", "STOCK", "RESERVED", "SOLD"].map(String::from);
    let rows: Vec<[String; 5]> = lines
        .iter()
        .map(|l| {
            [
                l.id.to_string(),
                // One line per product whatever the name holds.
                l.name
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect(),
                l.stock
                    .map_or_else(|| "untracked".into(), |n| n.to_string()),
                l.reserved.to_string(),
                l.sold.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..heading.len())
        .map(|col| {
            std::iter::once(&heading)
                .chain(&rows)
                .map(|row| row[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&heading).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(col, (cell, width))| match col {
                1 => format!("{cell:<width$}"),
                _ => format!("{cell:>width$}"),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn parse(words: &str) -> Result<Option<Command>, ErrorKind> {
        let words = std::iter::once("order-service").chain(words.split_whitespace());
        Cli::try_parse_from(words)
            .map(|cli| cli.command)
            .map_err(|e| e.kind())
    }

    fn set(product_id: i64, units: Units) -> Result<Option<Command>, ErrorKind> {
        Ok(Some(Command::Stock(StockCommand::Set {
            product_id,
            units,
        })))
    }

    #[test]
    fn no_arguments_is_the_service() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("--help"), Err(ErrorKind::DisplayHelp));
        assert_eq!(parse("--version"), Err(ErrorKind::DisplayVersion));
        assert_eq!(parse("--port 1"), Err(ErrorKind::UnknownArgument));
        assert_eq!(parse("frob"), Err(ErrorKind::InvalidSubcommand));
    }

    #[test]
    fn set_takes_units_or_untracked_never_a_negative() {
        assert_eq!(parse("stock set 3 0"), set(3, Units::Tracked(0)));
        assert_eq!(parse("stock set 3 12"), set(3, Units::Tracked(12)));
        assert_eq!(parse("stock set 3 untracked"), set(3, Units::Untracked));
        assert_eq!(parse("stock set 3 -5"), Err(ErrorKind::ValueValidation));
        assert_eq!(parse("stock set 3 1.5"), Err(ErrorKind::ValueValidation));
        assert_eq!(parse("stock set x 1"), Err(ErrorKind::ValueValidation));
        assert_eq!(
            parse("stock set 3"),
            Err(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(parse("stock set 3 1 2"), Err(ErrorKind::UnknownArgument));
    }

    #[test]
    fn show_takes_an_optional_product() {
        let show = |product_id| Ok(Some(Command::Stock(StockCommand::Show { product_id })));
        assert_eq!(parse("stock show"), show(None));
        assert_eq!(parse("stock show 4"), show(Some(4)));
        assert_eq!(parse("stock frob"), Err(ErrorKind::InvalidSubcommand));
        assert!(parse("stock").is_err());
    }

    #[test]
    fn the_table_aligns_numbers_and_names_untracked_stock() {
        let line = |id, name: &str, stock, reserved, sold| StockLine {
            id,
            name: name.into(),
            stock,
            reserved,
            sold,
        };
        let shown = table(&[
            line(1, "Gaming Laptop", Some(1_000_000), 2, 30),
            line(12, "Mouse\nPad", None, 0, 0),
        ]);
        let expected = [
            "ID  NAME               STOCK  RESERVED  SOLD",
            " 1  Gaming Laptop    1000000         2    30",
            "12  Mouse Pad      untracked         0     0",
        ];
        assert_eq!(shown, expected.map(|l| format!("{l}\n")).concat());
    }
}
