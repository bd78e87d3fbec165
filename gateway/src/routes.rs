//! The HTTP surface: the client, `/connect`, and the health, readiness and
//! metrics routes every process serves (`snakepit_service::health`).

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use snakepit_bus::Backend;
use snakepit_game::frame::MAX_WELCOME_LEN;
use snakepit_protocol::client::MAX_CLIENT_FRAME;
use snakepit_service::health::{self, Readiness};

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
        .merge(health::routes(Ready(state.clone()), state.registry.clone()))
        .with_state(state)
}

async fn connect<B: Backend>(State(state): State<AppState<B>>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if !origin_allowed(&state.config.allowed_origins, headers.get(header::ORIGIN)) {
        state.metrics.refused.with_label_values(&["origin"]).inc();
        return (StatusCode::FORBIDDEN, "this page may not open a game connection here").into_response();
    }
    let tracker = state.tracker.clone();
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| tracker.track_future(Connection::new(state).run(socket)))
}

/// Ready while not draining and the backend answers.
#[derive(Clone)]
struct Ready<B>(AppState<B>);

impl<B: Backend> Readiness for Ready<B> {
    async fn check(&self) -> Result<(), String> {
        if self.0.draining.is_cancelled() {
            return Err("shutting down".into());
        }
        self.0.backend.ping().await.map_err(|e| format!("backend: {e}"))
    }
}

/// Whether a WebSocket from a page of `origin` may open: any if the list
/// is empty; else an `Origin` on the list (compared without case, as
/// scheme and host are). No `Origin` at all is no browser page: let in (a
/// non-browser client can send any `Origin` it likes, so refusing would
/// protect nothing).
fn origin_allowed(allowed: &[String], origin: Option<&HeaderValue>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = origin else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_on_the_list_or_none_at_all_get_in() {
        let allowed = vec!["https://snake.example.com".to_string()];
        let v = |s: &str| HeaderValue::from_str(s).ok();
        assert!(origin_allowed(&[], v("https://evil.example").as_ref()));
        assert!(origin_allowed(&allowed, v("https://snake.example.com").as_ref()));
        assert!(origin_allowed(&allowed, v("HTTPS://Snake.Example.com").as_ref()));
        assert!(origin_allowed(&allowed, None));
        assert!(!origin_allowed(&allowed, v("https://evil.example").as_ref()));
        assert!(!origin_allowed(&allowed, v("https://snake.example.com.evil.example").as_ref()));
        assert!(!origin_allowed(&allowed, v("null").as_ref()));
    }
}
