//! Random forest classification: CART trees on Gini impurity, each grown on a bootstrap
//! sample, with √F candidate features drawn at every split (scikit-learn's
//! `RandomForestClassifier` defaults); a tree's leaf holds its class distribution and the
//! forest averages them.
//!
//! Kairo's own code, not a crate's: `linfa-ensemble` over `linfa-trees` was tried and gave
//! different trees from run to run (class counts kept in `HashMap`s, so ties and float sums
//! follow the process's random hash order) and trained 10–100× slower than scikit-learn;
//! `smartcore` keeps its tree nodes private, so they cannot be exported. Trees are built in
//! parallel, each from its own seeded generator, so the forest is the same for a seed.

use rayon::prelude::*;

/// A node of a grown tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `x[feature] < threshold` goes to `left`; `value` is the class distribution here.
    Split { feature: usize, threshold: f32, left: usize, right: usize, value: Vec<f32> },
    /// Class probabilities.
    Leaf(Vec<f32>),
}

#[derive(Debug, Clone)]
pub struct Params {
    pub trees: usize,
    /// 0: grow until pure.
    pub max_depth: usize,
    /// Candidate features per split; 0: √F.
    pub max_features: usize,
    pub min_samples_split: usize,
}

use kairo_core::splitmix::{stream, SplitMix64 as Rng};

struct Grower<'a> {
    x: &'a [f32],
    width: usize,
    y: &'a [usize],
    classes: usize,
    params: &'a Params,
    mtry: usize,
    nodes: Vec<Node>,
    rng: Rng,
}

fn gini(counts: &[f64], total: f64) -> f64 {
    if total <= 0.0 {
        return 0.0;
    }
    1.0 - counts.iter().map(|c| (c / total) * (c / total)).sum::<f64>()
}

impl Grower<'_> {
    /// Grow the subtree of `rows` (with bootstrap multiplicities `weight`); returns its index.
    fn grow(&mut self, rows: &mut [(usize, f64)], depth: usize) -> usize {
        let mut counts = vec![0.0; self.classes];
        for (r, w) in rows.iter() {
            counts[self.y[*r]] += w;
        }
        let total: f64 = counts.iter().sum();
        let pure = counts.iter().filter(|c| **c > 0.0).count() <= 1;
        let deep = self.params.max_depth > 0 && depth >= self.params.max_depth;
        if pure || deep || rows.len() < self.params.min_samples_split.max(2) {
            return self.leaf(&counts, total);
        }
        let Some((feature, threshold)) = self.best_split(rows, &counts, total) else {
            return self.leaf(&counts, total);
        };
        // Partition in place: left rows first.
        let mut left_len = 0;
        for i in 0..rows.len() {
            if self.x[rows[i].0 * self.width + feature] < threshold {
                rows.swap(i, left_len);
                left_len += 1;
            }
        }
        let at = self.nodes.len();
        self.nodes.push(Node::Leaf(Vec::new()));
        let (l, r) = rows.split_at_mut(left_len);
        let left = self.grow(l, depth + 1);
        let right = self.grow(r, depth + 1);
        let value = counts.iter().map(|c| (c / total) as f32).collect();
        self.nodes[at] = Node::Split { feature, threshold, left, right, value };
        at
    }

    fn leaf(&mut self, counts: &[f64], total: f64) -> usize {
        self.nodes.push(Node::Leaf(counts.iter().map(|c| (c / total) as f32).collect()));
        self.nodes.len() - 1
    }

    /// The split with the largest Gini decrease among `mtry` random features (more if none of
    /// them can split), as `(feature, threshold)`.
    fn best_split(&mut self, rows: &[(usize, f64)], counts: &[f64], total: f64) -> Option<(usize, f32)> {
        let mut order: Vec<usize> = (0..self.width).collect();
        let parent = gini(counts, total);
        let mut best: Option<(f64, usize, f32)> = None;
        let mut sorted: Vec<(f32, usize, f64)> = Vec::with_capacity(rows.len());
        let mut left = vec![0.0; self.classes];
        for k in 0..self.width {
            // Draw the next candidate (a partial Fisher–Yates shuffle).
            let pick = k + self.rng.below(self.width - k);
            order.swap(k, pick);
            if k >= self.mtry && best.is_some() {
                break;
            }
            let f = order[k];
            sorted.clear();
            sorted.extend(rows.iter().map(|(r, w)| (self.x[r * self.width + f], self.y[*r], *w)));
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            if sorted[0].0 == sorted[sorted.len() - 1].0 {
                continue;
            }
            left.iter_mut().for_each(|c| *c = 0.0);
            let mut left_total = 0.0;
            for i in 0..sorted.len() - 1 {
                let (value, class, w) = sorted[i];
                left[class] += w;
                left_total += w;
                let next = sorted[i + 1].0;
                if next == value {
                    continue;
                }
                let right_total = total - left_total;
                let right_gini = {
                    let mut s = 0.0;
                    for c in 0..self.classes {
                        let rc = counts[c] - left[c];
                        s += (rc / right_total) * (rc / right_total);
                    }
                    1.0 - s
                };
                let decrease = parent - (left_total * gini(&left, left_total) + right_total * right_gini) / total;
                if best.is_none_or(|b| decrease > b.0 + 1e-12) {
                    // Halfway between the two values, as a float the model compares in f32.
                    let mut t = value + (next - value) / 2.0;
                    if t <= value {
                        t = next;
                    }
                    best = Some((decrease, f, t));
                }
            }
        }
        best.filter(|b| b.0 > 0.0).map(|b| (b.1, b.2))
    }
}

