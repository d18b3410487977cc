//! The hot loop of every synthetic study: for weight vectors w_j, the σ-weighted sums
//!
//! g_j = Σ_i σ(−w_jᵀ z_i) · z_i,   z_i = y_i · [x_i; −1],
//!
//! which is −n·∇ of the mean logistic loss ℓ(u) = log(1 + e^{−u}) at w_j.
//!
//! Layout and speed: the z_i are stored column-wise (structure of arrays) and padded to a
//! multiple of 8 with zero rows, which add exactly 0 to every sum. The loop works on
//! 8 points at a time with a branch-free exp (Cody–Waite reduction, degree-12 Taylor
//! polynomial, exponent built from bits), so LLVM vectorises it, and it evaluates several
//! weight vectors per pass over the points. It is compiled three times (AVX-512+FMA,
//! AVX2+FMA, portable) and dispatched at run time. Every path performs the same IEEE
//! operations in the same order (explicit `mul_add`, fixed 8-lane accumulators, fixed
//! lane reduction), so results are bit-identical across paths, thread counts and machines.

use crate::points::LabeledPoints;

/// Points with labels folded in, z_i = y_i·[x_i; −1], stored column-major and padded.
#[derive(Debug, Clone)]
pub struct AugmentedPoints {
    /// Augmented dimension d + 1.
    pub dim: usize,
    /// Real points.
    pub len: usize,
    /// Kernel dimension (≥ dim; extra columns are zero).
    kdim: usize,
    /// Rows including zero padding (a multiple of 8).
    padded: usize,
    /// kdim columns of `padded` values.
    cols: Vec<f64>,
}

/// Augmented dimensions with a compiled kernel; others are padded up to the next one, and
/// dimensions beyond the last (real encoder features) take the run-time-dimension kernel.
const KERNEL_DIMS: [usize; 11] = [2, 3, 4, 5, 6, 8, 11, 12, 16, 24, 65];

impl AugmentedPoints {
    pub fn new(points: &LabeledPoints) -> Self {
        let dim = points.dim + 1;
        let kdim = KERNEL_DIMS
            .iter()
            .copied()
            .find(|&k| k >= dim)
            .unwrap_or(dim);
        let len = points.len();
        let padded = len.div_ceil(8) * 8;
        let mut cols = vec![0.0; kdim * padded];
        for i in 0..len {
            let y = points.y[i];
            for (k, &xk) in points.point(i).iter().enumerate() {
                cols[k * padded + i] = y * xk;
            }
            cols[(dim - 1) * padded + i] = -y;
        }
        Self {
            dim,
            len,
            kdim,
            padded,
            cols,
        }
    }

    /// z_i.
    pub fn z(&self, i: usize) -> Vec<f64> {
        (0..self.dim)
            .map(|k| self.cols[k * self.padded + i])
            .collect()
    }

    /// The Gram matrix X̃ᵀX̃ = Σ z_i z_iᵀ (dim × dim, row-major).
    pub fn gram(&self) -> Vec<f64> {
        let d = self.dim;
        let mut g = vec![0.0; d * d];
        for a in 0..d {
            for b in 0..=a {
                let ca = &self.cols[a * self.padded..][..self.len];
                let cb = &self.cols[b * self.padded..][..self.len];
                let s: f64 = ca.iter().zip(cb).map(|(p, q)| p * q).sum();
                g[a * d + b] = s;
                g[b * d + a] = s;
            }
        }
        g
    }

    /// For each weight vector (rows of `ws`, `dim` values each) write
    /// Σ_i σ(−wᵀz_i) z_i into the same row of `out`.
    pub fn sigmoid_weighted_sums(&self, ws: &[f64], out: &mut [f64]) {
        assert_eq!(ws.len() % self.dim, 0);
        assert_eq!(ws.len(), out.len());
        let count = ws.len() / self.dim;
        // Widen to the kernel dimension (zero weights on padding columns).
        let mut wk = vec![0.0; count * self.kdim];
        for j in 0..count {
            wk[j * self.kdim..j * self.kdim + self.dim]
                .copy_from_slice(&ws[j * self.dim..(j + 1) * self.dim]);
        }
        let mut ok = vec![0.0; count * self.kdim];
        if self.kdim > *KERNEL_DIMS.last().expect("dims") && count > 1 {
            // Encoder features: one dataset, many weight vectors (runs × heads), each
            // vector's sum independent of the others — spread them over the threads.
            use rayon::prelude::*;
            let k = self.kdim;
            wk.par_chunks(k)
                .zip(ok.par_chunks_mut(k))
                .for_each(|(w, o)| dispatch(k, &self.cols, self.padded, w, o));
        } else {
            dispatch(self.kdim, &self.cols, self.padded, &wk, &mut ok);
        }
        for j in 0..count {
            out[j * self.dim..(j + 1) * self.dim]
                .copy_from_slice(&ok[j * self.kdim..j * self.kdim + self.dim]);
        }
    }
}

