//! Kairo's built-in tabular training. Learners come from well-kept crates (`linfa-logistic`,
//! `linfa-linear`, `forust-ml` for gradient boosting), except the random forest (`forest.rs`
//! says why); Kairo writes the ONNX export, with standard operators (ai.onnx 17,
//! ai.onnx.ml 3), so the model runs in Kairo's runtime and in onnxruntime alike.
//!
//! The exported graph takes the raw columns (one `[N, 1]` input each: float for numeric
//! columns, string for categorical ones), imputes missing numbers with the training mean,
//! one-hot encodes categories (unseen ones become zeros), and for classifiers returns `label`
//! (`[N]`, int64 when every class is an integer, else string) and `probabilities`
//! (`[N, classes]`); for regressors `variable` (`[N, 1]`).

pub mod data;
pub mod error;
pub mod explain;
pub mod forest;
mod lbfgs;
pub mod onnx;

use std::collections::BTreeMap;
use std::time::Instant;

use kairo_monitor::frame::{Frame, Values, MISSING};
use kairo_runtime::{Data, Tensor};
use onnx::{Attr, Graph, Type};

use data::{Feature, Table, Target, Task};
pub use error::{MlError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Logistic,
    Linear,
    Gbdt,
    RandomForest,
}

impl Algo {
    pub fn parse(s: &str) -> Option<Algo> {
        Some(match s {
            "logistic" => Algo::Logistic,
            "linear" => Algo::Linear,
            "gbdt" => Algo::Gbdt,
            "random_forest" => Algo::RandomForest,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algo::Logistic => "logistic",
            Algo::Linear => "linear",
            Algo::Gbdt => "gbdt",
            Algo::RandomForest => "random_forest",
        }
    }

    /// Parameters and defaults.
    fn params(self) -> &'static [(&'static str, f64)] {
        match self {
            Algo::Logistic => &[("alpha", 1.0), ("max_iter", 200.0)],
            Algo::Linear => &[],
            Algo::Gbdt => &[
                ("n_estimators", 100.0),
                ("learning_rate", 0.1),
                ("max_depth", 6.0),
                ("max_leaves", 63.0),
                ("min_leaf_weight", 1.0),
                ("l2", 1.0),
                ("nbins", 255.0),
            ],
            // max_depth 0: grow until pure; max_features 0: √F per split.
            Algo::RandomForest => &[("n_estimators", 100.0), ("max_depth", 0.0), ("max_features", 0.0)],
        }
    }
}

/// What to train.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: String,
    pub task: Option<Task>,
    pub algo: Option<Algo>,
    pub params: Vec<(String, String)>,
    pub test_fraction: f64,
    pub seed: u64,
}

/// A trained, exported and evaluated model.
pub struct Trained {
    pub onnx: Vec<u8>,
    pub task: Task,
    pub algo: Algo,
    /// Test-set metrics, computed by running the exported model in Kairo's runtime.
    pub metrics: BTreeMap<&'static str, f64>,
    pub train_rows: usize,
    pub test_rows: usize,
    pub features: Vec<Feature>,
    pub classes: Vec<String>,
    pub fit_seconds: f64,
    pub notes: Vec<String>,
}

fn resolve_params(algo: Algo, task: Task, given: &[(String, String)]) -> Result<BTreeMap<&'static str, f64>> {
    let mut out: BTreeMap<&'static str, f64> = algo.params().iter().copied().collect();
    // forust's leaf minimum is a sum of hessians: one per row for squared loss, so 20 is
    // HistGradientBoosting's `min_samples_leaf=20` (−0.7% RMSE on diabetes over 20 splits vs
    // +3.2% at 1); for log loss a row weighs p(1−p) ≤ 0.25, and 1 stays best there
    // (docs/notes/gbdt-defaults.md).
    if matches!((algo, task), (Algo::Gbdt, Task::Regression)) {
        out.insert("min_leaf_weight", 20.0);
    }
    for (k, v) in given {
        let Some((name, _)) = algo.params().iter().find(|(n, _)| n == k) else {
            let known: Vec<&'static str> = algo.params().iter().map(|p| p.0).collect();
            return Err(MlError::UnknownParam { key: k.clone(), algo: algo.name(), known });
        };
        let x: f64 = v.parse().map_err(|_| MlError::ParamNotANumber { key: k.clone(), value: v.clone() })?;
        if !x.is_finite() || x < 0.0 {
            return Err(MlError::ParamNegative { key: k.clone(), value: v.clone() });
        }
        out.insert(name, x);
    }
    Ok(out)
}

