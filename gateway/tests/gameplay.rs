//! Playing through real WebSockets against a standalone gateway on port 0.

mod support;

use serde_json::json;
use support::Server;
use support::id_of;

#[tokio::test]
async fn two_players_in_one_room_see_each_others_moves_frame_by_frame() {
    let server = Server::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let (a_id, room, _) = a.new_player("ann", Some("duo")).await;
    let (b_id, room_b, _) = b.new_player("bob", Some("duo")).await;
    assert_eq!(room, "duo");
    assert_eq!(room_b, "duo");
    // Bob first, so that ann's snake is the fresh one (nobody steers it
    // while the other joins) and both are steered from then on.
    b.join(&b_id).await;
    a.join(&a_id).await;

    // Each sees the other's snake.
    for _ in 0..10 {
        a.steer_tick(&a_id).await;
        b.steer_tick(&b_id).await;
        if b.view.head(&a_id).is_some() {
            break;
        }
    }
    assert!(b.view.head(&a_id).is_some(), "bob sees ann's snake");

    // Ann turns; Bob sees her head move the new way, at the same tick.
    assert!(support::turn_seen_by(&mut a, &a_id, &mut b, &b_id).await, "bob saw ann turn");
    // Both get the same frames, byte for byte, at every common tick.
    let (a_frames, b_frames) = support::play_both(&mut a, &a_id, &mut b, &b_id, 20).await;
    let common: Vec<_> = a_frames.keys().filter(|t| b_frames.contains_key(t)).collect();
    assert!(common.len() >= 5, "too few common ticks: {}", common.len());
    for t in common {
        assert_eq!(a_frames[t], b_frames[t], "frames of tick {t} differ");
    }
}

#[tokio::test]
async fn a_newcomer_gets_the_world_then_every_tick_with_no_gap_or_duplicate() {
    let server = Server::start().await;
    let mut a = server.client().await;
    let (a_id, room, _) = a.new_player("ann", None).await;
    a.join(&a_id).await;
    for _ in 0..5 {
        a.steer_tick(&a_id).await;
    }

    let mut c = server.client().await;
    c.send(json!(["spectate", room])).await;
    assert_eq!(c.until("spectating").await[1], room.as_str());
    let welcome = c.frame().await;
    assert!(welcome.has("world"), "first room frame is the world: {}", welcome.raw);
    assert!(welcome.has("top_scores"));
    let start = welcome.tick().expect("world carries its tick");
    // The alive snake is announced in the welcome.
    assert!(welcome.commands.iter().any(|c| c[0] == "p_joined" && id_of(&c[1]) == a_id));

    // Keep ann alive while the spectator reads.
    let mut a_grids = std::collections::HashMap::new();
    for expected in start + 1..start + 31 {
        let f = a.steer_tick(&a_id).await;
        if let Some(t) = f.tick() {
            a_grids.insert(t, a.view.grid.clone());
        }
        let f = c.frame().await;
        assert_eq!(f.tick(), Some(expected), "gap or duplicate in {}", f.raw);
        if let Some(g) = a_grids.get(&f.tick().unwrap_or_default()) {
            assert_eq!(&c.view.grid, g, "spectator's world differs from the player's");
        }
    }
}

#[tokio::test]
async fn a_player_can_only_steer_its_own_snake() {
    let server = Server::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let (a_id, _, _) = a.new_player("ann", Some("own")).await;
    let (b_id, _, _) = b.new_player("bob", Some("own")).await;
    a.join(&a_id).await;
    b.join(&b_id).await;
    // Learn ann's direction as bob sees it.
    while b.view.direction(&a_id).is_none() {
        b.frame().await;
    }
    let dir = b.view.direction(&a_id).unwrap();
    // Bob presses every key, and tries to name ann's snake.
    for key in [37, 38, 39, 40] {
        b.send(json!(key)).await;
    }
    b.send(json!(["turn", a_id, 37])).await;
    assert_eq!(b.error().await, "Unknown command");
    b.send(json!([37, a_id])).await;
    assert_eq!(b.error().await, "Unknown command");
    // Ann goes straight on (born at least 5 cells from a border: 3 ticks are safe).
    for _ in 0..3 {
        b.frame().await;
        if b.view.head(&a_id).is_none() {
            break;
        }
        assert_eq!(b.view.direction(&a_id), Some(dir), "ann's snake was steered by bob");
    }
}

