//! SVG line plots with error bars (plotters), on linear or log₁₀ axes.
//!
//! Log axes are drawn by plotting log₁₀ of the data on a linear axis, with ticks at
//! 1, 2 and 5 × 10ᵏ labelled with their values; linear axes get ticks at round steps
//! (1, 2 or 5 × 10ᵏ apart). A lower error bar that would cross zero on a log axis is cut
//! at the smallest positive value of the plot. Error bars are capped, and the series are
//! shifted apart horizontally by a small offset so their bars do not hide each other.

use std::path::Path;

use plotters::prelude::*;

/// One line: (x, mean, sd) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// Colour `i` of [`COLORS`] as an SVG/HTML hex string, for plots drawn without plotters.
pub(crate) fn hex(i: usize) -> String {
    let RGBColor(r, g, b) = COLORS[i % COLORS.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Twelve distinguishable colours (a method grid rarely has more rows).
pub(crate) const COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 0),
];

/// The label of a category axis at `x`: category i sits at x = i; other ticks are blank.
pub(crate) fn category_label(labels: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
        labels[i as usize].clone()
    } else {
        String::new()
    }
}

/// The width of a line plot's plotting canvas, without its legend column.
const PLOT_W: u32 = 640;

/// Draw `series` into an SVG file.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> stab_core::Result<()> {
    let all: Vec<(f64, f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if all.is_empty() {
        return Err(stab_core::internal!(
            "nothing to plot for {}",
            path.display()
        ));
    }
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
    pad(&mut x0, &mut x1, log_x);
    pad(&mut y0, &mut y1, log_y);
    // Counts (runs n, heads H, epochs) get whole-number ticks.
    let integer_x = !log_x && all.iter().all(|p| p.0.fract() == 0.0);

    let entries: Vec<(String, RGBColor)> = series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), COLORS[i % COLORS.len()]))
        .collect();
    let mut svg = String::new();
    let legend = legend_rows(&entries, PLOT_W);
    // A small canvas with large type: pages show plots two to a row, scaled down alike.
    let legend_h = if legend.is_empty() {
        0
    } else {
        16 + LEGEND_ROW * legend.len() as u32
    };
    let root = SVGBackend::with_string(&mut svg, (PLOT_W, 440 + legend_h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| stab_core::internal!("{e}"))?;
    let (plot_area, legend_area) = root.split_vertically(440);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(84)
        .build_cartesian_2d(
            TickedAxis::new(x0, x1, ticks_on(x0, x1, log_x, integer_x)),
            TickedAxis::new(y0, y1, ticks(y0, y1, log_y)),
        )
        .map_err(|e| stab_core::internal!("{e}"))?;
    let fmt = |log: bool| {
        move |v: &f64| {
            if log {
                super::table::label_num(round_sig(10f64.powf(*v)))
            } else {
                super::table::label_num(round_sig(*v))
            }
        }
    };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .x_label_formatter(&fmt(log_x))
        .y_label_formatter(&fmt(log_y))
        .draw()
        .map_err(|e| stab_core::internal!("{e}"))?;
    let k = series.len();
    let cap = 0.006 * (x1 - x0);
    for (i, s) in series.iter().enumerate() {
        let color = entries[i].1;
        // Dodge: series i sits (i − (k − 1)/2)·1.2% of the x span off its x.
        let dx = (i as f64 - (k as f64 - 1.0) / 2.0) * 0.012 * (x1 - x0);
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|p| (tx(p.0) + dx, ty(p.1)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| stab_core::internal!("{e}"))?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| stab_core::internal!("{e}"))?;
        let bars = s
            .points
            .iter()
            .filter(|p| p.1.is_finite() && p.2 > 0.0)
            .flat_map(|p| {
                // On a log axis a bar whose lower end is at or below zero runs to the
                // bottom of the plot without a cap (it continues below it).
                let open = log_y && p.1 - p.2 <= 0.0;
                let x = tx(p.0) + dx;
                let (lo, hi) = (if open { y0 } else { ty(p.1 - p.2) }, ty(p.1 + p.2));
                let mut parts = vec![
                    PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1)),
                    PathElement::new(vec![(x - cap, hi), (x + cap, hi)], color.stroke_width(1)),
                ];
                if !open {
                    parts.push(PathElement::new(
                        vec![(x - cap, lo), (x + cap, lo)],
                        color.stroke_width(1),
                    ));
                }
                parts
            });
        chart
            .draw_series(bars)
            .map_err(|e| stab_core::internal!("{e}"))?;
    }
    drop(chart);
    draw_legend(&legend_area, &legend)?;
    root.present().map_err(|e| stab_core::internal!("{e}"))?;
    drop(plot_area);
    drop(legend_area);
    drop(root);
    stab_core::atomic::write_file(path, svg.as_bytes())
}