/// Train on `frame` (test rows held out by `test_fraction`, or given as `test`).
pub fn train(frame: &Frame, test: Option<&Frame>, req: &Request) -> Result<Trained> {
    let (table, target, task) = data::target(frame, &req.target, req.task, true)?;
    let algo = req.algo.unwrap_or(match task {
        Task::Classification => Algo::Gbdt,
        Task::Regression => Algo::Gbdt,
    });
    match (algo, task) {
        (Algo::Logistic | Algo::RandomForest, Task::Regression) => {
            return Err(MlError::ClassifierForRegression { algo: algo.name() })
        }
        (Algo::Linear, Task::Classification) => return Err(MlError::RegressorForClassification),
        _ => {}
    }
    let params = resolve_params(algo, task, &req.params)?;
    let (train_rows, test_rows) = match test {
        Some(_) => ((0..frame.rows).collect(), Vec::new()),
        None => data::split(frame.rows, req.test_fraction, req.seed)?,
    };
    let mut notes = Vec::new();
    let features: Vec<Feature> = data::fit_features(&table, &train_rows);
    for f in features.iter().filter(|f| f.width() == 0) {
        notes.push(format!("column '{}' has no values in the training rows and is left out", f.name()));
    }
    let scale = matches!(algo, Algo::Logistic | Algo::Linear);
    let (x, width) = data::design(&table, &features, &train_rows, scale);
    let started = Instant::now();
    let mut graph = Graph::default();
    let input = preprocess(&mut graph, &table, &features, scale);
    let classes = match &target {
        Target::Classes { classes, .. } => classes.clone(),
        Target::Values(_) => Vec::new(),
    };
    let problem = Problem { input: &input, x: &x, width, params: &params, seed: req.seed };
    let scorer: Option<(explain::Scorer, usize, &str)>;
    match &target {
        Target::Classes { index, integer_labels, .. } => {
            let y: Vec<usize> = train_rows.iter().map(|r| index[*r]).collect();
            let present: std::collections::BTreeSet<usize> = y.iter().copied().collect();
            if present.len() < 2 {
                return Err(MlError::OneClass);
            }
            let (probabilities, s) = match algo {
                Algo::Logistic => fit_logistic(&mut graph, &problem, &y, classes.len())?,
                Algo::Gbdt => fit_gbdt_classifier(&mut graph, &problem, &y, classes.len())?,
                Algo::RandomForest => fit_forest(&mut graph, &problem, &y, classes.len())?,
                Algo::Linear => unreachable!("refused above"),
            };
            scorer = Some(s);
            label_head(&mut graph, &probabilities, &classes, *integer_labels);
        }
        Target::Values(v) => {
            let y: Vec<f64> = train_rows.iter().map(|r| v[*r]).collect();
            scorer = Some(match algo {
                Algo::Linear => fit_linear(&mut graph, &problem, &y)?,
                Algo::Gbdt => fit_gbdt_regressor(&mut graph, &problem, &y)?,
                _ => unreachable!("refused above"),
            });
        }
    }
    let fit_seconds = started.elapsed().as_secs_f64();
    let doc = format!("kairo train --algo {} --target {} (seed {})", algo.name(), req.target, req.seed);
    let explainer = scorer.map(|(scorer, targets, score)| {
        let mut e =
            explain::Explainer { features: explain::encodings(&features), targets, score: score.to_string(), scorer };
        // Trees carry how many training rows reached each node: exact TreeSHAP contributions.
        e.set_covers(&x, width);
        e
    });
    let metadata: Vec<(&str, String)> =
        explainer.iter().filter_map(|e| serde_json::to_string(e).ok()).map(|j| (explain::METADATA_KEY, j)).collect();
    let onnx = graph.encode(&doc, &metadata);

    // Evaluate the exported model itself.
    let metrics = match test {
        Some(test_frame) => {
            let (test_table, test_target, _) =
                data::target(test_frame, &req.target, Some(task), false).map_err(|e| MlError::TestData(Box::new(e)))?;
            check_same_columns(&table, &test_table)?;
            let rows: Vec<usize> = (0..test_frame.rows).collect();
            evaluate(&onnx, &test_table, &rows, &test_target_labels(&test_target), task)?
        }
        None if test_rows.is_empty() => BTreeMap::new(),
        None => evaluate(&onnx, &table, &test_rows, &target_labels(&target, &test_rows), task)?,
    };
    let test_count = match test {
        Some(t) => t.rows,
        None => test_rows.len(),
    };
    Ok(Trained {
        onnx,
        task,
        algo,
        metrics,
        train_rows: train_rows.len(),
        test_rows: test_count,
        features,
        classes,
        fit_seconds,
        notes,
    })
}

fn check_same_columns(train: &Table<'_>, test: &Table<'_>) -> Result<()> {
    for c in &train.columns {
        if !test.columns.iter().any(|t| t.name == c.name) {
            return Err(MlError::TestDataColumn(c.name.clone()));
        }
    }
    Ok(())
}

