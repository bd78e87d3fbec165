//! Robot snakes through real WebSockets, against a standalone gateway whose
//! rooms keep a number of snakes alive: what a player (and an old client,
//! which knows nothing of robots) sees.

mod support;

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use support::{Client, Frame, Server, id_of};

/// The test settings, with rooms that keep `n` snakes alive.
fn robots(n: u16) -> snakepit_gateway::standalone::StandaloneConfig {
    support::config(snakepit_room_worker::GameSettings { robots: n, ..support::settings() })
}

/// Ids (as text) of the robots `client` sees alive.
fn robots_alive(client: &Client) -> Vec<String> {
    let mut ids: Vec<String> =
        client.view.alive.iter().filter(|(id, alive)| **alive && **id < 0).map(|(id, _)| id.to_string()).collect();
    ids.sort();
    ids
}

/// Every command `name` of `frame`.
fn commands<'a>(frame: &'a Frame, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    frame.commands.iter().filter(move |c| c[0] == name)
}

/// Names in every `top_scores` of `frame`.
fn top_score_names(frame: &Frame) -> Vec<String> {
    commands(frame, "top_scores")
        .flat_map(|c| c[1].as_array().cloned().unwrap_or_default())
        .map(|e| e[0].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Joins and steers until the snake of `id` is born and `n` robots are
/// alive; the robots' `p_joined` commands seen meanwhile, by id.
async fn join_with_robots(c: &mut Client, id: &str, n: usize) -> HashMap<String, Value> {
    c.send(json!(["join"])).await;
    let mut joined = HashMap::new();
    for _ in 0..100 {
        let f = c.steer_tick(id).await;
        for cmd in commands(&f, "p_joined") {
            let who = id_of(&cmd[1]);
            if who.starts_with('-') {
                joined.insert(who, cmd.clone());
            }
        }
        if c.view.head(id).is_some() && robots_alive(c).len() == n {
            return joined;
        }
    }
    panic!("no {n} robots: {:?}", c.view.alive);
}

#[tokio::test]
async fn a_lone_player_plays_against_three_robots_who_leave_with_it() {
    // `--robots 3`: a lone player plays against three robots.
    let server = Server::start_with(robots(3)).await;
    let mut a = server.client().await;
    let (id, _, _) = a.new_player("ann", Some("robots")).await;
    let joined = join_with_robots(&mut a, &id, 3).await;

    // Three robots, announced as ordinary players with negative ids.
    let ids = robots_alive(&a);
    assert_eq!(ids, vec!["-1", "-2", "-3"]);
    for (who, cmd) in &joined {
        let name = cmd[2].as_str().unwrap();
        assert!(name.starts_with("robot ") && name.len() <= 15, "{who}: {cmd}");
        assert!((1..=6).contains(&cmd[3].as_u64().unwrap()), "a colour: {cmd}");
        assert_eq!(cmd[4], 0, "no score yet: {cmd}");
    }

    // Their heads move, tick after tick (a robot that dies on the way is
    // drawn dead and left out).
    let mut heads: HashMap<String, (usize, usize)> =
        ids.iter().filter_map(|r| Some((r.clone(), a.view.head(r)?))).collect();
    let mut moves = 0;
    for _ in 0..10 {
        a.steer_tick(&id).await;
        for r in &ids {
            let (Some(before), Some(now)) = (heads.get(r).copied(), a.view.head(r)) else { continue };
            assert_ne!(before, now, "robot {r} stood still at tick {}", a.view.tick);
            heads.insert(r.clone(), now);
            moves += 1;
        }
    }
    assert!(moves >= 20, "robots moved {moves} times in 10 ticks");

    // Ann stops steering and runs into something. In the frame of her
    // death every robot leaves (p_gameover, its cells emptied) and the game
    // is over.
    let mut top_names = Vec::new();
    let death = loop {
        let robots_before = robots_alive(&a);
        let f = a.frame().await;
        top_names.extend(top_score_names(&f));
        if commands(&f, "p_gameover").any(|c| id_of(&c[1]) == id) {
            break (f, robots_before);
        }
    };
    let (frame, robots_before) = death;
    let gone: HashSet<String> = commands(&frame, "p_gameover").map(|c| id_of(&c[1])).collect();
    for r in &robots_before {
        assert!(gone.contains(r), "robot {r} left with the last player: {}", frame.raw);
    }
    assert!(robots_alive(&a).is_empty());
    let row: String = a.view.grid[12].iter().map(|(ch, _)| ch.as_str()).collect();
    assert!(row.contains(">>> GAME OVER <<<"), "{row}");
    // No live snake left on the field: no head, no tail, no coloured body.
    for (y, line) in a.view.grid.iter().enumerate() {
        for (x, (ch, colour)) in line.iter().enumerate() {
            let live = ch == "%" || ch == "*" || (ch == "@" && *colour != 0);
            assert!(!live, "a live snake's cell at ({x}, {y}) after the game ended");
        }
    }
    assert!(top_names.iter().all(|n| !n.starts_with("robot ")), "a robot in the top scores: {top_names:?}");

    // Joining again brings robots back, with new ids.
    let joined = join_with_robots(&mut a, &id, 3).await;
    let again = robots_alive(&a);
    assert_eq!(again.len(), 3);
    for r in &again {
        assert!(r.parse::<i64>().unwrap() <= -4, "robot ids are not given twice in a room: {again:?}");
        assert!(joined.contains_key(r));
    }
    a.close().await;
}

#[tokio::test]
async fn a_second_player_takes_a_robots_place() {
    // `--robots 2`: a lone player gets two robots, two players one.
    let server = Server::start_with(robots(2)).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let (a_id, _, _) = a.new_player("ann", Some("duo-robots")).await;
    let (b_id, _, _) = b.new_player("bob", Some("duo-robots")).await;
    join_with_robots(&mut a, &a_id, 2).await;
    assert_eq!(robots_alive(&a), vec!["-1", "-2"]);
    // Bob joins: the newest robot gives its place up.
    b.send(json!(["join"])).await;
    let mut retired = false;
    for _ in 0..100 {
        let f = a.steer_tick(&a_id).await;
        retired |= commands(&f, "p_gameover").any(|c| id_of(&c[1]) == "-2");
        while b.view.tick < a.view.tick {
            b.steer_tick(&b_id).await;
        }
        if retired && b.view.head(&b_id).is_some() {
            break;
        }
    }
    assert!(retired, "robot -2 retired when bob joined");
    for c in [&a, &b] {
        assert_eq!(robots_alive(c), vec!["-1"], "one robot beside two players");
    }
    a.close().await;
    b.close().await;
}
