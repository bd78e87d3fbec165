//! The floor: the least a server can do to play Snakepit with the swarm.
//!
//! It runs the same game (the `snakepit-game` rules, one game per room of
//! `room_size` players, a timer per room) and sends the same frames, encoded
//! once per tick, to each member through a bounded queue, over plain
//! tokio-tungstenite sockets (the gateway's read buffer and socket
//! options; whole frames, no fragments). Nothing else:
//! no bus, no sessions, no sequencing, no metrics, no resume. A gateway's
//! cost per delivered frame is stated as a ratio to this one's, measured in
//! the same run (`scripts/capacity.py --floor`), so the figure says what the
//! gateway adds rather than what this machine costs.
//!
//! It speaks `new_player` (the room named, or the fullest with a seat),
//! `join`, the four keys and `ping`; anything else is ignored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use snakepit_game::frame::{encode_tick, encode_welcome};
use snakepit_game::game::Game;
use snakepit_game::settings::GameSettings;
use snakepit_protocol::client::{ClientMessage, MAX_CLIENT_FRAME};
use snakepit_protocol::frame_writer::FrameWriter;
use snakepit_protocol::{PlayerId, RoomId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

/// Socket sizes: the gateway's read buffer and kernel send buffer
/// (`gateway/src/routes.rs`, `config.rs`), a plain 16 KiB write buffer.
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 16 * 1024;
const MAX_WRITE_BUFFER: usize = WRITE_BUFFER + snakepit_game::frame::MAX_WELCOME_LEN + 1024;
const SEND_QUEUE: usize = 64;
const TCP_SEND_BUFFER: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub struct FloorConfig {
    pub settings: GameSettings,
    pub seed: u64,
}

/// Frames handed to sockets so far (welcomes and ticks).
#[derive(Clone, Default)]
pub struct Delivered(Arc<AtomicU64>);

impl Delivered {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

struct RoomState {
    game: Game,
    members: Vec<(PlayerId, mpsc::Sender<Bytes>)>,
}

struct Room {
    state: Mutex<RoomState>,
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct Rooms {
    by_id: HashMap<RoomId, Arc<Room>>,
    next_player: i64,
    next_room: u64,
}

struct Shared {
    config: FloorConfig,
    rooms: Mutex<Rooms>,
    delivered: Delivered,
    shutdown: CancellationToken,
}

impl Shared {
    fn rooms(&self) -> MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new player's id and room: the one named, or the fullest with a
    /// free seat, or a new one (whose ticking starts here).
    fn place(self: &Arc<Self>, named: Option<RoomId>) -> (PlayerId, RoomId, Arc<Room>) {
        let seats = usize::from(self.config.settings.max_players);
        let mut rooms = self.rooms();
        rooms.next_player += 1;
        let id = PlayerId(rooms.next_player);
        let found = match &named {
            Some(name) => rooms.by_id.get(name).map(|r| (name.clone(), r.clone())),
            None => rooms
                .by_id
                .iter()
                .map(|(k, r)| (k, r, r.lock().members.len()))
                .filter(|(_, _, n)| *n < seats)
                .max_by_key(|(_, _, n)| *n)
                .map(|(k, r, _)| (k.clone(), r.clone())),
        };
        if let Some((name, room)) = found {
            return (id, name, room);
        }
        let name = named.unwrap_or_else(|| {
            rooms.next_room += 1;
            RoomId::parse(&format!("floor{}", rooms.next_room)).unwrap_or_else(|_| RoomId::random())
        });
        let seed = self.config.seed ^ rooms.next_room.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let room = Arc::new(Room {
            state: Mutex::new(RoomState { game: Game::new(self.config.settings.clone(), seed), members: Vec::new() }),
        });
        rooms.by_id.insert(name.clone(), room.clone());
        tokio::spawn(tick(room.clone(), self.clone()));
        (id, name, room)
    }
}

/// Serves until `shutdown` is cancelled; `delivered` counts frames sent.
pub async fn run(listener: TcpListener, config: FloorConfig, delivered: Delivered, shutdown: CancellationToken) {
    let shared = Arc::new(Shared { config, rooms: Mutex::default(), delivered, shutdown });
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _)) = accepted else {
            // Out of descriptors, most likely: let some close.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(TCP_SEND_BUFFER);
        tokio::spawn(serve(tcp, shared.clone()));
    }
}

async fn serve(tcp: TcpStream, shared: Arc<Shared>) {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_CLIENT_FRAME))
        .max_frame_size(Some(MAX_CLIENT_FRAME));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else { return };
    let (tx, rx) = mpsc::channel(SEND_QUEUE);
    let mut conn = Conn { ws, tx, rx, place: None, shared };
    conn.run().await;
    if let Some((id, room)) = conn.place.take() {
        let mut state = room.lock();
        state.game.remove_player(id);
        state.members.retain(|(m, _)| *m != id);
    }
}

