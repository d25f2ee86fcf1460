//! The process's open-files limit (RLIMIT_NOFILE): raised from the soft to the hard limit by a
//! daemon that holds many connections.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The open-files limit before and after [`raise_open_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// Soft limit found at start.
    pub before: u64,
    /// Soft limit now (the hard limit when raising was allowed).
    pub now: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Raises the soft open-files limit to the hard limit (any process may); returns the limits,
/// or the OS error when they cannot be read or set.
pub fn raise_open_files() -> nix::Result<OpenFiles> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (now, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(OpenFiles {
        before: soft,
        now,
        hard,
    })
}
