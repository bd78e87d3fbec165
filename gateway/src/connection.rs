//! One client connection: a struct whose `run` selects over the socket, the
//! connection's outgoing queue, the room's answer timer, pings and the idle
//! timer (dead peers), a kick (too slow, or superseded by a newer
//! connection of the player), the gateway's restart (its drain) and a loss
//! of the store's data (the session is saved again).
//!
//! The connection owns the player's identity (player id, name, resume
//! token) and tags every input with it: a client can only steer its own
//! snake. It never runs game rules.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use snakepit_bus::{Backend, ConnId, InputKind, Notice, PlayerId, RoomId, RoomInput, Seat, Session};
use snakepit_protocol::client::{ClientMessage, ProtocolError};
use snakepit_protocol::frame_writer::{FrameWriter, error_frame};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{debug, warn};

use crate::fanout::{Member, Outgoing};
use crate::rate_limit::TokenBucket;
use crate::state::AppState;

/// How long a restart waits for the room's word that it parked the player's
/// snake (and for a write in flight) before it closes the client: a few
/// ticks, with room for a loaded worker or Redis.
const PARK_WAIT: Duration = Duration::from_millis(1000);

// Close codes (see docs/protocol.md).

/// The gateway is restarting (drained): reconnect after a random delay and
/// resume.
pub const CLOSE_RESTART: u16 = 1012;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// A newer connection of the same player (a resume) took over.
pub const CLOSE_SUPERSEDED: u16 = 4009;
/// Nothing (no message, no pong) from the client for the idle timeout.
pub const CLOSE_IDLE: u16 = 4000;
/// A client's close frame without a code counts as a normal close (1000):
/// an orderly close, and what many clients send by default.
const CLOSE_NORMAL: u16 = 1000;
/// Gone without a close frame (never sent; only counted).
const CLOSE_ABNORMAL: u16 = 1006;

/// Rooms listed in one `rooms` reply.
const ROOMS_LISTED: usize = 100;

struct Identity {
    id: PlayerId,
    name: String,
    token: String,
    /// Tells this identity from another given the same id (see
    /// `InputKind::Enter`).
    key: u64,
    /// The room of the session last saved, to save it again if the store
    /// loses it.
    session_room: Option<RoomId>,
}

/// The room this connection is a member of.
struct Place {
    room: RoomId,
    member: PlayerId,
    as_player: bool,
}

/// An `enter` the room has not answered yet.
struct PendingEnter {
    input: RoomInput,
    room: RoomId,
    next: Instant,
    deadline: Instant,
    warned: bool,
}

/// How a write to the client ended.
enum Wrote {
    Done,
    /// The stop token fired (kick or shutdown) while the write waited.
    Stopped,
    /// The client is gone, or did not take the data in time.
    Failed,
}

