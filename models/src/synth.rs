//! Synthetic flows drawn from a model's per-class statistics (demo traffic).
//!
//! Why not copy real rows: dataset files must not enter the repository, and
//! the demo must run from a fresh clone with only the committed artifact.
//!
//! How a flow is drawn:
//! 1. A class is drawn in proportion to its training rows (so the demo shows
//!    realistic base rates), or given by the caller ([`synthesize_class`]).
//! 2. A leaf of the tree predicting that class is drawn, in proportion to
//!    the training rows that reached it. The thresholds on the path from the
//!    root to that leaf give, per feature, an interval the value must fall in.
//! 3. Each numeric feature is drawn from the class's empirical distribution
//!    (inverse CDF over the stored deciles, linear between them), resampled a
//!    few times to land inside its interval and clamped otherwise;
//!    categorical features are drawn from the class's value frequencies among
//!    the values whose vocabulary code satisfies the interval.
//!
//! Step 2 makes the model classify a synthetic flow as the class it was drawn
//! from (up to integer rounding at a threshold), which is what a demo of the
//! alert path needs; step 3 keeps the unconstrained features plausible for the
//! class. Features are drawn independently, so joint structure (e.g. bytes =
//! packets × size) is not preserved: synthetic flows are for exercising the
//! pipeline, not for training.

use ids_schemas::flow::{FlowRecord, SourceDataset};
use rand::Rng;

use crate::artifact::{ClassStats, ModelArtifact};
use crate::datasets::{cic_from_values, nsl_from_values};
use crate::features::{FeatureSet, MAX_FEATURES};
use crate::tree::LEAF;

/// Draws one synthetic flow (class in proportion to training rows).
pub fn synthesize(artifact: &ModelArtifact, rng: &mut impl Rng) -> FlowRecord {
    let total: u64 = artifact.class_stats.iter().map(|c| c.rows).sum();
    let mut pick = if total > 0 {
        rng.random_range(0..total)
    } else {
        0
    };
    let mut class = 0usize;
    for (i, c) in artifact.class_stats.iter().enumerate() {
        if pick < c.rows {
            class = artifact
                .classes
                .iter()
                .position(|n| *n == c.class)
                .unwrap_or(i);
            break;
        }
        pick -= c.rows;
    }
    synthesize_class(artifact, class, rng)
}

/// Draws one synthetic flow of class index `class` (out-of-range → class 0).
pub fn synthesize_class(artifact: &ModelArtifact, class: usize, rng: &mut impl Rng) -> FlowRecord {
    let class = if class < artifact.classes.len() {
        class
    } else {
        0
    };
    let class_name = &artifact.classes[class];
    let stats = artifact.class_stats.iter().find(|c| &c.class == class_name);
    let fs = artifact.feature_set;
    let width = fs.width();
    let (lo, hi) = leaf_box(artifact, class as u16, width, rng);
    let mut vals = [0.0f64; MAX_FEATURES];
    for f in 0..width {
        if fs.categorical_indices().contains(&f) {
            continue;
        }
        let name = &artifact.schema.names[f];
        let fstats = stats.and_then(|s| s.numeric.iter().find(|n| &n.feature == name));
        vals[f] = draw_numeric(fstats.map(|s| s.quantiles.as_slice()), lo[f], hi[f], rng);
    }
    let mut rec = FlowRecord {
        source: SourceDataset::Synthetic,
        label: Some(class_name.clone()),
        ..FlowRecord::default()
    };
    match fs {
        FeatureSet::NslKdd => {
            let mut f = nsl_from_values(&vals[..width]);
            for &idx in fs.categorical_indices() {
                let v = draw_categorical(artifact, stats, idx, lo[idx], hi[idx], rng);
                match idx {
                    1 => f.protocol_type = v,
                    2 => f.service = v,
                    _ => f.flag = v,
                }
            }
            rec.transport = Some(f.protocol_type.clone()).filter(|p| !p.is_empty());
            rec.nsl_kdd = Some(f);
        }
        FeatureSet::Cic => {
            let f = cic_from_values(&vals[..width]);
            rec.dst_port = Some(f.destination_port);
            rec.cic = Some(f);
        }
    }
    rec
}

/// Per-feature interval `(lo, hi]` of a randomly drawn leaf of `class`.
fn leaf_box(
    artifact: &ModelArtifact,
    class: u16,
    width: usize,
    rng: &mut impl Rng,
) -> ([f64; MAX_FEATURES], [f64; MAX_FEATURES]) {
    let t = &artifact.tree;
    let mut lo = [f64::NEG_INFINITY; MAX_FEATURES];
    let mut hi = [f64::INFINITY; MAX_FEATURES];
    let leaves: Vec<usize> = (0..t.len())
        .filter(|i| t.feature[*i] == LEAF && t.class[*i] == class)
        .collect();
    let total: u64 = leaves.iter().map(|l| u64::from(t.samples[*l]).max(1)).sum();
    if leaves.is_empty() || total == 0 {
        return (lo, hi);
    }
    let mut pick = rng.random_range(0..total);
    let mut leaf = leaves[0];
    for l in &leaves {
        let w = u64::from(t.samples[*l]).max(1);
        if pick < w {
            leaf = *l;
            break;
        }
        pick -= w;
    }
    // Parent pointers (children always come after parents).
    let mut parent = vec![usize::MAX; t.len()];
    for i in 0..t.len() {
        if t.feature[i] != LEAF {
            parent[t.left[i] as usize] = i;
            parent[t.right[i] as usize] = i;
        }
    }
    let mut node = leaf;
    while parent[node] != usize::MAX {
        let p = parent[node];
        let f = t.feature[p] as usize;
        if f < width {
            if t.left[p] as usize == node {
                hi[f] = hi[f].min(t.threshold[p]);
            } else {
                lo[f] = lo[f].max(t.threshold[p]);
            }
        }
        node = p;
    }
    (lo, hi)
}

