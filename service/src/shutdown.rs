//! SIGINT (Ctrl-C) and SIGTERM both start a graceful shutdown; a second one
//! (an operator tired of waiting for the drain) asks for an exit at once.

use tokio_util::sync::CancellationToken;

/// The signal that cut a graceful shutdown short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// The shell's exit code for a death by this signal: 128 + its number.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM and returns on the
/// next one, with it: the caller (`main`) then exits at once, dropping the
/// drain. A signal that comes after `shutdown` was cancelled some other way
/// counts as that next one. Returns `None` only if no signal can be
/// listened for.
pub async fn cancel_on_signal(shutdown: CancellationToken) -> Option<Signal> {
    let mut signals = Signals::new()?;
    tokio::select! {
        sig = signals.next() => {
            tracing::info!("{}: shutting down (send it again to exit at once)", sig.name());
            shutdown.cancel();
        }
        _ = shutdown.cancelled() => {}
    }
    let sig = signals.next().await;
    tracing::warn!("{} during the shutdown: exiting at once", sig.name());
    Some(sig)
}

/// Both signals, listened for from creation on (so none is missed between
/// the first and the second).
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Option<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| signal(kind).map_err(|e| tracing::error!(%e, "cannot listen for signals")).ok();
        Some(Self { int: listen(SignalKind::interrupt())?, term: listen(SignalKind::terminate())? })
    }

    #[cfg(not(unix))]
    fn new() -> Option<Self> {
        Some(Self {})
    }

    #[cfg(unix)]
    async fn next(&mut self) -> Signal {
        // `None`: both streams ended, which tokio's never do; wait on.
        tokio::select! {
            Some(()) = self.int.recv() => Signal::Interrupt,
            Some(()) = self.term.recv() => Signal::Terminate,
            else => std::future::pending().await,
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Signal {
        match tokio::signal::ctrl_c().await {
            Ok(()) => Signal::Interrupt,
            Err(_) => std::future::pending().await,
        }
    }
}