enum Flow {
    Continue,
    /// The client closed, with this code.
    ClientClosed(u16),
    Close(u16, &'static str),
}

/// How a connection ended; counted by its close code.
enum Ending {
    /// The gateway closes with this code and reason.
    Close(u16, &'static str),
    /// The client sent a close frame with this code.
    ClientClosed(u16),
    /// Gone without a close frame: the socket broke, or a write failed.
    Lost,
}

impl Ending {
    fn code(&self) -> u16 {
        match self {
            Self::Close(code, _) | Self::ClientClosed(code) => *code,
            Self::Lost => CLOSE_ABNORMAL,
        }
    }
}

/// A refusal the client hears about: its own fault, or ours.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("{0}")]
    State(String),
    #[error("Server busy, try again")]
    Backend(#[from] snakepit_bus::BusError),
}

pub struct Connection<B> {
    state: AppState<B>,
    conn: ConnId,
    /// Member id while spectating without an identity: from the same
    /// counter as players' ids, taken at the first `spectate`.
    spectator_id: Option<PlayerId>,
    /// The spectator identity's key (see `InputKind::Enter`).
    spectator_key: u64,
    identity: Option<Identity>,
    place: Option<Place>,
    pending: Option<PendingEnter>,
    out_tx: mpsc::Sender<Outgoing>,
    out_rx: mpsc::Receiver<Outgoing>,
    /// Cancelled by the gateway's drain (or its end): close with 1012.
    restart: CancellationToken,
    /// Cancelled by a restart, or by the fan-out (too slow, superseded).
    kick: CancellationToken,
    /// Set by the fan-out when a newer connection of this player took over:
    /// this one then ends without a word to the room, the session or the
    /// room's members, which belong to the newer connection.
    superseded: Arc<AtomicBool>,
    limiter: TokenBucket,
    throttled: bool,
    dropped: u32,
    /// The fan-out asked for a fresh world.
    resync: bool,
    /// The room said it parked this connection's snake (a drain waits for it).
    room_parked: bool,
    /// A `join` that came before the room's welcome.
    join_after_welcome: bool,
    /// When the oldest key press not yet followed by a tick frame came in.
    key_at: Option<Instant>,
    /// The client has sent a command of the protocol since it opened.
    spoken: bool,
}

impl<B: Backend> Connection<B> {
    pub fn new(state: AppState<B>) -> Self {
        let (out_tx, out_rx) = mpsc::channel(state.config.send_queue);
        let limiter = TokenBucket::new(state.config.rate_per_sec, state.config.rate_burst);
        // Children: one future watches all three.
        let restart = state.shutdown.child_token();
        let kick = restart.child_token();
        Self {
            conn: ConnId::random(),
            spectator_id: None,
            spectator_key: new_key(),
            identity: None,
            place: None,
            pending: None,
            out_tx,
            out_rx,
            restart,
            kick,
            superseded: Arc::default(),
            limiter,
            throttled: false,
            dropped: 0,
            resync: false,
            room_parked: false,
            join_after_welcome: false,
            key_at: None,
            spoken: false,
            state,
        }
    }

    pub async fn run(mut self, socket: WebSocket) {
        let opened = Instant::now();
        self.state.metrics.connections.inc();
        self.state.clients.add(self.conn, self.restart.clone());
        let (mut sink, mut stream) = socket.split();
        // Made once and polled by reference: creating a cancellation future
        // per loop turn costs a lock per frame.
        let stopped = self.kick.clone().cancelled_owned();
        tokio::pin!(stopped);
        // Cloned once, for `write`: why a stopped write stopped.
        let (restart, superseded) = (self.restart.clone(), self.superseded.clone());
        let idle = Instant::now() + Duration::from_secs(86400 * 365);
        // Dead peers: pings go out every `ping_every`, and a client heard
        // from (any message, pongs included) for `idle_timeout` is closed.
        // The silence timer is moved on lazily, when it fires.
        let (ping_every, idle_timeout) = (self.state.config.ping_every, self.state.config.idle_timeout);
        let mut pings = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        let silence = sleep_until(heard + idle_timeout);
        tokio::pin!(silence);
        let first_message = sleep_until(opened + self.state.config.first_message_timeout);
        tokio::pin!(first_message);
        let mut store_resets = self.state.store_resets.subscribe();
        let mut refresh_session_at = Instant::now() + self.state.config.session_ttl / 2;
        let ending = loop {
            let retry_at = self.pending.as_ref().map(|p| p.next);
            tokio::select! {
                _ = &mut stopped => break self.stop_reason(),
                _ = pings.tick() => match self.ping(&mut sink, stopped.as_mut()).await {
                    Wrote::Done => {
                        // A session lives `session_ttl` from its last save:
                        // one held longer must not expire while its player
                        // plays on (a gateway that then died could not be
                        // resumed from). Checked at the pings' pace, which
                        // costs no timer of its own.
                        if Instant::now() >= refresh_session_at {
                            refresh_session_at = Instant::now() + self.state.config.session_ttl / 2;
                            self.save_session_again().await;
                        }
                    }
                    Wrote::Stopped => break self.stop_reason(),
                    Wrote::Failed => break Ending::Lost,
                },
                _ = &mut first_message, if !self.spoken => {
                    debug!("no first message in time");
                    break Ending::Close(CLOSE_IDLE, "no message in time");
                }
                _ = &mut silence => {
                    let until = heard + idle_timeout;
                    if until > Instant::now() {
                        silence.as_mut().reset(until);
                    } else {
                        debug!("client silent for the idle timeout");
                        break Ending::Close(CLOSE_IDLE, "no message or pong in time; reconnect and resume");
                    }
                }
                msg = stream.next() => match msg {
                    None => break Ending::Lost,
                    Some(Err(e)) if too_big(&e) => break Ending::Close(CLOSE_TOO_BIG, "message too big"),
                    Some(Err(_)) => break Ending::Lost,
                    Some(Ok(msg)) => {
                        heard = Instant::now();
                        match self.on_message(msg).await {
                            Flow::Continue => {}
                            Flow::ClientClosed(code) => break Ending::ClientClosed(code),
                            Flow::Close(code, reason) => break Ending::Close(code, reason),
                        }
                    }
                },
                Some(out) = self.out_rx.recv() => {
                    match self.write(&mut sink, out, stopped.as_mut(), &restart, &superseded).await {
                        Wrote::Done => {}
                        // Kicked or shut down while waiting on the socket:
                        // the client still hears why.
                        Wrote::Stopped => break self.stop_reason(),
                        Wrote::Failed => break Ending::Lost,
                    }
                    if std::mem::take(&mut self.resync) {
                        self.reenter().await;
                    }
                    if self.pending.is_none() && std::mem::take(&mut self.join_after_welcome) {
                        self.join_now().await;
                    }
                }
                _ = sleep_until(retry_at.unwrap_or(idle)), if retry_at.is_some() => self.retry_enter().await,
                Ok(()) = store_resets.changed() => self.save_session_again().await,
            }
        };
        // A restart parks the player's snake before the close, so that the
        // last frames the client saw show it where it will stand.
        let told = matches!(ending, Ending::Close(CLOSE_RESTART, _)) && self.park_before_close(&mut sink).await;
        // The session lives on from now, for a resume: saved before the
        // close frame, which the client may answer with a resume at once.
        if let Some(place) = self.place.as_ref().filter(|p| p.as_player && !self.is_superseded()) {
            let room = place.room.clone();
            self.save_session(&room).await;
        }
        self.leave_telling(InputKind::Disconnect, !told).await;
        if let Ending::Close(code, reason) = ending {
            // Behind whatever the socket still holds: a slow client needs
            // as long as any write to take it in.
            let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
            let _ = timeout(self.state.config.write_timeout, sink.send(Message::Close(Some(frame)))).await;
        }
        self.state.clients.remove(self.conn);
        self.state.metrics.connections.dec();
        self.state.metrics.closed(ending.code(), opened.elapsed());
    }

