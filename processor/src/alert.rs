//! From a verdict to the fields of its alert document.
//!
//! One function, used by the pipeline and by the hot-path benchmark, so the
//! benchmark measures the mapping the processor really runs. Every field comes
//! from the source record, its Kafka provenance and the model, never from the
//! processing time, which is what makes a redelivered verdict byte-identical.

use ids_models::inference::{Classifier, Verdict};
use ids_schemas::alert::{alert_timestamp_ms, AlertFields};
use ids_schemas::FlowRecord;

/// The Kafka record a flow was read from: the provenance an alert carries.
#[derive(Debug, Clone, Copy)]
pub struct SourceRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The record's Kafka timestamp (ms); `@timestamp` falls back to it when
    /// the flow has no event time of its own.
    pub timestamp_ms: Option<i64>,
    /// The record key as text, when it has one.
    pub key: Option<&'a str>,
}

/// The alert fields for `verdict` on `rec`. `event_id` is
/// `ids_schemas::alert::event_id` of the source record and the model;
/// `trace_id_hex` is the trace id of the flow's incoming `traceparent`.
pub fn alert_fields<'a>(
    rec: &'a FlowRecord,
    verdict: &Verdict,
    classifier: &'a Classifier,
    source: SourceRecord<'a>,
    event_id: &'a str,
    trace_id_hex: Option<&'a str>,
) -> AlertFields<'a> {
    AlertFields {
        timestamp_ms: alert_timestamp_ms(rec.event_time, source.timestamp_ms),
        event_id,
        class_name: classifier.class_name(verdict.class),
        attack: classifier.is_attack(verdict.class),
        confidence: verdict.confidence,
        severity: classifier.severity(verdict),
        model_id: classifier.model_id(),
        model_version: classifier.model_version(),
        model_name: classifier.model_name(),
        flow_id: rec.flow_id.as_deref(),
        label: rec.label.as_deref(),
        source_dataset: rec.source,
        src_ip: rec.src_ip.as_deref(),
        src_port: rec.src_port,
        dst_ip: rec.dst_ip.as_deref(),
        dst_port: rec.dst_port,
        transport: rec.transport.as_deref(),
        trace_id_hex,
        kafka_topic: source.topic,
        kafka_partition: source.partition,
        kafka_offset: source.offset,
        kafka_key: source.key,
    }
}
