//! Training data: a table's features and target, checked, split, and turned into the design
//! matrix the learners fit on (numeric columns imputed with the training mean, optionally
//! standardised; categorical columns one-hot encoded over the training categories).

use kairo_monitor::frame::{Column, Frame, Values, MISSING};

use crate::error::{MlError, Result};

/// Categories kept per column (by frequency); rarer ones encode as all zeros, like unseen ones.
pub const MAX_CATEGORIES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Classification,
    Regression,
}

/// How one feature column is encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Feature {
    Numeric { name: String, mean: f64, std: f64 },
    Categorical { name: String, categories: Vec<String> },
}

impl Feature {
    pub fn name(&self) -> &str {
        match self {
            Feature::Numeric { name, .. } | Feature::Categorical { name, .. } => name,
        }
    }

    /// Columns this feature takes in the design matrix.
    pub fn width(&self) -> usize {
        match self {
            Feature::Numeric { .. } => 1,
            Feature::Categorical { categories, .. } => categories.len(),
        }
    }
}

/// The target of a training set.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Class index per row, and the classes in label order.
    Classes {
        index: Vec<usize>,
        classes: Vec<String>,
        integer_labels: bool,
    },
    Values(Vec<f64>),
}

/// The features of a table as read (before encoding): one column per feature.
pub struct Table<'a> {
    pub columns: Vec<&'a Column>,
    pub rows: usize,
}

fn text(v: &Values, row: usize) -> Option<String> {
    match v {
        Values::Numeric(x) => (!x[row].is_nan()).then(|| kairo_monitor::profile::number_text(x[row])),
        Values::Categorical { codes, dictionary } => {
            (codes[row] != MISSING).then(|| dictionary[codes[row] as usize].clone())
        }
    }
}

/// Whether a label text is an integer (so labels are served as int64).
fn is_integer(s: &str) -> bool {
    s.parse::<i64>().is_ok()
}

