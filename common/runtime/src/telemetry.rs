//! Logging and tracing: `RUST_LOG` filters the log (default `info`),
//! `LOG_FORMAT` picks `pretty` or `json` (default: pretty on a terminal, json
//! otherwise, so containers emit one JSON object per line).
//!
//! Every span at `info` or above carries a W3C trace context (see
//! [`crate::trace_context`]), whatever `RUST_LOG` says, so the trace is
//! propagated even when the log is quiet. In JSON, each line logged inside a
//! span has top-level `trace_id` and `span_id` fields. Spans are exported over
//! OTLP (HTTP/protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, as service
//! `OTEL_SERVICE_NAME` (default: the binary's name); [`shutdown`] flushes them.

use std::{fmt, io::IsTerminal, sync::OnceLock, time::Duration};

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing::{Event, Subscriber};
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    filter::LevelFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter, format::Writer},
    prelude::*,
    registry::LookupSpan,
};

use crate::{
    config::{self, ConfigError},
    trace_context::TraceParent,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl LogFormat {
    pub fn from_env() -> Result<Self, ConfigError> {
        match config::var("LOG_FORMAT")?.as_deref() {
            None if std::io::stdout().is_terminal() => Ok(LogFormat::Pretty),
            None => Ok(LogFormat::Json),
            Some("pretty") => Ok(LogFormat::Pretty),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(ConfigError::new(
                "LOG_FORMAT",
                format!("{other:?}: expected pretty or json"),
            )),
        }
    }
}

/// Where spans go besides the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The URL spans are posted to (HTTP/protobuf).
    pub traces_endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl OtlpSettings {
    /// `None` (no export) unless an OTLP endpoint is configured, with the
    /// specification's meaning: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used
    /// as it is, `OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL that gets
    /// `/v1/traces` appended. The exporter reads the other
    /// `OTEL_EXPORTER_OTLP_*` variables (headers, timeout) itself.
    pub fn from_env(service: &str) -> Result<Option<Self>, ConfigError> {
        let traces = config::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?;
        let general = config::var("OTEL_EXPORTER_OTLP_ENDPOINT")?;
        let Some(traces_endpoint) = traces_endpoint(traces, general) else {
            return Ok(None);
        };
        Ok(Some(Self {
            traces_endpoint,
            service_name: config::var_or("OTEL_SERVICE_NAME", service)?,
        }))
    }
}

fn traces_endpoint(traces: Option<String>, general: Option<String>) -> Option<String> {
    match (traces, general) {
        (Some(traces), _) => Some(traces),
        (None, Some(base)) => Some(format!("{}/v1/traces", base.trim_end_matches('/'))),
        (None, None) => None,
    }
}

/// The provider of every span's context; kept for [`shutdown`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

fn tracer_provider(otlp: Option<&OtlpSettings>) -> Result<SdkTracerProvider, ConfigError> {
    let builder = SdkTracerProvider::builder();
    let Some(otlp) = otlp else {
        // Ids and parents only: nothing is recorded anywhere.
        return Ok(builder.build());
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(otlp.traces_endpoint.clone())
        .build()
        .map_err(|e| ConfigError::new("OTEL_EXPORTER_OTLP_ENDPOINT", e))?;
    Ok(builder
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(otlp.service_name.clone())
                .build(),
        )
        .build())
}

/// The layer that gives spans their trace context (and exports them when the
/// provider does). Spans at `info` and above, independent of `RUST_LOG`.
fn otel_layer<S>(provider: &SdkTracerProvider, service: &'static str) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_filter(LevelFilter::INFO)
}

/// The JSON log lines the binaries write, to `writer`.
pub fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        // The innermost span's fields (request id, queue, message and
        // correlation ids), not the list of every enclosing span, which
        // repeated them on every line.
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer)
        .map_event_format(WithTraceIds)
}

