//! The worker's small HTTP side: liveness, readiness and metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use snakepit_shared::Backend;
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
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<B>))
        .route("/metrics", get(metrics::<B>))
        .with_state(state)
}

/// Ready when Redis answers and the worker has announced itself.
async fn readyz<B: Backend>(State(state): State<HttpState<B>>) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if !state.announced.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not announced yet").into_response();
    }
    match state.backend.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("backend: {e}")).into_response(),
    }
}

/// Prometheus text of `registry`.
pub fn render(registry: &Registry) -> Response {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    match encoder.encode(&registry.gather(), &mut buf) {
        Ok(()) => ([(header::CONTENT_TYPE, encoder.format_type().to_owned())], buf).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn metrics<B: Backend>(State(state): State<HttpState<B>>) -> Response {
    render(&state.registry)
}
