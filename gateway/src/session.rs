//! A player's (or spectator's) session on one connection: who it is, which
//! room it is in, and everything that asks the backend (seats, sessions,
//! room inputs, the fan-out).
//!
//! It runs beside the connection's socket loop (`connection.rs`), never in
//! its way: the loop hands it one job at a time and keeps writing the
//! client's frames while the job awaits Redis, so a slow backend makes a
//! command slow but never gets a client that reads kicked.

use std::sync::Arc;
use std::time::Duration;

use snakepit_bus::{Backend, ConnId, InputKind, Notice, PlayerId, RoomId, RoomInput, Seat, Session as Saved};
use snakepit_protocol::client::{ClientMessage, ProtocolError};
use snakepit_protocol::frame_writer::{FrameWriter, error_frame};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::fanout::{Member, Outgoing, queue_own};
use crate::signals::Signals;
use crate::state::AppState;
use snakepit_bus::queue as outbox;

/// Rooms listed in one `rooms` reply.
const ROOMS_LISTED: usize = 100;

/// What the socket loop hands the session.
#[derive(Debug)]
pub enum Job {
    /// A command of the client's, already parsed.
    Client(ClientMessage),
    /// The room's welcome went out to the client.
    Welcomed,
    /// The fan-out asked for a fresh world.
    Resync,
    /// The room has not answered an `enter` yet.
    RetryEnter,
    /// Save the session again (the store lost it, or it nears its expiry).
    SaveAgain,
}

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

pub struct Session<B> {
    state: Arc<AppState<B>>,
    conn: ConnId,
    /// Member id while spectating without an identity: from the same
    /// counter as players' ids, taken at the first `spectate`.
    spectator_id: Option<PlayerId>,
    /// The spectator identity's key (see `InputKind::Enter`).
    spectator_key: u64,
    identity: Option<Identity>,
    place: Option<Place>,
    pending: Option<PendingEnter>,
    /// The connection's outgoing queue, for its own frames.
    out_tx: outbox::Sender<Outgoing>,
    signals: Arc<Signals>,
    /// A `join` that came before the room's welcome.
    join_after_welcome: bool,
}

impl<B: Backend> Session<B> {
    pub fn new(state: Arc<AppState<B>>, conn: ConnId, out_tx: outbox::Sender<Outgoing>, signals: Arc<Signals>) -> Self {
        Self {
            state,
            conn,
            spectator_id: None,
            spectator_key: new_key(),
            identity: None,
            place: None,
            pending: None,
            out_tx,
            signals,
            join_after_welcome: false,
        }
    }

    /// Does one job to its end.
    pub async fn run(&mut self, job: Job) {
        match job {
            Job::Client(msg) => {
                if let Err(refusal) = self.dispatch(msg).await {
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
            }
            Job::Welcomed => {
                self.pending = None;
                if std::mem::take(&mut self.join_after_welcome) {
                    self.join_now().await;
                }
            }
            Job::Resync => self.reenter().await,
            Job::RetryEnter => self.retry_enter().await,
            Job::SaveAgain => self.save_session_again().await,
        }
    }

    /// When the room's answer to an `enter` is due, if one is awaited.
    pub fn retry_at(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.next)
    }

    /// Where this connection plays, if it does (and is not superseded).
    fn playing(&self) -> Option<&Place> {
        self.place.as_ref().filter(|p| p.as_player && !self.signals.is_superseded())
    }

    /// Tells the room that the player is going (`Disconnect`: its snake
    /// parks) ahead of the close; false if there was nothing to tell or it
    /// could not be told.
    pub async fn tell_disconnect(&self) -> bool {
        let Some(place) = self.playing() else { return false };
        let input = self.input(place.member, InputKind::Disconnect);
        if let Err(e) = self.state.backend.publish_input(&place.room, input).await {
            self.state.metrics.publish_errors.inc();
            debug!(room = %place.room, error = %e, "could not tell the room");
            return false;
        }
        true
    }

    /// The connection ended: the session lives on for a resume (saved
    /// before the close frame, which the client may answer with a resume at
    /// once), and the room hears of it unless it was `told` already.
    pub async fn end(&mut self, told: bool) {
        if let Some(room) = self.playing().map(|p| p.room.clone()) {
            self.save_session(&room).await;
        }
        self.leave_telling(InputKind::Disconnect, !told).await;
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
            // Answered by the connection itself, never queued.
            ClientMessage::Ping => Ok(()),
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
        // Frames of the old room may still wait in the queue: its welcome
        // must not pass for the new room's.
        let _ = self.out_tx.try_send(Outgoing::Moved);
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
            .attach(&room, member, Member::new(self.conn, self.out_tx.clone(), self.signals.clone()))
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
        let superseded = self.signals.is_superseded();
        let release = place.as_player && kind == InputKind::Leave && !superseded;
        if tell && !superseded {
            let input = self.input(place.member, kind);
            if let Err(e) = self.state.backend.publish_input(&place.room, input).await {
                self.state.metrics.publish_errors.inc();
                debug!(room = %place.room, error = %e, "could not tell the room");
            }
        }
        self.state.fanout.detach(&place.room, place.member, self.conn);
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
        let session = Saved { player: id.id, name: id.name.clone(), room: room.clone(), key: id.key };
        if let Err(e) = self.state.backend.put_session(&id.token, &session, self.state.config.session_ttl).await {
            warn!(error = %e, "could not save a session");
        }
    }

    /// The store lost its data: the session this connection saved is
    /// written again (none yet: nothing to save; superseded: the newer
    /// connection saves its own).
    async fn save_session_again(&mut self) {
        let room = self.identity.as_ref().and_then(|id| id.session_room.clone());
        if let Some(room) = room.filter(|_| !self.signals.is_superseded()) {
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

    fn send(&self, frame: bytes::Bytes) {
        queue_own(&self.out_tx, frame, &self.state.metrics);
    }
}

fn state(text: impl Into<String>) -> Refusal {
    Refusal::State(text.into())
}

/// A random, non-zero identity key.
fn new_key() -> u64 {
    (uuid::Uuid::new_v4().as_u128() as u64) | 1
}
