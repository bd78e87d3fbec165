//! The cluster as real processes on loopback: a `redis-server`, room
//! workers and gateways, played through real WebSockets, with things killed.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use support::cluster::{Cluster, http_get, wait_until};
use support::id_of;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_on_two_gateways_share_a_room_frame_by_frame() {
    let c = Cluster::start(2, 2).await;
    let mut a = c.client(0).await;
    let mut b = c.client(1).await;
    let (a_id, room, _) = a.new_player("ann", Some("across")).await;
    let (b_id, _, _) = b.new_player("bob", Some("across")).await;
    assert_eq!(room, "across");
    a.join(&a_id).await;
    b.join(&b_id).await;

    // Ann turns on gateway 1; Bob sees it on gateway 2, at the same tick.
    assert!(support::turn_seen_by(&mut a, &a_id, &mut b, &b_id).await, "bob saw ann's turn");
    // Both get the same frames, byte for byte, at every common tick, and
    // so the same world.
    let (a_frames, b_frames) = support::play_both(&mut a, &a_id, &mut b, &b_id, 30).await;
    let common: Vec<_> = a_frames.keys().filter(|t| b_frames.contains_key(t)).collect();
    assert!(common.len() >= 5, "too few common ticks: {}", common.len());
    for t in common {
        assert_eq!(a_frames[t], b_frames[t], "tick {t} differs between the gateways");
    }
}

