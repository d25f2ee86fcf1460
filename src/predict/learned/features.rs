//! The learned model's sparse input: which embedding rows a (token, layer, h) case sums, with
//! which weights. Shared by training (candle) and inference (plain Rust), so they cannot drift.
//!
//! Row layout of the embedding table, `L = moe_layers`, `E = experts`, `D = lookahead`:
//! slot s in 0..SLOTS owns rows `s*L*E + layer*E + expert`; then one "absent" row per slot
//! `SLOTS*L*E + s` (the slot's layer does not exist, or there is no previous token); then `L*D`
//! context rows `SLOTS*(L*E + 1) + l*D + (h-1)` (one per source layer and look-ahead).

use crate::predict::RoutingView;
use crate::trace::ModelShape;

/// How many layers of the current token's routing are read: l, l-1, .., l-CURRENT+1.
pub const CURRENT: usize = 4;
/// Expert slots: the current token at [`CURRENT`] layers ending at l; the previous token at l+h,
/// l+h+1 and l.
pub const SLOTS: usize = CURRENT + 3;

/// Embedding rows of a model of this shape and look-ahead.
pub fn rows(shape: &ModelShape, lookahead: usize) -> usize {
    SLOTS * (shape.moe_layers * shape.experts + 1) + shape.moe_layers * lookahead
}

/// Features per case: `SLOTS * top_k` expert rows and one context row.
pub fn per_case(shape: &ModelShape) -> usize {
    SLOTS * shape.top_k + 1
}

/// Calls `f(row, weight)` for each feature of case (`view`, `h`), always [`per_case`] times
/// (an absent slot gives its absent row once, then row 0 with weight 0, so batches keep a fixed
/// width).
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
            f(SLOTS * layers * e + sl, 1.0);
            for _ in 1..k {
                f(0, 0.0);
            }
        }
    };
    for back in 0..CURRENT {
        let ly = l.checked_sub(back);
        slot(back, ly, ly.map(|x| view.current_at(x)));
    }
    let t = l + h;
    slot(CURRENT, Some(t), view.previous_at(t));
    let t1 = (t + 1 < layers).then_some(t + 1);
    slot(CURRENT + 1, t1, t1.and_then(|x| view.previous_at(x)));
    slot(CURRENT + 2, Some(l), view.previous_at(l));
    f(SLOTS * (layers * e + 1) + l * lookahead + (h - 1), 1.0);
}
