//! The report's charts, drawn with plotters' SVG backend. Each function returns one `<svg>`
//! element as a string; text is left to the browser's fonts.

mod affinity;
mod bars;
mod heatmap;
mod lines;
mod placement_map;

pub use affinity::{AffinityGraph, affinity_graph};
pub use bars::{gpu_load_bars, per_layer_bars, stacked_time_bars};
pub use heatmap::{Scale, heatmap};
pub use lines::{Series, line_chart, line_chart_with};
pub use placement_map::placement_map;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Width of every chart, pixels.
pub const WIDTH: u32 = 960;

/// The font of labels and legends.
pub(crate) const FONT: &str = "sans-serif";

/// A drawing area on a string.
pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws `f` on a white `w` x `h` SVG and returns the SVG text.
pub(crate) fn svg(
    w: u32,
    h: u32,
    f: impl FnOnce(&Area<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        f(&root)?;
        root.present()?;
    }
    Ok(out)
}

/// Label text style of a given size.
pub(crate) fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Integer tick labels (`3.0` -> `3`), nothing between integers.
pub(crate) fn int_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}
