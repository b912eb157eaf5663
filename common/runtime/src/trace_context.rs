//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): one checkout
//! is one trace, across HTTP calls, outbox rows and AMQP messages.
//!
//! Every `tracing` span gets an OpenTelemetry span context (trace id, span id)
//! from the layer `telemetry` installs, exported over OTLP or not.
//! The context crosses process boundaries as a `traceparent` value:
//!
//! - HTTP: the gateway sends it to order-service ([`current`], in the
//!   `traceparent` request header); every service's request span is a child
//!   of the incoming header (the `http` layers, [`set_remote_parent`]).
//! - Events: `messaging::outbox::enqueue` stores the current context
//!   with the outbox row, the relay publishes it as the `traceparent` AMQP
//!   header, and the consumer runs the handler in a span that is a child of
//!   it. Retries and parking copy the message's headers, so the trace goes on
//!   through them too.
//!
//! Only `traceparent` is carried; `tracestate` (vendor data) is not.

use std::fmt;

use opentelemetry::{
    Context,
    trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState},
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header name, on HTTP requests and AMQP messages alike.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed `traceparent` value: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    /// The id of the span that sent it (the receiver's parent).
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// Parses a header value as the specification says a receiver must:
    /// lower-case hex, no all-zero ids, version `ff` invalid; a future
    /// version may append fields after a `-`. `None` when invalid (the
    /// receiver then starts a new trace).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let bytes = value.as_bytes();
        if bytes.len() < 55 {
            return None;
        }
        let version = hex_byte(&value[0..2])?;
        if version == 0xff
            || (version == 0 && bytes.len() != 55)
            || (bytes.len() > 55 && bytes[55] != b'-')
        {
            return None;
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let mut trace_id = [0; 16];
        for (i, byte) in trace_id.iter_mut().enumerate() {
            *byte = hex_byte(&value[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span_id = [0; 8];
        for (i, byte) in span_id.iter_mut().enumerate() {
            *byte = hex_byte(&value[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&value[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The trace id as 32 lower-case hex digits (the `trace_id` log field).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The context of a valid OpenTelemetry span, `None` for an invalid one
    /// (no span, or tracing not installed).
    pub fn from_span_context(context: &SpanContext) -> Option<Self> {
        context.is_valid().then(|| Self {
            trace_id: context.trace_id().to_bytes(),
            span_id: context.span_id().to_bytes(),
            flags: context.trace_flags().to_u8(),
        })
    }

    /// As the remote parent of a span started here.
    pub fn to_span_context(&self) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        )
    }
}

/// Always written as version `00`, with only the sampled flag.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags & 1
        )
    }
}

fn hex_byte(two: &str) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match two.as_bytes() {
        [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trace context of `span`, to send to whoever continues the work.
pub fn of(span: &tracing::Span) -> Option<TraceParent> {
    TraceParent::from_span_context(span.context().span().span_context())
}

/// The trace context of the current span (see [`of`]).
pub fn current() -> Option<TraceParent> {
    of(&tracing::Span::current())
}

/// Makes `span` a child of the caller's span named in a `traceparent` value,
/// so its trace id is the caller's. Without a value, or with an invalid one,
/// `span` starts a new trace. Call before the span is first entered.
pub fn set_remote_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(parent) = traceparent.and_then(TraceParent::parse) else {
        return;
    };
    let context = Context::new().with_remote_span_context(parent.to_span_context());
    // Fails only without the OpenTelemetry layer (a bare test subscriber) or
    // for a span filtered out: then there are no ids to continue anyway.
    let _ = span.set_parent(context);
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_formats_the_specifications_example() {
        let parent = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.span_id_hex(), "00f067aa0ba902b7");
        assert!(parent.sampled());
        assert_eq!(parent.to_string(), EXAMPLE);
        let unsampled = TraceParent::parse(&EXAMPLE.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled());
        assert!(unsampled.to_string().ends_with("-00"));
    }

    #[test]
    fn rejects_what_the_specification_calls_invalid() {
        for invalid in [
            "",
            "garbage",
            // upper-case hex
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            // all-zero trace id and span id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // version ff, and version 00 with extra fields
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // wrong separators and lengths
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bx-01",
            // a future version must separate further fields with a dash
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(TraceParent::parse(invalid), None, "{invalid:?}");
        }
    }

    #[test]
    fn a_future_version_is_read_for_its_known_fields() {
        let parent =
            TraceParent::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what")
                .unwrap();
        assert_eq!(parent.to_string(), EXAMPLE);
    }

    #[test]
    fn round_trips_through_an_opentelemetry_span_context() {
        let parent = TraceParent::parse(EXAMPLE).unwrap();
        let context = parent.to_span_context();
        assert!(context.is_remote());
        assert_eq!(TraceParent::from_span_context(&context), Some(parent));
        assert_eq!(
            TraceParent::from_span_context(&SpanContext::empty_context()),
            None
        );
    }

    #[test]
    fn a_span_with_a_remote_parent_continues_its_trace_and_is_a_new_span() {
        let subscriber = crate::telemetry::test_subscriber();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("receive");
            set_remote_parent(&span, Some(EXAMPLE));
            let own = of(&span).expect("the span has a context");
            assert_eq!(own.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_ne!(own.span_id, TraceParent::parse(EXAMPLE).unwrap().span_id);
            let _entered = span.enter();
            let child = tracing::info_span!("child");
            let child = of(&child).unwrap();
            assert_eq!(child.trace_id, own.trace_id, "children inherit the trace");
            assert_eq!(current(), Some(own));

            let fresh = tracing::info_span!(parent: None, "fresh");
            set_remote_parent(&fresh, Some("not a traceparent"));
            assert_ne!(of(&fresh).unwrap().trace_id, own.trace_id, "a new trace");
        });
    }
}
