//! Faults of the cluster in their harshest ordinary form, with real
//! processes, a real `redis-server` and real WebSockets: live snakes, full
//! rooms, and the directory checked, not just a gauge.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::Client;
use support::cluster::{Cluster, http_get, wait_until};

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
