//! The flat decision tree used for inference.
//!
//! linfa's `DecisionTree` is a tree of boxed nodes carrying feature names and
//! impurity figures: fine for fitting, poor for a hot loop (pointer chasing,
//! ~100 bytes per node) and not a stable on-disk format. After fitting we
//! compile it into a struct of arrays indexed by node id, root at 0:
//! `feature[i]` (or [`LEAF`]), `threshold[i]`, `left[i]`/`right[i]`, and for
//! leaves `class[i]` and `confidence[i]`. Traversal is a few array loads per
//! level, and the whole tree of a typical model fits in L1/L2.
//!
//! Split semantics are those of linfa's fit: go left when `x <= threshold`
//! (linfa's own `predict` uses `<`; the two only differ at a value exactly
//! on a threshold, which after [`FlatTree::recenter_thresholds`] is a
//! midpoint between training values).
//!
//! Leaf confidence is computed by passing the (weighted) training rows through
//! the compiled tree: confidence = weight of the leaf's predicted class / total
//! weight at the leaf. linfa keeps no class distribution, and this also
//! double-checks that the compiled tree routes rows the way linfa did.

use linfa_trees::{DecisionTree, TreeNode};
use serde::{Deserialize, Serialize};

/// `feature` value that marks a leaf.
pub const LEAF: u16 = u16::MAX;

/// A compiled binary decision tree (struct of arrays; node 0 is the root).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlatTree {
    pub feature: Vec<u16>,
    pub threshold: Vec<f64>,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    /// Predicted class at a leaf (internal nodes: the node's modal class).
    pub class: Vec<u16>,
    /// Weighted fraction of the predicted class among the training rows at the leaf.
    pub confidence: Vec<f32>,
    /// Training rows that reached the node (unweighted).
    pub samples: Vec<u32>,
}

/// Why a stored tree is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree has no nodes")]
    Empty,
    #[error("tree arrays have different lengths")]
    Ragged,
    #[error("node {node}: child index {child} out of range or not after its parent")]
    BadChild { node: usize, child: u32 },
    #[error("node {node}: feature index {feature} out of range (model has {width} features)")]
    BadFeature {
        node: usize,
        feature: u16,
        width: usize,
    },
    #[error("node {node}: class {class} out of range (model has {classes} classes)")]
    BadClass {
        node: usize,
        class: u16,
        classes: usize,
    },
    #[error("node {node}: threshold is not finite")]
    BadThreshold { node: usize },
}

impl FlatTree {
    /// Compiles a fitted linfa tree (labels are class indices).
    pub fn from_linfa(tree: &DecisionTree<f64, usize>) -> Self {
        let mut t = FlatTree {
            feature: Vec::new(),
            threshold: Vec::new(),
            left: Vec::new(),
            right: Vec::new(),
            class: Vec::new(),
            confidence: Vec::new(),
            samples: Vec::new(),
        };
        t.push(tree.root_node());
        t
    }

    fn push(&mut self, node: &TreeNode<f64, usize>) -> u32 {
        let id = self.feature.len();
        self.feature.push(LEAF);
        self.threshold.push(0.0);
        self.left.push(0);
        self.right.push(0);
        self.class.push(0);
        self.confidence.push(1.0);
        self.samples.push(0);
        let children = node.children();
        match (node.prediction(), children[0], children[1]) {
            (None, Some(l), Some(r)) => {
                let (feature, threshold, _) = node.split();
                self.feature[id] = feature as u16;
                self.threshold[id] = threshold;
                let li = self.push(l);
                let ri = self.push(r);
                self.left[id] = li;
                self.right[id] = ri;
            }
            (pred, _, _) => {
                // A leaf (or, defensively, an internal node missing a child,
                // which linfa marks as leaf anyway).
                self.class[id] = pred.unwrap_or_default() as u16;
            }
        }
        id as u32
    }

