//! IDS Stream's wire contract. Depends on nothing else in the workspace.
//!
//! * [`flow`]: the `FlowRecord` carried on the flows topic, with its feature tables.
//! * [`codec`]: Avro encoding of flow records with self-identifying framing
//!   (single-object by default, Confluent optional), a fast hand-written
//!   decoder for the current schema and apache-avro resolution for old ones.
//! * [`alert`]: the SIEM verdict document (JSON or Avro) written to the alerts topic.
//! * [`headers`]: Kafka header names shared by producer, processor and DLQ readers.
//! * [`trace_context`]: W3C `traceparent` parsing and formatting.
//!
//! The schema files live in `schemas/avro/` and `schemas/alert.schema.json`
//! and are embedded at compile time; nothing is looked up at run time.

pub mod alert;
pub mod codec;
pub mod flow;
pub mod headers;
pub mod trace_context;

pub use alert::{AlertEncoder, AlertFields, AlertFormat};
pub use codec::{DecodeError, EncodeError, FlowCodec, FlowSchemaVersion, Framing};
pub use flow::{CicFeatures, FlowRecord, NslKddFeatures, SourceDataset};
pub use trace_context::TraceParent;
