//! IDS Stream models: dataset loaders, label schemes, feature encoding,
//! decision-tree training (linfa-trees), evaluation, the versioned model
//! artifact, allocation-free batch inference and synthetic traffic.
//!
//! Data flow: [`datasets`] turns CSV files into `FlowRecord`s (the same type
//! the processor decodes from Kafka, so training and serving share one
//! feature path), [`labels`] maps raw labels to classes, [`features`] encodes
//! records into rows, [`train`] fits and compiles a tree ([`tree`]) into a
//! [`artifact::ModelArtifact`], [`eval`] scores it, [`inference::Classifier`]
//! serves it and [`synth`] draws demo traffic from it. [`cli`] is the
//! `ids-model` binary.

pub mod artifact;
pub mod cli;
pub mod datasets;
pub mod eval;
pub mod features;
pub mod inference;
pub mod labels;
pub mod synth;
pub mod train;
pub mod tree;

pub use artifact::{ArtifactError, ModelArtifact};
pub use features::{FeatureError, FeatureSet};
pub use inference::{Classifier, Verdict};
