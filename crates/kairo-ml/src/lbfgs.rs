//! Binary logistic regression by L-BFGS, the solver scikit-learn's `LogisticRegression` uses
//! by default, with the same objective and stopping rule:
//!
//! minimise  (1/n) [ Σᵢ log(1 + exp(−sᵢ (xᵢ·w + b))) + α/2 ‖w‖² ]   (the intercept is not penalised)
//!
//! and stop when the gradient's largest component is at most `tol` (scipy's `pgtol`, which
//! scikit-learn sets to its `tol`, 1e-4) or the objective stops falling (`ftol` 64 ε, as
//! scikit-learn passes to scipy). Scaling by 1/n (as scikit-learn's averaged loss) keeps the
//! tolerance meaningful whatever the number of rows.
//!
//! Each evaluation is one pass over the rows computing the loss and the gradient together, split
//! into fixed chunks run in parallel; the chunks' partial sums are added in chunk order, so the
//! result does not depend on the number of threads (a model is reproducible).

use rayon::prelude::*;

/// Rows per chunk of an evaluation: the unit of parallel work and of summation order.
const CHUNK_ROWS: usize = 8192;
/// Correction pairs kept (scipy's `maxcor` default).
const HISTORY: usize = 10;
/// Most objective evaluations per line search (scikit-learn's `maxls`).
const MAX_LINE_SEARCH: usize = 50;

/// A fitted binary model: weights, then the intercept.
pub struct Fit {
    pub weights: Vec<f64>,
    pub intercept: f64,
}

/// Fit `y` (true for the positive class) on the row-major design matrix `x` of `width` columns.
pub fn fit(x: &[f64], width: usize, y: &[bool], alpha: f64, max_iter: usize, tol: f64) -> Fit {
    let n = y.len();
    let dim = width + 1;
    let problem = Problem { x, width, y, alpha, n: n.max(1) as f64 };
    let mut p = vec![0.0; dim];
    let mut g = vec![0.0; dim];
    let mut f = problem.evaluate(&p, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::with_capacity(HISTORY);
    let mut y_hist: Vec<Vec<f64>> = Vec::with_capacity(HISTORY);
    let mut rho: Vec<f64> = Vec::with_capacity(HISTORY);
    let mut iterations = 0;
    let mut trial = vec![0.0; dim];
    let mut g_new = vec![0.0; dim];
    while iterations < max_iter && max_abs(&g) > tol {
        iterations += 1;
        let d = direction(&g, &s_hist, &y_hist, &rho);
        let mut slope = dot(&g, &d);
        let d = if slope < 0.0 {
            d
        } else {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho.clear();
            slope = -dot(&g, &g);
            g.iter().map(|v| -v).collect()
        };
        // The first step is scaled to unit length, as scipy does; later ones start at 1.
        let mut step = if s_hist.is_empty() { 1.0 / norm(&d).max(f64::MIN_POSITIVE) } else { 1.0 };
        // Bisection for the weak Wolfe conditions: Armijo's sufficient decrease, and the
        // curvature condition that keeps the correction pair's curvature positive.
        let (mut lo, mut hi) = (0.0, f64::INFINITY);
        let mut accepted = None;
        for _ in 0..MAX_LINE_SEARCH {
            for ((t, pv), dv) in trial.iter_mut().zip(&p).zip(&d) {
                *t = pv + step * dv;
            }
            let f_new = problem.evaluate(&trial, &mut g_new);
            // Written so that a NaN objective counts as no decrease.
            let decreased = f_new <= f + 1e-4 * step * slope;
            if !decreased {
                hi = step;
            } else if dot(&g_new, &d) < 0.9 * slope {
                lo = step;
                accepted = Some((f_new, trial.clone(), g_new.clone()));
            } else {
                accepted = Some((f_new, trial.clone(), g_new.clone()));
                break;
            }
            step = if hi.is_finite() { 0.5 * (lo + hi) } else { 2.0 * lo };
        }
        // The last point of sufficient decrease, if the search ran out before curvature held.
        let Some((f_new, trial_p, trial_g)) = accepted else { break };
        trial.copy_from_slice(&trial_p);
        g_new.copy_from_slice(&trial_g);
        let s: Vec<f64> = trial.iter().zip(&p).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &yv);
        if sy > 1e-10 * dot(&yv, &yv) {
            if s_hist.len() == HISTORY {
                s_hist.remove(0);
                y_hist.remove(0);
                rho.remove(0);
            }
            s_hist.push(s);
            y_hist.push(yv);
            rho.push(1.0 / sy);
        }
        p.copy_from_slice(&trial);
        g.copy_from_slice(&g_new);
        let fell = (f - f_new) / f.abs().max(f_new.abs()).max(1.0);
        f = f_new;
        if fell <= 64.0 * f64::EPSILON {
            break;
        }
    }
    let intercept = p[width];
    p.truncate(width);
    Fit { weights: p, intercept }
}

