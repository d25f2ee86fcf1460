//! The strongest inter-layer affinities as a graph: nodes are (layer, expert), edges join an
//! expert to the next layer's expert its tokens favour, drawn with width by lift. The structure
//! is a petgraph graph; connected chains share a colour.

use std::collections::HashMap;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{NodeIndex, UnGraph};
use plotters::prelude::*;

use super::{int_label, svg, text};
use crate::report::palette::category;
use crate::stats::PairStrength;

/// The pairs as an undirected graph: node weights (layer, expert), edge weights the lift.
pub struct AffinityGraph {
    /// The graph.
    pub graph: UnGraph<(usize, u16), f64>,
    /// Per node, the index of its connected component (largest component first).
    pub component: Vec<usize>,
}

impl AffinityGraph {
    /// Builds the graph of `pairs` (each from `layer` to `layer + 1`).
    pub fn new(pairs: &[PairStrength]) -> AffinityGraph {
        let mut graph = UnGraph::new_undirected();
        let mut index: HashMap<(usize, u16), NodeIndex> = HashMap::new();
        let mut node = |g: &mut UnGraph<(usize, u16), f64>, k: (usize, u16)| {
            *index.entry(k).or_insert_with(|| g.add_node(k))
        };
        for p in pairs {
            let a = node(&mut graph, (p.layer, p.from));
            let b = node(&mut graph, (p.layer + 1, p.to));
            graph.add_edge(a, b, p.lift);
        }
        let mut comps = kosaraju_scc(&graph);
        comps.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        let mut component = vec![0; graph.node_count()];
        for (c, members) in comps.iter().enumerate() {
            for n in members {
                component[n.index()] = c;
            }
        }
        AffinityGraph { graph, component }
    }

    /// Connected components (chains of affine experts across layers).
    pub fn components(&self) -> usize {
        self.component.iter().copied().max().map_or(0, |m| m + 1)
    }
}

/// Draws the graph of `pairs` on a `layers` x `experts` grid.
pub fn affinity_graph(
    pairs: &[PairStrength],
    layers: usize,
    experts: usize,
) -> anyhow::Result<String> {
    let g = AffinityGraph::new(pairs);
    let max_lift = g.graph.edge_weights().copied().fold(1.0, f64::max);
    svg(super::WIDTH, 460, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(-0.5f64..layers as f64 - 0.5, -1.5f64..experts as f64 + 0.5)?;
        chart
            .configure_mesh()
            .x_labels(layers.min(26))
            .y_labels(9)
            .x_label_formatter(&int_label)
            .y_label_formatter(&int_label)
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xE4, 0xE4, 0xE4))
            .x_desc("MoE layer")
            .y_desc("expert")
            .label_style(text(12))
            .axis_desc_style(text(13))
            .draw()?;
        let pos = |n: NodeIndex| {
            let (l, e) = g.graph[n];
            (l as f64, e as f64)
        };
        for e in g.graph.edge_indices() {
            let (a, b) = g.graph.edge_endpoints(e).expect("edge");
            let lift = g.graph[e];
            let w = 1 + (5.0 * lift / max_lift).round() as u32;
            let c = category(g.component[a.index()]);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![pos(a), pos(b)],
                c.stroke_width(w),
            )))?;
        }
        chart.draw_series(g.graph.node_indices().map(|n| {
            let c = category(g.component[n.index()]);
            let (_, e) = g.graph[n];
            EmptyElement::at(pos(n))
                + Circle::new((0, 0), 5, c.filled())
                + Text::new(format!("{e}"), (6, -14), text(11))
        }))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(layer: usize, from: u16, to: u16, lift: f64) -> PairStrength {
        PairStrength {
            layer,
            from,
            to,
            count: 100,
            prob: 0.5,
            lift,
        }
    }

    #[test]
    fn chains_join_across_layers_into_components() {
        // 3 -> 7 -> 9 across layers 0..2 is one chain; 1 -> 2 at layer 5 another.
        let g = AffinityGraph::new(&[pair(0, 3, 7, 4.0), pair(1, 7, 9, 3.0), pair(5, 1, 2, 2.0)]);
        assert_eq!(g.graph.node_count(), 5);
        assert_eq!(g.graph.edge_count(), 3);
        assert_eq!(g.components(), 2);
        // The three-node chain is the largest component, numbered 0.
        let chain: Vec<usize> = g
            .graph
            .node_indices()
            .filter(|&n| g.graph[n].0 <= 2)
            .map(|n| g.component[n.index()])
            .collect();
        assert_eq!(chain, vec![0, 0, 0]);
    }
}