/// Split a frame into features and target; decide the task when not given. `training`: the
/// target must have something to learn (not constant; fewer classes than rows). Test data
/// may hold a single class.
pub fn target<'a>(
    frame: &'a Frame,
    target: &str,
    task: Option<Task>,
    training: bool,
) -> Result<(Table<'a>, Target, Task)> {
    if frame.rows == 0 {
        return Err(MlError::NoRows);
    }
    let column = frame.column(target).ok_or_else(|| MlError::NoTarget {
        target: target.to_string(),
        columns: frame.columns.iter().map(|c| c.name.clone()).collect(),
    })?;
    let features: Vec<&Column> = frame.columns.iter().filter(|c| c.name != target).collect();
    if features.is_empty() {
        return Err(MlError::NoFeatures(target.to_string()));
    }
    for c in &features {
        check_numeric_looking(c)?;
    }
    let missing = (0..frame.rows).filter(|r| text(&column.values, *r).is_none()).count();
    if missing > 0 {
        return Err(MlError::TargetMissing { target: target.to_string(), missing });
    }
    let task = task.unwrap_or(match &column.values {
        Values::Categorical { .. } => Task::Classification,
        Values::Numeric(v) => {
            let mut distinct: Vec<u64> = v.iter().map(|x| x.to_bits()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            if v.iter().all(|x| x.fract() == 0.0) && distinct.len() <= 20 {
                Task::Classification
            } else {
                Task::Regression
            }
        }
    });
    let target_values = match task {
        Task::Regression => match &column.values {
            Values::Numeric(v) => Target::Values(v.clone()),
            Values::Categorical { .. } => return Err(MlError::TargetNotNumeric(target.to_string())),
        },
        Task::Classification => {
            let labels: Vec<String> = (0..frame.rows).map(|r| text(&column.values, r).unwrap_or_default()).collect();
            let classes = kairo_monitor::performance::classes(&labels, &[]);
            if training && classes.len() < 2 {
                return Err(MlError::ConstantTarget {
                    target: target.to_string(),
                    value: classes.first().cloned().unwrap_or_default(),
                });
            }
            if training && classes.len() >= frame.rows {
                return Err(MlError::TooManyClasses {
                    target: target.to_string(),
                    classes: classes.len(),
                    rows: frame.rows,
                });
            }
            let index = labels.iter().map(|l| classes.binary_search_by(|c| cmp_labels(c, l)).unwrap_or(0)).collect();
            let integer_labels = classes.iter().all(|c| is_integer(c));
            Target::Classes { index, classes, integer_labels }
        }
    };
    if let (Target::Values(v), true) = (&target_values, training) {
        if v.iter().all(|x| *x == v[0]) {
            return Err(MlError::ConstantTarget { target: target.to_string(), value: v[0].to_string() });
        }
    }
    Ok((Table { columns: features, rows: frame.rows }, target_values, task))
}

/// The label order `performance::classes` uses (numbers numerically).
fn cmp_labels(a: &String, b: &String) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

/// A column read as text whose values are nearly all numbers has a few that are not: name one.
fn check_numeric_looking(c: &Column) -> Result<()> {
    let Values::Categorical { codes, dictionary } = &c.values else { return Ok(()) };
    let numbers = dictionary.iter().filter(|d| d.trim().parse::<f64>().is_ok()).count();
    if dictionary.len() >= 5 && numbers * 10 >= dictionary.len() * 9 && numbers < dictionary.len() {
        let bad = dictionary.iter().position(|d| d.trim().parse::<f64>().is_err()).unwrap_or(0);
        let row = codes.iter().position(|c| *c == bad as u32).map(|r| r + 2).unwrap_or(0);
        return Err(MlError::NotANumber { column: c.name.clone(), row, value: dictionary[bad].clone() });
    }
    Ok(())
}

/// Fit the encoding of each feature on the training rows.
pub fn fit_features(table: &Table<'_>, rows: &[usize]) -> Vec<Feature> {
    table
        .columns
        .iter()
        .map(|c| match &c.values {
            Values::Numeric(v) => {
                let present: Vec<f64> = rows.iter().map(|r| v[*r]).filter(|x| x.is_finite()).collect();
                let n = present.len().max(1) as f64;
                let mean = present.iter().sum::<f64>() / n;
                let var = present.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                let std = if var > 0.0 { var.sqrt() } else { 1.0 };
                Feature::Numeric { name: c.name.clone(), mean, std }
            }
            Values::Categorical { codes, dictionary } => {
                let mut counts = vec![0u64; dictionary.len()];
                for r in rows {
                    if codes[*r] != MISSING {
                        counts[codes[*r] as usize] += 1;
                    }
                }
                let mut order: Vec<usize> = (0..dictionary.len()).filter(|i| counts[*i] > 0).collect();
                order.sort_by(|a, b| counts[*b].cmp(&counts[*a]).then(dictionary[*a].cmp(&dictionary[*b])));
                order.truncate(MAX_CATEGORIES);
                Feature::Categorical {
                    name: c.name.clone(),
                    categories: order.iter().map(|i| dictionary[*i].clone()).collect(),
                }
            }
        })
        .collect()
}

/// The design matrix of `rows`, row-major: numeric features imputed (and standardised when
/// `scale`), categorical ones one-hot.
pub fn design(table: &Table<'_>, features: &[Feature], rows: &[usize], scale: bool) -> (Vec<f64>, usize) {
    let width: usize = features.iter().map(Feature::width).sum();
    let mut x = vec![0.0; rows.len() * width];
    let mut offset = 0;
    for (c, f) in table.columns.iter().zip(features) {
        match (f, &c.values) {
            (Feature::Numeric { mean, std, .. }, Values::Numeric(v)) => {
                for (i, r) in rows.iter().enumerate() {
                    let value = if v[*r].is_nan() { *mean } else { v[*r] };
                    x[i * width + offset] = if scale { (value - mean) / std } else { value };
                }
            }
            (Feature::Categorical { categories, .. }, values) => {
                let index: std::collections::HashMap<&str, usize> =
                    categories.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
                for (i, r) in rows.iter().enumerate() {
                    if let Some(k) = text(values, *r).and_then(|t| index.get(t.as_str()).copied()) {
                        x[i * width + offset + k] = 1.0;
                    }
                }
            }
            (Feature::Numeric { .. }, Values::Categorical { .. }) => unreachable!("features are fit on this table"),
        }
        offset += f.width();
    }
    (x, width)
}

/// Row indices split into training and test rows by a seeded shuffle.
pub fn split(rows: usize, test_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&test_fraction) {
        return Err(MlError::TestFraction(test_fraction));
    }
    let mut order: Vec<usize> = (0..rows).collect();
    kairo_core::splitmix::SplitMix64::new(kairo_core::splitmix::stream(seed, 1)).shuffle(&mut order);
    let test = ((rows as f64) * test_fraction).round() as usize;
    if test_fraction > 0.0 && (test == 0 || rows - test < 2) {
        return Err(MlError::TooFewRowsToSplit { rows, fraction: test_fraction });
    }
    let (mut test_rows, mut train_rows) = (order[..test].to_vec(), order[test..].to_vec());
    train_rows.sort_unstable();
    test_rows.sort_unstable();
    Ok((train_rows, test_rows))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frame(csv: &str) -> Frame {
        Frame::parse_csv(csv.as_bytes(), "train.csv").unwrap()
    }

    fn refusal(csv: &str, target_column: &str) -> MlError {
        match target(&frame(csv), target_column, None, true) {
            Err(e) => e,
            Ok(_) => panic!("{csv} was accepted"),
        }
    }

    #[test]
    fn unusable_data_is_refused_by_name() {
        let e = refusal("a,b\n1,2\n3,4\n", "y");
        assert!(matches!(&e, MlError::NoTarget { target, columns } if target == "y" && columns == &["a", "b"]));
        assert_eq!(e.to_string(), "no target column 'y' (columns: a, b)");

        let e = refusal("a,y\n1,1\n2,1\n3,1\n", "y");
        assert!(matches!(&e, MlError::ConstantTarget { value, .. } if value == "1"), "{e:?}");
        assert_eq!(e.to_string(), "target 'y' is constant (1): there is nothing to learn");

        let e = refusal("y\n1\n2\n", "y");
        assert!(matches!(e, MlError::NoFeatures(ref t) if t == "y"), "{e:?}");

        let e = refusal("a,y\n1,\n2,1\n3,0\n", "y");
        assert!(matches!(e, MlError::TargetMissing { missing: 1, .. }), "{e:?}");

        let e = refusal("a,y\n1,a\n2,b\n3,c\n", "y");
        assert!(matches!(e, MlError::TooManyClasses { classes: 3, rows: 3, .. }), "{e:?}");

        // Nine numbers and one word: a numeric column with a typo.
        let csv: String = (1..=9).map(|i| format!("{i},{}\n", i % 2)).collect();
        let e = refusal(&format!("a,y\n{csv}x,1\n"), "y");
        assert!(matches!(&e, MlError::NotANumber { column, row: 11, value } if column == "a" && value == "x"), "{e:?}");
        assert_eq!(e.to_string(), "column 'a' is numeric but row 11 has `x`, which is not a number");
    }

    #[test]
    fn a_split_needs_a_fraction_below_one_and_rows_on_both_sides() {
        assert!(matches!(split(10, 1.0, 0), Err(MlError::TestFraction(f)) if f == 1.0));
        let e = split(2, 0.2, 0).unwrap_err();
        assert!(matches!(e, MlError::TooFewRowsToSplit { rows: 2, .. }), "{e:?}");
        assert_eq!(e.to_string(), "2 rows are too few to hold out 20% for testing");
        let (train, test) = split(10, 0.2, 0).unwrap();
        assert_eq!((train.len(), test.len()), (8, 2));
    }
}
