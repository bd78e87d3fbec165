//! The HTTP surface: the client, `/connect`, health, readiness, metrics.

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use snakepit_room_worker::frame::MAX_WELCOME_LEN;
use snakepit_shared::Backend;
use snakepit_shared::protocol::MAX_CLIENT_FRAME;

use crate::connection::Connection;
use crate::state::AppState;
use crate::web;

/// Read chunk per connection: client messages are at most 1 KiB, and
/// tungstenite zeroes this much before every read attempt (also the ones that
/// find nothing), so the 128 KiB default would cost memory and CPU.
const READ_BUFFER: usize = 1024;
/// Bytes gathered before a write goes to the socket.
const WRITE_BUFFER: usize = 16 * 1024;
/// Bytes a connection may hold unsent before writes fail: what is gathered
/// plus the largest frame of any valid game settings (a `world` of the
/// largest field, every cell filled), so that every room's world can be
/// sent. From the largest settings rather than this gateway's own flags: in
/// a cluster, the workers' flags decide the field.
const MAX_WRITE_BUFFER: usize = WRITE_BUFFER + MAX_WELCOME_LEN + 1024;

pub fn app<B: Backend>(state: AppState<B>) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/client.js", get(web::client_js))
        .route("/style.css", get(web::style))
        .route("/connect", get(connect::<B>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<B>))
        .route("/metrics", get(metrics::<B>))
        .with_state(state)
}

async fn connect<B: Backend>(State(state): State<AppState<B>>, ws: WebSocketUpgrade) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let tracker = state.tracker.clone();
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| tracker.track_future(Connection::new(state).run(socket)))
}

async fn readyz<B: Backend>(State(state): State<AppState<B>>) -> Response {
    if state.draining.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.backend.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("backend: {e}")).into_response(),
    }
}

async fn metrics<B: Backend>(State(state): State<AppState<B>>) -> Response {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    match encoder.encode(&state.registry.gather(), &mut buf) {
        Ok(()) => ([(header::CONTENT_TYPE, encoder.format_type().to_owned())], buf).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
