//! A slow Redis never costs a client that reads its frames: real gateway
//! and worker processes, a real `redis-server`, and between the gateway
//! and Redis a TCP proxy that holds every command for seconds (answers and
//! published frames pass at once).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use support::Event;
use support::cluster::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Forwards connections to `upstream`, holding what the client sends for
/// the current delay (in order); what comes back passes at once.
struct DelayProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
}

impl DelayProxy {
    async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { continue };
                tokio::spawn(pipe(client, server, delay.clone()));
            }
        });
        Self { port, delay_ms }
    }

    fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

async fn pipe(client: TcpStream, server: TcpStream, delay_ms: Arc<AtomicU64>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0; 16 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
            let due = Instant::now() + Duration::from_millis(delay_ms.load(Ordering::SeqCst));
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if server_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
}

/// What a client saw in a while.
struct Watched {
    /// The longest wait between two tick frames.
    longest: Duration,
    ticks: usize,
    /// A `rooms` reply came.
    rooms: bool,
    /// The texts of `error` commands.
    errors: Vec<String>,
}

/// Reads `c` for `span`; panics if the connection closes.
async fn watch_ticks(c: &mut support::Client, span: Duration, who: &str) -> Watched {
    let end = Instant::now() + span;
    let mut last = Instant::now();
    let mut seen = Watched { longest: Duration::ZERO, ticks: 0, rooms: false, errors: Vec::new() };
    while Instant::now() < end {
        match c.next().await {
            Event::Frame(f) => {
                seen.rooms |= f.has("rooms");
                if let Some(e) = f.find("error") {
                    seen.errors.push(e[1].to_string());
                }
                if f.tick().is_some() {
                    seen.longest = seen.longest.max(last.elapsed());
                    last = Instant::now();
                    seen.ticks += 1;
                }
            }
            Event::Closed(code) => panic!("{who} was closed ({code:?}) while Redis was slow"),
        }
    }
    seen
}

/// Keeps `id`'s snake alive for `span`, so that its room keeps ticking (a
/// snake that dies joins again).
async fn keep_alive(c: &mut support::Client, id: &str, span: Duration) {
    let end = Instant::now() + span;
    while Instant::now() < end {
        if c.view.alive.get(&support::pid(id)) == Some(&false) {
            c.send(json!(["join"])).await;
        }
        c.steer_tick(id).await;
    }
}

/// Redis answers one gateway's commands 1.5 s late (the backend gives up
/// at 2 s) while its player and a spectator are in a room that keeps
/// ticking at 20 ticks/s (a player on another gateway keeps it alive). The
/// player asks for the room list, steers and asks again, the spectator
/// asks once (each waits on Redis), and a newcomer takes a seat meanwhile.
/// Frames keep flowing to both, every tick, with no stall: the player's
/// three commands, 4.5 s of waiting, would overflow a 64-frame queue that
/// nothing drained while its connection waited on Redis, and close it with
/// 4008. Every answer arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_never_stalls_or_kicks_a_client_that_reads() {
    let mut cluster = Cluster::start(1, 1).await;
    let proxy = DelayProxy::start(cluster.redis.port).await;
    cluster.add_gateway_via(&format!("redis://127.0.0.1:{}/", proxy.port)).await;

    let mut keeper = cluster.client(0).await;
    let (keeper_id, room, _) = keeper.new_player("keeper", Some("slow")).await;
    keeper.join(&keeper_id).await;
    let mut player = cluster.client(1).await;
    let (id, _, _) = player.new_player("ann", Some(room.as_str())).await;
    player.send(json!(["join"])).await;
    let mut watcher = cluster.client(1).await;
    watcher.send(json!(["spectate", room])).await;
    watcher.until("world").await;
    let before = tokio::join!(
        watch_ticks(&mut player, Duration::from_millis(500), "the player"),
        keep_alive(&mut keeper, &keeper_id, Duration::from_millis(500)),
    )
    .0
    .longest;
    assert!(before < Duration::from_millis(300), "ticks stalled before Redis was slowed: {before:?}");

    proxy.set_delay(Duration::from_millis(1500));
    player.send(json!(["rooms"])).await;
    // Thirty key presses while the first command waits: the two latest
    // wait for Redis, no "Server busy" for a player who only steers.
    if let Some(key) = player.view.safe_turn(&id) {
        player.send(json!(key)).await;
    }
    for _ in 0..30 {
        player.send(json!(38)).await;
    }
    player.send(json!(["rooms"])).await;
    watcher.send(json!(["rooms"])).await;
    let mut newcomer = cluster.client(1).await;
    newcomer.send(json!(["new_player", "bob", "elsewhere"])).await;

    let (w, p, ()) = tokio::join!(
        watch_ticks(&mut watcher, Duration::from_secs(5), "the spectator"),
        watch_ticks(&mut player, Duration::from_secs(5), "the player"),
        keep_alive(&mut keeper, &keeper_id, Duration::from_secs(5)),
    );
    for (who, seen) in [("spectator", &w), ("player", &p)] {
        let (longest, ticks) = (seen.longest, seen.ticks);
        assert!(longest < Duration::from_millis(500), "the {who}'s frames stalled {longest:?} on a slow Redis");
        assert!(ticks >= 80, "the {who} got {ticks} ticks in 5 s at 20 ticks/s");
        assert!(seen.errors.is_empty(), "the {who} was refused: {:?}", seen.errors);
    }

    // The answers that waited on Redis arrive.
    proxy.set_delay(Duration::ZERO);
    if !p.rooms {
        player.until("rooms").await;
    }
    if !w.rooms {
        watcher.until("rooms").await;
    }
    newcomer.until("handshake").await;
    newcomer.until("world").await;
}
