//! Codec tests: schema/type agreement, apache-avro parity, hostile input,
//! schema evolution and framing.

use super::*;
use crate::flow::{FeatureSpec, FeatureType, CIC_FEATURES, NSL_KDD_FEATURES};
use apache_avro::schema::RecordField;
use apache_avro::types::Value;
use proptest::prelude::*;

// ---------------------------------------------------------------- fixtures

fn nsl_record() -> FlowRecord {
    FlowRecord {
        source: SourceDataset::NslKdd,
        label: Some("neptune".into()),
        nsl_kdd: Some(NslKddFeatures {
            duration: 0,
            protocol_type: "tcp".into(),
            service: "private".into(),
            flag: "S0".into(),
            src_bytes: 0,
            dst_bytes: 0,
            count: 123,
            srv_count: 6,
            serror_rate: 1.0,
            srv_serror_rate: 1.0,
            same_srv_rate: 0.05,
            diff_srv_rate: 0.07,
            dst_host_count: 255,
            dst_host_srv_count: 26,
            dst_host_same_srv_rate: 0.1,
            dst_host_diff_srv_rate: 0.05,
            dst_host_serror_rate: 1.0,
            dst_host_srv_serror_rate: 1.0,
            logged_in: false,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cic_record() -> FlowRecord {
    let mut cic = CicFeatures::default();
    let raw: Vec<u64> = (0..77u64).map(|i| (i * 7919) % 5000).collect();
    cic.fill_from_raw(&raw, &["x".to_owned()]);
    cic.flow_bytes_per_s = 1234.5678;
    cic.flow_iat_mean = 0.25;
    cic.destination_port = 80;
    FlowRecord {
        flow_id: Some("192.168.10.5-192.168.10.3-58181-53-17".into()),
        event_time: Some(1_499_344_746_818_000),
        src_ip: Some("192.168.10.5".into()),
        src_port: Some(58181),
        dst_ip: Some("192.168.10.3".into()),
        dst_port: Some(53),
        transport: Some("udp".into()),
        source: SourceDataset::CicIds2017,
        label: Some("DoS Hulk".into()),
        nsl_kdd: None,
        cic: Some(cic),
    }
}

/// apache-avro's encoding of `rec` as a bare datum of `schema`.
fn apache_encode(rec: &FlowRecord, schema: &Schema) -> Vec<u8> {
    let value = apache_avro::to_value(rec)
        .expect("to_value")
        .resolve(schema)
        .expect("resolve");
    apache_avro::to_avro_datum(schema, value).expect("to_avro_datum")
}

fn apache_decode(body: &[u8]) -> FlowRecord {
    let mut input = body;
    let value = apache_avro::from_avro_datum(flow_record_schema(), &mut input, None)
        .expect("from_avro_datum");
    assert!(input.is_empty());
    apache_avro::from_value(&value).expect("from_value")
}

fn fast_datum(rec: &FlowRecord) -> Vec<u8> {
    let mut out = Vec::new();
    write_datum(rec, &mut out);
    out
}

fn single_object(fp: u64, body: &[u8]) -> Vec<u8> {
    let mut out = SINGLE_OBJECT_MAGIC.to_vec();
    out.extend_from_slice(&fp.to_le_bytes());
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------- schema <-> flow.rs

fn fields(schema: &Schema) -> &[RecordField] {
    match schema {
        Schema::Record(r) => &r.fields,
        other => panic!("expected a record, got {other:?}"),
    }
}

/// The non-null branch of a `["null", T]` union with default null.
fn nullable(field: &RecordField) -> &Schema {
    let Schema::Union(u) = &field.schema else {
        panic!("{} is not a union", field.name);
    };
    assert_eq!(u.variants().len(), 2, "{}", field.name);
    assert_eq!(
        u.variants()[0],
        Schema::Null,
        "{}: null must come first",
        field.name
    );
    assert_eq!(
        field.default,
        Some(serde_json::Value::Null),
        "{}: default null",
        field.name
    );
    &u.variants()[1]
}

fn assert_group_matches(schema: &Schema, table: &[FeatureSpec], record_name: &str) {
    let Schema::Record(r) = schema else {
        panic!("{record_name}: not a record");
    };
    assert_eq!(r.name.name, record_name);
    let names: Vec<&str> = r.fields.iter().map(|f| f.name.as_str()).collect();
    let expected: Vec<&str> = table.iter().map(|f| f.name).collect();
    assert_eq!(names, expected, "{record_name}: field names/order");
    for (field, spec) in r.fields.iter().zip(table) {
        let expected = match spec.ty {
            FeatureType::Int => Schema::Int,
            FeatureType::Long => Schema::Long,
            FeatureType::Double => Schema::Double,
            FeatureType::Boolean => Schema::Boolean,
            FeatureType::String => Schema::String,
        };
        assert_eq!(field.schema, expected, "{record_name}.{}", field.name);
    }
}

#[test]
fn current_schema_mirrors_flow_rs() {
    let f = fields(flow_record_schema());
    let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "flow_id",
            "event_time",
            "src_ip",
            "src_port",
            "dst_ip",
            "dst_port",
            "transport",
            "source",
            "label",
            "nsl_kdd",
            "cic"
        ]
    );
    assert_eq!(nullable(&f[0]), &Schema::String);
    assert_eq!(nullable(&f[1]), &Schema::TimestampMicros);
    assert_eq!(nullable(&f[2]), &Schema::String);
    assert_eq!(nullable(&f[3]), &Schema::Int);
    assert_eq!(nullable(&f[4]), &Schema::String);
    assert_eq!(nullable(&f[5]), &Schema::Int);
    assert_eq!(nullable(&f[6]), &Schema::String);
    let Schema::Enum(e) = &f[7].schema else {
        panic!("source is not an enum");
    };
    assert_eq!(e.symbols, SourceDataset::SYMBOLS);
    assert_eq!(e.default.as_deref(), Some("UNKNOWN"));
    assert_eq!(f[7].default, Some(serde_json::json!("UNKNOWN")));
    assert_eq!(nullable(&f[8]), &Schema::String);
    assert_group_matches(nullable(&f[9]), NSL_KDD_FEATURES, "NslKddFeatures");
    assert_group_matches(nullable(&f[10]), CIC_FEATURES, "CicFeatures");
    let Schema::Record(top) = flow_record_schema() else {
        unreachable!()
    };
    assert_eq!(top.name.fullname(None), "io.idsstream.FlowRecord");
}

#[test]
fn v1_schema_is_current_without_identity() {
    let cur = fields(flow_record_schema());
    let v1 = fields(flow_record_v1_schema());
    assert_eq!(v1.len(), cur.len() - 7);
    for (a, b) in v1.iter().zip(&cur[7..]) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.schema, b.schema, "{}", a.name);
    }
}

#[test]
fn fingerprints_match_apache_avro_rabin() {
    for v in FlowSchemaVersion::ALL {
        let rabin = v.schema().fingerprint::<apache_avro::rabin::Rabin>();
        let bytes: [u8; 8] = rabin.bytes.as_slice().try_into().expect("8 bytes");
        assert_eq!(v.fingerprint(), u64::from_le_bytes(bytes), "{v:?}");
        assert_eq!(
            FlowSchemaVersion::from_fingerprint(v.fingerprint()),
            Some(v)
        );
    }
    assert_ne!(
        FlowSchemaVersion::V1.fingerprint(),
        FlowSchemaVersion::Current.fingerprint()
    );
    assert_eq!(
        FlowCodec::new().fingerprint(),
        FlowSchemaVersion::Current.fingerprint()
    );
    // Known vector from the Avro specification's reference implementation:
    // the fingerprint of the canonical form `"int"`.
    assert_eq!(crc64_avro(br#""int""#), 0x7275_d51a_3f39_5c8f);
}

#[test]
fn header_matches_apache_single_object_writer() {
    let rec = cic_record();
    let schema = flow_record_schema();
    let mut writer =
        apache_avro::GenericSingleObjectWriter::new_with_capacity(schema, 1024).expect("writer");
    let value = apache_avro::to_value(&rec)
        .expect("to_value")
        .resolve(schema)
        .expect("resolve");
    let mut apache = Vec::new();
    writer.write_value(value, &mut apache).expect("write");
    let mut ours = Vec::new();
    FlowCodec::new().encode(&rec, &mut ours).expect("encode");
    assert_eq!(ours, apache);
}

#[test]
fn apache_round_trip_and_byte_identity() {
    for rec in [FlowRecord::default(), nsl_record(), cic_record()] {
        let apache = apache_encode(&rec, flow_record_schema());
        assert_eq!(
            fast_datum(&rec),
            apache,
            "fast encoding == apache-avro encoding"
        );
        assert_eq!(apache_decode(&apache), rec, "apache-avro round trip");
        let mut back = FlowRecord::default();
        read_datum(&apache, 0, &mut back, true).expect("fast decode");
        assert_eq!(back, rec);
    }
}

#[test]
fn codec_round_trip_and_reuse() {
    let codec = FlowCodec::new();
    let mut buf = Vec::new();
    let mut rec = FlowRecord::default();
    for original in [
        cic_record(),
        nsl_record(),
        FlowRecord::default(),
        cic_record(),
    ] {
        buf.clear();
        codec.encode(&original, &mut buf).expect("encode");
        codec.decode_into(&buf, &mut rec).expect("decode_into");
        assert_eq!(rec, original);
        assert_eq!(codec.decode(&buf).expect("decode"), original);
        assert_eq!(codec.decode_generic(&buf).expect("generic"), original);
    }
}

#[test]
fn flow_codec_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<FlowCodec>();
    assert_send_sync::<DecodeError>();
}

// ------------------------------------------------------- schema evolution

#[test]
fn v1_records_resolve_with_defaults() {
    let v1_schema = flow_record_v1_schema();
    let mut original = cic_record();
    // Write with apache-avro's own single-object writer on the v1 schema.
    // The v1 record type has no identity fields; remove them from the value.
    let value = apache_avro::to_value(&original).expect("to_value");
    let Value::Record(fields) = value else {
        panic!("not a record")
    };
    let v1_value = Value::Record(fields.into_iter().skip(7).collect())
        .resolve(v1_schema)
        .expect("resolve v1");
    let mut writer =
        apache_avro::GenericSingleObjectWriter::new_with_capacity(v1_schema, 1024).expect("writer");
    let mut bytes = Vec::new();
    writer.write_value(v1_value, &mut bytes).expect("write v1");
    assert_eq!(
        &bytes[2..10],
        &FlowSchemaVersion::V1.fingerprint().to_le_bytes()
    );

    let codec = FlowCodec::new();
    let decoded = codec.decode(&bytes).expect("decode v1");
    assert_eq!(decoded.flow_id, None);
    assert_eq!(decoded.event_time, None);
    assert_eq!(decoded.src_ip, None);
    assert_eq!(decoded.src_port, None);
    assert_eq!(decoded.dst_ip, None);
    assert_eq!(decoded.dst_port, None);
    assert_eq!(decoded.transport, None);
    original.flow_id = None;
    original.event_time = None;
    original.src_ip = None;
    original.src_port = None;
    original.dst_ip = None;
    original.dst_port = None;
    original.transport = None;
    assert_eq!(decoded, original);

    // Our v1 writer (test support) agrees with apache-avro's.
    let mut ours = Vec::new();
    write_datum_v1(&original, &mut ours);
    assert_eq!(&bytes[10..], ours.as_slice());

    // decode_into over a record that had identity fields clears them.
    let mut reused = cic_record();
    codec
        .decode_into(&bytes, &mut reused)
        .expect("decode_into v1");
    assert_eq!(reused, original);

    // Confluent framing with an id registered for v1.
    let codec =
        codec.with_confluent_ids([(7, FlowSchemaVersion::V1), (8, FlowSchemaVersion::Current)]);
    let mut confluent = vec![0, 0, 0, 0, 7];
    confluent.extend_from_slice(&bytes[10..]);
    assert_eq!(codec.decode(&confluent).expect("confluent v1"), original);
}

#[test]
fn v1_hostile_bytes_are_rejected_before_apache_avro() {
    let codec = FlowCodec::new();
    let mut body = Vec::new();
    write_datum_v1(&nsl_record(), &mut body);
    let full = single_object(FlowSchemaVersion::V1.fingerprint(), &body);
    for cut in SINGLE_OBJECT_HEADER_LEN..full.len() {
        let err = codec.decode(&full[..cut]).expect_err("truncated v1");
        assert_eq!(err.kind(), "truncated", "cut at {cut}: {err}");
    }
    // A forged label length.
    let mut forged = single_object(FlowSchemaVersion::V1.fingerprint(), &[2]); // source = NSL_KDD
    forged.push(2); // label: string branch
    put_long(&mut forged, 1 << 62);
    let err = codec.decode(&forged).expect_err("forged length");
    assert_eq!(err.kind(), "invalid_avro", "{err}");
}

// ----------------------------------------------------------------- framing

#[test]
fn confluent_framing() {
    let rec = nsl_record();
    let codec = FlowCodec::new().with_confluent_ids([
        (42, FlowSchemaVersion::Current),
        (41, FlowSchemaVersion::V1),
    ]);
    let mut buf = Vec::new();
    codec
        .encode_framed(&rec, Framing::Confluent { schema_id: 42 }, &mut buf)
        .expect("encode");
    assert_eq!(&buf[..5], &[0, 0, 0, 0, 42]);
    assert_eq!(codec.decode(&buf).expect("decode"), rec);

    let err = codec
        .encode_framed(&rec, Framing::Confluent { schema_id: 41 }, &mut Vec::new())
        .expect_err("id registered for v1");
    assert_eq!(err.kind(), "schema_id_mismatch");

    let mut unknown = Vec::new();
    codec
        .encode_framed(&rec, Framing::Confluent { schema_id: 99 }, &mut unknown)
        .expect("unregistered ids are written as given");
    let err = codec.decode(&unknown).expect_err("unknown id");
    assert_eq!(err, DecodeError::UnknownSchemaId { schema_id: 99 });
    assert_eq!(err.kind(), "unknown_schema");
    assert_eq!(
        FlowCodec::new().decode(&buf).expect_err("no ids").kind(),
        "unknown_schema"
    );
    assert_eq!(
        codec.decode(&[0, 0, 0]).expect_err("short").kind(),
        "truncated"
    );
}

#[test]
fn encode_appends_and_rejects_oversized_strings() {
    let codec = FlowCodec::new();
    let mut buf = b"prefix".to_vec();
    codec.encode(&nsl_record(), &mut buf).expect("encode");
    assert_eq!(&buf[..6], b"prefix");
    assert_eq!(codec.decode(&buf[6..]).expect("decode"), nsl_record());

    let mut rec = nsl_record();
    rec.label = Some("x".repeat(MAX_FIELD_BYTES + 1));
    let err = codec.encode(&rec, &mut Vec::new()).expect_err("too long");
    assert_eq!(err.kind(), "field_too_long");
}

// ---------------------------------------------------------- hostile input

#[test]
fn framing_errors_have_the_contract_kinds() {
    let codec = FlowCodec::new();
    assert_eq!(codec.decode(&[]).expect_err("empty").kind(), "not_avro");
    assert_eq!(
        codec.decode(b"{\"json\":1}").expect_err("json").kind(),
        "not_avro"
    );
    assert_eq!(
        codec
            .decode(&[0xC3, 0x02, 0, 0])
            .expect_err("bad magic")
            .kind(),
        "not_avro"
    );
    assert_eq!(
        codec.decode(&[0xC3]).expect_err("half magic").kind(),
        "truncated"
    );
    assert_eq!(
        codec
            .decode(&[0xC3, 0x01, 1, 2, 3])
            .expect_err("short fp")
            .kind(),
        "truncated"
    );
    let wrong = single_object(0x0123_4567_89ab_cdef, &fast_datum(&nsl_record()));
    let err = codec.decode(&wrong).expect_err("wrong fp");
    assert_eq!(
        err,
        DecodeError::UnknownFingerprint {
            fingerprint: 0x0123_4567_89ab_cdef
        }
    );
    assert_eq!(err.kind(), "unknown_schema");
    assert!(err.to_string().contains("0123456789abcdef"), "{err}");
}

#[test]
fn every_truncation_is_reported_as_truncated() {
    let codec = FlowCodec::new();
    for rec in [nsl_record(), cic_record()] {
        let mut full = Vec::new();
        codec.encode(&rec, &mut full).expect("encode");
        for cut in 1..full.len() {
            let err = codec.decode(&full[..cut]).expect_err("prefix must fail");
            assert_eq!(
                err.kind(),
                "truncated",
                "cut at {cut}/{}: {err}",
                full.len()
            );
        }
    }
}

#[test]
fn targeted_corruptions_are_invalid_avro() {
    let codec = FlowCodec::new();
    let fp = codec.fingerprint();
    let check = |body: &[u8], what: &str| {
        let msg = single_object(fp, body);
        let err = codec.decode(&msg).expect_err(what);
        assert_eq!(err.kind(), "invalid_avro", "{what}: {err}");
        assert!(
            codec.decode_generic(&msg).is_err(),
            "{what}: apache-avro path must fail too"
        );
        err
    };
    // flow_id: string branch with a 2^62 length.
    let mut b = vec![2];
    put_long(&mut b, 1 << 62);
    let err = check(&b, "huge length");
    assert!(
        matches!(
            err,
            DecodeError::Invalid {
                reason: InvalidReason::LengthTooLarge(_),
                field: "flow_id",
                offset: 11
            }
        ),
        "{err:?}"
    );
    // Negative length.
    let mut b = vec![2];
    put_long(&mut b, -5);
    check(&b, "negative length");
    // Union index 2 and -1.
    check(&[4], "union index 2");
    check(&[1], "union index -1");
    // Enum index 6 (after seven null identity fields).
    check(&[0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0], "enum index 6");
    // Port beyond 32 bits.
    let mut b = vec![0, 0, 0, 2];
    put_long(&mut b, 1 << 40);
    check(&b, "int overflow");
    // Bad UTF-8 in the label.
    check(
        &[0, 0, 0, 0, 0, 0, 0, 2, 2, 4, 0xff, 0xfe, 0, 0],
        "bad utf8",
    );
    // Trailing bytes after a valid record.
    let mut b = fast_datum(&nsl_record());
    b.push(0);
    check(&b, "trailing byte");
    // Boolean byte 2 in nsl_kdd.land.
    let mut rec = nsl_record();
    rec.nsl_kdd.as_mut().expect("nsl").land = true;
    let mut b = fast_datum(&rec);
    let land_pos = b.iter().rposition(|&x| x == 1).expect("a 1 byte");
    b[land_pos] = 2;
    let _ = codec.decode(&single_object(fp, &b)); // must not panic whatever it hits
}

/// A body made of strategies that exercise the reader's edge cases more
/// often than uniform bytes would.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let chunk = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..16),
        any::<i64>().prop_map(|v| {
            let mut b = Vec::new();
            put_long(&mut b, v);
            b
        }),
        Just(vec![0xff; 11]),
        Just(vec![2]),
        Just(vec![0]),
    ];
    proptest::collection::vec(chunk, 0..24).prop_map(|chunks| chunks.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let codec = FlowCodec::new();
        if let Err(e) = codec.decode(&bytes) {
            prop_assert!(["not_avro", "unknown_schema", "truncated", "invalid_avro"].contains(&e.kind()));
        }
    }

    #[test]
    fn hostile_bodies_never_panic(body in hostile_body(), v1 in any::<bool>()) {
        let codec = FlowCodec::new();
        let version = if v1 { FlowSchemaVersion::V1 } else { FlowSchemaVersion::Current };
        let msg = single_object(version.fingerprint(), &body);
        let fast = codec.decode(&msg);
        if let Err(e) = &fast {
            prop_assert!(["truncated", "invalid_avro"].contains(&e.kind()), "{}", e);
        }
        // Whatever the fast path accepts, apache-avro accepts identically.
        if let Ok(rec) = fast {
            let generic = codec.decode_generic(&msg);
            prop_assert!(generic.is_ok());
            let mut a = Vec::new();
            let mut b = Vec::new();
            write_datum(&rec, &mut a);
            write_datum(&generic.expect("checked"), &mut b);
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        cic in any::<bool>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let codec = FlowCodec::new();
        let rec = if cic { cic_record() } else { nsl_record() };
        let mut msg = Vec::new();
        codec.encode(&rec, &mut msg).expect("encode");
        for (i, b) in flips {
            let at = SINGLE_OBJECT_HEADER_LEN + i.index(msg.len() - SINGLE_OBJECT_HEADER_LEN);
            msg[at] = b;
        }
        let len = SINGLE_OBJECT_HEADER_LEN + cut.index(msg.len() - SINGLE_OBJECT_HEADER_LEN + 1);
        let _ = codec.decode(&msg[..len]);
        let _ = codec.decode_generic(&msg[..len]);
    }
}

// ------------------------------------------- property: fast == apache-avro

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![1 => Just(None), 3 => s.prop_map(Some)].boxed()
}

