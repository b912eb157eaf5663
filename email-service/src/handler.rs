//! `payment.payment.processed` in, exactly one email per order out.
//!
//! One transaction per delivery, around the SMTP send:
//!
//! 1. `INSERT … ON CONFLICT DO NOTHING` a `'sending'` row for the order, then
//!    `SELECT … FOR UPDATE` it. The row lock serialises duplicates of the same
//!    order, even on two replicas at once: the second waits until the first
//!    has committed, and then sees its outcome.
//! 2. Already `'sent'` ⇒ commit and ack: a duplicate (a redelivery, or the
//!    payment event published twice, W3/W4).
//! 3. Otherwise send over SMTP while holding the lock, then mark `'sent'` and
//!    commit. A 5xx marks it `'failed'` and parks the message; any other
//!    failure records the attempt and retries it through the retry tiers. A
//!    `'failed'` row is tried again when its message comes back: that is how
//!    a parked message is replayed once the cause (say, the mailbox) is fixed.
//!
//! The one window left (W6 in failure-windows.md, S5 in the matrix): the SMTP
//! server has accepted the mail, and the process dies — or the database
//! fails — before the commit. The row goes back to its previous state, the
//! broker redelivers and the mail is sent again. SMTP has no two-phase commit,
//! so no design closes it; it is bounded to the milliseconds between the
//! server's `250` and our `COMMIT`, and both copies carry the same
//! `Message-ID` (derived from the order), so mail clients show one.
//!
//! Anything that makes the event unusable as an email (an invalid address, a
//! nonsensical order line) is found before the transaction starts and parks
//! the message at once.

use common::{
    events::PaymentProcessed,
    messaging::consumer::{Handler, HandlerError, Incoming},
};
use sqlx::PgPool;

use crate::{
    SERVICE,
    db::{self, NewEmail},
    email::Composer,
    smtp::{Mailer, SendError},
};

pub struct EmailHandler {
    pub pool: PgPool,
    pub composer: Composer,
    pub mailer: Mailer,
}

#[async_trait::async_trait]
impl Handler<PaymentProcessed> for EmailHandler {
    async fn handle(&self, message: Incoming<PaymentProcessed>) -> Result<(), HandlerError> {
        let event = &message.event;
        let order_id = event.order_id;
        let email = self.composer.compose(event).map_err(|e| {
            tracing::error!(%order_id, error = %e, "payment event cannot become an email");
            HandlerError::permanent(e)
        })?;
        let kind = email.kind.as_str();
        let recipient = email.recipient.to_string();

        let mut tx = self.pool.begin().await?;
        let new = NewEmail {
            order_id,
            event_id: event.event_id,
            recipient: &recipient,
            kind,
            message_id: &email.message_id,
        };
        db::insert_sending(&mut tx, &new).await?;
        let row = db::lock_email(&mut tx, order_id).await?;
        if row.status == "sent" {
            tx.commit().await?;
            metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE).increment(1);
            tracing::info!(%order_id, event_id = %event.event_id, "email already sent; duplicate delivery ignored");
            return Ok(());
        }

        let masked = mask(&recipient);
        let started = std::time::Instant::now();
        let sent = self.mailer.send(&email.message).await;
        let status = match &sent {
            Ok(()) => "sent",
            Err(SendError::Permanent(_)) => "failed",
            Err(_) => "deferred",
        };
        metrics::histogram!("email_send_duration_seconds", "status" => status)
            .record(started.elapsed().as_secs_f64());
        match sent {
            Ok(()) => {
                // W6: from here until the commit a crash means a second email
                // (same Message-ID) after redelivery; see the module docs.
                db::mark_sent(&mut tx, order_id).await?;
                tx.commit().await?;
                metrics::counter!("emails_total", "kind" => kind, "status" => "sent").increment(1);
                tracing::info!(%order_id, kind, recipient = %masked, attempts = row.attempts + 1, "email sent");
                Ok(())
            }
            Err(SendError::Permanent(reason)) => {
                db::mark_failed(&mut tx, order_id, &reason).await?;
                tx.commit().await?;
                metrics::counter!("emails_total", "kind" => kind, "status" => "failed")
                    .increment(1);
                tracing::error!(%order_id, kind, recipient = %masked, reason = %reason, "SMTP server refused the email for good");
                Err(HandlerError::Permanent(reason))
            }
            Err(error @ (SendError::Transient(_) | SendError::Unreachable(_))) => {
                let reason = error.to_string();
                db::record_transient_failure(&mut tx, order_id, &reason).await?;
                tx.commit().await?;
                metrics::counter!("emails_total", "kind" => kind, "status" => "deferred")
                    .increment(1);
                Err(match error {
                    SendError::Unreachable(_) => HandlerError::Unavailable(reason),
                    _ => HandlerError::Transient(reason),
                })
            }
        }
    }
}

/// `t***@example.com`: enough to tell recipients apart in logs, not to harvest them.
fn mask(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn recipients_are_masked_in_logs() {
        assert_eq!(mask("test@example.com"), "t***@example.com");
        assert_eq!(mask("nonsense"), "***");
    }
}
