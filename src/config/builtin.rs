//! The shipped configs (`configs/models/*.toml`, `configs/hardware/*.toml`), embedded in the
//! binary so that a name such as `deepseek-v2-lite` works wherever the binary is copied.

use std::path::PathBuf;

/// What a config describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A model (`configs/models/`).
    Model,
    /// A machine or cluster (`configs/hardware/`).
    Hardware,
}

impl Kind {
    /// The directory under `configs/` its shipped files come from.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Model => "models",
            Kind::Hardware => "hardware",
        }
    }

    /// What one config of this kind is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Hardware => "hardware",
        }
    }

    /// The built-in configs of this kind.
    pub fn builtins(self) -> &'static [Builtin] {
        match self {
            Kind::Model => MODELS,
            Kind::Hardware => HARDWARE,
        }
    }
}

/// One embedded config file.
#[derive(Debug)]
pub struct Builtin {
    /// The name it is selected by (its file name without `.toml`).
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// The TOML text, as shipped.
    pub text: &'static str,
}

impl Builtin {
    /// How errors name it: the file it was embedded from, marked as built in.
    pub fn origin(&self) -> PathBuf {
        PathBuf::from(format!(
            "built-in configs/{}/{}.toml",
            self.kind.dir(),
            self.name
        ))
    }
}

macro_rules! embed {
    ($kind:expr, $dir:literal, $($name:literal),+ $(,)?) => {
        &[$(Builtin {
            name: $name,
            kind: $kind,
            text: include_str!(concat!("../../configs/", $dir, "/", $name, ".toml")),
        }),+]
    };
}

/// The shipped models.
pub const MODELS: &[Builtin] = embed!(
    Kind::Model,
    "models",
    "deepseek-v2-lite",
    "deepseek-v3",
    "mixtral-8x7b",
    "olmoe-1b-7b",
    "qwen1.5-moe-a2.7b",
);

/// The shipped hardware.
pub const HARDWARE: &[Builtin] = embed!(
    Kind::Hardware,
    "hardware",
    "h100-2x8-ib",
    "h100-8x-nvlink",
    "h100-8x8-ib",
    "rtx4090-pcie4",
);

/// The built-in config of `kind` called `name`, if any.
pub fn find(kind: Kind, name: &str) -> Option<&'static Builtin> {
    kind.builtins().iter().find(|b| b.name == name)
}

/// The names of the built-in configs of `kind`, comma-separated (for error messages).
pub fn names(kind: Kind) -> String {
    kind.builtins()
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}
