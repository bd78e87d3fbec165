//! The gateway's presence: a subscription the store drops with the process.
//!
//! A gateway that dies without a word cannot tell its rooms that its
//! players' connections ended. It stays subscribed to a presence channel of
//! its own for as long as it runs, under a random id it gives its rooms
//! with every member's `Enter`; the store drops the subscription the moment
//! the process dies, and the workers, which poll the presence of the
//! gateways their rooms use, park those players' snakes at once instead of
//! letting them run unseen until the presence timeout.

use std::time::Duration;

use snakepit_bus::Backend;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Wait before subscribing again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// A fresh id for this process: never reused, so a verdict on a dead
/// gateway can never fall on its successor.
pub fn gateway_id() -> String {
    format!("gateway-{}", uuid::Uuid::new_v4().simple())
}

/// Keeps `id` present until `shutdown`.
pub async fn stay_present<B: Backend>(backend: B, id: String, shutdown: CancellationToken) {
    loop {
        match backend.be_present(&id).await {
            Ok(mut presence) => {
                info!(gateway = %id, "present for the workers");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    // Nothing is published on it; it ends only if the
                    // subscription does (then it is taken again).
                    _ = presence.recv() => {}
                }
            }
            Err(e) => warn!(error = %e, "cannot announce the gateway's presence"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}
