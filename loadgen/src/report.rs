//! Turning what was recorded into the human-readable report.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;

use crate::{
    cli::Mode,
    drive::Run,
    stats::{Outcome, format_duration},
};

/// The percentiles the report shows, from an HDR histogram of microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let at = |q| Duration::from_micros(histogram.value_at_quantile(q));
        Some(Self {
            count: histogram.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_micros(histogram.max()),
        })
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
            format_duration(self.p50),
            format_duration(self.p90),
            format_duration(self.p99),
            format_duration(self.p999),
            format_duration(self.max),
            self.count
        )
    }
}

/// `201 ×995, 503 ×3, timeout ×2`; accepted first, then other statuses, then
/// transport errors.
pub fn format_outcomes(outcomes: &BTreeMap<Outcome, u64>) -> String {
    let parts: Vec<String> = outcomes
        .iter()
        .map(|(outcome, n)| match outcome {
            Outcome::Status(status) => format!("{status} ×{n}"),
            Outcome::Transport(kind) => format!("{kind} ×{n}"),
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// Checkouts that did not end in a 201.
pub fn error_count(outcomes: &BTreeMap<Outcome, u64>) -> u64 {
    outcomes
        .iter()
        .filter(|(o, _)| **o != Outcome::Status(201))
        .map(|(_, n)| n)
        .sum()
}

pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        count as f64 / elapsed.as_secs_f64()
    }
}

/// The checkout part of the report.
pub fn checkout_report(run: &Run) -> String {
    let rec = &run.recorded;
    let answered: u64 = rec.outcomes.values().sum();
    let accepted = rec.accepted.len() as u64;
    let mut out = String::new();
    let mode = match run.mode {
        Mode::Open { rate } => format!("open loop at {rate}/s"),
        Mode::Closed { connections } => format!("closed loop, {connections} connections"),
    };
    let _ = writeln!(
        out,
        "checkout: {mode}; sent {} in {:.2}s",
        rec.sent,
        run.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  throughput: {:.1}/s answered, {:.1}/s accepted (201)",
        per_second(answered, run.elapsed),
        per_second(accepted, run.elapsed)
    );
    let _ = writeln!(
        out,
        "  outcomes:   {} (errors: {})",
        format_outcomes(&rec.outcomes),
        error_count(&rec.outcomes)
    );
    match Percentiles::of(&rec.latency) {
        Some(p) => {
            let _ = writeln!(out, "  latency:    {p}");
        }
        None => out.push_str("  latency:    no answers\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{micros, new_histogram};

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = new_histogram();
        for ms in 1..=1000u64 {
            h.record(micros(Duration::from_millis(ms))).unwrap();
        }
        let p = Percentiles::of(&h).unwrap();
        let close = |got: Duration, ms: u64| {
            let want = ms as f64;
            let got = got.as_secs_f64() * 1e3;
            assert!((got - want).abs() / want < 0.002, "{got} vs {want}");
        };
        close(p.p50, 500);
        close(p.p90, 900);
        close(p.p99, 990);
        close(p.p999, 999);
        close(p.max, 1000);
        assert_eq!(p.count, 1000);
        assert_eq!(Percentiles::of(&new_histogram()), None);
    }

    #[test]
    fn one_slow_answer_shows_in_the_tail_only() {
        let mut h = new_histogram();
        for _ in 0..999 {
            h.record(1000).unwrap();
        }
        h.record(5_000_000).unwrap();
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(format_duration(p.p99), "1.00ms");
        assert_eq!(format_duration(p.max), "5.00s");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_micros(850)), "850µs");
        assert_eq!(format_duration(Duration::from_micros(1204)), "1.20ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.50s");
    }

    #[test]
    fn errors_are_counted_by_status_and_transport_kind() {
        let outcomes = BTreeMap::from([
            (Outcome::Status(201), 995),
            (Outcome::Status(503), 3),
            (Outcome::Transport("timeout"), 2),
        ]);
        assert_eq!(format_outcomes(&outcomes), "201 ×995, 503 ×3, timeout ×2");
        assert_eq!(error_count(&outcomes), 5);
        assert_eq!(format_outcomes(&BTreeMap::new()), "none");
        assert_eq!(per_second(500, Duration::from_secs(2)), 250.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
    }
}
