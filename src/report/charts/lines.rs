//! Line charts with markers and a legend (hit ratio against capacity, recall against
//! look-ahead).

use plotters::prelude::*;

use super::{svg, text};

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
    /// Colour.
    pub colour: RGBColor,
    /// Dashed (a bound, or a second variant of the same series).
    pub dashed: bool,
}

/// A line chart of `series` over `x_range` x `y_range`; x ticks at `x_ticks` only, y labels
/// with two decimals.
pub fn line_chart(
    series: &[Series],
    x_ticks: &[f64],
    y_range: (f64, f64),
    x_desc: &str,
    y_desc: &str,
) -> anyhow::Result<String> {
    line_chart_with(series, x_ticks, y_range, x_desc, y_desc, 2)
}

/// [`line_chart`] with y labels of `y_decimals` decimals.
pub fn line_chart_with(
    series: &[Series],
    x_ticks: &[f64],
    y_range: (f64, f64),
    x_desc: &str,
    y_desc: &str,
    y_decimals: usize,
) -> anyhow::Result<String> {
    let (x0, x1) = x_ticks
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let pad = (x1 - x0).max(1.0) * 0.04;
    // Room right of the last point for the legend, so that it covers no line.
    let room = (x1 - x0).max(1.0) * 0.28;
    svg(super::WIDTH, 360, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x0 - pad)..(x1 + pad + room), y_range.0..y_range.1)?;
        let ticks = x_ticks.to_vec();
        let xfmt = move |v: &f64| {
            if ticks.iter().any(|t| (t - v).abs() < 1e-6) {
                format!("{}", v.round() as i64)
            } else {
                String::new()
            }
        };
        let yfmt = |v: &f64| format!("{v:.y_decimals$}");
        chart
            .configure_mesh()
            .x_labels(((x1 - x0).round() as usize + 1).min(80))
            .x_label_formatter(&xfmt)
            .y_labels(6)
            .y_label_formatter(&yfmt)
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
            .label_style(text(12))
            .axis_desc_style(text(13))
            .draw()?;
        for s in series {
            let style = s.colour.stroke_width(2);
            let pts = s.points.clone();
            if s.dashed {
                chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, style))?;
            } else {
                chart.draw_series(LineSeries::new(pts.clone(), style))?;
            }
            let c = s.colour;
            let dashed = s.dashed;
            let r = if dashed { 4 } else { 3 };
            chart
                .draw_series(pts.iter().map(|&p| {
                    EmptyElement::at(p) + Rectangle::new([(-r, -r), (r, r)], c.filled())
                }))?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(
                        vec![(x, y), (x + 22, y)],
                        c.stroke_width(if dashed { 1 } else { 3 }),
                    )
                });
        }
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
