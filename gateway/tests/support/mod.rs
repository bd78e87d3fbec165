//! Test support: a standalone gateway on a free port, and a WebSocket client
//! that keeps its own copy of the world from the frames it receives.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use snakepit_gateway::standalone::{StandaloneConfig, serve};
use snakepit_gateway::{DrainConfig, GatewayConfig};
use snakepit_protocol::client_world::ClientWorld;
use snakepit_room_worker::GameSettings;
use snakepit_room_worker::room::RoomConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(5);

/// Test settings: a fast tick and no random stones or digits (a digit is
/// still spawned at each birth), so steered snakes live long.
pub fn settings() -> GameSettings {
    GameSettings { tick_rate: 20.0, stone_spawn_rate: 0.0, digit_spawn_rate: 0.0, ..GameSettings::default() }
}

pub fn config(settings: GameSettings) -> StandaloneConfig {
    StandaloneConfig {
        gateway: GatewayConfig::default(),
        room: RoomConfig {
            settings,
            grace: Duration::from_secs(3),
            empty_ttl: Duration::from_secs(30),
            snapshot_every: None,
            presence_timeout: Duration::from_secs(20),
            seat_hold: Duration::from_secs(15),
            packed_snapshots: true,
        },
        drain: DrainConfig {
            delay: Duration::ZERO,
            close_window: Duration::from_millis(200),
            grace: Duration::from_secs(2),
        },
        data_dir: None,
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(config(settings())).await
    }

    pub async fn start_with(config: StandaloneConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            serve(listener, config, token).await.unwrap();
        });
        Self { addr, shutdown, task }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// The value of one series of `/metrics`, written as exported (name and
    /// labels, e.g. `snakepit_ws_closes_total{code="4008"}`); 0 if absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        body.lines().filter_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse::<f64>().ok()).sum()
    }

    /// GET `path` over a plain socket; status line and body.
    pub async fn get(&self, path: &str) -> (String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text.lines().next().unwrap_or_default().to_string();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }
}

/// A frame from the server, as received.
#[derive(Clone, Debug)]
pub struct Frame {
    pub raw: String,
    pub commands: Vec<Value>,
}

impl Frame {
    pub fn tick(&self) -> Option<u64> {
        self.find("tick").and_then(|c| c[1].as_u64())
    }

