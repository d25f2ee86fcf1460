//! Shutdown signalling: one trigger, any number of listeners; and the process signals that fire it.

use tokio::sync::watch;

/// Fires the shutdown once; every [`Shutdown`] made from the same channel sees it.
#[derive(Debug)]
pub struct Trigger {
    /// `true` once fired.
    tx: watch::Sender<bool>,
}

/// Listens for the shutdown (cheap to clone, one per task).
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// Becomes `true` when the trigger fires (or is dropped).
    rx: watch::Receiver<bool>,
}

/// A connected trigger and listener.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    /// Tells every listener to shut down.
    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }
}

impl Shutdown {
    /// Whether the shutdown has fired (or its trigger is gone).
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }

    /// Waits until the shutdown fires (returns at once if it has; also if the trigger is gone).
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(|&fired| fired).await;
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    Ok(())
}
