//! Training: labelled records → fitted linfa tree → [`ModelArtifact`].
//!
//! The pipeline, and why each step is where it is:
//! 1. **Labels** go through [`LabelMapper`] (unknown attack names are counted
//!    and become a generic attack class, never dropped).
//! 2. **Non-finite rows are skipped and counted** before anything else: a NaN
//!    would sort arbitrarily in linfa's split search, and inventing a value
//!    would teach the tree something the data did not say.
//! 3. **Seeded stratified split** (when no separate test file is given): each
//!    class is shuffled on its own and the same fraction held out, so the
//!    11 Heartbleed flows are in both halves. The shuffle is our own
//!    SplitMix64 Fisher–Yates, so a seed gives the same split on every
//!    platform and every version of `rand`.
//! 4. **Vocabularies are learned on the training part only** (the validation
//!    part must not leak into the encoding).
//! 5. **Class weighting.** `balanced` gives every row of class c the weight
//!    n / (k · n_c), sklearn's formula, passed as linfa `Dataset` weights. We
//!    verified in linfa-trees 0.8.1 (`algorithm.rs`) that weights are used by
//!    the split criterion: node class frequencies come from
//!    `label_frequencies_with_mask`, which sums `weight_for(i)`, and the split
//!    sweep moves `weight_for(i)` between the sides before computing gini or
//!    entropy. Two consequences, documented for users: linfa's
//!    `min_weight_leaf` (our `min_samples_leaf`) is compared with the *weighted*
//!    size of each side, so under `balanced` it is a minimum weight (the
//!    weights average 1, so the unit is "an average row"); `min_samples_split`
//!    is compared with the unweighted row count.
//! 6. **Fit** with linfa-trees, then compile into the [`FlatTree`], re-centre
//!    thresholds mid-gap between the node's own training values (see
//!    [`FlatTree::recenter_thresholds`]: the training partition is unchanged)
//!    and compute leaf confidences by routing the weighted training rows
//!    through it.
//! 7. **Per-class statistics** of the training rows go into the artifact for
//!    [`crate::synth`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ids_schemas::flow::FlowRecord;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use linfa::prelude::*;
use linfa_trees::{DecisionTree, SplitQuality};
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::artifact::{
    rfc3339_now, CategoricalStats, ClassStats, DataFileDigest, FeatureStats, ModelArtifact,
    StoredMetrics, TrainingSummary, FORMAT_VERSION,
};
use crate::eval::{ConfusionBuilder, EvalReport};
use crate::features::{learn_schema, Encoder, FeatureError, FeatureSet, MAX_FEATURES};
use crate::inference::Classifier;
use crate::labels::{canonical_classes, is_benign_class, LabelMapper, LabelScheme};
use crate::tree::FlatTree;

/// Split quality criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    Gini,
    #[default]
    Entropy,
}

impl std::str::FromStr for Criterion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "gini" => Ok(Criterion::Gini),
            "entropy" => Ok(Criterion::Entropy),
            o => Err(format!(
                "unknown criterion {o:?} (expected gini or entropy)"
            )),
        }
    }
}

/// Class weighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// Every row weighs 1.
    None,
    /// Row weight n / (k · n_class), so every class weighs the same in total.
    #[default]
    Balanced,
}

impl std::str::FromStr for ClassWeight {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(ClassWeight::None),
            "balanced" => Ok(ClassWeight::Balanced),
            o => Err(format!(
                "unknown class weight {o:?} (expected none or balanced)"
            )),
        }
    }
}