/// σ(−u) for one point, the scalar twin of the kernel (used for single-point terms).
pub fn sigmoid_neg(u: f64) -> f64 {
    sigmoid_neg8([u; 8])[0]
}

const LANES: usize = 8;

/// e^x on 8 lanes, x already clamped to [−700, 700].
#[inline(always)]
fn exp8(x: [f64; LANES]) -> [f64; LANES] {
    let mut out = [0.0; LANES];
    for l in 0..LANES {
        let t = x[l].mul_add(LOG2E, SHIFTER);
        let k = t - SHIFTER;
        let r = k.mul_add(-LN2_LO, k.mul_add(-LN2_HI, x[l]));
        let mut p = EXP_C[0];
        for &c in &EXP_C[1..] {
            p = p.mul_add(r, c);
        }
        // 2^k: k sits in the low mantissa bits of t; shifting by 52 drops the rest.
        let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
        out[l] = p * scale;
    }
    out
}

const LOG2E: f64 = std::f64::consts::LOG2_E;
const SHIFTER: f64 = 6755399441055744.0; // 1.5·2^52: rounds to an integer in the low bits
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// 1/k! for k = 12 … 0 (Horner order).
const EXP_C: [f64; 13] = [
    1.0 / 479001600.0,
    1.0 / 39916800.0,
    1.0 / 3628800.0,
    1.0 / 362880.0,
    1.0 / 40320.0,
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// σ(−u) = 1/(1 + e^u) on 8 lanes.
#[inline(always)]
fn sigmoid_neg8(u: [f64; LANES]) -> [f64; LANES] {
    let mut c = [0.0; LANES];
    for l in 0..LANES {
        c[l] = u[l].clamp(-700.0, 700.0);
    }
    let e = exp8(c);
    let mut s = [0.0; LANES];
    for l in 0..LANES {
        s[l] = 1.0 / (1.0 + e[l]);
    }
    s
}

/// Fixed-order lane reduction.
#[inline(always)]
fn reduce(a: &[f64; LANES]) -> f64 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// One pass of K weight vectors of dimension D over all points; `Portable` is the
/// auto-vectorised form, `avx512::Block` the same operations in explicit AVX-512.
trait Block {
    fn run<const D: usize, const K: usize>(
        cols: &[f64],
        padded: usize,
        w: &[[f64; D]; K],
    ) -> [[f64; D]; K];
}

struct Portable;

impl Block for Portable {
    #[inline(always)]
    fn run<const D: usize, const K: usize>(
        cols: &[f64],
        padded: usize,
        w: &[[f64; D]; K],
    ) -> [[f64; D]; K] {
        block::<D, K>(cols, padded, w)
    }
}

/// K weight vectors of dimension D against all points.
#[inline(always)]
fn block<const D: usize, const K: usize>(
    cols: &[f64],
    padded: usize,
    w: &[[f64; D]; K],
) -> [[f64; D]; K] {
    let mut acc = [[[0.0f64; LANES]; D]; K];
    let colv: [&[f64]; D] = std::array::from_fn(|k| &cols[k * padded..(k + 1) * padded]);
    let mut c = 0;
    while c < padded {
        let z: [[f64; LANES]; D] =
            std::array::from_fn(|k| colv[k][c..c + LANES].try_into().expect("8 lanes"));
        for h in 0..K {
            let mut u = [0.0; LANES];
            for l in 0..LANES {
                u[l] = w[h][0] * z[0][l];
            }
            for k in 1..D {
                for l in 0..LANES {
                    u[l] = w[h][k].mul_add(z[k][l], u[l]);
                }
            }
            let s = sigmoid_neg8(u);
            for k in 0..D {
                for l in 0..LANES {
                    acc[h][k][l] = s[l].mul_add(z[k][l], acc[h][k][l]);
                }
            }
        }
        c += LANES;
    }
    std::array::from_fn(|h| std::array::from_fn(|k| reduce(&acc[h][k])))
}

#[inline(always)]
#[allow(clippy::int_plus_one)] // `j + k <= count` reads as "k more fit", for every block size k
fn sums<const D: usize, B: Block>(cols: &[f64], padded: usize, ws: &[f64], out: &mut [f64]) {
    // Weight vectors per pass: enough to amortise the loads, few enough to stay in registers.
    const fn per_pass(d: usize) -> usize {
        if d <= 3 {
            4
        } else if d <= 6 {
            2
        } else {
            1
        }
    }
    let count = ws.len() / D;
    let mut j = 0;
    macro_rules! run {
        ($k:literal) => {
            while j + $k <= count {
                let w: [[f64; D]; $k] =
                    std::array::from_fn(|h| ws[(j + h) * D..(j + h + 1) * D].try_into().unwrap());
                let r = B::run::<D, $k>(cols, padded, &w);
                for h in 0..$k {
                    out[(j + h) * D..(j + h + 1) * D].copy_from_slice(&r[h]);
                }
                j += $k;
            }
        };
    }
    if per_pass(D) >= 4 {
        run!(4);
    }
    if per_pass(D) >= 2 {
        run!(2);
    }
    run!(1);
}

/// The same sums for a dimension known only at run time (encoder features, d in the
/// hundreds): one weight vector at a time, 8 points per step, the same operation order.
#[inline(always)]
fn sums_dyn(d: usize, cols: &[f64], padded: usize, ws: &[f64], out: &mut [f64]) {
    let mut acc = vec![[0.0f64; LANES]; d];
    for (w, o) in ws.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        for a in acc.iter_mut() {
            *a = [0.0; LANES];
        }
        let mut c = 0;
        while c < padded {
            let mut u = [0.0; LANES];
            for l in 0..LANES {
                u[l] = w[0] * cols[c + l];
            }
            for (k, &wk) in w.iter().enumerate().skip(1) {
                let z = &cols[k * padded + c..k * padded + c + LANES];
                for l in 0..LANES {
                    u[l] = wk.mul_add(z[l], u[l]);
                }
            }
            let s = sigmoid_neg8(u);
            for (k, a) in acc.iter_mut().enumerate() {
                let z = &cols[k * padded + c..k * padded + c + LANES];
                for l in 0..LANES {
                    a[l] = s[l].mul_add(z[l], a[l]);
                }
            }
            c += LANES;
        }
        for (ok, a) in o.iter_mut().zip(&acc) {
            *ok = reduce(a);
        }
    }
}