    /// Maps feature indices of a tree fitted on a column subset back to the
    /// full feature layout (`cols[i]` = full index of fitted column `i`).
    pub fn remap_features(&mut self, cols: &[usize]) {
        for f in &mut self.feature {
            if *f != LEAF {
                *f = cols.get(*f as usize).map(|c| *c as u16).unwrap_or(*f);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.feature.len()
    }

    pub fn is_empty(&self) -> bool {
        self.feature.is_empty()
    }

    pub fn leaves(&self) -> usize {
        self.feature.iter().filter(|f| **f == LEAF).count()
    }

    /// Depth of the deepest leaf (root alone = 0).
    pub fn depth(&self) -> usize {
        let mut depth = vec![0usize; self.len()];
        let mut max = 0;
        for i in 0..self.len() {
            if self.feature[i] != LEAF {
                for c in [self.left[i] as usize, self.right[i] as usize] {
                    if c < depth.len() {
                        depth[c] = depth[i] + 1;
                        max = max.max(depth[c]);
                    }
                }
            }
        }
        max
    }

    /// Checks structural invariants so that [`Self::leaf_of`] can index
    /// without bounds surprises and cannot loop (children come after parents).
    pub fn validate(&self, width: usize, classes: usize) -> Result<(), TreeError> {
        let n = self.feature.len();
        if n == 0 {
            return Err(TreeError::Empty);
        }
        if [
            self.threshold.len(),
            self.left.len(),
            self.right.len(),
            self.class.len(),
            self.confidence.len(),
            self.samples.len(),
        ]
        .iter()
        .any(|l| *l != n)
        {
            return Err(TreeError::Ragged);
        }
        for i in 0..n {
            if self.class[i] as usize >= classes {
                return Err(TreeError::BadClass {
                    node: i,
                    class: self.class[i],
                    classes,
                });
            }
            if self.feature[i] == LEAF {
                continue;
            }
            if self.feature[i] as usize >= width {
                return Err(TreeError::BadFeature {
                    node: i,
                    feature: self.feature[i],
                    width,
                });
            }
            if !self.threshold[i].is_finite() {
                return Err(TreeError::BadThreshold { node: i });
            }
            for c in [self.left[i], self.right[i]] {
                if c as usize >= n || c as usize <= i {
                    return Err(TreeError::BadChild { node: i, child: c });
                }
            }
        }
        Ok(())
    }

    /// Leaf reached by row `x`. Calls `check(feature, value)` for every feature
    /// read on the way; an `Err` from it aborts the walk.
    #[inline]
    pub fn leaf_of<E>(
        &self,
        x: &[f64],
        mut check: impl FnMut(usize, f64) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut i = 0usize;
        loop {
            let f = self.feature[i];
            if f == LEAF {
                return Ok(i);
            }
            let v = x[f as usize];
            check(f as usize, v)?;
            i = if v <= self.threshold[i] {
                self.left[i] as usize
            } else {
                self.right[i] as usize
            };
        }
    }

    /// Leaf reached by a row known to be finite.
    #[inline]
    pub fn leaf(&self, x: &[f64]) -> usize {
        self.leaf_of::<()>(x, |_, _| Ok(())).unwrap_or_default()
    }

    /// Moves every threshold to the midpoint between the largest training
    /// value routed left and the smallest routed right at that node.
    ///
    /// Why: linfa-trees 0.8.1 takes the midpoint between a row's value and the
    /// next value in the *whole* column's sort order, which may belong to a
    /// row outside the node; deep in the tree the cut then hugs one side of
    /// the gap between the node's own rows (e.g. `src_bytes <= 0.5` where the
    /// node's rows are 0 and 1,000). CART places it mid-gap. Re-centring
    /// leaves the partition of the training rows exactly as linfa fitted it
    /// (so the fit, leaf statistics and training accuracy are unchanged) and
    /// only changes where unseen values in the gap go.
    pub fn recenter_thresholds<'a>(&mut self, rows: impl Iterator<Item = &'a [f64]>) {
        let n = self.len();
        let mut max_left = vec![f64::NEG_INFINITY; n];
        let mut min_right = vec![f64::INFINITY; n];
        for x in rows {
            let mut i = 0usize;
            while self.feature[i] != LEAF {
                let v = x[self.feature[i] as usize];
                if v <= self.threshold[i] {
                    max_left[i] = max_left[i].max(v);
                    i = self.left[i] as usize;
                } else {
                    min_right[i] = min_right[i].min(v);
                    i = self.right[i] as usize;
                }
            }
        }
        for i in 0..n {
            if self.feature[i] == LEAF || !max_left[i].is_finite() || !min_right[i].is_finite() {
                continue;
            }
            let (a, b) = (max_left[i], min_right[i]);
            let mid = a + (b - a) / 2.0;
            self.threshold[i] = if a <= mid && mid < b { mid } else { a };
        }
    }

    /// Sets leaf confidences (and sample counts) from training rows: rows are
    /// routed to their leaves and the weighted class frequencies accumulated.
    pub fn fill_leaf_statistics<'a>(
        &mut self,
        rows: impl Iterator<Item = (&'a [f64], usize, f64)>,
        classes: usize,
    ) {
        let n = self.len();
        let mut weights = vec![0.0f64; n * classes];
        let mut samples = vec![0u32; n];
        for (x, class, w) in rows {
            let mut i = 0usize;
            loop {
                samples[i] += 1;
                let f = self.feature[i];
                if f == LEAF {
                    break;
                }
                i = if x[f as usize] <= self.threshold[i] {
                    self.left[i] as usize
                } else {
                    self.right[i] as usize
                };
            }
            weights[i * classes + class] += w;
        }
        for i in 0..n {
            self.samples[i] = samples[i];
            if self.feature[i] != LEAF {
                continue;
            }
            let row = &weights[i * classes..(i + 1) * classes];
            let total: f64 = row.iter().sum();
            self.confidence[i] = if total > 0.0 {
                (row[self.class[i] as usize] / total) as f32
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::prelude::*;
    use ndarray::{array, Array1};

    #[test]
    fn compiles_linfa_tree_and_agrees_with_it() {
        let x = array![
            [1.0, 0.0],
            [2.0, 0.0],
            [3.0, 1.0],
            [4.0, 1.0],
            [5.0, 0.0],
            [6.0, 1.0],
            [7.0, 1.0],
            [8.0, 0.0]
        ];
        let y: Array1<usize> = array![0, 0, 0, 1, 1, 2, 2, 2];
        let ds = Dataset::new(x.clone(), y.clone());
        let model = DecisionTree::params().fit(&ds).expect("fit");
        let mut flat = FlatTree::from_linfa(&model);
        flat.validate(2, 3).expect("valid");
        // linfa predicts with `<` but partitions with `<=`; thresholds are
        // midpoints, so on the training rows the two agree.
        let pred = model.predict(&x);
        for (row, p) in x.rows().into_iter().zip(pred.iter()) {
            let r = row.to_vec();
            assert_eq!(flat.class[flat.leaf(&r)] as usize, *p);
        }
        let rows: Vec<Vec<f64>> = x.rows().into_iter().map(|r| r.to_vec()).collect();
        flat.fill_leaf_statistics(
            rows.iter()
                .zip(y.iter())
                .map(|(r, c)| (r.as_slice(), *c, 1.0)),
            3,
        );
        assert_eq!(flat.samples[0], 8);
        assert!(flat.confidence.iter().all(|c| *c > 0.0 && *c <= 1.0));
        assert!(flat.depth() >= 2);
        let before: Vec<usize> = rows.iter().map(|r| flat.leaf(r)).collect();
        flat.recenter_thresholds(rows.iter().map(|r| r.as_slice()));
        let after: Vec<usize> = rows.iter().map(|r| flat.leaf(r)).collect();
        assert_eq!(before, after, "re-centring keeps the training partition");
        assert!(flat.leaves() >= 3);
    }

    #[test]
    fn validation_rejects_bad_trees() {
        let mut t = FlatTree {
            feature: vec![0, LEAF, LEAF],
            threshold: vec![0.5, 0.0, 0.0],
            left: vec![1, 0, 0],
            right: vec![2, 0, 0],
            class: vec![0, 0, 1],
            confidence: vec![1.0; 3],
            samples: vec![0; 3],
        };
        t.validate(1, 2).expect("ok");
        assert!(matches!(t.validate(1, 1), Err(TreeError::BadClass { .. })));
        t.right[0] = 0;
        assert!(matches!(t.validate(1, 2), Err(TreeError::BadChild { .. })));
        t.right[0] = 2;
        t.feature[0] = 5;
        assert!(matches!(
            t.validate(1, 2),
            Err(TreeError::BadFeature { .. })
        ));
        t.feature[0] = 0;
        t.threshold[0] = f64::NAN;
        assert!(matches!(
            t.validate(1, 2),
            Err(TreeError::BadThreshold { .. })
        ));
        assert_eq!(t.threshold.len(), 3);
    }
}
