//! The learned model's sparse input: which embedding rows a (token, layer, h) case sums, with
//! which weights. Shared by training (candle) and inference (plain Rust), so they cannot drift.
//!
//! Row layout of the embedding table, `L = moe_layers`, `E = experts`, `D = lookahead`:
//! slot s in 0..SLOTS owns rows `s*L*E + layer*E + expert`; then `L*D` context rows
//! `SLOTS*L*E + l*D + (h-1)` (one per source layer and look-ahead).

use crate::predict::RoutingView;
use crate::trace::ModelShape;

/// Expert slots: current token at l, l-1, l-2; previous token at l+h and at l.
pub const SLOTS: usize = 5;

/// Embedding rows of a model of this shape and look-ahead.
pub fn rows(shape: &ModelShape, lookahead: usize) -> usize {
    SLOTS * shape.moe_layers * shape.experts + shape.moe_layers * lookahead
}

/// Features per case: `SLOTS * top_k` expert rows and one context row.
pub fn per_case(shape: &ModelShape) -> usize {
    SLOTS * shape.top_k + 1
}

/// Calls `f(row, weight)` for each feature of case (`view`, `h`), always [`per_case`] times
/// (absent slots give row 0 with weight 0, so batches keep a fixed width).
#[inline]
pub fn for_each(view: &RoutingView<'_>, h: usize, lookahead: usize, mut f: impl FnMut(usize, f32)) {
    let s = view.shape;
    let (layers, e, k) = (s.moe_layers, s.experts, s.top_k);
    let l = view.layer;
    let mut slot = |sl: usize, layer: Option<usize>, experts: Option<&[u16]>| match (layer, experts)
    {
        (Some(ly), Some(ex)) => {
            for &x in ex {
                f(sl * layers * e + ly * e + x as usize, 1.0);
            }
        }
        _ => {
            for _ in 0..k {
                f(0, 0.0);
            }
        }
    };
    slot(0, Some(l), Some(view.current_at(l)));
    let l1 = l.checked_sub(1);
    slot(1, l1, l1.map(|x| view.current_at(x)));
    let l2 = l.checked_sub(2);
    slot(2, l2, l2.map(|x| view.current_at(x)));
    slot(3, Some(l + h), view.previous_at(l + h));
    slot(4, Some(l), view.previous_at(l));
    f(SLOTS * layers * e + l * lookahead + (h - 1), 1.0);
}