/// Training parameters (stored in the artifact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    pub scheme: LabelScheme,
    pub criterion: Criterion,
    /// `None` = unlimited.
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    /// Minimum (weighted, see module docs) size of a leaf.
    pub min_samples_leaf: f64,
    pub min_impurity_decrease: f64,
    pub class_weight: ClassWeight,
    pub seed: u64,
    /// Fraction held out for validation when no test file is given (0 = none).
    pub validation_split: f64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            scheme: LabelScheme::Family,
            criterion: Criterion::Entropy,
            max_depth: Some(12),
            min_samples_split: 2,
            min_samples_leaf: 1.0,
            min_impurity_decrease: 1e-5,
            class_weight: ClassWeight::Balanced,
            seed: 42,
            validation_split: 0.2,
        }
    }
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no usable training rows")]
    NoRows,
    #[error("training rows mix feature sets ({0} rows carry no or a different feature group than the first row)")]
    MixedFeatureSets(u64),
    #[error("{0} training rows have no label")]
    Unlabelled(u64),
    #[error("only one class ({0}) in the training data")]
    SingleClass(String),
    #[error("invalid parameter: {0}")]
    InvalidParam(String),
    #[error("linfa: {0}")]
    Linfa(String),
    #[error("test data: {0}")]
    TestData(String),
}

/// Result of [`train`].
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub artifact: ModelArtifact,
    /// Evaluation on the validation split or the test data, if any.
    pub report: Option<EvalReport>,
}

/// Inputs besides the rows.
#[derive(Debug, Clone, Default)]
pub struct TrainMeta {
    pub name: String,
    pub version: String,
    pub files: Vec<DataFileDigest>,
    pub rows_rejected: u64,
    /// Description of the test data, when `test` is given to [`train`].
    pub test_description: Option<String>,
    /// Show progress bars (they are also hidden when stderr is not a TTY).
    pub progress: bool,
}

/// Deterministic SplitMix64 (see module docs).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);
impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0), via Lemire's multiply-shift.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Seeded stratified split: returns `(train, holdout)` row indices (each
/// sorted). Each class with at least 2 rows contributes
/// `round(n_c · fraction)` rows (at least 1, at most n_c − 1) to the holdout.
pub fn stratified_split(classes: &[usize], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, c) in classes.iter().enumerate() {
        by_class.entry(*c).or_default().push(i);
    }
    let mut rng = SplitMix64::new(seed);
    let (mut train, mut hold) = (Vec::new(), Vec::new());
    for (_, mut idx) in by_class {
        for i in (1..idx.len()).rev() {
            let j = rng.below(i + 1);
            idx.swap(i, j);
        }
        let n = idx.len();
        let k = if fraction <= 0.0 || n < 2 {
            0
        } else {
            ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
        };
        hold.extend_from_slice(&idx[..k]);
        train.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    hold.sort_unstable();
    (train, hold)
}

fn progress_bar(show: bool, len: Option<u64>, msg: &'static str) -> ProgressBar {
    let pb = if show {
        ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    let style = match len {
        Some(_) => ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} ({elapsed})"),
        None => ProgressStyle::with_template("{spinner} {msg} ({elapsed})"),
    };
    if let Ok(s) = style {
        pb.set_style(s.progress_chars("=> "));
    }
    pb.set_message(msg);
    if len.is_none() {
        pb.enable_steady_tick(Duration::from_millis(120));
    }
    pb
}

/// Largest integer below which every f32 integer sum is exact.
const F32_EXACT_INTEGERS: f64 = 16_777_216.0;

/// Per-class row weights.
///
/// `balanced` targets sklearn's n / (k · n_c) ratios but is quantised to
/// integers: linfa accumulates weights in `f32` running sums (subtracting each
/// row's weight from the right side of a candidate split), and with
/// fractional weights on 100k+ rows the drift is large enough to trip linfa's
/// `n_samples > 0` assertion (seen on KDDTrain+). Integer weights whose total
/// stays below 2^24 make every such sum exact. The scale is chosen as large as
/// that bound allows, so the ratios are kept to well under 1 % for datasets of
/// this size. Because the weights are scaled, `min_samples_leaf` is multiplied
/// by the mean row weight before it is handed to linfa's `min_weight_leaf`:
/// it keeps meaning "this many average rows".
pub fn class_weights(counts: &[u64], mode: ClassWeight) -> Vec<f64> {
    let present: Vec<u64> = counts.iter().copied().filter(|c| *c > 0).collect();
    match mode {
        ClassWeight::None => counts.iter().map(|_| 1.0).collect(),
        ClassWeight::Balanced => {
            let k = present.len().max(1) as f64;
            let n_max = present.iter().copied().max().unwrap_or(1) as f64;
            let scale = (F32_EXACT_INTEGERS / (k * n_max * 1.05)).floor().max(1.0);
            counts
                .iter()
                .map(|&c| {
                    if c == 0 {
                        0.0
                    } else {
                        (scale * n_max / c as f64).round().max(1.0)
                    }
                })
                .collect()
        }
    }
}

