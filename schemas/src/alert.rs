//! The verdict document written to the alerts topic, shaped for SIEMs.
//!
//! Field names follow the Elastic Common Schema (ECS) wherever one exists
//! (`@timestamp`, `event.*`, `rule.*`, `source.*`, `destination.*`,
//! `network.transport`, `observer.*`, `trace.id`), so Elasticsearch, OpenSearch
//! and most SIEM ingest pipelines map it without configuration. What ECS has
//! no name for lives under `ids.*`. The JSON Schema is
//! `schemas/alert.schema.json` ([`ALERT_JSON_SCHEMA`]); the Avro form is
//! `schemas/avro/alert.avsc` ([`ALERT_AVSC`]).
//!
//! # Determinism
//!
//! At-least-once delivery means a verdict may be produced twice. Both copies
//! must be the *same bytes*, so that a SIEM can deduplicate them (for example
//! with `event.id` as the Elasticsearch document id) and a test can compare
//! them. Hence:
//!
//! * no processing time anywhere: `@timestamp` is the flow's event time, or
//!   else the source record's Kafka timestamp ([`alert_timestamp_ms`]);
//! * `event.id` is a pure function of source topic, partition, offset and
//!   model id ([`event_id`]);
//! * keys are written in one fixed order by a hand-written writer (no map
//!   iteration order, no float formatting that depends on anything but the
//!   value: floats use `ryu`'s shortest round-trip form).
//!
//! # Speed
//!
//! The processor writes one document per attack verdict (and per benign one
//! with `emit_benign`), so the JSON writer appends straight into the caller's
//! `Vec<u8>`: constant fragments are copied as byte strings, integers go
//! through `itoa`, the confidence through `ryu`, and strings from outside are
//! JSON-escaped with a lookup table. No intermediate `serde_json::Value`.
//!
//! # Avro
//!
//! With [`AlertFormat::Avro`] the same document is written as an Avro datum of
//! `alert.avsc`, single-object framed (`C3 01` + CRC-64-AVRO fingerprint, see
//! [`crate::codec`]) so that alert consumers get the same "unknown schema vs
//! corrupt" distinction as flow consumers. `@timestamp` is the field
//! `timestamp` there (`@` is not allowed in Avro names), a
//! `timestamp-millis` long.

use std::sync::OnceLock;

use apache_avro::Schema;

use crate::codec::wire::{
    put_bool, put_float, put_int, put_long, put_opt_int, put_opt_str, put_str,
};
use crate::codec::{schema_fingerprint, EncodeError, SINGLE_OBJECT_MAGIC};
use crate::flow::SourceDataset;

/// The Avro schema of the alert document, embedded at compile time.
pub const ALERT_AVSC: &str = include_str!("../avro/alert.avsc");

/// JSON Schema (draft 2020-12) of the JSON alert document.
pub const ALERT_JSON_SCHEMA: &str = include_str!("../alert.schema.json");

/// `event.kind`.
pub const EVENT_KIND: &str = "alert";
/// `event.module`.
pub const EVENT_MODULE: &str = "ids_stream";
/// `event.dataset`.
pub const EVENT_DATASET: &str = "ids_stream.alerts";
/// `observer.vendor`.
pub const OBSERVER_VENDOR: &str = "IDS Stream";
/// `observer.product`.
pub const OBSERVER_PRODUCT: &str = "ids-processor";
/// `observer.type`.
pub const OBSERVER_TYPE: &str = "ids";