/// Ground truth as text (classes) or numbers (regression), for the rows evaluated.
enum Truth {
    Labels(Vec<String>),
    Values(Vec<f64>),
}

fn target_labels(t: &Target, rows: &[usize]) -> Truth {
    match t {
        Target::Classes { index, classes, .. } => {
            Truth::Labels(rows.iter().map(|r| classes[index[*r]].clone()).collect())
        }
        Target::Values(v) => Truth::Values(rows.iter().map(|r| v[*r]).collect()),
    }
}

fn test_target_labels(t: &Target) -> Truth {
    match t {
        Target::Classes { index, .. } => target_labels(t, &(0..index.len()).collect::<Vec<_>>()),
        Target::Values(v) => Truth::Values(v.clone()),
    }
}

/// A model's inputs for `rows` of a table: one `[n, 1]` tensor per input the model takes,
/// strings for string inputs (missing: empty), floats otherwise (missing: NaN).
fn inputs(
    model: &kairo_runtime::Model,
    table: &Table<'_>,
    rows: &[usize],
) -> std::collections::HashMap<String, Tensor> {
    let mut out = std::collections::HashMap::new();
    for spec in &model.signature().inputs {
        let Some(c) = table.columns.iter().find(|c| c.name == spec.name) else { continue };
        let text = spec.dtype == kairo_runtime::DType::Bytes;
        let data = match (&c.values, text) {
            (Values::Numeric(v), false) => Data::F32(rows.iter().map(|r| v[*r] as f32).collect()),
            (Values::Numeric(v), true) => Data::Bytes(
                rows.iter()
                    .map(|r| if v[*r].is_nan() { String::new() } else { kairo_monitor::profile::number_text(v[*r]) })
                    .collect(),
            ),
            (Values::Categorical { codes, dictionary }, true) => Data::Bytes(
                rows.iter()
                    .map(|r| if codes[*r] == MISSING { String::new() } else { dictionary[codes[*r] as usize].clone() })
                    .collect(),
            ),
            (Values::Categorical { codes, dictionary }, false) => Data::F32(
                rows.iter()
                    .map(|r| {
                        if codes[*r] == MISSING {
                            f32::NAN
                        } else {
                            dictionary[codes[*r] as usize].trim().parse().unwrap_or(f32::NAN)
                        }
                    })
                    .collect(),
            ),
        };
        if let Ok(t) = Tensor::new(vec![rows.len(), 1], data) {
            out.insert(spec.name.clone(), t);
        }
    }
    out
}

fn evaluate(
    onnx: &[u8],
    table: &Table<'_>,
    rows: &[usize],
    truth: &Truth,
    task: Task,
) -> Result<BTreeMap<&'static str, f64>> {
    use kairo_monitor::performance;
    let export =
        |what: &'static str| move |e: kairo_runtime::RuntimeError| MlError::Export { what, message: e.to_string() };
    let model = kairo_runtime::Model::load(onnx).map_err(export("the exported model does not load"))?;
    let outputs = model.infer(inputs(&model, table, rows)).map_err(export("evaluating the exported model"))?;
    Ok(match (task, truth) {
        (Task::Classification, Truth::Labels(truth)) => {
            let labels: Vec<String> = match &outputs[0].data {
                Data::I64(v) => v.iter().map(|x| x.to_string()).collect(),
                Data::Bytes(v) => v.clone(),
                other => {
                    return Err(MlError::Export {
                        what: "the exported model's label output has an unexpected type",
                        message: other.dtype().to_string(),
                    })
                }
            };
            let truth: Vec<String> = truth.iter().map(|t| performance::normalise_label(t)).collect();
            let scores: Option<Vec<f64>> = match &outputs[1].data {
                Data::F32(p) if outputs[1].shape.get(1) == Some(&2) => {
                    Some(p.chunks(2).map(|c| f64::from(c[1])).collect())
                }
                _ => None,
            };
            performance::classification(&truth, &labels, scores.as_deref())
        }
        (Task::Regression, Truth::Values(y)) => {
            let predicted: Vec<f64> = (0..outputs[0].data.len()).filter_map(|i| outputs[0].data.f64_at(i)).collect();
            performance::regression(y, &predicted)
        }
        _ => BTreeMap::new(),
    })
}

