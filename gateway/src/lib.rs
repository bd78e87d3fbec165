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
