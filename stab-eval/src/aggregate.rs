//! Aggregates across tasks, as rliable computes them (Agarwal et al., NeurIPS 2021;
//! docs/methods.md §13.4). Scores come per task (strata), one value per run:
//!
//! * [`iqm`] — the interquartile mean of every run of every task pooled: sort, drop
//!   ⌊0.25·N⌋ values at each end, mean the rest (`scipy.stats.trim_mean(x, 0.25)`).
//! * [`probability_of_improvement`] — P(X > Y), the mean over tasks of the Mann–Whitney
//!   U statistic of X over Y divided by n·m (ties count one half; 0.5 for identical lists).
//! * [`stratified_interval`], [`paired_stratified_interval`] — percentile intervals from
//!   stratified bootstrap resamples: the runs of each task drawn with replacement, tasks
//!   kept (rliable's `StratifiedBootstrap` and `StratifiedIndependentBootstrap`); the
//!   percentiles interpolate linearly as NumPy's do. Resamples come from a seeded ChaCha8
//!   stream (rliable uses NumPy's), so intervals agree up to bootstrap noise.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Per task, one score per run.
pub type Strata = [Vec<f64>];

/// The interquartile mean of every score pooled; `None` for no scores.
pub fn iqm(strata: &Strata) -> Option<f64> {
    let mut all: Vec<f64> = strata.iter().flatten().copied().collect();
    if all.is_empty() {
        return None;
    }
    all.sort_by(f64::total_cmp);
    let cut = all.len() / 4;
    let kept = &all[cut..all.len() - cut];
    Some(kept.iter().sum::<f64>() / kept.len() as f64)
}

/// P(X > Y) averaged over tasks; `None` without a task where both have scores.
pub fn probability_of_improvement(x: &Strata, y: &Strata) -> Option<f64> {
    let per_task: Vec<f64> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .map(|(a, b)| {
            if a == b {
                return 0.5;
            }
            // U = #{(x, y): x > y} + ½ #{x = y}, counted in one merge of the sorted lists,
            // O(n + m) after the sorts (linear on the bootstrap's sorted resamples); exact:
            // twice U is an integer.
            let (mut xs, mut ys) = (a.clone(), b.clone());
            xs.sort_by(f64::total_cmp);
            ys.sort_by(f64::total_cmp);
            let (mut below, mut not_above, mut twice_u) = (0usize, 0usize, 0u64);
            for x in &xs {
                while below < ys.len() && ys[below].total_cmp(x).is_lt() {
                    below += 1;
                }
                not_above = not_above.max(below);
                while not_above < ys.len() && ys[not_above].total_cmp(x).is_le() {
                    not_above += 1;
                }
                twice_u += (2 * below + (not_above - below)) as u64;
            }
            twice_u as f64 / 2.0 / (a.len() * b.len()) as f64
        })
        .collect();
    (!per_task.is_empty()).then(|| per_task.iter().sum::<f64>() / per_task.len() as f64)
}

/// The q-th percentile (0 ≤ q ≤ 100) of sorted values, interpolated linearly (NumPy's
/// default).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// One stratified resample: each task's runs drawn with replacement.
/// Each task's positions in score order (what [`resample`] writes out by).
fn score_orders(strata: &Strata) -> Vec<Vec<usize>> {
    strata
        .iter()
        .map(|t| {
            let mut order: Vec<usize> = (0..t.len()).collect();
            order.sort_by(|&a, &b| t[a].total_cmp(&t[b]));
            order
        })
        .collect()
}

/// A resample with replacement of each task's scores. In draw order without `orders`;
/// with them, the draws are counted per position and written out in score order, so the
/// resample comes out sorted without a sort — the same multiset from the same draws, for
/// statistics that do not depend on the order of a task's scores.
fn resample(
    strata: &Strata,
    orders: Option<&[Vec<usize>]>,
    rng: &mut ChaCha8Rng,
    out: &mut [Vec<f64>],
) {
    let mut counts = Vec::new();
    for (t, (task, o)) in strata.iter().zip(out.iter_mut()).enumerate() {
        o.clear();
        let Some(order) = orders.map(|o| &o[t]) else {
            o.extend((0..task.len()).map(|_| task[rng.random_range(0..task.len())]));
            continue;
        };
        counts.clear();
        counts.resize(task.len(), 0u32);
        for _ in 0..task.len() {
            counts[rng.random_range(0..task.len())] += 1;
        }
        for &i in order {
            o.extend(std::iter::repeat_n(task[i], counts[i] as usize));
        }
    }
}

