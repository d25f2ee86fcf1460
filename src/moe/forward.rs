//! The forward pass of one MoE layer for a step's tokens, with routed experts' weights handed in
//! as bytes (from a data-plane slot), and the digest of the final hidden states.
//!
//! Bitwise reproducible: a layer's result depends only on the step's tokens, their experts and
//! the bytes given for each expert, added in the order the caller gives the experts. The caller
//! ([`crate::runtime`]) always gives them in the step's order, whatever the cache did, so a
//! run with every expert resident and one through a small cache must agree to the bit.

use std::collections::HashMap;
use std::hash::Hasher;
use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{DENSE_FILE, ModelError, MoeConfig};
use crate::dataplane::PROJECTIONS;

/// The resident part of one MoE layer.
struct Dense {
    /// RMS-norm weight, `[hidden]`.
    norm: Tensor,
    /// Router, `[experts, hidden]`.
    router: Tensor,
    /// Shared experts' SwiGLU (`[ffn * shared, hidden]` x2, `[hidden, ffn * shared]`).
    shared: Option<[Tensor; 3]>,
}

/// A model directory's config and resident weights (routed experts come from a data plane).
pub struct Model {
    /// Shape and seed.
    cfg: MoeConfig,
    /// Per MoE layer.
    layers: Vec<Dense>,
}

/// One layer's computation for a step in progress.
pub struct LayerRun {
    /// Normed inputs, `[n, hidden]`.
    x: Tensor,
    /// Router probabilities, `[n][experts]` flattened.
    probs: Vec<f32>,
    /// The layer's output so far, `[n][hidden]` flattened (starts as the shared experts').
    out: Vec<f32>,
}

fn swiglu(x: &Tensor, w: &[Tensor; 3]) -> candle_core::Result<Tensor> {
    let g = candle_nn::ops::silu(&x.matmul(&w[0].t()?)?)?;
    let u = x.matmul(&w[1].t()?)?;
    (g * u)?.matmul(&w[2].t()?)
}

impl Model {
    /// Loads `dir` (config and dense weights).
    pub fn load(dir: &Path) -> anyhow::Result<Model> {
        let cfg = MoeConfig::load(dir)?;
        let path = dir.join(DENSE_FILE);
        let mut t = candle_core::safetensors::load(&path, &Device::Cpu)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut take = |name: String, shape: &[usize]| -> anyhow::Result<Tensor> {
            let v = t.remove(&name).ok_or_else(|| ModelError::Invalid {
                path: path.clone(),
                message: format!("tensor {name} missing"),
            })?;
            if v.dims() != shape || v.dtype() != DType::F32 {
                return Err(ModelError::Invalid {
                    path: path.clone(),
                    message: format!(
                        "tensor {name}: {:?} {:?}, expected F32 {shape:?}",
                        v.dtype(),
                        v.dims()
                    ),
                }
                .into());
            }
            Ok(v)
        };
        let (h, e, f) = (cfg.hidden, cfg.experts, cfg.expert_ffn * cfg.shared_experts);
        let mut layers = Vec::with_capacity(cfg.moe_layers);
        for l in 0..cfg.moe_layers {
            let p = format!("model.layers.{}", cfg.first_moe_layer + l);
            let shared = if cfg.shared_experts > 0 {
                let name = |proj: &str| format!("{p}.mlp.shared_experts.{proj}.weight");
                Some([
                    take(name(PROJECTIONS[0]), &[f, h])?,
                    take(name(PROJECTIONS[1]), &[f, h])?,
                    take(name(PROJECTIONS[2]), &[h, f])?,
                ])
            } else {
                None
            };
            layers.push(Dense {
                norm: take(format!("{p}.post_attention_layernorm.weight"), &[h])?,
                router: take(format!("{p}.mlp.gate.weight"), &[e, h])?,
                shared,
            });
        }
        Ok(Model { cfg, layers })
    }

    /// Shape and seed.
    pub fn config(&self) -> &MoeConfig {
        &self.cfg
    }

