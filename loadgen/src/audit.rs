//! After the run: wait (bounded) for the pipeline to drain, read what the
//! three databases and the mailbox hold for this run's orders, and judge it.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sqlx::{PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

use crate::{
    classify::{self, EmailRows, Observed, OrderRow, Tally, Verdict},
    cli::AuditArgs,
    mail::Mailbox,
    orders::Accepted,
    timing::{self, EndToEnd},
};

/// The services' databases.
#[derive(Debug, Clone)]
pub struct Databases {
    pub order: PgPool,
    pub payment: PgPool,
    pub email: PgPool,
}

impl Databases {
    pub async fn connect(args: &AuditArgs) -> anyhow::Result<Self> {
        let connect = |url: &str| {
            let url = url.to_owned();
            async move {
                PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&url)
                    .await
                    .map_err(|e| anyhow::anyhow!("connecting to {}: {e}", redact(&url)))
            }
        };
        Ok(Self {
            order: connect(&args.order_db_url).await?,
            payment: connect(&args.payment_db_url).await?,
            email: connect(&args.email_db_url).await?,
        })
    }
}

/// A URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// How the audit goes.
#[derive(Debug, Clone)]
pub struct AuditPlan {
    /// `LIKE` pattern of this run's emails (to find orders stored without a 201).
    pub email_pattern: String,
    pub mailbox: Option<Mailbox>,
    pub drain_timeout: Duration,
    pub settle: Duration,
}

#[derive(Debug, Clone)]
pub struct Audit {
    pub verdict: Verdict,
    pub end_to_end: EndToEnd,
    /// Whether everything arrived before the drain timeout.
    pub drained: bool,
    /// How long the audit waited for the pipeline.
    pub waited: Duration,
}

pub async fn audit(
    dbs: &Databases,
    accepted: &[Accepted],
    plan: &AuditPlan,
) -> anyhow::Result<Audit> {
    let ids: Vec<Uuid> = accepted.iter().map(|a| a.id).collect();
    let started = Instant::now();
    let drained = wait_for_drain(dbs, &ids, plan).await?;
    let waited = started.elapsed();
    // Duplicates arrive late, if at all: give them a moment to show.
    tokio::time::sleep(plan.settle).await;
    let observed = observe(dbs, &ids, plan).await?;
    Ok(Audit {
        verdict: classify::classify(accepted, &observed),
        end_to_end: timing::end_to_end(accepted, &observed),
        drained,
        waited,
    })
}

