//! The error of a request that cannot be served as asked: inconsistent settings, an infeasible
//! capacity, a file of the wrong shape. The command line exits 3 on it.

/// An error in what the user asked for (inconsistent arguments, infeasible settings).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl BadInput {
    /// `msg` as an `anyhow` error.
    pub fn err(msg: impl std::fmt::Display) -> anyhow::Error {
        anyhow::Error::new(BadInput(msg.to_string()))
    }
}
