//! Hostile input over real WebSockets: each gets a clear `error` or a close
//! with a clear code, and the connection (or at least everyone else) goes on.

mod support;

use serde_json::json;
use support::{Client, Server};
use tokio_tungstenite::tungstenite::Message;

/// The connection still answers after a refusal.
async fn still_works(c: &mut Client) {
    c.send(json!(["ping"])).await;
    c.until("pong").await;
}

async fn refused(c: &mut Client, msg: Message, want: &str) {
    c.send_raw(msg).await;
    assert_eq!(c.error().await, want);
    still_works(c).await;
}

#[tokio::test]
async fn malformed_json_wrong_types_and_unknown_commands_get_errors() {
    let server = Server::start().await;
    let mut c = server.client().await;
    for (text, want) in [
        ("[\"new_player\"", "Invalid JSON"),
        ("not json", "Invalid JSON"),
        ("{\"a\":1}", "Unknown command"),
        ("[\"dance\"]", "Unknown command"),
        ("[]", "Unknown command"),
        ("null", "Unknown command"),
        ("[\"new_player\", 5]", "Bad arguments for new_player"),
        ("[\"new_player\", \"a\", 7]", "Bad arguments for new_player"),
        ("[\"join\", \"now\"]", "Bad arguments for join"),
        ("[\"spectate\"]", "Bad arguments for spectate"),
        ("[\"resume\", \"abc\"]", "Unknown or expired resume token"),
        ("[\"resume\", \"0123456789abcdef0123456789abcdef\"]", "Unknown or expired resume token"),
        ("[\"spectate\", \"../etc\"]", "Invalid room id"),
    ] {
        refused(&mut c, Message::text(text), want).await;
    }
}

