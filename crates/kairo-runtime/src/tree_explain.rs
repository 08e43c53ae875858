//! The explainer of an ONNX-ML tree ensemble (what skl2onnx writes for scikit-learn's trees,
//! forests and gradient boosting): its trees read from `TreeEnsembleRegressor` /
//! `TreeEnsembleClassifier`, each design column one element of the model's single float input
//! `[N, F]`. ONNX stores no covers, so the explainer has none until the registry routes the
//! version's training data through it ([`Explainer::set_covers_from`]); with covers, exact
//! TreeSHAP (the `shap` package's numbers for the model as stored: skl2onnx keeps weights in
//! float32).
//!
//! What is explained: a regressor's value; a binary classifier's positive-class score as the
//! graph computes it before its post-transform — the margin (logit) for gradient boosting
//! (`LOGISTIC`), both class probabilities for a forest (`NONE`); a multi-class ensemble's
//! per-class scores. Ensembles other than these (equality splits, `MIN`/`MAX` aggregation,
//! several ensembles in one graph) have no explainer.

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, NodeProto};

use crate::explain::{Encoding, Explainer, Scorer, TreeNode};
use crate::trees::{floats, int, ints, string, strings, Nodes};

/// The explainer of the graph's tree ensemble, without covers; `None` when the graph is not a
/// single ensemble over its single float input.
pub fn from_graph(graph: &GraphProto) -> Option<Explainer> {
    let ensembles: Vec<&NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "TreeEnsembleRegressor" || n.op_type == "TreeEnsembleClassifier")
        .collect();
    let [node] = ensembles.as_slice() else { return None };
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<_> = graph.input.iter().filter(|i| !initializers.contains(&i.name.as_str())).collect();
    let [input] = inputs.as_slice() else { return None };
    // The ensemble reads the input, directly or through a Cast.
    let source = node.input.first()?;
    let direct = source == &input.name
        || graph
            .node
            .iter()
            .any(|n| n.op_type == "Cast" && n.output.first() == Some(source) && n.input.first() == Some(&input.name));
    if !direct {
        return None;
    }
    let width = input_width(input)?;
    let (trees, targets, base, score) =
        if node.op_type == "TreeEnsembleRegressor" { regressor(node)? } else { classifier(node)? };
    let features = (0..width)
        .map(|i| Encoding {
            name: format!("{}[{i}]", input.name),
            mean: None,
            std: None,
            categories: Vec::new(),
            input: Some(input.name.clone()),
            index: Some(i),
        })
        .collect();
    let e = Explainer { features, targets, score: score.to_string(), scorer: Scorer::Trees { trees, base } };
    // The same checks a model's own explanation data gets.
    Explainer::from_metadata(&serde_json::to_string(&e).ok()?).ok()
}

