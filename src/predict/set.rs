//! A trained predictor with the baselines it was built with: what `predict train` writes and
//! what `predict eval`, the cache and the daemon load.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::file::{self, FILE_FORMAT, FILE_VERSION, FileHeader};
use super::{
    LearnedPredictor, MarkovPredictor, MixPredictor, OnlineOptions, OnlinePredictor, PredictError,
    Predictor, StaticPredictor, TemporalPredictor, TrainOptions, TrainReport, fit_mix,
};
use crate::trace::Trace;

/// Which predictor a file's main one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Per-layer expert frequency.
    Static,
    /// Direct h-hop transition matrices.
    Markov,
    /// Cross-validated markov + static + temporal mix.
    Mix,
    /// The candle MLP.
    Learned,
}

/// The main predictor and its baselines (static, temporal, markov; mix for `mix` and `learned`).
#[derive(Debug, Clone)]
pub struct PredictorSet {
    /// The main predictor's kind.
    pub kind: Kind,
    /// Tokens of training data.
    pub trained_tokens: usize,
    /// Per-layer frequency.
    pub stat: Arc<StaticPredictor>,
    /// Previous token at the target layer.
    pub temporal: TemporalPredictor,
    /// h-hop transitions.
    pub markov: Arc<MarkovPredictor>,
    /// The mix (kinds `mix` and `learned`).
    pub mix: Option<MixPredictor>,
    /// The MLP (kind `learned`).
    pub learned: Option<LearnedPredictor>,
    /// Online options cross-validated on the training traces (`None` in files written before
    /// online prediction: [`OnlineOptions::DEFAULT`] is used).
    pub online: Option<OnlineOptions>,
}

/// Splits one trace into two folds by alternating sequences (for cross-validation when only one
/// training trace is given).
fn halves(trace: &Trace) -> Vec<Trace> {
    let seqs: Vec<_> = trace.sequences().collect();
    (0..2)
        .map(|f| {
            let parts: Vec<Trace> = seqs
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == f)
                .map(|(_, r)| trace.slice(r.clone()))
                .collect();
            let refs: Vec<&Trace> = parts.iter().collect();
            Trace::concat(&refs).unwrap_or_else(|_| trace.slice(0..0))
        })
        .collect()
}

impl PredictorSet {
    /// Trains a predictor of `kind` on `traces` (each trace is one cross-validation fold; a
    /// single trace is split in two by sequence). `on_epoch` hears about learned training.
    pub fn train(
        traces: &[&Trace],
        kind: Kind,
        opts: &TrainOptions,
        progress: &dyn crate::util::Progress,
        on_epoch: &mut dyn FnMut(&super::learned::EpochReport),
    ) -> Result<(PredictorSet, Option<TrainReport>), PredictError> {
        let first = traces
            .first()
            .ok_or_else(|| PredictError::Invalid("no training trace".into()))?;
        let shape = *first.shape();
        if opts.lookahead == 0 || opts.lookahead >= shape.moe_layers {
            return Err(PredictError::Invalid(format!(
                "look-ahead must be in 1..{} for {} MoE layers",
                shape.moe_layers, shape.moe_layers
            )));
        }
        let full = Trace::concat(traces).map_err(PredictError::Invalid)?;
        if full.num_tokens() < 2 {
            return Err(PredictError::Invalid(
                "training needs at least two tokens".into(),
            ));
        }
        let split;
        let folds: Vec<&Trace> = if traces.len() >= 2 {
            traces.to_vec()
        } else {
            split = halves(&full);
            split.iter().collect()
        };
        let d = opts.lookahead;
        let stat = Arc::new(StaticPredictor::fit(&full, d));
        let markov = Arc::new(MarkovPredictor::fit(&full, d, &stat));
        let mix = match kind {
            Kind::Static | Kind::Markov => None,
            Kind::Mix | Kind::Learned => {
                let w = fit_mix(&folds, d).map_err(PredictError::Invalid)?;
                Some(MixPredictor::new(stat.clone(), markov.clone(), w))
            }
        };
        let (learned, report) = match kind {
            Kind::Learned => {
                let (p, r) =
                    super::learned::train(&folds, markov.clone(), opts, progress, on_epoch)?;
                (Some(p), Some(r))
            }
            _ => (None, None),
        };
        let online = super::online::tune(&folds).map_err(PredictError::Invalid)?;
        Ok((
            PredictorSet {
                kind,
                trained_tokens: full.num_tokens(),
                stat,
                temporal: TemporalPredictor { lookahead: d },
                markov,
                mix,
                learned,
                online: Some(online),
            },
            report,
        ))
    }

    /// The main predictor.
    pub fn main(&self) -> &dyn Predictor {
        match self.kind {
            Kind::Static => self.stat.as_ref(),
            Kind::Markov => self.markov.as_ref(),
            Kind::Mix => self.mix.as_ref().expect("mix set has a mix"),
            Kind::Learned => self.learned.as_ref().expect("learned set has a model"),
        }
    }