    fn is_superseded(&self) -> bool {
        self.superseded.load(Ordering::Acquire)
    }

    /// Why the connection's stop token fired: a newer connection, the
    /// gateway's restart, or a kick. A superseded client must not resume:
    /// it would shut out the newer connection in turn.
    fn stop_reason(&self) -> Ending {
        if self.is_superseded() {
            Ending::Close(CLOSE_SUPERSEDED, "resumed elsewhere")
        } else if self.restart.is_cancelled() {
            Ending::Close(CLOSE_RESTART, "gateway restarting; reconnect and resume")
        } else {
            Ending::Close(CLOSE_TOO_SLOW, "too slow; reconnect and resume")
        }
    }

    /// Writes `first` and whatever else is queued, then flushes.
    async fn write(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
        first: Outgoing,
        stopped: std::pin::Pin<&mut WaitForCancellationFutureOwned>,
        restart: &CancellationToken,
        superseded: &AtomicBool,
    ) -> Wrote {
        let batch = self.write_batch(sink, first);
        tokio::pin!(batch);
        tokio::select! {
            ok = &mut batch => return if ok { Wrote::Done } else { Wrote::Failed },
            _ = stopped => {}
        }
        // A kicked connection stops waiting on its socket at once. A
        // restart lets the frames in flight reach the client (briefly):
        // dropped, they would hide a step of the snake the drain parks.
        if restart.is_cancelled()
            && !superseded.load(Ordering::Acquire)
            && !matches!(timeout(PARK_WAIT, batch).await, Ok(true))
        {
            return Wrote::Failed;
        }
        Wrote::Stopped
    }

    /// Sends a ping (tungstenite answers the client's own pings).
    async fn ping(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
        stopped: std::pin::Pin<&mut WaitForCancellationFutureOwned>,
    ) -> Wrote {
        let write_timeout = self.state.config.write_timeout;
        tokio::select! {
            sent = timeout(write_timeout, sink.send(Message::Ping(bytes::Bytes::new()))) => match sent {
                Ok(Ok(())) => Wrote::Done,
                _ => Wrote::Failed,
            },
            _ = stopped => Wrote::Stopped,
        }
    }