/// Raw 64-bit patterns biased to small magnitudes (1-3 byte varints) but
/// covering the full range, NaN payloads and infinities (as f64 bits).
fn raw_values(n: usize) -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(
        prop_oneof![
            0u64..200,
            (0i64..100_000).prop_map(|v| (-v) as u64),
            any::<u64>(),
            any::<f64>().prop_map(f64::to_bits),
            Just(f64::NAN.to_bits()),
            Just(f64::INFINITY.to_bits()),
        ],
        n,
    )
}

fn arb_record() -> impl Strategy<Value = FlowRecord> {
    let identity = (
        opt(".{0,40}"),
        opt(any::<i64>()),
        opt("[0-9.:a-f]{0,39}"),
        opt(any::<i32>()),
        opt("\\PC{0,20}"),
        opt(any::<i32>()),
        opt(prop_oneof![
            Just("tcp".to_owned()),
            Just("udp".to_owned()),
            ".{0,8}"
        ]),
    );
    let rest = (
        (0..SourceDataset::SYMBOLS.len())
            .prop_map(|i| SourceDataset::from_index(i).unwrap_or_default()),
        opt(".{0,30}"),
        opt((raw_values(41), proptest::collection::vec(".{0,12}", 1..4))),
        opt(raw_values(77)),
    );
    (identity, rest).prop_map(
        |(
            (flow_id, event_time, src_ip, src_port, dst_ip, dst_port, transport),
            (source, label, nsl, cic),
        )| FlowRecord {
            flow_id,
            event_time,
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            transport,
            source,
            label,
            nsl_kdd: nsl.map(|(raw, strings)| {
                let mut n = NslKddFeatures::default();
                n.fill_from_raw(&raw, &strings);
                n
            }),
            cic: cic.map(|raw| {
                let mut c = CicFeatures::default();
                c.fill_from_raw(&raw, &["unused".to_owned()]);
                c
            }),
        },
    )
}

/// Field-wise equality that treats doubles bitwise (so NaN == NaN with the
/// same payload): the encoding of a record is exactly its field bits, so
/// equal encodings mean equal records.
fn same(a: &FlowRecord, b: &FlowRecord) -> bool {
    fast_datum(a) == fast_datum(b) && format!("{a:?}") == format!("{b:?}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn fast_and_apache_agree(rec in arb_record()) {
        // apache-avro encode -> fast decode.
        let apache = apache_encode(&rec, flow_record_schema());
        let mut fast = FlowRecord::default();
        read_datum(&apache, 0, &mut fast, true).expect("fast decode of apache bytes");
        prop_assert!(same(&fast, &rec), "fast-decode(apache-encode(r)) != r");
        // fast encode -> apache-avro decode, and byte identity.
        let ours = fast_datum(&rec);
        prop_assert_eq!(&ours, &apache);
        let back = apache_decode(&ours);
        prop_assert!(same(&back, &rec), "apache-decode(fast-encode(r)) != r");
        if !format!("{rec:?}").contains("NaN") {
            prop_assert_eq!(back, rec);
        }
    }
}
