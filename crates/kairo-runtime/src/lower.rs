//! Lowering of ONNX-ML operators that tract does not implement into operators it does.
//!
//! scikit-learn models exported by skl2onnx use `Scaler`, `OneHotEncoder`, `Imputer`,
//! `TreeEnsembleRegressor` and `ZipMap` (ai.onnx.ml). Rather than write tract operators
//! against its unstable internal API, the ONNX graph itself is rewritten before tract parses
//! it, into operators tract registers (`Sub`, `Mul`, `Equal`, `CategoryMapper`, `Where`,
//! `TreeEnsembleClassifier`, ...). Each rewrite computes the ONNX-ML definition exactly; the
//! fixtures in `fixtures/models` check them against onnxruntime.

use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, type_proto, AttributeProto, GraphProto, ModelProto,
    NodeProto, TensorProto, TypeProto,
};

/// What a rewrite could not express; the message names the node and the attribute.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unlowerable(pub String);

/// Rewrite the graph in place; returns the op types that were lowered (for diagnostics).
pub fn lower(model: &mut ModelProto) -> Result<Vec<String>, Unlowerable> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(13);
    let Some(graph) = model.graph.as_mut() else {
        return Ok(Vec::new());
    };
    let mut lowered = Vec::new();
    let mut out = Vec::with_capacity(graph.node.len());
    let mut fresh = Fresh(0);
    let mut initializers = Vec::new();
    let mut tensor_outputs = Vec::new();
    for mut node in std::mem::take(&mut graph.node) {
        let mut ctx = Ctx { opset, fresh: &mut fresh, initializers: &mut initializers, nodes: &mut out };
        let done = match node.op_type.as_str() {
            "ZipMap" => {
                // Served as the [N, classes] probability tensor it wraps.
                ctx.nodes.push(make_node(
                    "Identity",
                    &node.name,
                    vec![node.input[0].clone()],
                    node.output.clone(),
                    vec![],
                ));
                tensor_outputs.push((node.output[0].clone(), DataType::Float));
                true
            }
            "Scaler" => {
                lower_scaler(&node, &mut ctx)?;
                true
            }
            "OneHotEncoder" => {
                lower_one_hot(&node, &mut ctx)?;
                true
            }
            "Imputer" => {
                lower_imputer(&node, &mut ctx)?;
                true
            }
            "TreeEnsembleClassifier" => {
                lower_tree_classifier(&mut node, &mut ctx)?;
                true
            }
            "TreeEnsembleRegressor" => {
                lower_tree_regressor(&mut node, &mut ctx)?;
                true
            }
            _ => false,
        };
        if done {
            lowered.push(node.op_type.clone());
        } else {
            out.push(node);
        }
    }
    graph.node = out;
    graph.initializer.extend(initializers);
    for (name, dtype) in tensor_outputs {
        retype_output(graph, &name, dtype);
    }
    lowered.sort();
    lowered.dedup();
    Ok(lowered)
}

struct Fresh(usize);

struct Ctx<'a> {
    opset: i64,
    fresh: &'a mut Fresh,
    initializers: &'a mut Vec<TensorProto>,
    nodes: &'a mut Vec<NodeProto>,
}

impl Ctx<'_> {
    fn name(&mut self, base: &str, what: &str) -> String {
        self.fresh.0 += 1;
        format!("kairo_lower_{}_{}_{}", base, what, self.fresh.0)
    }

    fn floats(&mut self, base: &str, what: &str, dims: Vec<i64>, values: Vec<f32>) -> String {
        let name = self.name(base, what);
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims,
            data_type: DataType::Float as i32,
            float_data: values,
            ..Default::default()
        });
        name
    }

    fn ints(&mut self, base: &str, what: &str, values: Vec<i64>) -> String {
        let name = self.name(base, what);
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data_type: DataType::Int64 as i32,
            int64_data: values,
            ..Default::default()
        });
        name
    }

    fn push(&mut self, op: &str, base: &str, inputs: Vec<String>, outputs: Vec<String>, attrs: Vec<AttributeProto>) {
        let name = self.name(base, op);
        self.nodes.push(make_node(op, &name, inputs, outputs, attrs));
    }

    /// `x` with a trailing axis of size 1 (`Unsqueeze(axes=[-1])` in either opset form).
    fn unsqueeze_last(&mut self, base: &str, x: String) -> String {
        let out = self.name(base, "unsqueezed");
        if self.opset >= 13 {
            let axes = self.ints(base, "axes", vec![-1]);
            self.push("Unsqueeze", base, vec![x, axes], vec![out.clone()], vec![]);
        } else {
            self.push("Unsqueeze", base, vec![x], vec![out.clone()], vec![attr_ints("axes", vec![-1])]);
        }
        out
    }
}

