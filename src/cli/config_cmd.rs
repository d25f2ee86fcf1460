//! `moeplan config`: the model and hardware configs built into the binary.

use serde::Serialize;

use super::BadInput;
use crate::config::{Builtin, HardwareConfig, Kind, ModelConfig, builtin};

/// `moeplan config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// List the built-in models and hardware, one line each.
    #[command(after_help = "Examples:\n  moeplan config list\n  moeplan config list --json")]
    List {
        /// JSON instead of the table: `version`, `models` and `hardware`, each config's full
        /// contents.
        #[arg(long)]
        json: bool,
    },
    /// Print a built-in config's TOML (edit a copy and pass its path to use it instead).
    #[command(after_help = "Examples:\n  moeplan config show deepseek-v2-lite\n  \
        moeplan config show rtx4090-pcie4 > my-box.toml   # then --hardware ./my-box.toml")]
    Show {
        /// A built-in model or hardware name (`moeplan config list`).
        name: String,
    },
}

/// `moeplan config list --json`.
#[derive(Debug, Serialize)]
struct ListJson {
    version: u32,
    models: Vec<ModelConfig>,
    hardware: Vec<HardwareConfig>,
}

/// Runs `moeplan config`.
pub fn run(cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::List { json } => list(json),
        ConfigCommand::Show { name } => {
            let b = builtin::find(Kind::Model, &name)
                .or_else(|| builtin::find(Kind::Hardware, &name))
                .ok_or_else(|| {
                    BadInput(format!(
                        "no built-in config called {name:?}: models are {}; hardware is {}",
                        builtin::names(Kind::Model),
                        builtin::names(Kind::Hardware)
                    ))
                })?;
            print!("{}", b.text);
            Ok(())
        }
    }
}

fn parse_all<T>(
    kind: Kind,
    parse: impl Fn(&str, &std::path::Path) -> Result<T, crate::config::ConfigError>,
) -> anyhow::Result<Vec<(&'static Builtin, T)>> {
    kind.builtins()
        .iter()
        .map(|b| Ok((b, parse(b.text, &b.origin())?)))
        .collect()
}

fn list(json: bool) -> anyhow::Result<()> {
    let models = parse_all(Kind::Model, ModelConfig::parse)?;
    let hardware = parse_all(Kind::Hardware, HardwareConfig::parse)?;
    if json {
        let out = ListJson {
            version: 1,
            models: models.into_iter().map(|(_, m)| m).collect(),
            hardware: hardware.into_iter().map(|(_, h)| h).collect(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("models (--model NAME):");
    for (b, m) in &models {
        let shared = match m.shared_experts {
            0 => String::new(),
            s => format!(" (+{s} shared)"),
        };
        println!(
            "  {:<20} {} MoE layers (of {}) x {} experts{shared}, top-{}, {:.1} MB per expert ({})",
            b.name,
            m.moe_layers,
            m.layers,
            m.experts,
            m.top_k,
            m.bytes_per_expert as f64 / 1e6,
            m.dtype
        );
    }
    println!("hardware (--hardware NAME):");
    for (b, h) in &hardware {
        let nodes = if h.nodes == 1 {
            format!("1 node x {} {}", h.gpus_per_node, h.gpu)
        } else {
            format!(
                "{} nodes x {} {} ({} GB/s between nodes)",
                h.nodes, h.gpus_per_node, h.gpu, h.inter_node_gbps
            )
        };
        println!(
            "  {:<20} {nodes}, {} GB/s within a node, {} GB/s host to device",
            b.name, h.intra_node_gbps, h.host_to_device_gbps
        );
    }
    println!(
        "A path to a TOML file works wherever a name does (`moeplan config show NAME` prints one)."
    );
    Ok(())
}
