//! A gateway's drain, in process: two gateways over one in-memory backend
//! and one room host, real sockets and real WebSockets. The first one is
//! stopped with clients on it; they are closed with 1012, paced, and
//! resume on the second one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use prometheus::Registry;
use serde_json::json;
use snakepit_bus::{MemoryBackend, RoomId, Store as _};
use snakepit_gateway::metrics::{CLOSE_CODES, GatewayMetrics, close_label};
use snakepit_gateway::{AppState, DrainConfig, GatewayConfig};
use snakepit_room_worker::{Host, HostConfig, WorkerMetrics};
use support::Client;
use support::cluster::http_get;
use support::id_of;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const DELAY: Duration = Duration::from_millis(800);
const WINDOW: Duration = Duration::from_millis(1200);
const GRACE: Duration = Duration::from_secs(2);

/// A gateway over `backend` on a free port: its address, its shutdown
/// token, its `run` and its metrics.
async fn gateway(
    backend: &MemoryBackend,
    drain: DrainConfig,
) -> (SocketAddr, CancellationToken, JoinHandle<()>, GatewayMetrics) {
    let state = AppState::new(backend.clone(), GatewayConfig::default(), Registry::new()).unwrap();
    let metrics = state.metrics.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { snakepit_gateway::run(listener, state, token, drain).await.unwrap() });
    (addr, shutdown, task, metrics)
}

/// A room host over `backend`, running until the token is cancelled.
fn rooms(backend: &MemoryBackend) -> CancellationToken {
    let host = Host::new(
        backend.clone(),
        HostConfig {
            worker_id: "w".into(),
            room: support::config(support::settings()).room,
            round_every: Duration::from_millis(200),
            lease_ttl: Duration::from_secs(5),
        },
        WorkerMetrics::register(&Registry::new(), "w").unwrap(),
    );
    let stop = CancellationToken::new();
    tokio::spawn(host.run(stop.clone()));
    stop
}

/// Reads until the close; its code and when it came.
fn close_of(mut c: Client) -> JoinHandle<(Option<u16>, Instant)> {
    tokio::spawn(async move {
        let code = c.closed().await;
        (code, Instant::now())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_gateway_serves_on_then_closes_its_clients_paced_with_1012() {
    let backend = MemoryBackend::new();
    let rooms_stop = rooms(&backend);
    let drain = DrainConfig { delay: DELAY, close_window: WINDOW, grace: GRACE };
    let (a, a_stop, a_task, a_metrics) = gateway(&backend, drain).await;
    let (b, _b_stop, _b_task, _) = gateway(&backend, drain).await;

    let mut players = Vec::new();
    for i in 0..7 {
        let mut c = Client::connect(a).await;
        let (id, room, token) = c.new_player(&format!("p{i}"), Some("drain")).await;
        players.push((c, id, room, token));
    }
    assert!(http_get(a, "/readyz").await.contains(" 200 "));

    let stopped = Instant::now();
    a_stop.cancel();
    // Not ready at once...
    let mut ready = http_get(a, "/readyz").await;
    while !ready.contains(" 503 ") && stopped.elapsed() < Duration::from_millis(100) {
        ready = http_get(a, "/readyz").await;
    }
    assert!(ready.contains(" 503 "), "still ready after the shutdown signal: {ready}");
    // ... yet serving everything for the delay: a new player gets in.
    assert!(http_get(a, "/healthz").await.contains(" 200 "));
    let mut late = Client::connect(a).await;
    let late_ids = late.new_player("late", Some("drain")).await;
    assert!(stopped.elapsed() < DELAY, "the late player came in after the delay; the test is too slow");
    let mut closes = Vec::new();
    let mut tokens = Vec::new();
    for (c, id, _, token) in players {
        tokens.push((id, token));
        closes.push(close_of(c));
    }
    tokens.push((late_ids.0.clone(), late_ids.2.clone()));
    closes.push(close_of(late));

    // After the delay: no new connections.
    tokio::time::sleep_until(stopped + DELAY + Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(a).await.is_err(), "new connections are still accepted after the delay");

    let mut times = Vec::new();
    for close in closes {
        let (code, at) = close.await.unwrap();
        assert_eq!(code, Some(1012), "a drained client is told the gateway restarts");
        times.push(at);
    }
    let first = *times.iter().min().unwrap();
    let last = *times.iter().max().unwrap();
    assert!(first >= stopped + DELAY, "a client was closed during the delay");
    // Eight clients over 1.2 s: batches 150 ms apart, 1.05 s from first to last.
    assert!(last - first >= WINDOW / 2, "closes not spread over the window: {:?}", last - first);
    tokio::time::timeout(DELAY + WINDOW + GRACE, a_task).await.expect("run returns in time").unwrap();
    assert!(stopped.elapsed() <= DELAY + WINDOW + GRACE);
    // Eight closes, each counted once, as 1012, each life observed once.
    let total: u64 = CLOSE_CODES.iter().map(|c| a_metrics.ws_closes.with_label_values(&[close_label(*c)]).get()).sum();
    assert_eq!((a_metrics.ws_closes.with_label_values(&["1012"]).get(), total), (8, 8));
    assert_eq!(a_metrics.ws_closes.with_label_values(&["other"]).get(), 0);
    assert_eq!(a_metrics.connection_duration.get_sample_count(), 8);

    // Every session was saved: each player resumes on the other gateway,
    // as itself, in its room.
    let mut back = Vec::new();
    for (id, token) in tokens {
        assert!(backend.session(&token).await.unwrap().is_some(), "no session for {id}");
        let mut c = Client::connect(b).await;
        c.send(json!(["resume", token])).await;
        let hs = c.until("handshake").await;
        assert_eq!((id_of(&hs[2]), hs[3].as_str()), (id.clone(), Some("drain")));
        c.until("world").await;
        back.push(c);
    }
    // All eight are in the room again.
    let room = backend.room(&RoomId::parse("drain").unwrap()).await.unwrap().expect("the room is listed");
    assert_eq!(room.players, 8);
    rooms_stop.cancel();
}

/// The drain's last batch of clients is closed as soon as their rooms have
/// parked their snakes, not a wait for word that never comes: the rooms'
/// feeds serve on until their last member has left, past the end of the
/// close window (they used to stop with it, and every last client waited
/// the full second for the room's word, its last frames lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_clients_of_a_drain_are_closed_once_parked_without_waiting_out_the_park_wait() {
    let backend = MemoryBackend::new();
    let rooms_stop = rooms(&backend);
    let drain = DrainConfig { delay: Duration::ZERO, close_window: Duration::from_millis(10), grace: GRACE };
    let (a, a_stop, a_task, _) = gateway(&backend, drain).await;
    let mut closes = Vec::new();
    for i in 0..4 {
        let mut c = Client::connect(a).await;
        let (id, _, _) = c.new_player(&format!("q{i}"), Some("last")).await;
        c.join(&id).await;
        closes.push(close_of(c));
    }
    let stopped = Instant::now();
    a_stop.cancel();
    for close in closes {
        let (code, at) = close.await.unwrap();
        assert_eq!(code, Some(1012));
        assert!(at - stopped < Duration::from_millis(700), "a last client waited {:?} for its close", at - stopped);
    }
    tokio::time::timeout(GRACE, a_task).await.expect("run returns in time").unwrap();
    rooms_stop.cancel();
}