/// Columns offered to linfa's split search, and the ones left out with why.
///
/// Constant columns can never split, and a column identical to an earlier
/// one on every training row (CICFlowMeter reports some statistics twice)
/// adds nothing but an exact tie in the split search. Leaving them out makes
/// the fit faster and the artifact says which features the tree cannot use.
/// The feature schema still lists every feature, so inference reads the same
/// layout.
///
/// Reproducibility caveat (documented in the README): linfa-trees 0.8.1 sums
/// class frequencies in `HashMap` iteration order, which is seeded per
/// process, so when two *different* features split a node into exactly the
/// same sets, the one chosen can change between runs (e.g.
/// `bwd_packet_length_mean` vs `avg_bwd_segment_size`). Training predictions
/// and metrics are unaffected; the tree, and hence the model id, may differ.
pub fn informative_columns(
    x: &Array2<f64>,
    names: &[String],
) -> (Vec<usize>, Vec<(String, String)>) {
    let mut kept: Vec<usize> = Vec::new();
    let mut kept_hash: Vec<u64> = Vec::new();
    let mut ignored = Vec::new();
    for j in 0..x.ncols() {
        let col = x.column(j);
        let first = col.first().copied().unwrap_or(0.0);
        if col.iter().all(|v| v.to_bits() == first.to_bits()) {
            ignored.push((names[j].clone(), "constant".to_string()));
            continue;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for v in col.iter() {
            h ^= v.to_bits();
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let dup = kept.iter().zip(&kept_hash).find(|(k, kh)| {
            **kh == h
                && x.column(**k)
                    .iter()
                    .zip(col.iter())
                    .all(|(a, b)| a.to_bits() == b.to_bits())
        });
        if let Some((k, _)) = dup {
            ignored.push((names[j].clone(), format!("duplicate of {}", names[*k])));
            continue;
        }
        kept.push(j);
        kept_hash.push(h);
    }
    (kept, ignored)
}

/// Numeric finiteness check before vocabularies exist (categoricals are
/// written as NaN by `write_numeric` and are skipped here).
fn first_non_finite(fs: FeatureSet, rec: &FlowRecord, buf: &mut [f64]) -> Option<usize> {
    match fs {
        FeatureSet::NslKdd => rec.nsl_kdd.as_ref()?.write_numeric(buf),
        FeatureSet::Cic => rec.cic.as_ref()?.write_numeric(buf),
    }
    let cats = fs.categorical_indices();
    (0..fs.width()).find(|i| !cats.contains(i) && !buf[*i].is_finite())
}

/// Trains a model on `records`; evaluates on `test` when given, else on a
/// seeded stratified holdout of `params.validation_split`.
pub fn train(
    records: &[FlowRecord],
    test: Option<&[FlowRecord]>,
    params: &TrainParams,
    meta: &TrainMeta,
) -> Result<TrainOutcome, TrainError> {
    if !(0.0..1.0).contains(&params.validation_split) {
        return Err(TrainError::InvalidParam(format!(
            "validation_split must be in [0, 1), got {}",
            params.validation_split
        )));
    }
    if params.min_impurity_decrease < f64::EPSILON {
        return Err(TrainError::InvalidParam(
            "min_impurity_decrease must be > 0 (linfa requires it)".into(),
        ));
    }
    if params.max_depth == Some(0) {
        return Err(TrainError::InvalidParam("max_depth must be ≥ 1".into()));
    }
    let fs = records
        .iter()
        .find_map(FeatureSet::of_record)
        .ok_or(TrainError::NoRows)?;
    let mismatched = records
        .iter()
        .filter(|r| FeatureSet::of_record(r) != Some(fs))
        .count() as u64;
    if mismatched > 0 {
        return Err(TrainError::MixedFeatureSets(mismatched));
    }
    let unlabelled = records.iter().filter(|r| r.label.is_none()).count() as u64;
    if unlabelled > 0 {
        return Err(TrainError::Unlabelled(unlabelled));
    }

    // Labels and the non-finite filter.
    let mut mapper = LabelMapper::new(params.scheme);
    let mut buf = [0.0f64; MAX_FEATURES];
    let mut kept: Vec<usize> = Vec::with_capacity(records.len());
    let mut names: Vec<&'static str> = Vec::with_capacity(records.len());
    let mut skipped = 0u64;
    let mut skipped_by_feature: BTreeMap<usize, u64> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(f) = first_non_finite(fs, r, &mut buf) {
            skipped += 1;
            *skipped_by_feature.entry(f).or_insert(0) += 1;
            continue;
        }
        kept.push(i);
        names.push(mapper.class_name(r.source, r.label.as_deref().unwrap_or_default()));
    }
    if skipped > 0 {
        let feature_names = fs.feature_names();
        let detail: Vec<String> = skipped_by_feature
            .iter()
            .map(|(f, n)| format!("{}: {n}", feature_names[*f]))
            .collect();
        tracing::warn!(rows = skipped, by_feature = %detail.join(", "), "skipped training rows with non-finite features");
    }
    if kept.is_empty() {
        return Err(TrainError::NoRows);
    }
    let classes: Vec<String> = canonical_classes(params.scheme, fs == FeatureSet::NslKdd)
        .into_iter()
        .filter(|c| names.contains(c))
        .map(String::from)
        .collect();
    if classes.len() < 2 {
        return Err(TrainError::SingleClass(
            classes.first().cloned().unwrap_or_default(),
        ));
    }
    let class_idx: Vec<usize> = names
        .iter()
        .map(|n| classes.iter().position(|c| c == n).unwrap_or(0))
        .collect();

    // Split.
    let (train_pos, hold_pos) = if test.is_some() || params.validation_split == 0.0 {
        ((0..kept.len()).collect::<Vec<_>>(), Vec::new())
    } else {
        stratified_split(&class_idx, params.validation_split, params.seed)
    };
    let train_recs: Vec<&FlowRecord> = train_pos.iter().map(|p| &records[kept[*p]]).collect();
    let train_y: Vec<usize> = train_pos.iter().map(|p| class_idx[*p]).collect();
    let present: Vec<bool> = (0..classes.len()).map(|c| train_y.contains(&c)).collect();
    if present.iter().filter(|p| **p).count() < 2 {
        return Err(TrainError::SingleClass(classes[0].clone()));
    }

    // Encoding (vocabularies from the training part only).
    let is_attack: Vec<bool> = train_y
        .iter()
        .map(|c| !is_benign_class(&classes[*c]))
        .collect();
    let schema = learn_schema(fs, &train_recs, &is_attack);
    let encoder = Encoder::new(&schema);
    let width = fs.width();
    let pb = progress_bar(meta.progress, Some(train_recs.len() as u64), "encoding");
    let mut x = Array2::<f64>::zeros((train_recs.len(), width));
    for (i, r) in train_recs.iter().enumerate() {
        encoder
            .encode_checked(r, &mut buf)
            .map_err(|e| TrainError::InvalidParam(format!("internal encoding error: {e}")))?;
        for (j, v) in buf[..width].iter().enumerate() {
            x[(i, j)] = *v;
        }
        if i % 4096 == 0 {
            pb.set_position(i as u64);
        }
    }
    pb.finish_and_clear();

    // Class weights (quantised to integers, see `class_weights`).
    let mut counts = vec![0u64; classes.len()];
    for c in &train_y {
        counts[*c] += 1;
    }
    let class_w = class_weights(&counts, params.class_weight);
    let weights: Array1<f32> = train_y.iter().map(|c| class_w[*c] as f32).collect();
    let mean_weight = train_y.iter().map(|c| class_w[*c]).sum::<f64>() / train_y.len() as f64;

    // Fit.
    let (fit_cols, ignored_features) = informative_columns(&x, &schema.names);
    let x_fit = x.select(Axis(1), &fit_cols);
    let feature_names: Vec<String> = fit_cols.iter().map(|c| schema.names[*c].clone()).collect();
    let y = Array1::from(train_y.clone());
    let dataset = Dataset::new(x_fit, y)
        .with_weights(weights)
        .with_feature_names(feature_names);
    let hp = DecisionTree::<f64, usize>::params()
        .split_quality(match params.criterion {
            Criterion::Gini => SplitQuality::Gini,
            Criterion::Entropy => SplitQuality::Entropy,
        })
        .max_depth(params.max_depth)
        .min_weight_split(params.min_samples_split as f32)
        .min_weight_leaf((params.min_samples_leaf * mean_weight) as f32)
        .min_impurity_decrease(params.min_impurity_decrease);
    let pb = progress_bar(meta.progress, None, "fitting decision tree (linfa-trees)");
    let started = Instant::now();
    let model = hp
        .fit(&dataset)
        .map_err(|e| TrainError::Linfa(e.to_string()))?;
    let fit_seconds = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    tracing::info!(
        seconds = fit_seconds,
        depth = model.max_depth(),
        leaves = model.num_leaves(),
        "tree fitted"
    );

    let mut tree = FlatTree::from_linfa(&model);
    drop(dataset);
    tree.remap_features(&fit_cols);
    let xs = &x;
    tree.recenter_thresholds(xs.rows().into_iter().filter_map(|r| r.to_slice()));
    tree.fill_leaf_statistics(
        xs.rows()
            .into_iter()
            .zip(&train_y)
            .filter_map(|(row, c)| Some((row.to_slice()?, *c, class_w[*c]))),
        classes.len(),
    );
    let class_stats = class_statistics(&schema, xs, &train_y, &classes, &train_recs);

    let benign = classes.iter().map(|c| is_benign_class(c)).collect();
    let mut artifact = ModelArtifact {
        format_version: FORMAT_VERSION,
        id: String::new(),
        name: meta.name.clone(),
        version: meta.version.clone(),
        created_at: rfc3339_now(),
        feature_set: fs,
        label_scheme: params.scheme,
        schema,
        classes: classes.clone(),
        benign,
        params: params.clone(),
        training: TrainingSummary {
            files: meta.files.clone(),
            rows_fitted: train_y.len() as u64,
            rows_validation: hold_pos.len() as u64,
            rows_skipped_non_finite: skipped,
            rows_rejected: meta.rows_rejected,
            unknown_labels: mapper
                .unknown_labels()
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            class_counts: classes
                .iter()
                .cloned()
                .zip(counts.iter().copied())
                .collect(),
            fit_seconds: (fit_seconds * 1000.0).round() / 1000.0,
            ignored_features,
        },
        metrics: None,
        class_stats,
        tree,
    };
    artifact.seal();

    // Evaluate.
    let (report, evaluated_on) = if let Some(test) = test {
        let r = evaluate(&artifact, test).map_err(TrainError::TestData)?;
        let what = meta
            .test_description
            .clone()
            .unwrap_or_else(|| "test data".to_string());
        (Some(r), what)
    } else if !hold_pos.is_empty() {
        let hold: Vec<FlowRecord> = hold_pos.iter().map(|p| records[kept[*p]].clone()).collect();
        let r = evaluate(&artifact, &hold).map_err(TrainError::TestData)?;
        (
            Some(r),
            format!(
                "stratified validation split {} (seed {})",
                params.validation_split, params.seed
            ),
        )
    } else {
        (None, String::new())
    };
    // Fitted metrics shrink the JSON: keep the report but not at full
    // precision noise; the report is part of the content id by design (a
    // model is identified with the evidence it shipped with).
    artifact.metrics = report.clone().map(|report| StoredMetrics {
        evaluated_on,
        report,
    });
    artifact.seal();
    Ok(TrainOutcome { artifact, report })
}

/// Evaluates an artifact on labelled records (labels mapped with the
/// artifact's scheme). Rows with a non-finite feature read by the tree are
/// counted as skipped; an error is returned only when no row can be scored.
pub fn evaluate(artifact: &ModelArtifact, records: &[FlowRecord]) -> Result<EvalReport, String> {
    let classifier = Classifier::new(artifact);
    let mut mapper = LabelMapper::new(artifact.label_scheme);
    let mut cm = ConfusionBuilder::new(artifact.classes.clone());
    let mut mismatched = 0u64;
    let mut unlabelled = 0u64;
    for r in records {
        let Some(label) = r.label.as_deref() else {
            unlabelled += 1;
            continue;
        };
        match classifier.classify(r) {
            Ok(v) => {
                let truth = mapper.class_name(r.source, label);
                let t = cm.class_index(truth);
                cm.add(t, v.class as usize);
            }
            Err(FeatureError::NonFiniteFeature { .. }) => cm.skipped_non_finite += 1,
            Err(FeatureError::FeatureSetMismatch { .. }) => mismatched += 1,
        }
    }
    if mismatched > 0 {
        return Err(format!(
            "{mismatched} rows do not carry the {} features this model reads",
            artifact.feature_set
        ));
    }
    if unlabelled > 0 {
        return Err(format!("{unlabelled} rows have no label"));
    }
    let report = cm.finish();
    if report.rows == 0 {
        return Err("no row could be scored".to_string());
    }
    Ok(report)
}

/// Quantile of sorted values by linear interpolation.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Rounds to 6 significant digits: statistics for synthesis do not need
/// more, and it keeps the committed artifacts small and readable.
fn sig6(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() { v } else { 0.0 };
    }
    let mag = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(5 - mag);
    if !scale.is_finite() || scale == 0.0 {
        return v;
    }
    (v * scale).round() / scale
}

