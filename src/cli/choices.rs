//! The command line's spellings of the library's choices: clap value enums, each mapped onto
//! its library enum, so that the library's modules stay free of the argument parser.

use crate::daemon::client::load::ClientMode;
use crate::dataplane::Backend;
use crate::export::Target;
use crate::predict::Kind;
use crate::rebalance::RebalancePolicy;
use crate::replay::CapacityMode;
use crate::trace::Format;

/// A trace format ([`Format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// ESFT layout: a directory of `expert_weights_L.txt` files (deepseek-ai/ESFT).
    Esft,
    /// Canonical Parquet: one row per (token, layer), see `traces/FORMAT.md`.
    Parquet,
    /// JSON Lines: a header line, then one object per token.
    Jsonl,
    /// SGLang expert-distribution recorder dump (`per_token` mode): an
    /// `expert_distribution_recorder_*.pt` file, or a directory of them (one per rank).
    SglangDump,
    /// JSONL of saved SGLang or vLLM responses with `routed_experts` (needs `--model`).
    Responses,
    /// `.npy` of routed experts (vLLM's `routed_experts`, `[tokens, layers, top_k]`; needs `--model`).
    Npy,
}

impl From<FormatArg> for Format {
    fn from(a: FormatArg) -> Format {
        match a {
            FormatArg::Esft => Format::Esft,
            FormatArg::Parquet => Format::Parquet,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::SglangDump => Format::SglangDump,
            FormatArg::Responses => Format::Responses,
            FormatArg::Npy => Format::Npy,
        }
    }
}

/// A predictor kind ([`Kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    /// Per-layer expert frequency.
    Static,
    /// Direct h-hop transition matrices.
    Markov,
    /// Cross-validated markov + static + temporal mix.
    Mix,
    /// The candle MLP.
    Learned,
}

impl From<KindArg> for Kind {
    fn from(a: KindArg) -> Kind {
        match a {
            KindArg::Static => Kind::Static,
            KindArg::Markov => Kind::Markov,
            KindArg::Mix => Kind::Mix,
            KindArg::Learned => Kind::Learned,
        }
    }
}

/// How the load generator drives its sessions ([`ClientMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientArg {
    /// Every session on one thread (tokio current-thread runtime).
    Async,
    /// One blocking thread per session.
    Threads,
    /// Every session on one thread that busy-polls non-blocking sockets (no client wake-ups;
    /// takes a whole core); the only client with an open loop (`rate`).
    Spin,
}

impl From<ClientArg> for ClientMode {
    fn from(a: ClientArg) -> ClientMode {
        match a {
            ClientArg::Async => ClientMode::Async,
            ClientArg::Threads => ClientMode::Threads,
            ClientArg::Spin => ClientMode::Spin,
        }
    }
}

/// How the replay's capacity is shared ([`CapacityMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CapacityArg {
    /// C slots per layer.
    PerLayer,
    /// C x layers slots shared by all layers (same memory as per-layer).
    Shared,
}

impl From<CapacityArg> for CapacityMode {
    fn from(a: CapacityArg) -> CapacityMode {
        match a {
            CapacityArg::PerLayer => CapacityMode::PerLayer,
            CapacityArg::Shared => CapacityMode::Shared,
        }
    }
}

/// A re-balancing policy ([`RebalancePolicy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyArg {
    /// One offline plan, never changed.
    Static,
    /// EPLB from scratch on the last window at every re-balance.
    Eplb,
    /// Move-budgeted re-plan from the plan in service (balance + communication).
    Moeplan,
}

impl From<PolicyArg> for RebalancePolicy {
    fn from(a: PolicyArg) -> RebalancePolicy {
        match a {
            PolicyArg::Static => RebalancePolicy::Static,
            PolicyArg::Eplb => RebalancePolicy::Eplb,
            PolicyArg::Moeplan => RebalancePolicy::Moeplan,
        }
    }
}

/// An engine `export --to` writes for ([`Target`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    /// SGLang `--init-expert-location` JSON (`physical_to_logical_map`) from a plan.
    Sglang,
    /// SGLang `--init-expert-location` JSON (`logical_count`) from a trace: SGLang runs its EPLB.
    SglangCounts,
    /// vLLM: the `eplb_initial_mapping` JSONL of the open offline-EPLB proposal (experimental).
    Vllm,
    /// vLLM-Ascend `expert_map_path` JSON from a plan.
    VllmAscend,
    /// KTransformers in SGLang: `logical_count` .pt for `--kt-expert-placement-strategy
    /// frequency`, and an `--init-expert-location` permutation for `--kt-num-gpu-experts`.
    Kt,
    /// llama.cpp: which layers' experts stay on the GPU (`-ot` / `--n-cpu-moe`).
    Llamacpp,
}

impl From<TargetArg> for Target {
    fn from(a: TargetArg) -> Target {
        match a {
            TargetArg::Sglang => Target::Sglang,
            TargetArg::SglangCounts => Target::SglangCounts,
            TargetArg::Vllm => Target::Vllm,
            TargetArg::VllmAscend => Target::VllmAscend,
            TargetArg::Kt => Target::Kt,
            TargetArg::Llamacpp => Target::Llamacpp,
        }
    }
}

/// Where the expert slots live ([`Backend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// A host buffer, filled by a copy thread (always available).
    Host,
    /// GPU memory, filled over PCIe/NVLink by a copy stream (feature `cuda`).
    Cuda,
}

impl From<BackendArg> for Backend {
    fn from(a: BackendArg) -> Backend {
        match a {
            BackendArg::Host => Backend::Host,
            BackendArg::Cuda => Backend::Cuda,
        }
    }
}