/// Earliest instant RFC 3339 can express with a 4-digit year: 0000-01-01T00:00:00Z.
const MIN_TIMESTAMP_MS: i64 = -62_167_219_200_000;
/// Latest: 9999-12-31T23:59:59.999Z.
const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// Everything an alert says, borrowed from the processor's buffers so that
/// building one costs nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertFields<'a> {
    /// `@timestamp`, ms since the Unix epoch; see [`alert_timestamp_ms`].
    /// Instants outside years 0000..=9999 are clamped to that range.
    pub timestamp_ms: i64,
    /// `event.id`; see [`event_id`].
    pub event_id: &'a str,
    /// `rule.name` and `ids.verdict.class`: the predicted class.
    pub class_name: &'a str,
    /// `ids.verdict.attack`.
    pub attack: bool,
    /// `ids.verdict.confidence`, in `[0, 1]`.
    pub confidence: f32,
    /// `event.severity`: 0 for benign, 1..=100 for attacks.
    pub severity: u8,
    /// `ids.model.id`.
    pub model_id: &'a str,
    /// `ids.model.version`.
    pub model_version: &'a str,
    /// `rule.ruleset`.
    pub model_name: &'a str,
    /// `ids.flow.id` (written as `null` when absent).
    pub flow_id: Option<&'a str>,
    /// `ids.flow.label`, omitted when absent.
    pub label: Option<&'a str>,
    /// `ids.flow.source_dataset`.
    pub source_dataset: SourceDataset,
    /// `source.ip`.
    pub src_ip: Option<&'a str>,
    /// `source.port`.
    pub src_port: Option<i32>,
    /// `destination.ip`.
    pub dst_ip: Option<&'a str>,
    /// `destination.port`.
    pub dst_port: Option<i32>,
    /// `network.transport`.
    pub transport: Option<&'a str>,
    /// `trace.id`: 32 lowercase hex digits, when the record carried a traceparent.
    pub trace_id_hex: Option<&'a str>,
    /// `ids.kafka.topic`: the source topic.
    pub kafka_topic: &'a str,
    /// `ids.kafka.partition`.
    pub kafka_partition: i32,
    /// `ids.kafka.offset`.
    pub kafka_offset: i64,
    /// `ids.kafka.key`: the source record key as UTF-8 (the caller converts
    /// lossily), omitted when the record had none.
    pub kafka_key: Option<&'a str>,
}

/// `@timestamp` for a verdict: the flow's event time (µs) truncated to ms,
/// else the source record's Kafka timestamp (ms), else the Unix epoch. Never
/// the processing time, so a redelivered verdict is identical.
pub fn alert_timestamp_ms(event_time_us: Option<i64>, kafka_timestamp_ms: Option<i64>) -> i64 {
    match (event_time_us, kafka_timestamp_ms) {
        (Some(us), _) => us.div_euclid(1000),
        (None, Some(ms)) => ms,
        (None, None) => 0,
    }
}

/// Wire format of alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AlertFormat {
    /// The JSON document (the default; `content-type: application/json`).
    #[default]
    Json,
    /// Single-object framed Avro of `alert.avsc`.
    Avro,
}

/// Writes alert documents. `Copy`, stateless apart from the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertEncoder {
    format: AlertFormat,
    /// CRC-64-AVRO of `alert.avsc` (computed once per process).
    avro_fingerprint: u64,
}

impl AlertEncoder {
    pub fn new(format: AlertFormat) -> AlertEncoder {
        AlertEncoder {
            format,
            avro_fingerprint: alert_fingerprint(),
        }
    }

    pub fn format(&self) -> AlertFormat {
        self.format
    }

    /// Appends the whole document to `out` (the caller clears it). Fails only
    /// on values the schema does not allow: a confidence outside `[0, 1]` or
    /// not finite, a severity above 100.
    pub fn encode(&self, a: &AlertFields<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        validate(a)?;
        match self.format {
            AlertFormat::Json => write_json(a, out),
            AlertFormat::Avro => {
                out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
                out.extend_from_slice(&self.avro_fingerprint.to_le_bytes());
                write_avro(a, out);
            }
        }
        Ok(())
    }
}

impl Default for AlertEncoder {
    fn default() -> Self {
        Self::new(AlertFormat::default())
    }
}

fn validate(a: &AlertFields<'_>) -> Result<(), EncodeError> {
    if !(0.0..=1.0).contains(&a.confidence) {
        return Err(EncodeError::InvalidValue {
            field: "ids.verdict.confidence",
            value: a.confidence.to_string(),
            reason: "must be a finite number in [0, 1]",
        });
    }
    if a.severity > 100 {
        return Err(EncodeError::InvalidValue {
            field: "event.severity",
            value: a.severity.to_string(),
            reason: "must be in 0..=100",
        });
    }
    Ok(())
}

struct AlertSchema {
    schema: Schema,
    fingerprint: u64,
}

fn alert_schema_entry() -> &'static AlertSchema {
    static SCHEMA: OnceLock<AlertSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // A compile-time constant checked by the tests: failing is a build defect.
        let schema = Schema::parse_str(ALERT_AVSC).expect("embedded alert.avsc parses");
        let fingerprint = schema_fingerprint(&schema);
        AlertSchema {
            schema,
            fingerprint,
        }
    })
}

/// The parsed `alert.avsc`, for consumers that decode Avro alerts with apache-avro.
pub fn alert_schema() -> &'static Schema {
    &alert_schema_entry().schema
}

