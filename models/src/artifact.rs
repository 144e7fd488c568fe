//! The model artifact: one versioned JSON file that is everything a consumer
//! needs to classify flows and to explain where the model came from.
//!
//! Why one JSON file: it diffs in review, it loads with no extra tooling, and a
//! default model of a few hundred kB can be committed so that a fresh clone
//! runs without training. It holds the compiled [`FlatTree`], the
//! [`FeatureSchema`] (names, order, vocabularies), class names and which are
//! benign, training parameters, sha256 of every training file, metrics, the
//! creation time, per-class feature statistics (used by [`crate::synth`]) and
//! a content-derived id.
//!
//! The id is the first 16 hex digits of sha256 over the canonical JSON of the
//! artifact with `id`, `created_at` and the measured fit time blanked: retraining the same data with
//! the same parameters yields the same id, so the id in an alert identifies
//! the exact decision function, and a hand-edited file is detected at load.
//!
//! Loading validates, in order: the format version (checked before the rest
//! is parsed, so a future format gives a clear error rather than a serde one),
//! the tree's structure, and that the feature schema is the one this build's
//! [`FlowRecord`](ids_schemas::flow::FlowRecord) encoder produces; a mismatch
//! lists the missing, unexpected and reordered features.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::eval::EvalReport;
use crate::features::{FeatureSchema, FeatureSet};
use crate::labels::LabelScheme;
use crate::train::TrainParams;
use crate::tree::{FlatTree, TreeError};

/// The artifact format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// sha256 of one training file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFileDigest {
    /// File name (not the full path: paths differ between machines, and the
    /// id must not depend on where the data lives).
    pub file: String,
    pub sha256: String,
}

/// Summary statistics of one numeric feature within one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    pub feature: String,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// Quantiles at 0, 0.1, ..., 1.0 (11 values): synthesis samples by
    /// interpolating between them, which follows skewed distributions
    /// (packet sizes, durations) far better than a normal fit.
    pub quantiles: Vec<f64>,
}

/// Frequencies of the values of one categorical feature within one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalStats {
    pub feature: String,
    /// `(value, fraction)`, most frequent first (at most 32 values, the rest
    /// folded into the last entry's share being absent).
    pub values: Vec<(String, f64)>,
}

/// Per-class statistics of the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    pub class: String,
    pub rows: u64,
    pub numeric: Vec<FeatureStats>,
    pub categorical: Vec<CategoricalStats>,
}

/// What the training run saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub files: Vec<DataFileDigest>,
    /// Rows the tree was fitted on.
    pub rows_fitted: u64,
    /// Rows held out for validation (0 when a test file was used).
    pub rows_validation: u64,
    /// Rows skipped because a feature was NaN/infinite.
    pub rows_skipped_non_finite: u64,
    /// Rows the loader rejected (unparseable).
    pub rows_rejected: u64,
    /// Unknown attack labels mapped to the generic attack class, with counts.
    pub unknown_labels: Vec<(String, u64)>,
    /// Fitted rows per class.
    pub class_counts: Vec<(String, u64)>,
    /// Seconds spent in linfa's fit.
    #[serde(default)]
    pub fit_seconds: f64,
    /// Features not offered to the split search, with the reason
    /// (`constant`, `duplicate of <feature>`); see `train::informative_columns`.
    #[serde(default)]
    pub ignored_features: Vec<(String, String)>,
}

/// Metrics stored in the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMetrics {
    /// What the metrics were measured on, e.g. `validation split 0.2 (seed 42)`
    /// or `test file KDDTest+.txt`.
    pub evaluated_on: String,
    pub report: EvalReport,
}

/// A trained model. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub format_version: u32,
    /// Content-derived id (see module docs).
    pub id: String,
    /// Human name, used as `rule.ruleset` in alerts.
    pub name: String,
    /// Human version label.
    pub version: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub feature_set: FeatureSet,
    pub label_scheme: LabelScheme,
    pub schema: FeatureSchema,
    pub classes: Vec<String>,
    /// `benign[i]`: class `i` is benign traffic.
    pub benign: Vec<bool>,
    pub params: TrainParams,
    pub training: TrainingSummary,
    pub metrics: Option<StoredMetrics>,
    pub class_stats: Vec<ClassStats>,
    pub tree: FlatTree,
}

/// Why an artifact cannot be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a model artifact: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: artifact format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("artifact's feature schema does not match: {0}")]
    SchemaMismatch(String),
    #[error("artifact is inconsistent: {0}")]
    Invalid(String),
    #[error("artifact tree is invalid: {0}")]
    Tree(#[from] TreeError),
    #[error("artifact id {stored} does not match its content ({computed}); the file was edited or corrupted")]
    IdMismatch { stored: String, computed: String },
}

