//! A small MoE model with a real model's routing shape, for moving real expert bytes: written by
//! `moeplan model init` ([`init`]), computed by `moeplan run` ([`forward`]).
//!
//! Each MoE layer is a residual block `h += shared(x) + sum_e p_e(x) * expert_e(x)` with
//! `x = rms_norm(h)`, a softmax router over the routed experts, SwiGLU experts (`gate_proj`,
//! `up_proj`, `down_proj`) and shared experts. There is no attention and no dense layer: each
//! token's hidden state goes through the MoE layers alone, which is all caching can affect.
//! Routing is teacher-forced (the caller names each token's experts, e.g. from a trace); the
//! router's probabilities weigh them. Weights are f32, seeded, deterministic.
//!
//! A model directory holds [`CONFIG_FILE`] (JSON, [`MoeConfig`]), [`EXPERTS_FILE`] (the routed
//! experts, one tensor group per expert, DeepSeek-V2's names) and [`DENSE_FILE`] (router,
//! norm and shared experts of each layer: always resident).

pub mod config;
mod error;
pub mod forward;
pub mod init;

pub use config::{CONFIG_FILE, DENSE_FILE, EXPERTS_FILE, MoeConfig};
pub use error::ModelError;
pub use forward::{Digest, Model};
pub use init::init;
