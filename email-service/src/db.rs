//! The email_log table, one row per email: an order and a kind
//! (`confirmation`, `payment_failed`, `cancelled`, `refund`), its primary
//! key. One SQL statement per function; the two every email goes through
//! (claim, mark sent) go through `messaging::db::batch`, many deliveries'
//! worth per statement.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use messaging::db::batch::{BatchStatement, in_order_of};
use sqlx::PgPool;
use uuid::Uuid;

/// One email of an order, as recorded.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EmailLog {
    pub order_id: Uuid,
    pub event_id: Uuid,
    pub recipient: String,
    pub kind: String,
    pub status: String,
    pub message_id: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub claimed_until: Option<DateTime<Utc>>,
}

/// Which email: `email_log`'s primary key. Every statement on one email
/// names both, so nothing done for one kind touches the order's others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EmailKey {
    pub order_id: Uuid,
    pub kind: &'static str,
}

/// What a new `'sending'` row holds.
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub order_id: Uuid,
    pub event_id: Uuid,
    pub recipient: String,
    pub kind: &'static str,
    pub message_id: String,
}

impl NewEmail {
    pub fn key(&self) -> EmailKey {
        EmailKey {
            order_id: self.order_id,
            kind: self.kind,
        }
    }
}

/// What [`claim`] found for one email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The row is ours until the lease ends: send, then record the outcome.
    /// `attempts` counts the earlier tries; `unrecorded_send` says an
    /// earlier claim's lease ran out with no outcome recorded (its process
    /// stopped mid-send), so this send may be the email's second copy.
    Taken {
        attempts: i32,
        unrecorded_send: bool,
    },
    /// The email was sent already: a duplicate delivery.
    AlreadySent,
    /// Another delivery of this email holds a live lease (it is sending now),
    /// or a row written since this statement began: look again later.
    HeldElsewhere,
}

/// Claims emails for `lease`, in one statement (committed on its own;
/// [`ClaimEmails`] batches concurrent handlers): for each, inserts a
/// `'sending'` row, or takes over an existing one that is not `'sent'` and
/// whose lease (if any) has expired. No connection or row lock is held while
/// the SMTP server answers. Two deliveries of one email racing here are
/// serialised by the primary key (order and kind): exactly one gets `Taken`.
/// The order's other kinds are other rows, claimed independently. The
/// emails must be distinct (the batcher sees to it); one order may appear
/// with several kinds.
pub async fn claim(
    pool: &PgPool,
    emails: &[NewEmail],
    lease: Duration,
) -> sqlx::Result<Vec<Claim>> {
    let rows: Vec<(Uuid, String, Option<i32>, Option<String>)> = sqlx::query_as(
        "WITH input AS ( \
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[]) \
             AS i(order_id, event_id, recipient, kind, message_id) \
         ), taken AS ( \
           INSERT INTO email_log (order_id, event_id, recipient, kind, status, message_id, claimed_until) \
           SELECT order_id, event_id, recipient, kind, 'sending', message_id, \
                  clock_timestamp() + $6 * interval '1 millisecond' FROM input \
           ON CONFLICT (order_id, kind) DO UPDATE SET status = 'sending', claimed_until = EXCLUDED.claimed_until \
           WHERE email_log.status <> 'sent' \
             AND (email_log.claimed_until IS NULL OR email_log.claimed_until < clock_timestamp()) \
           RETURNING order_id, kind, attempts \
         ), found AS ( \
           SELECT order_id, kind, status FROM email_log WHERE order_id = ANY($1) \
         ) \
         SELECT input.order_id, input.kind, taken.attempts, found.status FROM input \
         LEFT JOIN taken ON taken.order_id = input.order_id AND taken.kind = input.kind \
         LEFT JOIN found ON found.order_id = input.order_id AND found.kind = input.kind",
    )
    .bind(emails.iter().map(|e| e.order_id).collect::<Vec<_>>())
    .bind(emails.iter().map(|e| e.event_id).collect::<Vec<_>>())
    .bind(emails.iter().map(|e| e.recipient.as_str()).collect::<Vec<_>>())
    .bind(emails.iter().map(|e| e.kind).collect::<Vec<_>>())
    .bind(emails.iter().map(|e| e.message_id.as_str()).collect::<Vec<_>>())
    .bind(lease.as_millis() as f64)
    .fetch_all(pool)
    .await?;
    // `found` reads email_log by `order_id = ANY($1)`: the primary key's
    // first column, whatever PostgreSQL guesses of the array's length (a join
    // against the `unnest`ed rows was planned as a hash over a sequential
    // scan of the table); the join then keeps each email's own kind. It is
    // the table as the statement found it (its snapshot): a row another
    // replica wrote meanwhile is not seen, hence HeldElsewhere.
    let found: HashMap<(Uuid, String), Claim> = rows
        .into_iter()
        .map(|(order_id, kind, taken, status)| {
            let claim = match (taken, status.as_deref()) {
                (Some(attempts), status) => Claim::Taken {
                    attempts,
                    unrecorded_send: status == Some("sending"),
                },
                (None, Some("sent")) => Claim::AlreadySent,
                (None, _) => Claim::HeldElsewhere,
            };
            ((order_id, kind), claim)
        })
        .collect();
    in_order_of(emails, |e| (e.order_id, e.kind.to_owned()), &found)
}

