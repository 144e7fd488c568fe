//! W3C trace context between Kafka headers and OpenTelemetry spans.
//!
//! The processor never needs an OpenTelemetry propagator: `ids_schemas`
//! parses and formats `traceparent`, and this module turns it into span
//! contexts for links and parents. When no OpenTelemetry layer is installed
//! (tracing off), [`otel_active`] is false and none of this runs per record.

use ids_schemas::trace_context::TraceParent;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use rdkafka::message::{BorrowedMessage, Message as _};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The remote span context of a producer span.
pub(crate) fn remote_span_context(tp: &TraceParent) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(tp.trace_id),
        SpanId::from_bytes(tp.span_id),
        TraceFlags::new(tp.flags),
        true,
        TraceState::default(),
    )
}

/// Links the batch span to a flow's producer span. A batch spans several
/// partitions, so the message's partition, offset and key go on the link (one
/// link per message, as the messaging conventions do for batches) rather than
/// on the span. Only called when tracing is on and the flow was sampled.
pub(crate) fn link_message(batch_span: &tracing::Span, tp: &TraceParent, m: &BorrowedMessage<'_>) {
    let mut attrs = Vec::with_capacity(3);
    attrs.push(KeyValue::new(
        "messaging.destination.partition.id",
        m.partition().to_string(),
    ));
    attrs.push(KeyValue::new("messaging.kafka.offset", m.offset()));
    if let Some(k) = m.key() {
        attrs.push(KeyValue::new(
            "messaging.kafka.message.key",
            String::from_utf8_lossy(k).into_owned(),
        ));
    }
    batch_span.add_link_with_attributes(remote_span_context(tp), attrs);
}

/// Whether `span` is recorded by an OpenTelemetry layer (so links and child
/// spans are worth creating).
pub(crate) fn otel_active(span: &tracing::Span) -> bool {
    if span.is_disabled() {
        return false;
    }
    span.context().span().span_context().is_valid()
}

/// The `traceparent` of `span`, if it has a valid OpenTelemetry context.
pub(crate) fn traceparent_of(span: &tracing::Span) -> Option<TraceParent> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    Some(TraceParent {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    })
}

/// A context whose parent is the remote producer span.
pub(crate) fn remote_parent(tp: &TraceParent) -> Context {
    Context::new().with_remote_span_context(remote_span_context(tp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_layer_means_inactive() {
        let span = tracing::info_span!("process flows");
        assert!(!otel_active(&span));
        assert!(traceparent_of(&span).is_none());
    }
}
