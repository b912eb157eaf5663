//! An event in, at most one email of its kind for its order out: one
//! handler for every event that asks for an email ([`EmailEvent`]:
//! `payment.payment.processed`, `order.order.cancelled`,
//! `payment.refund.processed`), each consumed from its own queue. An email is
//! an order and a kind (`email_log`'s key): everything below holds per email,
//! and an order's emails of different kinds never stand in each other's way.
//!
//! Three short steps per delivery, none holding a database connection while
//! the SMTP server answers (so email concurrency is bounded by SMTP, not by
//! the connection pool). The claim and the `'sent'` mark go through a
//! [`Batcher`]: the deliveries in flight at the same moment share one
//! statement, each with its own answer (`messaging::db::batch`).
//!
//! 1. **Claim** the email's `email_log` row for a lease (`db::claim`, one
//!    statement): insert it as `'sending'`, or take over one that is not
//!    `'sent'` and whose lease has run out. Already `'sent'` ⇒ a duplicate
//!    (a redelivery, or the event published twice, W3/W4): ack.
//!    Held by another delivery's live lease (a duplicate on another replica,
//!    sending right now) ⇒ come back later (`Unavailable`: the first retry
//!    tier, without spending the retry budget); by then it is `'sent'`.
//! 2. **Send** over SMTP, bounded by the mailer's send timeout, which the
//!    lease outlasts, so no second claimant can start while this one may
//!    still be talking to the server.
//! 3. **Record** the outcome, which releases the lease: `'sent'`; `'failed'`
//!    on a 5xx (and the message is parked); on any other failure the attempt
//!    is counted and the message retried through the tiers. A `'failed'` row
//!    is claimed again when its message comes back: that is how a parked
//!    message is replayed once the cause (say, the mailbox) is fixed.
//!
//! The one window left (W6 and S5 in `docs/guarantees.md`): the SMTP
//! server has accepted the mail, and the process dies before step 3 (a
//! database that fails then is waited for, holding the delivery). The
//! lease runs out, the broker's redelivery claims the row again and the
//! mail is sent a second time. SMTP has no two-phase
//! commit, so no design closes it; it is bounded to the milliseconds between
//! the server's `250` and our `UPDATE`, and both copies carry the same
//! `Message-ID` (derived from the order and the kind), so mail clients show one.
//!
//! Anything that makes the event unusable as an email (an invalid address, a
//! nonsensical order line) is found before the claim and parks the message
//! at once.

use messaging::{
    consumer::{Handler, HandlerError, Incoming},
    db::batch::Batcher,
};
use sqlx::PgPool;
use std::time::Duration;

use crate::{
    SERVICE,
    db::{self, Claim, ClaimEmails, EmailKey, MarkSent, NewEmail},
    email::{Composer, EmailEvent},
    smtp::{Mailer, SendError},
};

/// The handler of every email queue: one instance is shared by the
/// consumers, so their claims and marks share the batched statements.
pub struct EmailHandler {
    pool: PgPool,
    claims: Batcher<ClaimEmails>,
    sent: Batcher<MarkSent>,
    composer: Composer,
    mailer: Mailer,
}

impl EmailHandler {
    /// Starts the handler's statement batchers on the current runtime.
    pub fn new(pool: PgPool, composer: Composer, mailer: Mailer) -> Self {
        Self {
            claims: Batcher::start(
                ClaimEmails {
                    lease: mailer.lease(),
                },
                pool.clone(),
            ),
            sent: Batcher::start(MarkSent, pool.clone()),
            pool,
            composer,
            mailer,
        }
    }
}

#[async_trait::async_trait]
impl<E: EmailEvent> Handler<E> for EmailHandler {
    async fn handle(&self, message: Incoming<E>) -> Result<(), HandlerError> {
        let event = &message.event;
        let order_id = event.order_id();
        let event_id = event.event_id();
        let email = self.composer.compose(event).map_err(|e| {
            tracing::error!(%order_id, event_type = E::EVENT_TYPE, error = %e, "event cannot become an email");
            HandlerError::permanent(e)
        })?;
        let kind = email.kind.as_str();
        let recipient = email.recipient.to_string();

        let new = NewEmail {
            order_id,
            event_id,
            recipient: recipient.clone(),
            kind,
            message_id: email.message_id.clone(),
        };
        let key = new.key();
        let attempts = match self.claims.submit(new).await? {
            Claim::Taken {
                attempts,
                unrecorded_send,
            } => {
                if unrecorded_send {
                    // W6: counted, so an operator sees how often it happens.
                    metrics::counter!("emails_resent_unrecorded_total").increment(1);
                    tracing::warn!(%order_id, kind, "an earlier send of this email was not recorded (its process stopped mid-send); sending it again with the same Message-ID");
                }
                attempts
            }
            Claim::AlreadySent => {
                metrics::counter!("duplicate_deliveries_total", "consumer" => SERVICE).increment(1);
                tracing::info!(%order_id, kind, %event_id, "email already sent; duplicate delivery ignored");
                return Ok(());
            }
            Claim::HeldElsewhere => {
                return Err(HandlerError::Unavailable(format!(
                    "another delivery of this order's {kind} email is being sent; checking again later"
                )));
            }
        };

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
                // W6: from here until the row says 'sent' a crash means a
                // second email (same Message-ID) after redelivery; see above.
                runtime::failpoint::hit("email-after-send");
                self.record_sent(key).await?;
                metrics::counter!("emails_total", "kind" => kind, "status" => "sent").increment(1);
                tracing::info!(%order_id, kind, recipient = %masked, attempts = attempts + 1, "email sent");
                Ok(())
            }
            Err(SendError::Permanent(reason)) => {
                db::mark_failed(&self.pool, key, &reason).await?;
                metrics::counter!("emails_total", "kind" => kind, "status" => "failed")
                    .increment(1);
                tracing::error!(%order_id, kind, recipient = %masked, reason = %reason, "SMTP server refused the email for good");
                Err(HandlerError::Permanent(reason))
            }
            Err(error @ (SendError::Transient(_) | SendError::Unreachable(_))) => {
                let reason = error.to_string();
                db::record_transient_failure(&self.pool, key, &reason).await?;
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

impl EmailHandler {
    /// Marks the email sent. The mail has gone out, so a database
    /// that is unavailable now is waited for, holding the delivery, instead
    /// of handing it back: its redelivery would find the claim unrecorded
    /// and send the mail again (W6). Only a stop of the process while it
    /// waits leaves that window open.
    async fn record_sent(&self, email: EmailKey) -> Result<(), HandlerError> {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.sent.submit(email).await {
                Ok(()) => return Ok(()),
                Err(e) if messaging::db::is_unavailable(&e) => {
                    tracing::warn!(order_id = %email.order_id, kind = email.kind, error = %e, retry_in = ?pause, "email sent, but the database is unavailable to record it; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e.into()),
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
