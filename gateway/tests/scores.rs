//! The top scores of the standalone mode survive a restart: through the
//! library (a server stopped and started again on the same data folder)
//! and through the real `gateway` binary (SIGTERM, then a new process).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use snakepit_gateway::score_file::FILE_NAME;
use snakepit_gateway::score_keeper::LOCK_NAME;
use support::cluster::{Proc, wait_until};
use support::{Client, Event, Server, View, id_of};

/// A small field, so that a snake reaches its birthday digit and then a
/// wall in a few ticks; no random digits or stones.
fn settings() -> snakepit_room_worker::GameSettings {
    let mut s = support::settings();
    s.width = 20;
    s.height = 20;
    s
}

/// The key of the first step of a shortest way from `id`'s head to a
/// digit, over free cells; none if no digit can be reached.
fn towards_digit(view: &View, id: &str) -> Option<u8> {
    let (hx, hy) = view.head(id)?;
    let (h, w) = (view.grid.len() as i64, view.grid[0].len() as i64);
    let steps: [(u8, (i64, i64)); 4] = [(37, (-1, 0)), (38, (0, -1)), (39, (1, 0)), (40, (0, 1))];
    let mut seen = HashSet::from([(hx as i64, hy as i64)]);
    let mut queue = VecDeque::new();
    for (key, (dx, dy)) in steps {
        queue.push_back((key, (hx as i64 + dx, hy as i64 + dy)));
    }
    while let Some((key, (x, y))) = queue.pop_front() {
        if x < 0 || y < 0 || x >= w || y >= h || !seen.insert((x, y)) {
            continue;
        }
        let ch = &view.grid[y as usize][x as usize].0;
        if !ch.is_empty() && ch.chars().all(|c| c.is_ascii_digit()) {
            return Some(key);
        }
        if ch != " " {
            continue;
        }
        for (_, (dx, dy)) in steps {
            queue.push_back((key, (x + dx, y + dy)));
        }
    }
    None
}

fn key_of(direction: (i64, i64)) -> u8 {
    match direction {
        (-1, 0) => 37,
        (0, -1) => 38,
        (1, 0) => 39,
        _ => 40,
    }
}

/// Plays as `name` until its snake has eaten a digit and then died (it
/// runs straight into a wall once it has a score); the score and colour
/// it died with. A snake that dies before it scores joins again.
async fn score_then_die(client: &mut Client, name: &str, room: Option<&str>) -> (u64, u64) {
    let (id, _, _) = client.new_player(name, room).await;
    for _attempt in 0..5 {
        client.join(&id).await;
        let mut steering = true;
        for _ in 0..1000 {
            let frame = client.frame().await;
            if frame.find("p_gameover").is_some_and(|c| id_of(&c[1]) == id) {
                break;
            }
            let score = client.view.scores.get(&support::pid(&id)).copied().unwrap_or(0);
            if score > 0 {
                steering = false;
            }
            if !steering {
                continue;
            }
            let want = towards_digit(&client.view, &id);
            if let (Some(key), Some(dir)) = (want, client.view.direction(&id))
                && key != key_of(dir)
            {
                client.send(json!(key)).await;
            }
        }
        let score = client.view.scores.get(&support::pid(&id)).copied().unwrap_or(0);
        if score > 0 {
            let colour = client.view.colours[&support::pid(&id)];
            // The room's own list has it at once, in the frame of the death.
            return (score, colour);
        }
    }
    panic!("{name} never scored");
}

/// The `top_scores` a newcomer gets in its welcome.
async fn welcome_top_scores(client: &mut Client, name: &str) -> Vec<Value> {
    client.send(json!(["new_player", name])).await;
    client.until("top_scores").await[1].as_array().unwrap().clone()
}

/// What newcomers see after a restart: the first visitor starts the room,
/// which loads the top scores before its first welcome; a second visitor.
async fn top_scores_after_restart(addr: SocketAddr) -> (Vec<Value>, Vec<Value>) {
    let mut first = Client::connect(addr).await;
    let first_seen = welcome_top_scores(&mut first, "first").await;
    let mut second = Client::connect(addr).await;
    let second_seen = welcome_top_scores(&mut second, "second").await;
    first.close().await;
    second.close().await;
    (first_seen, second_seen)
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|d| d.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_scores_survive_a_restart_of_the_standalone_server() {
    let data = tempfile::tempdir().unwrap();
    let mut config = support::config(settings());
    config.data_dir = Some(data.path().to_path_buf());

    let server = Server::start_with(config.clone()).await;
    let mut client = server.client().await;
    let (score, colour) = score_then_die(&mut client, "keeper", None).await;
    client.close().await;
    // Straight after the game: the saver's window (1 s) has not passed,
    // so this is the last save, after the rooms stopped.
    server.shutdown.cancel();
    server.task.await.unwrap();
    assert_eq!(file_names(data.path()), vec![FILE_NAME, LOCK_NAME], "the file, its lock, no temporary file");
    let text = std::fs::read_to_string(data.path().join(FILE_NAME)).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc, json!({"version": 1, "scores": [{"name": "keeper", "score": score, "colour": colour}]}));

    let server = Server::start_with(config).await;
    let (first, second) = top_scores_after_restart(server.addr).await;
    assert_eq!(first, vec![json!(["keeper", score, colour])], "the first visitor");
    assert_eq!(second, first);
    server.shutdown.cancel();
    server.task.await.unwrap();
}