#[derive(Deserialize)]
struct VersionProbe {
    format_version: Option<u32>,
}

impl ModelArtifact {
    /// Reads and validates an artifact (version, structure, id, and that the
    /// schema is the one this build encodes for its feature set).
    pub fn load(path: &Path) -> Result<Self, ArtifactError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ArtifactError::Io {
            path: p.clone(),
            source,
        })?;
        Self::from_json(&text, &p)
    }

    /// Like [`Self::load`], then checks that the artifact reads exactly
    /// `expected` features, in that order.
    pub fn load_expecting(path: &Path, expected: &[&str]) -> Result<Self, ArtifactError> {
        let a = Self::load(path)?;
        a.check_features(expected)?;
        Ok(a)
    }

    /// Parses and validates an artifact from JSON text (`origin` names it in errors).
    pub fn from_json(text: &str, origin: &str) -> Result<Self, ArtifactError> {
        let probe: VersionProbe = serde_json::from_str(text).map_err(|e| ArtifactError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        let found = probe.format_version.ok_or_else(|| ArtifactError::Parse {
            path: origin.to_string(),
            message: "no format_version field".to_string(),
        })?;
        if found != FORMAT_VERSION {
            return Err(ArtifactError::UnsupportedVersion {
                path: origin.to_string(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        let a: ModelArtifact = serde_json::from_str(text).map_err(|e| ArtifactError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        a.validate()?;
        Ok(a)
    }

    /// Structural checks; see the module docs.
    pub fn validate(&self) -> Result<(), ArtifactError> {
        if self.classes.is_empty() || self.classes.len() != self.benign.len() {
            return Err(ArtifactError::Invalid(format!(
                "{} classes but {} benign flags",
                self.classes.len(),
                self.benign.len()
            )));
        }
        if self.classes.len() > u16::MAX as usize {
            return Err(ArtifactError::Invalid("too many classes".into()));
        }
        if self.schema.feature_set != self.feature_set {
            return Err(ArtifactError::Invalid(format!(
                "feature_set {} but schema is for {}",
                self.feature_set, self.schema.feature_set
            )));
        }
        let expected = self.feature_set.feature_names();
        let expected: Vec<&str> = expected.iter().map(|s| s.as_str()).collect();
        self.check_features(&expected)?;
        for v in &self.schema.vocabularies {
            if !self.schema.names.contains(&v.feature) {
                return Err(ArtifactError::SchemaMismatch(format!(
                    "vocabulary for unknown feature {}",
                    v.feature
                )));
            }
        }
        self.tree
            .validate(self.schema.names.len(), self.classes.len())?;
        let computed = self.compute_id();
        if computed != self.id {
            return Err(ArtifactError::IdMismatch {
                stored: self.id.clone(),
                computed,
            });
        }
        Ok(())
    }

    /// Checks that the artifact reads exactly `expected`, in order. The error
    /// lists missing, unexpected and out-of-order features.
    pub fn check_features(&self, expected: &[&str]) -> Result<(), ArtifactError> {
        let have: Vec<&str> = self.schema.names.iter().map(|s| s.as_str()).collect();
        if have == expected {
            return Ok(());
        }
        let missing: Vec<&str> = expected
            .iter()
            .filter(|e| !have.contains(e))
            .copied()
            .collect();
        let extra: Vec<&str> = have
            .iter()
            .filter(|h| !expected.contains(h))
            .copied()
            .collect();
        let moved: Vec<String> = have
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let j = expected.iter().position(|e| e == h)?;
                (i != j).then(|| format!("{h} (artifact position {i}, expected {j})"))
            })
            .take(10)
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing from artifact: {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("not expected: {}", extra.join(", ")));
        }
        if !moved.is_empty() {
            parts.push(format!("in a different order: {}", moved.join(", ")));
        }
        Err(ArtifactError::SchemaMismatch(parts.join("; ")))
    }

    /// Content-derived id (see module docs).
    pub fn compute_id(&self) -> String {
        let mut canon = self.clone();
        canon.id = String::new();
        canon.created_at = String::new();
        canon.training.fit_seconds = 0.0;
        let bytes = serde_json::to_vec(&canon).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        hex::encode(&digest[..8])
    }

    /// Sets the id from the content; call after the last change.
    pub fn seal(&mut self) {
        self.id = self.compute_id();
    }

    /// Writes the artifact as pretty JSON (atomically: temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), ArtifactError> {
        let p = path.display().to_string();
        let io = |source| ArtifactError::Io {
            path: p.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let json = serde_json::to_string(self).map_err(|e| ArtifactError::Parse {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn class_names(&self) -> &[String] {
        &self.classes
    }

    pub fn feature_set(&self) -> FeatureSet {
        self.feature_set
    }

    /// Per-class feature statistics (for synthesis).
    pub fn class_stats(&self) -> &[ClassStats] {
        &self.class_stats
    }
}

/// Current time as RFC 3339 UTC with seconds precision.
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

/// Formats seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil_from_days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::features::learn_schema;
    use crate::tree::LEAF;

    /// A tiny valid NSL-KDD artifact: `src_bytes <= 100` → normal, else DoS.
    pub(crate) fn tiny_nsl_artifact() -> ModelArtifact {
        let schema = learn_schema(FeatureSet::NslKdd, &[], &[]);
        let mut a = ModelArtifact {
            format_version: FORMAT_VERSION,
            id: String::new(),
            name: "tiny".into(),
            version: "1".into(),
            created_at: rfc3339(0),
            feature_set: FeatureSet::NslKdd,
            label_scheme: LabelScheme::Family,
            schema,
            classes: vec!["normal".into(), "DoS".into()],
            benign: vec![true, false],
            params: TrainParams::default(),
            training: TrainingSummary {
                files: vec![],
                rows_fitted: 0,
                rows_validation: 0,
                rows_skipped_non_finite: 0,
                rows_rejected: 0,
                unknown_labels: vec![],
                class_counts: vec![],
                fit_seconds: 0.0,
                ignored_features: vec![],
            },
            metrics: None,
            class_stats: vec![],
            tree: FlatTree {
                feature: vec![4, LEAF, LEAF],
                threshold: vec![100.0, 0.0, 0.0],
                left: vec![1, 0, 0],
                right: vec![2, 0, 0],
                class: vec![0, 0, 1],
                confidence: vec![1.0, 0.9, 0.8],
                samples: vec![10, 5, 5],
            },
        };
        a.seal();
        a
    }

    #[test]
    fn save_load_round_trip_and_stable_id() {
        let a = tiny_nsl_artifact();
        assert_eq!(a.id().len(), 16);
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("m.json");
        a.save(&p).expect("save");
        let b = ModelArtifact::load(&p).expect("load");
        assert_eq!(a, b);
        let mut c = a.clone();
        c.created_at = rfc3339(1_000);
        assert_eq!(c.compute_id(), a.id(), "creation time is not content");
    }

    #[test]
    fn awkward_floats_round_trip_bit_exactly() {
        let mut a = tiny_nsl_artifact();
        let mut x = 0.1f64;
        for i in 0..2000 {
            x = (x * 1.000_001_7 + 1.0 / 3.0) % 97.0;
            a.tree.feature.push(LEAF);
            a.tree.threshold.push(x * 10f64.powi(i % 17 - 8));
            a.tree.left.push(0);
            a.tree.right.push(0);
            a.tree.class.push(0);
            a.tree.confidence.push((x / 97.0) as f32);
            a.tree.samples.push(1);
        }
        a.seal();
        let json = serde_json::to_string(&a).expect("json");
        let b = ModelArtifact::from_json(&json, "x").expect("round trip keeps the id");
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_other_versions_edits_and_schema_mismatch() {
        let a = tiny_nsl_artifact();
        let mut v: serde_json::Value = serde_json::to_value(&a).expect("value");
        v["format_version"] = serde_json::json!(2);
        let e = ModelArtifact::from_json(&v.to_string(), "x").expect_err("version");
        assert!(
            matches!(e, ArtifactError::UnsupportedVersion { found: 2, .. }),
            "{e}"
        );

        let mut edited = a.clone();
        edited.tree.class[2] = 0;
        let json = serde_json::to_string(&edited).expect("json");
        let e = ModelArtifact::from_json(&json, "x").expect_err("edited");
        assert!(matches!(e, ArtifactError::IdMismatch { .. }), "{e}");

        let e = a
            .check_features(&["duration", "flow_bytes_per_s"])
            .expect_err("mismatch");
        let msg = e.to_string();
        assert!(
            msg.contains("flow_bytes_per_s") && msg.contains("src_bytes"),
            "{msg}"
        );

        let mut renamed = a.clone();
        renamed.schema.names.swap(0, 4);
        renamed.seal();
        let e = renamed.validate().expect_err("order");
        assert!(e.to_string().contains("different order"), "{e}");

        assert!(ModelArtifact::from_json("{}", "x").is_err());
        assert!(ModelArtifact::from_json("not json", "x").is_err());
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_499_398_200), "2017-07-07T03:30:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert!(rfc3339_now().ends_with('Z'));
    }
}
