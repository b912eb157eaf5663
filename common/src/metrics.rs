//! Prometheus metrics: one recorder per process, installed on first use.
//!
//! Histograms whose name ends in `_seconds` get explicit buckets so they are
//! exported as real histograms (aggregatable across replicas), not summaries.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the global recorder (idempotent). Services call it at build time.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .expect("static bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // A second recorder in the same process (tests) keeps the first one.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// The current metrics in Prometheus text format.
pub fn render() -> String {
    install().render()
}
