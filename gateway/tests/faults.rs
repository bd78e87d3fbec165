//! Faults over real sockets: a bus that drops a publish, clients that stop
//! reading or answering, a resume while the old connection is still open,
//! the largest field the settings accept. Each test stands for a defect that
//! once let a connection hang, die silently or lose its snake.

// Helpers below are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus::Registry;
use serde_json::json;
use snakepit_bus::intercept::{Call, Hook, Intercepted};
use snakepit_bus::{Bus, BusError, InputKind, MemoryBackend, Notice, RoomId, RoomInput, Seat, Store};
use snakepit_gateway::{AppState, GatewayConfig};
use snakepit_room_worker::{GameSettings, Host, HostConfig, WorkerMetrics};
use support::cluster::Cluster;
use support::id_of;
use support::{Client, Server};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Fails the first `n` publishes of an `enter`, as a publish does while
/// Redis is briefly unreachable; everything else reaches the real backend.
#[derive(Clone)]
struct FailEnters(Arc<AtomicUsize>);

impl Hook for FailEnters {
    fn before(&self, call: Call<'_>) -> impl std::future::Future<Output = Result<(), BusError>> + Send {
        let enter = matches!(call, Call::PublishInput(RoomInput { kind: InputKind::Enter { .. }, .. }));
        let failing = enter && self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        std::future::ready(if failing { Err(BusError::Unavailable("injected".into())) } else { Ok(()) })
    }
}

