//! Encoding and decoding of [`FlowRecord`]s on the wire.
//!
//! # Framing: why every message names its schema
//!
//! A bare Avro datum carries no type information: the same bytes decode
//! "successfully" into garbage under the wrong schema, and a consumer cannot
//! tell a record written by a producer on a newer or older schema from a
//! corrupt one. Every message on the flows topic therefore starts with a small
//! header that identifies the writer schema:
//!
//! * **Avro single-object encoding** (the default, [`Framing::SingleObject`]):
//!   `C3 01` followed by the writer schema's 64-bit CRC-64-AVRO (Rabin)
//!   fingerprint, little-endian, then the datum. It needs no registry: the
//!   fingerprint is computed from the schema text itself.
//! * **Confluent Schema Registry framing** ([`Framing::Confluent`]): magic byte
//!   `0`, then the registry's 4-byte big-endian schema id, then the datum.
//!   The codec knows which ids mean which schema through
//!   [`FlowCodec::with_confluent_ids`]; it never calls a registry itself.
//!
//! With the header, decoding failures separate cleanly into the stable
//! [`DecodeError::kind`]s the dead-letter queue reports: `not_avro` (no known
//! magic: someone wrote something else to the topic), `unknown_schema` (a
//! well-formed header naming a schema this build does not know: upgrade the
//! consumer, the data is probably fine), `truncated` and `invalid_avro` (the
//! bytes are damaged).
//!
//! # Two decoding paths
//!
//! * Records written with the **current** schema (the overwhelmingly common
//!   case) are read by a hand-written decoder for exactly that schema
//!   (see `wire`): no generic `apache_avro::types::Value` tree, strings copied
//!   once into buffers that [`FlowCodec::decode_into`] reuses. This is what
//!   keeps decoding well under a microsecond per record.
//! * Records written with an **older** schema (the history in
//!   `avro/history/`) go through apache-avro's schema resolution, which fills
//!   fields the writer did not have with the reader schema's defaults. This
//!   path is rare and favours correctness and generality over speed.
//!
//! Encoding is hand-written too and produces exactly the bytes apache-avro
//! produces (a property test checks both directions).
//!
//! # Hostile input
//!
//! Decoding never panics and never allocates in proportion to a length the
//! input *claims*: every length prefix is checked against
//! [`MAX_FIELD_BYTES`] and against the bytes actually left before anything is
//! allocated. Before handing an old-schema record to apache-avro, the codec
//! walks it with the same bounded reader, and it caps apache-avro's own
//! allocation limit (process-wide) at [`MAX_AVRO_ALLOCATION_BYTES`].

pub(crate) mod wire;

use std::sync::{Arc, Once, OnceLock};

use apache_avro::Schema;

use crate::flow::{CicFeatures, FlowRecord, NslKddFeatures, SourceDataset};
use wire::{put_long, put_opt_int, put_opt_str, Reader};

/// The current `FlowRecord` Avro schema (JSON), embedded at compile time.
pub const FLOW_RECORD_AVSC: &str = include_str!("../../avro/flow_record.avsc");

/// Version 1 of the `FlowRecord` schema: no identity fields (flow id, event
/// time, 5-tuple). Kept so that records from old producers still decode.
pub const FLOW_RECORD_V1_AVSC: &str = include_str!("../../avro/history/flow_record.v1.avsc");

/// The two bytes that start an Avro single-object encoded message.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];

/// Length of the single-object header: magic + 8-byte fingerprint.
pub const SINGLE_OBJECT_HEADER_LEN: usize = 10;

/// The byte that starts a Confluent Schema Registry framed message.
pub const CONFLUENT_MAGIC: u8 = 0;

/// Length of the Confluent header: magic + 4-byte schema id.
pub const CONFLUENT_HEADER_LEN: usize = 5;

/// Largest string the codec accepts in one field (1 MiB). Kafka's default
/// `message.max.bytes` is about 1 MB, so a longer field cannot be legitimate;
/// rejecting it up front keeps a forged length prefix from causing work.
pub const MAX_FIELD_BYTES: usize = 1 << 20;

