//! Inference hot path: decoded `FlowRecord` → verdict, per flow, for batch
//! sizes 1, 64 and 1024. Records are synthesised from the committed default
//! artifacts (no dataset needed), so the bench runs on any machine.
//! Run: `cargo bench -p ids-models --bench inference`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ids_models::artifact::ModelArtifact;
use ids_models::inference::Classifier;
use ids_models::synth::synthesize;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn artifact(name: &str) -> Option<ModelArtifact> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(name);
    match ModelArtifact::load(&p) {
        Ok(a) => Some(a),
        Err(e) => {
            eprintln!("skipping {name}: {e}");
            None
        }
    }
}

fn bench(c: &mut Criterion) {
    for name in ["nsl-kdd.json", "cic-ids2017.json"] {
        let Some(a) = artifact(name) else { continue };
        let classifier = Classifier::new(&a);
        let mut rng = StdRng::seed_from_u64(42);
        let pool: Vec<_> = (0..4096).map(|_| synthesize(&a, &mut rng)).collect();
        let mut group = c.benchmark_group(format!("classify_batch/{name}"));
        for size in [1usize, 64, 1024] {
            let batch = &pool[..size];
            let mut out = Vec::with_capacity(size);
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
                b.iter(|| {
                    classifier.classify_batch(std::hint::black_box(batch), &mut out);
                    std::hint::black_box(&out);
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