macro_rules! versions {
    ($($d:literal),*) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
        unsafe fn sums_avx512(d: usize, cols: &[f64], padded: usize, ws: &[f64], out: &mut [f64]) {
            match d { $($d => sums::<$d, avx512::Block>(cols, padded, ws, out),)* _ => sums_dyn(d, cols, padded, ws, out) }
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn sums_avx2(d: usize, cols: &[f64], padded: usize, ws: &[f64], out: &mut [f64]) {
            match d { $($d => sums::<$d, Portable>(cols, padded, ws, out),)* _ => sums_dyn(d, cols, padded, ws, out) }
        }
        fn sums_portable(d: usize, cols: &[f64], padded: usize, ws: &[f64], out: &mut [f64]) {
            match d { $($d => sums::<$d, Portable>(cols, padded, ws, out),)* _ => sums_dyn(d, cols, padded, ws, out) }
        }
    };
}
versions!(2, 3, 4, 5, 6, 8, 11, 12, 16, 24, 65);

/// Which compiled version of the kernel runs on this machine: the best the CPU supports,
/// or a lower one named by `STAB_GD_KERNEL` (`avx2` or `portable`), to check that every
/// path gives the same bits. Read once per process.
pub fn kernel_isa() -> &'static str {
    static ISA: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    ISA.get_or_init(|| {
        let best = detected_isa();
        let rank = |isa: &str| {
            ["portable", "avx2", "avx512"]
                .iter()
                .position(|&i| i == isa)
        };
        match std::env::var("STAB_GD_KERNEL")
            .ok()
            .as_deref()
            .and_then(|want| {
                let (w, b) = (rank(want)?, rank(best)?);
                (w <= b).then_some(want)
            }) {
            Some("portable") => "portable",
            Some("avx2") => "avx2",
            _ => best,
        }
    })
}