/// CRC-64-AVRO fingerprint of `alert.avsc` (the single-object header of Avro alerts).
pub fn alert_fingerprint() -> u64 {
    alert_schema_entry().fingerprint
}

// ------------------------------------------------------------------ event id

const FNV128_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

#[inline]
fn fnv1a(mut h: u128, bytes: &[u8]) -> u128 {
    for &b in bytes {
        h ^= u128::from(b);
        h = h.wrapping_mul(FNV128_PRIME);
    }
    h
}

/// The deterministic `event.id` of a verdict: the 128-bit FNV-1a hash of the
/// UTF-8 string `"{topic}/{partition}/{offset}/{model_id}"` (integers in
/// decimal), as 32 lowercase hex digits, most significant first.
///
/// Why this: the id must be identical for every redelivery of the same source
/// record under the same model, in any process, on any build (so no
/// `RandomState`, no randomly seeded hash), and change when either the record
/// or the model changes. Kafka topic names cannot contain `/`, so the input
/// string is unambiguous. FNV-1a is not cryptographic; the id is a dedup key
/// for non-adversarial input, where 128 bits make collisions negligible.
pub fn event_id(topic: &str, partition: i32, offset: i64, model_id: &str) -> String {
    let bytes = event_id_bytes(topic, partition, offset, model_id);
    // Only ASCII hex digits.
    String::from_utf8(bytes.to_vec()).unwrap_or_default()
}

/// [`event_id`] without the allocation: the 32 ASCII hex digits.
pub fn event_id_bytes(topic: &str, partition: i32, offset: i64, model_id: &str) -> [u8; 32] {
    let mut ib = itoa::Buffer::new();
    let mut h = fnv1a(FNV128_OFFSET, topic.as_bytes());
    h = fnv1a(h, b"/");
    h = fnv1a(h, ib.format(partition).as_bytes());
    h = fnv1a(h, b"/");
    h = fnv1a(h, ib.format(offset).as_bytes());
    h = fnv1a(h, b"/");
    h = fnv1a(h, model_id.as_bytes());
    let mut out = [0u8; 32];
    for (i, b) in h.to_be_bytes().iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
    out
}

// ---------------------------------------------------------------- RFC 3339

/// `(year, month, day)` of the given day count since 1970-01-01, in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[inline(always)]
fn put_2(buf: &mut [u8; 24], at: usize, v: u32) {
    buf[at] = b'0' + (v / 10) as u8;
    buf[at + 1] = b'0' + (v % 10) as u8;
}

/// Appends `ms` as RFC 3339 UTC with milliseconds, e.g.
/// `2017-07-06T12:39:06.818Z`, clamped to years 0000..=9999.
pub fn write_rfc3339_ms(ms: i64, out: &mut Vec<u8>) {
    let ms = ms.clamp(MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS);
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000) as u32;
    let (year, month, day) = civil_from_days(days);
    let year = year as u32; // 0..=9999 after the clamp
    let secs = in_day / 1000;
    let millis = in_day % 1000;
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    put_2(&mut buf, 0, year / 100);
    put_2(&mut buf, 2, year % 100);
    put_2(&mut buf, 5, month);
    put_2(&mut buf, 8, day);
    put_2(&mut buf, 11, secs / 3600);
    put_2(&mut buf, 14, (secs / 60) % 60);
    put_2(&mut buf, 17, secs % 60);
    buf[20] = b'0' + (millis / 100) as u8;
    put_2(&mut buf, 21, millis % 100);
    out.extend_from_slice(&buf);
}

/// [`write_rfc3339_ms`] into a new `String`.
pub fn rfc3339_ms(ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339_ms(ms, &mut out);
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_default()
}

// --------------------------------------------------------------------- JSON

const HEX: &[u8; 16] = b"0123456789abcdef";

/// For each byte: 0 = copy as is, `u` = `\u00XX`, other = `\` + that byte.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any of the 8 bytes in `w` is a control character, `"` or `\\`.
/// Exact for "any" (the SWAR zero-byte test can only misreport *which* byte).
#[inline(always)]
fn word_needs_escape(w: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let ctrl = w.wrapping_sub(LO * 0x20) & !w & HI;
    let q = w ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q & HI;
    let b = w ^ (LO * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LO) & !b & HI;
    (ctrl | quote | backslash) != 0
}

