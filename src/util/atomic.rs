//! Crash-safe output files: every file moeplan writes goes through [`atomic_write`].

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Writes `path` whole or not at all: `write` fills a temporary file in the same directory,
/// which is flushed, synced and then renamed over `path`. A process killed mid-write leaves the
/// previous file (or none) and at most a stray `.moeplan-*` temporary, never a truncated output.
/// The new file gets mode 0644 (the previous file's mode if it existed).
pub fn atomic_write(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    atomic_write_with(path, write)
}

/// [`atomic_write`] for a writer with its own error type (a Parquet or `anyhow` error): the
/// temporary file's I/O errors convert into it.
pub fn atomic_write_with<E: From<io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<(), E> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".moeplan-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    write(tmp.as_file_mut())?;
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_data()?;
    if let Some(perms) = permissions_for(path) {
        std::fs::set_permissions(tmp.path(), perms)?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// [`atomic_write`] of a byte string.
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_write(path, |f| f.write_all(bytes))
}

/// The mode an output gets: the replaced file's, else 0644 (temporary files are created 0600).
fn permissions_for(path: &Path) -> Option<std::fs::Permissions> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Some(m.permissions()),
        #[cfg(unix)]
        _ => {
            use std::os::unix::fs::PermissionsExt;
            Some(std::fs::Permissions::from_mode(0o644))
        }
        #[cfg(not(unix))]
        _ => None,
    }
}

/// Checks that `path` can be written by [`atomic_write`] (its directory exists and takes a new
/// file), without touching `path` itself: outputs are checked before the work that fills them.
/// An existing directory (an ESFT output) is checked for a new file inside it.
pub fn check_writable(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        _ if path.is_dir() => path,
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".moeplan-check-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write in {}: {e}", dir.display())))
}

/// Whether `a` and `b` name the same file (through links, `..` or hard links): both exist and
/// have the same device and inode.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        #[cfg(unix)]
        (Ok(x), Ok(y)) => {
            use std::os::unix::fs::MetadataExt;
            x.dev() == y.dev() && x.ino() == y.ino()
        }
        #[cfg(not(unix))]
        (Ok(_), Ok(_)) => match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        std::fs::write(&p, "old\n").unwrap();
        let r = atomic_write(&p, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("killed"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        atomic_write_bytes(&p, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
    }

    #[test]
    fn same_file_sees_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, "x").unwrap();
        let l = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(same_file(&p, &l));
        assert!(same_file(&p, &dir.path().join(".").join("a")));
        assert!(!same_file(&p, &dir.path().join("missing")));
    }
}
