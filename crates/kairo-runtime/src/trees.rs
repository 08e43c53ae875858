//! Kairo's tree-ensemble operator (`ai.kairo:KairoTreeScores`): the raw per-output sums of an
//! ONNX-ML tree ensemble, `[N, outputs]`, before any post-transform.
//!
//! Why our own: tract's TreeEnsembleClassifier finds a leaf's weights by iterating the global
//! leaf table from its start (`outer_iter().skip(..)`), which makes every tree visit cost the
//! size of the whole ensemble: a 100-tree forest took 15 ms per row. Here nodes live in one
//! flat array with child indices resolved at load, so a row costs one root-to-leaf walk per
//! tree. `lower` rewrites TreeEnsembleClassifier and TreeEnsembleRegressor into this operator
//! followed by standard operators for the post-transform and the labels.

use std::sync::Arc;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

pub const OP: &str = "KairoTreeScores";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// 16 bytes, so a tree's nodes stay in cache while a block of rows walks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Node {
    /// Feature index in the low 24 bits, `Mode` in bits 28-31, "missing goes true" in bit 27.
    packed: u32,
    /// The threshold's f32 bits (so the op can derive `Hash`).
    threshold: u32,
    /// Branches: the true and false children. Leaves: the leaf itself, both (a walk that
    /// reached its leaf stays there); their weights are in `Forest::leaf_start`.
    a: u32,
    b: u32,
}

const FEATURE_MASK: u32 = (1 << 24) - 1;
const MISSING_TRUE: u32 = 1 << 27;

impl Mode {
    fn code(self) -> u32 {
        match self {
            Mode::Leq => 0,
            Mode::Lt => 1,
            Mode::Gte => 2,
            Mode::Gt => 3,
            Mode::Eq => 4,
            Mode::Neq => 5,
            Mode::Leaf => 6,
        }
    }
}

const LEAF: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// A whole ensemble, ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// Node i's leaf weights are `leaf_targets`/`leaf_weights`[leaf_start[i]..leaf_start[i + 1]]
    /// (an empty range for branches).
    leaf_start: Vec<u32>,
    leaf_targets: Vec<u32>,
    leaf_weights: Vec<u32>,
    base: Vec<u32>,
    outputs: usize,
    max_feature: usize,
    aggregate: Aggregate,
    /// Every branch is `BRANCH_LEQ` (scikit-learn's, Kairo's trees), or every one
    /// `BRANCH_LT` (XGBoost's), with missing values going false: such a forest is walked by
    /// `walk_uniform`.
    uniform: Option<Mode>,
}