fn detected_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx2";
        }
    }
    "portable"
}

/// The fixed-dimension pass in explicit AVX-512 (8 f64 lanes per register). LLVM's
/// auto-vectorisation of [`block`] used 128/256-bit registers, gathers and stack spills
/// (about 14 cycles per point-step); this form keeps the accumulators in registers.
/// Lane for lane it performs the same IEEE operations in the same order as
/// [`sigmoid_neg8`] and [`block`] (clamp, the same FMAs, Horner, exponent bits, one
/// division, fixed reduction), so its sums are bit-identical to the portable path.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{EXP_C, LANES, LN2_HI, LN2_LO, LOG2E, SHIFTER, reduce};
    use std::arch::x86_64::*;

    pub struct Block;

    impl super::Block for Block {
        #[inline(always)]
        fn run<const D: usize, const K: usize>(
            cols: &[f64],
            padded: usize,
            w: &[[f64; D]; K],
        ) -> [[f64; D]; K] {
            // SAFETY: only `sums_avx512` uses this block, and `dispatch` calls that only
            // after detecting avx512f, avx512dq and fma.
            unsafe { block::<D, K>(cols, padded, w) }
        }
    }

    /// σ(−u) = 1/(1 + e^{clamp(u, −700, 700)}), as `sigmoid_neg8`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq,fma")]
    fn sigmoid_neg(u: __m512d) -> __m512d {
        let x = _mm512_max_pd(
            _mm512_min_pd(u, _mm512_set1_pd(700.0)),
            _mm512_set1_pd(-700.0),
        );
        let t = _mm512_fmadd_pd(x, _mm512_set1_pd(LOG2E), _mm512_set1_pd(SHIFTER));
        let k = _mm512_sub_pd(t, _mm512_set1_pd(SHIFTER));
        let r = _mm512_fmadd_pd(
            k,
            _mm512_set1_pd(-LN2_LO),
            _mm512_fmadd_pd(k, _mm512_set1_pd(-LN2_HI), x),
        );
        let mut p = _mm512_set1_pd(EXP_C[0]);
        for &c in &EXP_C[1..] {
            p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
        }
        let bits = _mm512_slli_epi64::<52>(_mm512_add_epi64(
            _mm512_castpd_si512(t),
            _mm512_set1_epi64(1023),
        ));
        let e = _mm512_mul_pd(p, _mm512_castsi512_pd(bits));
        let one = _mm512_set1_pd(1.0);
        _mm512_div_pd(one, _mm512_add_pd(one, e))
    }

    /// K weight vectors of dimension D against all points, as `super::block`.
    #[target_feature(enable = "avx512f,avx512dq,fma")]
    unsafe fn block<const D: usize, const K: usize>(
        cols: &[f64],
        padded: usize,
        w: &[[f64; D]; K],
    ) -> [[f64; D]; K] {
        assert!(cols.len() >= D * padded && padded.is_multiple_of(LANES));
        let mut acc = [[_mm512_setzero_pd(); D]; K];
        let mut wv = [[_mm512_setzero_pd(); D]; K];
        for h in 0..K {
            for k in 0..D {
                wv[h][k] = _mm512_set1_pd(w[h][k]);
            }
        }
        let base = cols.as_ptr();
        let mut c = 0;
        while c < padded {
            let mut z = [_mm512_setzero_pd(); D];
            for (k, zk) in z.iter_mut().enumerate() {
                // SAFETY: k·padded + c + 8 ≤ D·padded ≤ cols.len() (asserted above).
                *zk = unsafe { _mm512_loadu_pd(base.add(k * padded + c)) };
            }
            for h in 0..K {
                let mut u = _mm512_mul_pd(wv[h][0], z[0]);
                for k in 1..D {
                    u = _mm512_fmadd_pd(wv[h][k], z[k], u);
                }
                let s = sigmoid_neg(u);
                for k in 0..D {
                    acc[h][k] = _mm512_fmadd_pd(s, z[k], acc[h][k]);
                }
            }
            c += LANES;
        }
        let mut out = [[0.0; D]; K];
        for h in 0..K {
            for k in 0..D {
                let mut lanes = [0.0f64; LANES];
                // SAFETY: `lanes` holds 8 f64.
                unsafe { _mm512_storeu_pd(lanes.as_mut_ptr(), acc[h][k]) };
                out[h][k] = reduce(&lanes);
            }
        }
        out
    }
}

