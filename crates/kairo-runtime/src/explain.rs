//! Per-prediction contributions for models `kairo train` wrote. The explanation data travels
//! inside the `.onnx` (model metadata `kairo.explain`, which other runtimes ignore): the
//! feature encodings, and either the linear coefficients or every tree with the value at each
//! node. For each row and score target, the contributions of the raw columns plus a bias sum to
//! the model's raw score (the logit for logistic and gradient-boosted classifiers, the class
//! probability for the forest, the value for regressors):
//! - linear models: exactly `coef · x` per column (a one-hot block summed), bias = intercept;
//! - trees with covers (how many training rows reached each node, which every tree `kairo
//!   train` writes carries): exact SHAP values by path-dependent TreeSHAP (Lundberg, Erion &
//!   Lee 2018, Algorithm 2), the same numbers as the `shap` package's `TreeExplainer` for the
//!   same trees and covers (tested against it in `fixtures/treeshap`); the bias is the base
//!   score plus each tree's cover-weighted mean leaf value. A categorical feature's
//!   contribution is the sum over its one-hot columns, as shap users sum them;
//! - trees without covers (models written before covers were recorded): path contributions
//!   (Saabas): along a row's path each split credits its column with the change in node
//!   value; the bias is the root values plus the base score.

use std::collections::HashMap;

use crate::{Data, ShapeError, Tensor};
use serde::{Deserialize, Serialize};

pub const METADATA_KEY: &str = "kairo.explain";

/// Why explanation data was refused, or contributions could not be computed for a request.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{METADATA_KEY} metadata is not an explainer: {0}")]
    NotAnExplainer(#[source] serde_json::Error),
    #[error("{METADATA_KEY} metadata: {0}")]
    Inconsistent(#[from] Inconsistency),
    #[error("the request has none of the model's inputs")]
    NoInputs,
    #[error("input '{0}' is missing")]
    MissingInput(String),
    #[error("input '{name}' has {values} values for {rows} rows")]
    RowCount { name: String, values: usize, rows: usize },
    #[error("input '{0}' must be strings")]
    NotStrings(String),
    #[error(transparent)]
    Shape(#[from] ShapeError),
}

/// Where explanation data does not hold together: an index outside its table, or counts that
/// disagree.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Inconsistency {
    #[error("no targets or no features")]
    Empty,
    #[error(
        "a linear scorer over {width} columns and {targets} targets needs {} coefficients and {targets} intercepts, not {coefficients} and {intercepts}",
        width.saturating_mul(*targets)
    )]
    LinearSize { width: usize, targets: usize, coefficients: usize, intercepts: usize },
    #[error("{given} base scores for {targets} targets")]
    BaseScores { given: usize, targets: usize },
    #[error("tree {tree} has no nodes")]
    EmptyTree { tree: usize },
    #[error("tree {tree} node {node} has {given} values for {targets} targets")]
    NodeValues { tree: usize, node: usize, given: usize, targets: usize },
    #[error("tree {tree} node {node} splits on column {column} to nodes {left}/{right}")]
    Split { tree: usize, node: usize, column: usize, left: usize, right: usize },
    #[error("tree {tree} node {node} has cover {cover}: covers must be positive and finite, on every node or none")]
    Cover { tree: usize, node: usize, cover: f64 },
}

/// A feature's encoding, as the graph does it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoding {
    pub name: String,
    /// Numeric: mean (imputation) and std (when scaled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Categorical: the one-hot categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// A column of a `[N, F]` input (`index` of tensor `input`), rather than an input of its
    /// own named `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