/// A game still going when the server stops counts as ended, as in the
/// original (whose players all died when it stopped): the score of a
/// snake alive at the stop is in the top scores after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_score_of_a_snake_alive_at_the_stop_is_kept() {
    let data = tempfile::tempdir().unwrap();
    let mut config = support::config(settings());
    config.data_dir = Some(data.path().to_path_buf());
    let server = Server::start_with(config.clone()).await;
    let mut client = server.client().await;
    let (id, _, _) = client.new_player("alive", None).await;
    let (score, colour) = 'lives: {
        // Steering is not perfect: a snake that dies first joins again.
        for _attempt in 0..5 {
            client.join(&id).await;
            let mut scored = false;
            for _ in 0..1000 {
                client.frame().await;
                if client.view.alive.get(&support::pid(&id)) != Some(&true) {
                    break;
                }
                scored |= client.view.scores.get(&support::pid(&id)).copied().unwrap_or(0) > 0;
                // Scored: steer into open space, then stop while it runs.
                if scored && client.view.run_ahead(&id) >= 10 {
                    break 'lives (client.view.scores[&support::pid(&id)], client.view.colours[&support::pid(&id)]);
                }
                let key = if scored { client.view.safe_turn(&id) } else { towards_digit(&client.view, &id) };
                if let (Some(key), Some(dir)) = (key, client.view.direction(&id))
                    && key != key_of(dir)
                {
                    client.send(json!(key)).await;
                }
            }
        }
        panic!("never scored and found open space");
    };
    server.shutdown.cancel();
    // Alive until the gateway closed the client: its snake parked, no death.
    loop {
        match client.next().await {
            Event::Frame(f) => {
                assert!(f.find("p_gameover").is_none_or(|c| id_of(&c[1]) != id), "the snake died before the stop");
            }
            Event::Closed(code) => {
                assert_eq!(code, Some(1012));
                break;
            }
        }
    }
    server.task.await.unwrap();

    let server = Server::start_with(config).await;
    let (first, _) = top_scores_after_restart(server.addr).await;
    assert_eq!(first, vec![json!(["alive", score, colour])]);
    server.shutdown.cancel();
    server.task.await.unwrap();
}

/// A death while someone else plays on reaches the file within seconds,
/// not only when the game ends: a crash then loses nothing already dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_is_saved_while_the_game_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let mut config = support::config(settings());
    config.room.grace = Duration::from_secs(120);
    config.data_dir = Some(data.path().to_path_buf());
    let server = Server::start_with(config).await;
    // Someone whose snake stays in play (parked: the connection dropped).
    let mut keeper = server.client().await;
    let (id, room, _) = keeper.new_player("keeper", None).await;
    keeper.join(&id).await;
    keeper.head_for_open_space(&id).await;
    drop(keeper);
    let mut scorer = server.client().await;
    let (score, colour) = score_then_die(&mut scorer, "scorer", Some(&room)).await;
    let path = data.path().join(FILE_NAME);
    let want = json!({"version": 1, "scores": [{"name": "scorer", "score": score, "colour": colour}]});
    wait_until(Duration::from_secs(5), || async {
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()) == Some(want.clone())
    })
    .await;
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_scores_file_is_kept_aside_and_the_game_starts_empty() {
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join(FILE_NAME);
    std::fs::write(&path, b"{\"version\": 1, \"scores\": [oops").unwrap();
    let mut config = support::config(settings());
    config.data_dir = Some(data.path().to_path_buf());

    let server = Server::start_with(config).await;
    let mut client = server.client().await;
    assert_eq!(welcome_top_scores(&mut client, "ann").await, Vec::<Value>::new());
    assert!(server.get("/readyz").await.0.contains(" 200 "));
    client.close().await;
    server.shutdown.cancel();
    server.task.await.unwrap();

    let names: Vec<String> = file_names(data.path()).into_iter().filter(|n| n != LOCK_NAME).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("top-scores.json.corrupt-"), "{names:?}");
    assert_eq!(std::fs::read(data.path().join(&names[0])).unwrap(), b"{\"version\": 1, \"scores\": [oops");
}

/// The real binary, stopped with SIGTERM as a user's Ctrl-C or a service
/// manager would, then started again on the same `--data-dir`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_scores_survive_a_sigterm_and_restart_of_the_gateway_binary() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let name = format!("scores-{}", std::process::id());
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir,
        "--tick-rate",
        "20",
        "--width",
        "20",
        "--height",
        "20",
        "--digit-spawn-rate",
        "0",
        "--stone-spawn-rate",
        "0",
    ];

    let mut g = Proc::standalone_gateway(&name, &args).await;
    let mut client = Client::connect(g.addr).await;
    let (score, colour) = score_then_die(&mut client, "survivor", None).await;
    client.close().await;
    let status = g.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(file_names(data.path()), vec![FILE_NAME, LOCK_NAME]);

    let mut g = Proc::standalone_gateway(&format!("{name}-again"), &args).await;
    let (_, second) = top_scores_after_restart(g.addr).await;
    assert_eq!(second, vec![json!(["survivor", score, colour])]);
    assert!(g.terminate().await.success());
}
