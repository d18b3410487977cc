//! Per-seed scores, one column per method (paper Fig. 10), each seed a dot and the mean a
//! black bar. With at least [`VIOLIN_MIN_RUNS`] runs in every column the shape is a violin:
//! a Gaussian kernel density estimate (Silverman's bandwidth, 1.06·σ̂·n^(−1/5)) scaled to a
//! common maximum width. With fewer, a density would invent tails far beyond the data, so
//! each column is a box plot instead: the box from the first to the third quartile (linear
//! interpolation, as `numpy.percentile`), the median a line across it, whiskers to the
//! lowest and highest score, the dots spread sideways where they would overlap.

use std::path::Path;

use plotters::prelude::*;

use super::plot::COLORS;
use crate::stats::Summary;

/// Gaussian KDE of `values` at `at` (Silverman's bandwidth; a small floor when every
/// value is equal).
pub fn density(values: &[f64], at: &[f64]) -> Vec<f64> {
    let n = values.len() as f64;
    let h = bandwidth(values);
    let norm = 1.0 / (n * h * (2.0 * std::f64::consts::PI).sqrt());
    at.iter()
        .map(|x| {
            values
                .iter()
                .map(|v| (-0.5 * ((x - v) / h).powi(2)).exp())
                .sum::<f64>()
                * norm
        })
        .collect()
}

/// Silverman's rule of thumb, 1.06·σ̂·n^(−1/5), with a small floor for equal values.
fn bandwidth(values: &[f64]) -> f64 {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    let s = Summary::of(&v);
    (1.06 * s.sd * (v.len() as f64).powf(-0.2)).max(1e-3 * s.mean.abs().max(1.0))
}

/// Whether the finite scores take at least two values (a density needs a spread).
fn spread(values: &[f64]) -> bool {
    let mut finite = values.iter().filter(|x| x.is_finite());
    match finite.next() {
        Some(first) => finite.any(|x| x != first),
        None => false,
    }
}

/// Columns with fewer finite scores than this are drawn as box plots, not violins.
pub const VIOLIN_MIN_RUNS: usize = 10;

/// Whether [`seed_scores_plot`] draws `groups` as violins (every column has at least
/// [`VIOLIN_MIN_RUNS`] finite scores) rather than box plots.
pub fn as_violins(groups: &[(String, Vec<f64>)]) -> bool {
    groups
        .iter()
        .all(|(_, v)| v.iter().filter(|x| x.is_finite()).count() >= VIOLIN_MIN_RUNS)
}

/// One column per `(label, scores)` into an SVG file: violins, or box plots below
/// [`VIOLIN_MIN_RUNS`] runs ([`as_violins`]).
pub fn seed_scores_plot(
    path: &Path,
    title: &str,
    y_label: &str,
    groups: &[(String, Vec<f64>)],
) -> stab_core::Result<()> {
    let all: Vec<f64> = groups
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    if all.is_empty() {
        return Err(stab_core::internal!(
            "nothing to plot for {}",
            path.display()
        ));
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Room for the density tails: three bandwidths of the widest group beyond the data. A
    // group whose scores are all equal has no density to draw (its points and mean are shown).
    let violins = as_violins(groups);
    let tail = groups
        .iter()
        .filter(|(_, v)| violins && spread(v))
        .map(|(_, v)| 3.0 * bandwidth(v))
        .fold(0.0, f64::max);
    let margin = if hi - lo > 0.0 {
        tail.max(0.05 * (hi - lo))
    } else {
        (0.05 * lo.abs()).max(0.5)
    };
    let (y0, y1) = (lo - margin, hi + margin);
    let k = groups.len();
    let width = (200 * k as u32).clamp(600, 2400);
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (width, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| stab_core::internal!("{e}"))?;
    let labels: Vec<String> = groups.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(k as f64 - 0.5), y0..y1)
        .map_err(|e| stab_core::internal!("{e}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_label_style(("sans-serif", 15))
        .y_label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 18))
        .x_labels(k.max(1))
        .x_label_formatter(&|x: &f64| super::plot::category_label(&labels, *x))
        .y_desc(y_label)
        .draw()
        .map_err(|e| stab_core::internal!("{e}"))?;
    if violins {
        draw_violins(&mut chart, groups, (y0, y1))?;
    } else {
        draw_boxes(&mut chart, groups)?;
    }
    for (i, (_, v)) in groups.iter().enumerate() {
        let mean = Summary::of(v).mean;
        if mean.is_finite() {
            let c = i as f64;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(c - 0.2, mean), (c + 0.2, mean)],
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| stab_core::internal!("{e}"))?;
        }
    }
    root.present().map_err(|e| stab_core::internal!("{e}"))?;
    drop(chart);
    drop(root);
    stab_core::atomic::write_file(path, svg.as_bytes())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Each column's density outline, and its seeds as dots on the centre line.
