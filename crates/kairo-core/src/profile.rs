//! A reference profile: what a model version's training data looked like, kept with the
//! version. Per column: its role and kind, its quantile bin edges (the outer bins open at ±∞)
//! with the reference's count per bin, or its categories with their counts; the null count and
//! summary statistics. The data only: `kairo_monitor::profile` computes profiles and
//! `kairo_monitor::sketch` counts production windows against the same bins. The serde
//! attributes are the stored shape (`model_version_details.profile`), which `kairo-store`
//! alone reads and writes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Numeric,
    Categorical,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Numeric => "numeric",
            Kind::Categorical => "categorical",
        }
    }
}

/// What a column is to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Feature,
    Target,
    /// A model output (the predicted label, value or positive-class score).
    Prediction,
}

/// Where a column's value sits in a logged prediction row: the named tensor of the inputs or
/// outputs, and the element within the row when the tensor is wider than one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `inputs` or `outputs`.
    pub side: String,
    pub tensor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    pub role: Role,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Values present (numeric: finite).
    pub count: u64,
    pub nulls: u64,
    #[serde(default)]
    pub infinite: u64,
    // Numeric columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Cut points: bin `i` holds `edges[i-1] < x <= edges[i]`, the first and last bins are open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<f64>,
    /// Reference count per bin (`edges.len() + 1` of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bins: Vec<u64>,
    // Categorical columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category_counts: Vec<u64>,
    /// Reference values beyond the kept categories (the rarest ones).
    #[serde(default)]
    pub other: u64,
}

impl ColumnProfile {
    /// A column with nothing counted yet.
    pub fn empty(name: &str, role: Role, kind: Kind) -> ColumnProfile {
        ColumnProfile {
            name: name.to_string(),
            role,
            kind,
            source: None,
            count: 0,
            nulls: 0,
            infinite: 0,
            mean: None,
            std: None,
            min: None,
            max: None,
            edges: Vec::new(),
            bins: Vec::new(),
            categories: Vec::new(),
            category_counts: Vec::new(),
            other: 0,
        }
    }

    pub fn rows(&self) -> u64 {
        self.count + self.nulls + self.infinite
    }

    pub fn null_share(&self) -> f64 {
        match self.rows() {
            0 => 0.0,
            rows => self.nulls as f64 / rows as f64,
        }
    }

    /// The bin of a finite value.
    pub fn bin(&self, x: f64) -> usize {
        self.edges.partition_point(|e| *e < x)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
    /// Features a privacy policy keeps out of the prediction log (`drop`): not profiled, not
    /// monitored, but where they sit in a request is kept so serving can withhold them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<Withheld>,
    /// For a binary classifier: what estimating its performance before labels arrive needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimator: Option<Box<Estimator>>,
    /// For a tree ensemble without explanation data of its own (skl2onnx's): how many rows of
    /// this data reached each node of each tree, in the order of the runtime's tree explainer —
    /// what exact TreeSHAP contributions need.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tree_covers: Vec<Vec<f64>>,
}

/// Confidence-based performance estimation (CBPE) of a binary classifier, fitted on labelled
/// reference rows: the calibration of its positive-class probability, and the reference's
/// spread for the estimates' sampling errors (`kairo_monitor::cbpe` computes both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimator {
    /// Where the labelled rows came from (`holdout PATH`, or `training data`).
    pub reference: String,
    pub rows: u64,
    /// The positive class's label.
    pub positive: String,
    /// Isotonic calibration: raw probability knots and their calibrated values (linear
    /// between knots, clipped outside); empty when the probabilities needed no calibration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub knots: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibrated: Vec<f64>,
    /// Standard deviation of the reference's per-row correctness (accuracy's sampling error).
    pub accuracy_std: f64,
    /// Standard deviation of the reference's normalised positive ranks, and the positive share
    /// (AUC's sampling error).
    pub auc_std: f64,
    pub positive_share: f64,
    /// The realised metrics on the reference.
    pub accuracy: f64,
    pub auc: f64,
}

/// A feature withheld from the log, and its place in a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Withheld {
    pub name: String,
    pub source: Source,
}

impl Profile {
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }
}
