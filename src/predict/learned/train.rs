//! Training the learned predictor with candle: cross-fitted markov features, BCE over the 64
//! experts of the target layer, AdamW, early stopping on a held-out split of the training data.
//! Deterministic: initial weights and the shuffling come from `seed` alone.

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;

use super::bag::Bag;
use super::{LearnedPredictor, MARKOV_EPS, MAX_HIDDEN, features, ln_approx};
use crate::predict::{
    MarkovPredictor, PredictError, Predictor, RoutingView, StaticPredictor, TemporalPredictor,
};
use crate::trace::{ModelShape, Trace};
use crate::util::Progress;
use crate::util::rng::SeededRng;

/// Training settings.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOptions {
    /// Largest look-ahead h.
    pub lookahead: usize,
    /// Hidden width of the MLP.
    pub hidden: usize,
    /// Most epochs (early stopping may end sooner).
    pub epochs: usize,
    /// Epochs without a better held-out loss before stopping.
    pub patience: usize,
    /// Cases per optimiser step.
    pub batch: usize,
    /// AdamW peak learning rate (cosine decay to `lr * lr_floor` over the planned steps).
    pub lr: f64,
    /// Final learning rate as a fraction of `lr`.
    pub lr_floor: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Seed of the initial weights and the shuffling.
    pub seed: u64,
    /// Every n-th sequence of each training trace is held out for early stopping.
    pub holdout_every: usize,
    /// Training cases per epoch: a fresh random subset of all cases each epoch (all if `None`).
    pub max_cases: Option<usize>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            lookahead: 4,
            hidden: 128,
            epochs: 10,
            patience: 2,
            batch: 2048,
            lr: 5e-3,
            lr_floor: 0.05,
            weight_decay: 1e-4,
            seed: 0,
            holdout_every: 10,
            max_cases: Some(200_000),
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss (BCE per expert).
    pub train_loss: f64,
    /// Mean held-out loss.
    pub holdout_loss: f64,
    /// Seconds since training started.
    pub elapsed_s: f64,
}

/// What a training run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Per epoch.
    pub epochs: Vec<EpochReport>,
    /// The epoch whose weights were kept (lowest held-out loss).
    pub best_epoch: usize,
    /// Training cases per epoch.
    pub train_cases: usize,
    /// Held-out cases.
    pub holdout_cases: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// One case: fold, token, source layer, look-ahead.
#[derive(Debug, Clone, Copy)]
struct Case {
    fold: u16,
    t: u32,
    l: u16,
    h: u16,
}

/// A batch as flat host arrays.
struct Batch {
    n: usize,
    rows: Vec<u32>,
    weights: Vec<f32>,
    ln_markov: Vec<f32>,
    temporal: Vec<f32>,
    target: Vec<f32>,
    /// The target layer l+h, the same for every case of a batch (it picks the output head).
    target_layer: usize,
    hop: Vec<u32>,
}

/// The trainable parameters: the embedding bag by hand, the rest as candle variables.
struct Net {
    emb: Bag,
    b1: Var,
    w_out: Var,
    b_out: Var,
    alpha: Var,
}

fn var(values: Vec<f32>, shape: &[usize]) -> Result<Var, PredictError> {
    Ok(Var::from_tensor(&Tensor::from_vec(
        values,
        shape,
        &Device::Cpu,
    )?)?)
}

fn normal_vec(rng: &mut SeededRng, n: usize, std: f32) -> Vec<f32> {
    (0..n).map(|_| rng.normal() * std).collect()
}

impl Net {
    fn init(
        shape: &ModelShape,
        lookahead: usize,
        hidden: usize,
        seed: u64,
    ) -> Result<Net, PredictError> {
        let mut rng = SeededRng::new(seed ^ 0x6c65_6172_6e65_6400);
        let rows = features::rows(shape, lookahead);
        let e = shape.experts;
        Ok(Net {
            emb: Bag::new(normal_vec(&mut rng, rows * hidden, 0.05), hidden),
            b1: var(vec![0.0; hidden], &[hidden])?,
            w_out: var(
                normal_vec(&mut rng, shape.moe_layers * hidden * e, 0.01),
                &[shape.moe_layers, hidden, e],
            )?,
            b_out: var(vec![0.0; shape.moe_layers * e], &[shape.moe_layers, e])?,
            alpha: var([1.0, 0.0].repeat(lookahead), &[lookahead, 2])?,
        })
    }