#[tokio::test]
async fn resume_after_a_reconnect_keeps_the_snake() {
    let server = Server::start().await;
    let mut a = server.client().await;
    let (a_id, room, token) = a.new_player("ann", None).await;
    a.join(&a_id).await;
    // Head for open space, so the snake survives the time nobody steers it.
    a.head_for_open_space(&a_id).await;
    let head_before = a.view.head(&a_id).unwrap();
    drop(a); // the TCP connection goes away without a close

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut a2 = server.client().await;
    a2.send(json!(["resume", token])).await;
    let hs = a2.until("handshake").await;
    assert_eq!(hs[1], "ann");
    assert_eq!(id_of(&hs[2]), a_id);
    assert_eq!(hs[3], room.as_str());
    assert_eq!(hs[4], token.as_str());
    let welcome = a2.frame().await;
    assert!(welcome.has("world"));
    let head_after = a2.view.head(&a_id).expect("the snake is still alive");
    // Parked while its player was away: at most a tick or two on (before
    // the gateway noticed the drop), not the six of 300 ms at 20 ticks/s.
    let moved = head_before.0.abs_diff(head_after.0) + head_before.1.abs_diff(head_after.1);
    assert!(moved <= 2, "the snake kept going during the disconnect: {head_before:?} -> {head_after:?}");
    // Steerable from the new connection, and a turn is what moves it on
    // (without one it would wait out the resume hold, a second).
    let turned = a2.turns(&a_id).await;
    a2.steer_tick(&a_id).await;
    assert_ne!(a2.view.head(&a_id), Some(head_after), "the resumed snake moves again");
    assert!(turned, "the resumed connection steers the snake");
}

#[tokio::test]
async fn a_disconnected_snake_dies_after_the_grace_period() {
    let server = Server::start().await;
    let mut watcher = server.client().await;
    let mut a = server.client().await;
    let (a_id, room, _) = a.new_player("ann", None).await;
    a.join(&a_id).await;
    watcher.send(json!(["spectate", room])).await;
    watcher.until("world").await;
    drop(a);
    let started = std::time::Instant::now();
    let over = watcher.until("p_gameover").await;
    assert_eq!(id_of(&over[1]), a_id);
    // Grace is 3 s in the tests; a wall can come sooner, never much later.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn matchmaking_fills_the_fullest_room_first() {
    let mut settings = support::settings();
    settings.max_players = 2;
    let server = Server::start_with(support::config(settings)).await;
    let mut c1 = server.client().await;
    let mut c2 = server.client().await;
    let mut c3 = server.client().await;
    let (_, r1, _) = c1.new_player("p1", None).await;
    let (_, r2, _) = c2.new_player("p2", None).await;
    let (_, r3, _) = c3.new_player("p3", None).await;
    assert_eq!(r1, r2, "second player joins the first's room");
    assert_ne!(r1, r3, "a full room is skipped");
    // A named full room is refused.
    let mut c4 = server.client().await;
    c4.send(json!(["new_player", "p4", r1])).await;
    assert_eq!(c4.error().await, "Room is full");
    // The room list shows both rooms with their seats.
    c4.send(json!(["rooms"])).await;
    let rooms = c4.until("rooms").await;
    let list = rooms[1].as_array().unwrap();
    assert!(list.contains(&json!([r1, 2, 2])), "{rooms}");
    assert!(list.contains(&json!([r3, 1, 2])), "{rooms}");
    // A seat frees up when a player leaves.
    c2.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, r4, _) = c4.new_player("p4", Some(&r1)).await;
    assert_eq!(r4, r1);
}

#[tokio::test]
async fn players_switch_rooms_and_spectate() {
    let server = Server::start().await;
    let mut a = server.client().await;
    let (a_id, _, _) = a.new_player("ann", Some("one")).await;
    a.send(json!(["enter", "two"])).await;
    let hs = a.until("handshake").await;
    assert_eq!(id_of(&hs[2]), a_id);
    assert_eq!(hs[3], "two");
    a.until("world").await;
    a.join(&a_id).await;
    a.send(json!(["spectate", "two"])).await;
    assert_eq!(a.until("spectating").await[1], "two");
    a.until("world").await;
    // A spectator cannot join.
    a.send(json!(["join"])).await;
    assert_eq!(a.error().await, "Spectators cannot join; send enter");
    let mut s = server.client().await;
    s.send(json!(["spectate", "nowhere"])).await;
    assert_eq!(s.error().await, "No such room");
    s.send(json!(["spectate", "two"])).await;
    s.until("world").await;
    s.send(json!(["join"])).await;
    assert_eq!(s.error().await, "Spectators cannot join; send new_player");
}

