//! Faults of the cluster in their harshest ordinary form, with real
//! processes, a real `redis-server` and real WebSockets: live snakes, full
//! rooms, and the directory checked, not just a gauge.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use snakepit_bus::{RedisBackend, ScoreEntry, Store};
use support::cluster::{Cluster, http_get, wait_until};
use support::{Client, id_of};

/// Steers `id` until at least `cells` free cells lie ahead; a snake that
/// dies on the way (steering late on a loaded machine) joins again, as a
/// player would: its room ticks only while someone is alive.
async fn head_far(c: &mut Client, id: &str, cells: usize) {
    for _ in 0..300 {
        if c.view.alive.get(&support::pid(id)) == Some(&false) {
            c.join(id).await;
        }
        c.steer_tick(id).await;
        // Not born yet (a join waits for the next tick, longer under load).
        if c.view.head(id).is_none() || c.view.direction(id).is_none() {
            continue;
        }
        if c.view.run_ahead(id) >= cells {
            return;
        }
        let (key, _) = c.view.perpendicular_turn(id);
        c.send(json!(key)).await;
    }
    panic!("no open space found");
}

/// Redis restarts with no data under six live, steered games on one
/// worker: every room keeps its owner (a lease that vanished is taken again
/// above its old epoch, never given up), goes back into the directory with
/// its player's seat, and its game goes on: the player gets a fresh world
/// and steers (or joins again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_live_games_go_on_through_a_redis_restart_with_no_data() {
    let big = [("--width", "150"), ("--height", "80"), ("--tick-rate", "5")];
    let mut c = Cluster::start_with(1, 1, &big).await;
    let mut players = Vec::new();
    for i in 0..6 {
        let mut cl = c.client(0).await;
        let (id, room, _) = cl.new_player(&format!("p{i}"), Some(&format!("restart{i}"))).await;
        cl.join(&id).await;
        players.push((cl, id, room));
    }
    // Every snake heads for open space at once, so none dies while Redis
    // is away (nobody can steer then).
    let mut tasks = Vec::new();
    for (mut cl, id, room) in players {
        tasks.push(tokio::spawn(async move {
            head_far(&mut cl, &id, 30).await;
            (cl, id, room)
        }));
    }
    let mut players = Vec::new();
    for t in tasks {
        players.push(t.await.unwrap());
    }
    let mut before = Vec::new();
    for (_, _, room) in &players {
        before.push(c.epoch(room).await.expect("owned"));
    }

    c.redis.restart();
    for p in [&c.workers[0], &c.gateways[0]] {
        wait_until(Duration::from_secs(10), || async { http_get(p.addr, "/readyz").await.contains(" 200 ") }).await;
    }
    let mut tasks = Vec::new();
    for (mut cl, id, room) in players {
        tasks.push(tokio::spawn(async move {
            assert!(cl.next_world(Duration::from_secs(15)).await, "{room}: no fresh world after the restart");
            if cl.view.head(&id).is_none() {
                cl.join(&id).await;
            }
            let start = cl.view.tick;
            for _ in 0..25 {
                cl.steer_tick(&id).await;
            }
            assert!(cl.view.tick >= start + 20, "{room}: the game stopped");
            assert!(cl.view.head(&id).is_some(), "{room}: the snake is gone");
            (cl, id, room)
        }));
    }
    let mut players = Vec::new();
    for t in tasks {
        players.push(t.await.unwrap());
    }
    for ((_, _, room), old) in players.iter().zip(before) {
        let epoch = c.epoch(room).await.expect("the room has an owner");
        assert!(epoch > old, "{room}: epoch {epoch} not above {old}");
        wait_until(Duration::from_secs(5), || async { c.seats(room).await == Some(1) }).await;
    }
    assert_eq!(c.workers[0].metric("snakepit_leases_lost_total").await, 0.0, "no room was given up");
}

/// Whether `check` passes within `limit` (polled every 50 ms).
async fn within<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// What a resume with `token` is answered with: the handshake, or the
/// error's text.
async fn resume(cl: &mut Client, token: &str) -> Result<Value, String> {
    cl.send(json!(["resume", token])).await;
    for _ in 0..50 {
        let f = cl.frame().await;
        if let Some(hs) = f.find("handshake") {
            return Ok(hs.clone());
        }
        if let Some(e) = f.find("error") {
            return Err(e[1].as_str().unwrap_or_default().to_string());
        }
    }
    panic!("no answer to the resume");
}