struct Problem<'a> {
    x: &'a [f64],
    width: usize,
    y: &'a [bool],
    alpha: f64,
    n: f64,
}

impl Problem<'_> {
    /// The objective at `p`, its gradient written into `g`.
    fn evaluate(&self, p: &[f64], g: &mut [f64]) -> f64 {
        let w = self.width;
        let (weights, b) = (&p[..w], p[w]);
        let partials: Vec<(f64, Vec<f64>)> = self
            .x
            .par_chunks(CHUNK_ROWS * w.max(1))
            .zip(self.y.par_chunks(CHUNK_ROWS))
            .map(|(rows, labels)| {
                let mut grad = vec![0.0; w + 1];
                let mut loss = 0.0;
                for (row, &label) in rows.chunks_exact(w.max(1)).zip(labels) {
                    let z = row.iter().zip(weights).map(|(a, b)| a * b).sum::<f64>() + b;
                    // log(1 + exp(−s z)) and its derivative σ(z) − y, computed stably.
                    let t = if label { z } else { -z };
                    loss += if t > 0.0 { (-t).exp().ln_1p() } else { -t + t.exp().ln_1p() };
                    let residual = sigmoid(z) - f64::from(u8::from(label));
                    for (gj, xj) in grad.iter_mut().zip(row) {
                        *gj += residual * xj;
                    }
                    grad[w] += residual;
                }
                (loss, grad)
            })
            .collect();
        g.iter_mut().for_each(|v| *v = 0.0);
        let mut loss = 0.0;
        for (l, part) in partials {
            loss += l;
            for (a, b) in g.iter_mut().zip(&part) {
                *a += b;
            }
        }
        let penalty: f64 = weights.iter().map(|v| v * v).sum::<f64>();
        for (gj, wj) in g.iter_mut().zip(weights) {
            *gj = (*gj + self.alpha * wj) / self.n;
        }
        g[w] /= self.n;
        (loss + 0.5 * self.alpha * penalty) / self.n
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The two-loop recursion: −H·g for the inverse Hessian approximation of the stored pairs.
fn direction(g: &[f64], s: &[Vec<f64>], y: &[Vec<f64>], rho: &[f64]) -> Vec<f64> {
    let mut q: Vec<f64> = g.to_vec();
    let mut a = vec![0.0; s.len()];
    for i in (0..s.len()).rev() {
        a[i] = rho[i] * dot(&s[i], &q);
        for (qv, yv) in q.iter_mut().zip(&y[i]) {
            *qv -= a[i] * yv;
        }
    }
    if let (Some(sl), Some(yl)) = (s.last(), y.last()) {
        let gamma = dot(sl, yl) / dot(yl, yl);
        q.iter_mut().for_each(|v| *v *= gamma);
    }
    for i in 0..s.len() {
        let b = rho[i] * dot(&y[i], &q);
        for (qv, sv) in q.iter_mut().zip(&s[i]) {
            *qv += (a[i] - b) * sv;
        }
    }
    q.iter_mut().for_each(|v| *v = -*v);
    q
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the fit the gradient vanishes and perturbing any coordinate raises the objective.
    #[test]
    fn the_fit_is_the_minimum() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let (n, w) = (3000, 4);
        let x: Vec<f64> = (0..n * w).map(|_| next()).collect();
        let y: Vec<bool> = x.chunks(w).map(|r| r[0] * 2.0 - r[1] + 0.5 * r[2] + 0.3 > 0.8 * next()).collect();
        let fit = fit(&x, w, &y, 1.0, 1000, 1e-8);
        let problem = Problem { x: &x, width: w, y: &y, alpha: 1.0, n: n as f64 };
        let mut p = fit.weights.clone();
        p.push(fit.intercept);
        let mut g = vec![0.0; w + 1];
        let best = problem.evaluate(&p, &mut g);
        assert!(max_abs(&g) <= 1e-8, "gradient {g:?}");
        for j in 0..=w {
            for delta in [1e-3, -1e-3] {
                let mut q = p.clone();
                q[j] += delta;
                assert!(problem.evaluate(&q, &mut g) > best);
            }
        }
        assert!(fit.weights[0] > 1.0 && fit.weights[1] < -0.5, "{:?}", fit.weights);
    }

    #[test]
    fn one_row_and_separable_data_end() {
        let fit = fit(&[1.0, 2.0], 2, &[true], 1.0, 100, 1e-4);
        assert!(fit.weights.iter().all(|v| v.is_finite()) && fit.intercept.is_finite());
        let x = [-2.0, -1.0, 1.0, 2.0];
        let sep = super::fit(&x, 1, &[false, false, true, true], 1e-6, 50, 1e-4);
        assert!(sep.weights[0] > 0.0 && sep.intercept.abs() < 1e-6 + sep.weights[0]);
    }
}