/// Raw columns → the design matrix `[N, F]` inside the graph. Consecutive numeric columns are
/// concatenated first and imputed and scaled together (one `Imputer` and one `Scaler` with a
/// value per column): a graph of a few operators rather than a pair per column, which made
/// single-row requests cost several times the arithmetic.
fn preprocess(graph: &mut Graph, table: &Table<'_>, features: &[Feature], scale: bool) -> String {
    let mut parts = Vec::new();
    let mut run: Vec<(&str, f64, f64)> = Vec::new();
    for f in features.iter().filter(|f| f.width() > 0) {
        match f {
            Feature::Numeric { name, mean, std } => {
                graph.input(name, Type::Float);
                run.push((name, *mean, *std));
            }
            Feature::Categorical { name, categories } => {
                numeric_run(graph, &mut run, scale, &mut parts);
                graph.input(name, Type::String);
                let hot = graph.node(
                    "OneHotEncoder",
                    "ai.onnx.ml",
                    &[name],
                    None,
                    vec![("cats_strings", Attr::Strs(categories.clone())), ("zeros", Attr::Int(1))],
                );
                let shape = graph.ints("shape", &[2], vec![-1, categories.len() as i64]);
                parts.push(graph.node("Reshape", "", &[&hot, &shape], None, vec![]));
            }
        }
    }
    numeric_run(graph, &mut run, scale, &mut parts);
    let _ = table;
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    graph.node("Concat", "", &refs, Some("features"), vec![("axis", Attr::Int(1))])
}