/// The epoch of the room's snapshot in Redis, if it has one.
async fn snapshot_epoch(c: &Cluster, room: &str) -> Option<u64> {
    let key = format!("snakepit:room:{{{room}}}:snapshot");
    redis::cmd("HGET").arg(key).arg("epoch").query_async(&mut c.redis().await).await.unwrap()
}

/// Redis restarts with no data under a live game and a quiet room (its
/// player left: nothing changes in it). What only Redis held is written
/// again by the processes that still hold it: the top scores (every room
/// holds the list), a snapshot of every room, the quiet one too (else its
/// worker's death would lose it), and the sessions of the live
/// connections: a player whose gateway dies after the restart resumes on
/// the other one with its token from before it, and finds its snake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_only_redis_held_is_written_again_after_a_restart_with_no_data() {
    let flags = [
        ("--width", "150"),
        ("--height", "80"),
        ("--tick-rate", "5"),
        ("--resume-grace-secs", "30"),
        ("--empty-room-secs", "120"),
    ];
    let mut c = Cluster::start_with(1, 2, &flags).await;
    // Best scores of earlier games, in the store before the rooms open:
    // each room loads the list when it starts.
    let store = RedisBackend::connect(&c.redis.url(), "snakepit").await.unwrap();
    let best = vec![
        ScoreEntry { name: "ann".into(), score: 40, colour: 2 },
        ScoreEntry { name: "bob".into(), score: 25, colour: 5 },
        ScoreEntry { name: "cy".into(), score: 7, colour: 3 },
    ];
    for s in &best {
        store.submit_score(s.clone()).await.unwrap();
    }
    let mut quiet = c.client(1).await;
    quiet.new_player("quinn", Some("quiet")).await;
    quiet.close().await;
    let mut ann = c.client(0).await;
    let (id, room, token) = ann.new_player("ann", Some("kept")).await;
    ann.join(&id).await;
    head_far(&mut ann, &id, 30).await;
    let rooms = ["kept", "quiet"];
    for room in rooms {
        wait_until(Duration::from_secs(5), || async { snapshot_epoch(&c, room).await.is_some() }).await;
    }

    c.redis.restart();
    for p in [&c.workers[0], &c.gateways[0], &c.gateways[1]] {
        wait_until(Duration::from_secs(10), || async { http_get(p.addr, "/readyz").await.contains(" 200 ") }).await;
    }
    // The top scores are back, from the rooms.
    let scores_back =
        within(Duration::from_secs(10), || async { store.top_scores(10).await.ok() == Some(best.clone()) });
    assert!(scores_back.await, "top scores after the restart: {:?}", store.top_scores(10).await);
    // Every room has a snapshot again, under its new lease.
    for room in rooms {
        let saved = within(Duration::from_secs(5), || async {
            let (saved, owned) = (snapshot_epoch(&c, room).await, c.epoch(room).await);
            saved.is_some() && saved == owned
        });
        assert!(saved.await, "{room}: no snapshot since the restart (lease epoch {:?})", c.epoch(room).await);
    }
    // Ann's session is back (her gateway saw the store's generation change).
    let saved = within(Duration::from_secs(5), || async {
        let key = format!("snakepit:session:{token}");
        let exists: bool = redis::cmd("EXISTS").arg(key).query_async(&mut c.redis().await).await.unwrap();
        exists
    });
    assert!(saved.await, "ann's session was not saved again after the restart");
    for g in &c.gateways {
        assert_eq!(g.metric("snakepit_store_resets_total").await, 1.0, "{}: resets counted", g.name);
    }

    // Ann plays on through the restart (a snake that died joins again),
    // then her gateway dies: she resumes on the other one.
    assert!(ann.next_world(Duration::from_secs(15)).await, "no fresh world after the restart");
    head_far(&mut ann, &id, 30).await;
    c.gateways[0].kill().await;
    drop(ann);
    let mut back = c.client(1).await;
    let hs = resume(&mut back, &token).await.unwrap_or_else(|e| panic!("resume refused after the restart: {e}"));
    assert_eq!((id_of(&hs[2]), hs[3].as_str()), (id.clone(), Some(room.as_str())));
    back.until("world").await;
    assert!(back.view.head(&id).is_some(), "ann's snake is gone");
    assert!(back.turns(&id).await, "ann steers her snake through the other gateway");
}