impl Forest {
    /// Rows in blocks, each block walking one tree at a time (tree-major), so a tree's nodes
    /// are read from cache for every row of the block after the first. Within a block, `LANES` rows walk the
    /// tree together, a level per step: their node loads do not wait on each other, which is
    /// what a deep tree's walk spends its time on. Each row's leaves are added in tree order,
    /// as one row alone would add them.
    fn eval(&self, x: &[f32], features: usize, out: &mut [f32]) {
        const LANES: usize = 8;
        let rows = x.len() / features.max(1);
        // As many rows as keep their features within ~256 KiB, so a tree and the block's rows
        // stay in L2 while the block walks it: 64 rows per tree pass took the bench forest
        // 5.47 s for 1M rows, 2,048 4.0 s, 8,192 3.9 s (L2 is 2 MiB here).
        let most = (256 * 1024 / (features.max(1) * 4)).clamp(64, 4096);
        // Equal blocks: a short last block would walk every tree for a handful of rows.
        let block = rows.div_ceil(rows.div_ceil(most).max(1)).max(1);
        let k = self.outputs;
        let min_max = matches!(self.aggregate, Aggregate::Min | Aggregate::Max);
        let mut seen = if min_max { vec![false; rows * k] } else { Vec::new() };
        let mut start = 0;
        while start < rows {
            let end = (start + block).min(rows);
            for &root in &self.roots {
                let mut first = start;
                while first < end {
                    let lanes = (end - first).min(LANES);
                    let mut at = [root; LANES];
                    if lanes == LANES && self.uniform.is_some() {
                        let rows: [&[f32]; LANES] =
                            std::array::from_fn(|l| &x[(first + l) * features..(first + l + 1) * features]);
                        match self.uniform {
                            Some(Mode::Lt) => walk_uniform::<LANES, true>(&self.nodes, &mut at, &rows),
                            _ => walk_uniform::<LANES, false>(&self.nodes, &mut at, &rows),
                        }
                    } else {
                        self.walk(&mut at[..lanes], &x[first * features..], features);
                    }
                    for (lane, node) in at.iter().enumerate().take(lanes) {
                        let r = first + lane;
                        let leaves =
                            self.leaf_start[*node as usize] as usize..self.leaf_start[*node as usize + 1] as usize;
                        for l in leaves {
                            let at = r * k + self.leaf_targets[l] as usize;
                            let w = f32::from_bits(self.leaf_weights[l]);
                            match self.aggregate {
                                Aggregate::Sum | Aggregate::Average => out[at] += w,
                                Aggregate::Min => {
                                    out[at] = if seen[at] { out[at].min(w) } else { w };
                                    seen[at] = true;
                                }
                                Aggregate::Max => {
                                    out[at] = if seen[at] { out[at].max(w) } else { w };
                                    seen[at] = true;
                                }
                            }
                        }
                    }
                    first += lanes;
                }
            }
            start = end;
        }
        let trees = self.roots.len().max(1) as f32;
        for (i, s) in out.iter_mut().enumerate() {
            if self.aggregate == Aggregate::Average {
                *s /= trees;
            }
            *s += self.base.get(i % k).map(|b| f32::from_bits(*b)).unwrap_or(0.0);
        }
    }
}

impl Forest {
    /// Walk rows `x` (one per lane, `features` apart) from nodes `at` down to their leaves, a
    /// level per step, so the lanes' node loads overlap.
    fn walk(&self, at: &mut [u32], x: &[f32], features: usize) {
        loop {
            let mut moving = false;
            for (lane, node) in at.iter_mut().enumerate() {
                let n = self.nodes[*node as usize];
                if n.packed >> 28 == LEAF {
                    continue;
                }
                moving = true;
                let v = x[lane * features + (n.packed & FEATURE_MASK) as usize];
                *node = if goes_true(n, v) { n.a } else { n.b };
            }
            if !moving {
                return;
            }
        }
    }
}

/// `Forest::walk` for a forest whose branches all compare alike (`v < t` when `LT`, else
/// `v <= t`; missing values go false): no dispatch on the mode, no test
/// for a leaf (a leaf is its own child: a lane that reached one stays), the child picked
/// without a branch, the lanes in registers — a third of the instructions per node, which is
/// what the walk spends its time on (the tree is in cache). A group walks as deep as its
/// deepest row.
#[inline(always)]
fn walk_uniform<const L: usize, const LT: bool>(nodes: &[Node], at: &mut [u32; L], rows: &[&[f32]; L]) {
    loop {
        let mut moving = false;
        for l in 0..L {
            let n = nodes[at[l] as usize];
            // A leaf's feature is 0: a real cell, compared and ignored.
            let v = rows[l][(n.packed & FEATURE_MASK) as usize];
            let t = f32::from_bits(n.threshold);
            let next = if (LT && v < t) || (!LT && v <= t) { n.a } else { n.b };
            moving |= next != at[l];
            at[l] = next;
        }
        if !moving {
            return;
        }
    }
}

/// Whether a branch node sends value `v` to its true child (NaN: where the node says missing goes).
#[inline]
fn goes_true(n: Node, v: f32) -> bool {
    if v.is_nan() {
        return n.packed & MISSING_TRUE != 0;
    }
    let t = f32::from_bits(n.threshold);
    match n.packed >> 28 {
        0 => v <= t,
        1 => v < t,
        2 => v >= t,
        3 => v > t,
        4 => v == t,
        _ => v != t,
    }
}