fn draw_violins(
    chart: &mut Chart<'_, '_>,
    groups: &[(String, Vec<f64>)],
    (y0, y1): (f64, f64),
) -> stab_core::Result<()> {
    let grid: Vec<f64> = (0..=120)
        .map(|i| y0 + (y1 - y0) * i as f64 / 120.0)
        .collect();
    let dens: Vec<Vec<f64>> = groups
        .iter()
        .map(|(_, v)| {
            let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            if !spread(&v) {
                vec![0.0; grid.len()]
            } else {
                density(&v, &grid)
            }
        })
        .collect();
    let peak = dens
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-12);
    for (i, ((_, v), d)) in groups.iter().zip(&dens).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let c = i as f64;
        let mut outline: Vec<(f64, f64)> = grid
            .iter()
            .zip(d)
            .filter(|(_, w)| **w > 1e-3 * peak)
            .map(|(y, w)| (c + 0.4 * w / peak, *y))
            .collect();
        let left: Vec<(f64, f64)> = outline
            .iter()
            .rev()
            .map(|(x, y)| (2.0 * c - x, *y))
            .collect();
        outline.extend(left);
        if outline.len() > 2 {
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline.clone(),
                    color.mix(0.3),
                )))
                .map_err(|e| stab_core::internal!("{e}"))?;
            outline.push(outline[0]);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    outline,
                    color.stroke_width(1),
                )))
                .map_err(|e| stab_core::internal!("{e}"))?;
        }
        chart
            .draw_series(
                v.iter()
                    .filter(|x| x.is_finite())
                    .map(|&y| Circle::new((c, y), 3, color.filled())),
            )
            .map_err(|e| stab_core::internal!("{e}"))?;
    }
    Ok(())
}

/// The `q`-quantile of sorted values by linear interpolation (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

/// Each column's box (quartiles), median line, whiskers to the extremes, and its seeds as
/// dots, equal scores side by side.
fn draw_boxes(chart: &mut Chart<'_, '_>, groups: &[(String, Vec<f64>)]) -> stab_core::Result<()> {
    for (i, (_, v)) in groups.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let c = i as f64;
        let mut sorted: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if sorted.is_empty() {
            continue;
        }
        sorted.sort_by(f64::total_cmp);
        let (q1, med, q3) = (
            quantile(&sorted, 0.25),
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.75),
        );
        let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
        let err = |e| stab_core::internal!("{e}");
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(c - 0.25, q1), (c + 0.25, q3)],
                color.mix(0.25).filled(),
            )))
            .map_err(err)?;
        let lines = [
            vec![
                (c - 0.25, q1),
                (c + 0.25, q1),
                (c + 0.25, q3),
                (c - 0.25, q3),
                (c - 0.25, q1),
            ],
            vec![(c - 0.25, med), (c + 0.25, med)],
            vec![(c, q3), (c, hi)],
            vec![(c, q1), (c, lo)],
            vec![(c - 0.1, hi), (c + 0.1, hi)],
            vec![(c - 0.1, lo), (c + 0.1, lo)],
        ];
        chart
            .draw_series(
                lines
                    .into_iter()
                    .map(|l| PathElement::new(l, color.stroke_width(1))),
            )
            .map_err(|e| stab_core::internal!("{e}"))?;
        // Equal scores are spread sideways (0.06 apart, centred) so each seed shows.
        let mut dots = Vec::with_capacity(sorted.len());
        let mut start = 0;
        while start < sorted.len() {
            let end = sorted[start..]
                .iter()
                .position(|x| *x != sorted[start])
                .map_or(sorted.len(), |k| start + k);
            let m = end - start;
            for j in 0..m {
                let dx = (j as f64 - (m as f64 - 1.0) / 2.0) * 0.06;
                dots.push((c + dx, sorted[start]));
            }
            start = end;
        }
        chart
            .draw_series(dots.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|e| stab_core::internal!("{e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn density_integrates_to_one_and_peaks_at_the_data() {
        let v = [60.0, 61.0, 62.0, 70.0];
        let grid: Vec<f64> = (0..=4000).map(|i| 40.0 + i as f64 * 0.01).collect();
        let d = density(&v, &grid);
        let area: f64 = d.iter().sum::<f64>() * 0.01;
        assert!((area - 1.0).abs() < 1e-3, "{area}");
        let argmax = grid[d
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0];
        assert!((argmax - 61.0).abs() < 1.5, "{argmax}");
    }

    #[test]
    fn ten_runs_a_column_get_violins_fewer_get_boxes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.svg");
        let ten = |base: f64| (0..10).map(|i| base + i as f64 * 0.7).collect::<Vec<_>>();
        let groups = [("finetune".into(), ten(55.0)), ("mhloss".into(), ten(58.0))];
        seed_scores_plot(&path, "cb", "test ×100", &groups).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("finetune") && svg.contains("mhloss"));
        assert!(svg.matches("<polygon").count() >= 2, "two violins");
        assert_eq!(svg.matches("<circle").count(), 20, "every score drawn");

        let mut few = groups.clone();
        few[1].1.truncate(9);
        assert!(!as_violins(&few));
        seed_scores_plot(&path, "cb", "test ×100", &few).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            svg.matches("<polygon").count(),
            0,
            "no density below ten runs"
        );
        assert_eq!(svg.matches("<circle").count(), 19, "every score drawn");
    }

    #[test]
    fn quartiles_interpolate_as_numpy() {
        // numpy.percentile([1, 2, 4, 8, 9], [25, 50, 75]) = [2, 4, 8].
        let v = [1.0, 2.0, 4.0, 8.0, 9.0];
        assert_eq!([0.25, 0.5, 0.75].map(|q| quantile(&v, q)), [2.0, 4.0, 8.0]);
        // numpy.percentile([1, 2, 3, 10], 25) = 1.75.
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 10.0], 0.25), 1.75);
    }

    #[test]
    fn equal_scores_get_no_density_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.svg");
        let groups = [
            ("finetune".into(), vec![7.2, 7.2]),
            ("mhloss".into(), vec![7.2, 7.2, 7.2]),
        ];
        seed_scores_plot(&path, "cb", "test ×100", &groups).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("<polygon").count(), 0, "no invented spread");
        assert_eq!(svg.matches("<circle").count(), 5, "every score drawn");
    }
}
