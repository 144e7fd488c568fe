//! IDS Stream's wire contract. Depends on nothing else in the workspace.

pub mod flow;

pub use flow::{CicFeatures, FlowRecord, NslKddFeatures, SourceDataset};