fn class_statistics(
    schema: &crate::features::FeatureSchema,
    x: &Array2<f64>,
    y: &[usize],
    classes: &[String],
    recs: &[&FlowRecord],
) -> Vec<ClassStats> {
    let cats = schema.feature_set.categorical_indices();
    let mut out = Vec::new();
    for (c, name) in classes.iter().enumerate() {
        let rows: Vec<usize> = (0..y.len()).filter(|i| y[*i] == c).collect();
        if rows.is_empty() {
            continue;
        }
        let mut numeric = Vec::new();
        for (f, fname) in schema.names.iter().enumerate() {
            if cats.contains(&f) {
                continue;
            }
            let mut v: Vec<f64> = rows.iter().map(|r| x[(*r, f)]).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n;
            numeric.push(FeatureStats {
                feature: fname.clone(),
                mean: sig6(mean),
                std: sig6(var.sqrt()),
                min: v[0],
                max: v[v.len() - 1],
                quantiles: (0..=10)
                    .map(|q| sig6(quantile(&v, q as f64 / 10.0)))
                    .collect(),
            });
        }
        let mut categorical = Vec::new();
        for &f in cats {
            let mut freq: BTreeMap<&str, u64> = BTreeMap::new();
            for r in &rows {
                if let Some(v) = recs[*r].nsl_kdd.as_ref().and_then(|n| n.categorical(f)) {
                    *freq.entry(v).or_insert(0) += 1;
                }
            }
            let mut values: Vec<(&str, u64)> = freq.into_iter().collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            values.truncate(32);
            categorical.push(CategoricalStats {
                feature: schema.names[f].clone(),
                values: values
                    .into_iter()
                    .map(|(k, n)| (k.to_string(), sig6(n as f64 / rows.len() as f64)))
                    .collect(),
            });
        }
        out.push(ClassStats {
            class: name.clone(),
            rows: rows.len() as u64,
            numeric,
            categorical,
        });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ids_schemas::flow::{CicFeatures, NslKddFeatures, SourceDataset};

    /// Synthetic NSL-KDD-like records: attacks have large `count`, serror.
    pub(crate) fn toy_nsl(n: usize) -> Vec<FlowRecord> {
        let mut rng = SplitMix64::new(7);
        (0..n)
            .map(|i| {
                let class = i % 4;
                let (label, service, count) = match class {
                    0 | 1 => ("normal", "http", rng.below(20) as i32),
                    2 => ("neptune", "private", 100 + rng.below(100) as i32),
                    _ => ("satan", "other", 30 + rng.below(20) as i32),
                };
                FlowRecord {
                    source: SourceDataset::NslKdd,
                    label: Some(label.into()),
                    nsl_kdd: Some(NslKddFeatures {
                        protocol_type: "tcp".into(),
                        service: service.into(),
                        flag: if class == 2 { "S0".into() } else { "SF".into() },
                        count,
                        src_bytes: rng.below(1000) as i64,
                        serror_rate: if class == 2 { 1.0 } else { 0.0 },
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            })
            .collect()
    }

    #[test]
    fn stratified_split_is_seeded_and_stratified() {
        let y: Vec<usize> = (0..1000).map(|i| if i % 10 == 0 { 1 } else { 0 }).collect();
        let (tr, ho) = stratified_split(&y, 0.2, 42);
        assert_eq!(tr.len() + ho.len(), 1000);
        assert_eq!(ho.iter().filter(|i| y[**i] == 1).count(), 20);
        assert_eq!(ho.len(), 200);
        assert_eq!(stratified_split(&y, 0.2, 42), (tr.clone(), ho.clone()));
        assert_ne!(stratified_split(&y, 0.2, 43).1, ho);
        // A class of 2 rows still appears in both halves.
        let y2 = vec![0, 0, 0, 0, 0, 1, 1];
        let (tr2, ho2) = stratified_split(&y2, 0.2, 1);
        assert!(tr2.iter().any(|i| y2[*i] == 1) && ho2.iter().any(|i| y2[*i] == 1));
    }

    #[test]
    fn trains_family_model_with_validation() {
        let recs = toy_nsl(2000);
        let params = TrainParams::default();
        let meta = TrainMeta {
            name: "toy".into(),
            version: "1".into(),
            ..Default::default()
        };
        let out = train(&recs, None, &params, &meta).expect("train");
        let a = &out.artifact;
        assert_eq!(a.classes, vec!["normal", "DoS", "Probe"]);
        assert_eq!(a.training.rows_fitted, 1600);
        assert_eq!(a.training.rows_validation, 400);
        let r = out.report.expect("report");
        assert!(r.accuracy > 0.99, "{}", r.table());
        assert_eq!(a.class_stats.len(), 3);
        assert_eq!(a.class_stats[0].categorical.len(), 3);
        a.validate().expect("valid artifact");
        assert_eq!(a.compute_id(), a.id);
    }

    #[test]
    fn skips_non_finite_rows_and_counts_unknown_labels() {
        let mut recs: Vec<FlowRecord> = (0..200)
            .map(|i| FlowRecord {
                source: SourceDataset::CicIds2017,
                label: Some(if i % 2 == 0 { "BENIGN" } else { "DDoS" }.into()),
                cic: Some(CicFeatures {
                    destination_port: if i % 2 == 0 { 443 } else { 80 },
                    flow_duration: i,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        if let Some(c) = recs[0].cic.as_mut() {
            c.flow_bytes_per_s = f64::NAN;
        }
        recs[1].label = Some("Zero Day".into());
        let params = TrainParams {
            scheme: LabelScheme::Binary,
            validation_split: 0.0,
            ..Default::default()
        };
        let out = train(&recs, None, &params, &TrainMeta::default()).expect("train");
        assert_eq!(out.artifact.training.rows_skipped_non_finite, 1);
        assert_eq!(out.artifact.training.rows_fitted, 199);
        assert_eq!(
            out.artifact.training.unknown_labels,
            vec![("Zero Day".to_string(), 1)]
        );
        assert_eq!(out.artifact.classes, vec!["benign", "attack"]);
        assert!(out.report.is_none());
    }

    #[test]
    fn rejects_bad_inputs() {
        let p = TrainParams::default();
        let m = TrainMeta::default();
        assert!(matches!(train(&[], None, &p, &m), Err(TrainError::NoRows)));
        let mut recs = toy_nsl(10);
        recs.push(FlowRecord {
            cic: Some(CicFeatures::default()),
            label: Some("BENIGN".into()),
            ..Default::default()
        });
        assert!(matches!(
            train(&recs, None, &p, &m),
            Err(TrainError::MixedFeatureSets(1))
        ));
        let only_normal: Vec<FlowRecord> = toy_nsl(8).into_iter().step_by(4).collect();
        assert!(matches!(
            train(&only_normal, None, &p, &m),
            Err(TrainError::SingleClass(_))
        ));
        let bad = TrainParams {
            validation_split: 1.5,
            ..Default::default()
        };
        assert!(matches!(
            train(&toy_nsl(10), None, &bad, &m),
            Err(TrainError::InvalidParam(_))
        ));
    }

    #[test]
    fn evaluates_on_separate_test_data() {
        let recs = toy_nsl(800);
        let test = toy_nsl(200);
        let meta = TrainMeta {
            test_description: Some("toy test".into()),
            ..Default::default()
        };
        let out = train(&recs, Some(&test), &TrainParams::default(), &meta).expect("train");
        let m = out.artifact.metrics.as_ref().expect("metrics");
        assert_eq!(m.evaluated_on, "toy test");
        assert_eq!(m.report.rows, 200);
        assert_eq!(out.artifact.training.rows_validation, 0);
    }

    #[test]
    fn balanced_weights_are_integers_with_exact_sums() {
        let counts = [67_343u64, 45_927, 11_656, 995, 52];
        let w = class_weights(&counts, ClassWeight::Balanced);
        assert!(w.iter().all(|v| v.fract() == 0.0 && *v >= 1.0));
        let total: f64 = counts.iter().zip(&w).map(|(c, w)| *c as f64 * w).sum();
        assert!(total < F32_EXACT_INTEGERS, "{total}");
        // Every class weighs (almost) the same in total.
        let per_class: Vec<f64> = counts.iter().zip(&w).map(|(c, w)| *c as f64 * w).collect();
        let (lo, hi) = per_class
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
        assert!(hi / lo < 1.01, "{per_class:?}");
        assert_eq!(class_weights(&counts, ClassWeight::None), vec![1.0; 5]);
        assert_eq!(class_weights(&[10, 0], ClassWeight::Balanced)[1], 0.0);
    }

    #[test]
    fn constant_and_duplicate_columns_are_not_offered() {
        let x = ndarray::array![
            [1.0, 5.0, 1.0, 2.0],
            [2.0, 5.0, 2.0, 1.0],
            [3.0, 5.0, 3.0, 1.0]
        ];
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let (kept, ignored) = informative_columns(&x, &names);
        assert_eq!(kept, vec![0, 3]);
        assert_eq!(
            ignored,
            vec![
                ("b".to_string(), "constant".to_string()),
                ("c".to_string(), "duplicate of a".to_string())
            ]
        );
    }

    #[test]
    fn quantiles_and_rounding() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), 2.0);
        assert_eq!(quantile(&[0.0, 10.0], 0.25), 2.5);
        assert_eq!(sig6(1234567.0), 1234570.0);
        assert_eq!(sig6(0.0), 0.0);
    }
}
