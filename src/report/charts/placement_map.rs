//! The placement map: one row per layer, one block of slots per GPU, each slot coloured by the
//! load of the expert it holds; replicated experts marked with a ring.

use plotters::prelude::*;

use super::{int_label, svg, text};
use crate::report::palette::viridis;

/// Gap between GPU blocks, in slot widths.
const GAP: f64 = 0.8;

/// Draws `map[layer][slot]` (slot p on GPU `p / slots_per_gpu`) coloured by `share[layer][expert]`
/// (relative to its maximum); experts with `replicas[layer][expert] > 1` get a ring in every slot.
pub fn placement_map(
    map: &[Vec<u16>],
    replicas: &[Vec<u32>],
    share: &[Vec<f64>],
    slots_per_gpu: usize,
) -> anyhow::Result<String> {
    let layers = map.len();
    let phys = map.first().map_or(0, Vec::len);
    let gpus = phys.div_ceil(slots_per_gpu.max(1));
    let max = share.iter().flatten().copied().fold(0.0, f64::max);
    let x_of = |p: usize| p as f64 + (p / slots_per_gpu) as f64 * GAP;
    let width = x_of(phys.saturating_sub(1)) + 1.0;
    let h = (layers as u32 * 14).clamp(120, 900) + 90;
    svg(super::WIDTH, h, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .margin_top(28)
            .x_label_area_size(30)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..width, 0f64..layers as f64)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(layers.min(14))
            .y_label_formatter(&int_label)
            .y_desc("MoE layer")
            .label_style(text(12))
            .axis_desc_style(text(13))
            .draw()?;
        let cells = map.iter().enumerate().flat_map(|(l, row)| {
            row.iter()
                .enumerate()
                .map(move |(p, &e)| (l, p, e as usize))
        });
        chart.draw_series(cells.clone().map(|(l, p, e)| {
            let v = if max > 0.0 { share[l][e] / max } else { 0.0 };
            let x = x_of(p);
            Rectangle::new(
                [(x + 0.04, l as f64 + 0.06), (x + 0.96, l as f64 + 0.94)],
                viridis(v).filled(),
            )
        }))?;
        chart.draw_series(
            cells
                .filter(|&(l, _, e)| replicas[l][e] > 1)
                .map(|(l, p, _)| {
                    let c = (x_of(p) + 0.5, l as f64 + 0.5);
                    EmptyElement::at(c)
                        + Circle::new((0, 0), 4, WHITE.filled())
                        + Circle::new((0, 0), 4, BLACK.stroke_width(1))
                }),
        )?;
        for g in 0..gpus {
            let mid = x_of(g * slots_per_gpu) + slots_per_gpu as f64 / 2.0;
            let (px, py) = chart.backend_coord(&(mid, layers as f64));
            root.draw(&Text::new(format!("GPU {g}"), (px - 18, py - 20), text(13)))?;
        }
        Ok(())
    })
}