pub(crate) fn ints<'a>(node: &'a NodeProto, name: &str) -> &'a [i64] {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.as_slice()).unwrap_or(&[])
}

pub(crate) fn floats<'a>(node: &'a NodeProto, name: &str) -> &'a [f32] {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.floats.as_slice()).unwrap_or(&[])
}

pub(crate) fn strings(node: &NodeProto, name: &str) -> Vec<String> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
        .unwrap_or_default()
}

/// A strings attribute as the bytes it holds (no copy).
pub(crate) fn byte_strings<'a>(node: &'a NodeProto, name: &str) -> &'a [Vec<u8>] {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.strings.as_slice()).unwrap_or(&[])
}

pub(crate) fn int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

pub(crate) fn string(node: &NodeProto, name: &str) -> Option<String> {
    node.attribute.iter().find(|a| a.name == name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// An ONNX-ML tree ensemble's node attributes (`nodes_*`), one entry per node each.
pub(crate) struct Nodes<'a> {
    pub tree_ids: &'a [i64],
    pub node_ids: &'a [i64],
    pub features: &'a [i64],
    pub modes: &'a [Vec<u8>],
    pub values: &'a [f32],
    pub trues: &'a [i64],
    pub falses: &'a [i64],
}

impl<'a> Nodes<'a> {
    /// The attributes, refused when there are no nodes or their lengths differ.
    pub fn read(node: &'a NodeProto) -> TractResult<Nodes<'a>> {
        let nodes = Nodes {
            tree_ids: ints(node, "nodes_treeids"),
            node_ids: ints(node, "nodes_nodeids"),
            features: ints(node, "nodes_featureids"),
            modes: byte_strings(node, "nodes_modes"),
            values: floats(node, "nodes_values"),
            trues: ints(node, "nodes_truenodeids"),
            falses: ints(node, "nodes_falsenodeids"),
        };
        let n = nodes.tree_ids.len();
        ensure!(n > 0, "tree ensemble without nodes");
        for (name, len) in [
            ("nodes_nodeids", nodes.node_ids.len()),
            ("nodes_featureids", nodes.features.len()),
            ("nodes_modes", nodes.modes.len()),
            ("nodes_values", nodes.values.len()),
            ("nodes_truenodeids", nodes.trues.len()),
            ("nodes_falsenodeids", nodes.falses.len()),
        ] {
            ensure!(len == n, "tree ensemble attribute {name} has {len} entries, expected {n}");
        }
        Ok(nodes)
    }
}

/// Where node `(tree, id)` sits among the nodes: from each tree's first position when every
/// tree's nodes are listed together with ids 0, 1, 2, … (as skl2onnx writes them), else from a
/// map of every node (a million-node forest's map was tens of MB while loading).
enum NodeIndex {
    /// Tree id → (first position, node count).
    Dense(std::collections::HashMap<i64, (u32, u32)>),
    Map(std::collections::HashMap<(i64, i64), u32>),
}

impl NodeIndex {
    fn new(tree_ids: &[i64], node_ids: &[i64]) -> NodeIndex {
        let mut trees: std::collections::HashMap<i64, (u32, u32)> = std::collections::HashMap::new();
        let dense = (0..tree_ids.len()).all(|i| match trees.get_mut(&tree_ids[i]) {
            None => {
                trees.insert(tree_ids[i], (i as u32, 1));
                node_ids[i] == 0
            }
            Some((start, count)) => {
                let next = *start as usize + *count as usize == i && node_ids[i] == i64::from(*count);
                *count += 1;
                next
            }
        });
        if dense {
            return NodeIndex::Dense(trees);
        }
        let mut map = std::collections::HashMap::with_capacity(tree_ids.len());
        for i in 0..tree_ids.len() {
            map.insert((tree_ids[i], node_ids[i]), i as u32);
        }
        NodeIndex::Map(map)
    }

    fn get(&self, tree: i64, id: i64) -> Option<u32> {
        match self {
            NodeIndex::Dense(trees) => {
                let (start, count) = trees.get(&tree)?;
                (0..i64::from(*count)).contains(&id).then(|| start + id as u32)
            }
            NodeIndex::Map(map) => map.get(&(tree, id)).copied(),
        }
    }

    /// The distinct tree ids, sorted.
    fn trees(&self, tree_ids: &[i64]) -> Vec<i64> {
        let mut order: Vec<i64> = match self {
            NodeIndex::Dense(trees) => trees.keys().copied().collect(),
            NodeIndex::Map(_) => tree_ids.to_vec(),
        };
        order.sort_unstable();
        order.dedup();
        order
    }
}

/// Build the ensemble from the node's attributes (ONNX-ML names; leaves as `leaf_*`).
pub fn parse(node: &NodeProto) -> TractResult<Forest> {
    let Nodes { tree_ids, node_ids, features, modes, values, trues, falses } = Nodes::read(node)?;
    let missing = ints(node, "nodes_missing_value_tracks_true");
    let n = tree_ids.len();
    let index = NodeIndex::new(tree_ids, node_ids);
    let lookup = |tree: i64, id: i64| -> TractResult<u32> {
        index.get(tree, id).ok_or_else(|| format_err!("tree {tree} has no node {id}"))
    };
    // Leaves' weights, grouped per node in node order (each node's in the order given): a
    // count per node, then each weight put in its node's range.
    let leaf_trees = ints(node, "leaf_treeids");
    let leaf_nodes = ints(node, "leaf_nodeids");
    let leaf_targets_in = ints(node, "leaf_targetids");
    let leaf_weights_in = floats(node, "leaf_weights");
    ensure!(
        leaf_nodes.len() == leaf_trees.len()
            && leaf_targets_in.len() == leaf_trees.len()
            && leaf_weights_in.len() == leaf_trees.len(),
        "tree ensemble leaf attributes differ in length"
    );
    let outputs = int(node, "n_outputs").unwrap_or(1).max(1) as usize;
    let leaves = leaf_trees.len();
    let mut leaf_at = Vec::with_capacity(leaves);
    for l in 0..leaves {
        leaf_at.push(lookup(leaf_trees[l], leaf_nodes[l])?);
    }
    let mut start = vec![0u32; n + 1];
    for &at in &leaf_at {
        start[at as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut next = start.clone();
    let mut leaf_targets = vec![0u32; leaves];
    let mut leaf_weights = vec![0u32; leaves];
    for l in 0..leaves {
        let t = leaf_targets_in[l];
        ensure!((0..outputs as i64).contains(&t), "leaf target {t} is not below n_outputs {outputs}");
        let slot = &mut next[leaf_at[l] as usize];
        leaf_targets[*slot as usize] = t as u32;
        leaf_weights[*slot as usize] = leaf_weights_in[l].to_bits();
        *slot += 1;
    }
    drop((leaf_at, next));
    ensure!(n < u32::MAX as usize, "tree ensemble has too many nodes");
    let mut nodes = Vec::with_capacity(n);
    let mut max_feature = 0usize;
    for i in 0..n {
        let mode = match modes[i].as_slice() {
            b"BRANCH_LEQ" => Mode::Leq,
            b"BRANCH_LT" => Mode::Lt,
            b"BRANCH_GTE" => Mode::Gte,
            b"BRANCH_GT" => Mode::Gt,
            b"BRANCH_EQ" => Mode::Eq,
            b"BRANCH_NEQ" => Mode::Neq,
            b"LEAF" => Mode::Leaf,
            other => bail!("unknown tree node mode {}", String::from_utf8_lossy(other)),
        };
        let (a, b) = if mode == Mode::Leaf {
            (i as u32, i as u32)
        } else {
            ensure!(
                features[i] >= 0 && (features[i] as u32) <= FEATURE_MASK,
                "feature index {} out of range",
                features[i]
            );
            max_feature = max_feature.max(features[i] as usize);
            (lookup(tree_ids[i], trues[i])?, lookup(tree_ids[i], falses[i])?)
        };
        let missing_true = if missing.get(i).copied().unwrap_or(0) != 0 { MISSING_TRUE } else { 0 };
        let feature = if mode == Mode::Leaf { 0 } else { features[i] as u32 };
        nodes.push(Node { packed: (mode.code() << 28) | missing_true | feature, threshold: values[i].to_bits(), a, b });
    }
    // Roots: node 0 of each tree if present, else the tree's first node, in tree order.
    let roots = index
        .trees(tree_ids)
        .iter()
        .map(|t| {
            index
                .get(*t, 0)
                .or_else(|| tree_ids.iter().position(|x| x == t).map(|p| p as u32))
                .ok_or_else(|| format_err!("tree {t} has no nodes"))
        })
        .collect::<TractResult<Vec<u32>>>()?;
    // Each tree must be a tree: a walk from its root meets every node at most once (a cycle
    // would make scoring loop forever).
    let mut seen = vec![false; n];
    let mut stack = Vec::new();
    for &root in &roots {
        stack.push(root);
        while let Some(i) = stack.pop() {
            ensure!(
                !std::mem::replace(&mut seen[i as usize], true),
                "tree ensemble node {i} is reached twice: not a tree"
            );
            let node = nodes[i as usize];
            if node.packed >> 28 != LEAF {
                stack.extend([node.a, node.b]);
            }
        }
    }
    drop((seen, stack));
    let aggregate = match string(node, "aggregate_function").as_deref().unwrap_or("SUM") {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("unknown aggregate_function {other}"),
    };
    let base = floats(node, "base_values").iter().map(|b| b.to_bits()).collect();
    // Branches' mode and missing bit (bits 27-31) all one value: LEQ or LT, missing false.
    let mut kinds = nodes.iter().filter(|n| n.packed >> 28 != LEAF).map(|n| n.packed >> 27);
    let uniform = match kinds.next() {
        Some(k) if kinds.all(|o| o == k) => [Mode::Leq, Mode::Lt].into_iter().find(|m| m.code() << 1 == k),
        _ => None,
    };
    Ok(Forest {
        nodes,
        roots,
        leaf_start: start,
        leaf_targets,
        leaf_weights,
        base,
        outputs,
        max_feature,
        aggregate,
        uniform,
    })
}

/// The typed (runnable) operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TreeScores {
    forest: Arc<Forest>,
}

impl Op for TreeScores {
    fn name(&self) -> StaticName {
        OP.into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeScores {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let input = input.cast_to::<f32>()?;
        let shape = input.shape();
        ensure!(shape.len() == 2, "tree ensemble input must be [N, features], got {shape:?}");
        let (rows, features) = (shape[0], shape[1]);
        ensure!(
            features > self.forest.max_feature,
            "tree ensemble reads feature {} but the input has {features}",
            self.forest.max_feature
        );
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let mut out = vec![0f32; rows * self.forest.outputs];
        self.forest.eval(x, features, &mut out);
        Ok(tvec!(tract_onnx::prelude::Tensor::from_shape(&[rows, self.forest.outputs], &out)?.into_tvalue()))
    }
}

impl TypedOp for TreeScores {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(f32::fact(&[n, self.forest.outputs.into()])))
    }

    as_op!();
}

/// The inference-model form, which wires the typed operator.
#[derive(Debug, Clone, Hash)]
struct TreeScoresExpansion {
    forest: Arc<Forest>,
}

impl Expansion for TreeScoresExpansion {
    fn name(&self) -> StaticName {
        OP.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.forest.outputs.to_dim())?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let mut input = inputs[0];
        if model.outlet_fact(input)?.datum_type != f32::datum_type() {
            input = model.wire_node(
                format!("{prefix}.cast"),
                tract_onnx::tract_core::ops::cast::cast(f32::datum_type()),
                &[input],
            )?[0];
        }
        model.wire_node(prefix, TreeScores { forest: self.forest.clone() }, &[input])
    }
}

fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let forest = Arc::new(parse(node)?);
    Ok((expand(TreeScoresExpansion { forest }), vec![]))
}

