//! The invariants of `docs/guarantees.md`, checked once a burst is over:
//! exactly one payment and one email per accepted order, no event left in
//! an outbox, work queues and dead-letter queues empty.

use std::time::Duration;

use lapin::Connection;
use sqlx::PgPool;
use test_support::SmtpSink;

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
    /// Waits until every accepted order is settled and emailed, then checks.
    pub async fn check(self, accepted: &[String]) {
        let expected = accepted.len();
        let mails = self.smtp.wait_for(expected, Duration::from_secs(120)).await;
        test_support::eventually(
            Duration::from_secs(60),
            "every accepted order settled",
            || async {
                let settled = scalar(
                    self.order_db,
                    "SELECT count(*) FROM orders WHERE status <> 'pending'",
                )
                .await;
                (settled == expected as i64).then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await; // late duplicates would show now
        assert_eq!(
            self.smtp.messages().len(),
            expected,
            "exactly one email per order"
        );
        let subjects: std::collections::HashSet<&str> =
            mails.iter().filter_map(|m| m["subject"].as_str()).collect();
        for id in accepted {
            assert!(
                subjects.iter().any(|s| s.ends_with(id.as_str())),
                "an email for order {id}"
            );
        }
        let counts = [
            (self.order_db, "SELECT count(*) FROM orders", "orders"),
            (self.payment_db, "SELECT count(*) FROM payments", "payments"),
            (
                self.payment_db,
                "SELECT count(DISTINCT order_id) FROM payments",
                "orders paid",
            ),
            (
                self.email_db,
                "SELECT count(*) FROM email_log WHERE status = 'sent'",
                "emails sent",
            ),
        ];
        for (pool, sql, what) in counts {
            assert_eq!(scalar(pool, sql).await, expected as i64, "{what}");
        }
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
}

pub(crate) async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("query")
}
