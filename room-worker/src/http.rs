//! The worker's small HTTP side: liveness, readiness and metrics (the
//! routes every process serves, see `snakepit_service::health`).

use axum::Router;
use prometheus::Registry;
use snakepit_bus::Backend;
use snakepit_service::health::{self, Readiness};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct HttpState<B> {
    pub backend: B,
    pub registry: Registry,
    /// Cancelled once the worker has announced itself.
    pub announced: CancellationToken,
    pub shutdown: CancellationToken,
}

pub fn app<B: Backend>(state: HttpState<B>) -> Router {
    let registry = state.registry.clone();
    health::routes(state, registry)
}

/// Ready when Redis answers and the worker has announced itself.
impl<B: Backend> Readiness for HttpState<B> {
    async fn check(&self) -> Result<(), String> {
        if self.shutdown.is_cancelled() {
            return Err("shutting down".into());
        }
        if !self.announced.is_cancelled() {
            return Err("not announced yet".into());
        }
        self.backend.ping().await.map_err(|e| format!("backend: {e}"))
    }
}