/// Add the operator to an ONNX parser's registry.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert(OP, build);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::AttributeProto;

    fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto { name: name.into(), ints: v.to_vec(), ..Default::default() }
    }

    fn floats_attr(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto { name: name.into(), floats: v.to_vec(), ..Default::default() }
    }

    /// One tree: node 0 splits on feature `f0` at 0.5 (`mode`); leaf 1 weighs 10, leaf 2 weighs
    /// 20. `true_child` is node 0's true child (1, or 0 for a cycle).
    fn tree(mode: &str, true_child: i64) -> NodeProto {
        NodeProto {
            attribute: vec![
                ints_attr("nodes_treeids", &[0, 0, 0]),
                ints_attr("nodes_nodeids", &[0, 1, 2]),
                ints_attr("nodes_featureids", &[1, 0, 0]),
                AttributeProto {
                    name: "nodes_modes".into(),
                    strings: vec![mode.into(), b"LEAF".to_vec(), b"LEAF".to_vec()],
                    ..Default::default()
                },
                floats_attr("nodes_values", &[0.5, 0.0, 0.0]),
                ints_attr("nodes_truenodeids", &[true_child, 0, 0]),
                ints_attr("nodes_falsenodeids", &[2, 0, 0]),
                ints_attr("leaf_treeids", &[0, 0]),
                ints_attr("leaf_nodeids", &[1, 2]),
                ints_attr("leaf_targetids", &[0, 0]),
                floats_attr("leaf_weights", &[10.0, 20.0]),
            ],
            ..Default::default()
        }
    }

    /// The same scores from the walk of `BRANCH_LEQ` forests (full groups of 8 rows) and the
    /// general one (the last rows, and any other mode): 20 rows, feature 1 alternating around
    /// the threshold, NaN going false.
    #[test]
    fn both_walks_send_rows_to_the_same_leaves() {
        let x: Vec<f32> = (0..20)
            .flat_map(|i| {
                [
                    0.0,
                    if i % 3 == 0 {
                        f32::NAN
                    } else if i % 2 == 0 {
                        0.25
                    } else {
                        0.75
                    },
                ]
            })
            .collect();
        let want: Vec<f32> = (0..20)
            .map(|i| {
                if i % 3 == 0 {
                    20.0
                } else if i % 2 == 0 {
                    10.0
                } else {
                    20.0
                }
            })
            .collect();
        for mode in ["BRANCH_LEQ", "BRANCH_LT"] {
            let forest = parse(&tree(mode, 1)).unwrap();
            assert!(forest.uniform.is_some());
            let mut out = vec![0f32; 20];
            forest.eval(&x, 2, &mut out);
            assert_eq!(out, want, "{mode}");
        }
        // `BRANCH_GT` with the children swapped (and missing values going true, to node 2) is
        // the same split, through the general walk.
        let mut gt = tree("BRANCH_GT", 2);
        gt.attribute[6] = ints_attr("nodes_falsenodeids", &[1, 0, 0]);
        gt.attribute.push(ints_attr("nodes_missing_value_tracks_true", &[1, 0, 0]));
        let gt = parse(&gt).unwrap();
        assert_eq!(gt.uniform, None);
        let mut out = vec![0f32; 20];
        gt.eval(&x, 2, &mut out);
        assert_eq!(out, want);
    }

    #[test]
    fn a_tree_with_a_cycle_is_refused() {
        let err = parse(&tree("BRANCH_LEQ", 0)).unwrap_err().to_string();
        assert!(err.contains("reached twice: not a tree"), "{err}");
    }
}