/// Installs the global subscriber for `service`. Call once, first thing in `main`.
pub fn init(service: &'static str) -> Result<(), ConfigError> {
    let format = LogFormat::from_env()?;
    let filter = match config::var("RUST_LOG")? {
        None => EnvFilter::new("info"),
        Some(spec) => EnvFilter::try_new(&spec).map_err(|e| ConfigError::new("RUST_LOG", e))?,
    };
    let otlp = OtlpSettings::from_env(service)?;
    let provider = tracer_provider(otlp.as_ref())?;
    let registry = tracing_subscriber::registry().with(otel_layer(&provider, service));
    let result = match format {
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(json_layer(std::io::stdout).with_filter(filter))
            .try_init(),
    };
    if result.is_ok() {
        let _ = PROVIDER.set(provider);
        let otlp_endpoint = otlp.as_ref().map(|o| o.traces_endpoint.as_str());
        tracing::info!(
            service,
            ?format,
            otlp_endpoint = otlp_endpoint.unwrap_or("none"),
            "logging initialised"
        );
    }
    Ok(())
}

/// Exports the spans not yet sent (at most 5 s) and stops the exporter.
/// Call once, at the end of `main`; nothing to do without OTLP export.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        // Blocks while the batch is sent: fine on the way out.
        if let Err(error) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("trace export: shutdown failed: {error}");
        }
    }
}

/// Spans with trace contexts and no output (unit tests of propagation).
#[cfg(test)]
pub(crate) fn test_subscriber() -> impl Subscriber + Send + Sync {
    tracing_subscriber::registry().with(local_trace_layer("tests"))
}

/// The layer that gives spans their W3C trace context, as in the binaries,
/// without exporting them (tests and tools that join traces in process).
pub fn local_trace_layer<S>(service: &'static str) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let provider = tracer_provider(None).expect("no exporter to configure");
    otel_layer(&provider, service)
}

/// Puts the trace context of the span an event belongs to first on its JSON
/// line: `{"trace_id":"…","span_id":"…",…}`. A line logged outside any span
/// is left as it is.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(trace) = trace_of(event) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(
                writer,
                "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",{rest}",
                trace.trace_id_hex(),
                trace.span_id_hex()
            ),
            None => writer.write_str(&line),
        }
    }
}

/// The trace context of the innermost span around `event` that has one:
/// looked up in the registry, not through the log's filter, so a span the
/// log does not show still names the trace.
fn trace_of(event: &Event<'_>) -> Option<TraceParent> {
    tracing::dispatcher::get_default(|dispatch| {
        let id = if let Some(id) = event.parent() {
            id.clone()
        } else if event.is_contextual() {
            dispatch.current_span().id()?.clone()
        } else {
            return None;
        };
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(&id)?;
        span.scope().find_map(|span| {
            let context = tracing_opentelemetry::get_otel_context(&span.id(), dispatch)?;
            TraceParent::from_span_context(context.span().span_context())
        })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{Router, body::Bytes, http::HeaderMap, routing::post};

    use super::*;

    /// A collector stand-in: what was posted to `/v1/traces`.
    type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

    async fn collector() -> (String, Received) {
        let received = Received::default();
        let store = received.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |headers: HeaderMap, body: Bytes| async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                store.lock().unwrap().push((content_type, body));
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, received)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn spans_are_exported_over_otlp_http_when_an_endpoint_is_configured() {
        let (base, received) = collector().await;
        let settings = OtlpSettings {
            traces_endpoint: format!("{base}/v1/traces"),
            service_name: "otlp-test-service".into(),
        };
        let provider = tracer_provider(Some(&settings)).unwrap();
        let subscriber = tracing_subscriber::registry().with(otel_layer(&provider, "tests"));
        let trace_id = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("exported-span");
            let trace_id = crate::trace_context::of(&span).unwrap().trace_id;
            span.in_scope(|| tracing::info!("inside"));
            trace_id
        });
        // Shutting down flushes the batch (blocking: off the runtime's threads).
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .unwrap()
            .unwrap();
        let received = received.lock().unwrap().clone();
        assert_eq!(received.len(), 1, "one batch posted");
        let (content_type, body) = &received[0];
        assert_eq!(content_type, "application/x-protobuf");
        let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"exported-span"), "the span is in the batch");
        assert!(contains(b"otlp-test-service"), "as the configured service");
        assert!(contains(&trace_id), "with its trace id");
    }

    #[test]
    fn the_traces_endpoint_follows_the_specification() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(traces_endpoint(None, None), None, "no export by default");
        assert_eq!(
            traces_endpoint(None, some("http://collector:4318/")),
            some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            traces_endpoint(some("http://c:4318/custom"), some("http://other:4318")),
            some("http://c:4318/custom"),
            "the signal's own variable wins, as it is"
        );
    }
}