/// `probabilities` → `label` by ArgMax over the class list.
fn label_head(graph: &mut Graph, probabilities: &str, classes: &[String], integer_labels: bool) {
    let index =
        graph.node("ArgMax", "", &[probabilities], None, vec![("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))]);
    let list = if integer_labels {
        graph.ints("classes", &[classes.len() as i64], classes.iter().map(|c| c.parse().unwrap_or(0)).collect())
    } else {
        graph.strings("classes", classes)
    };
    graph.node("Gather", "", &[&list, &index], Some("label"), vec![("axis", Attr::Int(0))]);
    let dtype = if integer_labels { Type::Int64 } else { Type::String };
    graph.output("label", dtype, &[None]);
    graph.output("probabilities", Type::Float, &[None, Some(classes.len() as i64)]);
}

/// Impute (and scale) a run of consecutive numeric columns `[N, 1]` as one `[N, k]` block.
fn numeric_run(graph: &mut Graph, run: &mut Vec<(&str, f64, f64)>, scale: bool, parts: &mut Vec<String>) {
    if run.is_empty() {
        return;
    }
    let names: Vec<&str> = run.iter().map(|(n, _, _)| *n).collect();
    let block = if names.len() == 1 {
        names[0].to_string()
    } else {
        graph.node("Concat", "", &names, None, vec![("axis", Attr::Int(1))])
    };
    let means: Vec<f32> = run.iter().map(|(_, m, _)| *m as f32).collect();
    let mut x = graph.node(
        "Imputer",
        "ai.onnx.ml",
        &[&block],
        None,
        vec![("imputed_value_floats", Attr::Floats(means.clone())), ("replaced_value_float", Attr::Float(f32::NAN))],
    );
    if scale {
        let scales: Vec<f32> = run.iter().map(|(_, _, sd)| (1.0 / sd) as f32).collect();
        x = graph.node(
            "Scaler",
            "ai.onnx.ml",
            &[&x],
            None,
            vec![("offset", Attr::Floats(means)), ("scale", Attr::Floats(scales))],
        );
    }
    parts.push(x);
    run.clear();
}

/// Binary: `[1 − p, p]` from one probability column.
fn two_columns(graph: &mut Graph, p: &str, output: &str) -> String {
    let one = graph.floats("one", &[1], vec![1.0]);
    let q = graph.node("Sub", "", &[&one, p], None, vec![]);
    graph.node("Concat", "", &[&q, p], Some(output), vec![("axis", Attr::Int(1))])
}

/// A fitted head: the probabilities output, and the explanation scorer with its target count
/// and what its score is.
type Fitted = (String, (explain::Scorer, usize, &'static str));

/// What every learner fits on: the graph's design-matrix output, the training design matrix
/// (row-major), the parameters and the seed.
struct Problem<'a> {
    input: &'a str,
    x: &'a [f64],
    width: usize,
    params: &'a BTreeMap<&'static str, f64>,
    seed: u64,
}

fn fit_logistic(graph: &mut Graph, p: &Problem<'_>, y: &[usize], classes: usize) -> Result<Fitted> {
    let Problem { input, x, width, params, .. } = *p;
    use linfa::prelude::*;
    let alpha = params["alpha"];
    let iterations = params["max_iter"].max(1.0) as u64;
    if classes == 2 {
        // Our own L-BFGS: scikit-learn's objective and stopping rule (tolerance 1e-4 on the
        // averaged loss's gradient), one parallel pass per evaluation.
        let positive: Vec<bool> = y.iter().map(|&c| c == 1).collect();
        let fitted = lbfgs::fit(x, width, &positive, alpha, iterations as usize, 1e-4);
        let w: Vec<f32> = fitted.weights.iter().map(|v| *v as f32).collect();
        let (z, scorer) = linear_score(graph, input, width, w, fitted.intercept as f32, None);
        let p = graph.node("Sigmoid", "", &[&z], None, vec![]);
        Ok((two_columns(graph, &p, "probabilities"), (scorer, 1, "logit")))
    } else {
        let records = ndarray::Array2::from_shape_vec((y.len(), width), x.to_vec())
            .map_err(|e| MlError::Fit { learner: "design matrix", message: e.to_string() })?;
        // linfa minimises the summed loss; scikit-learn's tolerance 1e-4 applies to the mean
        // loss's gradient, so scale it by the rows (else large data never "converges" and runs
        // every iteration).
        let tolerance = 1e-4 * y.len() as f64;
        let targets = ndarray::Array1::from_iter(y.iter().copied());
        let fitted = linfa_logistic::MultiLogisticRegression::default()
            .alpha(alpha)
            .max_iterations(iterations)
            .gradient_tolerance(tolerance)
            .fit(&Dataset::new(records, targets))
            .map_err(|e| MlError::Fit { learner: "logistic regression", message: e.to_string() })?;
        // Columns of the fitted parameters follow `classes()`; place them in class order.
        let mut w = vec![0f32; width * classes];
        let mut b = vec![-1e30f32; classes];
        for (j, c) in fitted.classes().iter().enumerate() {
            for i in 0..width {
                w[i * classes + c] = fitted.params()[[i, j]] as f32;
            }
            b[*c] = fitted.intercept()[j] as f32;
        }
        let scorer = explain::Scorer::Linear {
            coef: w.iter().map(|v| f64::from(*v)).collect(),
            intercept: b.iter().map(|v| f64::from(*v)).collect(),
            scaled: true,
        };
        let wt = graph.floats("coef", &[width as i64, classes as i64], w);
        let bt = graph.floats("intercept", &[classes as i64], b);
        let z = graph.node("MatMul", "", &[input, &wt], None, vec![]);
        let z = graph.node("Add", "", &[&z, &bt], None, vec![]);
        let p = graph.node("Softmax", "", &[&z], Some("probabilities"), vec![("axis", Attr::Int(1))]);
        Ok((p, (scorer, classes, "logit")))
    }
}

/// `input · w + b` as `[N, 1]` (named `output` if given), and its explanation scorer.
fn linear_score(
    graph: &mut Graph,
    input: &str,
    width: usize,
    w: Vec<f32>,
    intercept: f32,
    output: Option<&str>,
) -> (String, explain::Scorer) {
    let scorer = explain::Scorer::Linear {
        coef: w.iter().map(|v| f64::from(*v)).collect(),
        intercept: vec![f64::from(intercept)],
        scaled: true,
    };
    let wt = graph.floats("coef", &[width as i64, 1], w);
    let b = graph.floats("intercept", &[1], vec![intercept]);
    let z = graph.node("MatMul", "", &[input, &wt], None, vec![]);
    (graph.node("Add", "", &[&z, &b], output, vec![]), scorer)
}

fn fit_linear(graph: &mut Graph, p: &Problem<'_>, y: &[f64]) -> Result<(explain::Scorer, usize, &'static str)> {
    let Problem { input, x, width, .. } = *p;
    use linfa::prelude::*;
    let records = ndarray::Array2::from_shape_vec((y.len(), width), x.to_vec())
        .map_err(|e| MlError::Fit { learner: "design matrix", message: e.to_string() })?;
    let fitted = linfa_linear::LinearRegression::new()
        .fit(&Dataset::new(records, ndarray::Array1::from(y.to_vec())))
        .map_err(|e| MlError::Fit { learner: "linear regression", message: e.to_string() })?;
    let w: Vec<f32> = fitted.params().iter().map(|v| *v as f32).collect();
    let (_, scorer) = linear_score(graph, input, width, w, fitted.intercept() as f32, Some("variable"));
    graph.output("variable", Type::Float, &[None, Some(1)]);
    Ok((scorer, 1, "value"))
}

/// Tree nodes in the flat form of ONNX `TreeEnsembleRegressor`.
#[derive(Default)]
struct Ensemble {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feature_ids: Vec<i64>,
    modes: Vec<String>,
    values: Vec<f32>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    missing_true: Vec<i64>,
    target_tree: Vec<i64>,
    target_node: Vec<i64>,
    target_ids: Vec<i64>,
    target_weights: Vec<f32>,
}

/// A split node: `x[feature] < threshold` goes left.
struct Split {
    feature: usize,
    threshold: f64,
    left: i64,
    right: i64,
    missing_left: bool,
}

impl Ensemble {
    fn branch(&mut self, tree: i64, node: i64, s: Split) {
        self.tree_ids.push(tree);
        self.node_ids.push(node);
        self.feature_ids.push(s.feature as i64);
        self.modes.push("BRANCH_LT".into());
        self.values.push(s.threshold as f32);
        self.true_ids.push(s.left);
        self.false_ids.push(s.right);
        self.missing_true.push(i64::from(s.missing_left));
    }

    fn leaf(&mut self, tree: i64, node: i64, weights: &[(i64, f32)]) {
        self.tree_ids.push(tree);
        self.node_ids.push(node);
        self.feature_ids.push(0);
        self.modes.push("LEAF".into());
        self.values.push(0.0);
        self.true_ids.push(0);
        self.false_ids.push(0);
        self.missing_true.push(0);
        for (target, w) in weights {
            self.target_tree.push(tree);
            self.target_node.push(node);
            self.target_ids.push(*target);
            self.target_weights.push(*w);
        }
    }

    /// `[N, targets]` scores: the sum of the trees' leaf weights plus `base`.
    fn wire(self, graph: &mut Graph, input: &str, targets: usize, base: Vec<f32>, output: Option<&str>) -> String {
        graph.node(
            "TreeEnsembleRegressor",
            "ai.onnx.ml",
            &[input],
            output,
            vec![
                ("aggregate_function", Attr::Str("SUM".into())),
                ("base_values", Attr::Floats(base)),
                ("n_targets", Attr::Int(targets as i64)),
                ("nodes_falsenodeids", Attr::Ints(self.false_ids)),
                ("nodes_featureids", Attr::Ints(self.feature_ids)),
                ("nodes_missing_value_tracks_true", Attr::Ints(self.missing_true)),
                ("nodes_modes", Attr::Strs(self.modes)),
                ("nodes_nodeids", Attr::Ints(self.node_ids)),
                ("nodes_treeids", Attr::Ints(self.tree_ids)),
                ("nodes_truenodeids", Attr::Ints(self.true_ids)),
                ("nodes_values", Attr::Floats(self.values)),
                ("post_transform", Attr::Str("NONE".into())),
                ("target_ids", Attr::Ints(self.target_ids)),
                ("target_nodeids", Attr::Ints(self.target_node)),
                ("target_treeids", Attr::Ints(self.target_tree)),
                ("target_weights", Attr::Floats(self.target_weights)),
            ],
        )
    }
}

/// A forust tree for explanations: every node's weight on target `target` of `targets`.
fn explain_forust_tree(tree: &forust_ml::tree::Tree, target: usize, targets: usize) -> Vec<explain::TreeNode> {
    let mut nodes = vec![explain::TreeNode { split: None, value: vec![0.0; targets], cover: None }; tree.nodes.len()];
    for n in &tree.nodes {
        let node = &mut nodes[n.num];
        node.value[target] = f64::from(n.weight_value);
        if !n.is_leaf {
            node.split = Some((n.split_feature, n.split_value as f32, n.left_child, n.right_child));
        }
    }
    nodes
}

/// Add one forust tree as tree `tree_id`, its leaves scoring `target`.
fn add_forust_tree(e: &mut Ensemble, tree_id: i64, tree: &forust_ml::tree::Tree, target: i64) {
    for n in &tree.nodes {
        if n.is_leaf {
            e.leaf(tree_id, n.num as i64, &[(target, n.weight_value)]);
        } else {
            let split = Split {
                feature: n.split_feature,
                threshold: n.split_value,
                left: n.left_child as i64,
                right: n.right_child as i64,
                missing_left: n.missing_node == n.left_child,
            };
            e.branch(tree_id, n.num as i64, split);
        }
    }
}

fn booster(
    params: &BTreeMap<&str, f64>,
    seed: u64,
    objective: forust_ml::objective::ObjectiveType,
) -> forust_ml::GradientBooster {
    forust_ml::GradientBooster::default()
        .set_objective_type(objective)
        .set_iterations(params["n_estimators"].max(1.0) as usize)
        .set_learning_rate(params["learning_rate"] as f32)
        .set_max_depth(params["max_depth"].max(1.0) as usize)
        .set_max_leaves(params["max_leaves"].max(2.0) as usize)
        .set_min_leaf_weight(params["min_leaf_weight"] as f32)
        .set_l2(params["l2"] as f32)
        .set_nbins(params["nbins"].clamp(2.0, 65535.0) as u16)
        .set_seed(seed)
        // forust builds histograms in parallel in a fixed order: the model stays bit-identical
        // (checked by the tests, which train twice).
        .set_parallel(true)
        .set_create_missing_branch(false)
}

/// The trees a booster predicts with (all of them, unless early stopping chose fewer).
fn prediction_trees(b: &forust_ml::GradientBooster) -> &[forust_ml::tree::Tree] {
    &b.trees[..b.prediction_iteration.unwrap_or(b.trees.len()).min(b.trees.len())]
}

/// Column-major copy for forust.
/// Values are rounded to f32 first: the exported model compares in f32, so every split
/// threshold (a value of the data) then means the same in training and in serving.
fn column_major(x: &[f64], rows: usize, width: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..width {
            out[c * rows + r] = f64::from(x[r * width + c] as f32);
        }
    }
    out
}

fn fit_gbdt_classifier(graph: &mut Graph, p: &Problem<'_>, y: &[usize], classes: usize) -> Result<Fitted> {
    let Problem { input, x, width, params, seed } = *p;
    let cm = column_major(x, y.len(), width);
    let matrix = forust_ml::Matrix::new(&cm, y.len(), width);
    let weights = vec![1.0; y.len()];
    // Binary: one booster for the larger class. More classes: one booster per class
    // (one-vs-rest), probabilities normalised to sum to 1.
    let targets: Vec<usize> = if classes == 2 { vec![1] } else { (0..classes).collect() };
    let mut e = Ensemble::default();
    let mut base = Vec::new();
    let mut tree_id = 0;
    let mut explained = Vec::new();
    for (t, class) in targets.iter().enumerate() {
        let yk: Vec<f64> = y.iter().map(|c| if c == class { 1.0 } else { 0.0 }).collect();
        let mut b = booster(params, seed, forust_ml::objective::ObjectiveType::LogLoss);
        b.fit(&matrix, &yk, &weights, None)
            .map_err(|e| MlError::Fit { learner: "gradient boosting", message: e.to_string() })?;
        base.push(b.base_score as f32);
        for tree in prediction_trees(&b) {
            add_forust_tree(&mut e, tree_id, tree, t as i64);
            explained.push(explain_forust_tree(tree, t, targets.len()));
            tree_id += 1;
        }
    }
    let scorer = explain::Scorer::Trees { trees: explained, base: base.iter().map(|v| f64::from(*v)).collect() };
    let scorer = (scorer, targets.len(), "logit");
    let scores = e.wire(graph, input, targets.len(), base, None);
    let p = graph.node("Sigmoid", "", &[&scores], None, vec![]);
    if classes == 2 {
        return Ok((two_columns(graph, &p, "probabilities"), scorer));
    }
    let axes = graph.ints("axes", &[1], vec![1]);
    let total = graph.node("ReduceSum", "", &[&p, &axes], None, vec![("keepdims", Attr::Int(1))]);
    Ok((graph.node("Div", "", &[&p, &total], Some("probabilities"), vec![]), scorer))
}

fn fit_gbdt_regressor(graph: &mut Graph, p: &Problem<'_>, y: &[f64]) -> Result<(explain::Scorer, usize, &'static str)> {
    let Problem { input, x, width, params, seed } = *p;
    let cm = column_major(x, y.len(), width);
    let matrix = forust_ml::Matrix::new(&cm, y.len(), width);
    let mut b = booster(params, seed, forust_ml::objective::ObjectiveType::SquaredLoss);
    b.fit(&matrix, y, &vec![1.0; y.len()], None)
        .map_err(|e| MlError::Fit { learner: "gradient boosting", message: e.to_string() })?;
    let mut e = Ensemble::default();
    let mut explained = Vec::new();
    for (i, tree) in prediction_trees(&b).iter().enumerate() {
        add_forust_tree(&mut e, i as i64, tree, 0);
        explained.push(explain_forust_tree(tree, 0, 1));
    }
    let base = f64::from(b.base_score as f32);
    e.wire(graph, input, 1, vec![base as f32], Some("variable"));
    graph.output("variable", Type::Float, &[None, Some(1)]);
    Ok((explain::Scorer::Trees { trees: explained, base: vec![base] }, 1, "value"))
}

fn fit_forest(graph: &mut Graph, p: &Problem<'_>, y: &[usize], classes: usize) -> Result<Fitted> {
    let Problem { input, x, width, params, seed } = *p;
    let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let p = forest::Params {
        trees: params["n_estimators"].max(1.0) as usize,
        max_depth: params["max_depth"] as usize,
        max_features: params["max_features"] as usize,
        min_samples_split: 2,
    };
    let trees = forest::fit(&x32, width, y, classes, &p, seed);
    let mut e = Ensemble::default();
    let share = 1.0 / trees.len() as f32;
    let explained: Vec<Vec<explain::TreeNode>> = trees
        .iter()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| match n {
                    forest::Node::Split { feature, threshold, left, right, value } => explain::TreeNode {
                        split: Some((*feature, *threshold, *left, *right)),
                        value: value.iter().map(|v| f64::from(v * share)).collect(),
                        cover: None,
                    },
                    forest::Node::Leaf(p) => explain::TreeNode {
                        split: None,
                        value: p.iter().map(|v| f64::from(v * share)).collect(),
                        cover: None,
                    },
                })
                .collect()
        })
        .collect();
    for (t, nodes) in trees.iter().enumerate() {
        for (id, node) in nodes.iter().enumerate() {
            match node {
                forest::Node::Split { feature, threshold, left, right, .. } => e.branch(
                    t as i64,
                    id as i64,
                    Split {
                        feature: *feature,
                        threshold: f64::from(*threshold),
                        left: *left as i64,
                        right: *right as i64,
                        missing_left: true,
                    },
                ),
                forest::Node::Leaf(p) => {
                    let weights: Vec<(i64, f32)> =
                        p.iter().enumerate().filter(|(_, v)| **v > 0.0).map(|(c, v)| (c as i64, v * share)).collect();
                    e.leaf(t as i64, id as i64, &weights)
                }
            }
        }
    }
    let scorer = explain::Scorer::Trees { trees: explained, base: vec![0.0; classes] };
    Ok((e.wire(graph, input, classes, vec![0.0; classes], Some("probabilities")), (scorer, classes, "probability")))
}