    async fn write_batch(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
        first: Outgoing,
    ) -> bool {
        let write_timeout = self.state.config.write_timeout;
        let mut next = Some(first);
        let mut batch = 0;
        while let Some(out) = next.take() {
            let text = match out {
                Outgoing::Frame(t) => t,
                Outgoing::Tick(t) => {
                    if let Some(at) = self.key_at.take() {
                        self.state.metrics.input_to_broadcast.observe(at.elapsed().as_secs_f64());
                    }
                    t
                }
                Outgoing::Welcome(t) => {
                    self.pending = None;
                    t
                }
                Outgoing::Resync => {
                    self.resync = true;
                    next = self.out_rx.try_recv().ok();
                    continue;
                }
                Outgoing::Parked => {
                    self.room_parked = true;
                    next = self.out_rx.try_recv().ok();
                    continue;
                }
            };
            match timeout(write_timeout, sink.feed(Message::Text(text))).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
            batch += 1;
            if batch < 32 {
                next = self.out_rx.try_recv().ok();
            }
        }
        matches!(timeout(write_timeout, sink.flush()).await, Ok(Ok(())))
    }

    async fn on_message(&mut self, msg: Message) -> Flow {
        let (text, control) = match msg {
            Message::Text(t) => (Some(t), false),
            Message::Binary(_) => (None, false),
            // Control frames share the message budget: a ping flood is a
            // flood (tungstenite answers each ping with a pong).
            Message::Ping(_) | Message::Pong(_) => (None, true),
            Message::Close(frame) => return Flow::ClientClosed(frame.map_or(CLOSE_NORMAL, |f| f.code)),
        };
        if !self.limiter.try_take() {
            self.dropped += 1;
            self.state.metrics.client_errors.with_label_values(&["rate"]).inc();
            if self.dropped > self.state.config.flood_limit {
                return Flow::Close(CLOSE_POLICY, "too many messages");
            }
            if !self.throttled && !control {
                self.throttled = true;
                self.send_error("Too many messages");
            }
            return Flow::Continue;
        }
        if control {
            return Flow::Continue;
        }
        self.throttled = false;
        let Some(text) = text else {
            self.state.metrics.client_errors.with_label_values(&["binary"]).inc();
            self.send_error("Binary frames are not supported");
            return Flow::Continue;
        };
        let result = match ClientMessage::parse(&text) {
            Ok(msg) => {
                // Only a command of the protocol counts as speaking: a
                // binary frame or garbage does not keep a socket.
                self.spoken = true;
                self.dispatch(msg).await
            }
            Err(e) => Err(e.into()),
        };
        if let Err(refusal) = result {
            let reason = match &refusal {
                Refusal::Protocol(_) => "protocol",
                Refusal::State(_) => "state",
                Refusal::Backend(e) => {
                    warn!(error = %e, "backend error while serving a client");
                    "backend"
                }
            };
            self.state.metrics.client_errors.with_label_values(&[reason]).inc();
            self.send_error(&refusal.to_string());
        }
        Flow::Continue
    }

    async fn dispatch(&mut self, msg: ClientMessage) -> Result<(), Refusal> {
        match msg {
            ClientMessage::NewPlayer { name, room } => self.new_player(name, room).await,
            ClientMessage::Resume(token) => self.resume(token).await,
            ClientMessage::Join => {
                let place = self.playing_place()?;
                let input = self.input(place.member, InputKind::Join);
                let room = place.room.clone();
                if self.pending.is_some() {
                    // The room may not listen yet: join once it has answered.
                    self.join_after_welcome = true;
                    return Ok(());
                }
                self.publish(&room, input).await
            }
            ClientMessage::Key(dir) => {
                let place = self.playing_place()?;
                let input = self.input(place.member, InputKind::Turn(dir));
                let room = place.room.clone();
                self.key_at.get_or_insert_with(Instant::now);
                self.publish(&room, input).await
            }
            ClientMessage::Rooms => {
                let rooms = self.state.backend.rooms(ROOMS_LISTED).await?;
                let mut w = FrameWriter::default();
                w.rooms(&rooms);
                self.send(w.finish());
                Ok(())
            }
            ClientMessage::Spectate(room) => self.spectate(room).await,
            ClientMessage::Enter(room) => self.enter_as_player(room).await,
            ClientMessage::Ping => {
                let mut w = FrameWriter::default();
                w.pong();
                self.send(w.finish());
                Ok(())
            }
        }
    }

