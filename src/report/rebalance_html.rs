//! The re-balancing sections: the imbalance of each policy's plan on every window, and the
//! experts each re-balance moved.

use super::charts::{Series, line_chart, line_chart_with};
use super::data::RebalanceData;
use super::html::Section;
use super::palette::category;
use super::titles;

/// Writes both re-balancing sections.
pub(super) fn sections(d: &RebalanceData, out: &mut String) -> anyhow::Result<()> {
    let r = &d.report;
    let scored = r.windows.saturating_sub(1);
    let ticks: Vec<f64> = (1..=scored).map(|i| i as f64).collect();
    let series = |f: fn(&crate::rebalance::WindowRow) -> f64| -> Vec<Series> {
        r.policies
            .iter()
            .enumerate()
            .map(|(i, p)| Series {
                label: p.name.clone(),
                points: (1..)
                    .zip(&p.series)
                    .map(|(x, w)| (x as f64, f(w)))
                    .collect(),
                colour: category(i),
                dashed: false,
            })
            .collect()
    };
    let ir = series(|w| w.ir);
    let top = ir
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let summary: Vec<String> = r
        .policies
        .iter()
        .map(|p| format!("{} {:.3}", p.name, p.mean_ir))
        .collect();
    Section {
        title: titles::REBALANCE,
        what: format!(
            "{} as one stream of {} tokens in {} windows of {}: after each window every policy \
             may re-plan from what it has seen, and its plan is scored on the next window (IR: \
             busiest GPU / mean, mean over layers; 1 = perfect balance). static keeps one plan; \
             eplb re-runs EPLB on the last window; moeplan moves at most {} replicas from the \
             plan in service, on decayed counts (half-life {} windows). Mean IR: {}.",
            d.stream,
            r.tokens,
            r.windows,
            r.window,
            r.move_budget,
            r.history_half_life,
            summary.join(", ")
        ),
        body: line_chart(
            &ir,
            &ticks,
            (1.0, top * 1.05),
            "scored window",
            "IR on the window",
        )?,
        command: &d.command,
    }
    .write(out);
    let moves = series(|w| w.moves as f64);
    let most = moves
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let per: Vec<String> = r
        .policies
        .iter()
        .map(|p| {
            format!(
                "{} {:.1} ({:.2} GB)",
                p.name,
                p.moves_per_rebalance,
                p.bytes_moved_per_rebalance / 1e9
            )
        })
        .collect();
    Section {
        title: titles::REBALANCE_MOVES,
        what: format!(
            "(layer, expert) replicas copied to a GPU that did not hold them, by the re-balance \
             before each scored window; mean per re-balance: {}.",
            per.join(", ")
        ),
        body: line_chart_with(
            &moves,
            &ticks,
            (0.0, most * 1.1),
            "scored window",
            "replicas moved",
            0,
        )?,
        command: &d.command,
    }
    .write(out);
    Ok(())
}
