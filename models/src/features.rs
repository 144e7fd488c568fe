//! Feature encoding: a [`FlowRecord`] to the fixed-width numeric row a tree reads.
//!
//! A model's input layout is its [`FeatureSchema`]: the feature set
//! (`nsl_kdd` or `cic`), the ordered feature names and, for categorical
//! features, the vocabulary learned at training time. The schema travels in
//! the artifact so that inference encodes exactly as training did, and so that
//! a caller can check that its records provide what the model expects.
//!
//! Why these choices:
//! - **CIC uses the 77 CICFlowMeter statistics only.** IPs, source ports, flow
//!   ids and timestamps identify the capture, not the behaviour; a tree trained
//!   on them learns "attacker = 172.16.0.1 on Wednesday" and scores well on
//!   the capture while being useless elsewhere. `destination_port` stays: it
//!   is a service property and part of the published feature set.
//! - **Categoricals are ordinal codes, ordered by the training attack rate.**
//!   For a binary target, sorting categories by their positive rate makes the
//!   best ordinal split as good as the best subset split (Breiman et al., CART
//!   §9.4), so a single tree gets the benefit of one-hot encoding without 80
//!   extra columns (which would also slow linfa's split search). Unseen values
//!   get the reserved code `vocabulary.len()` ("other"), i.e. they sort after
//!   the most attack-prone known value: an unknown service is suspicious.
//! - **Non-finite values are never guessed.** Training skips such rows and
//!   counts them; inference returns [`FeatureError`] naming the feature.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use ids_schemas::flow::{
    FlowRecord, CIC_FEATURES, CIC_FEATURE_COUNT, NSL_KDD_FEATURES, NSL_KDD_FEATURE_COUNT,
};
use serde::{Deserialize, Serialize};

/// Widest feature row of any feature set (stack buffers are this size).
pub const MAX_FEATURES: usize = if CIC_FEATURE_COUNT > NSL_KDD_FEATURE_COUNT {
    CIC_FEATURE_COUNT
} else {
    NSL_KDD_FEATURE_COUNT
};

/// Which feature group of a [`FlowRecord`] a model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSet {
    /// The 41 NSL-KDD connection features.
    NslKdd,
    /// The 77 CICFlowMeter features.
    Cic,
}

impl FeatureSet {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureSet::NslKdd => "nsl_kdd",
            FeatureSet::Cic => "cic",
        }
    }

    /// Feature set of a record (the group it carries), NSL-KDD first.
    pub fn of_record(rec: &FlowRecord) -> Option<FeatureSet> {
        if rec.nsl_kdd.is_some() {
            Some(FeatureSet::NslKdd)
        } else if rec.cic.is_some() {
            Some(FeatureSet::Cic)
        } else {
            None
        }
    }

    /// Feature names in model order.
    pub fn feature_names(self) -> Vec<String> {
        let table = match self {
            FeatureSet::NslKdd => NSL_KDD_FEATURES,
            FeatureSet::Cic => CIC_FEATURES,
        };
        table.iter().map(|f| f.name.to_string()).collect()
    }

    /// Indices (in model order) of categorical features.
    pub fn categorical_indices(self) -> &'static [usize] {
        match self {
            FeatureSet::NslKdd => &[1, 2, 3],
            FeatureSet::Cic => &[],
        }
    }

    pub fn width(self) -> usize {
        match self {
            FeatureSet::NslKdd => NSL_KDD_FEATURE_COUNT,
            FeatureSet::Cic => CIC_FEATURE_COUNT,
        }
    }
}

impl fmt::Display for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FeatureSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nsl_kdd" => Ok(FeatureSet::NslKdd),
            "cic" => Ok(FeatureSet::Cic),
            o => Err(format!(
                "unknown feature set {o:?} (expected nsl_kdd or cic)"
            )),
        }
    }
}

/// Vocabulary of one categorical feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// Feature name.
    pub feature: String,
    /// Known values; a value's code is its position. Unseen values get
    /// `values.len()` (the reserved "other" code).
    pub values: Vec<String>,
}

/// A model's input layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub feature_set: FeatureSet,
    /// Feature names in the order the tree indexes them.
    pub names: Vec<String>,
    /// Vocabularies of the categorical features.
    pub vocabularies: Vec<Vocabulary>,
}

/// Why a record cannot be classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// The record lacks the feature group the model reads.
    #[error("record has no {expected} features (model reads the {expected} feature set)")]
    FeatureSetMismatch { expected: FeatureSet },
    /// A feature the model reads is NaN or infinite.
    #[error("feature {feature} is not finite")]
    NonFiniteFeature { feature: &'static str },
}

impl FeatureError {
    /// Stable snake_case kind (used in DLQ headers and metrics labels).
    pub fn kind(&self) -> &'static str {
        match self {
            FeatureError::FeatureSetMismatch { .. } => "feature_set_mismatch",
            FeatureError::NonFiniteFeature { .. } => "non_finite_feature",
        }
    }
}

/// FNV-1a: vocabulary lookups hash a handful of short strings per flow, where
/// SipHash's DoS resistance buys nothing (keys are fixed at load time).
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);
impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}
type FnvMap<V> = HashMap<Box<str>, V, BuildHasherDefault<Fnv>>;

/// A [`FeatureSchema`] compiled for fast encoding.
#[derive(Debug, Clone)]
pub struct Encoder {
    feature_set: FeatureSet,
    /// Per categorical feature index: value -> code, and the "other" code.
    vocab: Vec<(usize, FnvMap<f64>, f64)>,
    names: &'static [ids_schemas::flow::FeatureSpec],
}

