//! Columnar tables read from CSV for monitoring: numeric columns as `f64` (empty, `NA`,
//! `nan`, `null` → NaN), other columns as dictionary codes. One pass over the file; a column
//! keeps a dictionary while it has few distinct values, so a column that turns out not to be
//! numeric rarely needs a second pass.

use std::collections::HashMap;
use std::path::Path;

/// The code of a missing categorical value (4 bytes per row instead of an `Option`'s 8).
pub const MISSING: u32 = u32::MAX;

/// A column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Numeric(Vec<f64>),
    /// Codes into `dictionary`; [`MISSING`] marks a missing value (4 bytes a row, not 8).
    Categorical {
        codes: Vec<u32>,
        dictionary: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

impl Column {
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Numeric(v) => v.len(),
            Values::Categorical { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub columns: Vec<Column>,
    pub rows: usize,
}

impl Frame {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

fn is_missing(cell: &str) -> bool {
    matches!(cell, "" | "NA" | "N/A" | "nan" | "NaN" | "null" | "NULL" | "None")
}

fn number(cell: &str) -> Option<f64> {
    match cell {
        "inf" | "Inf" | "+inf" | "infinity" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Inf" | "-infinity" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => cell.parse().ok(),
    }
}

/// Distinct values a column keeps a dictionary for while it still looks numeric.
const DICTIONARY_LIMIT: usize = 1024;

/// Categorical codes being built: value → code, the values in code order, one code per row.
#[derive(Default)]
struct Dictionary {
    index: HashMap<String, u32>,
    names: Vec<String>,
    codes: Vec<u32>,
}

impl Dictionary {
    /// Add a cell; false (and nothing added) when it is new and the dictionary is full.
    fn push(&mut self, cell: &str, limit: usize) -> bool {
        if is_missing(cell) {
            self.codes.push(MISSING);
        } else if let Some(code) = self.index.get(cell) {
            self.codes.push(*code);
        } else if self.names.len() >= limit {
            return false;
        } else {
            let code = self.names.len() as u32;
            self.index.insert(cell.to_string(), code);
            self.names.push(cell.to_string());
            self.codes.push(code);
        }
        true
    }
}

struct Builder {
    numeric: Option<Vec<f64>>,
    dictionary: Option<Dictionary>,
}

impl Builder {
    fn push(&mut self, cell: &str) {
        let cell = cell.trim();
        let missing = is_missing(cell);
        if let Some(values) = self.numeric.as_mut() {
            match (missing, number(cell)) {
                (true, _) => values.push(f64::NAN),
                (false, Some(v)) => values.push(v),
                (false, None) => self.numeric = None,
            }
        }
        let limit = if self.numeric.is_some() { DICTIONARY_LIMIT } else { usize::MAX };
        if let Some(dictionary) = self.dictionary.as_mut() {
            if !dictionary.push(cell, limit) {
                self.dictionary = None;
            }
        }
    }
}

impl Frame {
    pub fn read_csv(path: &Path) -> Result<Frame, String> {
        let label = path.display().to_string();
        let open = || csv::Reader::from_path(path).map_err(|e| format!("{label}: {e}"));
        let mut reader = open()?;
        let names: Vec<String> =
            reader.headers().map_err(|e| format!("{label}: {e}"))?.iter().map(|h| h.trim().to_string()).collect();
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(format!("{label}: column '{dup}' appears twice"));
        }
        let mut builders: Vec<Builder> = names
            .iter()
            .map(|_| Builder { numeric: Some(Vec::new()), dictionary: Some(Dictionary::default()) })
            .collect();
        let mut record = csv::StringRecord::new();
        let mut rows = 0usize;
        while reader.read_record(&mut record).map_err(|e| format!("{label}: row {}: {e}", rows + 2))? {
            if record.len() != names.len() {
                return Err(format!(
                    "{label}: row {} has {} fields, the header has {}",
                    rows + 2,
                    record.len(),
                    names.len()
                ));
            }
            for (b, cell) in builders.iter_mut().zip(record.iter()) {
                b.push(cell);
            }
            rows += 1;
        }
        // Columns that are neither numeric nor small enough to have kept their dictionary.
        let redo: Vec<usize> = builders
            .iter()
            .enumerate()
            .filter(|(_, b)| b.numeric.is_none() && b.dictionary.is_none())
            .map(|(i, _)| i)
            .collect();
        if !redo.is_empty() {
            let mut dictionaries: Vec<Dictionary> = redo.iter().map(|_| Dictionary::default()).collect();
            let mut reader = open()?;
            while reader.read_record(&mut record).map_err(|e| format!("{label}: {e}"))? {
                for (d, &i) in dictionaries.iter_mut().zip(&redo) {
                    d.push(record.get(i).unwrap_or("").trim(), usize::MAX);
                }
            }
            for (d, &i) in dictionaries.into_iter().zip(&redo) {
                builders[i].dictionary = Some(d);
            }
        }
        let columns = names
            .into_iter()
            .zip(builders)
            .map(|(name, b)| {
                let values = match (b.numeric, b.dictionary) {
                    (Some(mut v), _) => {
                        v.shrink_to_fit();
                        Values::Numeric(v)
                    }
                    (None, Some(d)) => Values::Categorical { codes: d.codes, dictionary: d.names },
                    (None, None) => Values::Categorical { codes: Vec::new(), dictionary: Vec::new() },
                };
                Column { name, values }
            })
            .collect();
        Ok(Frame { columns, rows })
    }
}
