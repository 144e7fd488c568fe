//! Datasets, training, evaluation and inference.
