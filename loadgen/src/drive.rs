//! Sending the checkouts: open loop (fixed arrival rate) or closed loop (N
//! connections), with a progress line on stderr once a second.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    cli::{Limits, Mode},
    orders::{Accepted, OrderPlan},
    stats::{Outcome, Recorded, Recorder, Snapshot},
};

/// What sending produced.
#[derive(Debug)]
pub struct Run {
    pub mode: Mode,
    pub recorded: Recorded,
    /// From the first send to the last answer.
    pub elapsed: Duration,
}

/// Where to send and what.
#[derive(Debug, Clone)]
pub struct Target {
    pub http: reqwest::Client,
    pub checkout_url: String,
    pub plan: Arc<OrderPlan>,
}

impl Target {
    pub fn new(base_url: &str, timeout: Duration, plan: OrderPlan) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(usize::MAX)
            // Below the gateway's 10 s idle close (runtime::http::
            // HEADER_READ_TIMEOUT): reusing a connection as the server closes
            // it resets the request, which would count as an error here.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            checkout_url: format!("{}/api/checkout", base_url.trim_end_matches('/')),
            plan: Arc::new(plan),
        })
    }

    /// Sends checkout number `seq` and records it, timed from `start`.
    async fn checkout(&self, seq: u64, start: Instant, sent_at: DateTime<Utc>, rec: &Recorder) {
        rec.sending();
        let (outcome, id) = self.send(seq).await;
        let accepted = id.map(|id| Accepted {
            id,
            sent_at,
            declined: self.plan.declines(seq),
        });
        rec.record(start.elapsed(), outcome, accepted);
    }

    async fn send(&self, seq: u64) -> (Outcome, Option<uuid::Uuid>) {
        #[derive(Deserialize)]
        struct Created {
            id: uuid::Uuid,
        }
        let response = self
            .http
            .post(&self.checkout_url)
            .json(&self.plan.body(seq))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return (Outcome::Transport(transport_kind(&e)), None),
        };
        let status = response.status().as_u16();
        match response.bytes().await {
            Err(e) => (Outcome::Transport(transport_kind(&e)), None),
            Ok(body) if status == 201 => match serde_json::from_slice::<Created>(&body) {
                Ok(created) => (Outcome::Status(201), Some(created.id)),
                // A 201 without an order id cannot be audited: count it apart.
                Err(_) => (Outcome::Transport("bad 201 body"), None),
            },
            Ok(_) => (Outcome::Status(status), None),
        }
    }
}

fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "other"
    }
}

/// Sends until `limits`, paced by `mode`.
pub async fn drive(target: Target, mode: Mode, limits: Limits, max_in_flight: usize) -> Run {
    let recorder = Arc::new(Recorder::new());
    let progress = tokio::spawn(report_progress(recorder.clone()));
    let start = Instant::now();
    match mode {
        Mode::Open { rate } => open_loop(&target, rate, limits, max_in_flight, &recorder).await,
        Mode::Closed { connections } => closed_loop(&target, connections, limits, &recorder).await,
    }
    let elapsed = start.elapsed();
    progress.abort();
    // An aborted task drops its clone of the recorder only once awaited.
    let _ = progress.await;
    let recorder = Arc::into_inner(recorder).expect("every sender finished");
    Run {
        mode,
        recorded: recorder.finish(),
        elapsed,
    }
}

fn wall_clock(start_wall: SystemTime, offset: Duration) -> DateTime<Utc> {
    DateTime::<Utc>::from(start_wall + offset)
}

/// Checkout `i` is due at `i / rate` after the start, whatever happened to
/// the earlier ones; its latency counts from then.
async fn open_loop(
    target: &Target,
    rate: f64,
    limits: Limits,
    max_in_flight: usize,
    rec: &Arc<Recorder>,
) {
    let (start, start_wall) = (Instant::now(), SystemTime::now());
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    for seq in 0.. {
        let offset = Duration::from_secs_f64(seq as f64 / rate);
        let over_time = limits.duration.is_some_and(|d| offset >= d);
        if over_time || limits.requests.is_some_and(|n| seq >= n) {
            break;
        }
        let due = start + offset;
        tokio::time::sleep_until(due.into()).await;
        let (target, rec, in_flight) = (target.clone(), rec.clone(), in_flight.clone());
        tasks.spawn(async move {
            let _permit = in_flight.acquire_owned().await;
            target
                .checkout(seq, due, wall_clock(start_wall, offset), &rec)
                .await;
        });
        // Reap finished tasks so the set does not grow for the whole run.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Each connection sends its next checkout once the previous one answered.
async fn closed_loop(target: &Target, connections: usize, limits: Limits, rec: &Arc<Recorder>) {
    let (start, start_wall) = (Instant::now(), SystemTime::now());
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        let (target, rec, next) = (target.clone(), rec.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                let over_time = limits.duration.is_some_and(|d| now - start >= d);
                if over_time || limits.requests.is_some_and(|n| seq >= n) {
                    break;
                }
                let sent_at = wall_clock(start_wall, now - start);
                target.checkout(seq, now, sent_at, &rec).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn report_progress(rec: Arc<Recorder>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (start, mut last) = (Instant::now(), rec.snapshot());
    loop {
        tick.tick().await;
        let now = rec.snapshot();
        eprintln!("{}", progress_line(start.elapsed(), &last, &now));
        last = now;
    }
}

/// `[  3s] sent 1500  ok 1498  errors 0  rate 500/s  p50 1.2ms  p99 4.0ms`
pub fn progress_line(elapsed: Duration, last: &Snapshot, now: &Snapshot) -> String {
    let show = |d: Option<Duration>| d.map_or("-".into(), crate::stats::format_duration);
    format!(
        "[{:>4}s] sent {}  ok {}  errors {}  rate {}/s  p50 {}  p99 {}",
        elapsed.as_secs_f64().round(),
        now.sent,
        now.ok,
        now.done - now.ok,
        now.done - last.done,
        show(now.p50),
        show(now.p99),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_the_rate_of_the_last_second() {
        let last = Snapshot {
            sent: 100,
            done: 95,
            ok: 95,
            p50: None,
            p99: None,
        };
        let now = Snapshot {
            sent: 600,
            done: 590,
            ok: 588,
            p50: Some(Duration::from_micros(1200)),
            p99: Some(Duration::from_millis(4)),
        };
        let line = progress_line(Duration::from_millis(1500), &last, &now);
        assert_eq!(
            line,
            "[   2s] sent 600  ok 588  errors 2  rate 495/s  p50 1.20ms  p99 4.00ms"
        );
    }
}
