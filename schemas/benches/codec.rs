//! Codec and alert benchmarks. Inputs are built in code (no datasets).
//!
//! `cargo bench -p ids-schemas -- --warm-up-time 1 --measurement-time 2`
//!
//! Decode groups report throughput in records, so criterion's "time" divided
//! by the batch size is the per-record cost.
//!
//! The clock is the benchmark thread's CPU time by default, because the
//! machines this runs on are shared (several builds at once on 2 cores) and
//! wall time then mostly measures the neighbours. `IDS_BENCH_CLOCK=wall`
//! switches to criterion's usual wall clock.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ids_schemas::alert::{event_id, AlertEncoder, AlertFields, AlertFormat};
use ids_schemas::flow::{FeatureType, CIC_FEATURES, NSL_KDD_FEATURES};
use ids_schemas::{CicFeatures, FlowCodec, FlowRecord, NslKddFeatures, SourceDataset};
use serde_json::{Map, Value};

/// Thread CPU time or wall time, chosen at start-up (see the module docs).
struct Clock {
    cpu: bool,
}

impl Clock {
    fn from_env() -> Clock {
        Clock {
            cpu: std::env::var("IDS_BENCH_CLOCK").map_or(true, |v| v != "wall"),
        }
    }
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is
    // supported on Linux. On failure `ts` stays zero (measurements read 0).
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for Clock {
    type Intermediate = (Instant, Duration);
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        (
            Instant::now(),
            if self.cpu {
                thread_cpu_time()
            } else {
                Duration::ZERO
            },
        )
    }
    fn end(&self, (wall, cpu): Self::Intermediate) -> Self::Value {
        if self.cpu {
            thread_cpu_time().saturating_sub(cpu)
        } else {
            wall.elapsed()
        }
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

/// Plausible values for a feature table: integers of mixed magnitudes (so
/// varints are 1 to 4 bytes, as in real flows), fractional doubles.
fn features<T: serde::de::DeserializeOwned>(
    table: &[ids_schemas::flow::FeatureSpec],
    seed: u64,
) -> T {
    let mut m = Map::new();
    for (i, spec) in table.iter().enumerate() {
        let k = (i as u64).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000;
        let v = match spec.ty {
            FeatureType::Int => Value::from(k as i32 % 300),
            FeatureType::Long => Value::from(k * k * (1 + k % 7)),
            FeatureType::Double => Value::from(k as f64 / 7.0),
            FeatureType::Boolean => Value::from(k.is_multiple_of(2)),
            FeatureType::String => Value::from(["tcp", "http", "SF", "private"][k as usize % 4]),
        };
        m.insert(spec.name.to_owned(), v);
    }
    serde_json::from_value(Value::Object(m)).expect("feature table matches struct")
}

fn nsl_record(seed: u64) -> FlowRecord {
    FlowRecord {
        source: SourceDataset::NslKdd,
        label: Some("neptune".into()),
        nsl_kdd: Some(features::<NslKddFeatures>(NSL_KDD_FEATURES, seed)),
        ..Default::default()
    }
}

fn cic_record(seed: u64) -> FlowRecord {
    FlowRecord {
        flow_id: Some(format!(
            "192.168.10.5-192.168.10.3-{}-80-6",
            40000 + seed % 20000
        )),
        event_time: Some(1_499_344_746_818_000 + seed as i64 * 1000),
        src_ip: Some("192.168.10.5".into()),
        src_port: Some(40000 + (seed % 20000) as i32),
        dst_ip: Some("192.168.10.3".into()),
        dst_port: Some(80),
        transport: Some("tcp".into()),
        source: SourceDataset::CicIds2017Improved,
        label: Some("DoS Hulk".into()),
        nsl_kdd: None,
        cic: Some(features::<CicFeatures>(CIC_FEATURES, seed)),
    }
}

fn decode(c: &mut Criterion<Clock>) {
    let codec = FlowCodec::new();
    type Make = fn(u64) -> FlowRecord;
    for (name, make) in [("nsl_kdd", nsl_record as Make), ("cic", cic_record as Make)] {
        let mut group = c.benchmark_group(format!("decode/{name}"));
        for batch in [1usize, 64, 1024] {
            let msgs: Vec<Vec<u8>> = (0..batch as u64)
                .map(|i| {
                    let mut out = Vec::new();
                    codec.encode(&make(i), &mut out).expect("encode");
                    out
                })
                .collect();
            group.throughput(Throughput::Elements(batch as u64));
            let mut recs = vec![FlowRecord::default(); batch];
            group.bench_with_input(BenchmarkId::new("fast", batch), &msgs, |b, msgs| {
                b.iter(|| {
                    for (m, r) in msgs.iter().zip(recs.iter_mut()) {
                        codec.decode_into(black_box(m), r).expect("decode");
                    }
                    black_box(&recs);
                })
            });
            group.bench_with_input(BenchmarkId::new("apache_value", batch), &msgs, |b, msgs| {
                b.iter(|| {
                    for m in msgs {
                        black_box(codec.decode_generic(black_box(m)).expect("decode"));
                    }
                })
            });
        }
        group.finish();
    }
}

fn encode(c: &mut Criterion<Clock>) {
    let codec = FlowCodec::new();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for (name, rec) in [("nsl_kdd", nsl_record(1)), ("cic", cic_record(1))] {
        let mut out = Vec::with_capacity(1024);
        group.bench_function(BenchmarkId::new("fast", name), |b| {
            b.iter(|| {
                out.clear();
                codec.encode(black_box(&rec), &mut out).expect("encode");
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn alerts(c: &mut Criterion<Clock>) {
    let id = event_id("flows", 3, 12_345, "5f0c1e2d9a8b7c6d");
    let fields = AlertFields {
        timestamp_ms: 1_499_344_746_818,
        event_id: &id,
        class_name: "DoS",
        attack: true,
        confidence: 0.998,
        severity: 73,
        model_id: "5f0c1e2d9a8b7c6d",
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
        kafka_offset: 12_345,
        kafka_key: Some("192.168.10.5:58181"),
    };
    let mut group = c.benchmark_group("alert");
    group.throughput(Throughput::Elements(1));
    for (name, format) in [("json", AlertFormat::Json), ("avro", AlertFormat::Avro)] {
        let enc = AlertEncoder::new(format);
        let mut out = Vec::with_capacity(1024);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                enc.encode(black_box(&fields), &mut out).expect("encode");
                black_box(&out);
            })
        });
    }
    group.bench_function("event_id", |b| {
        b.iter(|| {
            black_box(event_id(
                black_box("flows"),
                3,
                black_box(12_345),
                "5f0c1e2d9a8b7c6d",
            ))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(Clock::from_env());
    targets = decode, encode, alerts
}
criterion_main!(benches);