    /// The place where this connection plays, or why it cannot steer.
    fn playing_place(&self) -> Result<&Place, Refusal> {
        let Some(identity) = &self.identity else {
            return Err(match &self.place {
                Some(_) => state("Spectators cannot join; send new_player"),
                None => state("Send new_player first"),
            });
        };
        match &self.place {
            Some(p) if p.as_player && p.member == identity.id => Ok(p),
            _ => Err(state("Spectators cannot join; send enter")),
        }
    }

    async fn new_player(&mut self, name: String, room: Option<RoomId>) -> Result<(), Refusal> {
        if let Some(id) = &self.identity {
            return Err(state(format!("Already playing as {}", id.name)));
        }
        let id = self.state.backend.new_player_id().await?;
        let room = self.take_seat(room.as_ref(), id).await?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let identity = Identity { id, name, token, key: new_key(), session_room: None };
        self.identity = Some(identity);
        self.move_in(room, true).await
    }

    async fn resume(&mut self, token: String) -> Result<(), Refusal> {
        if let Some(id) = &self.identity {
            return Err(state(format!("Already playing as {}", id.name)));
        }
        let session = self.state.backend.session(&token).await?.ok_or(ProtocolError::BadToken)?;
        let (capacity, hold) = (self.state.config.room_capacity, self.state.config.seat_hold);
        // The player's seat is still its own if the room still has it.
        let room = match self.state.backend.take_seat(Some(&session.room), session.player, capacity, hold).await? {
            Seat::Taken { room, created } => {
                self.announce(&room, created).await;
                room
            }
            // The room filled up meanwhile: play elsewhere.
            Seat::Full => self.take_seat(None, session.player).await?,
        };
        // A session from an older build has no key (0): the identity gets one
        // now; rooms let an unknown key (0) in either way.
        let key = if session.key == 0 { new_key() } else { session.key };
        self.identity = Some(Identity { id: session.player, name: session.name, token, key, session_room: None });
        self.move_in(room, true).await
    }

    async fn enter_as_player(&mut self, room: RoomId) -> Result<(), Refusal> {
        let Some(player) = self.identity.as_ref().map(|i| i.id) else { return Err(state("Send new_player first")) };
        if self.place.as_ref().is_some_and(|p| p.room == room && p.as_player) {
            self.send_handshake(&room);
            return Ok(());
        }
        let room = self.take_seat(Some(&room), player).await?;
        self.move_in(room, true).await
    }

    async fn spectate(&mut self, room: RoomId) -> Result<(), Refusal> {
        if self.state.backend.room(&room).await?.is_none() {
            return Err(state("No such room"));
        }
        self.move_in(room, false).await
    }

    /// A seat for `player` in `room` (or by matchmaking): the room is
    /// announced if new.
    async fn take_seat(&self, room: Option<&RoomId>, player: PlayerId) -> Result<RoomId, Refusal> {
        let (capacity, hold) = (self.state.config.room_capacity, self.state.config.seat_hold);
        match self.state.backend.take_seat(room, player, capacity, hold).await? {
            Seat::Taken { room, created } => {
                self.announce(&room, created).await;
                Ok(room)
            }
            Seat::Full => Err(state("Room is full")),
        }
    }

    async fn announce(&self, room: &RoomId, created: bool) {
        if created && let Err(e) = self.state.backend.publish_notice(Notice::RoomCreated(room.clone())).await {
            self.state.metrics.publish_errors.inc();
            warn!(%room, error = %e, "could not announce a new room");
        }
    }

    /// The key of the identity this connection enters rooms as.
    fn key(&self) -> u64 {
        self.identity.as_ref().map_or(self.spectator_key, |i| i.key)
    }

