//! What the run has seen so far: shared by the senders, read by the progress
//! line and turned into the report at the end.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;

use crate::orders::Accepted;

/// Latencies are recorded in microseconds, from 1 µs to one hour, with three
/// significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// How one checkout ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// An HTTP answer with this status.
    Status(u16),
    /// No HTTP answer: `timeout`, `connect`, `body` or `other`.
    Transport(&'static str),
}

#[derive(Debug, Default)]
struct Inner {
    latency: Option<Histogram<u64>>,
    outcomes: BTreeMap<Outcome, u64>,
    accepted: Vec<Accepted>,
}

#[derive(Debug, Default)]
pub struct Recorder {
    sent: AtomicU64,
    inner: Mutex<Inner>,
}

/// A copy of the counters for the progress line.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub sent: u64,
    pub done: u64,
    pub ok: u64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

/// Everything recorded, once sending is over.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub sent: u64,
    pub latency: Histogram<u64>,
    pub outcomes: BTreeMap<Outcome, u64>,
    pub accepted: Vec<Accepted>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sending(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// One checkout ended after `latency`; `accepted` when it was a 201.
    pub fn record(&self, latency: Duration, outcome: Outcome, accepted: Option<Accepted>) {
        let mut inner = self.inner.lock().expect("recorder lock");
        inner
            .latency
            .get_or_insert_with(new_histogram)
            .saturating_record(micros(latency));
        *inner.outcomes.entry(outcome).or_default() += 1;
        inner.accepted.extend(accepted);
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock().expect("recorder lock");
        let done = inner.outcomes.values().sum();
        let ok = inner.accepted.len() as u64;
        let quantile = |q| {
            inner
                .latency
                .as_ref()
                .map(|h| Duration::from_micros(h.value_at_quantile(q)))
        };
        Snapshot {
            sent: self.sent.load(Ordering::Relaxed),
            done,
            ok,
            p50: quantile(0.5),
            p99: quantile(0.99),
        }
    }

    pub fn finish(self) -> Recorded {
        let inner = self.inner.into_inner().expect("recorder lock");
        Recorded {
            sent: self.sent.into_inner(),
            latency: inner.latency.unwrap_or_else(new_histogram),
            outcomes: inner.outcomes,
            accepted: inner.accepted,
        }
    }
}

/// `850µs`, `1.20ms`, `1.50s`.
pub fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{:.2}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_latencies_add_up() {
        let recorder = Recorder::new();
        for ms in [1, 2, 3, 100] {
            recorder.sending();
            recorder.record(Duration::from_millis(ms), Outcome::Status(201), None);
        }
        recorder.sending();
        recorder.record(Duration::from_secs(30), Outcome::Transport("timeout"), None);
        let snapshot = recorder.snapshot();
        assert_eq!((snapshot.sent, snapshot.done, snapshot.ok), (5, 5, 0));
        let p50 = snapshot.p50.unwrap();
        assert!(p50 >= Duration::from_millis(3) && p50 < Duration::from_micros(3010));
        let recorded = recorder.finish();
        assert_eq!(recorded.outcomes[&Outcome::Status(201)], 4);
        assert_eq!(recorded.outcomes[&Outcome::Transport("timeout")], 1);
        assert_eq!(recorded.latency.len(), 5);
    }

    #[test]
    fn an_empty_recorder_has_no_percentiles() {
        let snapshot = Recorder::new().snapshot();
        assert_eq!(snapshot.p50, None);
        assert_eq!(snapshot.done, 0);
    }
}