/// Appends `s` as a JSON string literal. `s` is valid UTF-8 (it is a `&str`),
/// so only quotes, backslashes and control characters need escaping. Clean
/// 8-byte words are skipped with one test each, and runs of plain bytes are
/// copied in one go.
#[inline]
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes[i..].first_chunk::<8>() {
            if !word_needs_escape(u64::from_le_bytes(*word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let e = ESCAPE[usize::from(b)];
        if e != 0 {
            out.extend_from_slice(&bytes[start..i]);
            if e == b'u' {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0x0f)]);
            } else {
                out.push(b'\\');
                out.push(e);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[inline]
fn write_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// `"source":{...}` / `"destination":{...}` with only the known parts.
#[inline]
fn write_endpoint(out: &mut Vec<u8>, key: &[u8], ip: Option<&str>, port: Option<i32>) {
    if ip.is_none() && port.is_none() {
        return;
    }
    out.extend_from_slice(key);
    out.push(b'{');
    if let Some(ip) = ip {
        out.extend_from_slice(b"\"ip\":");
        write_json_str(out, ip);
        if port.is_some() {
            out.push(b',');
        }
    }
    if let Some(port) = port {
        out.extend_from_slice(b"\"port\":");
        write_int(out, port);
    }
    out.push(b'}');
}

fn write_json(a: &AlertFields<'_>, out: &mut Vec<u8>) {
    out.reserve(640);
    out.extend_from_slice(b"{\"@timestamp\":\"");
    write_rfc3339_ms(a.timestamp_ms, out);
    out.extend_from_slice(b"\",\"event\":{\"id\":");
    write_json_str(out, a.event_id);
    out.extend_from_slice(
        b",\"kind\":\"alert\",\"category\":[\"network\",\"intrusion_detection\"],\"type\":[\"info\"],\"severity\":",
    );
    write_int(out, a.severity);
    out.extend_from_slice(
        b",\"module\":\"ids_stream\",\"dataset\":\"ids_stream.alerts\"},\"rule\":{\"name\":",
    );
    write_json_str(out, a.class_name);
    out.extend_from_slice(b",\"ruleset\":");
    write_json_str(out, a.model_name);
    out.push(b'}');
    write_endpoint(out, b",\"source\":", a.src_ip, a.src_port);
    write_endpoint(out, b",\"destination\":", a.dst_ip, a.dst_port);
    if let Some(t) = a.transport {
        out.extend_from_slice(b",\"network\":{\"transport\":");
        write_json_str(out, t);
        out.push(b'}');
    }
    out.extend_from_slice(
        b",\"observer\":{\"vendor\":\"IDS Stream\",\"product\":\"ids-processor\",\"type\":\"ids\"}",
    );
    if let Some(t) = a.trace_id_hex {
        out.extend_from_slice(b",\"trace\":{\"id\":");
        write_json_str(out, t);
        out.push(b'}');
    }
    out.extend_from_slice(b",\"ids\":{\"verdict\":{\"class\":");
    write_json_str(out, a.class_name);
    out.extend_from_slice(if a.attack {
        b",\"attack\":true,\"confidence\":"
    } else {
        b",\"attack\":false,\"confidence\":"
    });
    // validate() guarantees a finite value.
    out.extend_from_slice(ryu::Buffer::new().format_finite(a.confidence).as_bytes());
    out.extend_from_slice(b"},\"model\":{\"id\":");
    write_json_str(out, a.model_id);
    out.extend_from_slice(b",\"version\":");
    write_json_str(out, a.model_version);
    out.extend_from_slice(b"},\"flow\":{\"id\":");
    match a.flow_id {
        Some(id) => write_json_str(out, id),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"source_dataset\":\"");
    out.extend_from_slice(a.source_dataset.symbol().as_bytes());
    out.push(b'"');
    if let Some(label) = a.label {
        out.extend_from_slice(b",\"label\":");
        write_json_str(out, label);
    }
    out.extend_from_slice(b"},\"kafka\":{\"topic\":");
    write_json_str(out, a.kafka_topic);
    out.extend_from_slice(b",\"partition\":");
    write_int(out, a.kafka_partition);
    out.extend_from_slice(b",\"offset\":");
    write_int(out, a.kafka_offset);
    if let Some(key) = a.kafka_key {
        out.extend_from_slice(b",\"key\":");
        write_json_str(out, key);
    }
    out.extend_from_slice(b"}}}");
}

// --------------------------------------------------------------------- Avro

/// The Avro datum of `alert.avsc`, field for field in schema order.
fn write_avro(a: &AlertFields<'_>, out: &mut Vec<u8>) {
    out.reserve(256);
    put_long(out, a.timestamp_ms);
    // event
    put_str(out, a.event_id);
    put_str(out, EVENT_KIND);
    put_long(out, 2);
    put_str(out, "network");
    put_str(out, "intrusion_detection");
    out.push(0);
    put_long(out, 1);
    put_str(out, "info");
    out.push(0);
    put_int(out, i32::from(a.severity));
    put_str(out, EVENT_MODULE);
    put_str(out, EVENT_DATASET);
    // rule
    put_str(out, a.class_name);
    put_str(out, a.model_name);
    // source, destination
    for (ip, port) in [(a.src_ip, a.src_port), (a.dst_ip, a.dst_port)] {
        if ip.is_none() && port.is_none() {
            out.push(0);
        } else {
            out.push(2);
            put_opt_str(out, ip);
            put_opt_int(out, port);
        }
    }
    // network
    match a.transport {
        None => out.push(0),
        Some(t) => {
            out.push(2);
            put_str(out, t);
        }
    }
    // observer
    put_str(out, OBSERVER_VENDOR);
    put_str(out, OBSERVER_PRODUCT);
    put_str(out, OBSERVER_TYPE);
    // trace
    match a.trace_id_hex {
        None => out.push(0),
        Some(t) => {
            out.push(2);
            put_str(out, t);
        }
    }
    // ids.verdict
    put_str(out, a.class_name);
    put_bool(out, a.attack);
    put_float(out, a.confidence);
    // ids.model
    put_str(out, a.model_id);
    put_str(out, a.model_version);
    // ids.flow
    put_opt_str(out, a.flow_id);
    put_str(out, a.source_dataset.symbol());
    put_opt_str(out, a.label);
    // ids.kafka
    put_str(out, a.kafka_topic);
    put_int(out, a.kafka_partition);
    put_long(out, a.kafka_offset);
    put_opt_str(out, a.kafka_key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::SINGLE_OBJECT_HEADER_LEN;
    use apache_avro::types::Value;
    use proptest::prelude::*;
    use serde_json::{json, Value as Json};

    fn full() -> AlertFields<'static> {
        AlertFields {
            timestamp_ms: 1_499_344_746_818,
            event_id: "0123456789abcdef0123456789abcdef",
            class_name: "DoS",
            attack: true,
            confidence: 0.998,
            severity: 73,
            model_id: "m-1234",
            model_version: "1.0.0",
            model_name: "cic-ids2017",
            flow_id: Some("192.168.10.5-192.168.10.3-58181-53-17"),
            label: Some("DoS Hulk"),
            source_dataset: SourceDataset::CicIds2017,
            src_ip: Some("192.168.10.5"),
            src_port: Some(58181),
            dst_ip: Some("192.168.10.3"),
            dst_port: Some(53),
            transport: Some("udp"),
            trace_id_hex: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            kafka_topic: "flows",
            kafka_partition: 3,
            kafka_offset: 12345,
            kafka_key: Some("key"),
        }
    }

    fn minimal() -> AlertFields<'static> {
        AlertFields {
            flow_id: None,
            label: None,
            source_dataset: SourceDataset::NslKdd,
            src_ip: None,
            src_port: None,
            dst_ip: None,
            dst_port: None,
            transport: None,
            trace_id_hex: None,
            kafka_key: None,
            attack: false,
            severity: 0,
            class_name: "normal",
            confidence: 1.0,
            ..full()
        }
    }

    fn json_of(a: &AlertFields<'_>) -> (Vec<u8>, Json) {
        let mut out = Vec::new();
        AlertEncoder::new(AlertFormat::Json)
            .encode(a, &mut out)
            .expect("encode");
        let v: Json = serde_json::from_slice(&out).expect("valid JSON");
        (out, v)
    }

    #[test]
    fn full_document_has_the_contract_shape() {
        let (bytes, v) = json_of(&full());
        assert_eq!(
            v,
            json!({
                "@timestamp": "2017-07-06T12:39:06.818Z",
                "event": {"id": "0123456789abcdef0123456789abcdef", "kind": "alert",
                          "category": ["network", "intrusion_detection"], "type": ["info"],
                          "severity": 73, "module": "ids_stream", "dataset": "ids_stream.alerts"},
                "rule": {"name": "DoS", "ruleset": "cic-ids2017"},
                "source": {"ip": "192.168.10.5", "port": 58181},
                "destination": {"ip": "192.168.10.3", "port": 53},
                "network": {"transport": "udp"},
                "observer": {"vendor": "IDS Stream", "product": "ids-processor", "type": "ids"},
                "trace": {"id": "4bf92f3577b34da6a3ce929d0e0e4736"},
                "ids": {
                    "verdict": {"class": "DoS", "attack": true, "confidence": 0.998},
                    "model": {"id": "m-1234", "version": "1.0.0"},
                    "flow": {"id": "192.168.10.5-192.168.10.3-58181-53-17", "source_dataset": "CIC_IDS2017", "label": "DoS Hulk"},
                    "kafka": {"topic": "flows", "partition": 3, "offset": 12345, "key": "key"}
                }
            })
        );
        // Fixed key order: the document starts with @timestamp and the
        // top-level keys come in contract order.
        let text = String::from_utf8(bytes).expect("utf8");
        let order = [
            "\"@timestamp\":",
            "\"event\":",
            "\"rule\":",
            "\"source\":",
            "\"destination\":",
            "\"network\":",
            "\"observer\":",
            "\"trace\":",
            "\"ids\":",
        ];
        let positions: Vec<usize> = order.iter().map(|k| text.find(k).expect(k)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.starts_with("{\"@timestamp\":"));
    }

    #[test]
    fn optional_parts_are_omitted() {
        let (_, v) = json_of(&minimal());
        let obj = v.as_object().expect("object");
        for absent in ["source", "destination", "network", "trace"] {
            assert!(!obj.contains_key(absent), "{absent} must be omitted");
        }
        assert_eq!(
            v["ids"]["flow"],
            json!({"id": null, "source_dataset": "NSL_KDD"})
        );
        assert_eq!(
            v["ids"]["kafka"],
            json!({"topic": "flows", "partition": 3, "offset": 12345})
        );
        assert_eq!(
            v["ids"]["verdict"],
            json!({"class": "normal", "attack": false, "confidence": 1.0})
        );
        assert_eq!(v["event"]["severity"], json!(0));

        // Partial endpoints: ip without port and port without ip.
        let a = AlertFields {
            src_ip: Some("10.0.0.1"),
            dst_port: Some(80),
            ..minimal()
        };
        let (_, v) = json_of(&a);
        assert_eq!(v["source"], json!({"ip": "10.0.0.1"}));
        assert_eq!(v["destination"], json!({"port": 80}));
    }

    #[test]
    fn json_is_deterministic() {
        let enc = AlertEncoder::new(AlertFormat::Json);
        let mut a = Vec::new();
        let mut b = Vec::new();
        enc.encode(&full(), &mut a).expect("encode");
        enc.encode(&full(), &mut b).expect("encode");
        assert_eq!(a, b);
        // A fresh encoder, a copied AlertFields with separately allocated strings.
        let class = String::from("DoS");
        let copy = AlertFields {
            class_name: &class,
            ..full()
        };
        let mut c = Vec::new();
        AlertEncoder::default()
            .encode(&copy, &mut c)
            .expect("encode");
        assert_eq!(a, c);
    }

    #[test]
    fn hostile_strings_are_escaped() {
        let nasty = "quote\" backslash\\ nl\n cr\r tab\t nul\u{0} bell\u{7} us\u{1f} del\u{7f} é 漢 😀 \u{2028}";
        let a = AlertFields {
            class_name: nasty,
            kafka_key: Some(nasty),
            label: Some("</script>"),
            ..full()
        };
        let (bytes, v) = json_of(&a);
        assert_eq!(v["rule"]["name"], json!(nasty));
        assert_eq!(v["ids"]["kafka"]["key"], json!(nasty));
        assert_eq!(v["ids"]["flow"]["label"], json!("</script>"));
        assert!(
            !bytes.iter().any(|&b| b < 0x20),
            "no raw control characters"
        );
    }

    #[test]
    fn invalid_values_are_refused() {
        let enc = AlertEncoder::new(AlertFormat::Json);
        for confidence in [f32::NAN, f32::INFINITY, -0.1, 1.5] {
            let a = AlertFields {
                confidence,
                ..full()
            };
            let err = enc.encode(&a, &mut Vec::new()).expect_err("bad confidence");
            assert_eq!(err.kind(), "invalid_value");
        }
        let a = AlertFields {
            severity: 101,
            ..full()
        };
        assert!(enc.encode(&a, &mut Vec::new()).is_err());
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_499_344_746_818), "2017-07-06T12:39:06.818Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(MAX_TIMESTAMP_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(
            alert_timestamp_ms(Some(1_499_344_746_818_999), Some(5)),
            1_499_344_746_818
        );
        assert_eq!(alert_timestamp_ms(Some(-1), None), -1);
        assert_eq!(alert_timestamp_ms(None, Some(5)), 5);
        assert_eq!(alert_timestamp_ms(None, None), 0);
    }

    #[test]
    fn event_id_is_stable_and_sensitive() {
        let id = event_id("flows", 3, 12345, "m-1234");
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(id, event_id("flows", 3, 12345, "m-1234"));
        // Pinned value: changing the algorithm breaks SIEM deduplication
        // across versions, so it must be a deliberate decision.
        assert_eq!(id, "6f82742eb63829e5cab5977215debd83");
        assert_ne!(id, event_id("flows", 3, 12346, "m-1234"));
        assert_ne!(id, event_id("flows", 4, 12345, "m-1234"));
        assert_ne!(id, event_id("flows2", 3, 12345, "m-1234"));
        assert_ne!(id, event_id("flows", 3, 12345, "m-1235"));
        // FNV-1a 128 of the empty string is the offset basis.
        assert_eq!(fnv1a(FNV128_OFFSET, b""), FNV128_OFFSET);
        // Reference vector: FNV-1a 128 of "a".
        assert_eq!(
            fnv1a(FNV128_OFFSET, b"a"),
            0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964
        );
    }

    #[test]
    fn json_schema_file_is_consistent() {
        let schema: Json = serde_json::from_str(ALERT_JSON_SCHEMA).expect("JSON Schema parses");
        assert_eq!(
            schema["$schema"],
            json!("https://json-schema.org/draft/2020-12/schema")
        );
        // Every key the full document has is declared, and required keys are present.
        let (_, doc) = json_of(&full());
        check_against(&schema, &doc, "$");
        let (_, doc) = json_of(&minimal());
        check_against(&schema, &doc, "$");
    }

    /// A small structural check of `doc` against the JSON Schema subset the
    /// alert schema uses (object/required/properties/additionalProperties,
    /// const, enum, type, pattern-free). Enough to keep file and writer in sync.
    fn check_against(schema: &Json, doc: &Json, path: &str) {
        if let Some(c) = schema.get("const") {
            assert_eq!(doc, c, "{path}");
        }
        if let Some(e) = schema.get("enum") {
            assert!(e.as_array().expect("enum array").contains(doc), "{path}");
        }
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Json::String(s) => vec![s.as_str()],
                Json::Array(a) => a.iter().filter_map(Json::as_str).collect(),
                _ => panic!("{path}: bad type"),
            };
            let actual = match doc {
                Json::Null => "null",
                Json::Bool(_) => "boolean",
                Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Json::Number(_) => "number",
                Json::String(_) => "string",
                Json::Array(_) => "array",
                Json::Object(_) => "object",
            };
            assert!(
                types.contains(&actual) || (actual == "integer" && types.contains(&"number")),
                "{path}: {actual} not in {types:?}"
            );
        }
        if let Some(obj) = doc.as_object() {
            let props = schema["properties"].as_object().expect("properties");
            for req in schema["required"].as_array().into_iter().flatten() {
                assert!(
                    obj.contains_key(req.as_str().expect("str")),
                    "{path}: missing {req}"
                );
            }
            for (k, v) in obj {
                let sub = props
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}: undeclared key {k}"));
                check_against(sub, v, &format!("{path}.{k}"));
            }
        }
    }

    fn avro_of(a: &AlertFields<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        AlertEncoder::new(AlertFormat::Avro)
            .encode(a, &mut out)
            .expect("encode");
        out
    }

    fn field<'v>(v: &'v Value, path: &[&str]) -> &'v Value {
        let mut cur = v;
        for p in path {
            let inner = match cur {
                Value::Union(_, b) => b.as_ref(),
                other => other,
            };
            let Value::Record(fields) = inner else {
                panic!("not a record at {p}: {inner:?}");
            };
            cur = &fields
                .iter()
                .find(|(n, _)| n == p)
                .unwrap_or_else(|| panic!("no field {p}"))
                .1;
        }
        match cur {
            Value::Union(_, b) => b.as_ref(),
            other => other,
        }
    }

    #[test]
    fn avro_alert_decodes_with_apache_avro_and_is_canonical() {
        let schema = alert_schema();
        for a in [full(), minimal()] {
            let bytes = avro_of(&a);
            assert_eq!(&bytes[..2], &SINGLE_OBJECT_MAGIC);
            assert_eq!(&bytes[2..10], &alert_fingerprint().to_le_bytes());
            let mut body = &bytes[SINGLE_OBJECT_HEADER_LEN..];
            let value = apache_avro::from_avro_datum(schema, &mut body, None).expect("decodes");
            assert!(body.is_empty(), "no trailing bytes");
            // Re-encoding apache-avro's reading gives our bytes back.
            let again = apache_avro::to_avro_datum(schema, value.clone()).expect("re-encode");
            assert_eq!(again, &bytes[SINGLE_OBJECT_HEADER_LEN..]);

            assert_eq!(
                field(&value, &["timestamp"]),
                &Value::TimestampMillis(a.timestamp_ms)
            );
            assert_eq!(
                field(&value, &["event", "id"]),
                &Value::String(a.event_id.into())
            );
            assert_eq!(
                field(&value, &["event", "severity"]),
                &Value::Int(i32::from(a.severity))
            );
            assert_eq!(
                field(&value, &["rule", "name"]),
                &Value::String(a.class_name.into())
            );
            assert_eq!(
                field(&value, &["ids", "verdict", "confidence"]),
                &Value::Float(a.confidence)
            );
            assert_eq!(
                field(&value, &["ids", "verdict", "attack"]),
                &Value::Boolean(a.attack)
            );
            assert_eq!(
                field(&value, &["ids", "kafka", "offset"]),
                &Value::Long(a.kafka_offset)
            );
            assert_eq!(
                field(&value, &["ids", "flow", "source_dataset"]),
                &Value::String(a.source_dataset.symbol().into())
            );
            match a.src_ip {
                Some(ip) => assert_eq!(field(&value, &["source", "ip"]), &Value::String(ip.into())),
                None => assert_eq!(field(&value, &["source"]), &Value::Null),
            }
            match a.trace_id_hex {
                Some(t) => assert_eq!(field(&value, &["trace", "id"]), &Value::String(t.into())),
                None => assert_eq!(field(&value, &["trace"]), &Value::Null),
            }
        }
    }

    #[test]
    fn escaping_matches_serde_json_at_word_boundaries() {
        for s in [
            "",
            "a",
            "abcdefgh",
            "abcdefg\"",
            "abcdefgh\\",
            "\u{1}bcdefghi",
            "0123456\n89",
            "ü漢字😀\t",
        ] {
            let mut ours = Vec::new();
            write_json_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).expect("serde_json"), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn escaping_matches_serde_json(s in "\\PC{0,40}|[\\x00-\\x7f]{0,40}|(.|\n){0,40}") {
            let mut ours = Vec::new();
            write_json_str(&mut ours, &s);
            prop_assert_eq!(ours, serde_json::to_vec(&s).expect("serde_json"));
        }

        #[test]
        fn arbitrary_alerts_are_valid_json_and_avro(
            ts in any::<i64>(),
            strings in proptest::collection::vec("\\PC{0,12}|[\\x00-\\x20\"\\\\]{0,6}", 8),
            confidence in 0.0f32..=1.0,
            severity in 0u8..=100,
            port in proptest::option::of(any::<i32>()),
            offset in any::<i64>(),
            has in any::<[bool; 5]>(),
        ) {
            let pick = |i: usize, on: bool| if on { Some(strings[i].as_str()) } else { None };
            let a = AlertFields {
                timestamp_ms: ts,
                event_id: &strings[0],
                class_name: &strings[1],
                confidence,
                severity,
                model_id: &strings[2],
                model_name: &strings[3],
                flow_id: pick(4, has[0]),
                label: pick(5, has[1]),
                src_ip: pick(6, has[2]),
                src_port: port,
                transport: pick(7, has[3]),
                kafka_key: pick(0, has[4]),
                kafka_offset: offset,
                ..minimal()
            };
            let (_, v) = json_of(&a);
            prop_assert_eq!(&v["rule"]["name"], &json!(strings[1]));
            prop_assert_eq!(&v["ids"]["kafka"]["offset"], &json!(offset));
            prop_assert_eq!(v["@timestamp"].as_str().map(str::len), Some(24));
            let bytes = avro_of(&a);
            let mut body = &bytes[SINGLE_OBJECT_HEADER_LEN..];
            let value = apache_avro::from_avro_datum(alert_schema(), &mut body, None);
            prop_assert!(value.is_ok());
            prop_assert!(body.is_empty());
        }
    }
}