struct Conn {
    ws: WebSocketStream<TcpStream>,
    tx: mpsc::Sender<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    place: Option<(PlayerId, Arc<Room>)>,
    shared: Arc<Shared>,
}

impl Conn {
    async fn run(&mut self) {
        loop {
            // No shutdown branch: connections end with the process, and
            // every branch costs a poll per frame.
            tokio::select! {
                biased;
                Some(frame) = self.rx.recv() => {
                    if self.write(frame).await.is_err() {
                        return;
                    }
                }
                msg = self.ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if self.on_message(&text).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
            }
        }
    }

    /// Writes `first` and whatever else is queued, then flushes.
    async fn write(&mut self, first: Bytes) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let mut next = Some(first);
        while let Some(frame) = next {
            if let Ok(text) = Utf8Bytes::try_from(frame) {
                self.ws.feed(Message::Text(text)).await?;
            }
            next = self.rx.try_recv().ok();
        }
        self.ws.flush().await
    }

    async fn on_message(&mut self, text: &str) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let Ok(msg) = ClientMessage::parse(text) else { return Ok(()) };
        match msg {
            ClientMessage::NewPlayer { name, room } if self.place.is_none() => {
                let (id, room_id, room) = self.shared.place(room);
                let welcome = {
                    let mut state = room.lock();
                    state.game.add_player(id, name.clone());
                    state.members.push((id, self.tx.clone()));
                    encode_welcome(&state.game)
                };
                self.place = Some((id, room));
                self.shared.delivered.add(1);
                let mut w = FrameWriter::default();
                w.handshake(&name, id, &room_id, "floor");
                self.ws.feed(Message::Text(Utf8Bytes::try_from(w.finish()).unwrap_or_default())).await?;
                self.write(welcome).await?;
            }
            ClientMessage::Join => {
                if let Some((id, room)) = &self.place {
                    let _ = room.lock().game.join(*id);
                }
            }
            ClientMessage::Key(dir) => {
                if let Some((id, room)) = &self.place {
                    room.lock().game.turn(*id, dir);
                }
            }
            ClientMessage::Ping => {
                let mut w = FrameWriter::default();
                w.pong();
                if let Ok(text) = Utf8Bytes::try_from(w.finish()) {
                    self.ws.send(Message::Text(text)).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A room's timer: steps the game and hands the frame, encoded once, to
/// every member's queue (a full queue drops it). Ends with the process.
async fn tick(room: Arc<Room>, shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(shared.config.settings.tick_period());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut writer = FrameWriter::with_capacity(2048);
    loop {
        ticks.tick().await;
        let mut state = room.lock();
        if !state.game.is_running() {
            continue;
        }
        state.game.step();
        let frame = encode_tick(&mut writer, &state.game);
        state.game.clear_events();
        let sent = state.members.iter().filter(|(_, tx)| tx.try_send(frame.clone()).is_ok()).count();
        shared.delivered.add(sent as u64);
    }
}