/// Inverse-CDF draw from deciles, constrained to `(lo, hi]`.
fn draw_numeric(quantiles: Option<&[f64]>, lo: f64, hi: f64, rng: &mut impl Rng) -> f64 {
    let inside = |v: f64| v > lo && v <= hi;
    if let Some(q) = quantiles.filter(|q| q.len() >= 2) {
        for _ in 0..8 {
            let u: f64 = rng.random::<f64>() * (q.len() - 1) as f64;
            let i = (u.floor() as usize).min(q.len() - 2);
            let v = q[i] + (q[i + 1] - q[i]) * (u - i as f64);
            if inside(v) {
                return v;
            }
        }
        // Clamp a draw into the interval.
        let v = q[rng.random_range(0..q.len())];
        return clamp_open(v, lo, hi);
    }
    clamp_open(0.0, lo, hi)
}

/// Clamps into `(lo, hi]`, stepping just above `lo` when needed.
fn clamp_open(v: f64, lo: f64, hi: f64) -> f64 {
    let mut v = v.min(hi);
    if v <= lo {
        v = if hi.is_finite() && lo.is_finite() {
            (lo + hi) / 2.0
        } else {
            lo + (lo.abs() * 1e-9).max(1e-6)
        };
    }
    v
}

fn draw_categorical(
    artifact: &ModelArtifact,
    stats: Option<&ClassStats>,
    idx: usize,
    lo: f64,
    hi: f64,
    rng: &mut impl Rng,
) -> String {
    let name = &artifact.schema.names[idx];
    let vocab = artifact
        .schema
        .vocabularies
        .iter()
        .find(|v| &v.feature == name)
        .map(|v| v.values.as_slice())
        .unwrap_or(&[]);
    let code_ok = |value: &str| {
        let code = vocab.iter().position(|v| v == value).unwrap_or(vocab.len()) as f64;
        code > lo && code <= hi
    };
    let freqs: Vec<&(String, f64)> = stats
        .and_then(|s| s.categorical.iter().find(|c| &c.feature == name))
        .map(|c| c.values.iter().filter(|(v, _)| code_ok(v)).collect())
        .unwrap_or_default();
    let total: f64 = freqs.iter().map(|(_, p)| *p).sum();
    if total > 0.0 {
        let mut u = rng.random::<f64>() * total;
        for (v, p) in &freqs {
            if u < *p {
                return v.clone();
            }
            u -= p;
        }
        return freqs[freqs.len() - 1].0.clone();
    }
    let allowed: Vec<&String> = vocab.iter().filter(|v| code_ok(v)).collect();
    if allowed.is_empty() {
        return vocab.first().cloned().unwrap_or_default();
    }
    allowed[rng.random_range(0..allowed.len())].clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::Classifier;
    use crate::train::{tests::toy_nsl, train, TrainMeta, TrainParams};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn synthetic_flows_are_labelled_and_classified_as_their_class() {
        let out = train(
            &toy_nsl(2000),
            None,
            &TrainParams::default(),
            &TrainMeta::default(),
        )
        .expect("train");
        let a = out.artifact;
        let c = Classifier::new(&a);
        let mut rng = StdRng::seed_from_u64(1);
        let mut agree = 0;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let r = synthesize(&a, &mut rng);
            assert_eq!(r.source, SourceDataset::Synthetic);
            let label = r.label.clone().expect("label");
            assert!(a.classes.contains(&label));
            seen.insert(label.clone());
            let v = c.classify(&r).expect("classifiable");
            if c.class_name(v.class) == label {
                agree += 1;
            }
        }
        assert_eq!(seen.len(), a.classes.len());
        assert!(
            agree >= 480,
            "only {agree}/500 synthetic flows classified as drawn"
        );
        let r = synthesize_class(&a, 1, &mut rng);
        assert_eq!(r.label.as_deref(), Some("DoS"));
    }

    #[test]
    fn clamp_stays_inside() {
        assert_eq!(clamp_open(10.0, 0.5, 2.5), 2.5);
        let v = clamp_open(0.0, 0.5, 2.5);
        assert!(v > 0.5 && v <= 2.5);
        let v = clamp_open(-3.0, 7.5, f64::INFINITY);
        assert!(v > 7.5);
    }
}