fn input_width(input: &tract_onnx::pb::ValueInfoProto) -> Option<usize> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto;
    let Some(type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return None;
    };
    let dims = &t.shape.as_ref()?.dim;
    match dims.as_slice() {
        [_, width] => match width.value {
            Some(Value::DimValue(w)) if w > 0 => usize::try_from(w).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The trees of an ensemble with each leaf's weight per target: `(tree, node) → [(target, weight)]`.
type Leaves = HashMap<(i64, i64), Vec<(usize, f64)>>;

/// The ensemble's trees in Kairo's form (children after their parent, `x < threshold` goes
/// left), leaves valued by `leaf`.
fn trees(node: &NodeProto, targets: usize, leaves: &Leaves, scale: f64) -> Option<Vec<Vec<TreeNode>>> {
    let Nodes { tree_ids, node_ids, features, modes, values, trues, falses } = Nodes::read(node).ok()?;
    let n = tree_ids.len();
    let index: HashMap<(i64, i64), usize> = (0..n).map(|i| ((tree_ids[i], node_ids[i]), i)).collect();
    let mut order: Vec<i64> = tree_ids.to_vec();
    order.sort_unstable();
    order.dedup();
    let mut out = Vec::with_capacity(order.len());
    for t in order {
        let root = index.get(&(t, 0)).copied().or_else(|| tree_ids.iter().position(|x| *x == t))?;
        // Depth-first from the root, so children come after their parent.
        let mut nodes: Vec<TreeNode> = Vec::new();
        let mut stack = vec![(root, None::<(usize, bool)>)];
        while let Some((i, parent)) = stack.pop() {
            if nodes.len() > n {
                return None; // a cycle
            }
            let at = nodes.len();
            if let Some((p, left)) = parent {
                if let Some((_, _, l, r)) = nodes[p].split.as_mut() {
                    if left {
                        *l = at;
                    } else {
                        *r = at;
                    }
                }
            }
            if modes[i] == b"LEAF" {
                let mut value = vec![0.0; targets];
                for (k, w) in leaves.get(&(t, node_ids[i])).map(Vec::as_slice).unwrap_or_default() {
                    *value.get_mut(*k)? += w * scale;
                }
                nodes.push(TreeNode { split: None, value, cover: None });
                continue;
            }
            let t32 = values[i];
            // Kairo's rule is `x < threshold` → left; `x <= t` is `x < next float after t`.
            let (threshold, true_left) = match modes[i].as_slice() {
                b"BRANCH_LT" => (t32, true),
                b"BRANCH_LEQ" => (t32.next_up(), true),
                b"BRANCH_GTE" => (t32, false),
                b"BRANCH_GT" => (t32.next_up(), false),
                _ => return None,
            };
            let feature = usize::try_from(features[i]).ok()?;
            let on_true = *index.get(&(t, trues[i]))?;
            let on_false = *index.get(&(t, falses[i]))?;
            let (left, right) = if true_left { (on_true, on_false) } else { (on_false, on_true) };
            nodes.push(TreeNode { split: Some((feature, threshold, 0, 0)), value: vec![0.0; targets], cover: None });
            // Right pushed first so the left subtree is laid out first.
            stack.push((right, Some((at, false))));
            stack.push((left, Some((at, true))));
        }
        out.push(nodes);
    }
    Some(out)
}

fn leaves(node: &NodeProto, prefix: &str) -> Option<Leaves> {
    let tree_ids = ints(node, &format!("{prefix}_treeids"));
    let node_ids = ints(node, &format!("{prefix}_nodeids"));
    let ids = ints(node, &format!("{prefix}_ids"));
    let weights = floats(node, &format!("{prefix}_weights"));
    if node_ids.len() != tree_ids.len() || ids.len() != tree_ids.len() || weights.len() != tree_ids.len() {
        return None;
    }
    let mut out: Leaves = HashMap::new();
    for i in 0..tree_ids.len() {
        out.entry((tree_ids[i], node_ids[i])).or_default().push((usize::try_from(ids[i]).ok()?, f64::from(weights[i])));
    }
    Some(out)
}

fn tree_count(node: &NodeProto) -> f64 {
    let mut ids = ints(node, "nodes_treeids").to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids.len().max(1) as f64
}

type Parts = (Vec<Vec<TreeNode>>, usize, Vec<f64>, &'static str);

fn regressor(node: &NodeProto) -> Option<Parts> {
    if string(node, "post_transform").is_some_and(|p| p != "NONE") {
        return None;
    }
    let targets = usize::try_from(int(node, "n_targets").unwrap_or(1)).ok()?.max(1);
    let scale = match string(node, "aggregate_function").as_deref().unwrap_or("SUM") {
        "SUM" => 1.0,
        "AVERAGE" => 1.0 / tree_count(node),
        _ => return None,
    };
    let trees = trees(node, targets, &leaves(node, "target")?, scale)?;
    let mut base: Vec<f64> = floats(node, "base_values").iter().map(|b| f64::from(*b)).collect();
    base.resize(targets, 0.0);
    Some((trees, targets, base, "value"))
}

fn classifier(node: &NodeProto) -> Option<Parts> {
    let classes = ints(node, "classlabels_int64s").len().max(strings(node, "classlabels_strings").len());
    let leaves = leaves(node, "class")?;
    let post = string(node, "post_transform").unwrap_or_else(|| "NONE".into());
    let base_values: Vec<f64> = floats(node, "base_values").iter().map(|b| f64::from(*b)).collect();
    let one_score = classes == 2 && leaves.values().flatten().all(|(k, _)| *k == 0);
    if one_score {
        // skl2onnx's binary form: one score, the positive class's.
        let b = base_values.first().copied().unwrap_or(0.0);
        return match post.as_str() {
            "LOGISTIC" => Some((trees(node, 1, &leaves, 1.0)?, 1, vec![b], "logit")),
            "NONE" => {
                // Probabilities [1 − s, s]: class 0 gets each weight negated.
                let both: Leaves = leaves
                    .iter()
                    .map(|(at, ws)| (*at, ws.iter().flat_map(|(_, w)| [(0, -w), (1, *w)]).collect()))
                    .collect();
                Some((trees(node, 2, &both, 1.0)?, 2, vec![1.0 - b, b], "probability"))
            }
            _ => None,
        };
    }
    let score = match post.as_str() {
        "NONE" => "probability",
        "LOGISTIC" => "logit",
        "SOFTMAX" => "softmax input",
        _ => return None,
    };
    let mut base = base_values;
    base.resize(classes, 0.0);
    Some((trees(node, classes, &leaves, 1.0)?, classes, base, score))
}