/// Polls until every order is settled and emailed (and in the mailbox),
/// printing progress; `false` when the timeout came first.
async fn wait_for_drain(dbs: &Databases, ids: &[Uuid], plan: &AuditPlan) -> anyhow::Result<bool> {
    let expected = ids.len() as i64;
    let deadline = Instant::now() + plan.drain_timeout;
    let mut last_print = Instant::now();
    let distinct: HashSet<Uuid> = ids.iter().copied().collect();
    loop {
        // A loaded server may refuse a connection for a while (its
        // max_connections taken by the services): keep trying until the deadline.
        let (settled, emailed) = match drain_counts(dbs, ids).await {
            Ok(counts) => counts,
            Err(e) if Instant::now() < deadline => {
                eprintln!("[drain] {e}; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut mailed = None;
        if settled >= expected && emailed >= expected {
            let Some(mailbox) = &plan.mailbox else {
                return Ok(true);
            };
            let got = mailbox.order_ids().await?;
            let count = got.iter().filter(|id| distinct.contains(id)).count();
            if count >= distinct.len() {
                return Ok(true);
            }
            mailed = Some(count);
        }
        if Instant::now() >= deadline {
            eprintln!("audit: gave up waiting after {:?}", plan.drain_timeout);
            return Ok(false);
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            let mailed = mailed.map_or(String::new(), |m| format!("  mailbox {m}/{expected}"));
            eprintln!("[drain] settled {settled}/{expected}  emailed {emailed}/{expected}{mailed}");
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How many of the orders are settled, and how many emailed.
async fn drain_counts(dbs: &Databases, ids: &[Uuid]) -> sqlx::Result<(i64, i64)> {
    let settled = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE id = ANY($1) AND status <> 'pending'",
    )
    .bind(ids)
    .fetch_one(&dbs.order)
    .await?;
    let emailed = sqlx::query_scalar(
        "SELECT count(*) FROM email_log WHERE order_id = ANY($1) AND status = 'sent'",
    )
    .bind(ids)
    .fetch_one(&dbs.email)
    .await?;
    Ok((settled, emailed))
}

async fn observe(dbs: &Databases, ids: &[Uuid], plan: &AuditPlan) -> anyhow::Result<Observed> {
    let orders: Vec<(Uuid, String, DateTime<Utc>, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, status, created_at, updated_at FROM orders WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&dbs.order)
            .await?;
    let unacknowledged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE user_email LIKE $1 AND NOT (id = ANY($2))",
    )
    .bind(&plan.email_pattern)
    .bind(ids)
    .fetch_one(&dbs.order)
    .await?;
    let payments: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT order_id, count(*) FROM payments WHERE order_id = ANY($1) GROUP BY order_id",
    )
    .bind(ids)
    .fetch_all(&dbs.payment)
    .await?;
    let emails: Vec<(Uuid, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT order_id, count(*) FILTER (WHERE status = 'sent'), max(sent_at) \
         FROM email_log WHERE order_id = ANY($1) GROUP BY order_id",
    )
    .bind(ids)
    .fetch_all(&dbs.email)
    .await?;
    let mails = match &plan.mailbox {
        Some(mailbox) => {
            let accepted: HashSet<Uuid> = ids.iter().copied().collect();
            Some(classify::mails_per_order(
                &mailbox.order_ids().await?,
                &accepted,
            ))
        }
        None => None,
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Observed {
        orders: orders
            .into_iter()
            .map(|(id, status, created_at, updated_at)| {
                let row = OrderRow {
                    status,
                    created_at,
                    updated_at,
                };
                (id, row)
            })
            .collect(),
        payments: payments.into_iter().map(|(id, n)| (id, count(n))).collect(),
        emails: emails
            .into_iter()
            .map(|(id, sent, sent_at)| {
                (
                    id,
                    EmailRows {
                        sent: count(sent),
                        sent_at,
                    },
                )
            })
            .collect::<HashMap<_, _>>(),
        mails,
        unacknowledged: count(unacknowledged),
    })
}

impl Audit {
    pub fn report(&self) -> String {
        let v = &self.verdict;
        let mut out = String::new();
        let verdict = if v.is_clean() { "CLEAN" } else { "NOT CLEAN" };
        let _ = writeln!(
            out,
            "audit: {verdict} — {} accepted orders ({} paid, {} failed); waited {:.1}s for the pipeline{}",
            v.accepted,
            v.paid,
            v.failed,
            self.waited.as_secs_f64(),
            if self.drained { "" } else { " (timed out)" }
        );
        let tally = |t: &Tally| format!("{} lost, {} duplicated", t.missing, t.duplicated);
        let _ = writeln!(
            out,
            "  orders:   {}, {} still pending",
            tally(&v.orders),
            v.unsettled
        );
        let _ = writeln!(out, "  payments: {}", tally(&v.payments));
        let _ = writeln!(
            out,
            "  emails:   {} (email_log, status sent)",
            tally(&v.emails)
        );
        match &v.mails {
            Some(m) => writeln!(out, "  mailbox:  {}", tally(m)),
            None => writeln!(out, "  mailbox:  not checked (no --mail-api)"),
        }
        .expect("writing to a String");
        if v.wrong_outcome > 0 {
            let _ = writeln!(
                out,
                "  +decline orders that ended paid: {}",
                v.wrong_outcome
            );
        }
        if v.repeated_ids > 0 {
            let _ = writeln!(
                out,
                "  order ids answered to more than one checkout: {}",
                v.repeated_ids
            );
        }
        if v.unacknowledged > 0 {
            let _ = writeln!(
                out,
                "  note: {} orders of this run were stored without a 201 reaching the client (not audited)",
                v.unacknowledged
            );
        }
        out.push_str(&self.end_to_end.report());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_error_messages() {
        assert_eq!(
            redact("postgres://postgres:secret@127.0.0.1:5432/order_db"),
            "postgres://postgres@127.0.0.1:5432/order_db"
        );
        assert_eq!(redact("postgres://127.0.0.1/x"), "postgres://127.0.0.1/x");
    }
}