/// A managed Redis speaks TLS and wants a password: the binaries take
/// `rediss://user:pass@host` and `--redis-ca-file`, and the game is played
/// across two gateways through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_plays_through_redis_over_tls_with_a_password() {
    let c = Cluster::start_tls(1, 2).await;
    let mut a = c.client(0).await;
    let mut b = c.client(1).await;
    let (a_id, room, _) = a.new_player("ann", Some("secure")).await;
    let (b_id, _, _) = b.new_player("bob", Some("secure")).await;
    assert_eq!(room, "secure");
    a.join(&a_id).await;
    b.join(&b_id).await;
    assert!(support::turn_seen_by(&mut a, &a_id, &mut b, &b_id).await, "bob saw ann's turn");
    assert_eq!(c.seats("secure").await, Some(2), "the directory, read over TLS");
    assert!(c.lease("secure").await.is_some(), "the room is leased through TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_land_on_both_workers() {
    let c = Cluster::start(2, 2).await;
    let mut clients = Vec::new();
    for i in 0..16 {
        let mut cl = c.client(i % 2).await;
        cl.new_player(&format!("p{i}"), Some(&format!("room{i}"))).await;
        clients.push(cl);
    }
    let mut per_worker = Vec::new();
    for w in &c.workers {
        per_worker.push(w.metric("snakepit_rooms").await);
    }
    assert_eq!(per_worker.iter().sum::<f64>(), 16.0, "{per_worker:?}");
    assert!(per_worker.iter().all(|n| *n > 0.0), "rooms not spread: {per_worker:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_players_joining_at_once_fill_rooms_without_overbooking() {
    let c = Cluster::start(2, 2).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let addr = c.gateways[i % 2].addr;
        tasks.push(tokio::spawn(async move {
            let mut cl = support::Client::connect(addr).await;
            let (_, room, _) = cl.new_player(&format!("p{i}"), None).await;
            (room, cl)
        }));
    }
    let mut per_room: HashMap<String, usize> = HashMap::new();
    let mut keep = Vec::new();
    for t in tasks {
        let (room, cl) = t.await.unwrap();
        *per_room.entry(room).or_default() += 1;
        keep.push(cl);
    }
    assert_eq!(per_room.len(), 2, "20 players, rooms of 10: {per_room:?}");
    assert!(per_room.values().all(|n| *n == 10), "{per_room:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_loses_its_lease_stops_and_its_frames_are_ignored() {
    let c = Cluster::start(2, 1).await;
    let mut a = c.client(0).await;
    let (a_id, room, _) = a.new_player("ann", Some("fenced")).await;
    a.join(&a_id).await;
    // Play long enough for a snapshot with the snake in it.
    for _ in 0..20 {
        a.steer_tick(&a_id).await;
    }
    let owner = c.owner(&room).await;
    let lease = c.lease(&room).await.unwrap();
    let old_epoch: u64 = lease.rsplit_once(':').unwrap().1.parse().unwrap();

    // Another holder takes the lease (as if the owner had stalled past it).
    let mut r = c.redis().await;
    let key = format!("snakepit:room:{{{room}}}:lease");
    let _: () = redis::cmd("SET").arg(&key).arg("intruder:999").arg("PX").arg(3000).query_async(&mut r).await.unwrap();
    // The owner notices within a round and stops publishing.
    let w = &c.workers[owner];
    wait_until(Duration::from_secs(5), || async { w.metric("snakepit_leases_lost_total").await == 1.0 }).await;
    let mut quiet = false;
    for _ in 0..40 {
        match tokio::time::timeout(Duration::from_millis(500), a.frame()).await {
            Err(_) => {
                quiet = true;
                break;
            }
            Ok(f) => assert!(f.tick().is_some() || f.has("error")),
        }
    }
    assert!(quiet, "frames kept coming after the lease was lost");

    // A frame stamped with the old epoch is ignored by the gateway.
    let stale = snakepit_bus::OutFrame {
        epoch: old_epoch,
        tick: 1_000_000,
        kind: snakepit_bus::FrameKind::Tick,
        payload: bytes::Bytes::from_static(b"[[\"tick\",1000000],[\"render\",0,0,\"#\",0]]"),
    };
    // Once the intruder is gone, a worker takes the room on, at a higher epoch.
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut r).await.unwrap();
    let resumed = a.next_world(Duration::from_millis(10000)).await;
    assert!(resumed, "the room was taken over and the player got a fresh world");
    let new_epoch: u64 = c.lease(&room).await.unwrap().rsplit_once(':').unwrap().1.parse().unwrap();
    assert!(new_epoch > old_epoch);
    // Fencing, not a resync, keeps it out: the gateway counts it as stale
    // and nobody is resynchronised (no second world).
    for _ in 0..5 {
        a.steer_tick(&a_id).await;
    }
    let g = &c.gateways[0];
    let (stale_before, resyncs_before) =
        (g.metric("snakepit_stale_frames_total").await, g.metric("snakepit_resyncs_total").await);
    let channel = format!("snakepit:room:{{{room}}}:out");
    let _: i64 =
        redis::cmd("PUBLISH").arg(&channel).arg(rmp_serde::to_vec(&stale).unwrap()).query_async(&mut r).await.unwrap();
    for _ in 0..10 {
        let f = a.steer_tick(&a_id).await;
        assert!(!f.raw.contains("1000000"), "a stale frame got through: {}", f.raw);
        assert!(!f.has("world"), "the stale frame caused a resync");
    }
    assert_eq!(g.metric("snakepit_stale_frames_total").await, stale_before + 1.0);
    assert_eq!(g.metric("snakepit_resyncs_total").await, resyncs_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_worker_moves_its_rooms_and_play_goes_on() {
    let mut c = Cluster::start(2, 2).await;
    let mut a = c.client(0).await;
    let mut b = c.client(1).await;
    let (a_id, room, _) = a.new_player("ann", Some("failover")).await;
    b.send(json!(["spectate", room])).await;
    b.until("world").await;
    a.join(&a_id).await;
    for _ in 0..20 {
        a.steer_tick(&a_id).await;
    }
    let owner = c.owner(&room).await;
    let survivor = 1 - owner;
    c.workers[owner].kill().await;

    // The other worker takes over from the snapshot; the snake is still there.
    let taken_over = a.next_world(Duration::from_millis(20000)).await;
    assert!(taken_over, "no fresh world after the owner died");
    assert_eq!(c.owner(&room).await, survivor);
    assert!(a.view.head(&a_id).is_some(), "ann's snake survived the failover");
    let before = a.view.tick;
    for _ in 0..10 {
        a.steer_tick(&a_id).await;
    }
    assert!(a.view.tick >= before + 5, "ticks go on");
    // The spectator on the other gateway follows too.
    b.until("world").await;
    for _ in 0..5 {
        b.frame().await;
    }
    assert!(b.view.head(&a_id).is_some(), "the spectator sees ann after the failover");
    assert!(c.workers[survivor].metric("snakepit_failovers_total").await >= 1.0);
}

/// A SIGKILLed owner is found gone by its closed connections: its room is
/// back well before its 4 s lease could have run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owners_room_is_back_long_before_its_lease_runs_out() {
    let mut c = Cluster::start_with(2, 1, &[("--lease-secs", "4")]).await;
    let mut a = c.client(0).await;
    let (a_id, room, _) = a.new_player("ann", Some("quick")).await;
    a.join(&a_id).await;
    // Workers judge others only after a lease period of steady presence.
    let steady = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < steady {
        a.steer_tick(&a_id).await;
    }
    let owner = c.owner(&room).await;
    let killed = std::time::Instant::now();
    c.workers[owner].kill().await;
    assert!(a.next_world(Duration::from_secs(10)).await, "no fresh world after the owner died");
    let back = killed.elapsed();
    eprintln!("room back {} ms after the kill", back.as_millis());
    assert!(back < Duration::from_secs(2), "the room came back after {back:?} (lease 4 s)");
    assert_eq!(c.owner(&room).await, 1 - owner);
    assert!(a.view.head(&a_id).is_some(), "ann's snake survived");
    assert_eq!(c.workers[1 - owner].metric("snakepit_workers_gone_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_rooms_over_without_loss() {
    let mut c = Cluster::start(2, 1).await;
    let mut a = c.client(0).await;
    let (a_id, room, _) = a.new_player("ann", Some("handover")).await;
    a.join(&a_id).await;
    for _ in 0..10 {
        a.steer_tick(&a_id).await;
    }
    let owner = c.owner(&room).await;
    let status = c.workers[owner].terminate().await;
    assert!(status.success(), "the worker exits cleanly on SIGTERM: {status:?}");
    let back = a.next_world(Duration::from_millis(10000)).await;
    assert!(back, "the room came back on the other worker");
    assert_eq!(c.owner(&room).await, 1 - owner);
    assert!(a.view.head(&a_id).is_some(), "the snake survived the handover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_game_is_survived() {
    let mut c = Cluster::start(1, 1).await;
    let mut a = c.client(0).await;
    let (a_id, _, _) = a.new_player("ann", Some("restart")).await;
    a.join(&a_id).await;
    for _ in 0..5 {
        a.steer_tick(&a_id).await;
    }
    // Redis dies: both processes stay up but report not ready.
    c.redis.kill();
    for p in [&c.workers[0], &c.gateways[0]] {
        wait_until(Duration::from_secs(10), || async { http_get(p.addr, "/readyz").await.contains(" 503 ") }).await;
    }
    // It comes back empty. The room kept stepping meanwhile, unsteered, so
    // the snake may have died: then the player joins again.
    c.redis.restart();
    for p in [&c.workers[0], &c.gateways[0]] {
        wait_until(Duration::from_secs(10), || async { http_get(p.addr, "/readyz").await.contains(" 200 ") }).await;
    }
    assert!(a.next_world(Duration::from_secs(30)).await, "the player got a fresh world after the restart");
    if a.view.head(&a_id).is_none() {
        a.join(&a_id).await;
    }
    let before = a.view.tick;
    for _ in 0..10 {
        a.steer_tick(&a_id).await;
    }
    assert!(a.view.tick >= before + 5, "ticks go on after the restart");
    assert!(c.workers[0].running(), "the worker did not exit");
    assert!(c.gateways[0].running(), "the gateway did not exit");
    // And new players can still come in.
    let mut b = c.client(0).await;
    b.new_player("bob", Some("restart")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_resumes_on_another_gateway() {
    let c = Cluster::start(1, 2).await;
    let mut a = c.client(0).await;
    let (a_id, room, token) = a.new_player("ann", Some("moving")).await;
    a.join(&a_id).await;
    a.head_for_open_space(&a_id).await;
    drop(a); // gateway 1 loses the player
    let mut a2 = c.client(1).await;
    a2.send(json!(["resume", token])).await;
    let hs = a2.until("handshake").await;
    assert_eq!(id_of(&hs[2]), a_id);
    assert_eq!(hs[3], room.as_str());
    a2.until("world").await;
    assert!(a2.view.head(&a_id).is_some(), "the snake is still alive after moving gateways");
    let turned = a2.turns(&a_id).await;
    assert!(turned, "steered through the new gateway");
    let g2 = &c.gateways[1];
    assert!(g2.metric("snakepit_input_to_broadcast_seconds_count").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_without_a_word_frees_its_players() {
    let mut c = Cluster::start(1, 2).await;
    let mut a = c.client(0).await;
    let (a_id, room, _) = a.new_player("ann", Some("orphan")).await;
    a.join(&a_id).await;
    let mut watcher = c.client(1).await;
    watcher.send(json!(["spectate", room])).await;
    watcher.until("world").await;
    let w = &c.workers[0];
    assert_eq!(w.metric("snakepit_room_players").await, 1.0);
    // Gateway 1 dies: no Disconnect ever reaches the room. Its silence does
    // (presence timeout 2 s here), then the grace period, then ann is gone.
    c.gateways[0].kill().await;
    assert_eq!(id_of(&watcher.until("p_gameover").await[1]), a_id);
    let w = &c.workers[0];
    wait_until(Duration::from_secs(10), || async { w.metric("snakepit_room_players").await == 0.0 }).await;
    // And the directory agrees: ann's seat is free.
    wait_until(Duration::from_secs(10), || async { c.seats(&room).await == Some(0) }).await;
    // The spectator on the live gateway is still served.
    watcher.send(json!(["ping"])).await;
    watcher.until("pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_gateway_tells_its_clients_to_reconnect_and_exits() {
    let mut c = Cluster::start(1, 2).await;
    let mut a = c.client(0).await;
    let (a_id, _, token) = a.new_player("ann", Some("rolling")).await;
    a.join(&a_id).await;
    let status = c.gateways[0].terminate().await;
    assert!(status.success(), "the gateway exits cleanly on SIGTERM: {status:?}");
    assert_eq!(a.closed().await, Some(1012));
    // As in a rolling update: the client resumes on the other gateway.
    let mut a2 = c.client(1).await;
    a2.send(json!(["resume", token])).await;
    assert_eq!(id_of(&a2.until("handshake").await[2]), a_id);
    a2.until("world").await;
}

/// A player who moves on at once (`enter` right behind `new_player`) gets
/// the new room's world: the old room's welcome, still on its way while
/// the move waits on Redis, must not pass for the new room's answer (its
/// `enter` would then never be repeated, and no world would ever come).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_on_at_once_gets_the_new_rooms_world() {
    let c = Cluster::start(1, 1).await;
    let mut holder = c.client(0).await;
    holder.new_player("holder", Some("first")).await;
    for trial in 0..12 {
        let mut p = c.client(0).await;
        let next = format!("next{trial}");
        p.send(json!(["new_player", "mover", "first"])).await;
        p.send(json!(["enter", next])).await;
        let mut moved = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        loop {
            assert!(tokio::time::Instant::now() < deadline, "trial {trial}: no world of {next}");
            let f = p.frame().await;
            if let Some(hs) = f.find("handshake") {
                moved = hs[3] == next.as_str();
            }
            if moved && f.has("world") {
                break;
            }
        }
        p.close().await;
    }
}