/// Grow a forest on `x` (row-major `[rows, width]`, already in f32 precision) and class
/// indices `y`.
pub fn fit(x: &[f32], width: usize, y: &[usize], classes: usize, params: &Params, seed: u64) -> Vec<Vec<Node>> {
    let mtry =
        if params.max_features > 0 { params.max_features.min(width) } else { (width as f64).sqrt().ceil() as usize };
    (0..params.trees)
        .into_par_iter()
        .map(|t| {
            let mut rng = Rng::new(stream(seed, t as u64));
            // Bootstrap: n draws with replacement, kept as multiplicities.
            let mut weight = vec![0.0; y.len()];
            for _ in 0..y.len() {
                weight[rng.below(y.len())] += 1.0;
            }
            let mut rows: Vec<(usize, f64)> =
                (0..y.len()).filter(|r| weight[*r] > 0.0).map(|r| (r, weight[r])).collect();
            let mut g = Grower {
                x,
                width,
                y,
                classes,
                params,
                mtry: mtry.max(1),
                nodes: Vec::new(),
                rng: Rng::new(rng.next_u64()),
            };
            g.grow(&mut rows, 0);
            g.nodes
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predict(tree: &[Node], row: &[f32]) -> Vec<f32> {
        let mut i = 0;
        loop {
            match &tree[i] {
                Node::Split { feature, threshold, left, right, .. } => {
                    i = if row[*feature] < *threshold { *left } else { *right };
                }
                Node::Leaf(p) => return p.clone(),
            }
        }
    }

    #[test]
    fn learns_a_threshold_and_is_deterministic() {
        let x: Vec<f32> = (0..200).map(|i| i as f32).flat_map(|v| [v, (v * 7.0) % 13.0]).collect();
        let y: Vec<usize> = (0..200).map(|i| usize::from(i >= 120)).collect();
        let params = Params { trees: 8, max_depth: 0, max_features: 2, min_samples_split: 2 };
        let a = fit(&x, 2, &y, 2, &params, 3);
        assert_eq!(a, fit(&x, 2, &y, 2, &params, 3));
        assert_ne!(a, fit(&x, 2, &y, 2, &params, 4));
        let p = a.iter().map(|t| predict(t, &[150.0, 0.0])[1]).sum::<f32>() / 8.0;
        assert!(p > 0.9, "{p}");
        let p = a.iter().map(|t| predict(t, &[10.0, 0.0])[1]).sum::<f32>() / 8.0;
        assert!(p < 0.1, "{p}");
    }
}