/// The SMTP server accepted these mails; their leases are released.
/// `sent_at` is the moment of this statement (`clock_timestamp()`).
pub async fn mark_sent(pool: &PgPool, emails: &[EmailKey]) -> sqlx::Result<()> {
    // `order_id = ANY($1)` finds the rows by the primary key's first column
    // (as in `claim`); the pairs keep each to its own kind.
    sqlx::query(
        "UPDATE email_log SET status = 'sent', sent_at = clock_timestamp(), attempts = attempts + 1, \
         last_error = NULL, claimed_until = NULL \
         WHERE order_id = ANY($1) \
           AND (order_id, kind) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))",
    )
    .bind(emails.iter().map(|e| e.order_id).collect::<Vec<_>>())
    .bind(emails.iter().map(|e| e.kind).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}

/// [`claim`] for concurrent handlers (`messaging::db::batch`).
pub struct ClaimEmails {
    /// How long a claim holds (twice the SMTP send timeout).
    pub lease: Duration,
}

#[async_trait::async_trait]
impl BatchStatement for ClaimEmails {
    type Item = NewEmail;
    type Output = Claim;
    type Key = EmailKey;
    const NAME: &'static str = "claim_emails";

    fn keys(email: &NewEmail) -> Vec<EmailKey> {
        vec![email.key()]
    }

    async fn run(&self, pool: &PgPool, emails: &[NewEmail]) -> sqlx::Result<Vec<Claim>> {
        claim(pool, emails, self.lease).await
    }
}

/// [`mark_sent`] for concurrent handlers (`messaging::db::batch`).
pub struct MarkSent;

#[async_trait::async_trait]
impl BatchStatement for MarkSent {
    type Item = EmailKey;
    type Output = ();
    type Key = EmailKey;
    const NAME: &'static str = "mark_emails_sent";

    fn keys(email: &EmailKey) -> Vec<EmailKey> {
        vec![*email]
    }

    async fn run(&self, pool: &PgPool, emails: &[EmailKey]) -> sqlx::Result<Vec<()>> {
        mark_sent(pool, emails).await?;
        Ok(vec![(); emails.len()])
    }
}

/// The SMTP server refused the mail for good.
pub async fn mark_failed(pool: &PgPool, email: EmailKey, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE email_log SET status = 'failed', attempts = attempts + 1, last_error = $3, \
         claimed_until = NULL WHERE order_id = $1 AND kind = $2",
    )
    .bind(email.order_id)
    .bind(email.kind)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// A send that failed transiently: counted, the lease released, and the row
/// stays `'sending'` until a retry settles it.
pub async fn record_transient_failure(
    pool: &PgPool,
    email: EmailKey,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE email_log SET attempts = attempts + 1, last_error = $3, claimed_until = NULL \
         WHERE order_id = $1 AND kind = $2",
    )
    .bind(email.order_id)
    .bind(email.kind)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The order's email of `kind`, if any (tests and audits).
pub async fn find_email(
    pool: &PgPool,
    order_id: Uuid,
    kind: &str,
) -> sqlx::Result<Option<EmailLog>> {
    sqlx::query_as("SELECT * FROM email_log WHERE order_id = $1 AND kind = $2")
        .bind(order_id)
        .bind(kind)
        .fetch_optional(pool)
        .await
}

/// Every email of the order, oldest first (the timeline, audits).
pub async fn find_emails(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Vec<EmailLog>> {
    sqlx::query_as("SELECT * FROM email_log WHERE order_id = $1 ORDER BY created_at, kind")
        .bind(order_id)
        .fetch_all(pool)
        .await
}
