//! A client of the original protocol written as a typed language would
//! write it: every command read into a typed struct, player ids as
//! integers. It speaks only the original's messages (`new_player`, `join`,
//! key codes), reads only the original's arguments (extensions trail), and
//! recognises its own death by its id alone: if ids were strings it would
//! never see its `p_gameover`, never join again, and its room would stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use support::Server;
use support::cluster::Cluster;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// The original's server commands, typed. Anything else is skipped, as the
/// original client skips what it does not know.
#[derive(Debug, PartialEq)]
enum Command {
    Handshake { name: String, id: i64 },
    World { rows: usize },
    PJoined { id: i64, name: String, colour: u8, score: u64 },
    PGameover { id: i64 },
    PScore { id: i64, score: u64 },
    TopScores(Vec<(String, u64, u8)>),
    Error(String),
    Other,
}

/// Reads argument `i` of `cmd` as `T`, strictly: a string where an integer
/// belongs is an error, as it would be for a typed client.
fn arg<T: serde::de::DeserializeOwned>(cmd: &[Value], i: usize) -> Result<T, String> {
    let v = cmd.get(i).ok_or_else(|| format!("{cmd:?}: no argument {i}"))?;
    serde_json::from_value(v.clone()).map_err(|e| format!("{cmd:?}: argument {i}: {e}"))
}

fn command(cmd: &[Value]) -> Result<Command, String> {
    let name: String = arg(cmd, 0)?;
    Ok(match name.as_str() {
        "handshake" => Command::Handshake { name: arg(cmd, 1)?, id: arg(cmd, 2)? },
        "world" => Command::World { rows: arg::<Vec<Value>>(cmd, 1)?.len() },
        "p_joined" => {
            Command::PJoined { id: arg(cmd, 1)?, name: arg(cmd, 2)?, colour: arg(cmd, 3)?, score: arg(cmd, 4)? }
        }
        "p_gameover" => Command::PGameover { id: arg(cmd, 1)? },
        "p_score" => Command::PScore { id: arg(cmd, 1)?, score: arg(cmd, 2)? },
        "top_scores" => Command::TopScores(arg(cmd, 1)?),
        "error" => Command::Error(arg(cmd, 1)?),
        _ => Command::Other,
    })
}

struct TypedClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TypedClient {
    async fn connect(addr: SocketAddr) -> Self {
        let (ws, _) = connect_async(format!("ws://{addr}/connect")).await.expect("connect");
        Self { ws }
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The commands of the next frame (a frame is an array of commands, or
    /// one bare command).
    async fn frame(&mut self) -> Vec<Command> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("no frame within 10 s: the room stopped")
                .expect("connection closed")
                .expect("socket error");
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(&text).expect("frame is JSON");
            let Value::Array(items) = v else { panic!("a frame is an array: {text}") };
            let cmds: Vec<Vec<Value>> = if items.first().is_some_and(Value::is_array) {
                items.into_iter().map(|c| c.as_array().cloned().expect("a command is an array")).collect()
            } else {
                vec![items]
            };
            return cmds.iter().map(|c| command(c).unwrap_or_else(|e| panic!("typed read failed: {e}"))).collect();
        }
    }

    /// `new_player`, then the handshake; the player's id.
    async fn new_player(&mut self, name: &str) -> i64 {
        self.send(&serde_json::json!(["new_player", name]).to_string()).await;
        loop {
            for c in self.frame().await {
                if let Command::Handshake { name: n, id } = c {
                    assert_eq!(n, name);
                    return id;
                }
            }
        }
    }

    /// Joins and lets the snake run straight on until it dies (a wall
    /// at the latest); returns what it saw of itself and the others.
    async fn play_one_life(&mut self, me: i64) -> Life {
        self.send(r#"["join"]"#).await;
        let mut life = Life::default();
        for _ in 0..400 {
            for c in self.frame().await {
                match c {
                    Command::PJoined { id, name, colour, score } if id == me => {
                        assert!((1..=6).contains(&colour), "colour {colour}");
                        life.joined = Some((name, score));
                    }
                    Command::PJoined { id, .. } => life.others.push(id),
                    Command::PScore { id, score } if id == me => life.score = score,
                    Command::PGameover { id } if id == me => {
                        assert!(life.joined.is_some(), "died before it was born");
                        return life;
                    }
                    Command::Error(e) => panic!("server refused: {e}"),
                    _ => {}
                }
            }
        }
        panic!("never saw its own p_gameover: ids do not match");
    }
}

#[derive(Debug, Default)]
struct Life {
    joined: Option<(String, u64)>,
    score: u64,
    others: Vec<i64>,
}

/// Three lives in a row on `addr`: each time the client sees its own
/// `p_joined` and `p_gameover` by its integer id and joins again.
async fn three_lives(addr: SocketAddr, name: &str) -> i64 {
    let mut c = TypedClient::connect(addr).await;
    let me = c.new_player(name).await;
    assert!(me > 0, "a person's id is positive: {me}");
    for round in 0..3 {
        let life = c.play_one_life(me).await;
        assert_eq!(life.joined.as_ref().map(|(n, _)| n.as_str()), Some(name), "round {round}");
    }
    me
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_client_of_the_original_plays_dies_and_joins_again() {
    let server = Server::start().await;
    let first = three_lives(server.addr, "typed").await;
    // Ids count up from one counter of the process, as in the original.
    let mut other = TypedClient::connect(server.addr).await;
    let second = other.new_player("other").await;
    assert!(second > first, "ids grow: {first} then {second}");
    // A typed client reads top scores too (name, score, colour).
    other.send(r#"["join"]"#).await;
    loop {
        if other.frame().await.iter().any(|c| matches!(c, Command::TopScores(_))) {
            break;
        }
    }
}

/// In a cluster an id names one person across every gateway and room: one
/// counter in Redis hands them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_unique_across_gateways_and_typed_clients_play_there() {
    let c = Cluster::start(1, 2).await;
    let (a, b) = (c.gateways[0].addr, c.gateways[1].addr);
    let (x, y) = tokio::join!(three_lives(a, "left"), three_lives(b, "right"));
    assert_ne!(x, y);
    let mut ids = vec![x, y];
    for i in 0..6 {
        let mut cl = TypedClient::connect(if i % 2 == 0 { a } else { b }).await;
        ids.push(cl.new_player(&format!("p{i}")).await);
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids repeat: {ids:?}");
    assert!(ids.iter().all(|&id| id > 0 && id < 1 << 53), "{ids:?}");
}

/// The typed reading is strict: a string id is refused, so the tests above
/// would fail against a server that sent UUID strings.
#[test]
fn a_string_id_does_not_read_as_an_integer() {
    let cmd: Vec<Value> = serde_json::from_str(r#"["p_gameover","0b7e0f6e-6c1a-4c55-9b7e-2f1f3f4f5f6f"]"#).unwrap();
    assert!(command(&cmd).is_err());
    let cmd: Vec<Value> = serde_json::from_str(r#"["p_gameover",7]"#).unwrap();
    assert_eq!(command(&cmd), Ok(Command::PGameover { id: 7 }));
}