/// Allocation cap installed into apache-avro (process-wide, first caller wins)
/// by [`FlowCodec::new`]. apache-avro's default is 512 MiB per allocation,
/// which a 10-byte hostile message could otherwise request.
pub const MAX_AVRO_ALLOCATION_BYTES: usize = 4 << 20;

/// How a message names its writer schema. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Framing {
    /// `C3 01` + CRC-64-AVRO fingerprint (little-endian). The default.
    #[default]
    SingleObject,
    /// Confluent Schema Registry: magic `0` + big-endian schema id.
    Confluent { schema_id: u32 },
}

/// The versions of the `FlowRecord` schema this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowSchemaVersion {
    /// `avro/history/flow_record.v1.avsc`: without the identity fields.
    V1,
    /// `avro/flow_record.avsc`: the schema this build writes.
    Current,
}

impl FlowSchemaVersion {
    /// Every known version, oldest first.
    pub const ALL: [FlowSchemaVersion; 2] = [FlowSchemaVersion::V1, FlowSchemaVersion::Current];

    /// The parsed schema of this version.
    pub fn schema(self) -> &'static Schema {
        let s = schemas();
        match self {
            FlowSchemaVersion::V1 => &s.v1,
            FlowSchemaVersion::Current => &s.current,
        }
    }

    /// The CRC-64-AVRO fingerprint of this version's canonical form.
    pub fn fingerprint(self) -> u64 {
        let s = schemas();
        match self {
            FlowSchemaVersion::V1 => s.v1_fp,
            FlowSchemaVersion::Current => s.current_fp,
        }
    }

    /// The version whose fingerprint is `fp`, if known.
    pub fn from_fingerprint(fp: u64) -> Option<Self> {
        let s = schemas();
        if fp == s.current_fp {
            Some(FlowSchemaVersion::Current)
        } else if fp == s.v1_fp {
            Some(FlowSchemaVersion::V1)
        } else {
            None
        }
    }
}

struct Schemas {
    current: Schema,
    v1: Schema,
    current_fp: u64,
    v1_fp: u64,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        // The schema texts are compile-time constants checked by the tests,
        // so failing here is a build defect, not an input error.
        let current =
            Schema::parse_str(FLOW_RECORD_AVSC).expect("embedded flow_record.avsc parses");
        let v1 =
            Schema::parse_str(FLOW_RECORD_V1_AVSC).expect("embedded flow_record.v1.avsc parses");
        let current_fp = schema_fingerprint(&current);
        let v1_fp = schema_fingerprint(&v1);
        Schemas {
            current,
            v1,
            current_fp,
            v1_fp,
        }
    })
}

/// The current `FlowRecord` schema, parsed once.
pub fn flow_record_schema() -> &'static Schema {
    &schemas().current
}

/// The v1 (history) `FlowRecord` schema, parsed once.
pub fn flow_record_v1_schema() -> &'static Schema {
    &schemas().v1
}

/// The CRC-64-AVRO table (the Avro specification's "Rabin" fingerprint).
const CRC64_AVRO_TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & (0u64.wrapping_sub(fp & 1)));
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

/// The CRC-64-AVRO of the empty string (and the polynomial's seed).
const CRC64_AVRO_EMPTY: u64 = 0xc15d_213a_a4d7_a795;

/// CRC-64-AVRO of `data`, as defined in the Avro specification
/// ("Schema Fingerprints"). Used on a schema's Parsing Canonical Form.
pub fn crc64_avro(data: &[u8]) -> u64 {
    let mut fp = CRC64_AVRO_EMPTY;
    for &b in data {
        fp = (fp >> 8) ^ CRC64_AVRO_TABLE[((fp ^ u64::from(b)) & 0xff) as usize];
    }
    fp
}

/// The single-object fingerprint of `schema`: CRC-64-AVRO of its Parsing
/// Canonical Form (as apache-avro computes it, so that our headers match
/// those apache-avro's single-object writers produce).
pub fn schema_fingerprint(schema: &Schema) -> u64 {
    crc64_avro(schema.canonical_form().as_bytes())
}

