//! Explanation data for the models `kairo train` writes: the types and the contributions live
//! next to the runtime ([`kairo_runtime::explain`]), so a server computes them without linking
//! the training libraries; this module builds the feature encodings from the training data.

pub use kairo_runtime::explain::*;

use crate::data::Feature;

pub fn encodings(features: &[Feature]) -> Vec<Encoding> {
    features
        .iter()
        .filter(|f| f.width() > 0)
        .map(|f| match f {
            Feature::Numeric { name, mean, std } => Encoding {
                name: name.clone(),
                mean: Some(*mean),
                std: Some(*std),
                categories: Vec::new(),
                input: None,
                index: None,
            },
            Feature::Categorical { name, categories } => Encoding {
                name: name.clone(),
                mean: None,
                std: None,
                categories: categories.clone(),
                input: None,
                index: None,
            },
        })
        .collect()
}
