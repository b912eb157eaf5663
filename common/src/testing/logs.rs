//! The binaries' JSON log, captured in memory, for tests that read it.

use std::{
    io,
    sync::{Arc, Mutex},
};

use serde_json::Value;
use tracing_subscriber::{filter::LevelFilter, fmt::MakeWriter};

/// JSON log lines (the format `LOG_FORMAT=json` writes), kept in memory.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the binaries' JSON log at `info` and above, written here, as
    /// the process's global subscriber. Call first in the test: nextest runs
    /// each test in its own process, and `telemetry::init_for_tests` then
    /// leaves this one in place.
    pub fn install() -> Self {
        let capture = Self::default();
        tracing::subscriber::set_global_default(crate::telemetry::json_test_subscriber(
            capture.clone(),
            LevelFilter::INFO,
        ))
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