fn dispatch(d: usize, cols: &[f64], padded: usize, ws: &[f64], out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        match kernel_isa() {
            // SAFETY: the required CPU features were detected at run time.
            "avx512" => return unsafe { sums_avx512(d, cols, padded, ws, out) },
            "avx2" => return unsafe { sums_avx2(d, cols, padded, ws, out) },
            _ => {}
        }
    }
    sums_portable(d, cols, padded, ws, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::TwoBalls;

    #[test]
    fn exp_matches_std_to_a_few_ulps() {
        let mut worst: f64 = 0.0;
        let mut x = -700.0;
        while x <= 700.0 {
            let got = exp8([x; 8])[0];
            let want = x.exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 1e-15, "max relative error {worst:e}");
    }

    #[test]
    fn sigmoid_is_stable_at_extremes() {
        assert_eq!(sigmoid_neg(0.0), 0.5);
        assert!(sigmoid_neg(1e6) >= 0.0 && sigmoid_neg(1e6) < 1e-300);
        assert_eq!(sigmoid_neg(-1e6), 1.0);
        assert!((sigmoid_neg(2.0) - 1.0 / (1.0 + 2f64.exp())).abs() < 1e-16);
    }

    fn naive(p: &LabeledPoints, w: &[f64]) -> Vec<f64> {
        let d = p.dim + 1;
        let mut g = vec![0.0; d];
        for i in 0..p.len() {
            let mut z: Vec<f64> = p.point(i).iter().map(|x| p.y[i] * x).collect();
            z.push(-p.y[i]);
            let u: f64 = z.iter().zip(w).map(|(a, b)| a * b).sum();
            let s = 1.0 / (1.0 + u.exp());
            for k in 0..d {
                g[k] += s * z[k];
            }
        }
        g
    }

    #[test]
    fn sums_match_naive_for_every_dimension_and_block() {
        for dim in [1, 2, 3, 7, 10, 20, 64, 65, 100] {
            let p = TwoBalls::with_margin_and_bound(101, dim, 0.5, 3.0).sample(dim as u64);
            let a = AugmentedPoints::new(&p);
            let d = dim + 1;
            let count = 7; // exercises blocks of 4, 2 and 1
            let ws: Vec<f64> = (0..count * d)
                .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.3)
                .collect();
            let mut out = vec![0.0; ws.len()];
            a.sigmoid_weighted_sums(&ws, &mut out);
            for j in 0..count {
                let want = naive(&p, &ws[j * d..(j + 1) * d]);
                for k in 0..d {
                    let got = out[j * d + k];
                    assert!(
                        (got - want[k]).abs() <= 1e-12 * (1.0 + want[k].abs()),
                        "dim {dim} w{j}[{k}]: {got} vs {}",
                        want[k]
                    );
                }
            }
        }
    }

    #[test]
    fn all_isa_paths_agree_bitwise() {
        let p = TwoBalls::with_margin_and_bound(333, 2, 0.5, 3.0).sample(5);
        let a = AugmentedPoints::new(&p);
        let ws: Vec<f64> = (0..9 * 3).map(|i| (i as f64 * 0.77).sin() * 3.0).collect();
        let mut port = vec![0.0; ws.len()];
        let mut wk = vec![0.0; 9 * a.kdim];
        for j in 0..9 {
            wk[j * a.kdim..j * a.kdim + 3].copy_from_slice(&ws[j * 3..j * 3 + 3]);
        }
        let mut ok = vec![0.0; wk.len()];
        sums_portable(a.kdim, &a.cols, a.padded, &wk, &mut ok);
        for j in 0..9 {
            port[j * 3..j * 3 + 3].copy_from_slice(&ok[j * a.kdim..j * a.kdim + 3]);
        }
        let mut fast = vec![0.0; ws.len()];
        a.sigmoid_weighted_sums(&ws, &mut fast);
        assert_eq!(
            port,
            fast,
            "dispatch path {} differs from portable",
            kernel_isa()
        );
    }
}
