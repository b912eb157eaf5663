//! End-to-end latencies from the services' own timestamps.
//!
//! The start is the checkout's intended send time on the load generator's
//! wall clock; the ends are `orders.updated_at` (set in the transaction that
//! moves the order to `paid`/`failed`) and `email_log.sent_at` (set when the
//! SMTP server accepted the mail). All of these are read from the same clock
//! when the load generator runs on the services' host (natively or under
//! `docker compose`, whose containers share the host's clock); across hosts
//! they are only as good as NTP. The server-only figure (`orders.created_at`
//! to the same ends) needs no shared clock and excludes the HTTP hops.

use std::{fmt::Write as _, time::Duration};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;

use crate::{
    classify::Observed,
    orders::Accepted,
    report::Percentiles,
    stats::{format_duration, micros, new_histogram},
};

#[derive(Debug, Clone)]
pub struct EndToEnd {
    /// Checkout sent → order `paid`/`failed`.
    pub settled: Histogram<u64>,
    /// Checkout sent → email accepted by the SMTP server.
    pub emailed: Histogram<u64>,
    /// Order created (server) → order settled.
    pub settled_server: Histogram<u64>,
    /// Order created (server) → email sent.
    pub emailed_server: Histogram<u64>,
    /// From the first checkout sent to the last order settled / emailed.
    pub all_settled: Option<Duration>,
    pub all_emailed: Option<Duration>,
}

fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}

pub fn end_to_end(accepted: &[Accepted], observed: &Observed) -> EndToEnd {
    let mut e2e = EndToEnd {
        settled: new_histogram(),
        emailed: new_histogram(),
        settled_server: new_histogram(),
        emailed_server: new_histogram(),
        all_settled: None,
        all_emailed: None,
    };
    let Some(first) = accepted.iter().map(|a| a.sent_at).min() else {
        return e2e;
    };
    let (mut last_settled, mut last_emailed) = (None, None);
    for order in accepted {
        let Some(row) = observed.orders.get(&order.id) else {
            continue;
        };
        if row.status != "pending" {
            let at = row.updated_at;
            e2e.settled
                .saturating_record(micros(between(order.sent_at, at)));
            e2e.settled_server
                .saturating_record(micros(between(row.created_at, at)));
            last_settled = last_settled.max(Some(at));
        }
        if let Some(at) = observed.emails.get(&order.id).and_then(|e| e.sent_at) {
            e2e.emailed
                .saturating_record(micros(between(order.sent_at, at)));
            e2e.emailed_server
                .saturating_record(micros(between(row.created_at, at)));
            last_emailed = last_emailed.max(Some(at));
        }
    }
    e2e.all_settled = last_settled.map(|at| between(first, at));
    e2e.all_emailed = last_emailed.map(|at| between(first, at));
    e2e
}

impl EndToEnd {
    pub fn report(&self) -> String {
        let mut out = String::from("end to end (server timestamps):\n");
        let lines = [
            ("checkout → paid/failed", &self.settled),
            ("checkout → email sent ", &self.emailed),
            ("created  → paid/failed", &self.settled_server),
            ("created  → email sent ", &self.emailed_server),
        ];
        for (name, histogram) in lines {
            match Percentiles::of(histogram) {
                Some(p) => writeln!(out, "  {name}: {p}"),
                None => writeln!(out, "  {name}: none"),
            }
            .expect("writing to a String");
        }
        let show = |d: Option<Duration>| d.map_or("-".into(), format_duration);
        let _ = writeln!(
            out,
            "  from the first checkout: all settled after {}, all emailed after {}",
            show(self.all_settled),
            show(self.all_emailed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{EmailRows, OrderRow};
    use uuid::Uuid;

    #[test]
    fn latencies_run_from_the_send_time_to_the_stored_timestamps() {
        let t0 = DateTime::UNIX_EPOCH;
        let ms = |n| t0 + chrono::Duration::milliseconds(n);
        let accepted: Vec<Accepted> = (0..2)
            .map(|i| Accepted {
                id: Uuid::from_u128(i),
                sent_at: ms(i as i64 * 100),
                declined: false,
            })
            .collect();
        let mut observed = Observed::default();
        for (i, order) in accepted.iter().enumerate() {
            let start = i as i64 * 100;
            let row = OrderRow {
                status: "paid".into(),
                created_at: ms(start + 2),
                updated_at: ms(start + 50),
            };
            observed.orders.insert(order.id, row);
        }
        let email = EmailRows {
            sent: 1,
            sent_at: Some(ms(180)),
        };
        observed.emails.insert(accepted[1].id, email);
        let e2e = end_to_end(&accepted, &observed);
        // The histogram keeps three significant digits.
        let about = |got: Duration, ms: f64| (got.as_secs_f64() * 1e3 - ms).abs() < 0.1;
        let settled = Percentiles::of(&e2e.settled).unwrap();
        assert_eq!(settled.count, 2);
        assert!(about(settled.max, 50.0), "{settled}");
        let server = Percentiles::of(&e2e.settled_server).unwrap();
        assert!(about(server.max, 48.0), "{server}");
        assert_eq!(Percentiles::of(&e2e.emailed).unwrap().count, 1);
        assert_eq!(e2e.all_settled, Some(Duration::from_millis(150)));
        assert_eq!(e2e.all_emailed, Some(Duration::from_millis(180)));
        assert!(e2e.report().contains("all emailed after 180.00ms"));
    }

    #[test]
    fn nothing_accepted_gives_empty_histograms() {
        let e2e = end_to_end(&[], &Observed::default());
        assert!(e2e.settled.is_empty());
        assert_eq!(e2e.all_settled, None);
    }
}