/// The frame without the columns that are not features (`kairo train --drop`, e.g. the
/// `request_id,row,time,version` of a prediction-log export). A name it lacks is fine, so one
/// list serves files with and without them; dropping the target is refused.
pub fn drop_columns(mut frame: Frame, drop: &[String], target: &str) -> Result<Frame> {
    if let Some(t) = drop.iter().find(|d| d.trim() == target) {
        return Err(MlError::DropTarget(t.clone()));
    }
    frame.columns.retain(|c| !drop.iter().any(|d| d.trim() == c.name));
    Ok(frame)
}

/// Read a training or test file (CSV, or Parquet by extension).
pub fn read(path: &std::path::Path) -> Result<Frame> {
    if std::fs::metadata(path).map(|m| m.len() == 0).unwrap_or(false) {
        return Err(MlError::EmptyFile(path.to_path_buf()));
    }
    Ok(Frame::read(path)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dropped_columns_go_absent_ones_are_fine_the_target_stays() {
        let frame = Frame::parse_csv(b"request_id,x,y\na,1,0\nb,2,1\n", "t").unwrap();
        let drop = vec!["request_id".to_string(), "time".to_string()];
        let kept = drop_columns(frame.clone(), &drop, "y").unwrap();
        assert_eq!(kept.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["x", "y"]);
        let e = drop_columns(frame, &["y".to_string()], "y").unwrap_err();
        assert_eq!(e.to_string(), "--drop y: that is the --target column");
    }

    #[test]
    fn parameters_are_known_numbers() {
        let given = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let e = resolve_params(Algo::Linear, Task::Regression, &given("alpha", "1")).unwrap_err();
        assert!(matches!(&e, MlError::UnknownParam { algo: "linear", known, .. } if known.is_empty()), "{e:?}");
        assert_eq!(e.to_string(), "--param alpha: `linear` takes no parameters");
        let e = resolve_params(Algo::Logistic, Task::Classification, &given("alpha", "lots")).unwrap_err();
        assert!(matches!(e, MlError::ParamNotANumber { .. }), "{e:?}");
        assert_eq!(e.to_string(), "--param alpha=lots: `lots` is not a number");
        let e = resolve_params(Algo::Logistic, Task::Classification, &given("alpha", "-1")).unwrap_err();
        assert!(matches!(e, MlError::ParamNegative { .. }), "{e:?}");
        assert_eq!(resolve_params(Algo::Logistic, Task::Classification, &given("alpha", "0.5")).unwrap()["alpha"], 0.5);
        // gbdt's leaf minimum follows the task (rows for regression), unless given.
        assert_eq!(resolve_params(Algo::Gbdt, Task::Regression, &[]).unwrap()["min_leaf_weight"], 20.0);
        assert_eq!(resolve_params(Algo::Gbdt, Task::Classification, &[]).unwrap()["min_leaf_weight"], 1.0);
        assert_eq!(
            resolve_params(Algo::Gbdt, Task::Regression, &given("min_leaf_weight", "3")).unwrap()["min_leaf_weight"],
            3.0
        );
    }

    #[test]
    fn a_learner_for_the_other_task_is_refused() {
        let frame = Frame::parse_csv(b"a,y\n1,0.5\n2,1.5\n3,2.25\n4,3.75\n5,4.5\n", "train.csv").unwrap();
        let req = Request {
            target: "y".into(),
            task: None,
            algo: Some(Algo::Logistic),
            params: Vec::new(),
            test_fraction: 0.0,
            seed: 0,
        };
        let Err(e) = train(&frame, None, &req) else { panic!("logistic regression trained on a numeric target") };
        assert!(matches!(e, MlError::ClassifierForRegression { algo: "logistic" }), "{e:?}");
        assert!(e.to_string().contains("use linear or gbdt, or --task classification"), "{e}");
    }
}