    /// Token `token`'s input hidden state (seeded: the same token, the same state).
    pub fn input(&self, token: u32, out: &mut Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.cfg.seed ^ (token as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        out.extend((0..self.cfg.hidden).map(|_| rng.random_range(-1.0f32..1.0)));
    }

    /// Starts layer `l` for `n` tokens with hidden states `h` (`[n][hidden]`): norm, router,
    /// shared experts.
    pub fn begin(&self, l: usize, h: &[f32], n: usize) -> anyhow::Result<LayerRun> {
        let d = &self.layers[l];
        let hs = Tensor::from_slice(h, (n, self.cfg.hidden), &Device::Cpu)?;
        let x = candle_nn::ops::rms_norm(&hs, &d.norm, self.cfg.rms_eps)?;
        let logits = x.matmul(&d.router.t()?)?;
        let probs = candle_nn::ops::softmax_last_dim(&logits)?
            .flatten_all()?
            .to_vec1()?;
        let out = match &d.shared {
            Some(w) => swiglu(&x, w)?.flatten_all()?.to_vec1()?,
            None => vec![0.0; n * self.cfg.hidden],
        };
        Ok(LayerRun { x, probs, out })
    }

    /// Adds routed expert `expert` (weights `bytes`: gate, up, down back to back, f32) for the
    /// step's tokens at positions `rows`, each weighted by its router probability.
    pub fn add_expert(
        &self,
        run: &mut LayerRun,
        expert: u16,
        rows: &[u32],
        bytes: &[u8],
    ) -> anyhow::Result<()> {
        let (h, f) = (self.cfg.hidden, self.cfg.expert_ffn);
        let n = h * f * 4;
        anyhow::ensure!(
            bytes.len() == 3 * n,
            "expert bytes: {} for {}",
            bytes.len(),
            3 * n
        );
        let cpu = &Device::Cpu;
        let w = [
            Tensor::from_raw_buffer(&bytes[..n], DType::F32, &[f, h], cpu)?,
            Tensor::from_raw_buffer(&bytes[n..2 * n], DType::F32, &[f, h], cpu)?,
            Tensor::from_raw_buffer(&bytes[2 * n..], DType::F32, &[h, f], cpu)?,
        ];
        let idx = Tensor::from_slice(rows, rows.len(), cpu)?;
        let y: Vec<f32> = swiglu(&run.x.index_select(&idx, 0)?, &w)?
            .flatten_all()?
            .to_vec1()?;
        let e = self.cfg.experts;
        for (i, &r) in rows.iter().enumerate() {
            let p = run.probs[r as usize * e + expert as usize];
            let dst = &mut run.out[r as usize * h..(r as usize + 1) * h];
            for (o, &v) in dst.iter_mut().zip(&y[i * h..(i + 1) * h]) {
                *o += p * v;
            }
        }
        Ok(())
    }

    /// Ends the layer: `h += out`.
    pub fn finish(&self, run: LayerRun, h: &mut [f32]) {
        for (x, o) in h.iter_mut().zip(&run.out) {
            *x += o;
        }
    }
}

/// The final hidden state of every token, hashed in token order (FNV-1a over the f32 bits).
#[derive(Debug, Clone, Default)]
pub struct Digest {
    /// Final states by token index (`None`: not run).
    states: HashMap<u32, Vec<f32>>,
}

impl Digest {
    /// Records token `token`'s final state.
    pub fn record(&mut self, token: u32, state: &[f32]) {
        self.states.insert(token, state.to_vec());
    }

    /// Tokens recorded.
    pub fn tokens(&self) -> usize {
        self.states.len()
    }

    /// The digest, 16 hex digits.
    pub fn hex(&self) -> String {
        let mut keys: Vec<&u32> = self.states.keys().collect();
        keys.sort();
        let mut h = fnv::FnvHasher::default();
        for k in keys {
            h.write_u32(*k);
            for x in &self.states[k] {
                h.write(&x.to_bits().to_le_bytes());
            }
        }
        format!("{:016x}", h.finish())
    }

    /// Final state of `token`, if run.
    pub fn state(&self, token: u32) -> Option<&[f32]> {
        self.states.get(&token).map(Vec::as_slice)
    }
}