#[tokio::test]
async fn binary_frames_are_refused() {
    let server = Server::start().await;
    let mut c = server.client().await;
    refused(&mut c, Message::binary(vec![0x92, 0xa4, 0x6a]), "Binary frames are not supported").await;
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_with_1009() {
    let server = Server::start().await;
    let mut c = server.client().await;
    c.send(json!(["new_player", "x".repeat(2000)])).await;
    assert_eq!(c.closed().await, Some(1009));
}

#[tokio::test]
async fn bad_names_are_refused() {
    let server = Server::start().await;
    let mut c = server.client().await;
    for (name, want) in [
        ("", "Name must be 1 to 15 characters"),
        ("   ", "Name must be 1 to 15 characters"),
        ("sixteen-letters!", "Name must be 1 to 15 characters"),
        ("bell\u{7}", "Name must not contain control characters"),
        ("two\nlines", "Name must not contain control characters"),
    ] {
        refused(&mut c, Message::text(json!(["new_player", name]).to_string()), want).await;
    }
    // A name with markup is only text: accepted as it is, escaped in JSON.
    let (_, _, _) = c.new_player("<b>bo\"b</b>", None).await;
}

#[tokio::test]
async fn key_codes_outside_37_to_40_are_refused() {
    let server = Server::start().await;
    let mut c = server.client().await;
    c.new_player("ann", None).await;
    for key in ["36", "41", "0", "-1", "38.5", "1e9", "99999999999999999999"] {
        refused(&mut c, Message::text(key), "Key code must be 37, 38, 39 or 40").await;
    }
}

#[tokio::test]
async fn commands_in_the_wrong_state_are_refused() {
    let server = Server::start().await;
    let mut c = server.client().await;
    refused(&mut c, Message::text("[\"join\"]"), "Send new_player first").await;
    refused(&mut c, Message::text("38"), "Send new_player first").await;
    refused(&mut c, Message::text("[\"enter\", \"x\"]"), "Send new_player first").await;
    let (id, _, _) = c.new_player("ann", None).await;
    refused(&mut c, Message::text("[\"new_player\", \"again\"]"), "Already playing as ann").await;
    refused(&mut c, Message::text("[\"resume\", \"0123456789abcdef0123456789abcdef\"]"), "Already playing as ann")
        .await;
    c.join(&id).await;
    c.send(json!(["join"])).await;
    assert_eq!(c.error().await, "Already playing");
}

#[tokio::test]
async fn a_flood_is_throttled_then_closed_and_the_room_goes_on() {
    let server = Server::start().await;
    let mut player = server.client().await;
    let (id, room, _) = player.new_player("ann", Some("flood")).await;
    player.join(&id).await;
    let start = player.frame().await.tick().unwrap();

    let mut flooder = server.client().await;
    flooder.new_player("bob", Some(room.as_str())).await;
    for _ in 0..400 {
        flooder.send(json!(38)).await;
    }
    assert_eq!(flooder.error().await, "Too many messages");
    assert_eq!(flooder.closed().await, Some(1008));

    // The other player never missed a tick.
    for expected in start + 1..start + 11 {
        let f = player.steer_tick(&id).await;
        assert_eq!(f.tick(), Some(expected), "{}", f.raw);
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_others_go_on() {
    // No rate limit here: this client is slow, not flooding.
    let mut config = support::config(support::settings());
    config.gateway.rate_per_sec = 1e6;
    config.gateway.rate_burst = 1e6;
    config.gateway.tcp_send_buffer = 8 * 1024;
    let server = Server::start_with(config).await;
    let mut player = server.client().await;
    let (id, room, _) = player.new_player("ann", Some("slow")).await;
    player.join(&id).await;

    // A raw client with a tiny receive buffer that upgrades, asks for the
    // world over and over and never reads.
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut raw = socket.connect(server.addr).await.unwrap();
    let upgrade = format!(
        "GET /connect HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    raw.write_all(upgrade.as_bytes()).await.unwrap();
    let payload = json!(["spectate", room]).to_string();
    // One masked client text frame.
    let mut frame = vec![0x81, 0x80 | payload.len() as u8, 1, 2, 3, 4];
    frame.extend(payload.bytes().enumerate().map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]));

    let mut expected = player.frame().await.tick().unwrap() + 1;
    let mut cut_off = false;
    for i in 0..5000 {
        let wrote = tokio::time::timeout(std::time::Duration::from_millis(50), raw.write_all(&frame)).await;
        if matches!(wrote, Ok(Err(_))) {
            break;
        }
        if i % 25 == 0 {
            // Meanwhile the player gets every tick.
            let f = player.steer_tick(&id).await;
            assert_eq!(f.tick(), Some(expected), "{}", f.raw);
            expected += 1;
            let (_, metrics) = server.get("/metrics").await;
            if metrics.contains("snakepit_slow_clients_total 1") {
                cut_off = true;
                break;
            }
        }
    }
    assert!(cut_off, "the slow client was never cut off");
    // The player still gets every tick after the cut.
    for _ in 0..5 {
        let f = player.steer_tick(&id).await;
        assert_eq!(f.tick(), Some(expected), "{}", f.raw);
        expected += 1;
    }
}

/// A server whose WebSockets must speak within half a second, and whose
/// game connections may come only from `origins` (any, if empty).
async fn strict_server(origins: &[&str]) -> Server {
    let mut config = support::config(support::settings());
    config.gateway.first_message_timeout = std::time::Duration::from_millis(500);
    config.gateway.allowed_origins = origins.iter().map(|o| o.to_string()).collect();
    Server::start_with(config).await
}

#[tokio::test]
async fn a_websocket_that_says_nothing_is_closed_and_one_that_speaks_is_not() {
    let server = strict_server(&[]).await;
    let mut silent = server.client().await;
    let mut talker = server.client().await;
    let mut babbler = server.client().await;
    talker.send(json!(["rooms"])).await;
    // Not a command of the protocol: answered, but it does not count.
    babbler.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    babbler.send_raw(Message::text("garbage")).await;
    let started = std::time::Instant::now();
    assert_eq!(silent.closed().await, Some(4000), "closed as idle");
    assert_eq!(babbler.closed().await, Some(4000), "a babbler is closed as idle too");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "closed after {:?}", started.elapsed());
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    still_works(&mut talker).await;
}

#[tokio::test]
async fn a_ping_flood_is_a_flood() {
    let server = Server::start().await;
    let mut c = server.client().await;
    c.send(json!(["rooms"])).await;
    // Each ping costs the server a pong; past the burst and the flood
    // limit the connection is closed as a flood (1008).
    let mut sent = 0;
    while sent < 2000 && c.try_send_raw(Message::Ping(Vec::new().into())).await {
        sent += 1;
    }
    assert_eq!(c.closed().await, Some(1008), "after {sent} pings");
    let mut other = server.client().await;
    still_works(&mut other).await;
}

#[tokio::test]
async fn a_page_not_on_the_origin_list_is_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = strict_server(&["http://good.example"]).await;
    let url = format!("ws://{}/connect", server.addr);
    let with_origin = |origin: Option<&str>| {
        let mut request = url.as_str().into_client_request().unwrap();
        if let Some(o) = origin {
            request.headers_mut().insert("Origin", o.parse().unwrap());
        }
        request
    };
    match tokio_tungstenite::connect_async(with_origin(Some("http://evil.example"))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("another page's script got in: {:?}", other.map(|(_, r)| r.status())),
    }
    for origin in [Some("http://good.example"), None] {
        let (ws, _) = tokio_tungstenite::connect_async(with_origin(origin)).await.expect("let in");
        drop(ws);
    }
    assert_eq!(server.metric("snakepit_connections_refused_total{reason=\"origin\"}").await, 1.0);
}

#[tokio::test]
async fn a_plain_http_connection_serves_one_request_then_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start().await;
    // No `Connection: close` from the client: the gateway closes anyway,
    // so no idle or half-sent second request holds the socket.
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(3), s.read_to_end(&mut buf))
        .await
        .expect("the gateway keeps the connection open after its answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200") && text.contains("connection: close"), "{text}");
}
