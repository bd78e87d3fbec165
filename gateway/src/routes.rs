//! The HTTP surface: the client, `/connect`, and the health, readiness and
//! metrics routes every process serves (`snakepit_service::health`).

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use snakepit_bus::Backend;
use snakepit_game::frame::MAX_WELCOME_LEN;
use snakepit_protocol::client::MAX_CLIENT_FRAME;
use snakepit_service::health::{self, Readiness};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::connection::Connection;
use crate::state::AppState;
use crate::web;

/// Read chunk per connection: client messages are a few bytes (a key
/// press is an 8-byte frame; at most 1 KiB, and the buffer grows for a
/// long one), and tungstenite zeroes this much before every read attempt
/// (also the ones that find nothing), so the 128 KiB default would cost
/// memory and CPU. Every connection keeps it for its whole life.
const READ_BUFFER: usize = 64;
/// Bytes gathered before a write goes to the socket: none. Frames go out
/// past tungstenite (`direct_write.rs`); it writes only pings, pongs and
/// the close frame, at once.
const WRITE_BUFFER: usize = 0;
/// Bytes a connection may hold unsent before writes fail: the largest
/// frame of any valid game settings (a `world` of the largest field, every
/// cell filled) and a little more, so that every room's world can be sent.
/// From the largest settings rather than this gateway's own flags: in a
/// cluster, the workers' flags decide the field.
const MAX_WRITE_BUFFER: usize = MAX_WELCOME_LEN + 16 * 1024;

pub fn app<B: Backend>(state: AppState<B>) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/client.js", get(web::client_js))
        .route("/style.css", get(web::style))
        .route("/connect", get(connect::<B>).with_state(std::sync::Arc::new(state.clone())))
        .merge(health::routes(state.clone(), state.registry.clone()))
        .layer(axum::middleware::map_response(one_request_per_connection))
        .with_state(state)
}

/// Every plain HTTP answer closes its connection: a page load costs a few
/// more connections, and no idle or half-sent second request can hold a
/// socket past the admission's request deadline (`admission.rs`). An
/// upgrade (101) is left alone: its connection becomes the WebSocket.
async fn one_request_per_connection(mut response: Response) -> Response {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn connect<B: Backend>(State(state): State<std::sync::Arc<AppState<B>>>, req: Request) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if !origin_allowed(&state.config.allowed_origins, req.headers().get(header::ORIGIN)) {
        state.metrics.refused.with_label_values(&["origin"]).inc();
        return (StatusCode::FORBIDDEN, "this page may not open a game connection here").into_response();
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_CLIENT_FRAME))
        .max_frame_size(Some(MAX_CLIENT_FRAME));
    let (response, socket) = match crate::upgrade::accept(req, config) {
        Ok(accepted) => accepted,
        Err(e) => return e.into_response(),
    };
    let tracker = state.tracker.clone();
    tracker.spawn(Connection::new(state).run(Box::pin(socket)));
    response
}

/// Ready while not draining and the backend answers.
impl<B: Backend> Readiness for AppState<B> {
    async fn check(&self) -> Result<(), String> {
        if self.draining.is_cancelled() {
            return Err("shutting down".into());
        }
        self.backend.ping().await.map_err(|e| format!("backend: {e}"))
    }
}

/// An origin as browsers send it (`scheme://host[:port]`), in one spelling:
/// lower case, without the scheme's default port or a trailing slash.
/// `None` if it is not an http(s) origin.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let origin = origin.strip_suffix('/').unwrap_or(&origin);
    let (scheme, rest) = origin.split_once("://")?;
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let host = rest.strip_suffix(default_port).unwrap_or(rest);
    Some(format!("{scheme}://{host}"))
}

/// Whether a WebSocket from a page of `origin` may open: any if the list
/// (of normalized origins) is empty; else an `Origin` on the list, in any
/// spelling of it. No `Origin` at all is no browser page: let in (a
/// non-browser client can send any `Origin` it likes, so refusing would
/// protect nothing).
fn origin_allowed(allowed: &[String], origin: Option<&HeaderValue>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = origin else { return true };
    let Some(origin) = origin.to_str().ok().and_then(normalize_origin) else { return false };
    allowed.contains(&origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_on_the_list_or_none_at_all_get_in() {
        let allowed = vec![normalize_origin("https://Snake.example.com:443/").unwrap()];
        let v = |s: &str| HeaderValue::from_str(s).ok();
        assert!(origin_allowed(&[], v("https://evil.example").as_ref()));
        assert!(origin_allowed(&allowed, v("https://snake.example.com").as_ref()));
        assert!(origin_allowed(&allowed, v("HTTPS://Snake.Example.com").as_ref()));
        assert!(origin_allowed(&allowed, None));
        assert!(!origin_allowed(&allowed, v("https://evil.example").as_ref()));
        assert!(!origin_allowed(&allowed, v("https://snake.example.com.evil.example").as_ref()));
        assert!(!origin_allowed(&allowed, v("null").as_ref()));
        assert!(origin_allowed(&allowed, v("https://snake.example.com:443").as_ref()));
        assert!(!origin_allowed(&allowed, v("http://snake.example.com").as_ref()), "another scheme");
        assert!(!origin_allowed(&allowed, v("https://snake.example.com:8443").as_ref()), "another port");
    }

    #[test]
    fn origins_are_spelled_one_way_and_what_is_no_origin_is_refused() {
        assert_eq!(normalize_origin("HTTP://Host:80/").as_deref(), Some("http://host"));
        assert_eq!(normalize_origin("https://host:8443").as_deref(), Some("https://host:8443"));
        for bad in ["host", "ftp://host", "https://", "https://host/path", "https://user@host", "null"] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }
}
