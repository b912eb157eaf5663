//! `/health`, `/ready` and `/metrics`, served by every service on its
//! `BIND_ADDR`.
//!
//! `/health` is liveness: the process answers. `/ready` runs every registered
//! check (database reachable, broker connected, consumer attached) and answers
//! 503 naming the failing one, so an orchestrator stops routing to a replica
//! that cannot do its job. `/metrics` is Prometheus text.

use std::borrow::Cow;
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use futures::future::join_all;
use serde_json::{Map, Value, json};

use crate::metrics;

/// One dependency the service needs in order to be ready.
#[async_trait::async_trait]
pub trait ReadinessCheck: Send + Sync {
    async fn check(&self) -> Result<(), String>;

    /// Said in place of `"ok"` when the check passes but something is
    /// worth knowing: a condition the service works through (the broker
    /// blocking its publishers, say) rather than one that stops it.
    fn note(&self) -> Option<String> {
        None
    }

    /// Facts about the dependency shown under `details` whatever the
    /// check's outcome (the broker node a connection is on, say).
    fn details(&self) -> Option<Value> {
        None
    }

    /// Sets the gauges that describe the dependency (a pool's connections
    /// in use, say); called before each `/metrics` answer.
    fn record_gauges(&self) {}
}

/// A flag set by a background task (broker connected, consumer attached),
/// with why it is down when the task knows.
#[derive(Clone, Default)]
pub struct Flag(Arc<FlagState>);

#[derive(Default)]
pub struct FlagState {
    up: AtomicBool,
    why_down: Mutex<Option<String>>,
}

impl Flag {
    /// Up, or down for no reason worth saying (yet).
    pub fn set(&self, value: bool) {
        self.0.up.store(value, Ordering::Relaxed);
        if value {
            *self.0.why_down.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Down, and why (the last error of the task that keeps it).
    pub fn set_down(&self, why: impl Into<String>) {
        self.0.up.store(false, Ordering::Relaxed);
        *self.0.why_down.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.into());
    }

    pub fn get(&self) -> bool {
        self.0.up.load(Ordering::Relaxed)
    }

    /// Why the flag is down, if it is and the task said.
    pub fn why_down(&self) -> Option<String> {
        if self.get() {
            return None;
        }
        self.0
            .why_down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A [`Flag`] with the message reported while it is down (followed by the
/// flag's reason, when it has one).
pub struct FlagCheck {
    pub flag: Flag,
    pub when_down: &'static str,
}

#[async_trait::async_trait]
impl ReadinessCheck for FlagCheck {
    async fn check(&self) -> Result<(), String> {
        if self.flag.get() {
            return Ok(());
        }
        Err(match self.flag.why_down() {
            Some(why) => format!("{}: {why}", self.when_down),
            None => self.when_down.to_owned(),
        })
    }
}

/// What a starting service is waiting for (its database, its broker), shown
/// by `/ready` until it has started. Cheap to clone; every clone shows the
/// same text.
#[derive(Clone)]
pub struct StartupProgress(Arc<Mutex<String>>);

impl StartupProgress {
    pub fn new(waiting_for: impl Into<String>) -> Self {
        Self(Arc::new(Mutex::new(waiting_for.into())))
    }

    /// Replaces what `/ready` shows.
    pub fn set(&self, waiting_for: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = waiting_for.into();
    }

    pub fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait::async_trait]
impl ReadinessCheck for StartupProgress {
    async fn check(&self) -> Result<(), String> {
        Err(self.get())
    }
}

/// The named checks behind `/ready`.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(Cow<'static, str>, Arc<dyn ReadinessCheck>)>,
}

impl Readiness {
    /// Adds the check `name` (a key of `/ready`'s `checks`; one per name).
    pub fn with(
        mut self,
        name: impl Into<Cow<'static, str>>,
        check: impl ReadinessCheck + 'static,
    ) -> Self {
        self.checks.push((name.into(), Arc::new(check)));
        self
    }

    /// Runs every check concurrently: whether all pass, each one's outcome,
    /// and the checks' details.
    pub async fn evaluate(&self) -> (bool, Map<String, Value>, Map<String, Value>) {
        let results = join_all(self.checks.iter().map(|(_, c)| c.check())).await;
        let mut all_ok = true;
        let mut report = Map::new();
        let mut details = Map::new();
        for ((name, check), result) in self.checks.iter().zip(results) {
            if let Some(detail) = check.details() {
                details.insert(name.to_string(), detail);
            }
            let value = match result {
                Ok(()) => json!(check.note().unwrap_or_else(|| "ok".to_owned())),
                Err(reason) => {
                    all_ok = false;
                    json!(reason)
                }
            };
            report.insert(name.to_string(), value);
        }
        (all_ok, report, details)
    }
}

/// The `/health`, `/ready`, `/metrics` routes.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(readiness)
}

/// The routes of a service that is still connecting to its dependencies:
/// `/health` answers `200` with `{"status": "starting"}` (alive: an
/// orchestrator must not restart it, but a caller can tell it cannot serve
/// yet), `/ready` answers `503` with `progress`, and `/metrics` as usual.
pub fn startup_router(progress: StartupProgress) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({"status": STARTING})) }),
        )
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(Readiness::default().with("startup", progress))
}

/// `/health`'s `status` while the service is starting.
pub const STARTING: &str = "starting";

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn ready(State(readiness): State<Readiness>) -> impl IntoResponse {
    let (ok, checks, details) = readiness.evaluate().await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({"status": if ok { "ready" } else { "not_ready" }, "checks": checks});
    if !details.is_empty() {
        body["details"] = Value::Object(details);
    }
    (status, Json(body))
}

/// `/metrics`: the checks' gauges and `service_ready` (1 when `/ready`
/// would answer 200, else 0) as of this scrape, then everything recorded.
async fn metrics_text(State(readiness): State<Readiness>) -> impl IntoResponse {
    let (ok, _, _) = readiness.evaluate().await;
    metrics::record_ready(ok);
    for (_, check) in &readiness.checks {
        check.record_gauges();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics::render(),
    )
}