impl Encoder {
    pub fn new(schema: &FeatureSchema) -> Self {
        let vocab = schema
            .vocabularies
            .iter()
            .filter_map(|v| {
                let idx = schema.names.iter().position(|n| *n == v.feature)?;
                let map: FnvMap<f64> = v
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.clone().into_boxed_str(), i as f64))
                    .collect();
                Some((idx, map, v.values.len() as f64))
            })
            .collect();
        Encoder {
            feature_set: schema.feature_set,
            vocab,
            names: match schema.feature_set {
                FeatureSet::NslKdd => NSL_KDD_FEATURES,
                FeatureSet::Cic => CIC_FEATURES,
            },
        }
    }

    pub fn feature_set(&self) -> FeatureSet {
        self.feature_set
    }

    /// Static name of feature `i` (for error messages without allocation).
    #[inline]
    pub fn feature_name(&self, i: usize) -> &'static str {
        self.names.get(i).map(|s| s.name).unwrap_or("?")
    }

    /// Writes the record's features into `out` (length ≥ the set's width).
    /// Non-finite values are written as they are: the caller decides (the tree
    /// checks the features it reads, training skips the row).
    #[inline]
    pub fn encode(&self, rec: &FlowRecord, out: &mut [f64]) -> Result<(), FeatureError> {
        match self.feature_set {
            FeatureSet::NslKdd => {
                let f = rec
                    .nsl_kdd
                    .as_ref()
                    .ok_or(FeatureError::FeatureSetMismatch {
                        expected: FeatureSet::NslKdd,
                    })?;
                f.write_numeric(out);
                for (idx, map, other) in &self.vocab {
                    let v = f.categorical(*idx).unwrap_or("");
                    out[*idx] = map.get(v).copied().unwrap_or(*other);
                }
            }
            FeatureSet::Cic => {
                let f = rec.cic.as_ref().ok_or(FeatureError::FeatureSetMismatch {
                    expected: FeatureSet::Cic,
                })?;
                f.write_numeric(out);
            }
        }
        Ok(())
    }

    /// Encodes and checks every feature for finiteness (training-time form).
    pub fn encode_checked(&self, rec: &FlowRecord, out: &mut [f64]) -> Result<(), FeatureError> {
        self.encode(rec, out)?;
        let w = self.feature_set.width();
        if let Some(i) = out[..w].iter().position(|v| !v.is_finite()) {
            return Err(FeatureError::NonFiniteFeature {
                feature: self.feature_name(i),
            });
        }
        Ok(())
    }
}

/// Learns categorical vocabularies from training records: values ordered by
/// their attack rate (ties by name), see the module docs.
pub fn learn_schema(
    feature_set: FeatureSet,
    records: &[&FlowRecord],
    is_attack: &[bool],
) -> FeatureSchema {
    let names = feature_set.feature_names();
    let mut vocabularies = Vec::new();
    for &idx in feature_set.categorical_indices() {
        let mut stats: HashMap<&str, (u64, u64)> = HashMap::new();
        for (rec, &attack) in records.iter().zip(is_attack) {
            if let Some(v) = rec.nsl_kdd.as_ref().and_then(|f| f.categorical(idx)) {
                let e = stats.entry(v).or_insert((0, 0));
                e.0 += 1;
                e.1 += u64::from(attack);
            }
        }
        let mut values: Vec<(&str, f64)> = stats
            .into_iter()
            .map(|(k, (n, a))| (k, a as f64 / n as f64))
            .collect();
        values.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
        vocabularies.push(Vocabulary {
            feature: names[idx].clone(),
            values: values.into_iter().map(|(k, _)| k.to_string()).collect(),
        });
    }
    FeatureSchema {
        feature_set,
        names,
        vocabularies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ids_schemas::flow::{CicFeatures, NslKddFeatures};

    fn nsl(service: &str) -> FlowRecord {
        FlowRecord {
            nsl_kdd: Some(NslKddFeatures {
                protocol_type: "tcp".into(),
                service: service.into(),
                flag: "SF".into(),
                src_bytes: 10,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn vocabulary_is_ordered_by_attack_rate_and_unseen_is_other() {
        let recs = [nsl("http"), nsl("http"), nsl("private"), nsl("ftp")];
        let refs: Vec<&FlowRecord> = recs.iter().collect();
        let schema = learn_schema(FeatureSet::NslKdd, &refs, &[false, false, true, true]);
        let service = &schema.vocabularies[1];
        assert_eq!(service.feature, "service");
        assert_eq!(service.values, vec!["http", "ftp", "private"]);
        let enc = Encoder::new(&schema);
        let mut out = [0.0; MAX_FEATURES];
        enc.encode(&nsl("private"), &mut out).expect("encode");
        assert_eq!(out[2], 2.0);
        assert_eq!(out[4], 10.0);
        enc.encode(&nsl("gopher"), &mut out).expect("encode");
        assert_eq!(out[2], 3.0, "unseen -> reserved other code");
    }

    #[test]
    fn mismatch_and_non_finite_errors() {
        let schema = learn_schema(FeatureSet::Cic, &[], &[]);
        assert_eq!(schema.names.len(), 77);
        let enc = Encoder::new(&schema);
        let mut out = [0.0; MAX_FEATURES];
        let e = enc.encode(&nsl("http"), &mut out).expect_err("mismatch");
        assert_eq!(e.kind(), "feature_set_mismatch");
        let rec = FlowRecord {
            cic: Some(CicFeatures {
                flow_bytes_per_s: f64::INFINITY,
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = enc.encode_checked(&rec, &mut out).expect_err("non finite");
        assert_eq!(e.kind(), "non_finite_feature");
        assert!(e.to_string().contains("flow_bytes_per_s"));
    }
}
