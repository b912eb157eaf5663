//! The checkouts a run sends: one unique email per order, tagged with the
//! run, so the audit can tell this run's orders from earlier runs'.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// One run's identity and what its orders look like.
#[derive(Debug, Clone)]
pub struct OrderPlan {
    /// Short random tag in every email of the run (`lg-<tag>-<seq>@…`).
    pub tag: String,
    pub decline_ratio: f64,
    pub product_id: u64,
}

/// An order the gateway answered `201` for.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub id: Uuid,
    /// When the checkout was (meant to be) sent, by the wall clock: the start
    /// of its end-to-end latency.
    pub sent_at: DateTime<Utc>,
    /// Sent with a `+decline` email, so it must end `failed`.
    pub declined: bool,
}

impl OrderPlan {
    pub fn new(decline_ratio: f64, product_id: u64) -> Self {
        Self {
            tag: Uuid::new_v4().simple().to_string()[..10].to_owned(),
            decline_ratio,
            product_id,
        }
    }

    /// Whether order number `seq` is one of the declined share: exactly
    /// `floor(n * ratio)` of the first `n` orders are, spread evenly.
    pub fn declines(&self, seq: u64) -> bool {
        let r = self.decline_ratio;
        ((seq + 1) as f64 * r).floor() > (seq as f64 * r).floor()
    }

    pub fn email(&self, seq: u64) -> String {
        let suffix = if self.declines(seq) { "+decline" } else { "" };
        format!("lg-{}-{seq}{suffix}@example.com", self.tag)
    }

    /// A `LIKE` pattern matching every email of this run.
    pub fn email_pattern(&self) -> String {
        format!("lg-{}-%", self.tag)
    }

    /// The checkout body of order number `seq`.
    pub fn body(&self, seq: u64) -> Value {
        json!({
            "user_id": seq + 1,
            "user_email": self.email(seq),
            "items": [{"product_id": self.product_id, "quantity": 1}],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declined_share_is_exact_and_spread() {
        let plan = OrderPlan::new(0.25, 1);
        let declined: Vec<u64> = (0..8).filter(|&s| plan.declines(s)).collect();
        assert_eq!(declined, vec![3, 7]);
        assert!(plan.email(3).ends_with("+decline@example.com"));
        assert!(!plan.email(2).contains("+decline"));
        assert!((0..100).all(|s| !OrderPlan::new(0.0, 1).declines(s)));
        assert!((0..100).all(|s| OrderPlan::new(1.0, 1).declines(s)));
    }

    #[test]
    fn every_email_is_unique_and_matches_the_run_pattern() {
        let plan = OrderPlan::new(0.0, 2);
        let prefix = plan.email_pattern().trim_end_matches('%').to_owned();
        assert!(plan.email(41).starts_with(&prefix));
        assert_ne!(plan.email(1), plan.email(11));
        assert_ne!(plan.tag, OrderPlan::new(0.0, 2).tag);
        assert_eq!(plan.body(0)["items"][0]["product_id"], 2);
        assert_eq!(plan.body(0)["user_id"], 1);
    }
}
