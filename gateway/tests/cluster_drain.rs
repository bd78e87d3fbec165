//! Rolling restarts as real processes on loopback (a `redis-server`, room
//! workers, gateways, real WebSockets): a gateway drained with SIGTERM
//! loses no snake, and a worker stays live while it hands its rooms over.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use support::Client;
use support::cluster::{Cluster, http_get, wait_until};
use support::id_of;

/// Players on gateway A, A gets SIGTERM: each is closed with 1012, its
/// snake parks where it stood (same cells tick after tick, not dead), and
/// it resumes on gateway B with its token and finds its snake with the
/// length and score it had. The room keeps its seats and members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_gateways_players_resume_elsewhere_with_their_snakes() {
    // A grace long enough to watch the parked snakes before resuming, and
    // room enough for four steered snakes.
    let big = [("--resume-grace-secs", "15"), ("--width", "80"), ("--height", "40")];
    let mut c = Cluster::start_with(1, 2, &big).await;
    let room = "rolling";
    // Each player joins and steers, in the open, until the gateway closes
    // it; the gateway is stopped once all four play.
    let mut tasks = Vec::new();
    let mut playing = Vec::new();
    for i in 0..4 {
        let mut cl = c.client(0).await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        playing.push(rx);
        tasks.push(tokio::spawn(async move {
            let (id, r, token) = cl.new_player(&format!("p{i}"), Some(room)).await;
            assert_eq!(r, room);
            cl.join(&id).await;
            let _ = tx.send(());
            let code = cl.steer_until_closed(&id).await;
            // The last cells the player saw before the close (none: its
            // snake died in play before the drain; steering is not perfect).
            let last = cl.view.snake_cells(&id);
            (code, id, token, last)
        }));
    }
    for rx in playing {
        rx.await.unwrap();
    }
    assert_eq!(c.seats(room).await, Some(4));
    let w = &c.workers[0];
    assert_eq!(w.metric("snakepit_room_players").await, 4.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.gateways[0].sigterm();
    let mut closed = Vec::new();
    for t in tasks {
        let (code, id, token, last) = t.await.unwrap();
        assert_eq!(code, Some(1012), "{id} was told the gateway restarts");
        if !last.is_empty() {
            closed.push((id, token, last));
        }
    }
    // A player whose snake died before the drain left with it; the others
    // are the test.
    assert!(closed.len() >= 2, "only {} of 4 snakes lived to the drain", closed.len());
    let alive = closed.len() as u64;
    let status = c.gateways[0].wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "the drained gateway exits cleanly: {status:?}");

    // On gateway B, a spectator sees every snake parked: alive, and on the
    // same cells for 30 ticks.
    let mut watcher = c.client(1).await;
    watcher.send(json!(["spectate", room])).await;
    watcher.until("world").await;
    let mut parked: HashMap<String, (Vec<(usize, usize)>, u64)> = HashMap::new();
    for (id, _, last) in &closed {
        let cells = watcher.view.snake_cells(id);
        assert!(!cells.is_empty(), "{id}'s snake is on the field");
        // Parked before the close: it stands where its player last saw it.
        assert_eq!(&cells, last, "{id}'s snake moved after its player's last frame");
        parked.insert(id.clone(), (cells, watcher.view.scores[&support::pid(id)]));
    }
    let start = watcher.view.tick;
    while watcher.view.tick < start + 30 {
        let f = watcher.frame().await;
        assert!(!f.has("p_gameover"), "a parked snake died: {}", f.raw);
    }
    for (id, (cells, score)) in &parked {
        assert_eq!(&watcher.view.snake_cells(id), cells, "{id}'s parked snake moved");
        assert_eq!(watcher.view.scores[&support::pid(id)], *score);
    }
    // The room kept its players and their seats.
    assert_eq!(c.seats(room).await, Some(alive));
    assert_eq!(w.metric("snakepit_room_players").await, alive as f64);

    // Each player resumes on B and finds its snake as it left it; it
    // moves again.
    let mut back = Vec::new();
    for (id, token, _) in closed {
        let mut cl = c.client(1).await;
        cl.send(json!(["resume", token])).await;
        let hs = cl.until("handshake").await;
        assert_eq!((id_of(&hs[2]), hs[3].as_str()), (id.clone(), Some(room)));
        cl.until("world").await;
        let (cells, score) = &parked[&id];
        let mine = cl.view.snake_cells(&id);
        assert_eq!(
            (mine.len(), cl.view.scores[&support::pid(&id)]),
            (cells.len(), *score),
            "{id}: same length and score"
        );
        back.push((cl, id));
    }
    for (cl, id) in &mut back {
        let before = cl.view.head(id).expect("alive after the resume");
        let mut moved = false;
        // It holds still until its player steers or a second has passed
        // (30 ticks here: 1.5 s).
        for _ in 0..30 {
            cl.steer_tick(id).await;
            moved |= cl.view.head(id).is_some_and(|h| h != before);
        }
        assert!(moved, "{id}'s snake moves again (head {before:?}, now {:?})", cl.view.head(id));
    }
    assert_eq!(c.seats(room).await, Some(alive), "no seat lost or taken twice");
    assert_eq!(w.metric("snakepit_room_players").await, alive as f64);
}

/// A worker told to stop keeps answering its liveness probe (and metrics)
/// until its rooms are handed over, while its readiness fails at once. The
/// hand-over is slowed down by pausing Redis writes, as a loaded Redis
/// would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_stays_live_while_it_hands_its_rooms_over() {
    let mut c = Cluster::start(2, 1).await;
    let mut a: Client = c.client(0).await;
    let (a_id, room, _) = a.new_player("ann", Some("probes")).await;
    a.join(&a_id).await;
    for _ in 0..5 {
        a.steer_tick(&a_id).await;
    }
    let owner = c.owner(&room).await;
    let mut r = c.redis().await;
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(2000).arg("WRITE").query_async(&mut r).await.unwrap();
    c.workers[owner].sigterm();
    // Each round: (live, metrics served, not ready). The very last round may
    // fall between the server's stop and the process's exit.
    let mut rounds = Vec::new();
    let w = &mut c.workers[owner];
    while w.running() {
        let addr = w.addr;
        let health = http_get(addr, "/healthz").await;
        let metrics = http_get(addr, "/metrics").await;
        let ready = http_get(addr, "/readyz").await;
        rounds.push((health.contains(" 200 "), metrics.contains("snakepit_rooms"), ready.contains(" 503 ")));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answered = rounds.iter().take_while(|r| **r == (true, true, true)).count();
    assert!(answered >= 5, "probes during the hand-over (live, metrics, not ready): {rounds:?}");
    assert!(rounds.len() - answered <= 1, "the probes failed before the exit: {rounds:?}");
    let status = c.workers[owner].wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    // And the room came back on the other worker.
    let survivor = c.workers[1 - owner].name.clone();
    wait_until(Duration::from_secs(10), || async {
        c.lease(&room).await.is_some_and(|l| l.starts_with(&format!("{survivor}:")))
    })
    .await;
    assert!(a.next_world(Duration::from_secs(10)).await, "the player follows the room");
}
