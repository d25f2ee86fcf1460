//! Bar charts: per-GPU load per layer, one value per layer, stacked time per token.

use plotters::prelude::*;

use plotters::coord::types::RangedCoordf64;

use super::{Area, int_label, svg, text};
use crate::report::palette::OKABE_ITO;

const BLUE: RGBColor = OKABE_ITO[0];
const VERMILLION: RGBColor = OKABE_ITO[1];

/// Axes of a per-layer bar chart: layers along x, `0..y_max` along y with `decimals` digits.
fn layer_axes<'a, 'b>(
    root: &'a Area<'b>,
    layers: usize,
    y_max: f64,
    decimals: usize,
    x_desc: &str,
    y_desc: &str,
) -> anyhow::Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(root)
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.1f64..layers as f64, 0f64..y_max)?;
    let fmt = |v: &f64| format!("{v:.decimals$}");
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(layers.min(14))
        .x_label_formatter(&int_label)
        .y_labels(5)
        .y_label_formatter(&fmt)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(text(12))
        .axis_desc_style(text(13))
        .draw()?;
    Ok(chart)
}

/// Per layer, one thin bar per GPU (`relative[layer][gpu]`, load over the layer's mean); the
/// layer's busiest GPU in vermillion, the others blue; a dashed line at 1 (perfect balance).
/// `y_max` fixes the scale so that charts of several plans compare.
pub fn gpu_load_bars(relative: &[Vec<f64>], y_max: f64) -> anyhow::Result<String> {
    let layers = relative.len();
    let gpus = relative.first().map_or(1, Vec::len).max(1);
    svg(super::WIDTH, 210, |root| {
        let mut chart = layer_axes(
            root,
            layers,
            y_max,
            1,
            "MoE layer (one bar per GPU)",
            "GPU load / mean",
        )?;
        let w = 0.84 / gpus as f64;
        chart.draw_series(relative.iter().enumerate().flat_map(|(l, row)| {
            let busiest = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(g, _)| g);
            row.iter().enumerate().map(move |(g, &v)| {
                let x0 = l as f64 + 0.08 + g as f64 * w;
                let c = if g == busiest { VERMILLION } else { BLUE };
                Rectangle::new([(x0, 0.0), (x0 + w * 0.9, v.min(y_max))], c.filled())
            })
        }))?;
        chart.draw_series(DashedLineSeries::new(
            [(-0.1, 1.0), (layers as f64, 1.0)],
            6,
            4,
            BLACK.stroke_width(1),
        ))?;
        Ok(())
    })
}

/// One bar per layer (`values[layer]`), described by `y_desc`.
pub fn per_layer_bars(values: &[f64], y_desc: &str) -> anyhow::Result<String> {
    let layers = values.len();
    let top = values.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.1;
    svg(super::WIDTH, 200, |root| {
        let mut chart = layer_axes(root, layers, top, 3, "MoE layer", y_desc)?;
        chart.draw_series(values.iter().enumerate().map(|(l, &v)| {
            Rectangle::new(
                [(l as f64 + 0.15, 0.0), (l as f64 + 0.85, v)],
                BLUE.filled(),
            )
        }))?;
        Ok(())
    })
}

/// Stacked bars, one per category: `parts[i] = (label, values per category)` stacked bottom up
/// in Okabe-Ito order, with a legend.
pub fn stacked_time_bars(
    categories: &[String],
    parts: &[(String, Vec<f64>)],
    y_desc: &str,
) -> anyhow::Result<String> {
    let n = categories.len();
    let totals: Vec<f64> = (0..n)
        .map(|i| parts.iter().map(|(_, v)| v[i]).sum())
        .collect();
    let top = totals.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.25;
    svg(super::WIDTH, 300, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..top)?;
        let cat = |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                categories[i as usize].clone()
            } else {
                String::new()
            }
        };
        let fmt = |v: &f64| format!("{v:.2}");
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&cat)
            .y_labels(6)
            .y_label_formatter(&fmt)
            .y_desc(y_desc)
            .label_style(text(13))
            .axis_desc_style(text(13))
            .draw()?;
        let mut base = vec![0.0; n];
        for (k, (label, vals)) in parts.iter().enumerate() {
            let c = OKABE_ITO[k % OKABE_ITO.len()];
            let bars: Vec<_> = (0..n)
                .map(|i| {
                    let r = Rectangle::new(
                        [
                            (i as f64 - 0.3, base[i]),
                            (i as f64 + 0.3, base[i] + vals[i]),
                        ],
                        c.filled(),
                    );
                    base[i] += vals[i];
                    r
                })
                .collect();
            chart
                .draw_series(bars)?
                .label(label.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        }
        chart.draw_series(totals.iter().enumerate().map(|(i, &t)| {
            Text::new(
                format!("{t:.3}"),
                (i as f64 - 0.12, t + top * 0.07),
                text(12),
            )
        }))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(text(13))
            .draw()?;
        Ok(())
    })
}
