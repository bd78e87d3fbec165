//! Taking a WebSocket over from hyper, without axum's `WebSocket`.
//!
//! axum's wrapper hides tungstenite's stream, and the gateway needs it:
//! frames go out past tungstenite's write buffer, straight to the socket
//! (see `direct_write.rs`), so that no connection keeps a copy of the
//! largest frame it ever sent. The handshake is RFC 6455's (tungstenite
//! derives the accept key), answered by the route and finished on hyper's
//! upgraded connection.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// A client's socket once upgraded.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Why a request is no WebSocket handshake we take.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("not a WebSocket upgrade")]
    NotUpgrade,
    #[error("unsupported WebSocket version (13 only)")]
    Version,
    #[error("missing or malformed Sec-WebSocket-Key")]
    Key,
}

impl IntoResponse for UpgradeError {
    fn into_response(self) -> Response {
        match self {
            Self::Version => (StatusCode::UPGRADE_REQUIRED, [(header::SEC_WEBSOCKET_VERSION, "13")], self.to_string())
                .into_response(),
            _ => (StatusCode::BAD_REQUEST, self.to_string()).into_response(),
        }
    }
}

/// Checks the handshake of `req`, and returns the 101 answer and the future
/// of the upgraded socket (ready once hyper has sent the answer).
pub fn accept(
    mut req: Request,
    config: WebSocketConfig,
) -> Result<(Response, impl Future<Output = Option<Socket>> + Send + 'static), UpgradeError> {
    let headers = req.headers();
    // HTTP/1.0 has no upgrade (hyper would answer 101 and never hand the
    // connection over).
    if req.method() != Method::GET
        || req.version() < axum::http::Version::HTTP_11
        || !has_token(headers, &header::CONNECTION, "upgrade")
        || !has_token(headers, &header::UPGRADE, "websocket")
    {
        return Err(UpgradeError::NotUpgrade);
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(UpgradeError::Version);
    }
    // A key is 16 random bytes in base64: 24 characters.
    let key = headers.get(header::SEC_WEBSOCKET_KEY).filter(|k| k.len() == 24).ok_or(UpgradeError::Key)?;
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(axum::body::Body::empty())
        .map_err(|_| UpgradeError::Key)?;
    let socket = async move {
        let upgraded = on_upgrade.await.ok()?;
        Some(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await)
    };
    Ok((response, socket))
}

/// Whether a comma-separated header holds `token` (any case).
fn has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method(Method::GET).uri("/connect");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    const GOOD: [(&str, &str); 4] = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn the_rfc_example_is_answered_with_its_accept_key() {
        let (response, _) = accept(request(&GOOD), WebSocketConfig::default()).ok().unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_ACCEPT], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn what_is_no_websocket_handshake_is_refused() {
        let without = |name: &str| GOOD.iter().copied().filter(|(k, _)| *k != name).collect::<Vec<_>>();
        let status =
            |h: &[(&str, &str)]| accept(request(h), WebSocketConfig::default()).err().unwrap().into_response().status();
        assert_eq!(status(&without("upgrade")), StatusCode::BAD_REQUEST);
        assert_eq!(status(&without("connection")), StatusCode::BAD_REQUEST);
        assert_eq!(status(&without("sec-websocket-key")), StatusCode::BAD_REQUEST);
        assert_eq!(status(&without("sec-websocket-version")), StatusCode::UPGRADE_REQUIRED);
        let mut empty_key = without("sec-websocket-key");
        empty_key.push(("sec-websocket-key", ""));
        assert_eq!(status(&empty_key), StatusCode::BAD_REQUEST);
        let mut http10 = request(&GOOD);
        *http10.version_mut() = axum::http::Version::HTTP_10;
        let refused = accept(http10, WebSocketConfig::default()).err().unwrap().into_response();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let mut old = without("sec-websocket-version");
        old.push(("sec-websocket-version", "8"));
        assert_eq!(status(&old), StatusCode::UPGRADE_REQUIRED);
    }
}
