//! The audit's verdict from what the databases and the mailbox hold: for
//! every accepted order, exactly one order row, one payment, one sent email
//! (and one delivered message, when a mailbox is checked).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::orders::Accepted;

/// An order row as stored by order-service.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The email_log rows of one order.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailRows {
    /// Rows with status `sent`.
    pub sent: u64,
    pub sent_at: Option<DateTime<Utc>>,
}

/// What the audit found, keyed by order id (only this run's orders).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub orders: HashMap<Uuid, OrderRow>,
    /// Payment rows per order.
    pub payments: HashMap<Uuid, u64>,
    pub emails: HashMap<Uuid, EmailRows>,
    /// Delivered messages per order, when a mailbox was checked.
    pub mails: Option<HashMap<Uuid, u64>>,
    /// Orders of this run stored although the client got no 201 (a timeout,
    /// say): legitimate, and paid and emailed like the others, but not audited.
    pub unacknowledged: u64,
}

/// Accepted orders with none of a thing, and with more than one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub missing: u64,
    pub duplicated: u64,
}

impl Tally {
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.duplicated == 0
    }

    fn count(&mut self, n: u64) {
        match n {
            0 => self.missing += 1,
            1 => {}
            _ => self.duplicated += 1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Distinct orders answered 201.
    pub accepted: u64,
    /// The same order id answered 201 to more than one checkout.
    pub repeated_ids: u64,
    pub orders: Tally,
    /// Orders still `pending` when the audit gave up waiting.
    pub unsettled: u64,
    pub paid: u64,
    pub failed: u64,
    /// `+decline` orders that ended `paid`.
    pub wrong_outcome: u64,
    pub payments: Tally,
    pub emails: Tally,
    pub mails: Option<Tally>,
    pub unacknowledged: u64,
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.repeated_ids == 0
            && self.orders.is_clean()
            && self.unsettled == 0
            && self.wrong_outcome == 0
            && self.payments.is_clean()
            && self.emails.is_clean()
            && self.mails.is_none_or(|m| m.is_clean())
    }
}

pub fn classify(accepted: &[Accepted], observed: &Observed) -> Verdict {
    let mut verdict = Verdict {
        mails: observed.mails.as_ref().map(|_| Tally::default()),
        unacknowledged: observed.unacknowledged,
        ..Verdict::default()
    };
    let mut seen = HashSet::new();
    for order in accepted {
        if !seen.insert(order.id) {
            verdict.repeated_ids += 1;
            continue;
        }
        verdict.accepted += 1;
        match observed.orders.get(&order.id) {
            None => verdict.orders.missing += 1,
            Some(row) => match row.status.as_str() {
                "paid" if order.declined => {
                    verdict.paid += 1;
                    verdict.wrong_outcome += 1;
                }
                "paid" => verdict.paid += 1,
                "failed" => verdict.failed += 1,
                _ => verdict.unsettled += 1,
            },
        }
        let count = |map: &HashMap<Uuid, u64>| map.get(&order.id).copied().unwrap_or(0);
        verdict.payments.count(count(&observed.payments));
        verdict
            .emails
            .count(observed.emails.get(&order.id).map_or(0, |e| e.sent));
        if let (Some(tally), Some(mails)) = (verdict.mails.as_mut(), observed.mails.as_ref()) {
            tally.count(count(mails));
        }
    }
    verdict
}