/// Height of one legend row, in pixels.
const LEGEND_ROW: u32 = 24;

/// The legend's entries laid out in rows below the plot (none when no series has a
/// name), each entry a swatch and its label at 14 px, wrapped at `width`.
pub(crate) fn legend_rows(
    entries: &[(String, RGBColor)],
    width: u32,
) -> Vec<Vec<(i32, String, RGBColor)>> {
    if entries.iter().all(|(n, _)| n.is_empty()) {
        return Vec::new();
    }
    let mut rows: Vec<Vec<(i32, String, RGBColor)>> = vec![Vec::new()];
    let mut x = 84; // under the plotting area, past the y labels
    for (name, color) in entries {
        let w = 48 + 8 * name.chars().count() as i32;
        if x + w > width as i32 && !rows.last().is_some_and(Vec::is_empty) {
            rows.push(Vec::new());
            x = 84;
        }
        rows.last_mut()
            .expect("a row")
            .push((x, name.clone(), *color));
        x += w;
    }
    rows
}

/// The legend below the plot (never over the data): [`legend_rows`], drawn.
pub(crate) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    rows: &[Vec<(i32, String, RGBColor)>],
) -> stab_core::Result<()> {
    let style = ("sans-serif", 14).into_font().color(&BLACK);
    for (r, row) in rows.iter().enumerate() {
        let y = 8 + (LEGEND_ROW as i32) * r as i32 + LEGEND_ROW as i32 / 2;
        for (x, name, color) in row {
            area.draw(&PathElement::new(
                vec![(*x, y), (x + 24, y)],
                color.stroke_width(3),
            ))
            .map_err(|e| stab_core::internal!("{e}"))?;
            area.draw(&Text::new(name.clone(), (x + 30, y - 8), style.clone()))
                .map_err(|e| stab_core::internal!("{e}"))?;
        }
    }
    Ok(())
}

/// Widen `lo..hi` by 5% each side; a range of one value (every point equal) gets ±5% of
/// that value (at least ±0.5, or ±0.1 decade on a log axis) so its ticks stay distinct.
fn pad(lo: &mut f64, hi: &mut f64, log: bool) {
    let scale = lo.abs().max(hi.abs());
    if *hi - *lo <= 1e-9 * scale.max(1.0) {
        let half = if log { 0.1 } else { (0.05 * scale).max(0.5) };
        *lo -= half;
        *hi += half;
    } else {
        let span = *hi - *lo;
        *lo -= 0.05 * span;
        *hi += 0.05 * span;
    }
}

/// A linear f64 axis whose ticks sit exactly at the given positions (plotters' own
/// algorithm puts them at arbitrary points of a log₁₀-transformed range).
#[derive(Debug, Clone)]
struct TickedAxis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl TickedAxis {
    fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Self {
        Self { lo, hi, ticks }
    }
}

impl plotters::coord::ranged1d::Ranged for TickedAxis {
    type FormatOption = plotters::coord::ranged1d::NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value - self.lo) / (self.hi - self.lo);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl plotters::coord::ranged1d::ValueFormatter<f64> for TickedAxis {
    fn format(value: &f64) -> String {
        super::table::num(*value)
    }
}

