//! The three routes every process serves beside its own: `/healthz` (alive:
//! the process answers), `/readyz` (send it traffic: what "ready" means is
//! the process's own [`Readiness`]) and `/metrics` (its Prometheus
//! registry, as text). Kubernetes probes the first two, Prometheus scrapes
//! the third; they are written once here so both binaries answer alike.

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

/// What a process checks before it says it is ready.
pub trait Readiness: Clone + Send + Sync + 'static {
    /// `Err(reason)` while the process should get no traffic (shutting
    /// down, its backend away, not yet announced); the reason is the body
    /// of the 503.
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;
}

#[derive(Clone)]
struct Health<R> {
    readiness: R,
    registry: Registry,
}

/// `/healthz`, `/readyz` and `/metrics`, to merge into the process's router
/// (whatever its state).
pub fn routes<R: Readiness, S: Clone + Send + Sync + 'static>(readiness: R, registry: Registry) -> Router<S> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<R>))
        .route("/metrics", get(metrics::<R>))
        .with_state(Health { readiness, registry })
}

async fn readyz<R: Readiness>(State(health): State<Health<R>>) -> Response {
    match health.readiness.check().await {
        Ok(()) => "ready".into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

async fn metrics<R: Readiness>(State(health): State<Health<R>>) -> Response {
    render(&health.registry)
}

/// The Prometheus text of `registry`.
fn render(registry: &Registry) -> Response {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    match encoder.encode(&registry.gather(), &mut buf) {
        Ok(()) => ([(header::CONTENT_TYPE, encoder.format_type().to_owned())], buf).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