/// Why bytes are not valid Avro for the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    #[error("varint longer than 10 bytes or beyond 64 bits")]
    VarintOverflow,
    #[error("int value {0} does not fit in 32 bits")]
    IntOutOfRange(i64),
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("length {0} exceeds the {max} byte field limit", max = MAX_FIELD_BYTES)]
    LengthTooLarge(i64),
    #[error("union branch index {0} out of range")]
    UnionIndex(i64),
    #[error("enum symbol index {0} out of range")]
    EnumIndex(i64),
    #[error("boolean byte {0:#04x} is neither 0 nor 1")]
    Boolean(u8),
    #[error("string is not valid UTF-8")]
    Utf8,
}

/// A message that could not be decoded. [`DecodeError::kind`] gives the
/// stable category written to the dead-letter queue's `ids.error.kind` header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Neither `C3 01` (single-object) nor `00` (Confluent) at the start.
    #[error("not an Avro message: {}", match first {
        None => "empty input".to_owned(),
        Some(b) => format!("starts with byte {b:#04x}, expected C3 01 (single-object) or 00 (Confluent)"),
    })]
    NotAvro { first: Option<u8> },
    /// Well-formed single-object header naming a schema this build does not know.
    #[error("unknown writer schema: single-object fingerprint {fingerprint:016x}")]
    UnknownFingerprint { fingerprint: u64 },
    /// Well-formed Confluent header with a schema id the codec was not told about.
    #[error("unknown writer schema: Confluent schema id {schema_id}")]
    UnknownSchemaId { schema_id: u32 },
    /// The input ended before the record (or its header) was complete.
    #[error("truncated message: input ends at byte {offset} while reading {field}")]
    Truncated { offset: usize, field: &'static str },
    /// The bytes are not a valid encoding of the writer schema.
    #[error("invalid Avro at byte {offset} in {field}: {reason}")]
    Invalid {
        offset: usize,
        field: &'static str,
        reason: InvalidReason,
    },
    /// A complete record followed by more bytes.
    #[error("{len} trailing byte(s) after the record at byte {offset}")]
    TrailingBytes { offset: usize, len: usize },
    /// apache-avro failed to decode or resolve an old-schema record.
    #[error("schema resolution failed: {message}")]
    Resolution { message: String },
}

impl DecodeError {
    /// Stable snake_case category: `not_avro`, `unknown_schema`, `truncated`
    /// or `invalid_avro`.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::NotAvro { .. } => "not_avro",
            DecodeError::UnknownFingerprint { .. } | DecodeError::UnknownSchemaId { .. } => {
                "unknown_schema"
            }
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::Invalid { .. }
            | DecodeError::TrailingBytes { .. }
            | DecodeError::Resolution { .. } => "invalid_avro",
        }
    }
}