/// `v` rounded to 6 significant digits (tick labels without float noise).
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = 10f64.powi(5 - v.abs().log10().floor() as i32);
    (v * mag).round() / mag
}

/// Tick positions in plot space for the range `lo..hi`: on a log axis (plot space is
/// log₁₀) the values 1, 2, 5 × 10ᵏ inside it (every integer mantissa when the range spans
/// less than a factor 5); on a linear axis multiples of a round step giving 4–10 ticks.
pub fn ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    ticks_on(lo, hi, log, false)
}

/// [`ticks`], with steps of at least 1 when `integer` (a linear axis of counts).
fn ticks_on(lo: f64, hi: f64, log: bool, integer: bool) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    if log {
        let pick = |mantissas: &[f64]| -> Vec<f64> {
            let mut out = Vec::new();
            for k in (lo.floor() as i32 - 1)..=(hi.ceil() as i32 + 1) {
                for m in mantissas {
                    let t = (m * 10f64.powi(k)).log10();
                    if t >= lo - 1e-9 && t <= hi + 1e-9 {
                        out.push(t);
                    }
                }
            }
            out
        };
        let coarse = pick(&[1.0, 2.0, 5.0]);
        if coarse.len() >= 3 {
            return coarse;
        }
        let fine = pick(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        if fine.len() >= 2 {
            return fine;
        }
        return ticks(lo, hi, false);
    }
    let raw = (hi - lo) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let step = if integer { step.max(1.0) } else { step };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_sit_at_one_two_five_per_decade() {
        let t: Vec<f64> = ticks(0.0, 2.5, true)
            .iter()
            .map(|v| round_sig(10f64.powf(*v)))
            .collect();
        assert_eq!(t, [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0]);
        // A narrow log range falls back to every integer mantissa.
        let t: Vec<f64> = ticks(1.0f64.log10(), 4.5f64.log10(), true)
            .iter()
            .map(|v| round_sig(10f64.powf(*v)))
            .collect();
        assert_eq!(t, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn linear_ticks_use_round_steps() {
        assert_eq!(
            ticks(0.0, 1.0, false),
            [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(ticks(-3.0, 47.0, false), [0.0, 10.0, 20.0, 30.0, 40.0]);
        // Counts: no ticks between whole numbers.
        assert_eq!(ticks_on(0.95, 2.05, false, true), [1.0, 2.0]);
    }

    #[test]
    fn a_flat_series_gets_distinct_ticks() {
        let (mut lo, mut hi) = (7.197, 7.197);
        pad(&mut lo, &mut hi, false);
        let t = ticks(lo, hi, false);
        assert!(t.len() >= 3, "{t:?}");
        let labels: std::collections::BTreeSet<String> = t
            .iter()
            .map(|v| super::super::table::label_num(round_sig(*v)))
            .collect();
        assert_eq!(labels.len(), t.len(), "{labels:?}");
        let (mut lo, mut hi) = (0.0, 0.0);
        pad(&mut lo, &mut hi, false);
        assert!(ticks(lo, hi, false).len() >= 3);
    }

    #[test]
    fn a_plot_has_labels_a_legend_and_capped_bars() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let s = |name: &str, k: f64| Series {
            name: name.into(),
            points: vec![(1.0, k, 0.1), (5.0, k * 0.8, 0.1), (50.0, k * 0.5, 0.05)],
        };
        line_plot(
            &path,
            "t",
            "H",
            "Δ̂",
            &[s("a", 1.0), s("b", 1.1)],
            true,
            false,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in ["H", "a", "b", "1", "10"] {
            assert!(svg.contains(&format!(">\n{text}\n<")), "{text} missing");
        }
        assert!(!svg.contains("15.849"), "no 10^x ticks");
    }
}