    fn vars(&self) -> Vec<Var> {
        vec![
            self.b1.clone(),
            self.w_out.clone(),
            self.b_out.clone(),
            self.alpha.clone(),
        ]
    }

    /// Logits `[n][experts]` from the embedding bag's output `bag` (`[n][hidden]`).
    fn forward(&self, b: &Batch, bag: &Tensor, e: usize) -> candle_core::Result<Tensor> {
        let dev = Device::Cpu;
        let x = bag.broadcast_add(&self.b1)?.relu()?;
        let hop = Tensor::from_slice(&b.hop, b.n, &dev)?;
        let lnm = Tensor::from_slice(&b.ln_markov, (b.n, e), &dev)?;
        let temporal = Tensor::from_slice(&b.temporal, (b.n, e), &dev)?;
        let ab = self.alpha.index_select(&hop, 0)?;
        let (alpha, beta) = (ab.narrow(1, 0, 1)?, ab.narrow(1, 1, 1)?);
        x.matmul(&self.w_out.get(b.target_layer)?)?
            .broadcast_add(&self.b_out.get(b.target_layer)?)?
            .add(&lnm.broadcast_mul(&alpha)?)?
            .add(&temporal.broadcast_mul(&beta)?)
    }

    /// One optimiser step on batch `b`; returns its mean loss. `bag` is scratch.
    fn step(
        &mut self,
        b: &Batch,
        opt: &mut AdamW,
        opts: &TrainOptions,
        bag: &mut Vec<f32>,
    ) -> Result<f64, PredictError> {
        let (e, nf) = (b.target.len() / b.n, b.rows.len() / b.n);
        let lr = opt.learning_rate();
        self.emb.forward(&b.rows, &b.weights, nf, bag);
        let x0 = Var::from_tensor(&Tensor::from_slice(
            bag,
            (b.n, self.emb.hidden),
            &Device::Cpu,
        )?)?;
        let loss = bce(
            &self.forward(b, x0.as_tensor(), e)?,
            &Tensor::from_slice(&b.target, (b.n, e), &Device::Cpu)?,
        )?;
        let grads = loss.backward()?;
        opt.step(&grads)?;
        let d_bag = grads
            .get(x0.as_tensor())
            .ok_or_else(|| PredictError::Invalid("no gradient for the embedding bag".into()))?
            .flatten_all()?
            .to_vec1::<f32>()?;
        self.emb.backward(&b.rows, &b.weights, nf, &d_bag);
        self.emb.step(lr as f32, opts.weight_decay as f32);
        Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    }

    fn to_vec(v: &Var) -> candle_core::Result<Vec<f32>> {
        v.as_tensor().flatten_all()?.to_vec1::<f32>()
    }

    fn snapshot(&self) -> candle_core::Result<[Vec<f32>; 5]> {
        Ok([
            self.emb.table.clone(),
            Self::to_vec(&self.b1)?,
            Self::to_vec(&self.w_out)?,
            Self::to_vec(&self.b_out)?,
            Self::to_vec(&self.alpha)?,
        ])
    }
}

/// Numerically stable mean binary cross-entropy with logits.
fn bce(logits: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    (logits.relu()? - logits.mul(target)?)?
        .add(&softplus)?
        .mean_all()
}