/// A record or alert that cannot be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The Confluent schema id is registered (via
    /// [`FlowCodec::with_confluent_ids`]) for another schema version.
    #[error("Confluent schema id {schema_id} is registered for FlowRecord {registered:?}, not the current schema")]
    SchemaIdMismatch {
        schema_id: u32,
        registered: FlowSchemaVersion,
    },
    /// A string longer than [`MAX_FIELD_BYTES`]: readers would reject it.
    #[error("field {field} is {len} bytes long; the limit is {max} bytes", max = MAX_FIELD_BYTES)]
    FieldTooLong { field: &'static str, len: usize },
    /// A value outside the range the document's schema allows.
    #[error("field {field} has invalid value {value}: {reason}")]
    InvalidValue {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl EncodeError {
    /// Stable snake_case category.
    pub fn kind(&self) -> &'static str {
        match self {
            EncodeError::SchemaIdMismatch { .. } => "schema_id_mismatch",
            EncodeError::FieldTooLong { .. } => "field_too_long",
            EncodeError::InvalidValue { .. } => "invalid_value",
        }
    }
}

/// Encodes and decodes [`FlowRecord`]s. Cheap to clone (the schema-id table
/// is shared), `Send + Sync`; schemas are parsed once per process.
#[derive(Debug, Clone)]
pub struct FlowCodec {
    current_fp: u64,
    v1_fp: u64,
    confluent_ids: Arc<[(u32, FlowSchemaVersion)]>,
}

impl Default for FlowCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowCodec {
    /// A codec for single-object framing (and Confluent framing once ids are
    /// registered). Also caps apache-avro's per-allocation limit at
    /// [`MAX_AVRO_ALLOCATION_BYTES`], once per process.
    pub fn new() -> FlowCodec {
        static AVRO_LIMIT: Once = Once::new();
        AVRO_LIMIT.call_once(|| {
            apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION_BYTES);
        });
        let s = schemas();
        FlowCodec {
            current_fp: s.current_fp,
            v1_fp: s.v1_fp,
            confluent_ids: Arc::from(Vec::new()),
        }
    }

    /// Registers Confluent Schema Registry ids: which registry id stands for
    /// which known schema version. Later entries for the same id win.
    pub fn with_confluent_ids(
        mut self,
        ids: impl IntoIterator<Item = (u32, FlowSchemaVersion)>,
    ) -> FlowCodec {
        let mut table: Vec<(u32, FlowSchemaVersion)> = self.confluent_ids.to_vec();
        for (id, version) in ids {
            table.retain(|(known, _)| *known != id);
            table.push((id, version));
        }
        self.confluent_ids = Arc::from(table);
        self
    }

    /// CRC-64-AVRO fingerprint of the current schema (the one this codec writes).
    pub fn fingerprint(&self) -> u64 {
        self.current_fp
    }

    fn confluent_version(&self, schema_id: u32) -> Option<FlowSchemaVersion> {
        self.confluent_ids
            .iter()
            .find(|(id, _)| *id == schema_id)
            .map(|(_, v)| *v)
    }

    /// Appends `rec` with single-object framing to `out`.
    pub fn encode(&self, rec: &FlowRecord, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_framed(rec, Framing::SingleObject, out)
    }

    /// Appends `rec` with the given framing to `out`. Confluent framing with
    /// an id registered for another schema version is refused; unregistered
    /// ids are written as given (the caller got them from its registry).
    pub fn encode_framed(
        &self,
        rec: &FlowRecord,
        framing: Framing,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        check_lengths(rec)?;
        match framing {
            Framing::SingleObject => {
                out.reserve(SINGLE_OBJECT_HEADER_LEN + estimated_len(rec));
                out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
                out.extend_from_slice(&self.current_fp.to_le_bytes());
            }
            Framing::Confluent { schema_id } => {
                if let Some(registered) = self.confluent_version(schema_id) {
                    if registered != FlowSchemaVersion::Current {
                        return Err(EncodeError::SchemaIdMismatch {
                            schema_id,
                            registered,
                        });
                    }
                }
                out.reserve(CONFLUENT_HEADER_LEN + estimated_len(rec));
                out.push(CONFLUENT_MAGIC);
                out.extend_from_slice(&schema_id.to_be_bytes());
            }
        }
        write_datum(rec, out);
        Ok(())
    }

    /// Decodes one framed message.
    pub fn decode(&self, bytes: &[u8]) -> Result<FlowRecord, DecodeError> {
        let mut rec = FlowRecord::default();
        self.decode_into(bytes, &mut rec)?;
        Ok(rec)
    }

    /// Decodes one framed message into `rec`, reusing its string buffers and
    /// feature structs (no allocation in the steady state). On error `rec`
    /// holds partially decoded content and must not be used.
    pub fn decode_into(&self, bytes: &[u8], rec: &mut FlowRecord) -> Result<(), DecodeError> {
        let (version, header_len) = self.frame(bytes)?;
        let body = &bytes[header_len..];
        match version {
            FlowSchemaVersion::Current => read_datum(body, header_len, rec, true),
            FlowSchemaVersion::V1 => {
                // Bounded pre-pass with the hand-written reader (v1 is the
                // current layout without the identity prefix): rejects
                // truncation and forged lengths before apache-avro allocates.
                read_datum(body, header_len, rec, false)?;
                *rec = resolve(FlowSchemaVersion::V1, body, header_len)?;
                Ok(())
            }
        }
    }

    /// Decodes through apache-avro's generic `Value` (and schema resolution
    /// for old versions), whatever the writer schema. This is the reference
    /// implementation the fast path is tested and benchmarked against; use
    /// [`FlowCodec::decode`] in production.
    pub fn decode_generic(&self, bytes: &[u8]) -> Result<FlowRecord, DecodeError> {
        let (version, header_len) = self.frame(bytes)?;
        resolve(version, &bytes[header_len..], header_len)
    }

    /// Identifies the framing and writer schema; returns the header length.
    #[inline]
    fn frame(&self, bytes: &[u8]) -> Result<(FlowSchemaVersion, usize), DecodeError> {
        match bytes {
            [0xC3, 0x01, rest @ ..] => {
                let Some(fp) = rest.first_chunk::<8>() else {
                    return Err(DecodeError::Truncated {
                        offset: bytes.len(),
                        field: "single-object fingerprint",
                    });
                };
                let fp = u64::from_le_bytes(*fp);
                let version = if fp == self.current_fp {
                    FlowSchemaVersion::Current
                } else if fp == self.v1_fp {
                    FlowSchemaVersion::V1
                } else {
                    return Err(DecodeError::UnknownFingerprint { fingerprint: fp });
                };
                Ok((version, SINGLE_OBJECT_HEADER_LEN))
            }
            [0xC3] => Err(DecodeError::Truncated {
                offset: 1,
                field: "single-object magic",
            }),
            [CONFLUENT_MAGIC, rest @ ..] => {
                let Some(id) = rest.first_chunk::<4>() else {
                    return Err(DecodeError::Truncated {
                        offset: bytes.len(),
                        field: "Confluent schema id",
                    });
                };
                let schema_id = u32::from_be_bytes(*id);
                match self.confluent_version(schema_id) {
                    Some(version) => Ok((version, CONFLUENT_HEADER_LEN)),
                    None => Err(DecodeError::UnknownSchemaId { schema_id }),
                }
            }
            [first, ..] => Err(DecodeError::NotAvro {
                first: Some(*first),
            }),
            [] => Err(DecodeError::NotAvro { first: None }),
        }
    }
}