    async fn spectator_id(&mut self) -> Result<PlayerId, Refusal> {
        if let Some(id) = self.spectator_id {
            return Ok(id);
        }
        let id = self.state.backend.new_player_id().await?;
        self.spectator_id = Some(id);
        Ok(id)
    }

    /// Leaves the current room (on purpose) and enters `room`; a player's
    /// seat there is already taken.
    async fn move_in(&mut self, room: RoomId, as_player: bool) -> Result<(), Refusal> {
        let (member, name) = match (&self.identity, as_player) {
            (Some(id), true) => (id.id, Some(id.name.clone())),
            (Some(id), false) => (id.id, None),
            (None, _) => (self.spectator_id().await?, None),
        };
        self.leave(InputKind::Leave).await;
        if as_player {
            self.send_handshake(&room);
            self.save_session(&room).await;
        } else {
            let mut w = FrameWriter::default();
            w.spectating(&room);
            self.send(w.finish());
        }
        let attached = self
            .state
            .fanout
            .attach(
                &room,
                member,
                Member::new(self.conn, self.out_tx.clone(), self.kick.clone(), self.superseded.clone()),
            )
            .await;
        if let Err(e) = attached {
            if as_player {
                let _ = self.state.backend.release_seat(&room, member).await;
            }
            return Err(e.into());
        }
        self.place = Some(Place { room: room.clone(), member, as_player });
        let input =
            self.input(member, InputKind::Enter { name, resync: false, key: self.key(), gateway: self.gateway() });
        // The retry is armed first: an enter lost to a failed publish is
        // repeated like one the room did not answer.
        self.await_welcome(room.clone(), input.clone());
        if let Err(e) = self.publish(&room, input).await {
            debug!(%room, error = %e, "enter not sent; it will be repeated");
        }
        Ok(())
    }

    /// Repeats `input` (an enter) until the room's welcome arrives.
    fn await_welcome(&mut self, room: RoomId, input: RoomInput) {
        let now = Instant::now();
        self.pending = Some(PendingEnter {
            input,
            room,
            next: now + self.state.config.enter_retry,
            deadline: now + self.state.config.enter_timeout,
            warned: false,
        });
    }

    async fn join_now(&mut self) {
        let Ok(place) = self.playing_place() else { return };
        let (room, input) = (place.room.clone(), self.input(place.member, InputKind::Join));
        if let Err(e) = self.publish(&room, input).await {
            self.send_error(&e.to_string());
        }
    }

    /// Enters the current room again, for a fresh world (after a gap or a
    /// change of the room's owner).
    async fn reenter(&mut self) {
        let Some(place) = &self.place else { return };
        let name = if place.as_player { self.identity.as_ref().map(|i| i.name.clone()) } else { None };
        let input =
            self.input(place.member, InputKind::Enter { name, resync: true, key: self.key(), gateway: self.gateway() });
        let room = place.room.clone();
        let _ = self.publish(&room, input.clone()).await;
        self.await_welcome(room, input);
    }

    /// The room did not answer yet: ask again (rooms treat `enter` as
    /// idempotent). Past the deadline the client is told, once.
    async fn retry_enter(&mut self) {
        let Some(p) = &mut self.pending else { return };
        let now = Instant::now();
        let late = now >= p.deadline;
        p.next = now + if late { Duration::from_secs(1) } else { self.state.config.enter_retry };
        let (room, input) = (p.room.clone(), p.input.clone());
        if late && !p.warned {
            p.warned = true;
            self.send_error("Room unavailable, try again");
        }
        let _ = self.publish(&room, input).await;
    }

    /// Tells the room a player is going (`Disconnect`: its snake parks),
    /// then forwards the room's frames until the room says it parked the
    /// snake (`PARK_WAIT` at most) before the restart closes the client: a
    /// snake the room moved between the client's last frame and the
    /// `Disconnect` would stand elsewhere when the player resumes. False if
    /// nothing was told.
    async fn park_before_close(&mut self, sink: &mut futures_util::stream::SplitSink<WebSocket, Message>) -> bool {
        let Some(place) = self.place.as_ref().filter(|p| p.as_player && !self.is_superseded()) else {
            return false;
        };
        let (room, input) = (place.room.clone(), self.input(place.member, InputKind::Disconnect));
        if let Err(e) = self.state.backend.publish_input(&room, input).await {
            self.state.metrics.publish_errors.inc();
            debug!(%room, error = %e, "could not tell the room");
            return false;
        }
        let deadline = Instant::now() + PARK_WAIT;
        while !self.room_parked {
            let Ok(Some(out)) = tokio::time::timeout_at(deadline, self.out_rx.recv()).await else { break };
            let wrote = tokio::time::timeout_at(deadline, self.write_batch(sink, out)).await;
            if !matches!(wrote, Ok(true)) {
                break;
            }
        }
        true
    }

