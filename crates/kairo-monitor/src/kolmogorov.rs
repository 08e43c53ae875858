//! The two-sided one-sample Kolmogorov–Smirnov distribution, `P(D_n >= x)`, which the
//! two-sample test's asymptotic p-value evaluates at `n = round(m·n/(m+n))` (as SciPy's
//! `ks_2samp(method="asymp")` does with `kstwo.sf`).
//!
//! Each region of `(n, x)` uses the method Simard & L'Ecuyer (2011) recommend for it: the
//! Ruben–Gambino closed forms at the ends, Durbin's matrix method in the Marsaglia–Tsang–Wang
//! form, Pomeranz's recursion, the Pelz–Good expansion, and twice the one-sided Smirnov
//! probability (an exact sum) where the two tails cannot both be crossed.

use statrs::function::gamma::ln_gamma;

/// 2^128: intermediate results are rescaled by it to stay within f64's range.
const SCALE: f64 = (1u128 << 127) as f64 * 2.0;

fn clip(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// `ln(n! / n^n)` by Stirling's series, with `n·ln n` removed up front.
fn ln_factorial_over_power(n: f64) -> f64 {
    // B_{2j} / (2j (2j − 1)) for j = 8 … 1.
    const C: [f64; 8] = [
        -3617.0 / 122400.0,
        1.0 / 156.0,
        -691.0 / 360360.0,
        1.0 / 1188.0,
        -1.0 / 1680.0,
        1.0 / 1260.0,
        -1.0 / 360.0,
        1.0 / 12.0,
    ];
    let r = 1.0 / n;
    let y = r / n;
    let poly = C.iter().fold(0.0, |acc, c| acc * y + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + r * poly
}

/// One-sided Smirnov probability `P(D_n+ >= x)`, summed exactly (terms in log space).
pub fn smirnov_sf(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let last = (nf * (1.0 - x)).floor() as u64;
    let ln_n_fact = ln_gamma(nf + 1.0);
    let mut sum = 0.0;
    for j in 0..=last {
        let jf = j as f64;
        let a = x + jf / nf;
        let b = 1.0 - x - jf / nf;
        let mut ln_term = ln_n_fact - ln_gamma(jf + 1.0) - ln_gamma(nf - jf + 1.0) + (jf - 1.0) * a.ln();
        if n > j {
            if b <= 0.0 {
                continue;
            }
            ln_term += (nf - jf) * b.ln();
        }
        sum += ln_term.exp();
    }
    clip(x * sum)
}

fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..m {
                c[i * m + j] += aik * b[k * m + j];
            }
        }
    }
    c
}

/// `P(D_n <= d)` by Durbin's matrix method (Marsaglia, Tsang & Wang 2003), with scaling.
fn durbin_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v = vec![0.0; m];
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] = (1.0 - h.powi(j as i32)) * fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let mut power = vec![0.0; m * m];
    for i in 0..m {
        power[i * m + i] = 1.0;
    }
    let (mut exponent, mut h_exponent) = (0i32, 0i32);
    let mut left = n;
    while left > 0 {
        if left % 2 == 1 {
            power = matmul(&power, &hm, m);
            exponent += h_exponent;
        }
        hm = matmul(&hm, &hm, m);
        h_exponent *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > SCALE {
            hm.iter_mut().for_each(|x| *x /= SCALE);
            h_exponent += 128;
        }
        left /= 2;
    }
    let mut p = power[(k - 1) * m + (k - 1)];
    let nf = n as f64;
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < 1.0 / SCALE {
            p *= SCALE;
            exponent -= 128;
        }
    }
    clip(p * 2f64.powi(exponent))
}