    /// Every predictor of the set, baselines first, the main one last.
    pub fn all(&self) -> Vec<&dyn Predictor> {
        let mut v: Vec<&dyn Predictor> =
            vec![self.stat.as_ref(), &self.temporal, self.markov.as_ref()];
        if let Some(m) = &self.mix {
            v.push(m);
        }
        if let Some(l) = &self.learned {
            v.push(l);
        }
        v
    }

    /// The predictor called `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&dyn Predictor> {
        self.all().into_iter().find(|p| p.name() == name)
    }

    /// Largest look-ahead.
    pub fn lookahead(&self) -> usize {
        self.markov.lookahead()
    }

    /// The routing shape.
    pub fn shape(&self) -> &crate::trace::ModelShape {
        self.markov.shape()
    }

    /// Writes the set to `path` (safetensors + JSON header).
    pub fn save(&self, path: &Path) -> Result<(), PredictError> {
        let s = *self.shape();
        let (l, e) = (s.moe_layers, s.experts);
        let header = FileHeader {
            format: FILE_FORMAT.into(),
            version: FILE_VERSION,
            kind: self.kind,
            shape: s,
            lookahead: self.lookahead(),
            mix: self.mix.as_ref().map(|m| m.weights().to_vec()),
            hidden: self.learned.as_ref().map(|m| m.hidden()),
            trained_tokens: self.trained_tokens,
            online: self.online,
        };
        let mut tensors: Vec<(String, Vec<usize>, &[f32])> =
            vec![("static.freq".into(), vec![l, e], &self.stat.freq)];
        for (i, p) in self.markov.probs.iter().enumerate() {
            tensors.push((format!("markov.h{}", i + 1), vec![l - i - 1, e, e], p));
        }
        if let Some(m) = &self.learned {
            tensors.extend(m.tensors());
        }
        file::write(path, &header, &tensors)
    }

    /// Reads a set written by [`PredictorSet::save`], checking the header and tensor shapes.
    pub fn load(path: &Path) -> Result<PredictorSet, PredictError> {
        let (h, mut t) = file::read(path)?;
        let s = h.shape;
        let (l, e, d) = (s.moe_layers, s.experts, h.lookahead);
        if d == 0 || d >= l {
            return Err(PredictError::BadFile {
                path: path.to_path_buf(),
                reason: format!("look-ahead {d} outside 1..{l}"),
            });
        }
        let freq = file::take(path, &mut t, "static.freq", &[l, e])?;
        let stat = Arc::new(StaticPredictor {
            shape: s,
            lookahead: d,
            freq,
        });
        let probs = (1..=d)
            .map(|i| file::take(path, &mut t, &format!("markov.h{i}"), &[l - i, e, e]))
            .collect::<Result<Vec<_>, _>>()?;
        let markov = Arc::new(MarkovPredictor { shape: s, probs });
        let missing = |what: &str| PredictError::BadFile {
            path: path.to_path_buf(),
            reason: format!("kind {:?} needs {what} in the header", h.kind),
        };
        let mix = match (h.kind, h.mix) {
            (Kind::Static | Kind::Markov, _) => None,
            (_, Some(w)) if w.len() == d => {
                Some(MixPredictor::new(stat.clone(), markov.clone(), w))
            }
            _ => return Err(missing("`mix` weights (one per look-ahead)")),
        };
        let learned = match h.kind {
            Kind::Learned => {
                let hidden = h.hidden.ok_or_else(|| missing("`hidden`"))?;
                Some(LearnedPredictor::from_tensors(
                    path,
                    &mut t,
                    markov.clone(),
                    hidden,
                )?)
            }
            _ => None,
        };
        Ok(PredictorSet {
            kind: h.kind,
            trained_tokens: h.trained_tokens,
            stat,
            temporal: TemporalPredictor { lookahead: d },
            markov,
            mix,
            learned,
            online: h.online,
        })
    }

    /// The online options in use: `opts` if given, else the file's, else the default.
    pub fn online_options(&self, opts: Option<OnlineOptions>) -> OnlineOptions {
        opts.or(self.online).unwrap_or(OnlineOptions::DEFAULT)
    }

    /// Every predictor of the set (as [`PredictorSet::all`]) in its online version, learning
    /// from [`Predictor::observe`] (`temporal` is online by nature and stays as it is).
    pub fn all_online(&self, opts: OnlineOptions) -> Vec<Box<dyn Predictor>> {
        self.all()
            .into_iter()
            .map(|p| match OnlinePredictor::from_set(self, p.name(), opts) {
                Some(o) => Box::new(o) as Box<dyn Predictor>,
                None => Box::new(self.temporal) as Box<dyn Predictor>,
            })
            .collect()
    }

    /// The main predictor in its online version.
    pub fn main_online(&self, opts: OnlineOptions) -> OnlinePredictor {
        let name = self.main().name().to_string();
        OnlinePredictor::from_set(self, &name, opts).expect("main predictors have online versions")
    }
}