    /// Leaves the current room, if any: `Leave` on purpose (the seat comes
    /// free now), `Disconnect` when the connection ended (the snake gets the
    /// grace period, and the room holds the seat as long as it keeps the
    /// player).
    async fn leave(&mut self, kind: InputKind) {
        self.leave_telling(kind, true).await;
    }

    /// As [`leave`](Self::leave); `tell` false when the room already knows.
    async fn leave_telling(&mut self, kind: InputKind, tell: bool) {
        self.pending = None;
        self.join_after_welcome = false;
        let Some(place) = self.place.take() else { return };
        // A superseded connection's member, and its seat (seats are the
        // player's), are the newer connection's now.
        let superseded = self.is_superseded();
        let release = place.as_player && kind == InputKind::Leave && !superseded;
        if tell && !superseded {
            let input = self.input(place.member, kind);
            if let Err(e) = self.state.backend.publish_input(&place.room, input).await {
                self.state.metrics.publish_errors.inc();
                debug!(room = %place.room, error = %e, "could not tell the room");
            }
        }
        self.state.fanout.detach(&place.room, place.member, self.conn).await;
        if release {
            // If this is lost, the seat expires once the room stops holding it.
            if let Err(e) = self.state.backend.release_seat(&place.room, place.member).await {
                warn!(room = %place.room, error = %e, "could not release a seat");
            }
        }
    }

    async fn save_session(&mut self, room: &RoomId) {
        let Some(id) = &mut self.identity else { return };
        id.session_room = Some(room.clone());
        let session = Session { player: id.id, name: id.name.clone(), room: room.clone(), key: id.key };
        if let Err(e) = self.state.backend.put_session(&id.token, &session, self.state.config.session_ttl).await {
            warn!(error = %e, "could not save a session");
        }
    }

    /// The store lost its data: the session this connection saved is
    /// written again (none yet: nothing to save; superseded: the newer
    /// connection saves its own).
    async fn save_session_again(&mut self) {
        let room = self.identity.as_ref().and_then(|id| id.session_room.clone());
        if let Some(room) = room.filter(|_| !self.is_superseded()) {
            self.save_session(&room).await;
        }
    }

    /// The id rooms know this gateway's presence by.
    fn gateway(&self) -> Option<String> {
        Some(self.state.gateway_id.to_string())
    }

    fn input(&self, player: PlayerId, kind: InputKind) -> RoomInput {
        RoomInput { player, conn: self.conn, kind }
    }

    async fn publish(&self, room: &RoomId, input: RoomInput) -> Result<(), Refusal> {
        if let Err(e) = self.state.backend.publish_input(room, input).await {
            self.state.metrics.publish_errors.inc();
            return Err(e.into());
        }
        Ok(())
    }

    fn send_handshake(&self, room: &RoomId) {
        if let Some(id) = &self.identity {
            let mut w = FrameWriter::default();
            w.handshake(&id.name, id.id, room, &id.token);
            self.send(w.finish());
        }
    }

    fn send_error(&self, text: &str) {
        self.send(error_frame(text));
    }

    /// Queues one of the connection's own frames; a full queue means the
    /// client is not reading, and the kick follows from the fan-out.
    fn send(&self, frame: bytes::Bytes) {
        if let Ok(text) = Utf8Bytes::try_from(frame)
            && self.out_tx.try_send(Outgoing::Frame(text)).is_err()
        {
            self.state.metrics.frames_dropped.inc();
        }
    }
}

fn state(text: impl Into<String>) -> Refusal {
    Refusal::State(text.into())
}

/// Whether a read error is a frame over the size limit.
fn too_big(e: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(WsError::Capacity(_)) = err.downcast_ref::<WsError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// A random, non-zero identity key.
fn new_key() -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64) | 1
}