#[tokio::test]
async fn health_and_metrics_are_served() {
    let server = Server::start().await;
    let (status, body) = server.get("/healthz").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body.trim(), "ok");
    let (status, _) = server.get("/readyz").await;
    assert!(status.contains("200"), "{status}");
    let (status, page) = server.get("/").await;
    assert!(status.contains("200"));
    assert!(page.contains("<canvas"), "the client page has a canvas");
    let (status, _) = server.get("/client.js").await;
    assert!(status.contains("200"));

    let mut a = server.client().await;
    let (a_id, _, _) = a.new_player("ann", None).await;
    a.join(&a_id).await;
    a.frame().await;
    let (_, metrics) = server.get("/metrics").await;
    for name in [
        "snakepit_room_tick_duration_seconds_bucket",
        "snakepit_room_tick_lag_seconds_bucket",
        "snakepit_rooms",
        "snakepit_room_players",
        "snakepit_connections",
        "snakepit_frames_sent_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metrics.contains("snakepit_rooms{worker=\"standalone\"} 1"), "{metrics}");
    assert!(metrics.contains("snakepit_connections 1"));
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect() {
    let server = Server::start().await;
    let mut a = server.client().await;
    a.new_player("ann", None).await;
    server.shutdown.cancel();
    assert_eq!(a.closed().await, Some(1012));
    tokio::time::timeout(std::time::Duration::from_secs(5), server.task).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_join_sent_before_the_world_arrives_is_not_lost() {
    let server = Server::start().await;
    let mut a = server.client().await;
    a.send(json!(["new_player", "eager", "brand-new-room"])).await;
    a.send(json!(["join"])).await;
    let hs = a.until("handshake").await;
    let id = id_of(&hs[2]);
    let joined = a.until("p_joined").await;
    assert_eq!(id_of(&joined[1]), id);
}

#[tokio::test]
async fn gauges_return_to_zero_when_everyone_has_left() {
    let server = Server::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let (a_id, _, _) = a.new_player("ann", Some("gauges")).await;
    let (b_id, _, _) = b.new_player("bob", Some("gauges")).await;
    a.join(&a_id).await;
    b.join(&b_id).await;
    let (_, m) = server.get("/metrics").await;
    assert!(m.contains("snakepit_snakes_alive{worker=\"standalone\"} 2"), "{m}");
    assert!(m.contains("snakepit_room_players{worker=\"standalone\"} 2"), "{m}");
    // Both drop; their snakes go on unsteered for the grace period, die,
    // and the disconnected players leave the room even though the game
    // has stopped.
    drop(a);
    drop(b);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    loop {
        let (_, m) = server.get("/metrics").await;
        if m.contains("snakepit_room_players{worker=\"standalone\"} 0")
            && m.contains("snakepit_snakes_alive{worker=\"standalone\"} 0")
            && m.contains("snakepit_connections 0")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "gauges did not return to zero: {m}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_empty_room_retires_after_a_while() {
    let mut config = support::config(support::settings());
    config.room.empty_ttl = std::time::Duration::from_secs(1);
    let server = Server::start_with(config).await;
    let mut a = server.client().await;
    a.new_player("ann", Some("brief")).await;
    let mut watcher = server.client().await;
    watcher.send(json!(["rooms"])).await;
    assert!(watcher.until("rooms").await[1].to_string().contains("brief"));
    a.close().await;
    // The room empties, waits its time, and leaves the directory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    loop {
        watcher.send(json!(["rooms"])).await;
        let rooms = watcher.until("rooms").await;
        if !rooms[1].to_string().contains("brief") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the empty room was never retired: {rooms}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let (_, m) = server.get("/metrics").await;
    assert!(m.contains("snakepit_rooms{worker=\"standalone\"} 0"), "{m}");
}