/// Messages per order, counting only the given orders.
pub fn mails_per_order(ids: &[Uuid], accepted: &HashSet<Uuid>) -> HashMap<Uuid, u64> {
    let mut counts = HashMap::new();
    for id in ids.iter().filter(|id| accepted.contains(id)) {
        *counts.entry(*id).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(n: u128) -> Vec<Accepted> {
        (1..=n)
            .map(|i| Accepted {
                id: Uuid::from_u128(i),
                sent_at: DateTime::UNIX_EPOCH,
                declined: false,
            })
            .collect()
    }

    fn row(status: &str) -> OrderRow {
        OrderRow {
            status: status.into(),
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    /// Everything exactly once, every order paid.
    fn perfect(orders: &[Accepted]) -> Observed {
        let ids = orders.iter().map(|o| o.id);
        Observed {
            orders: ids.clone().map(|id| (id, row("paid"))).collect(),
            payments: ids.clone().map(|id| (id, 1)).collect(),
            emails: ids
                .clone()
                .map(|id| {
                    let rows = EmailRows {
                        sent: 1,
                        sent_at: Some(DateTime::UNIX_EPOCH),
                    };
                    (id, rows)
                })
                .collect(),
            mails: Some(ids.map(|id| (id, 1)).collect()),
            unacknowledged: 0,
        }
    }

    #[test]
    fn exactly_once_everywhere_is_clean() {
        let orders = accepted(3);
        let verdict = classify(&orders, &perfect(&orders));
        assert!(verdict.is_clean(), "{verdict:?}");
        assert_eq!((verdict.accepted, verdict.paid), (3, 3));
        assert_eq!(verdict.mails, Some(Tally::default()));
    }

    #[test]
    fn lost_and_duplicated_effects_are_counted_per_kind() {
        let orders = accepted(4);
        let mut observed = perfect(&orders);
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| orders[i].id);
        observed.payments.remove(&a);
        observed.payments.insert(b, 2);
        observed.emails.get_mut(&c).unwrap().sent = 0;
        observed.mails.as_mut().unwrap().insert(d, 3);
        observed.mails.as_mut().unwrap().remove(&c);
        let verdict = classify(&orders, &observed);
        assert!(!verdict.is_clean());
        let tally = |missing, duplicated| Tally {
            missing,
            duplicated,
        };
        assert_eq!(verdict.payments, tally(1, 1));
        assert_eq!(verdict.emails, tally(1, 0));
        assert_eq!(verdict.mails, Some(tally(1, 1)));
        assert_eq!(verdict.orders, tally(0, 0));
    }

    #[test]
    fn missing_pending_and_wrongly_paid_orders_are_not_clean() {
        let mut orders = accepted(3);
        orders[2].declined = true;
        let mut observed = perfect(&orders);
        observed.orders.remove(&orders[0].id);
        observed.orders.insert(orders[1].id, row("pending"));
        let verdict = classify(&orders, &observed);
        assert_eq!(verdict.orders.missing, 1);
        assert_eq!(verdict.unsettled, 1);
        assert_eq!(verdict.wrong_outcome, 1);
        assert!(!verdict.is_clean());
    }

    #[test]
    fn declined_orders_that_failed_and_unacknowledged_orders_are_fine() {
        let mut orders = accepted(2);
        orders[1].declined = true;
        let mut observed = perfect(&orders);
        observed.orders.insert(orders[1].id, row("failed"));
        observed.unacknowledged = 2;
        observed.mails = None;
        let verdict = classify(&orders, &observed);
        assert!(verdict.is_clean(), "{verdict:?}");
        assert_eq!((verdict.paid, verdict.failed), (1, 1));
        assert_eq!(verdict.mails, None);
    }

    #[test]
    fn one_id_answered_twice_is_flagged() {
        let mut orders = accepted(2);
        orders.push(orders[0].clone());
        let verdict = classify(&orders, &perfect(&orders));
        assert_eq!((verdict.accepted, verdict.repeated_ids), (2, 1));
        assert!(!verdict.is_clean());
    }

    #[test]
    fn only_this_runs_mails_are_counted() {
        let mine: HashSet<Uuid> = [Uuid::from_u128(1)].into();
        let ids = [Uuid::from_u128(1), Uuid::from_u128(9), Uuid::from_u128(1)];
        let counts = mails_per_order(&ids, &mine);
        assert_eq!(counts.len(), 1);
        assert_eq!(counts[&Uuid::from_u128(1)], 2);
    }
}
