//! Heatmap of a `[row][column]` matrix (layer x expert) with a colour bar.

use plotters::prelude::*;

use super::{int_label, svg, text};
use crate::report::palette::{diverging, viridis};

/// How values map to colours.
#[derive(Debug, Clone, Copy)]
pub enum Scale {
    /// Viridis from 0 to `max`.
    Sequential {
        /// Value drawn yellow.
        max: f64,
    },
    /// Purple-white-orange from `-max_abs` to `max_abs`.
    Diverging {
        /// Magnitude drawn at either end.
        max_abs: f64,
    },
}

impl Scale {
    fn colour(self, v: f64) -> RGBColor {
        match self {
            Scale::Sequential { max } => viridis(if max > 0.0 { v / max } else { 0.0 }),
            Scale::Diverging { max_abs } => {
                diverging(if max_abs > 0.0 { v / max_abs } else { 0.0 })
            }
        }
    }

    fn range(self) -> (f64, f64) {
        match self {
            Scale::Sequential { max } => (0.0, max.max(f64::MIN_POSITIVE)),
            Scale::Diverging { max_abs } => {
                let m = max_abs.max(f64::MIN_POSITIVE);
                (-m, m)
            }
        }
    }
}

/// A heatmap of `values[row][col]`, rows bottom to top, with axis descriptions and a colour bar
/// described by `legend` (values shown there are multiplied by `legend_scale`, e.g. 100 for %).
pub fn heatmap(
    values: &[Vec<f64>],
    scale: Scale,
    x_desc: &str,
    y_desc: &str,
    legend: &str,
    legend_scale: f64,
) -> anyhow::Result<String> {
    let rows = values.len();
    let cols = values.first().map_or(0, Vec::len);
    let h = (rows as u32 * 13).clamp(120, 900) + 70;
    svg(super::WIDTH, h, |root| {
        let (main, bar) = root.split_horizontally(super::WIDTH - 110);
        let mut chart = ChartBuilder::on(&main)
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..cols as f64, 0f64..rows as f64)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(cols.min(17))
            .y_labels(rows.min(14))
            .x_label_formatter(&int_label)
            .y_label_formatter(&int_label)
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style(text(12))
            .axis_desc_style(text(13))
            .draw()?;
        chart.draw_series(values.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().map(move |(c, &v)| {
                Rectangle::new(
                    [(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)],
                    scale.colour(v).filled(),
                )
            })
        }))?;
        colour_bar(&bar, scale, legend, legend_scale)
    })
}

/// A vertical colour bar for `scale`.
fn colour_bar(
    area: &super::Area<'_>,
    scale: Scale,
    legend: &str,
    legend_scale: f64,
) -> anyhow::Result<()> {
    let (lo, hi) = scale.range();
    let mut bar = ChartBuilder::on(area)
        .margin_top(8)
        .margin_bottom(48)
        .margin_right(8)
        .y_label_area_size(58)
        .build_cartesian_2d(0f64..1.0, lo..hi)?;
    let fmt = |v: &f64| format!("{:.1}", v * legend_scale);
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&fmt)
        .y_desc(legend)
        .label_style(text(11))
        .axis_desc_style(text(12))
        .draw()?;
    let steps = 64;
    bar.draw_series((0..steps).map(|i| {
        let a = lo + (hi - lo) * i as f64 / steps as f64;
        let b = lo + (hi - lo) * (i + 1) as f64 / steps as f64;
        Rectangle::new([(0.0, a), (1.0, b)], scale.colour(0.5 * (a + b)).filled())
    }))?;
    Ok(())
}