    pub fn find(&self, name: &str) -> Option<&Value> {
        self.commands.iter().find(|c| c[0] == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

pub enum Event {
    Frame(Frame),
    Closed(Option<u16>),
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub view: View,
    /// `steer_tick` asked for a new snake and waits for its birth.
    rejoining: bool,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (ws, _) = connect_async(format!("ws://{addr}/connect")).await.unwrap();
        Self { ws, view: View::default(), rejoining: false }
    }

    /// A client whose socket holds little unread data (SO_RCVBUF), so that
    /// a client that stops reading backs up to the gateway soon.
    pub async fn connect_small(addr: SocketAddr, recv_buffer: u32) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(recv_buffer).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let url = format!("ws://{addr}/connect");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await.unwrap();
        Self { ws, view: View::default(), rejoining: false }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// Sends `v`; false if the connection is gone (a close may be on its way).
    pub async fn try_send(&mut self, v: Value) -> bool {
        self.ws.send(Message::text(v.to_string())).await.is_ok()
    }

    /// Steers `id` away from walls and bodies on every frame until the
    /// server closes the connection; the close code.
    pub async fn steer_until_closed(&mut self, id: &str) -> Option<u16> {
        loop {
            match self.next().await {
                Event::Frame(_) => {
                    if let Some(key) = self.view.safe_turn(id) {
                        self.try_send(json!(key)).await;
                    }
                }
                Event::Closed(code) => return code,
            }
        }
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    /// Sends `m`; false if the connection is gone.
    pub async fn try_send_raw(&mut self, m: Message) -> bool {
        self.ws.send(m).await.is_ok()
    }

    /// The next frame or the close, within `WAIT`; frames update the view.
    pub async fn next(&mut self) -> Event {
        loop {
            // A game whose snakes are all dead stops: say so if that is why.
            let Ok(msg) = tokio::time::timeout(WAIT, self.ws.next()).await else {
                panic!("no frame in time (at tick {}; snakes alive: {:?})", self.view.tick, self.view.alive);
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("server sent invalid JSON");
                    let commands = match v {
                        Value::Array(items) if items.first().is_some_and(Value::is_array) => items,
                        Value::Array(items) if items.is_empty() => vec![],
                        other => vec![other],
                    };
                    let frame = Frame { raw: t.to_string(), commands };
                    self.view.apply(&frame);
                    return Event::Frame(frame);
                }
                Some(Ok(Message::Close(c))) => return Event::Closed(c.map(|c: CloseFrame| c.code.into())),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Closed(None),
            }
        }
    }

    pub async fn frame(&mut self) -> Frame {
        match self.next().await {
            Event::Frame(f) => f,
            Event::Closed(code) => panic!("connection closed ({code:?}) while waiting for a frame"),
        }
    }

    /// Reads frames until one holds `name`; returns that command.
    pub async fn until(&mut self, name: &str) -> Value {
        for _ in 0..500 {
            let f = self.frame().await;
            if let Some(c) = f.find(name) {
                return c.clone();
            }
        }
        panic!("no {name} command");
    }

    /// Reads frames until the close; its code.
    pub async fn closed(&mut self) -> Option<u16> {
        for _ in 0..2000 {
            if let Event::Closed(code) = self.next().await {
                return code;
            }
        }
        panic!("not closed");
    }

    /// The text of the next `error` command.
    pub async fn error(&mut self) -> String {
        self.until("error").await[1].as_str().unwrap().to_string()
    }

    /// `new_player` (in `room` if given); returns (player id, room, token),
    /// after the welcome (world) has arrived.
    pub async fn new_player(&mut self, name: &str, room: Option<&str>) -> (String, String, String) {
        match room {
            Some(r) => self.send(json!(["new_player", name, r])).await,
            None => self.send(json!(["new_player", name])).await,
        }
        let hs = self.until("handshake").await;
        assert_eq!(hs[1], name);
        let ids = (id_of(&hs[2]), hs[3].as_str().unwrap().into(), hs[4].as_str().unwrap().into());
        self.until("world").await;
        ids
    }

    /// Joins and waits until the snake is born; returns its head.
    pub async fn join(&mut self, id: &str) -> (usize, usize) {
        self.send(json!(["join"])).await;
        for _ in 0..200 {
            self.frame().await;
            if let Some(h) = self.view.head(id) {
                return h;
            }
        }
        panic!("snake not born");
    }

    /// Reads one tick frame and steers `id` away from walls and bodies. A
    /// snake born facing a wall three cells off, on a loaded machine, may
    /// still die before the turn is in: it joins again, or a lone player's
    /// game would stop and the test wait for frames that never come.
    pub async fn steer_tick(&mut self, id: &str) -> Frame {
        let f = self.frame().await;
        if self.view.head(id).is_some() {
            self.rejoining = false;
            if let Some(dir) = self.view.safe_turn(id) {
                self.send(json!(dir)).await;
            }
        } else if !self.rejoining && self.view.alive.get(&pid(id)) == Some(&false) {
            self.rejoining = true;
            self.send(json!(["join"])).await;
        }
        f
    }

    /// Joins again if `id`'s snake died (see `steer_tick`).
    pub async fn ensure_alive(&mut self, id: &str) {
        if self.view.head(id).is_none() {
            self.join(id).await;
        }
        self.rejoining = false;
    }

    /// Reads frames until a `world` arrives (a resync); false after `limit`.
    pub async fn next_world(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Ok(f) = tokio::time::timeout(Duration::from_millis(100), self.frame()).await
                && f.has("world")
            {
                return true;
            }
        }
        false
    }

    /// Turns `id` perpendicular to its way; true if its own view shows the
    /// turn within six ticks.
    pub async fn turns(&mut self, id: &str) -> bool {
        let (key, want) = self.view.perpendicular_turn(id);
        self.send(json!(key)).await;
        for _ in 0..6 {
            self.frame().await;
            if self.view.direction(id) == Some(want) {
                return true;
            }
        }
        false
    }

    /// Steers `id` until at least ten free cells lie ahead, so the snake
    /// survives a while with nobody steering it (joining again should it
    /// die). A crowded field, or a client behind the server on a loaded
    /// machine (its turns decided on stale frames), may offer no such run
    /// for a while: after 100 ticks, seven cells do, after 200, five.
    pub async fn head_for_open_space(&mut self, id: &str) {
        for tick in 0..300 {
            self.steer_tick(id).await;
            if self.view.head(id).is_none() {
                continue;
            }
            let wanted = match tick {
                0..100 => 10,
                100..200 => 7,
                _ => 5,
            };
            if self.view.run_ahead(id) >= wanted {
                return;
            }
            let (key, _) = self.view.perpendicular_turn(id);
            self.send(json!(key)).await;
        }
        panic!("no open space found");
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Closes with `code` (none: a close frame without a code) and reads
    /// until the server has answered the close.
    pub async fn close_with(mut self, code: Option<u16>) {
        let frame = code.map(|c| CloseFrame { code: c.into(), reason: "".into() });
        let _ = self.ws.close(frame).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }
}

/// The world as a client sees it: the protocol crate's model of a client
/// (its fields through `Deref`), asked with the string ids these tests
/// pass around.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct View(ClientWorld);

impl std::ops::Deref for View {
    type Target = ClientWorld;
    fn deref(&self) -> &ClientWorld {
        &self.0
    }
}

/// A player id as the tests hold it (a string of its integer).
pub fn pid(id: &str) -> i64 {
    id.parse().expect("an integer player id")
}

impl View {
    pub fn apply(&mut self, f: &Frame) {
        if let Err(e) = self.0.apply(&f.commands) {
            panic!("a client could not read {}: {e}", f.raw);
        }
    }

    /// The head (`%` in the player's colour) of an alive snake.
    pub fn head(&self, id: &str) -> Option<(usize, usize)> {
        self.0.head(pid(id))
    }

    /// The cells of `id`'s alive snake (head, body and tail in its colour),
    /// sorted.
    pub fn snake_cells(&self, id: &str) -> Vec<(usize, usize)> {
        self.0.snake_cells(pid(id))
    }

    /// Direction as (dx, dy): from the neck (the body cell next to the head).
    pub fn direction(&self, id: &str) -> Option<(i64, i64)> {
        self.0.direction(pid(id))
    }

    /// Free cells straight ahead of `id`.
    pub fn run_ahead(&self, id: &str) -> usize {
        let (Some((x, y)), Some((dx, dy))) = (self.head(id), self.direction(id)) else { return 0 };
        (1..).take_while(|i| self.free(x as i64 + dx * i, y as i64 + dy * i)).count()
    }

    /// The perpendicular turn with the longest free run ahead: (key, (dx, dy)).
    pub fn perpendicular_turn(&self, id: &str) -> (u8, (i64, i64)) {
        let (x, y) = self.head(id).expect("alive");
        let (dx, _) = self.direction(id).expect("moving");
        let options: [(u8, (i64, i64)); 2] =
            if dx != 0 { [(38, (0, -1)), (40, (0, 1))] } else { [(37, (-1, 0)), (39, (1, 0))] };
        let run = |(ex, ey): (i64, i64)| (1..).take_while(|i| self.free(x as i64 + ex * i, y as i64 + ey * i)).count();
        *options.iter().max_by_key(|(_, d)| run(*d)).expect("two options")
    }

    /// A key code that keeps `id` alive, if the way ahead is blocked.
    pub fn safe_turn(&self, id: &str) -> Option<u8> {
        let (x, y) = self.head(id)?;
        let (dx, dy) = self.direction(id)?;
        let (x, y) = (x as i64, y as i64);
        if self.free(x + dx, y + dy) && self.free(x + 2 * dx, y + 2 * dy) {
            return None;
        }
        let options: [(u8, (i64, i64)); 4] = [(37, (-1, 0)), (38, (0, -1)), (39, (1, 0)), (40, (0, 1))];
        options
            .iter()
            .filter(|(_, d)| *d != (-dx, -dy) && *d != (dx, dy))
            .find(|(_, (ex, ey))| self.free(x + ex, y + ey))
            .map(|(k, _)| *k)
    }
}

/// Both clients play up to `ticks` ticks, steering; their raw frames by tick.
pub async fn play_both(
    a: &mut Client,
    a_id: &str,
    b: &mut Client,
    b_id: &str,
    ticks: usize,
) -> (BTreeMap<u64, String>, BTreeMap<u64, String>) {
    let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
    let quiet = Duration::from_secs(1);
    for _ in 0..ticks {
        // Both snakes may die (the game then stops): end early.
        let Ok(f) = tokio::time::timeout(quiet, a.steer_tick(a_id)).await else { break };
        if let Some(t) = f.tick() {
            fa.insert(t, f.raw);
        }
        let Ok(f) = tokio::time::timeout(quiet, b.steer_tick(b_id)).await else { break };
        if let Some(t) = f.tick() {
            fb.insert(t, f.raw);
        }
    }
    (fa, fb)
}

/// `mover` turns; true if `observer` sees the turn at the tick `mover` sees
/// it. A turn that `mover` itself never sees (dropped from a full turn queue,
/// or the snake died) is tried again, up to three times.
pub async fn turn_seen_by(mover: &mut Client, mover_id: &str, observer: &mut Client, observer_id: &str) -> bool {
    for _ in 0..3 {
        // Either snake may have died meanwhile (born facing a wall, late
        // steering on a loaded machine): both play, or the game stops.
        mover.ensure_alive(mover_id).await;
        while observer.view.tick < mover.view.tick {
            observer.steer_tick(observer_id).await;
        }
        observer.ensure_alive(observer_id).await;
        while mover.view.tick < observer.view.tick {
            mover.frame().await;
        }
        if mover.view.head(mover_id).is_none() {
            continue;
        }
        let (key, want) = mover.view.perpendicular_turn(mover_id);
        mover.send(json!(key)).await;
        for _ in 0..10 {
            mover.frame().await;
            if mover.view.head(mover_id).is_none() {
                break;
            }
            // The observer keeps its own snake alive meanwhile.
            while observer.view.tick < mover.view.tick {
                observer.steer_tick(observer_id).await;
            }
            if mover.view.direction(mover_id) == Some(want) {
                return observer.view.tick == mover.view.tick && observer.view.direction(mover_id) == Some(want);
            }
        }
    }
    false
}

/// A player id off the wire, as text: the protocol sends a JSON integer, as
/// the original did (a string here is a failure).
pub fn id_of(v: &Value) -> String {
    v.as_i64().unwrap_or_else(|| panic!("a player id must be a JSON integer, got {v}")).to_string()
}