/// Upper bound of a record's encoded size when it carries no long strings,
/// so that encoding reserves once.
#[inline]
fn estimated_len(rec: &FlowRecord) -> usize {
    let mut n = 128;
    if rec.nsl_kdd.is_some() {
        n += 41 * 10;
    }
    if rec.cic.is_some() {
        n += 77 * 10;
    }
    n
}

fn check_lengths(rec: &FlowRecord) -> Result<(), EncodeError> {
    let check = |field: &'static str, s: Option<&str>| match s {
        Some(s) if s.len() > MAX_FIELD_BYTES => Err(EncodeError::FieldTooLong {
            field,
            len: s.len(),
        }),
        _ => Ok(()),
    };
    check("flow_id", rec.flow_id.as_deref())?;
    check("src_ip", rec.src_ip.as_deref())?;
    check("dst_ip", rec.dst_ip.as_deref())?;
    check("transport", rec.transport.as_deref())?;
    check("label", rec.label.as_deref())?;
    if let Some(n) = &rec.nsl_kdd {
        check("nsl_kdd.protocol_type", Some(&n.protocol_type))?;
        check("nsl_kdd.service", Some(&n.service))?;
        check("nsl_kdd.flag", Some(&n.flag))?;
    }
    Ok(())
}

/// Appends the Avro datum of `rec` (current schema, no framing).
pub(crate) fn write_datum(rec: &FlowRecord, out: &mut Vec<u8>) {
    put_opt_str(out, rec.flow_id.as_deref());
    match rec.event_time {
        None => out.push(0),
        Some(t) => {
            out.push(2);
            put_long(out, t);
        }
    }
    put_opt_str(out, rec.src_ip.as_deref());
    put_opt_int(out, rec.src_port);
    put_opt_str(out, rec.dst_ip.as_deref());
    put_opt_int(out, rec.dst_port);
    put_opt_str(out, rec.transport.as_deref());
    write_tail(rec, out);
}

