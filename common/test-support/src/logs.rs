//! Logs in tests: the compact test log, and the binaries' JSON log captured
//! in memory for tests that read it.

use std::{
    io,
    sync::{Arc, Mutex},
};

use runtime::telemetry::{json_layer, local_trace_layer};
use serde_json::Value;
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::LevelFilter, fmt::MakeWriter, layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

/// Logging for tests: compact, to the test writer, filtered by `RUST_LOG`
/// (default `warn`), safe to call from every test. Spans carry trace
/// contexts as in the binaries, so propagation works in process.
pub fn init_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(local_trace_layer("tests"))
        .with(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_target(true)
                .with_filter(filter),
        )
        .try_init();
}

/// JSON log lines (the format `LOG_FORMAT=json` writes), kept in memory.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the binaries' JSON log at `info` and above, written here, as
    /// the process's global subscriber. Call first in the test: nextest runs
    /// each test in its own process, and [`init_logs`] then leaves this one
    /// in place.
    pub fn install() -> Self {
        let capture = Self::default();
        let subscriber = tracing_subscriber::registry()
            .with(local_trace_layer("tests"))
            .with(json_layer(capture.clone()).with_filter(LevelFilter::INFO));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no global subscriber installed before LogCapture::install");
        capture
    }

    /// Every line so far, parsed; panics on a line that is not JSON.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .expect("UTF-8 log")
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
