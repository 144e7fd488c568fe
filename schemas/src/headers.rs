//! Kafka header names used on IDS Stream records.
//!
//! They live in the wire-contract crate because three parties must agree on
//! them: the producer (which sets trace context), the processor (which reads
//! it and writes dead letters) and whoever triages the dead-letter queue.

/// W3C Trace Context `traceparent` (see [`crate::trace_context`]).
pub const TRACEPARENT: &str = "traceparent";
/// W3C Trace Context `tracestate`, passed through untouched.
pub const TRACESTATE: &str = "tracestate";

/// DLQ: stable error category, e.g. `not_avro`, `unknown_schema`,
/// `truncated`, `invalid_avro` (from [`crate::codec::DecodeError::kind`]) or
/// the models crate's feature-error kinds.
pub const ERROR_KIND: &str = "ids.error.kind";
/// DLQ: human-readable error message.
pub const ERROR_MESSAGE: &str = "ids.error.message";
/// DLQ: topic the failed record was read from.
pub const SOURCE_TOPIC: &str = "ids.source.topic";
/// DLQ: partition of the failed record (decimal string).
pub const SOURCE_PARTITION: &str = "ids.source.partition";
/// DLQ: offset of the failed record (decimal string).
pub const SOURCE_OFFSET: &str = "ids.source.offset";

/// MIME type of the record value.
pub const CONTENT_TYPE: &str = "content-type";

/// `content-type` of a single-object encoded FlowRecord.
pub const CONTENT_TYPE_AVRO: &str = "application/avro";
/// `content-type` of a JSON alert.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Every header name above, for tests and for tools that list them.
pub const ALL: [&str; 8] = [
    TRACEPARENT,
    TRACESTATE,
    ERROR_KIND,
    ERROR_MESSAGE,
    SOURCE_TOPIC,
    SOURCE_PARTITION,
    SOURCE_OFFSET,
    CONTENT_TYPE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_ascii() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(
                a.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'-'),
                "{a}"
            );
            for b in &ALL[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(TRACEPARENT, "traceparent");
        assert_eq!(ERROR_KIND, "ids.error.kind");
        assert_eq!(SOURCE_OFFSET, "ids.source.offset");
    }
}