/// The fields v1 and the current schema share, in order.
#[inline]
fn write_tail(rec: &FlowRecord, out: &mut Vec<u8>) {
    put_long(out, rec.source.index() as i64);
    put_opt_str(out, rec.label.as_deref());
    match &rec.nsl_kdd {
        None => out.push(0),
        Some(n) => {
            out.push(2);
            n.avro_write(out);
        }
    }
    match &rec.cic {
        None => out.push(0),
        Some(c) => {
            out.push(2);
            c.avro_write(out);
        }
    }
}

/// Test support: the v1 datum of `rec` (identity fields dropped).
#[cfg(test)]
pub(crate) fn write_datum_v1(rec: &FlowRecord, out: &mut Vec<u8>) {
    write_tail(rec, out);
}

/// Reads one datum of the current layout (`identity = true`) or the v1
/// layout (`identity = false`, identity fields set to `None`) into `rec`.
/// `base` is the header length, for error offsets.
pub(crate) fn read_datum(
    body: &[u8],
    base: usize,
    rec: &mut FlowRecord,
    identity: bool,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(body, base);
    let r = &mut r;
    if identity {
        wire::read_opt_string(r, &mut rec.flow_id).map_err(|f| r.error(f, "flow_id"))?;
        rec.event_time = wire::read_opt_long(r).map_err(|f| r.error(f, "event_time"))?;
        wire::read_opt_string(r, &mut rec.src_ip).map_err(|f| r.error(f, "src_ip"))?;
        rec.src_port = wire::read_opt_int(r).map_err(|f| r.error(f, "src_port"))?;
        wire::read_opt_string(r, &mut rec.dst_ip).map_err(|f| r.error(f, "dst_ip"))?;
        rec.dst_port = wire::read_opt_int(r).map_err(|f| r.error(f, "dst_port"))?;
        wire::read_opt_string(r, &mut rec.transport).map_err(|f| r.error(f, "transport"))?;
    } else {
        rec.flow_id = None;
        rec.event_time = None;
        rec.src_ip = None;
        rec.src_port = None;
        rec.dst_ip = None;
        rec.dst_port = None;
        rec.transport = None;
    }
    let source = r
        .enum_index(SourceDataset::SYMBOLS.len())
        .map_err(|f| r.error(f, "source"))?;
    // enum_index checked the range, so from_index cannot fail.
    rec.source = SourceDataset::from_index(source).unwrap_or_default();
    wire::read_opt_string(r, &mut rec.label).map_err(|f| r.error(f, "label"))?;
    if r.union_index(2).map_err(|f| r.error(f, "nsl_kdd"))? == 0 {
        rec.nsl_kdd = None;
    } else {
        rec.nsl_kdd
            .get_or_insert_with(NslKddFeatures::default)
            .avro_read(r)?;
    }
    if r.union_index(2).map_err(|f| r.error(f, "cic"))? == 0 {
        rec.cic = None;
    } else {
        rec.cic
            .get_or_insert_with(CicFeatures::default)
            .avro_read(r)?;
    }
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes {
            offset: r.offset(),
            len: r.remaining(),
        });
    }
    Ok(())
}

/// Decodes `body` (written with `version`) through apache-avro, resolving it
/// to the current schema when it is older. `base` is the header length.
fn resolve(
    version: FlowSchemaVersion,
    body: &[u8],
    base: usize,
) -> Result<FlowRecord, DecodeError> {
    let resolution = |e: apache_avro::Error| DecodeError::Resolution {
        message: e.to_string(),
    };
    let mut input = body;
    let reader_schema = match version {
        FlowSchemaVersion::Current => None,
        FlowSchemaVersion::V1 => Some(flow_record_schema()),
    };
    let value = apache_avro::from_avro_datum(version.schema(), &mut input, reader_schema)
        .map_err(resolution)?;
    if !input.is_empty() {
        return Err(DecodeError::TrailingBytes {
            offset: base + body.len() - input.len(),
            len: input.len(),
        });
    }
    apache_avro::from_value::<FlowRecord>(&value).map_err(resolution)
}

#[cfg(test)]
mod tests;
