//! Snakepit's gateway: WebSocket sessions speaking the original protocol,
//! the browser client, and the fan-out of room frames to local members.
//!
//! `main` parses the configuration, binds, and hands a listener and a
//! shutdown token to [`run`]. Tests use [`app`] or bind port 0 themselves.

pub mod config;
pub mod connection;
pub mod fanout;
pub mod metrics;
pub mod rate_limit;
pub mod routes;
pub mod standalone;
pub mod state;
pub mod web;

use std::time::Duration;

use axum::serve::ListenerExt;
use snakepit_shared::Backend;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::GatewayConfig;
pub use routes::app;
pub use state::AppState;

/// Serves `state` on `listener` until `shutdown`; then connections are told
/// to reconnect elsewhere (close 1001) and get `grace` to finish.
pub async fn run<B: Backend>(
    listener: TcpListener,
    state: AppState<B>,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let router = app(state.clone());
    let send_buffer = state.config.tcp_send_buffer;
    // Game frames are small and latency matters: no Nagle delay. The send
    // buffer is bounded so a slow reader cannot hold megabytes of kernel
    // memory before its queue fills and it is cut off.
    let listener = listener.tap_io(move |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            warn!(error = %e, "cannot set TCP_NODELAY");
        }
        if let Err(e) = socket2::SockRef::from(&*tcp).set_send_buffer_size(send_buffer) {
            warn!(error = %e, "cannot set SO_SNDBUF");
        }
    });
    let stop = state.shutdown.clone();
    let serve = axum::serve(listener, router).with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            // WebSockets are upgraded and so no longer held by the server:
            // their own token ends them.
            stop.cancel();
        }
    });
    let result = serve.await;
    state.tracker.close();
    if tokio::time::timeout(grace, state.tracker.wait()).await.is_err() {
        warn!("connections still open after the grace period");
    }
    info!("gateway stopped");
    result
}