/// A gateway over the in-memory backend whose first enters fail with rooms in-process (as standalone, but
/// with the backend in the test's hands); its address.
async fn flaky_gateway(fail_enters: usize, stop: &CancellationToken) -> std::net::SocketAddr {
    let inner = MemoryBackend::new();
    let backend = Intercepted::new(inner.clone(), FailEnters(Arc::new(AtomicUsize::new(fail_enters))));
    let registry = Registry::new();
    let host_config = HostConfig {
        worker_id: "w".into(),
        room: support::config(support::settings()).room,
        round_every: Duration::from_millis(200),
        lease_ttl: Duration::from_secs(5),
    };
    let host = Host::new(inner, host_config, WorkerMetrics::register(&registry, "w").unwrap());
    tokio::spawn(host.run(stop.clone()));
    let state = AppState::new(backend, GatewayConfig::default(), Registry::new()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = stop.clone();
    let drain = snakepit_gateway::DrainConfig { grace: Duration::from_secs(1), ..Default::default() };
    tokio::spawn(async move { snakepit_gateway::run(listener, state, shutdown, drain).await });
    addr
}

#[tokio::test]
async fn an_enter_whose_publish_failed_is_repeated_until_the_world_arrives() {
    let stop = CancellationToken::new();
    let addr = flaky_gateway(1, &stop).await;
    let mut c = Client::connect(addr).await;
    // The first enter is lost on the bus; the retry brings the world.
    let (id, room, _) = c.new_player("ann", Some("flaky")).await;
    assert_eq!(room, "flaky");
    c.join(&id).await;
    // The lost enter is counted, once.
    let metrics = support::cluster::http_get(addr, "/metrics").await;
    assert!(metrics.lines().any(|l| l == "snakepit_publish_errors_total 1"), "{metrics}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_to_read_gets_the_4008_close_frame() {
    // A large world that a small socket cannot take in at once, and a short
    // queue behind it.
    let mut config = support::config(GameSettings { width: 100, height: 60, ..support::settings() });
    config.gateway.send_queue = 4;
    config.gateway.tcp_send_buffer = 4096;
    let server = Server::start_with(config).await;
    let mut driver = server.client().await;
    let (d_id, _, _) = driver.new_player("drv", Some("slow")).await;
    driver.join(&d_id).await;
    let mut slow = Client::connect_small(server.addr, 4096).await;
    slow.send(json!(["new_player", "slow", "slow"])).await;
    // The slow client reads nothing while the room ticks on; its queue
    // fills while the gateway waits on its socket, and it is kicked.
    for _ in 0..30 {
        driver.steer_tick(&d_id).await;
    }
    // Reading at last, it gets what was on the way, then the reason.
    assert_eq!(slow.closed().await, Some(4008));
    // Counted once, as 4008, and its life observed once.
    let slow_closes = || async { server.metric(r#"snakepit_ws_closes_total{code="4008"}"#).await };
    support::cluster::wait_until(support::WAIT, || async { slow_closes().await == 1.0 }).await;
    assert_eq!(server.metric("snakepit_connection_duration_seconds_count").await, 1.0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(slow_closes().await, 1.0);
}

/// A standalone gateway that pings every 200 ms and closes a client silent
/// for 600 ms.
async fn pinging_server() -> Server {
    let mut config = support::config(support::settings());
    config.gateway.ping_every = Duration::from_millis(200);
    config.gateway.idle_timeout = Duration::from_millis(600);
    Server::start_with(config).await
}

/// Players of the standalone gateway's rooms, from its metrics.
async fn room_players(server: &Server) -> f64 {
    let (_, body) = server.get("/metrics").await;
    body.lines()
        .filter(|l| l.starts_with("snakepit_room_players"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_nothing_is_closed_and_leaves_its_room() {
    let server = pinging_server().await;
    // A player in an idle room (nobody alive, so no frames), whose client
    // then goes dark: it is never polled again, so it answers no ping.
    let mut dark = server.client().await;
    dark.new_player("dark", Some("quiet")).await;
    assert_eq!(room_players(&server).await, 1.0);
    support::cluster::wait_until(Duration::from_secs(5), || async { room_players(&server).await == 0.0 }).await;
    // Its seat is free again.
    let mut other = server.client().await;
    other.send(json!(["rooms"])).await;
    let rooms = other.until("rooms").await;
    let quiet = rooms[1].as_array().unwrap().iter().find(|r| r[0] == "quiet").cloned();
    assert!(quiet.is_none_or(|r| r[1] == 0), "seat still taken: {rooms}");
    drop(dark);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_pings_stays_connected() {
    let server = pinging_server().await;
    let mut c = server.client().await;
    c.new_player("awake", Some("quiet")).await;
    // Only reading (which answers the pings) for several idle timeouts: no
    // frame comes in an idle room, and no close.
    let read = tokio::time::timeout(Duration::from_secs(3), c.next()).await;
    assert!(read.is_err(), "something arrived in an idle room");
    c.send(json!(["ping"])).await;
    c.until("pong").await;
    assert_eq!(room_players(&server).await, 1.0);
}

/// A session lives `session_ttl` from its last save, and a player who
/// plays on longer than that must still be resumable (its gateway might
/// die): the connection saves it again as it goes. Here sessions live 1 s
/// and the player stays 2.5 s before a second tab resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_held_longer_than_its_lifetime_can_still_be_resumed() {
    let mut config = support::config(support::settings());
    config.gateway.ping_every = Duration::from_millis(200);
    config.gateway.session_ttl = Duration::from_secs(1);
    let server = Server::start_with(config).await;
    let mut a = server.client().await;
    let (a_id, _, token) = a.new_player("ann", Some("long")).await;
    // Reading (which answers the pings) in an idle room.
    let read = tokio::time::timeout(Duration::from_millis(2500), a.next()).await;
    assert!(read.is_err(), "something arrived in an idle room");
    let mut b = server.client().await;
    b.send(json!(["resume", token])).await;
    let f = b.frame().await;
    assert!(f.find("error").is_none(), "the session expired while its player was connected: {:?}", f.find("error"));
    assert_eq!(id_of(&f.find("handshake").expect("a handshake")[2]), a_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_field_the_settings_accept_can_be_played() {
    use snakepit_game::settings::MAX_SIDE;
    let settings = support::settings().at_largest();
    assert_eq!(settings.validate(), Ok(()));
    let server = Server::start_with(support::config(settings)).await;
    let mut c = server.client().await;
    // The handshake, then the whole world (360 KB even empty).
    let (id, _, _) = c.new_player("wide", Some("wide")).await;
    assert_eq!((c.view.grid.len(), c.view.grid[0].len()), (usize::from(MAX_SIDE), usize::from(MAX_SIDE)));
    c.join(&id).await;
    assert!(c.turns(&id).await, "the snake is steered");
    // A second client entering later gets the world with the snake in it.
    let mut d = server.client().await;
    d.new_player("late", Some("wide")).await;
    assert!(d.view.head(&id).is_some());
}

/// Seats taken in `room`, as the room list tells `client`.
async fn seats(client: &mut Client, room: &str) -> u64 {
    client.send(json!(["rooms"])).await;
    let rooms = client.until("rooms").await;
    let entry = rooms[1].as_array().unwrap().iter().find(|r| r[0] == room).cloned();
    entry.map_or(0, |r| r[1].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_on_the_same_gateway_closes_the_older_connection() {
    let server = Server::start().await;
    let mut a = server.client().await;
    let (a_id, _, token) = a.new_player("ann", Some("twice")).await;
    a.join(&a_id).await;
    a.head_for_open_space(&a_id).await;
    // A second tab resumes while the first is still open.
    let mut b = server.client().await;
    b.send(json!(["resume", token])).await;
    assert_eq!(id_of(&b.until("handshake").await[2]), a_id);
    b.until("world").await;
    let closed = tokio::time::timeout(support::WAIT, a.closed()).await.expect("the older connection was closed");
    assert_eq!(closed, Some(4009));
    // The snake is the newer connection's, and one seat is taken.
    b.head_for_open_space(&a_id).await;
    assert!(b.turns(&a_id).await, "steered by the new connection");
    assert_eq!(seats(&mut b, "twice").await, 1);
    assert_eq!(room_players(&server).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_on_another_gateway_closes_the_older_connection_and_keeps_the_snake_over_resyncs() {
    let mut c = Cluster::start(2, 2).await;
    let mut a = c.client(0).await;
    let (a_id, room, token) = a.new_player("ann", Some("tabs")).await;
    a.join(&a_id).await;
    a.head_for_open_space(&a_id).await;
    let mut b = c.client(1).await;
    b.send(json!(["resume", token])).await;
    assert_eq!(id_of(&b.until("handshake").await[2]), a_id);
    b.until("world").await;
    let closed =
        tokio::time::timeout(Duration::from_secs(10), a.closed()).await.expect("the older connection was closed");
    assert_eq!(closed, Some(4009));
    b.head_for_open_space(&a_id).await;
    assert!(b.turns(&a_id).await, "steered through the other gateway");
    // Twice the room's owner dies: each time the newer connection enters
    // the new owner's room again, and the snake stays its own.
    for round in 0..2 {
        // Long enough for a snapshot with the newer connection in it.
        for _ in 0..20 {
            b.steer_tick(&a_id).await;
        }
        let owner = c.owner(&room).await;
        c.workers[owner].kill().await;
        assert!(b.next_world(Duration::from_secs(20)).await, "no fresh world after failover {round}");
        assert!(b.view.head(&a_id).is_some(), "the snake survived failover {round}");
        b.head_for_open_space(&a_id).await;
        assert!(b.turns(&a_id).await, "steered after failover {round}");
        if round == 0 {
            c.add_worker("w3").await;
        }
    }
    let w = &c.workers[2];
    assert_eq!(w.metric("snakepit_room_players").await, 1.0);
}

/// The room's side of a takeover, on the bus: an older connection that
/// enters again (a resync, a late retry) is told it is superseded and does
/// not take the member back; the newer one keeps steering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_connection_entering_again_is_shut_out() {
    use snakepit_bus::{ConnId, FrameKind, PlayerId};
    let backend = MemoryBackend::new();
    let stop = CancellationToken::new();
    let registry = Registry::new();
    let host_config = HostConfig {
        worker_id: "w".into(),
        room: support::config(support::settings()).room,
        round_every: Duration::from_millis(100),
        lease_ttl: Duration::from_secs(5),
    };
    let host = Host::new(backend.clone(), host_config, WorkerMetrics::register(&registry, "w").unwrap());
    tokio::spawn(host.run(stop.clone()));
    let (player, c1, c2) = (PlayerId::random(), ConnId::random(), ConnId::random());
    let bus_room = RoomId::parse("bus").unwrap();
    let Seat::Taken { room, .. } = backend.take_seat(Some(&bus_room), player, 10, support::WAIT).await.unwrap() else {
        panic!("no seat");
    };
    backend.publish_notice(Notice::RoomCreated(room.clone())).await.unwrap();
    let mut out = backend.subscribe_output(&room).await.unwrap();
    let enter = |conn, resync| RoomInput {
        player,
        conn,
        kind: InputKind::Enter { name: Some("ann".into()), resync, key: 0, gateway: None },
    };
    // The first enter also waits for the room to listen.
    support::cluster::wait_until(support::WAIT, || {
        let (backend, room, input) = (backend.clone(), room.clone(), enter(c1, false));
        async move { backend.publish_input(&room, input).await.unwrap() > 0 }
    })
    .await;
    // Frames other than ticks, in order.
    let mut next = async || loop {
        let f = tokio::time::timeout(support::WAIT, out.recv()).await.unwrap().unwrap();
        if f.kind != FrameKind::Tick {
            return f.kind;
        }
    };
    assert_eq!(next().await, FrameKind::Welcome(player));
    // A resume: c2 takes over, c1 is told.
    backend.publish_input(&room, enter(c2, false)).await.unwrap();
    assert_eq!(next().await, FrameKind::Superseded { player, conn: c1 });
    assert_eq!(next().await, FrameKind::Welcome(player));
    // c1 enters again, as after a resync and as a late retry: shut out.
    for resync in [true, false] {
        backend.publish_input(&room, enter(c1, resync)).await.unwrap();
        assert_eq!(next().await, FrameKind::Superseded { player, conn: c1 });
    }
    // The member is still c2's: c1's join is ignored, c2's starts the game.
    let join = |conn| RoomInput { player, conn, kind: InputKind::Join };
    let mut born = async |limit| {
        tokio::time::timeout(limit, async {
            loop {
                let f = out.recv().await.unwrap();
                if std::str::from_utf8(&f.payload).unwrap().contains("p_joined") {
                    return;
                }
            }
        })
        .await
        .is_ok()
    };
    backend.publish_input(&room, join(c1)).await.unwrap();
    assert!(!born(Duration::from_millis(500)).await, "the superseded connection's join was taken");
    backend.publish_input(&room, join(c2)).await.unwrap();
    assert!(born(support::WAIT).await, "the newer connection's join was ignored");
    stop.cancel();
}