fn interval(mut values: Vec<f64>, size: f64) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let tail = 100.0 * (1.0 - size) / 2.0;
    (percentile(&values, tail), percentile(&values, 100.0 - tail))
}

/// The percentile interval (level `size`) of `stat` over `reps` stratified resamples.
pub fn stratified_interval(
    strata: &Strata,
    stat: impl Fn(&Strata) -> Option<f64>,
    reps: usize,
    size: f64,
    seed: u64,
) -> Option<(f64, f64)> {
    interval_of(strata, None, stat, reps, size, seed)
}

/// [`stratified_interval`] for a statistic that does not depend on the order of a task's
/// scores (IQM, a rank statistic): each resample arrives sorted, in O(n) instead of a
/// sort per resample; the same draws give the same interval.
pub fn stratified_interval_unordered(
    strata: &Strata,
    stat: impl Fn(&Strata) -> Option<f64>,
    reps: usize,
    size: f64,
    seed: u64,
) -> Option<(f64, f64)> {
    interval_of(strata, Some(&score_orders(strata)), stat, reps, size, seed)
}

fn interval_of(
    strata: &Strata,
    orders: Option<&[Vec<usize>]>,
    stat: impl Fn(&Strata) -> Option<f64>,
    reps: usize,
    size: f64,
    seed: u64,
) -> Option<(f64, f64)> {
    stat(strata)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample: Vec<Vec<f64>> = vec![Vec::new(); strata.len()];
    let values: Vec<f64> = (0..reps)
        .filter_map(|_| {
            resample(strata, orders, &mut rng, &mut sample);
            stat(&sample)
        })
        .collect();
    (!values.is_empty()).then(|| interval(values, size))
}

/// The percentile interval of a statistic of two score sets, each resampled by task
/// independently of the other; the statistic must not depend on the order of a task's
/// scores (each resample arrives sorted, as in [`stratified_interval_unordered`]).
pub fn paired_stratified_interval(
    x: &Strata,
    y: &Strata,
    stat: impl Fn(&Strata, &Strata) -> Option<f64>,
    reps: usize,
    size: f64,
    seed: u64,
) -> Option<(f64, f64)> {
    stat(x, y)?;
    let (x_orders, y_orders) = (score_orders(x), score_orders(y));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sx: Vec<Vec<f64>> = vec![Vec::new(); x.len()];
    let mut sy: Vec<Vec<f64>> = vec![Vec::new(); y.len()];
    let values: Vec<f64> = (0..reps)
        .filter_map(|_| {
            resample(x, Some(&x_orders), &mut rng, &mut sx);
            resample(y, Some(&y_orders), &mut rng, &mut sy);
            stat(&sx, &sy)
        })
        .collect();
    (!values.is_empty()).then(|| interval(values, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iqm_drops_a_quarter_at_each_end() {
        // 8 values: drop 2 at each end, mean of 3, 4, 5, 6.
        let s = vec![vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 100.0]];
        assert_eq!(iqm(&s), Some(4.5));
        assert_eq!(iqm(&[vec![7.0]]), Some(7.0));
        assert_eq!(iqm(&[vec![]]), None);
    }

    #[test]
    fn probability_of_improvement_counts_pairs_and_ties() {
        let x = vec![vec![3.0, 1.0]];
        let y = vec![vec![2.0, 1.0]];
        // Pairs: 3>2, 3>1, 1<2, 1=1 → (1 + 1 + 0 + 0.5)/4.
        assert_eq!(probability_of_improvement(&x, &y), Some(0.625));
        assert_eq!(probability_of_improvement(&y, &y), Some(0.5));
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 2.5), 1.075);
        assert_eq!(percentile(&v, 100.0), 4.0);
    }
}
