//! The command line's spellings of the library's choices: clap value enums, each mapped onto
//! its library enum, so that `trace`, `predict` and `daemon` stay free of the argument parser.

use crate::daemon::client::load::ClientMode;
use crate::predict::Kind;
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
