//! Where the daemon listens: the Unix socket (default, mode 0600) or loopback TCP (with a token).

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// A bound listener of either kind.
#[derive(Debug)]
pub enum Listener {
    /// A Unix domain socket (clients are trusted through the file's mode, 0600).
    Unix(UnixListener),
    /// A TCP socket (clients must present the shared token in `hello`).
    Tcp(TcpListener),
}

/// An accepted connection of either kind.
#[derive(Debug)]
pub enum Accepted {
    /// From the Unix socket.
    Unix(UnixStream),
    /// From TCP (Nagle off).
    Tcp(TcpStream),
}

impl Listener {
    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Unix(l) => Ok(Accepted::Unix(l.accept().await?.0)),
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok(Accepted::Tcp(s))
            }
        }
    }
}

/// The default socket path: `$XDG_RUNTIME_DIR/moeplan.sock` when that is set (a per-user
/// directory), else `/tmp/moeplan-$USER.sock`.
pub fn default_socket_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("moeplan.sock");
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "default".into());
    PathBuf::from(format!("/tmp/moeplan-{user}.sock"))
}

/// Binds a Unix socket at `path` with mode 0600 (must run inside a tokio runtime).
///
/// The socket is bound inside a fresh 0700 directory, made 0600, then renamed into place, so it
/// is never reachable with a wider mode. A stale socket file (nobody listening) is replaced; a
/// live one is an `AddrInUse` error; any other file at `path` is left alone and is an error.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a daemon already listens on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".moeplan-bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new().mode(0o700).create(&tmp)?;
    let inner = tmp.join("s");
    let res = (|| {
        let l = std::os::unix::net::UnixListener::bind(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&inner, path)?;
        l.set_nonblocking(true)?;
        UnixListener::from_std(l)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    res
}

/// An exclusive lock on `<socket>.lock`, held by the daemon serving that socket for as long as
/// it runs (released by the kernel however the process ends). The lock file itself stays.
#[derive(Debug)]
pub struct SocketLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl SocketLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file of the socket `path`: `path` with `.lock` appended.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Takes the socket's lock, then binds it ([`bind_unix`]). Two daemons started together on one
/// path cannot both decide the socket is stale: the second finds the lock taken and gets
/// `AddrInUse`. The caller keeps the lock until it has removed the socket at shutdown.
pub fn bind_unix_locked(path: &Path) -> io::Result<(UnixListener, SocketLock)> {
    let lock = lock_path(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "a daemon already listens on {} (another moeplan serve holds {})",
                    path.display(),
                    lock.display()
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    let l = bind_unix(path)?;
    Ok((
        l,
        SocketLock {
            _file: file,
            path: lock,
        },
    ))
}

/// Binds TCP at `addr`; refuses a non-loopback address unless `allow_remote`.
pub async fn bind_tcp(addr: SocketAddr, allow_remote: bool) -> io::Result<TcpListener> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{addr} is not a loopback address (pass --allow-remote to bind it anyway)"),
        ));
    }
    TcpListener::bind(addr).await
}
