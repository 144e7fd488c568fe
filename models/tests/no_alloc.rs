//! Proof of the inference contract: `classify_batch` performs no heap
//! allocation per record (nor per batch, once the output vector has grown).
//! A counting global allocator wraps the system one for this test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use ids_models::artifact::ModelArtifact;
use ids_models::inference::Classifier;
use ids_models::synth::synthesize;
use rand::rngs::StdRng;
use rand::SeedableRng;

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn classify_batch_does_not_allocate() {
    for name in ["nsl-kdd.json", "cic-ids2017.json"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("artifacts")
            .join(name);
        let artifact = ModelArtifact::load(&path).expect("committed artifact");
        let classifier = Classifier::new(&artifact);
        let mut rng = StdRng::seed_from_u64(3);
        let mut batch: Vec<_> = (0..1024).map(|_| synthesize(&artifact, &mut rng)).collect();
        // Include records the model must reject: errors must not allocate either.
        batch.push(Default::default());
        let mut out = Vec::with_capacity(batch.len());
        classifier.classify_batch(&batch, &mut out); // warm-up
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        classifier.classify_batch(&batch, &mut out);
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        assert_eq!(after - before, 0, "{name}: classify_batch allocated");
        assert_eq!(out.len(), batch.len());
        assert!(
            out[..1024].iter().all(|r| r.is_ok()),
            "{name}: synthetic flows classify"
        );
        assert_eq!(
            out[1024].as_ref().map(|_| ()).unwrap_err().kind(),
            "feature_set_mismatch"
        );
    }
}
