//! SVG line plots with error bars (plotters), on linear or log₁₀ axes.
//!
//! Log axes are drawn by plotting log₁₀ of the data on a linear axis and labelling the
//! ticks with 10^x; a lower error bar that would cross zero on a log axis is cut at the
//! smallest positive value of the plot.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

/// One line: (x, mean, sd) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draw `series` into an SVG file.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> anyhow::Result<()> {
    let all: Vec<(f64, f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    anyhow::ensure!(!all.is_empty(), "nothing to plot for {}", path.display());
    let log_x = log_x && all.iter().all(|p| p.0 > 0.0);
    let log_y = log_y && all.iter().all(|p| p.1 > 0.0);
    let floor = all
        .iter()
        .map(|p| p.1)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let tx = |v: f64| if log_x { v.log10() } else { v };
    let ty = |v: f64| if log_y { v.max(floor * 0.5).log10() } else { v };
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(tx(p.0)), b.max(tx(p.0)))
        });
    let (mut y0, mut y1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(ty(p.1 - p.2)), b.max(ty(p.1 + p.2)))
        });
    let pad = |lo: &mut f64, hi: &mut f64| {
        let span = (*hi - *lo).max(1e-9);
        *lo -= 0.05 * span;
        *hi += 0.05 * span;
    };
    pad(&mut x0, &mut x1);
    pad(&mut y0, &mut y1);

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let fmt = |log: bool| {
        move |v: &f64| {
            if log {
                super::table::num(10f64.powf(*v))
            } else {
                super::table::num(*v)
            }
        }
    };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&fmt(log_x))
        .y_label_formatter(&fmt(log_y))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|p| (tx(p.0), ty(p.1)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(
                s.points
                    .iter()
                    .filter(|p| p.1.is_finite() && p.2 > 0.0)
                    .map(|p| {
                        PathElement::new(
                            vec![(tx(p.0), ty(p.1 - p.2)), (tx(p.0), ty(p.1 + p.2))],
                            color.stroke_width(1),
                        )
                    }),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