/// A tree node with its value per target (leaves and splits alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    /// Design-matrix column and threshold; `None` for a leaf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<(usize, f32, usize, usize)>,
    pub value: Vec<f64>,
    /// How many training rows reached this node (TreeSHAP's weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Scorer {
    /// `coef` is `[design columns, targets]` row-major.
    Linear {
        coef: Vec<f64>,
        intercept: Vec<f64>,
        scaled: bool,
    },
    Trees {
        trees: Vec<Vec<TreeNode>>,
        base: Vec<f64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explainer {
    pub features: Vec<Encoding>,
    pub targets: usize,
    /// What the summed score is: `logit`, `probability` or `value`.
    pub score: String,
    pub scorer: Scorer,
}

impl Explainer {
    /// The explainer a model carries in its metadata (`kairo.explain`), checked so that no
    /// index in it points outside its own tables: a model file is input like any other.
    pub fn from_metadata(json: &str) -> Result<Explainer, ExplainError> {
        let e: Explainer = serde_json::from_str(json).map_err(ExplainError::NotAnExplainer)?;
        e.check()?;
        Ok(e)
    }

    fn check(&self) -> Result<(), Inconsistency> {
        let t = self.targets;
        if t == 0 || self.features.is_empty() {
            return Err(Inconsistency::Empty);
        }
        let width: usize =
            self.features.iter().map(|f| if f.categories.is_empty() { 1 } else { f.categories.len() }).sum();
        match &self.scorer {
            Scorer::Linear { coef, intercept, .. } => {
                if Some(coef.len()) != width.checked_mul(t) || intercept.len() != t {
                    return Err(Inconsistency::LinearSize {
                        width,
                        targets: t,
                        coefficients: coef.len(),
                        intercepts: intercept.len(),
                    });
                }
            }
            Scorer::Trees { trees, base } => {
                if base.len() != t {
                    return Err(Inconsistency::BaseScores { given: base.len(), targets: t });
                }
                let covered = trees.iter().flatten().any(|node| node.cover.is_some());
                for (n, tree) in trees.iter().enumerate() {
                    if tree.is_empty() {
                        return Err(Inconsistency::EmptyTree { tree: n });
                    }
                    for (i, node) in tree.iter().enumerate() {
                        match node.cover {
                            Some(c) if c > 0.0 && c.is_finite() => {}
                            None if !covered => {}
                            _ => {
                                let cover = node.cover.unwrap_or(f64::NAN);
                                return Err(Inconsistency::Cover { tree: n, node: i, cover });
                            }
                        }
                    }
                    for (i, node) in tree.iter().enumerate() {
                        if node.value.len() != t {
                            return Err(Inconsistency::NodeValues {
                                tree: n,
                                node: i,
                                given: node.value.len(),
                                targets: t,
                            });
                        }
                        if let Some((column, _, left, right)) = node.split {
                            // Children come after their parent, so every walk ends.
                            if column >= width || left <= i || right <= i || left >= tree.len() || right >= tree.len() {
                                return Err(Inconsistency::Split { tree: n, node: i, column, left, right });
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// How contributions are computed.
    pub fn method(&self) -> Method {
        match &self.scorer {
            Scorer::Linear { .. } => Method::Linear,
            Scorer::Trees { trees, .. } if trees.iter().flatten().all(|n| n.cover.is_some()) => Method::TreeShap,
            Scorer::Trees { .. } => Method::Saabas,
        }
    }

    /// Record each node's cover: how many rows of `design` (the training design matrix,
    /// row-major, as the trees were fitted on it) reach it. A node no row reaches gets a
    /// tiny cover so the weights stay defined (it then carries no weight).
    pub fn set_covers(&mut self, design: &[f64], width: usize) {
        let Scorer::Trees { trees, .. } = &mut self.scorer else { return };
        for tree in trees.iter_mut() {
            let mut counts = vec![0f64; tree.len()];
            for row in design.chunks_exact(width.max(1)) {
                let mut i = 0;
                counts[0] += 1.0;
                while let Some((column, threshold, left, right)) = tree[i].split {
                    i = if (row[column] as f32) < threshold { left } else { right };
                    counts[i] += 1.0;
                }
            }
            for (node, c) in tree.iter_mut().zip(counts) {
                node.cover = Some(if c > 0.0 { c } else { f64::MIN_POSITIVE });
            }
        }
    }

    /// Record each node's cover from the rows of `inputs` (the training data, as a request
    /// would carry it).
    pub fn set_covers_from(&mut self, inputs: &HashMap<String, Tensor>) -> Result<(), ExplainError> {
        let scaled = matches!(self.scorer, Scorer::Linear { scaled: true, .. });
        let (x, width, _, _) = self.design(inputs, scaled)?;
        self.set_covers(&x, width);
        Ok(())
    }

    /// Each tree's node covers (empty for a linear scorer or trees without covers).
    pub fn covers(&self) -> Vec<Vec<f64>> {
        match &self.scorer {
            Scorer::Trees { trees, .. } if self.method() == Method::TreeShap => {
                trees.iter().map(|t| t.iter().map(|n| n.cover.unwrap_or(0.0)).collect()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Take covers recorded earlier ([`Explainer::covers`]); refused (and nothing changed)
    /// unless they fit every tree and are positive.
    pub fn with_covers(mut self, covers: &[Vec<f64>]) -> Result<Explainer, Inconsistency> {
        if let Scorer::Trees { trees, .. } = &mut self.scorer {
            let fits = covers.len() == trees.len() && trees.iter().zip(covers).all(|(t, c)| t.len() == c.len());
            if !fits {
                return Err(Inconsistency::Empty);
            }
            for (tree, c) in trees.iter_mut().zip(covers) {
                for (node, cover) in tree.iter_mut().zip(c) {
                    node.cover = Some(*cover);
                }
            }
        }
        self.check()?;
        Ok(self)
    }

    /// The names of the contribution columns: the features, then `bias`.
    pub fn columns(&self) -> Vec<String> {
        self.features.iter().map(|f| f.name.clone()).chain(["bias".to_string()]).collect()
    }

    /// The design matrix of a request (row-major), and the feature each design column belongs to.
    fn design(
        &self,
        inputs: &HashMap<String, Tensor>,
        scaled: bool,
    ) -> Result<(Vec<f64>, usize, Vec<usize>, usize), ExplainError> {
        let mut owner = Vec::new();
        for (i, f) in self.features.iter().enumerate() {
            let w = if f.categories.is_empty() { 1 } else { f.categories.len() };
            owner.extend(std::iter::repeat_n(i, w));
        }
        let width = owner.len();
        let tensor_of = |f: &Encoding| f.input.as_ref().unwrap_or(&f.name).clone();
        let rows = self
            .features
            .first()
            .and_then(|f| inputs.get(&tensor_of(f)))
            .map(|t| t.shape.first().copied().unwrap_or(0))
            .ok_or(ExplainError::NoInputs)?;
        let mut x = vec![0.0; rows * width];
        let mut offset = 0;
        for f in &self.features {
            let name = tensor_of(f);
            let t = inputs.get(&name).ok_or_else(|| ExplainError::MissingInput(name.clone()))?;
            // One value per row, or for a column of a `[N, F]` input, F per row.
            let (stride, at) = match f.index {
                Some(i) => (t.shape.get(1).copied().unwrap_or(1), i),
                None => (1, 0),
            };
            if t.data.len() != rows.saturating_mul(stride) || at >= stride {
                return Err(ExplainError::RowCount { name, values: t.data.len(), rows });
            }
            if f.categories.is_empty() {
                let (mean, std) = (f.mean.unwrap_or(0.0), f.std.unwrap_or(1.0));
                for r in 0..rows {
                    let v = t.data.f64_at(r * stride + at).filter(|v| !v.is_nan()).unwrap_or(mean);
                    let v = f64::from(v as f32);
                    x[r * width + offset] = if scaled { (v - mean) / std } else { v };
                }
                offset += 1;
            } else {
                let Data::Bytes(values) = &t.data else {
                    return Err(ExplainError::NotStrings(f.name.clone()));
                };
                for (r, v) in values.iter().enumerate() {
                    if let Some(k) = f.categories.iter().position(|c| c == v) {
                        x[r * width + offset + k] = 1.0;
                    }
                }
                offset += f.categories.len();
            }
        }
        Ok((x, width, owner, rows))
    }

    /// Contributions `[rows, targets, features + 1]` (the last column is the bias).
    pub fn contributions(&self, inputs: &HashMap<String, Tensor>) -> Result<Tensor, ExplainError> {
        let (values, rows) = self.contribution_values(inputs)?;
        let shape = vec![rows, self.targets, self.features.len() + 1];
        Ok(Tensor::new(shape, Data::F32(values.into_iter().map(|v| v as f32).collect()))?)
    }

    /// [`Explainer::contributions`] in full precision, row-major, with the row count.
    pub fn contribution_values(&self, inputs: &HashMap<String, Tensor>) -> Result<(Vec<f64>, usize), ExplainError> {
        let n_features = self.features.len();
        let cols = n_features + 1;
        let t = self.targets;
        let scaled = matches!(self.scorer, Scorer::Linear { scaled: true, .. });
        let (x, width, owner, rows) = self.design(inputs, scaled)?;
        let mut out = vec![0f64; rows * t * cols];
        match &self.scorer {
            Scorer::Linear { coef, intercept, .. } => {
                for r in 0..rows {
                    for k in 0..t {
                        let base = (r * t + k) * cols;
                        for d in 0..width {
                            out[base + owner[d]] += coef[d * t + k] * x[r * width + d];
                        }
                        out[base + n_features] = intercept[k];
                    }
                }
            }
            Scorer::Trees { trees, base } if self.method() == Method::TreeShap => {
                let depth = trees.iter().map(|tree| tree_depth(tree)).max().unwrap_or(0);
                let mut shap = TreeShap::new(depth, t);
                let mut phi = vec![0f64; width * t];
                let bias: Vec<f64> =
                    (0..t).map(|k| base[k] + trees.iter().map(|tree| expected(tree, k)).sum::<f64>()).collect();
                for r in 0..rows {
                    let row = &x[r * width..(r + 1) * width];
                    phi.fill(0.0);
                    for tree in trees {
                        shap.tree(tree, row, &mut phi);
                    }
                    for k in 0..t {
                        let at = (r * t + k) * cols;
                        out[at + n_features] = bias[k];
                        for d in 0..width {
                            out[at + owner[d]] += phi[d * t + k];
                        }
                    }
                }
            }
            Scorer::Trees { trees, base } => {
                for r in 0..rows {
                    let row = &x[r * width..(r + 1) * width];
                    for k in 0..t {
                        out[(r * t + k) * cols + n_features] = base[k];
                    }
                    for tree in trees {
                        let mut i = 0;
                        for k in 0..t {
                            out[(r * t + k) * cols + n_features] += tree[0].value[k];
                        }
                        while let Some((column, threshold, left, right)) = tree[i].split {
                            let next = if (row[column] as f32) < threshold { left } else { right };
                            for k in 0..t {
                                out[(r * t + k) * cols + owner[column]] += tree[next].value[k] - tree[i].value[k];
                            }
                            i = next;
                        }
                    }
                }
            }
        }
        Ok((out, rows))
    }
}

/// How an explainer computes contributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Linear,
    /// Exact SHAP values (path-dependent TreeSHAP).
    #[serde(rename = "treeshap")]
    TreeShap,
    /// Path contributions, for trees without covers.
    Saabas,
}

fn tree_depth(tree: &[TreeNode]) -> usize {
    // Children come after their parents (checked), so one forward pass finds every depth.
    let mut depth = vec![0usize; tree.len()];
    for (i, node) in tree.iter().enumerate() {
        if let Some((_, _, left, right)) = node.split {
            depth[left] = depth[i] + 1;
            depth[right] = depth[i] + 1;
        }
    }
    depth.into_iter().max().unwrap_or(0)
}

/// A tree's mean output on target `k`, each leaf weighted by its cover.
fn expected(tree: &[TreeNode], k: usize) -> f64 {
    let root = tree[0].cover.unwrap_or(1.0);
    tree.iter().filter(|n| n.split.is_none()).map(|n| n.cover.unwrap_or(0.0) / root * n.value[k]).sum()
}

/// One element of TreeSHAP's path: a design column, the share of the training rows that
/// follow the path through its splits (`zero`), whether the row does (`one`), and the
/// permutation weight.
#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    column: Option<usize>,
    zero: f64,
    one: f64,
    weight: f64,
}

/// Path-dependent TreeSHAP with its scratch space: one path per depth, laid out one after
/// another as in the paper's Algorithm 2 (each recursion level copies its parent's path).
struct TreeShap {
    paths: Vec<PathElement>,
    targets: usize,
}

impl TreeShap {
    fn new(depth: usize, targets: usize) -> TreeShap {
        // Level d's path has at most d + 2 elements (the dummy first one included).
        let size = (depth + 2) * (depth + 3) / 2;
        TreeShap { paths: vec![PathElement::default(); size], targets }
    }

    /// Add one tree's SHAP values for `row` to `phi` (`[design column, target]`).
    fn tree(&mut self, tree: &[TreeNode], row: &[f64], phi: &mut [f64]) {
        self.recurse(tree, row, phi, 0, 0, 0, 1.0, 1.0, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn recurse(
        &mut self,
        tree: &[TreeNode],
        row: &[f64],
        phi: &mut [f64],
        node: usize,
        start: usize,
        depth: usize,
        zero: f64,
        one: f64,
        column: Option<usize>,
    ) {
        // This level's path starts after the parent's (which has `depth` elements, the
        // dummy included, at `start`), as a copy of it, then extended by the parent's split.
        let here = start + depth;
        let (parent, rest) = self.paths.split_at_mut(here);
        rest[..depth].copy_from_slice(&parent[start..start + depth]);
        let path = &mut rest[..depth + 1];
        extend(path, depth, zero, one, column);
        match tree[node].split {
            None => {
                for i in 1..=depth {
                    let w = unwound_sum(path, depth, i);
                    let e = path[i];
                    let Some(c) = e.column else { continue };
                    let scale = w * (e.one - e.zero);
                    for k in 0..self.targets {
                        phi[c * self.targets + k] += scale * tree[node].value[k];
                    }
                }
            }
            Some((split, threshold, left, right)) => {
                let (hot, cold) = if (row[split] as f32) < threshold { (left, right) } else { (right, left) };
                let cover = |i: usize| tree[i].cover.unwrap_or(1.0);
                let (hot_zero, cold_zero) = (cover(hot) / cover(node), cover(cold) / cover(node));
                let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
                let mut depth = depth;
                // A column already on the path: undo its earlier split, to redo it here.
                if let Some(k) = (1..=depth).find(|&k| path[k].column == Some(split)) {
                    incoming_zero = path[k].zero;
                    incoming_one = path[k].one;
                    unwind(path, depth, k);
                    depth -= 1;
                }
                self.recurse(tree, row, phi, hot, here, depth + 1, hot_zero * incoming_zero, incoming_one, Some(split));
                self.recurse(tree, row, phi, cold, here, depth + 1, cold_zero * incoming_zero, 0.0, Some(split));
            }
        }
    }
}

/// Add an element to a path of `depth` elements (indices `0..depth`), growing it to
/// `depth + 1`, and update the permutation weights.
fn extend(path: &mut [PathElement], depth: usize, zero: f64, one: f64, column: Option<usize>) {
    path[depth] = PathElement { column, zero, one, weight: if depth == 0 { 1.0 } else { 0.0 } };
    let n = (depth + 1) as f64;
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / n;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / n;
    }
}

/// Remove element `at` from a path whose last index is `depth`, undoing its weights.
fn unwind(path: &mut [PathElement], depth: usize, at: usize) {
    let PathElement { zero, one, .. } = path[at];
    let n = (depth + 1) as f64;
    let mut next = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let w = path[i].weight;
            path[i].weight = next * n / ((i + 1) as f64 * one);
            next = w - path[i].weight * zero * (depth - i) as f64 / n;
        } else {
            path[i].weight = path[i].weight * n / (zero * (depth - i) as f64);
        }
    }
    for i in at..depth {
        path[i].column = path[i + 1].column;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

/// The total permutation weight the path would have without element `at`.
fn unwound_sum(path: &[PathElement], depth: usize, at: usize) -> f64 {
    let PathElement { zero, one, .. } = path[at];
    let n = (depth + 1) as f64;
    let mut next = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let w = next * n / ((i + 1) as f64 * one);
            total += w;
            next = path[i].weight - w * zero * (depth - i) as f64 / n;
        } else if zero != 0.0 {
            total += path[i].weight / zero / ((depth - i) as f64 / n);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_explainer(tree: &str) -> String {
        format!(
            r#"{{"features":[{{"name":"x"}}],"targets":1,"score":"value","scorer":{{"kind":"trees","base":[0.0],"trees":[{tree}]}}}}"#
        )
    }

    #[test]
    fn a_sound_explainer_loads_and_sums_to_the_score() {
        let json = tree_explainer(r#"[{"split":[0,0.5,1,2],"value":[1.0]},{"value":[0.0]},{"value":[3.0]}]"#);
        let e = Explainer::from_metadata(&json).unwrap();
        let x = Tensor::new(vec![2], Data::F32(vec![0.0, 1.0])).unwrap();
        let c = e.contributions(&HashMap::from([("x".to_string(), x)])).unwrap();
        let Data::F32(v) = c.data else { panic!() };
        // Row 0 goes left (0.0), row 1 right (3.0); bias is the root value 1.0.
        assert_eq!(v, vec![-1.0, 1.0, 2.0, 1.0]);
    }

    #[test]
    fn treeshap_splits_the_score_by_the_covers() {
        // Three training rows went left (value 0), one right (value 3): the mean is 0.75.
        let json = tree_explainer(
            r#"[{"split":[0,0.5,1,2],"value":[1.0],"cover":4},{"value":[0.0],"cover":3},{"value":[3.0],"cover":1}]"#,
        );
        let e = Explainer::from_metadata(&json).unwrap();
        assert_eq!(e.method(), Method::TreeShap);
        let x = Tensor::new(vec![2], Data::F32(vec![0.0, 1.0])).unwrap();
        let c = e.contributions(&HashMap::from([("x".to_string(), x)])).unwrap();
        let Data::F32(v) = c.data else { panic!() };
        assert_eq!(v, vec![-0.75, 0.75, 2.25, 0.75]);
        // Covers on some nodes only, or not positive, are refused.
        for tree in [
            r#"[{"split":[0,0.5,1,2],"value":[1.0],"cover":4},{"value":[0.0]},{"value":[3.0],"cover":1}]"#,
            r#"[{"split":[0,0.5,1,2],"value":[1.0],"cover":4},{"value":[0.0],"cover":0},{"value":[3.0],"cover":1}]"#,
        ] {
            let err = Explainer::from_metadata(&tree_explainer(tree)).unwrap_err().to_string();
            assert!(err.contains("covers must be positive"), "{err}");
        }
    }

    #[test]
    fn explainers_whose_indices_leave_their_tables_are_refused() {
        for (tree, needle) in [
            (r#"[{"split":[0,0.5,1,9],"value":[1.0]},{"value":[0.0]}]"#, "to nodes 1/9"),
            (r#"[{"split":[0,0.5,0,0],"value":[1.0]}]"#, "to nodes 0/0"),
            (r#"[{"split":[3,0.5,1,2],"value":[1.0]},{"value":[0.0]},{"value":[0.0]}]"#, "column 3"),
            (r#"[{"value":[1.0, 2.0]}]"#, "2 values for 1 targets"),
            (r#"[]"#, "no nodes"),
        ] {
            let err = Explainer::from_metadata(&tree_explainer(tree)).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let linear = r#"{"features":[{"name":"x"}],"targets":2,"score":"logit","scorer":{"kind":"linear","coef":[1.0],"intercept":[0.0,0.0],"scaled":false}}"#;
        let err = Explainer::from_metadata(linear).unwrap_err();
        assert!(matches!(err, ExplainError::Inconsistent(Inconsistency::LinearSize { .. })), "{err}");
        assert!(err.to_string().contains("needs 2 coefficients"), "{err}");
        assert!(Explainer::from_metadata("{").unwrap_err().to_string().contains("kairo.explain"));
    }
}