fn make_node(
    op: &str,
    name: &str,
    input: Vec<String>,
    output: Vec<String>,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto { op_type: op.to_string(), name: name.to_string(), input, output, attribute, ..Default::default() }
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto { name: name.to_string(), r#type: AttributeType::Ints as i32, ints, ..Default::default() }
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.to_string(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

fn attr_string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn attr_str(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn label(node: &NodeProto) -> String {
    if node.name.is_empty() {
        node.op_type.clone()
    } else {
        format!("{} '{}'", node.op_type, node.name)
    }
}

fn sanitize(node: &NodeProto) -> String {
    node.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// `Y = (X - offset) * scale`, per feature or broadcast.
fn lower_scaler(node: &NodeProto, ctx: &mut Ctx) -> Result<(), Unlowerable> {
    let base = sanitize(node);
    let offset = attr(node, "offset").map(|a| a.floats.clone()).unwrap_or_default();
    let scale = attr(node, "scale").map(|a| a.floats.clone()).unwrap_or_default();
    let offset = if offset.is_empty() { vec![0.0] } else { offset };
    let scale = if scale.is_empty() { vec![1.0] } else { scale };
    let off = ctx.floats(&base, "offset", vec![offset.len() as i64], offset);
    let sc = ctx.floats(&base, "scale", vec![scale.len() as i64], scale);
    let x = cast_to(ctx, &base, node.input[0].clone(), DataType::Float);
    let centred = ctx.name(&base, "centred");
    ctx.push("Sub", &base, vec![x, off], vec![centred.clone()], vec![]);
    ctx.push("Mul", &base, vec![centred, sc], vec![node.output[0].clone()], vec![]);
    Ok(())
}

fn cast_to(ctx: &mut Ctx, base: &str, x: String, to: DataType) -> String {
    let out = ctx.name(base, "cast");
    ctx.push("Cast", base, vec![x], vec![out.clone()], vec![attr_int("to", to as i64)]);
    out
}

/// One-hot over the declared categories: the input shape with a trailing axis of
/// `len(cats)`, float. Unknown categories give all zeros (the `zeros=1` default; `zeros=0`,
/// where onnxruntime fails the request, is also served as zeros).
fn lower_one_hot(node: &NodeProto, ctx: &mut Ctx) -> Result<(), Unlowerable> {
    let base = sanitize(node);
    let x = node.input[0].clone();
    let strings = attr(node, "cats_strings").map(|a| a.strings.clone()).unwrap_or_default();
    let ints = attr(node, "cats_int64s").map(|a| a.ints.clone()).unwrap_or_default();
    let (codes, cats) = if !strings.is_empty() {
        let n = strings.len() as i64;
        let codes = ctx.name(&base, "codes");
        let index: Vec<i64> = (0..n).collect();
        ctx.push(
            "CategoryMapper",
            &base,
            vec![x],
            vec![codes.clone()],
            vec![
                AttributeProto {
                    name: "cats_strings".into(),
                    r#type: AttributeType::Strings as i32,
                    strings,
                    ..Default::default()
                },
                attr_ints("cats_int64s", index),
                attr_int("default_int64", -1),
            ],
        );
        (codes, ctx.ints(&base, "cats", (0..n).collect()))
    } else if !ints.is_empty() {
        let x = cast_to(ctx, &base, x, DataType::Int64);
        (x, ctx.ints(&base, "cats", ints))
    } else {
        return Err(Unlowerable(format!("{}: neither cats_strings nor cats_int64s is set", label(node))));
    };
    let expanded = ctx.unsqueeze_last(&base, codes);
    let hits = ctx.name(&base, "hits");
    ctx.push("Equal", &base, vec![expanded, cats], vec![hits.clone()], vec![]);
    ctx.push("Cast", &base, vec![hits], vec![node.output[0].clone()], vec![attr_int("to", DataType::Float as i64)]);
    Ok(())
}

/// `Y = where(X is missing, imputed, X)`; missing is NaN or `replaced_value_float`.
fn lower_imputer(node: &NodeProto, ctx: &mut Ctx) -> Result<(), Unlowerable> {
    let base = sanitize(node);
    let imputed = attr(node, "imputed_value_floats").map(|a| a.floats.clone()).unwrap_or_default();
    if imputed.is_empty() {
        return Err(Unlowerable(format!("{}: only float imputation (imputed_value_floats) is supported", label(node))));
    }
    let replaced = attr(node, "replaced_value_float").map(|a| a.f).unwrap_or(0.0);
    let x = node.input[0].clone();
    let mask = ctx.name(&base, "missing");
    if replaced.is_nan() {
        ctx.push("IsNaN", &base, vec![x.clone()], vec![mask.clone()], vec![]);
    } else {
        let value = ctx.floats(&base, "replaced", vec![1], vec![replaced]);
        ctx.push("Equal", &base, vec![x.clone(), value], vec![mask.clone()], vec![]);
    }
    let fill = ctx.floats(&base, "imputed", vec![imputed.len() as i64], imputed);
    ctx.push("Where", &base, vec![mask, fill, x], vec![node.output[0].clone()], vec![]);
    Ok(())
}

/// The tree structure attributes shared by both ensembles, renamed for `KairoTreeScores`:
/// `nodes_*` as they are, the `class_*`/`target_*` leaves as `leaf_*`. They are moved out of
/// `node` (which the rewrite replaces), not copied: a large forest's attributes are hundreds of
/// MB.
fn tree_attributes(node: &mut NodeProto, leaf_prefix: &str) -> Result<Vec<AttributeProto>, Unlowerable> {
    if attr(node, "nodes_values_as_tensor").is_some()
        || attr(node, &format!("{leaf_prefix}_weights_as_tensor")).is_some()
    {
        return Err(Unlowerable(format!("{}: double-precision (…_as_tensor) trees are not supported", label(node))));
    }
    let mut out = Vec::new();
    let mut kept = Vec::new();
    for mut a in std::mem::take(&mut node.attribute) {
        if a.name.starts_with("nodes_") {
            out.push(a);
        } else if let Some(rest) = a.name.strip_prefix(&format!("{leaf_prefix}_")) {
            a.name = match rest {
                "ids" => "leaf_targetids".into(),
                other => format!("leaf_{other}"),
            };
            out.push(a);
        } else {
            kept.push(a);
        }
    }
    node.attribute = kept;
    Ok(out)
}

fn push_tree_scores(
    ctx: &mut Ctx,
    base: &str,
    x: String,
    mut attrs: Vec<AttributeProto>,
    outputs: i64,
    base_values: Vec<f32>,
    aggregate: &str,
) -> String {
    attrs.push(attr_int("n_outputs", outputs));
    attrs.push(attr_string("aggregate_function", aggregate));
    if !base_values.is_empty() {
        attrs.push(AttributeProto {
            name: "base_values".into(),
            r#type: AttributeType::Floats as i32,
            floats: base_values,
            ..Default::default()
        });
    }
    let scores = ctx.name(base, "scores");
    let name = ctx.name(base, crate::trees::OP);
    let mut n = make_node(crate::trees::OP, &name, vec![x], vec![scores.clone()], attrs);
    n.domain = "ai.kairo".into();
    ctx.nodes.push(n);
    scores
}

/// Regressors: the ensemble's per-target aggregate plus base values is the output.
fn lower_tree_regressor(node: &mut NodeProto, ctx: &mut Ctx) -> Result<(), Unlowerable> {
    let base = sanitize(node);
    let what = label(node);
    match attr_str(node, "post_transform").as_deref() {
        None | Some("NONE") => {}
        Some(other) => return Err(Unlowerable(format!("{what}: post_transform {other} is not supported"))),
    }
    let n_targets = attr(node, "n_targets").map(|a| a.i).unwrap_or(1).max(1);
    let aggregate = attr_str(node, "aggregate_function").unwrap_or_else(|| "SUM".into());
    let attrs = tree_attributes(node, "target")?;
    let base_values = attr(node, "base_values").map(|a| a.floats.clone()).unwrap_or_default();
    let scores = push_tree_scores(ctx, &base, node.input[0].clone(), attrs, n_targets, base_values, &aggregate);
    ctx.push("Identity", &base, vec![scores], vec![node.output[0].clone()], vec![]);
    Ok(())
}

/// Classifiers as onnxruntime computes them: per-class sums plus base values, then the
/// post-transform, label = the class with the largest probability. A two-class ensemble whose
/// leaves all score class 0 holds one score per row (the positive class's): `p` is that score
/// (or its sigmoid) and the probabilities are `[1 - p, p]`.
fn lower_tree_classifier(node: &mut NodeProto, ctx: &mut Ctx) -> Result<(), Unlowerable> {
    let base = sanitize(node);
    let what = label(node);
    let int_labels = attr(node, "classlabels_int64s").map(|a| a.ints.clone()).filter(|v| !v.is_empty());
    let str_labels = attr(node, "classlabels_strings").map(|a| a.strings.clone()).filter(|v| !v.is_empty());
    let n_classes = match (&int_labels, &str_labels) {
        (Some(v), None) => v.len(),
        (None, Some(v)) => v.len(),
        _ => {
            return Err(Unlowerable(format!(
                "{what}: exactly one of classlabels_int64s, classlabels_strings must be set"
            )))
        }
    };
    let binary = n_classes == 2 && attr(node, "class_ids").is_some_and(|a| a.ints.iter().all(|c| *c == 0));
    let transform = attr_str(node, "post_transform").unwrap_or_else(|| "NONE".into());
    if !matches!(transform.as_str(), "NONE" | "LOGISTIC" | "SOFTMAX") || (binary && transform == "SOFTMAX") {
        return Err(Unlowerable(format!("{what}: post_transform {transform} is not supported")));
    }
    let mut base_values = attr(node, "base_values").map(|a| a.floats.clone()).unwrap_or_default();
    if binary {
        base_values.truncate(1);
    }
    let attrs = tree_attributes(node, "class")?;
    let outputs = if binary { 1 } else { n_classes as i64 };
    let scores = push_tree_scores(ctx, &base, node.input[0].clone(), attrs, outputs, base_values, "SUM");
    let probabilities = node.output.get(1).cloned().unwrap_or_else(|| ctx.name(&base, "probabilities"));
    let transformed = |ctx: &mut Ctx, input: String, out: String| match transform.as_str() {
        "LOGISTIC" => ctx.push("Sigmoid", &base, vec![input], vec![out], vec![]),
        "SOFTMAX" => ctx.push("Softmax", &base, vec![input], vec![out], vec![attr_int("axis", 1)]),
        _ => ctx.push("Identity", &base, vec![input], vec![out], vec![]),
    };
    if binary {
        let p = ctx.name(&base, "p");
        transformed(ctx, scores, p.clone());
        let one = ctx.floats(&base, "one", vec![1, 1], vec![1.0]);
        let q = ctx.name(&base, "q");
        ctx.push("Sub", &base, vec![one, p.clone()], vec![q.clone()], vec![]);
        ctx.push("Concat", &base, vec![q, p], vec![probabilities.clone()], vec![attr_int("axis", 1)]);
    } else {
        transformed(ctx, scores, probabilities.clone());
    }
    let winner = ctx.name(&base, "winner");
    ctx.push(
        "ArgMax",
        &base,
        vec![probabilities],
        vec![winner.clone()],
        vec![attr_int("axis", 1), attr_int("keepdims", 0)],
    );
    let classes = ctx.name(&base, "classes");
    let mut labels_tensor = TensorProto { name: classes.clone(), dims: vec![n_classes as i64], ..Default::default() };
    match (int_labels, str_labels) {
        (Some(ints), _) => {
            labels_tensor.data_type = DataType::Int64 as i32;
            labels_tensor.int64_data = ints;
        }
        (_, Some(strings)) => {
            labels_tensor.data_type = DataType::String as i32;
            labels_tensor.string_data = strings;
        }
        _ => {}
    }
    ctx.initializers.push(labels_tensor);
    ctx.push("Gather", &base, vec![classes, winner], vec![node.output[0].clone()], vec![attr_int("axis", 0)]);
    Ok(())
}

fn retype_output(graph: &mut GraphProto, name: &str, dtype: DataType) {
    for out in graph.output.iter_mut().filter(|o| o.name == name) {
        out.r#type = Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: dtype as i32, shape: None })),
        });
    }
}