/// Row `i`'s band of non-zero entries in Pomeranz's recursion.
fn pomeranz_band(i: usize, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (half, odd) = ((i as i64 + 1) / 2, (i as i64 + 1) % 2);
        if odd == 0 {
            if half == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1)
            }
        } else {
            (half - 1 - ll - 1, half + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// `P(D_n <= x)` by Pomeranz's recursion (1974), two rows at a time, with scaling.
fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let powers = 2 * (ll as usize + 1);
    let (mut gp, mut g2p, mut g12p) = (vec![1.0; powers], vec![1.0; powers], vec![1.0; powers]);
    for k in 1..powers {
        gp[k] = gp[k - 1] * (g / nf) / k as f64;
        g2p[k] = g2p[k - 1] * (2.0 * g / nf) / k as f64;
        g12p[k] = g12p[k - 1] * ((1.0 - 2.0 * g) / nf) / k as f64;
    }
    let ni = n as i64;
    let mut v0 = vec![0.0; powers];
    let mut v1 = vec![0.0; powers];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut exponent = 0i32;
    let (mut j1, _) = pomeranz_band(0, ni, ll, ceilf, roundf);
    for i in 1..(2 * n as usize + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|x| *x = 0.0);
        let (nj1, j2) = pomeranz_band(i, ni, ll, ceilf, roundf);
        j1 = nj1;
        let pw = if i == 1 || i == 2 * n as usize + 1 {
            &gp
        } else if i % 2 == 1 {
            &g2p
        } else {
            &g12p
        };
        let len = j2 - k1 + 1;
        if len > 0 {
            let len = len as usize;
            let start = (k1 - v0s) as usize;
            let src = &v0[start..(start + len).min(v0.len())];
            let from = (j1 - k1) as usize;
            let count = (j2 - j1 + 1).max(0) as usize;
            // Entries `from..from+count` of the full convolution of src and pw[..len].
            for (out, idx) in (from..from + count).enumerate() {
                let mut acc = 0.0;
                for (a, sv) in src.iter().enumerate() {
                    if idx >= a && idx - a < len {
                        acc += sv * pw[idx - a];
                    }
                }
                v1[out] = acc;
            }
            let max = v1.iter().copied().fold(0.0, f64::max);
            if max > 0.0 && max < 1.0 / SCALE {
                v1.iter_mut().for_each(|x| *x *= SCALE);
                exponent -= 128;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = v1[(ni - v1s) as usize];
    for k in 1..=n {
        if ans.abs() > SCALE {
            ans /= SCALE;
            exponent += 128;
        }
        ans *= k as f64;
    }
    clip(ans * 2f64.powi(exponent))
}

/// `P(D_n <= x)` by the Pelz–Good (1976) expansion.
fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let pi2 = PI * PI;
    let (pi4, pi6) = (pi2 * pi2, pi2 * pi2 * pi2);
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let (k1a, k1b) = (-z2, pi2 / 4.0);
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs = [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6];
        for i in 0..4 {
            k[i] = k[i] * qpower + coeffs[i];
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let div = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for i in 0..4 {
        k[i] = k[i] * q * sqrt2pi / div[i];
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let ks2 = (kk * kk) as f64;
        let qp = q2.powf(ks2);
        let kspi = PI * kk as f64;
        k2extra += ks2 * qp;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ks2 * qp;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    (0..4).map(|i| k[i] / nf.powf(i as f64 / 2.0)).sum()
}

/// `P(D_n >= x)` for the two-sided one-sample statistic.
pub fn kolmogorov_sf(n: u64, x: f64) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        // Ruben–Gambino: 1/2n <= x <= 1/n.
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140 {
            (1..=n).fold(1.0, |acc, i| acc * (i as f64 / nf) * (2.0 * t - 1.0))
        } else {
            (ln_factorial_over_power(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip(1.0 - cdf);
    }
    if t >= nf - 1.0 {
        return clip(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let nx2 = t * x;
    if n <= 140 {
        if nx2 <= 0.754693 {
            return clip(1.0 - durbin_cdf(n, x));
        }
        if nx2 <= 4.0 {
            return clip(1.0 - pomeranz_cdf(n, x));
        }
        return clip(2.0 * smirnov_sf(n, x));
    }
    if nx2 >= 370.0 {
        return 0.0;
    }
    if nx2 >= 2.2 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let cdf = if nx2 >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(n, x)
    };
    clip(1.0 - cdf)
}