/// Builds a batch; markov features come from the markov fitted without the case's fold.
fn batch(cases: &[Case], folds: &[&Trace], fold_markov: &[MarkovPredictor], d: usize) -> Batch {
    let shape = *folds[0].shape();
    let (e, nf) = (shape.experts, features::per_case(&shape));
    let n = cases.len();
    let mut b = Batch {
        n,
        rows: Vec::with_capacity(n * nf),
        weights: Vec::with_capacity(n * nf),
        ln_markov: vec![0.0; n * e],
        temporal: vec![0.0; n * e],
        target: vec![0.0; n * e],
        target_layer: cases.first().map_or(0, |c| (c.l + c.h) as usize),
        hop: Vec::with_capacity(n),
    };
    for (i, c) in cases.iter().enumerate() {
        let tr = folds[c.fold as usize];
        let (t, l, h) = (c.t as usize, c.l as usize, c.h as usize);
        let view = RoutingView::from_trace(tr, t, l);
        features::for_each(&view, h, d, |r, w| {
            b.rows.push(r as u32);
            b.weights.push(w);
        });
        let m = &mut b.ln_markov[i * e..(i + 1) * e];
        fold_markov[c.fold as usize].score(&view, h, m);
        for x in m.iter_mut() {
            *x = ln_approx(*x + MARKOV_EPS);
        }
        TemporalPredictor::add_into(&view, l + h, 1.0, &mut b.temporal[i * e..(i + 1) * e]);
        for &x in tr.experts(t, l + h) {
            b.target[i * e + x as usize] = 1.0;
        }
        debug_assert_eq!(b.target_layer, l + h, "a batch has one target layer");
        b.hop.push((h - 1) as u32);
    }
    b
}

/// Splits every (token, layer, h) case of the folds into training and held-out cases.
fn cases(folds: &[&Trace], opts: &TrainOptions) -> (Vec<Case>, Vec<Case>) {
    let (mut train, mut hold) = (Vec::new(), Vec::new());
    for (f, tr) in folds.iter().enumerate() {
        let layers = tr.shape().moe_layers;
        let nseq = tr.num_sequences();
        let every = opts.holdout_every;
        for (si, r) in tr.sequences().enumerate() {
            // Every n-th sequence; a fold with fewer sequences gives its last one.
            let held = every > 0
                && ((si + 1) % every == 0 || (nseq < every && nseq > 1 && si + 1 == nseq));
            let dst = if held { &mut hold } else { &mut train };
            for t in r {
                for l in 0..layers - 1 {
                    for h in 1..=opts.lookahead.min(layers - 1 - l) {
                        dst.push(Case {
                            fold: f as u16,
                            t: t as u32,
                            l: l as u16,
                            h: h as u16,
                        });
                    }
                }
            }
        }
    }
    (train, hold)
}

/// Splits `cases` into batches of at most `size` cases with one target layer (l + h) each, in
/// target-layer order; each batch keeps the order the cases had.
fn by_target(cases: &[Case], size: usize, layers: usize) -> Vec<Vec<Case>> {
    let mut groups = vec![Vec::new(); layers];
    for c in cases {
        groups[(c.l + c.h) as usize].push(*c);
    }
    groups
        .iter()
        .flat_map(|g| g.chunks(size).map(<[Case]>::to_vec))
        .collect()
}

/// Keeps a random `max` of the cases (a stride would alias with the (layer, h) cycle of each
/// token and drop whole look-aheads).
fn thin(mut cases: Vec<Case>, max: usize, rng: &mut SeededRng) -> Vec<Case> {
    if cases.len() > max {
        rng.shuffle(&mut cases);
        cases.truncate(max);
    }
    cases
}

