//! Hot-path benchmarks of the processor's per-flow work, for the NSL-KDD and
//! CIC-IDS2017 shapes, at batch sizes 1, 64 and 1024:
//!
//! * `features/*`: feature extraction into the model's input layout
//!   (`ids_models::features::Encoder::encode`);
//! * `tree/*`: tree inference on an already extracted row;
//! * `classify/*`: both (`Classifier::classify`);
//! * `step/*`: the whole decode → classify → encode step of one flow as the
//!   processor runs it: `FlowCodec::decode_into` into a reused `FlowRecord`,
//!   `Classifier::classify`, `event_id`, and the JSON alert written into a
//!   reused buffer.
//!
//! Inputs are synthesised in code from the committed model artifacts (no
//! dataset needed). Throughput is in flows, so criterion's "thrpt" is
//! flows/s and "time" / batch size is the per-flow cost. Issue 6's bar is
//! `step` ≤ 1 µs per flow at batch 1024.
//!
//! `cargo bench -p ids-bench --bench hot_path -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ids_models::artifact::ModelArtifact;
use ids_models::features::{Encoder, MAX_FEATURES};
use ids_models::inference::Classifier;
use ids_processor::alert::{alert_fields, SourceRecord};
use ids_schemas::alert::{event_id, AlertEncoder, AlertFormat};
use ids_schemas::{FlowCodec, FlowRecord};
use rand::rngs::StdRng;
use rand::SeedableRng;

const BATCHES: [usize; 3] = [1, 64, 1024];
const TOPIC: &str = "flows";

/// A model and a pool of flows drawn from its per-class statistics.
struct Shape {
    name: &'static str,
    artifact: ModelArtifact,
    records: Vec<FlowRecord>,
    encoded: Vec<Vec<u8>>,
}

fn shape(name: &'static str, file: &str) -> Shape {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/artifacts")
        .join(file);
    let artifact =
        ModelArtifact::load(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    let mut rng = StdRng::seed_from_u64(42);
    let codec = FlowCodec::new();
    let records: Vec<FlowRecord> = (0..1024)
        .map(|i| {
            let mut r = ids_models::synth::synthesize(&artifact, &mut rng);
            // The processor's alerts carry the flow id when there is one.
            r.flow_id.get_or_insert_with(|| format!("flow-{i}"));
            r
        })
        .collect();
    let encoded = records
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            codec.encode(r, &mut out).expect("synthetic flow encodes");
            out
        })
        .collect();
    Shape {
        name,
        artifact,
        records,
        encoded,
    }
}

fn shapes() -> Vec<Shape> {
    vec![
        shape("nsl_kdd", "nsl-kdd.json"),
        shape("cic", "cic-ids2017.json"),
    ]
}

fn bench_features(c: &mut Criterion, shapes: &[Shape]) {
    let mut g = c.benchmark_group("features");
    for s in shapes {
        let enc = Encoder::new(&s.artifact.schema);
        for &n in &BATCHES {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(s.name, n), &n, |b, &n| {
                let mut x = [0.0f64; MAX_FEATURES];
                b.iter(|| {
                    for r in &s.records[..n] {
                        enc.encode(black_box(r), &mut x).expect("features");
                        black_box(&x);
                    }
                })
            });
        }
    }
    g.finish();
}

fn bench_tree(c: &mut Criterion, shapes: &[Shape]) {
    let mut g = c.benchmark_group("tree");
    for s in shapes {
        let enc = Encoder::new(&s.artifact.schema);
        let rows: Vec<[f64; MAX_FEATURES]> = s
            .records
            .iter()
            .map(|r| {
                let mut x = [0.0f64; MAX_FEATURES];
                enc.encode(r, &mut x).expect("features");
                x
            })
            .collect();
        for &n in &BATCHES {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(s.name, n), &n, |b, &n| {
                b.iter(|| {
                    for x in &rows[..n] {
                        let leaf = s
                            .artifact
                            .tree
                            .leaf_of(black_box(x), |_, _| Ok::<(), ()>(()));
                        black_box(leaf).ok();
                    }
                })
            });
        }
    }
    g.finish();
}

fn bench_classify(c: &mut Criterion, shapes: &[Shape]) {
    let mut g = c.benchmark_group("classify");
    for s in shapes {
        let clf = Classifier::new(&s.artifact);
        for &n in &BATCHES {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(s.name, n), &n, |b, &n| {
                b.iter(|| {
                    for r in &s.records[..n] {
                        black_box(clf.classify(black_box(r)).expect("classify"));
                    }
                })
            });
        }
    }
    g.finish();
}

/// The processor's per-flow work, minus the Kafka client calls.
fn bench_step(c: &mut Criterion, shapes: &[Shape]) {
    let mut g = c.benchmark_group("step");
    let codec = FlowCodec::new();
    let json = AlertEncoder::new(AlertFormat::Json);
    for s in shapes {
        let clf = Classifier::new(&s.artifact);
        for &n in &BATCHES {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(s.name, n), &n, |b, &n| {
                let mut rec = FlowRecord::default();
                let mut buf: Vec<u8> = Vec::with_capacity(1024);
                b.iter(|| {
                    for (offset, bytes) in s.encoded[..n].iter().enumerate() {
                        codec
                            .decode_into(black_box(bytes), &mut rec)
                            .expect("decode");
                        let v = clf.classify(&rec).expect("classify");
                        let offset = offset as i64;
                        let id = event_id(TOPIC, 0, offset, clf.model_id());
                        let source = SourceRecord {
                            topic: TOPIC,
                            partition: 0,
                            offset,
                            timestamp_ms: Some(1_700_000_000_000),
                            key: None,
                        };
                        let fields = alert_fields(&rec, &v, &clf, source, &id, None);
                        buf.clear();
                        json.encode(&fields, &mut buf).expect("encode");
                        black_box(&buf);
                    }
                })
            });
        }
    }
    g.finish();
}

fn hot_path(c: &mut Criterion) {
    let shapes = shapes();
    bench_features(c, &shapes);
    bench_tree(c, &shapes);
    bench_classify(c, &shapes);
    bench_step(c, &shapes);
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