/// A gateway dies without a word with a full room's players on it: their
/// seats come free (the room stops holding them once no gateway vouches
/// for the players), a newcomer gets in, and the room retires once empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_gateways_seats_come_free() {
    let small = [("--max-players", "2"), ("--empty-room-secs", "2")];
    let mut c = Cluster::start_with(1, 2, &small).await;
    let mut a = c.client(0).await;
    let mut b = c.client(0).await;
    let (a_id, room, _) = a.new_player("ann", Some("doomed")).await;
    let (b_id, _, _) = b.new_player("bob", Some("doomed")).await;
    a.join(&a_id).await;
    b.join(&b_id).await;
    assert_eq!(c.seats(&room).await, Some(2));
    let mut newcomer = c.client(1).await;
    newcomer.send(json!(["new_player", "cy", room])).await;
    assert_eq!(newcomer.error().await, "Room is full");

    c.gateways[0].kill().await;
    // Presence timeout (2 s), grace (3 s), and the seats are free.
    wait_until(Duration::from_secs(20), || async { c.seats(&room).await == Some(0) }).await;
    let (_, r, _) = newcomer.new_player("cy", Some(&room)).await;
    assert_eq!(r, room);
    assert_eq!(c.seats(&room).await, Some(1));
    newcomer.close().await;
    // Nobody left: the room retires and leaves the directory.
    wait_until(Duration::from_secs(20), || async { c.seats(&room).await.is_none() }).await;
    let w = &c.workers[0];
    wait_until(Duration::from_secs(5), || async { w.metric("snakepit_rooms").await == 0.0 }).await;
}

/// A gateway dies without a word while three players' snakes run across a
/// wide field: the worker finds it gone by its closed connection and parks
/// their snakes at once, so when the players resume on the other gateway
/// (1.5 s later here) each snake is alive, the same length, and a few
/// cells from where its player last saw it. Without the verdict the snakes
/// run on unseen until the presence timeout (2 s): some 30 cells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_gateways_snakes_stand_still_until_their_players_are_back() {
    let wide = [("--width", "200"), ("--height", "60")];
    let mut c = Cluster::start_with(1, 2, &wide).await;
    // A worker judges others only once its own presence has been steady
    // for a lease period (1.5 s here).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut players = Vec::new();
    for name in ["ann", "bob", "cy"] {
        let mut cl = c.client(0).await;
        let (id, room, token) = cl.new_player(name, Some("runners")).await;
        cl.join(&id).await;
        players.push((cl, id, room, token));
    }
    let mut tasks = Vec::new();
    for (mut cl, id, room, token) in players {
        tasks.push(tokio::spawn(async move {
            head_far(&mut cl, &id, 60).await;
            (cl, id, room, token)
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        let (mut cl, id, room, token) = t.await.unwrap();
        // The last frame before the kill: where each player last saw its snake.
        cl.frame().await;
        seen.push((cl, id, room, token));
    }
    c.gateways[0].kill().await;
    let mut last = Vec::new();
    for (cl, id, room, token) in seen {
        let head = cl.view.head(&id).expect("alive before the kill");
        let len = cl.view.snake_cells(&id).len();
        last.push((id, room, token, head, len));
        drop(cl);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (id, room, token, head, len) in last {
        let mut back = c.client(1).await;
        let hs = resume(&mut back, &token).await.unwrap_or_else(|e| panic!("{id}: resume refused: {e}"));
        assert_eq!(hs[3].as_str(), Some(room.as_str()));
        back.until("world").await;
        let now = back.view.head(&id).unwrap_or_else(|| panic!("{id}: the snake is gone"));
        let moved = now.0.abs_diff(head.0) + now.1.abs_diff(head.1);
        assert!(moved <= 10, "{id}: the snake ran on {moved} cells while its player was away ({head:?} -> {now:?})");
        assert_eq!(back.view.snake_cells(&id).len(), len, "{id}: the same length");
    }
    assert_eq!(c.workers[0].metric("snakepit_gateways_gone_total").await, 1.0);
}
