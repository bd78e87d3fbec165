//! Snakepit's gateway: WebSocket sessions speaking the original protocol,
//! the browser client, and the fan-out of room frames to local members.
//!
//! `main` parses the configuration, binds, and hands a listener and a
//! shutdown token to [`run`]. Tests use [`app`] or bind port 0 themselves.

pub mod admission;
pub mod config;
pub mod connection;
pub mod direct_write;
pub mod drain;
pub mod fanout;
pub mod metrics;
pub mod presence;
pub mod rate_limit;
pub mod routes;
pub mod score_file;
pub mod score_keeper;
pub mod session;
pub mod signals;
pub mod standalone;
pub mod state;
pub mod store_resets;
pub mod upgrade;
pub mod web;

use snakepit_bus::Backend;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admission::AdmittingListener;

pub use config::GatewayConfig;
pub use drain::DrainConfig;
pub use routes::app;
pub use state::AppState;

/// Serves `state` on `listener` until `shutdown`, then drains (see
/// [`drain`]): not ready at once, serving on for the delay, then no new
/// connections and the clients closed (1012) in paced batches over the
/// close window, then the grace period for what is left. Returns within
/// the sum of the three (plus a close frame's write timeout). Meanwhile it
/// watches the store for a loss of its data ([`store_resets`]) and stays
/// present for the workers ([`presence`]).
pub async fn run<B: Backend>(
    listener: TcpListener,
    state: AppState<B>,
    shutdown: CancellationToken,
    drain: DrainConfig,
) -> std::io::Result<()> {
    let router = app(state.clone());
    let refused = state.metrics.refused.with_label_values(&["per_ip"]);
    let listener = AdmittingListener::new(listener, state.config.admission(), refused);
    // Upgraded WebSockets are no longer held by the server: the drain
    // closes them through their own tokens.
    let stop_accepting = CancellationToken::new();
    let mut server = tokio::spawn(
        axum::serve(listener, router).with_graceful_shutdown(stop_accepting.clone().cancelled_owned()).into_future(),
    );
    // Present until every connection has ended (after the tracker below):
    // a draining gateway's players leave through their own Disconnects,
    // and its end is no death for the workers to find.
    let presence_stop = CancellationToken::new();
    let presence = tokio::spawn(presence::stay_present(
        state.backend.clone(),
        state.gateway_id.to_string(),
        presence_stop.clone(),
    ));
    state.tracker.spawn(store_resets::poll_generation(
        state.backend.clone(),
        store_resets::POLL_EVERY,
        state.store_resets.clone(),
        state.metrics.store_resets.clone(),
        state.shutdown.clone(),
    ));
    drain::drain(&shutdown, drain, &state.clients, &state.draining, &stop_accepting, &state.shutdown).await;
    state.tracker.close();
    let deadline = tokio::time::Instant::now() + drain.grace;
    if tokio::time::timeout_at(deadline, state.tracker.wait()).await.is_err() {
        warn!("connections still open after the grace period");
    }
    let result = match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(std::io::Error::other(e)),
        Err(_) => {
            server.abort();
            warn!("HTTP requests still open after the grace period");
            Ok(())
        }
    };
    presence_stop.cancel();
    let _ = presence.await;
    info!("gateway stopped");
    result
}