/// Trains the MLP on `folds` (two or more; the markov feature of each fold comes from the others,
/// so the network learns how far to trust markov out of sample). `markov` (fitted on all folds)
/// is the feature at inference. `progress` counts training cases.
pub fn train(
    folds: &[&Trace],
    markov: Arc<MarkovPredictor>,
    opts: &TrainOptions,
    progress: &dyn Progress,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(LearnedPredictor, TrainReport), PredictError> {
    let start = Instant::now();
    let shape = *markov.shape();
    let d = opts.lookahead;
    if opts.hidden == 0 || opts.hidden > MAX_HIDDEN {
        return Err(PredictError::Invalid(format!(
            "hidden width must be in 1..={MAX_HIDDEN}"
        )));
    }
    if d != markov.lookahead() {
        return Err(PredictError::Invalid(
            "markov look-ahead differs from the options'".into(),
        ));
    }
    let fold_markov: Vec<MarkovPredictor> = (0..folds.len())
        .map(|i| {
            let rest: Vec<&Trace> = (0..folds.len())
                .filter(|&j| j != i)
                .map(|j| folds[j])
                .collect();
            let tr = Trace::concat(&rest).map_err(PredictError::Invalid)?;
            let stat = StaticPredictor::fit(&tr, d);
            Ok(MarkovPredictor::fit(&tr, d, &stat))
        })
        .collect::<Result<_, PredictError>>()?;
    let mut rng = SeededRng::new(opts.seed);
    let (mut train_cases, hold) = cases(folds, opts);
    let per_epoch = opts
        .max_cases
        .map_or(train_cases.len(), |m| m.min(train_cases.len()));
    let hold = thin(
        hold,
        opts.max_cases.map_or(50_000, |m| (m / 5).max(1)),
        &mut rng,
    );
    if train_cases.is_empty() || hold.is_empty() {
        return Err(PredictError::Invalid(
            "too little training data for a held-out split".into(),
        ));
    }
    let (e, nf) = (shape.experts, features::per_case(&shape));
    let mut net = Net::init(&shape, d, opts.hidden, opts.seed)?;
    let mut opt = AdamW::new(
        net.vars(),
        ParamsAdamW {
            lr: opts.lr,
            weight_decay: opts.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let batch_size = opts.batch.max(1);
    let layers = shape.moe_layers;
    let hold_batches: Vec<Batch> = by_target(&hold, batch_size, layers)
        .iter()
        .map(|c| batch(c, folds, &fold_markov, d))
        .collect();
    let mut best = (f64::INFINITY, 0usize, net.snapshot()?);
    let mut epochs = Vec::new();
    let max_epochs = opts.epochs.max(1);
    // Each target layer's group of cases ends in at most one partial batch.
    let total_steps = (max_epochs * (per_epoch.div_ceil(batch_size) + layers)) as f64;
    let mut step = 0usize;
    let mut bag = Vec::new();
    let hd = opts.hidden;
    for epoch in 1..=max_epochs {
        // A fresh random `per_epoch` of all training cases each epoch, in batches of one target
        // layer each, the batches in random order.
        rng.shuffle(&mut train_cases);
        let mut chunks = by_target(&train_cases[..per_epoch], batch_size, layers);
        rng.shuffle(&mut chunks);
        let mut sum = 0.0;
        for chunk in &chunks {
            let b = batch(chunk, folds, &fold_markov, d);
            // Cosine decay from lr to lr * lr_floor over the planned steps.
            let frac = (step as f64 / total_steps).min(1.0);
            let cos = 0.5 * (1.0 + (std::f64::consts::PI * frac).cos());
            opt.set_learning_rate(opts.lr * (opts.lr_floor + (1.0 - opts.lr_floor) * cos));
            step += 1;
            sum += net.step(&b, &mut opt, opts, &mut bag)? * b.n as f64;
            progress.inc(chunk.len() as u64);
        }
        let mut hsum = 0.0;
        for b in &hold_batches {
            let target = Tensor::from_slice(&b.target, (b.n, e), &Device::Cpu)?;
            net.emb.forward(&b.rows, &b.weights, nf, &mut bag);
            let x0 = Tensor::from_slice(&bag, (b.n, hd), &Device::Cpu)?;
            let loss = bce(&net.forward(b, &x0, e)?.detach(), &target)?;
            hsum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * b.n as f64;
        }
        let rep = EpochReport {
            epoch,
            train_loss: sum / per_epoch as f64,
            holdout_loss: hsum / hold.len() as f64,
            elapsed_s: start.elapsed().as_secs_f64(),
        };
        on_epoch(&rep);
        let improved = rep.holdout_loss < best.0;
        epochs.push(rep);
        if improved {
            best = (epochs[epoch - 1].holdout_loss, epoch, net.snapshot()?);
        } else if epoch - best.1 > opts.patience {
            break;
        }
    }
    let (_, best_epoch, [emb, b1, w_out, b_out, alpha]) = best;
    let model = LearnedPredictor {
        markov,
        lookahead: d,
        hidden: opts.hidden,
        emb,
        b1,
        w_out,
        b_out,
        alpha,
    };
    let report = TrainReport {
        epochs,
        best_epoch,
        train_cases: per_epoch,
        holdout_cases: hold.len(),
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((model, report))
}
