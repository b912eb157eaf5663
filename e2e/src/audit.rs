//! The invariants of `docs/guarantees.md`, checked once a burst is over:
//! every accepted order final, exactly one charge per order and at most one
//! refund, charges − refunds = paid orders, stock + reserved + sold = the
//! starting stock, the emails each final state calls for (each once), no
//! event left in an outbox, work queues and dead-letter queues empty.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use lapin::Connection;
use sqlx::PgPool;
use test_support::SmtpSink;
use uuid::Uuid;

/// Product 1's stock in a fresh database; no other product is tracked.
pub const FRESH_STOCK: [(i64, i64); 1] = [(1, 1_000_000)];

/// What the audit looks at: each service's database, the SMTP server and
/// the broker (with the name prefix the services use).
pub struct Audit<'a> {
    pub order_db: &'a PgPool,
    pub payment_db: &'a PgPool,
    pub email_db: &'a PgPool,
    pub smtp: &'a mut SmtpSink,
    pub broker: &'a Connection,
    pub prefix: &'a str,
}

impl Audit<'_> {
    /// [`Self::check_stock`] from a fresh database's stock.
    pub async fn check(self, accepted: &[String]) {
        self.check_stock(accepted, &FRESH_STOCK).await;
    }

    /// Waits until every accepted order is final and its emails are sent,
    /// then checks; `starting` is each tracked product's stock before the
    /// run.
    pub async fn check_stock(self, accepted: &[String], starting: &[(i64, i64)]) {
        let expected = accepted.len() as i64;
        test_support::eventually(
            Duration::from_secs(120),
            "every accepted order final",
            || async {
                let settled = scalar(
                    self.order_db,
                    "SELECT count(*) FROM orders WHERE status IN ('paid', 'failed', 'cancelled', 'refunded')",
                )
                .await;
                let charges = scalar(self.payment_db, "SELECT count(*) FROM payments").await;
                (settled == expected && charges == expected).then_some(())
            },
        )
        .await;
        let emails = self.expected_emails().await;
        let total: usize = emails.values().map(Vec::len).sum();
        self.smtp.wait_for(total, Duration::from_secs(120)).await;
        tokio::time::sleep(Duration::from_millis(500)).await; // late duplicates would show now
        assert_eq!(self.smtp.messages().len(), total, "emails sent, each once");
        let sent = self.sent_emails().await;
        assert_eq!(sent, emails, "the emails of each order's final state");

        let counts = [
            (self.order_db, "SELECT count(*) FROM orders", "orders"),
            (
                self.payment_db,
                "SELECT count(DISTINCT order_id) FROM payments",
                "orders charged once",
            ),
        ];
        for (pool, sql, what) in counts {
            assert_eq!(scalar(pool, sql).await, expected, "{what}");
        }
        let charges = scalar(
            self.payment_db,
            "SELECT count(*) FROM payments WHERE status = 'completed'",
        )
        .await;
        let refunds = scalar(self.payment_db, "SELECT count(*) FROM refunds").await;
        let paid = scalar(
            self.order_db,
            "SELECT count(*) FROM orders WHERE status = 'paid'",
        )
        .await;
        assert_eq!(charges - refunds, paid, "charges − refunds = paid orders");
        self.check_stock_ledger(starting).await;

        for pool in [self.order_db, self.payment_db] {
            let sql = "SELECT count(*) FROM outbox WHERE published_at IS NULL";
            assert_eq!(scalar(pool, sql).await, 0, "outbox published");
        }
        for queue in contract::names::WORK_QUEUES {
            let name = |suffix: &str| format!("{}{queue}{suffix}", self.prefix);
            let depth = test_support::queue_depth(self.broker, &name("")).await;
            assert_eq!(depth, 0, "{queue} drained");
            let parked = test_support::queue_depth(self.broker, &name(".dlq")).await;
            assert_eq!(parked, 0, "{queue}.dlq empty");
        }
    }

    /// stock + reserved (pending orders) + sold (paid, refund pending) =
    /// the starting stock, for every tracked product.
    async fn check_stock_ledger(&self, starting: &[(i64, i64)]) {
        for &(product, start) in starting {
            let (stock, reserved, sold): (i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT stock FROM products WHERE id = $1), \
                   coalesce(sum(i.quantity) FILTER (WHERE o.status = 'pending'), 0)::bigint, \
                   coalesce(sum(i.quantity) FILTER (WHERE o.status IN ('paid', 'refund_pending')), 0)::bigint \
                 FROM order_items i JOIN orders o ON o.id = i.order_id \
                 WHERE i.product_id = $1 AND i.reserved",
            )
            .bind(product)
            .fetch_one(self.order_db)
            .await
            .expect("stock ledger");
            assert_eq!(
                stock + reserved + sold,
                start,
                "product {product}: stock {stock} + reserved {reserved} + sold {sold}"
            );
        }
    }

    /// The emails each order's final state calls for: a paid order its
    /// confirmation, a declined one its failure, a refunded one both its
    /// confirmation and its refund; a cancelled one its cancellation, plus
    /// the email of the payment that still arrived for it and, when that
    /// was a charge, its refund.
    async fn expected_emails(&self) -> BTreeMap<Uuid, Vec<String>> {
        let orders: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, status FROM orders")
            .fetch_all(self.order_db)
            .await
            .expect("orders");
        let payments: HashMap<Uuid, String> =
            sqlx::query_as("SELECT order_id, status FROM payments")
                .fetch_all(self.payment_db)
                .await
                .expect("payments")
                .into_iter()
                .collect();
        orders
            .into_iter()
            .map(|(id, status)| {
                let payment = payments.get(&id).map(String::as_str);
                let kinds: &[&str] = match (status.as_str(), payment) {
                    ("paid", _) => &["confirmation"],
                    ("failed", _) => &["payment_failed"],
                    ("refunded", _) => &["confirmation", "refund"],
                    ("cancelled", Some("completed")) => &["cancelled", "confirmation", "refund"],
                    ("cancelled", Some(_)) => &["cancelled", "payment_failed"],
                    ("cancelled", None) => &["cancelled"],
                    (other, _) => panic!("order {id} is still {other}"),
                };
                let mut kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
                kinds.sort();
                (id, kinds)
            })
            .collect()
    }

    async fn sent_emails(&self) -> BTreeMap<Uuid, Vec<String>> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT order_id, kind FROM email_log WHERE status = 'sent' ORDER BY order_id, kind",
        )
        .fetch_all(self.email_db)
        .await
        .expect("email_log");
        let mut sent: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
        for (id, kind) in rows {
            sent.entry(id).or_default().push(kind);
        }
        sent
    }
}

pub(crate) async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("query")
}
